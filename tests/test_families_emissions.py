"""Family emissions: log-likelihood tables against torch.distributions, statistics against a
per-state loop, the M step against weighted moment matching, recovery by EM, save/load."""

from __future__ import annotations

import pytest
import torch

from genmodels.io import load, save
from genmodels.learning.em import EStep, run_em
from genmodels.linalg import log_normalize
from genmodels.models.emissions import Emission
from genmodels.models.family_emissions import (
    BernoulliEmission,
    CategoricalEmission,
    PoissonEmission,
)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _make(kind: str):
    g = _gen(1)
    if kind == "bernoulli":
        p = torch.rand(3, 5, generator=g) * 0.8 + 0.1
        return BernoulliEmission(3, 5, p), torch.distributions.Independent(
            torch.distributions.Bernoulli(probs=p), 1)
    if kind == "poisson":
        r = torch.rand(3, 4, generator=g) * 5 + 0.2
        return PoissonEmission(3, 4, r), torch.distributions.Independent(
            torch.distributions.Poisson(r), 1)
    b = torch.softmax(torch.randn(3, 6, generator=g), -1)
    return CategoricalEmission(3, 6, b), torch.distributions.Categorical(probs=b)


KINDS = ["bernoulli", "poisson", "categorical"]


@pytest.mark.parametrize("kind", KINDS)
def test_protocol_and_log_likelihood_matches_torch(kind):
    em, ref = _make(kind)
    assert isinstance(em, Emission)
    states = torch.randint(3, (200,), generator=_gen(2))
    y = em.sample(states, generator=_gen(3))
    ll = em.log_likelihood(y)
    assert ll.shape == (200, 3)
    yy = y[:, 0] if kind == "categorical" else y
    expect = ref.log_prob(yy[:, None, ...] if kind != "categorical" else yy[:, None])
    torch.testing.assert_close(ll, expect, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
def test_sample_frequencies_match_parameters(kind):
    em, ref = _make(kind)
    n = 20000
    states = torch.full((n,), 1, dtype=torch.long)
    y = em.sample(states, generator=_gen(4))
    if kind == "categorical":
        freq = torch.bincount(y[:, 0], minlength=6).double() / n
        p = em.probs[1]
        torch.testing.assert_close(freq, p, atol=6 * float((p * (1 - p) / n).sqrt().max()),
                                   rtol=0)
    else:
        mean = ref.mean[1]
        var = ref.variance[1]
        assert bool(((y.mean(0) - mean).abs() < 6 * (var / n).sqrt()).all())


@pytest.mark.parametrize("kind", KINDS)
def test_expected_stats_equal_per_state_weighted_sums(kind):
    em, _ = _make(kind)
    y = em.sample(torch.randint(3, (50,), generator=_gen(5)), generator=_gen(6))
    w = torch.softmax(torch.randn(50, 3, generator=_gen(7)), -1)
    st = em.expected_stats(y, w)
    t = em.stats(y)
    for k in range(3):
        torch.testing.assert_close(st["t"][k], sum(w[i, k] * t[i] for i in range(50)))
        torch.testing.assert_close(st["n"][k], w[:, k].sum())
    # additive over batches (minibatch / distributed EM)
    a = em.expected_stats(y[:20], w[:20])
    b = em.expected_stats(y[20:], w[20:])
    torch.testing.assert_close(a["t"] + b["t"], st["t"])


def test_maximize_is_regularised_weighted_moment_matching():
    y = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 0.0]])
    w = torch.tensor([[1.0, 0.0], [0.5, 0.5], [0.25, 0.75]])
    a = 1e-3
    em = BernoulliEmission(2, 2, pseudo_count=a)
    em.maximize(em.expected_stats(y, w))
    n = w.sum(0)
    expect = (w.T @ y + a) / (n[:, None] + 2 * a)
    torch.testing.assert_close(em.probs, expect)
    assert bool(((em.probs > 0) & (em.probs < 1)).all())  # column 2 is all zeros: not 0

    pe = PoissonEmission(2, 2, pseudo_count=a)
    yc = torch.tensor([[3.0, 0.0], [1.0, 0.0], [4.0, 0.0]])
    pe.maximize(pe.expected_stats(yc, w))
    torch.testing.assert_close(pe.rates, (w.T @ yc + a) / (n[:, None] + a))
    assert bool((pe.rates > 0).all())

    ce = CategoricalEmission(2, 3, pseudo_count=a)
    s = torch.tensor([0, 0, 1])
    ce.maximize(ce.expected_stats(s, w))
    counts = w.T @ torch.nn.functional.one_hot(s, 3).double()
    torch.testing.assert_close(ce.probs, (counts + a) / (n[:, None] + 3 * a))
    assert bool((ce.probs > 0).all())


