"""The views of genmodels.families that every model uses (issue 18): the batched log-density
table, the conjugate-prior M step, the GLM view, the harmonium's conditional view, sampling
through a generator — and one family (Gamma) that thereby works as a mixture/HMM emission, a
GLM response and a VAE likelihood, each against an independent oracle (scipy, statsmodels)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.stats
import torch

from genmodels.families import (
    FAMILIES,
    GLM_VIEWS,
    Bernoulli,
    Categorical,
    ExponentialDispersion,
    FullNormal,
    Gamma,
    Normal,
    Poisson,
    bregman_kl,
    gaussian_ml,
    kl_gaussian,
    kl_tril_std_normal,
)
from genmodels.io import load, save
from genmodels.learning.em import fit_em
from genmodels.models.family_emissions import (
    BernoulliEmission,
    CategoricalEmission,
    FamilyEmission,
    PoissonEmission,
)
from genmodels.models.glm_families import CanonicalLink, Family, get_family
from genmodels.models.mixture import MixtureModel

SAVED = Path(__file__).parent / "data" / "saved_pre18"


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _natural(name: str, shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    g = _gen(seed)
    fam = FAMILIES[name]
    h = torch.randn((*shape, fam.natural_per_unit), generator=g, dtype=torch.float64)
    return fam.natural_from_unconstrained(h)


def _draw(name: str, eta: torch.Tensor, seed: int) -> torch.Tensor:
    return FAMILIES[name].sample_natural(eta, _gen(seed)).to(torch.float64)


SCALAR = ["bernoulli", "poisson", "gamma", "normal"]


# ------------------------------------------------------------------- the log-density table
@pytest.mark.parametrize("name", SCALAR)
def test_log_prob_table_equals_every_pair_of_datum_and_member(name):
    fam = FAMILIES[name]
    eta = _natural(name, (4, 3))  # K = 4 members × C = 3 coordinates
    x = _draw(name, eta[torch.arange(10) % 4], seed=1)  # (10, 3)
    log_h = fam.log_base_measure(x).sum(-1)
    table = fam.log_prob_table(fam.sufficient_stats(x), eta, log_h)
    brute = torch.stack([fam(eta[k]).log_prob(x).sum(-1) for k in range(4)], -1)
    torch.testing.assert_close(table, brute, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(fam.log_prob_natural(x[:, None], eta[None]).sum(-1), brute,
                               rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------ the conjugate-prior M step
def test_pseudo_count_m_step_is_the_conjugate_posterior_mode():
    g = _gen(2)
    w = torch.rand(50, dtype=torch.float64, generator=g)
    a = 0.3
    y = (torch.rand(50, generator=g) < 0.2).double()
    # Bernoulli: mode of Beta(1 + a + Σwy, 1 + a + Σw(1 − y))
    p = (w @ y + a) / (w.sum() + 2 * a)
    eta = Bernoulli.natural_from_stats((w @ y)[None], w.sum(), a)
    torch.testing.assert_close(torch.sigmoid(eta), p[None], rtol=1e-14, atol=0)
    # Poisson: mode of Gamma(1 + a + Σwy, a + Σw)
    c = torch.poisson(torch.full((50,), 3.0, dtype=torch.float64), generator=g)
    lam = (w @ c + a) / (w.sum() + a)
    torch.testing.assert_close(torch.exp(Poisson.natural_from_stats((w @ c)[None], w.sum(), a)),
                               lam[None], rtol=1e-14, atol=0)
    # Categorical: mode of Dirichlet(1 + a + counts)
    s = torch.randint(4, (50,), generator=g)
    counts = torch.nn.functional.one_hot(s, 4).double().T @ w
    pi = (counts + a) / (w.sum() + 4 * a)
    torch.testing.assert_close(torch.softmax(Categorical.natural_from_stats(counts, w.sum(), a),
                                             -1), pi, rtol=1e-14, atol=0)
    # the generic form (Gamma, Normal): ∇A(η) = (Σwt + τ)/(Σw + ν), τ = ν ∇A(η₀)
    x = torch.rand(50, generator=g, dtype=torch.float64) * 3 + 0.1
    for fam in (Gamma, Normal):
        t = w @ fam.sufficient_stats(x)
        eta = fam.natural_from_stats(t, w.sum(), a)
        ref = fam.mean_from_natural(fam.reference_natural(t))
        torch.testing.assert_close(fam.mean_from_natural(eta), (t + a * ref) / (w.sum() + a),
                                   rtol=1e-10, atol=1e-12)
        # no weight at all: the prior's reference member
        torch.testing.assert_close(fam.natural_from_stats(0 * t, 0 * w.sum(), a),
                                   fam.reference_natural(t), rtol=1e-9, atol=1e-9)
    # a = 0 is maximum likelihood
    torch.testing.assert_close(Gamma.natural_from_stats(t := w @ Gamma.sufficient_stats(x),
                                                        w.sum()),
                               Gamma.fit(x, w).natural)


# --------------------------------------------------------------------------- the GLM view
@pytest.mark.parametrize("view", sorted(GLM_VIEWS))
def test_glm_view_is_the_family_slice(view):
    v = GLM_VIEWS[view]
    fam = v.family
    g = _gen(3)
    mu = {"gaussian": torch.randn(20, generator=g, dtype=torch.float64),
          "binomial": torch.rand(20, generator=g, dtype=torch.float64) * 0.9 + 0.05,
          "poisson": torch.rand(20, generator=g, dtype=torch.float64) * 5 + 0.1,
          "gamma": torch.rand(20, generator=g, dtype=torch.float64) * 5 + 0.1}[view]
    y = mu.flip(0)
    theta = v.canonical_link(mu)
    # the canonical link inverts the mean b′(θ), which is the derivative of b = A on the slice
    torch.testing.assert_close(v.mean(theta), mu, rtol=1e-12, atol=1e-12)
    db = torch.func.vmap(torch.func.grad(lambda t: v.cumulant(t)))(theta)
    torch.testing.assert_close(db, mu, rtol=1e-10, atol=1e-12)
    # V(μ) = ∇²A at the mean: the slice's entry of the family's Fisher information, and b″(θ)
    fisher = fam.fisher_from_natural(v.natural(theta))[..., fam.mean_stat, fam.mean_stat]
    torch.testing.assert_close(v.variance(mu), fisher, rtol=1e-10, atol=1e-12)
    d2b = torch.func.vmap(torch.func.grad(torch.func.grad(lambda t: v.cumulant(t))))(theta)
    torch.testing.assert_close(v.variance(mu), d2b, rtol=1e-9, atol=1e-12)
    dv = torch.func.vmap(torch.func.grad(lambda m: v.variance(m)))(mu)
    torch.testing.assert_close(v.variance_deriv(mu), dv, rtol=1e-10, atol=1e-12)
    # the unit deviance is twice the KL divergence, a Bregman divergence of A
    kl = bregman_kl(fam, v.natural(v.canonical_link(y)), v.natural(theta))
    torch.testing.assert_close(v.unit_deviance(y, mu), 2 * kl, rtol=1e-9, atol=1e-12)
    assert bool((v.unit_deviance(mu, mu).abs() < 1e-12).all())
    # the closed forms equal the generic conjugate form 2[b*(y) − b*(μ) − (y − μ)θ(μ)],
    # also on the boundary of the mean space (zero counts, 0/1 outcomes)
    generic = ExponentialDispersion.unit_deviance
    torch.testing.assert_close(generic(v, y, mu), v.unit_deviance(y, mu), rtol=1e-9, atol=1e-12)
    if view in ("binomial", "poisson"):
        yb = (y > y.median()).double() if view == "binomial" else torch.floor(y)
        torch.testing.assert_close(generic(v, yb, mu), v.unit_deviance(yb, mu), rtol=1e-9,
                                   atol=1e-12)


def test_glm_log_likelihoods_match_scipy():
    g = _gen(4)
    mu = torch.rand(30, generator=g, dtype=torch.float64) * 4 + 0.2
    a = torch.rand(30, generator=g, dtype=torch.float64) + 0.5
    scale = 0.7
    yg = torch.rand(30, generator=g, dtype=torch.float64) * 3 + 0.05
    nu = (a / scale).numpy()
    ll = GLM_VIEWS["gamma"].log_likelihood(yg, mu, a, scale)
    np.testing.assert_allclose(ll.numpy(), scipy.stats.gamma.logpdf(
        yg.numpy(), nu, scale=mu.numpy() / nu), rtol=1e-12)
    ll = GLM_VIEWS["gaussian"].log_likelihood(yg, mu, a, scale)
    np.testing.assert_allclose(ll.numpy(), scipy.stats.norm.logpdf(
        yg.numpy(), mu.numpy(), np.sqrt(scale / a.numpy())), rtol=1e-12)
    yp = torch.poisson(mu, generator=g)
    ll = GLM_VIEWS["poisson"].log_likelihood(yp, mu, torch.ones(30, dtype=torch.float64), 1.0)
    np.testing.assert_allclose(ll.numpy(), scipy.stats.poisson.logpmf(yp.numpy(), mu.numpy()),
                               rtol=1e-12)


def test_a_family_known_only_by_its_view_is_a_glm_response_with_its_canonical_link():
    """Gamma through the generic path (Family(view), CanonicalLink θ = −1/μ) against
    statsmodels' Gamma family (canonical link 1/μ: the same fit, coefficients negated)."""
    sm = pytest.importorskip("statsmodels.api")
    from genmodels.models.glm import GLM

    g = np.random.default_rng(5)
    X = np.column_stack([np.ones(400), g.uniform(0.5, 2.0, (400, 2))])
    mu = 1.0 / (X @ np.array([0.3, 0.4, 0.2]))
    y = g.gamma(3.0, mu / 3.0)
    fam = Family(GLM_VIEWS["gamma"])
    assert isinstance(fam.default_link(), CanonicalLink)
    ours = GLM(y, X, family=fam).fit(tol=1e-12)
    ref = sm.GLM(y, X, family=sm.families.Gamma()).fit(tol=1e-12)
    np.testing.assert_allclose(-np.asarray(ours.params), ref.params, rtol=1e-8)
    np.testing.assert_allclose(ours.deviance, ref.deviance, rtol=1e-9)
    np.testing.assert_allclose(ours.scale, ref.scale, rtol=1e-7)
    np.testing.assert_allclose(ours.llf, ref.llf, rtol=1e-8)
    with pytest.raises(ValueError, match="family must be a Family or one of"):
        get_family("von_mises")


