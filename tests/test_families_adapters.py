"""The last two users of genmodels.families (issue 18): the Gaussian emission's non-covariance
parts (its log-density table is the families' log h + ηᵀt − A, its statistics the families')
and the harmonium's layers (their maths is their family's through the conditional view),
each against an independent oracle (scipy, enumeration), and models saved before the change
(tests/data/saved_pre18, written by main at 1a2a41a) still load and agree with scipy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.stats
import torch

from genmodels.families import Bernoulli, Categorical, DiagonalNormal, FullNormal, Poisson
from genmodels.families.base import affine_log_prob_table
from genmodels.families.continuous import gaussian_log_base, gaussian_ml
from genmodels.io import load
from genmodels.models.covariance import GaussianEmission
from genmodels.models.harmonium import (
    GaussianBernoulliRBM,
    Harmonium,
    make_layer,
)

SAVED = Path(__file__).parent / "data" / "saved_pre18"
DT = torch.float64
STRUCTURES = ["full", "diag", "spherical", "tied"]


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _scipy_table(em: GaussianEmission, y: torch.Tensor) -> np.ndarray:
    cov = em.full_covariances().numpy()
    return np.stack([scipy.stats.multivariate_normal(em.means[k].numpy(), cov[k]).logpdf(
        y.numpy()) for k in range(em.num_states)], -1)


# ------------------------------------------------------------------ the Gaussian emission
@pytest.mark.parametrize("name", STRUCTURES)
def test_gaussian_emissions_saved_before_load_and_match_scipy_on_both_paths(name):
    em = load(SAVED / f"gaussian_emission_{name}")
    assert isinstance(em, GaussianEmission) and em.structure.name == name
    y = 2.0 * torch.randn(50, em.dim, generator=_gen(3), dtype=DT)
    ref = _scipy_table(em, y)
    np.testing.assert_allclose(em.log_likelihood(y).numpy(), ref, rtol=1e-12, atol=1e-12)
    em.compiled_max_dim = 0  # diag/spherical: the families' table, not the compiled kernel
    np.testing.assert_allclose(em.log_likelihood(y).numpy(), ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", STRUCTURES)
def test_each_structures_table_is_the_full_normal_familys_log_prob(name):
    g = _gen(11)
    k, d = 4, 3
    em = GaussianEmission(k, d, name)
    a = torch.randn(k, d, d, generator=g, dtype=DT)
    full = a @ a.mT + 0.3 * torch.eye(d, dtype=DT)
    cov = {"full": full, "diag": torch.rand(k, d, generator=g, dtype=DT) + 0.2,
           "spherical": torch.rand(k, generator=g, dtype=DT) + 0.2, "tied": full[0]}[name]
    em.set_parameters(means=torch.randn(k, d, generator=g, dtype=DT), covariances=cov)
    em.compiled_max_dim = 0
    y = torch.randn(30, d, generator=g, dtype=DT) + 5.0  # away from the center (0)
    fam = FullNormal.from_mean_cov(em.means, em.full_covariances())
    torch.testing.assert_close(em.log_likelihood(y), fam.log_prob(y[:, None]),
                               rtol=1e-12, atol=1e-11)
    if name == "diag":
        dn = DiagonalNormal.from_mean_var(em.means, em.covariances)
        torch.testing.assert_close(em.log_likelihood(y), dn.log_prob(y[:, None]),
                                   rtol=1e-12, atol=1e-11)


@pytest.mark.parametrize("name", ["diag", "spherical"])
def test_diag_and_spherical_m_step_is_the_weighted_gaussian_ml(name):
    """The statistics now laid out as the families' t(y) = [y, y²] (diag) and [y, ‖y‖²]
    (spherical): the M step is still the per-component weighted ML Gaussian."""
    g = _gen(5)
    k, d = 3, 4
    y = torch.randn(200, d, generator=g, dtype=DT) * torch.tensor([1.0, 2.0, 0.5, 3.0]) + 1.0
    w = torch.softmax(torch.randn(200, k, generator=g, dtype=DT), -1)
    em = GaussianEmission(k, d, name, reg_covar=0.0)
    em.set_center(y)
    em.maximize(em.expected_stats(y, w))
    for j in range(k):
        mu, cov = gaussian_ml(y, w[:, j])
        var = cov.diagonal() if name == "diag" else cov.diagonal().mean()
        torch.testing.assert_close(em.means[j], mu, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(em.covariances[j], var, rtol=1e-8, atol=1e-12)


def test_affine_table_takes_a_constant_or_a_per_datum_base_measure():
    g = _gen(2)
    t = torch.randn(6, 5, generator=g, dtype=DT)
    eta = torch.randn(3, 5, generator=g, dtype=DT)
    a = torch.randn(3, generator=g, dtype=DT)
    lh = torch.randn(6, generator=g, dtype=DT)
    brute = torch.stack([torch.stack([t[n] @ eta[j] - a[j] for j in range(3)]) for n in range(6)])
    torch.testing.assert_close(affine_log_prob_table(t, eta, a), brute)
    torch.testing.assert_close(affine_log_prob_table(t, eta, a, 1.5), brute + 1.5)
    torch.testing.assert_close(affine_log_prob_table(t, eta, a, lh), brute + lh[:, None])
    assert gaussian_log_base(3) == pytest.approx(-1.5 * np.log(2 * np.pi), rel=1e-15)


# ------------------------------------------------------------------- the harmonium layers
LAYERS = {
    "bernoulli": (("bernoulli", 3), Bernoulli),
    "poisson": (("poisson", 3), Poisson),
    "softmax": ({"kind": "softmax", "size": 2, "categories": 3}, Categorical),
}
PER_UNIT = {"bernoulli": None, "poisson": None, "softmax": 3}  # categorical groups of 3


@pytest.mark.parametrize("name", list(LAYERS))
def test_a_layers_natural_parameters_are_the_families_conditional_view(name):
    """η(y) = b_x + W U(y) and ζ(x) = b_y + Wᵀ T(x) laid out per unit are exactly
    ``family.conditional_natural`` (Eqs. 3.1–3.4) for either layer."""
    spec, fam = LAYERS[name]
    model = Harmonium(spec, ("bernoulli", 4), seed=3, init_scale=0.7)
    with torch.no_grad():
        model.b_x.copy_(torch.randn(model.b_x.shape, generator=_gen(1), dtype=DT))
    y = (torch.rand(5, 4, generator=_gen(4), dtype=DT) < 0.5).to(DT)
    view = fam.conditional_natural(model.b_x, model.weight, model.visible.stats(y),
                                   PER_UNIT[name])
    torch.testing.assert_close(model.hidden.family_natural(model.hidden_natural(y)), view)
    flipped = Harmonium(("bernoulli", 4), spec, seed=3, init_scale=0.7)
    view = fam.conditional_natural(flipped.b_y, flipped.weight.mT, flipped.hidden.stats(y),
                                   PER_UNIT[name])
    torch.testing.assert_close(flipped.visible.family_natural(flipped.visible_natural(y)), view)


@pytest.mark.parametrize("name", ["bernoulli", "softmax"])
def test_finite_layer_log_prob_sums_to_one_over_its_states(name):
    layer = make_layer(LAYERS[name][0])
    eta = torch.randn(2, layer.num_stats, generator=_gen(6), dtype=DT)
    states = layer.states(0, layer.num_states)  # (M, size)
    lp = layer.log_prob(states[:, None], eta[None])  # (M, 2)
    torch.testing.assert_close(torch.logsumexp(lp, 0), torch.zeros(2, dtype=DT))
    # and its mean statistics are the enumeration's average of T(x)
    p = lp.exp()
    torch.testing.assert_close(layer.mean(eta), p.T @ layer.stats(states))


def test_poisson_and_gaussian_layer_log_probs_match_scipy():
    g = _gen(7)
    pois = make_layer(("poisson", 4))
    eta = 0.5 * torch.randn(6, 4, generator=g, dtype=DT)
    x = torch.poisson(torch.full((6, 4), 2.0, dtype=DT), generator=g)
    ref = scipy.stats.poisson(np.exp(eta.numpy())).logpmf(x.numpy()).sum(-1)
    np.testing.assert_allclose(pois.log_prob(x, eta).numpy(), ref, rtol=1e-12)
    gauss = make_layer({"kind": "gaussian", "size": 4, "learn_scale": True})
    with torch.no_grad():
        gauss.log_scale.copy_(0.3 * torch.randn(4, generator=g, dtype=DT))
    sigma = gauss.scale.detach()
    v = torch.randn(6, 4, generator=g, dtype=DT)
    ref = scipy.stats.norm(sigma * eta, sigma).logpdf(v.numpy()).sum(-1)  # x | η ~ N(ση, σ²)
    np.testing.assert_allclose(gauss.log_prob(v, eta).detach().numpy(), ref, rtol=1e-12)
    # the pieces the energy uses add up to the same log-density (Eq. 3.1)
    parts = (gauss.stats(v) * eta).sum(-1) + gauss.log_base(v) - gauss.log_partition(eta)
    np.testing.assert_allclose(parts.detach().numpy(), ref, rtol=1e-12)


def test_softmax_layer_samples_through_the_categorical_family():
    layer = make_layer({"kind": "softmax", "size": 2, "categories": 3})
    eta = torch.tensor([[1.0, -0.5, 0.2, 0.0, 2.0, -1.0]], dtype=DT).expand(20000, -1)
    a = layer.sample(eta, _gen(8))
    torch.testing.assert_close(a, layer.sample(eta, _gen(8)))  # reproducible
    assert a.dtype == DT and a.shape == (20000, 2)
    freq = layer.stats(a).mean(0)
    p = layer.mean(eta[:1])[0]
    se = torch.sqrt(p * (1 - p) / 20000)
    assert bool(((freq - p).abs() < 5 * se).all())


def test_base_rates_are_the_families_conjugate_m_step():
    data = (torch.rand(40, 3, generator=_gen(9), dtype=DT) < 0.3).to(DT)
    b = make_layer(("bernoulli", 3)).base_rate_bias(data)
    torch.testing.assert_close(b, torch.logit((data.sum(0) + 0.5) / 41.0))
    s = make_layer({"kind": "softmax", "size": 2, "categories": 3})
    cats = torch.randint(0, 3, (40, 2), generator=_gen(10)).to(DT)
    counts = torch.stack([(cats == c).sum(0) for c in range(3)], -1).to(DT)  # (2, 3)
    ref = torch.log((counts + 0.5) / (40 + 1.5)).flatten()
    torch.testing.assert_close(s.base_rate_bias(cats), ref)


def test_harmoniums_saved_before_load_and_their_conditionals_match_independent_formulas():
    gb = load(SAVED / "gaussian_bernoulli_rbm")
    assert isinstance(gb, GaussianBernoulliRBM)
    x = (torch.rand(5, 3, generator=_gen(12), dtype=DT) < 0.5).to(DT)
    v = torch.randn(5, 4, generator=_gen(13), dtype=DT)
    with torch.no_grad():
        sigma = gb.visible.scale
        loc = sigma * (gb.b_y + x @ gb.weight)  # v_i | x ~ N(b_i + σ_i Σ_j w_ji x_j, σ_i²)
        ref = scipy.stats.norm(loc.numpy(), sigma.numpy()).logpdf(v.numpy()).sum(-1)
        np.testing.assert_allclose(gb.emission(x).log_prob(v).sum(-1).numpy(), ref,
                                   rtol=1e-12)
        p1 = torch.sigmoid(gb.b_x + (v / sigma) @ gb.weight.mT)
        torch.testing.assert_close(gb.hidden_mean(v), p1)
    h = load(SAVED / "softmax_harmonium")
    with torch.no_grad():
        states = h.visible.states(0, h.visible.num_states)
        lp = h.log_prob(states)
        torch.testing.assert_close(torch.logsumexp(lp, 0), torch.zeros((), dtype=DT))
        zeta = (h.b_y + x @ h.weight).unflatten(-1, (2, 3))
        torch.testing.assert_close(h.visible_mean(x), torch.softmax(zeta, -1).flatten(-2))