def test_empty_state_and_frozen():
    em = BernoulliEmission(2, 3, pseudo_count=1e-6)
    y = torch.ones(4, 3)
    w = torch.tensor([[1.0, 0.0]] * 4)
    em.maximize(em.expected_stats(y, w))
    torch.testing.assert_close(em.probs[1], torch.full((3,), 0.5))  # no data: prior mode
    assert bool(torch.isfinite(em.log_likelihood(y)).all())
    before = em.natural.clone()
    em.maximize(em.expected_stats(1 - y, w), frozen=frozenset({"probs"}))
    torch.testing.assert_close(em.natural, before)


def test_float32_extreme_probability_keeps_finite_log_likelihood():
    em = BernoulliEmission(1, 1, pseudo_count=1e-6, dtype=torch.float32)
    y = torch.ones(100000, 1)
    em.maximize(em.expected_stats(y, torch.ones(100000, 1)))
    ll = em.log_likelihood(torch.tensor([[0.0], [1.0]]))
    assert bool(torch.isfinite(ll).all())
    assert float(ll[0, 0]) < -20  # log(1 − p) with p = 1 − 1e-11: far below float32 resolution


@pytest.mark.parametrize("kind", KINDS)
def test_bad_input_raises(kind):
    em, _ = _make(kind)
    bad = {"bernoulli": torch.full((2, 5), 0.5), "poisson": -torch.ones(2, 4),
           "categorical": torch.tensor([0, 6])}[kind]
    with pytest.raises(ValueError, match=r"0/1 valued|nonnegative integer counts|symbols must be"):
        em.log_likelihood(bad)
    nan = {"bernoulli": torch.full((2, 5), float("nan")),
           "poisson": torch.full((2, 4), float("nan")),
           "categorical": torch.tensor([0.0, float("nan")])}[kind]
    with pytest.raises(ValueError, match=r"non-finite|NaN or infinite"):
        em.log_likelihood(nan)
    with pytest.raises(ValueError, match="pseudo_count must be a finite number > 0"):
        type(em)(3, 4, pseudo_count=0.0)


class _Mixture:
    """A minimal mixture over an emission, for EM recovery through the shared engine."""

    def __init__(self, emission, k):
        self.emission = emission
        self.log_weights = torch.full((k,), -torch.log(torch.tensor(float(k))))

    def expected_stats(self, y):
        log_joint = self.emission.log_likelihood(y) + self.log_weights  # Eq. 2.6
        log_post, log_marg = log_normalize(log_joint)
        r = log_post.exp()
        stats = self.emission.expected_stats(y, r)
        stats["r"] = r.sum(0)
        return EStep(stats, log_marg.sum(), y.shape[0])

    def maximize(self, stats, frozen=frozenset()):
        self.log_weights = torch.log(stats["r"] / stats["r"].sum())
        self.emission.maximize({"t": stats["t"], "n": stats["n"]}, frozen)

    def initialize(self, y, generator):
        self.emission.initialize(y, generator)


@pytest.mark.parametrize("kind", ["bernoulli", "poisson"])
def test_em_recovers_mixture_parameters(kind):
    g = _gen(10)
    if kind == "bernoulli":
        true = torch.tensor([[0.9, 0.9, 0.1, 0.1, 0.8, 0.2], [0.1, 0.2, 0.9, 0.8, 0.1, 0.9]])
        truth = BernoulliEmission(2, 6, true)
        model_em = BernoulliEmission(2, 6)
    else:
        true = torch.tensor([[1.0, 8.0, 3.0], [7.0, 1.5, 0.5]])
        truth = PoissonEmission(2, 3, true)
        model_em = PoissonEmission(2, 3)
    n = 4000
    z = (torch.rand(n, generator=g) < 0.3).long()
    y = truth.sample(z, generator=g)
    model = _Mixture(model_em, 2)
    model.initialize(y, _gen(11))
    result = run_em(model, [y], max_iter=300, tol=1e-9)
    assert result.converged
    ll = torch.tensor(result.log_likelihood)
    assert bool((ll.diff() > -1e-9).all())  # EM never decreases the likelihood
    est = model_em.probs if kind == "bernoulli" else model_em.rates
    order = torch.argsort(est[:, 0], descending=kind == "bernoulli")
    est = est[order]
    var = true * (1 - true) if kind == "bernoulli" else true
    se = (var / (n * 0.3)).sqrt()  # the smaller state has ~0.3 n data
    assert bool(((est - true).abs() < 6 * se).all()), (est, true)


def test_categorical_initialize_and_save_load(tmp_path):
    em = CategoricalEmission(3, 4)
    y = torch.randint(4, (100, 1), generator=_gen(12))
    em.initialize(y, _gen(13))
    path = save(em, tmp_path / "em")
    back = load(path)
    torch.testing.assert_close(back.log_likelihood(y), em.log_likelihood(y))
    assert back.num_parameters() == 9
    assert BernoulliEmission(3, 4).num_parameters() == 12
    assert PoissonEmission(2, 4).num_parameters() == 8