# ------------------------------------------------------------ harmonium view and sampling
def test_conditional_natural_is_an_affine_map_into_the_domain():
    g = _gen(6)
    z = torch.randn(5, 3, generator=g, dtype=torch.float64)
    w = torch.randn(4, 3, generator=g, dtype=torch.float64)
    b = torch.randn(4, generator=g, dtype=torch.float64)
    torch.testing.assert_close(Bernoulli.conditional_natural(b, w, z), (z @ w.T + b)[..., None])
    torch.testing.assert_close(Categorical.conditional_natural(b, w, z), (z @ w.T + b)[:, None])
    eta = Gamma.conditional_natural(b, w, z)  # 2 units × (α − 1, −β)
    assert eta.shape == (5, 2, 2)
    Gamma.check_natural(eta)  # inside the domain: raises otherwise
    with pytest.raises(ValueError, match="Gamma η₂ = −β"):
        Gamma.check_natural(torch.tensor([[0.0, 1.0]]))


@pytest.mark.parametrize("name", [*SCALAR, "categorical"])
def test_sample_natural_is_reproducible_and_has_the_family_mean(name):
    fam = FAMILIES[name]
    eta = (_natural(name, (3,)) if name != "categorical"
           else torch.randn(3, 4, generator=_gen(0), dtype=torch.float64))
    many = eta.expand(20000, *eta.shape)
    x1 = fam.sample_natural(many, _gen(7))
    x2 = fam.sample_natural(many, _gen(7))
    torch.testing.assert_close(x1, x2)
    mean = fam.mean_value(eta)
    var = x1.double().var(0)
    se = (var / 20000).sqrt()
    assert bool(((x1.double().mean(0) - mean).abs() < 5 * se + 1e-12).all())


