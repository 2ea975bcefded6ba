"""The Boltzmann gradient, CD-k and PCD (CATALOGUE I6–I8) against exact enumeration."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from genmodels.data import bars_and_stripes
from genmodels.learning.contrastive import (
    BoltzmannLearner,
    CDNegative,
    ExactNegative,
    NegativeSamples,
    PersistentNegative,
    boltzmann_gradient,
    boltzmann_loss,
    cd_objective_exact,
    exact_negative_log_likelihood,
    hybrid_statistics,
    model_statistics,
    visible_transition_matrix,
)
from genmodels.learning.trainer import Trainer
from genmodels.models.harmonium import BernoulliRBM, GaussianBernoulliRBM, Harmonium

DT = torch.float64


def _randomise(model: Harmonium, seed: int, scale: float = 1.0) -> Harmonium:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(scale * torch.randn(p.shape, generator=g, dtype=DT))
    return model


def _binary_data(v: int, n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.bernoulli(torch.full((n, v), 0.4, dtype=DT), generator=g)


MODELS = {
    "bernoulli": (lambda: BernoulliRBM(5, 4), lambda: _binary_data(5, 12, 0)),
    "gaussian-bernoulli": (lambda: GaussianBernoulliRBM(2, 4),
                           lambda: torch.randn(12, 2, generator=torch.Generator().manual_seed(1),
                                               dtype=DT)),
    "softmax-visible": (lambda: Harmonium(("bernoulli", 3),
                                          {"kind": "softmax", "size": 2, "categories": 3}),
                        lambda: torch.tensor([[0, 1], [2, 2], [1, 0], [0, 0], [2, 1]], dtype=DT)),
}


@pytest.mark.parametrize("name", list(MODELS))
def test_exact_boltzmann_gradient_is_autograd_of_the_exact_nll(name: str) -> None:
    """Eq. 10.16 with the exact negative phase equals autograd of ⟨F(y)⟩ + log Z (the exact
    mean NLL, log Z by enumeration) — for every parameter, a learned σ included — and, for
    W and the biases, Eq. 10.19's E_model[T Uᵀ] − E_hybrid[T Uᵀ]."""
    make_model, make_data = MODELS[name]
    model = _randomise(make_model(), seed=2, scale=0.5)
    y = make_data()
    nll = exact_negative_log_likelihood(model, y)
    params = dict(model.named_parameters())
    auto = dict(zip(params, torch.autograd.grad(nll, list(params.values())), strict=True))
    layers = ["hidden"] + (["visible"] if model.visible.num_states is not None else [])
    for layer in layers:
        g = boltzmann_gradient(model, y, ExactNegative(layer))
        for k in params:
            torch.testing.assert_close(g[k], auto[k], atol=1e-12, rtol=1e-10)
    hyb, mod = hybrid_statistics(model, y), model_statistics(model)
    torch.testing.assert_close(auto["weight"], mod["weight"] - hyb["weight"])
    torch.testing.assert_close(auto["hidden.bias"], mod["b_x"] - hyb["b_x"])
    torch.testing.assert_close(auto["visible.bias"], mod["b_y"] - hyb["b_y"])


def _exact_cd_gradient(model: BernoulliRBM, y: torch.Tensor, k: int) -> dict[str, torch.Tensor]:
    """The expected CD-k gradient: the negative phase under p^k = p⁰ Tᵏ exactly."""
    ys, trans = visible_transition_matrix(model)
    codes = (y * 2 ** torch.arange(y.shape[1], dtype=DT)).sum(-1).long()
    pk = torch.bincount(codes, minlength=ys.shape[0]).to(DT) / y.shape[0]
    pk = pk @ torch.linalg.matrix_power(trans, k)
    loss = boltzmann_loss(model, y, NegativeSamples("visible", ys, pk))
    params = dict(model.named_parameters())
    return dict(zip(params, torch.autograd.grad(loss, list(params.values())), strict=True))