# ------------------------------------------------------------------------- Gaussian ML
def test_gaussian_ml_is_the_weighted_mean_and_biased_covariance():
    g = np.random.default_rng(8)
    x = g.normal(size=(40, 3)) + 1e4  # far from the origin: the two-pass form keeps precision
    w = g.uniform(0.1, 1.0, 40)
    mean, cov = gaussian_ml(torch.tensor(x))
    np.testing.assert_allclose(mean.numpy(), x.mean(0), rtol=1e-14)
    np.testing.assert_allclose(cov.numpy(), np.cov(x.T, bias=True), rtol=1e-9)
    mean, cov = gaussian_ml(torch.tensor(x), torch.tensor(w))
    np.testing.assert_allclose(mean.numpy(), np.average(x, 0, w), rtol=1e-14)
    np.testing.assert_allclose(cov.numpy(), np.cov(x.T, aweights=w, bias=True), rtol=1e-9)
    fit = FullNormal.fit(torch.tensor(x), torch.tensor(w))
    np.testing.assert_allclose(fit.covariance.numpy(), np.cov(x.T, aweights=w, bias=True),
                               rtol=1e-7)


def test_kl_tril_std_normal_is_kl_gaussian_against_the_standard_normal():
    g = _gen(9)
    a = torch.randn(4, 3, 3, generator=g, dtype=torch.float64)
    L = torch.linalg.cholesky(a @ a.mT + 0.3 * torch.eye(3, dtype=torch.float64))
    m = torch.randn(4, 3, generator=g, dtype=torch.float64)
    eye = torch.eye(3, dtype=torch.float64)
    torch.testing.assert_close(kl_tril_std_normal(m, L),
                               kl_gaussian(m, L @ L.mT, torch.zeros(3, dtype=torch.float64), eye))


# ------------------------------------------------------------------------ saved models
def test_models_saved_before_the_families_core_still_load():
    """Saved by the emissions as they were before issue 18 (tests/data/saved_pre18)."""
    g = _gen(0)
    p = torch.rand(3, 5, generator=g, dtype=torch.float32).double() * 0.8 + 0.1
    em = load(SAVED / "bernoulli_emission")
    assert isinstance(em, BernoulliEmission)
    y = (torch.rand(20, 5, generator=_gen(1)) < 0.5).double()
    ref = torch.distributions.Independent(torch.distributions.Bernoulli(probs=em.probs), 1)
    torch.testing.assert_close(em.log_likelihood(y), ref.log_prob(y[:, None]))
    assert em.probs.shape == p.shape
    cat = load(SAVED / "categorical_emission")
    assert isinstance(cat, CategoricalEmission)
    s = torch.arange(4)
    torch.testing.assert_close(cat.log_likelihood(s), cat.probs.log().T[s])
    mix = load(SAVED / "poisson_mixture")
    assert isinstance(mix.emission, PoissonEmission)
    c = torch.poisson(torch.full((10, 3), 2.0, dtype=torch.float64), generator=_gen(2))
    rates = mix.emission.rates
    brute = torch.logsumexp(torch.stack([
        mix.weights[k].log() + torch.distributions.Poisson(rates[k]).log_prob(c).sum(-1)
        for k in range(2)], -1), -1)
    torch.testing.assert_close(mix.log_marginal(c), brute)