def test_cd_k_gradient_approaches_the_exact_gradient_as_k_grows() -> None:
    """B §10.2.2: p^k → p^∞, so the CD-k gradient → the ML gradient. Exactly (transition
    matrices) the error falls with k to ~0; and the Monte Carlo CD-k of 40,000 chains matches
    its expectation within 5 standard errors (so the sampler is the chain of the book)."""
    model = _randomise(BernoulliRBM(4, 3), seed=3, scale=1.5)
    y = _binary_data(4, 8, seed=4)
    exact = boltzmann_gradient(model, y, ExactNegative())

    def err(g: dict[str, torch.Tensor]) -> float:
        return math.sqrt(sum(float((g[n] - exact[n]).square().sum()) for n in exact))

    errs = [err(_exact_cd_gradient(model, y, k)) for k in (1, 2, 4, 8, 300)]
    assert errs[0] > 1e-2
    assert all(b < a for a, b in itertools.pairwise(errs[:4])), errs
    assert errs[-1] < 1e-12, errs
    # Monte Carlo CD-k against its exact expectation, the W-statistic of the negative phase
    reps = y.repeat(5000, 1)
    ys, trans = visible_transition_matrix(model)
    for k in (1, 4):
        neg = CDNegative(k).negative(model, reps, torch.Generator().manual_seed(k))
        with torch.no_grad():
            z = model.hidden.mean(model.hidden_natural(neg.states))[:, :, None] \
                * neg.states[:, None, :]  # (M, S_x, S_y): E[T | y_k] U(y_k)ᵀ per chain
        codes = (y * 2 ** torch.arange(4, dtype=DT)).sum(-1).long()
        pk = torch.bincount(codes, minlength=16).to(DT) / 8 @ torch.linalg.matrix_power(trans, k)
        expect = hybrid_statistics(model, ys, pk)["weight"]
        se = z.std(0) / math.sqrt(z.shape[0])
        assert bool(((z.mean(0) - expect).abs() < 5 * se + 1e-12).all())


def test_persistent_chains_are_unbiased_for_the_model_statistics() -> None:
    """With fixed parameters, PCD chains are a Markov chain on the model: after burn-in the
    averaged negative phase matches the exact model statistics within Monte Carlo error."""
    model = _randomise(BernoulliRBM(4, 3), seed=5, scale=1.0)
    pcd = PersistentNegative(model, 20_000, k=1, seed=0)
    g = torch.Generator().manual_seed(0)
    for _ in range(30):
        neg = pcd.negative(model, torch.zeros(1, 4, dtype=DT), g)
    with torch.no_grad():
        z = model.hidden.mean(model.hidden_natural(neg.states))[:, :, None] * neg.states[:, None]
    se = z.std(0) / math.sqrt(z.shape[0])
    assert bool(((z.mean(0) - model_statistics(model)["weight"]).abs() < 5 * se).all())


def test_at_the_optimum_data_and_model_statistics_match() -> None:
    """I7: minimise the exact NLL of a tiny RBM (V = 3, H = 2) on data with full support; at the
    optimum E_hybrid[T Uᵀ, T, U] = E_model[…] to 1e-6 (learning is complete)."""
    model = _randomise(BernoulliRBM(3, 2), seed=6, scale=0.1)
    ys = model.visible.states(0, 8)
    y = torch.cat([ys, ys[[0, 3, 3, 5, 6, 6, 6, 7]]])
    opt = torch.optim.LBFGS(model.parameters(), lr=1, max_iter=500, tolerance_grad=1e-12,
                            tolerance_change=1e-15, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = exact_negative_log_likelihood(model, y)
        loss.backward()
        return loss

    for _ in range(5):
        opt.step(closure)
    hyb, mod = hybrid_statistics(model, y), model_statistics(model)
    for k in hyb:
        torch.testing.assert_close(hyb[k], mod[k], atol=1e-6, rtol=0)
    gap = max(float((hyb[k] - mod[k]).abs().max()) for k in hyb)
    start = _randomise(BernoulliRBM(3, 2), seed=6, scale=0.1)
    gap0 = max(float((hybrid_statistics(start, y)[k] - model_statistics(start)[k]).abs().max())
               for k in hyb)
    assert gap0 > 1e-2 > 1e4 * gap


@pytest.mark.parametrize("method", ["cd", "pcd"])
def test_cd1_and_pcd_raise_the_exact_log_likelihood_on_bars_and_stripes(method: str) -> None:
    """3×3 bars and stripes (14 images), H = 10, through the trainer (SGD with momentum):
    the exact mean log-likelihood rises from −9 log 2 ≈ −6.2 by well over a nat."""
    data = bars_and_stripes(3)
    model = BernoulliRBM(9, 10, seed=0, init_scale=0.1)
    neg = CDNegative(1) if method == "cd" else PersistentNegative(model, 50, k=1, seed=0)
    learner = BoltzmannLearner(model, neg)
    with torch.no_grad():
        before = -float(exact_negative_log_likelihood(model, data))
    res = Trainer(learner, epochs=100, batch_size=7, progress=False, seed=0,
                  optimizer=lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.5),
                  val_data=data, val_metric=BoltzmannLearner.val_nll).fit(data.repeat(4, 1))
    after = -float(exact_negative_log_likelihood(model, data).detach())
    assert after > before + 1.0, (before, after)
    assert after >= -min(res.history["val_metric"]) - 1e-9  # the best epoch is kept
    assert after < -math.log(14) + 1e-9  # never above the optimum, log(1/14)


def test_pcd_chains_checkpoint_and_resume_exactly(tmp_path) -> None:
    data = bars_and_stripes(3)

    def run(epochs: int, resume: bool) -> BernoulliRBM:
        model = BernoulliRBM(9, 6, seed=1)
        learner = BoltzmannLearner(model, PersistentNegative(model, 14, k=1, seed=0))
        Trainer(learner, epochs=epochs, batch_size=7, progress=False, seed=0, lr=0.05,
                checkpoint=tmp_path / ("ck" if resume else f"ck{epochs}"),
                resume=resume).fit(data)
        return model

    full = run(4, resume=False)
    run(2, resume=True)
    resumed = run(4, resume=True)
    torch.testing.assert_close(resumed.weight, full.weight, atol=0, rtol=0)


def test_cd_objective_is_nonnegative_and_zero_at_the_stationary_distribution() -> None:
    """Eq. 10.21: CD = KL{p⁰‖p^∞} − KL{pᵏ‖p^∞} ≥ 0 (the chain contracts towards p^∞), = 0 when
    p⁰ = p^∞; and CD-1's expected gradient points uphill in most random configurations
    (Hinton's empirical claim; the fraction is reported in the assertion message)."""
    agree, trials = 0, 40
    for s in range(trials):
        model = _randomise(BernoulliRBM(4, 3), seed=100 + s, scale=1.0)
        p0 = torch.softmax(torch.randn(16, generator=torch.Generator().manual_seed(s),
                                       dtype=DT), 0)
        for k in (1, 2, 5):
            assert float(cd_objective_exact(model, p0, k)) >= -1e-12
        ys = model.visible.states(0, 16)
        with torch.no_grad():
            p_inf = torch.softmax(-model.free_energy(ys), 0)
        assert abs(float(cd_objective_exact(model, p_inf, 3))) < 1e-12
        if s < 20:
            y = ys[torch.multinomial(p0, 64, replacement=True,
                                     generator=torch.Generator().manual_seed(s))]
            ex = boltzmann_gradient(model, y, ExactNegative())
            cd = _exact_cd_gradient(model, y, 1)
            agree += int(sum(float((ex[n] * cd[n]).sum()) for n in ex) > 0)
    assert agree >= 15, f"CD-1 and the exact gradient agreed in direction in {agree}/20"


def test_bad_arguments() -> None:
    model = BernoulliRBM(3, 2)
    with pytest.raises(ValueError, match="negative must have negative"):
        BoltzmannLearner(model, object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"init must have shape \(4, 3\)"):
        PersistentNegative(model, 4, init=torch.zeros(4, 2, dtype=DT))
    with pytest.raises(ValueError, match="k must be an integer >= 0"):
        CDNegative(-1)