# --------------------------------------------- the added family everywhere: Gamma emission
def test_gamma_emission_log_likelihood_matches_scipy_and_em_recovers_it(tmp_path):
    shape = torch.tensor([[2.0, 8.0], [6.0, 1.5]], dtype=torch.float64)
    rate = torch.tensor([[1.0, 2.0], [0.5, 3.0]], dtype=torch.float64)
    eta = torch.stack([shape - 1, -rate], -1).flatten(1)
    truth = FamilyEmission("gamma", 2, 2, eta)
    z = (torch.rand(3000, generator=_gen(10)) < 0.4).long()
    y = truth.sample(z, _gen(11))
    ll = truth.log_likelihood(y)
    ref = np.stack([scipy.stats.gamma.logpdf(y.numpy(), shape[k].numpy(),
                                             scale=1 / rate[k].numpy()).sum(-1)
                    for k in range(2)], -1)
    np.testing.assert_allclose(ll.numpy(), ref, rtol=1e-12)
    model = MixtureModel(torch.ones(2), FamilyEmission("gamma", 2, 2), init="random")
    res = fit_em(model, y, n_init=2, seed=0, max_iter=300, tol=1e-10)
    assert res.converged
    est = Gamma(model.emission.natural_per_coord)
    order = torch.argsort(est.concentration[:, 0])
    # within 6 standard errors of the truth (delta-method scale: α/√(n_k))
    n_k = torch.tensor([0.6, 0.4], dtype=torch.float64)[order] * 3000
    err = (est.concentration[order] - shape).abs() / (shape / n_k[:, None].sqrt())
    assert bool((err < 6).all()), (est.concentration[order], shape)
    path = save(model, tmp_path / "gm")
    back = load(path)
    torch.testing.assert_close(back.log_marginal(y), model.log_marginal(y))
    assert back.num_parameters() == 1 + 2 * 2 * 2
    with pytest.raises(ValueError, match="FamilyEmission data must be positive"):
        truth.log_likelihood(-y)
    with pytest.raises(ValueError, match="family must be a scalar family"):
        FamilyEmission("full_normal", 2, 2)


def test_gamma_hmm_through_the_generic_emission():
    from genmodels.models.hmm import HiddenMarkovModel, HMMData

    em = FamilyEmission("gamma", 2, 1, torch.tensor([[1.0, -1.0], [5.0, -0.5]],
                                                     dtype=torch.float64))
    hmm = HiddenMarkovModel(torch.tensor([0.5, 0.5], dtype=torch.float64),
                            torch.tensor([[0.9, 0.1], [0.2, 0.8]], dtype=torch.float64), em)
    y = torch.rand(6, 1, generator=_gen(12), dtype=torch.float64) * 5 + 0.1
    # brute force over all 2^6 paths
    import itertools

    logb = em.log_likelihood(y)
    paths = torch.tensor(list(itertools.product([0, 1], repeat=6)))
    lp = (hmm.initial_probs.log()[paths[:, 0]] + logb[0, paths[:, 0]]
          + sum(hmm.transition_matrix.log()[paths[:, t - 1], paths[:, t]] + logb[t, paths[:, t]]
                for t in range(1, 6)))
    data = HMMData(y[None], torch.tensor([6]))
    torch.testing.assert_close(hmm.log_marginal(data).reshape(()), torch.logsumexp(lp, 0))


def test_gamma_vae_likelihood_matches_scipy():
    from genmodels.models.vae import VAE, FamilyLikelihood

    lik = FamilyLikelihood("gamma")
    assert lik.channels == 2
    h = torch.randn(7, 3 * 2, generator=_gen(13), dtype=torch.float64)
    eta = lik.natural(h)
    alpha, beta = eta[..., 0] + 1, -eta[..., 1]
    sp = torch.nn.functional.softplus
    torch.testing.assert_close(alpha, sp(h[:, 0::2]))  # α = softplus h₁, β = softplus h₂
    torch.testing.assert_close(beta, sp(h[:, 1::2]))
    y = torch.rand(7, 3, generator=_gen(14), dtype=torch.float64) * 4 + 0.1
    ref = scipy.stats.gamma.logpdf(y.numpy(), alpha.numpy(), scale=1 / beta.numpy()).sum(-1)
    np.testing.assert_allclose(lik.log_prob(h, y).numpy(), ref, rtol=1e-12)
    torch.testing.assert_close(lik.mean(h), alpha / beta)
    with pytest.raises(ValueError, match="gamma emission needs data that must be positive"):
        lik.check(-y)
    vae = VAE(3, 2, likelihood="gamma", dtype="float64")
    out = vae.elbo(y, n_samples=4, generator=_gen(15))
    assert out.elbo.shape == (7,) and bool(torch.isfinite(out.elbo).all())
    assert vae.sample(5, generator=_gen(16)).shape == (5, 3)
