"""Exponential families: ∇A and ∇²A against autograd, log_prob against torch.distributions,
moment identities by Monte Carlo, maximum likelihood, conversions and validation."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import torch

from genmodels.families import (
    Bernoulli,
    Categorical,
    DiagonalNormal,
    FullNormal,
    Gamma,
    Normal,
    Poisson,
)

BATCHES = [(), (3,), (2, 4)]
FAMILIES = ["Bernoulli", "Categorical", "Poisson", "Gamma", "Normal", "DiagonalNormal",
            "FullNormal"]


def member(name: str, batch: tuple[int, ...], seed: int = 0):
    g = torch.Generator().manual_seed(seed)

    def u(*shape, lo=0.0, hi=1.0):
        return lo + (hi - lo) * torch.rand((*batch, *shape), generator=g)

    if name == "Bernoulli":
        return Bernoulli.from_probs(u(lo=0.1, hi=0.9))
    if name == "Categorical":
        return Categorical(torch.randn((*batch, 4), generator=g))
    if name == "Poisson":
        return Poisson.from_rate(u(lo=0.3, hi=6.0))
    if name == "Gamma":
        return Gamma.from_shape_rate(u(lo=0.5, hi=5.0), u(lo=0.5, hi=3.0))
    if name == "Normal":
        return Normal.from_mean_var(u(lo=-2.0, hi=2.0), u(lo=0.3, hi=2.0))
    if name == "DiagonalNormal":
        return DiagonalNormal.from_mean_var(u(3, lo=-2.0, hi=2.0), u(3, lo=0.3, hi=2.0))
    a = torch.randn((*batch, 3, 3), generator=g)
    return FullNormal.from_mean_cov(u(3, lo=-1.0, hi=1.0),
                                    a @ a.mT + 0.5 * torch.eye(3))


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("name", FAMILIES)
def test_mean_and_fisher_equal_autograd_of_log_partition(name, batch):
    fam = member(name, batch)
    cls = type(fam)
    eta = fam.natural.reshape(-1, fam.num_natural)
    grad = torch.func.vmap(torch.func.grad(cls.log_partition))(eta)
    hess = torch.func.vmap(torch.func.hessian(cls.log_partition))(eta)
    torch.testing.assert_close(fam.mean_params.reshape(eta.shape), grad, rtol=1e-10, atol=1e-10)
    F = fam.fisher_information()
    assert F.shape == (*batch, fam.num_natural, fam.num_natural)
    torch.testing.assert_close(F.reshape(hess.shape), hess, rtol=1e-9, atol=1e-9)
    # ∇²A = Cov[t] is symmetric positive semi-definite
    torch.testing.assert_close(F, F.mT)
    assert bool((torch.linalg.eigvalsh(F) > -1e-10).all())


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("name", FAMILIES)
def test_log_prob_equals_torch_and_conversions_round_trip(name, batch):
    fam = member(name, batch)
    x = fam.sample((7,), generator=torch.Generator().manual_seed(1))
    ref = fam.to_torch()
    assert ref.batch_shape == torch.Size(batch)
    torch.testing.assert_close(fam.log_prob(x), ref.log_prob(x), rtol=1e-10, atol=1e-10)
    back = type(fam).from_torch(ref)
    torch.testing.assert_close(back.log_prob(x), fam.log_prob(x), rtol=1e-10, atol=1e-10)
    # mean ↔ natural
    again = type(fam).from_mean(fam.mean_params)
    torch.testing.assert_close(again.mean_params, fam.mean_params, rtol=1e-10, atol=1e-10)
    if name != "Categorical":  # categorical η is defined up to an additive constant
        torch.testing.assert_close(again.natural, fam.natural, rtol=1e-8, atol=1e-10)
    # log h + ηᵀt − A with A = log ∫ h e^{ηᵀt}: agrees with normalisation when enumerable
    if name in ("Bernoulli", "Categorical", "Poisson"):
        support = {"Bernoulli": torch.arange(2.0), "Categorical": torch.arange(4),
                   "Poisson": torch.arange(200.0)}[name]
        xs = support.reshape(-1, *([1] * len(batch)))
        total = torch.logsumexp(fam.log_prob(xs), 0)
        torch.testing.assert_close(total, torch.zeros(batch), atol=1e-10, rtol=0)


@pytest.mark.parametrize("name", FAMILIES)
def test_moments_by_monte_carlo_within_error_bars(name):
    """∇A(η) = E[t(X)] and ∇²A(η) = Cov[t(X)] (A4) against samples, 6 standard errors."""
    fam = member(name, ())
    n = 40000
    x = fam.sample((n,), generator=torch.Generator().manual_seed(2))
    t = (fam.stats(x) if name == "Categorical" else type(fam).sufficient_stats(x))
    se = t.std(0) / n**0.5
    assert bool(((t.mean(0) - fam.mean_params).abs() <= 6 * se + 1e-12).all())
    tc = t - t.mean(0)
    cov = tc.T @ tc / (n - 1)
    prod = tc[:, :, None] * tc[:, None, :]
    se_cov = prod.std(0) / n**0.5
    assert bool(((cov - fam.fisher_information()).abs() <= 6 * se_cov + 1e-12).all())


@pytest.mark.parametrize("name", FAMILIES)
def test_log_partition_is_convex(name):
    """A(λη₁ + (1−λ)η₂) ≤ λA(η₁) + (1−λ)A(η₂) (S0:33-45, with the §4 S0-2 correction)."""
    f1, f2 = member(name, (50,), seed=3), member(name, (50,), seed=4)
    cls = type(f1)
    lam = torch.rand(50, 1, generator=torch.Generator().manual_seed(5))
    mid = lam * f1.natural + (1 - lam) * f2.natural
    lhs = cls.log_partition(mid)
    rhs = lam[:, 0] * f1.log_normalizer() + (1 - lam[:, 0]) * f2.log_normalizer()
    assert bool((lhs <= rhs + 1e-10).all())


@pytest.mark.parametrize("name", FAMILIES)
def test_maximum_likelihood_recovers_parameters(name):
    fam = member(name, (2,))
    n = 20000
    x = fam.sample((n,), generator=torch.Generator().manual_seed(6))
    fit = type(fam).fit(x)
    t = fam.stats(x) if name == "Categorical" else type(fam).sufficient_stats(x)
    # moment matching is exact: fitted mean parameters = sample average of t (B:1487)
    torch.testing.assert_close(fit.mean_params, t.mean(0), rtol=1e-8, atol=1e-8)
    # and the truth is recovered within 6 standard errors of that average
    se = t.std(0) / n**0.5
    assert bool(((fit.mean_params - fam.mean_params).abs() <= 6 * se + 1e-12).all())
    # the gradient of the average NLL vanishes at the fit: −⟨t⟩ + ∇A(η̂) = 0
    eta = fit.natural.clone().requires_grad_(True)
    nll = (type(fam).log_partition(eta) - (t.mean(0) * eta).sum(-1)).sum()
    (g,) = torch.autograd.grad(nll, eta)
    assert float(g.abs().max()) < 1e-6


def test_weighted_fit_equals_repeated_data():
    x = torch.tensor([0.5, 1.5, 2.0, 4.0])
    w = torch.tensor([1.0, 2.0, 0.0, 3.0])
    rep = torch.tensor([0.5, 1.5, 1.5, 4.0, 4.0, 4.0])
    for cls in (Gamma, Normal):
        torch.testing.assert_close(cls.fit(x, w).natural, cls.fit(rep).natural)


def test_gamma_mle_equals_scipy():
    g = torch.Generator().manual_seed(7)
    x = Gamma.from_shape_rate(torch.tensor(2.5), torch.tensor(1.7)).sample((3000,), g)
    fit = Gamma.fit(x)
    a, _, scale = scipy.stats.gamma.fit(x.numpy(), floc=0)
    assert abs(float(fit.concentration) - a) < 1e-3 * a
    assert abs(float(fit.rate) - 1 / scale) < 1e-3 / scale
    # Newton solved the digamma equation to rounding: log α − ψ(α) = log x̄ − mean(log x)
    s = torch.log(x.mean()) - torch.log(x).mean()
    alpha = fit.concentration
    assert float((torch.log(alpha) - torch.digamma(alpha) - s).abs()) < 1e-12


def test_gaussian_density_estimation_closed_form():
    """D2: the MLE of N(μ, Σ) is the sample mean and the biased (1/N) sample covariance."""
    g = torch.Generator().manual_seed(8)
    y = torch.randn(500, 3, generator=g) @ torch.tensor([[1.0, 0, 0], [0.5, 1, 0], [0, 0.3, 2]])
    fit = FullNormal.fit(y)
    torch.testing.assert_close(fit.loc, y.mean(0))
    torch.testing.assert_close(fit.covariance, torch.from_numpy(np.cov(y.numpy().T, bias=True)))
    diag = DiagonalNormal.fit(y)
    torch.testing.assert_close(diag.variance, y.var(0, unbiased=False))


def test_sample_is_reproducible_and_leaves_global_rng_alone():
    fam = member("Gamma", (3,))
    state = torch.get_rng_state()
    a = fam.sample((5,), generator=torch.Generator().manual_seed(9))
    b = fam.sample((5,), generator=torch.Generator().manual_seed(9))
    torch.testing.assert_close(a, b)
    assert torch.equal(torch.get_rng_state(), state)


def test_fisher_of_flat_full_normal_is_singular_only_in_antisymmetric_directions():
    fam = member("FullNormal", ())
    F = fam.fisher_information()
    d = 3
    rank = int(torch.linalg.matrix_rank(F))
    assert rank == d + d * (d + 1) // 2
    anti = torch.zeros(d, d)
    anti[0, 1], anti[1, 0] = 1.0, -1.0
    v = torch.cat([torch.zeros(d), anti.flatten()])
    torch.testing.assert_close(F @ v, torch.zeros(d + d * d), atol=1e-12, rtol=0)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: Bernoulli.from_probs(torch.tensor([0.0, 0.5])),
         r"Bernoulli mean parameter p must lie in \(0, 1\)"),
        (lambda: Bernoulli.from_probs(torch.tensor([1.0])),
         r"Bernoulli mean parameter p must lie in \(0, 1\)"),
        (lambda: Bernoulli(torch.tensor([[float("nan")]])), r"natural contains 1 non-finite"),
        (lambda: Bernoulli(torch.zeros(2, 2)), r"Bernoulli natural parameters have P = 1"),
        (lambda: Categorical.from_probs(torch.tensor([0.5, 0.6])),
         r"Categorical probabilities must sum to 1"),
        (lambda: Categorical.from_probs(torch.tensor([1.0, 0.0])),
         r"Categorical probabilities must lie in \(0, 1\)"),
        (lambda: Poisson.from_rate(torch.tensor([-1.0])), r"Poisson rate must lie in \(0, inf\)"),
        (lambda: Poisson(torch.tensor([[float("inf")]])), r"natural contains 1 non-finite"),
        (lambda: Gamma.from_shape_rate(torch.tensor(0.0), torch.tensor(1.0)),
         r"Gamma η₁ = α − 1 must lie"),
        (lambda: Gamma.from_shape_rate(torch.tensor(1.0), torch.tensor(-1.0)),
         r"Gamma η₂ = −β must lie"),
        (lambda: Gamma(torch.tensor([1.0, 1.0])), r"Gamma η₂ = −β must lie"),
        (lambda: Gamma.fit(torch.full((10,), 2.0)),
         r"zero only for constant data"),  # constant data: no finite shape
        (lambda: Normal.from_mean_var(torch.tensor(0.0), torch.tensor(0.0)),
         r"Normal variance must lie in \(0, inf\)"),
        (lambda: Normal(torch.tensor([0.0, 1.0])), r"Normal η₂ = −1/\(2σ²\) must lie"),
        (lambda: DiagonalNormal(torch.zeros(3)), r"DiagonalNormal natural parameters have P = 2D"),
        (lambda: FullNormal.from_mean_cov(torch.zeros(2), torch.tensor([[1.0, 2.0], [2.0, 1.0]])),
         r"covariance must be symmetric positive definite"),
        (lambda: FullNormal(torch.zeros(5)), r"FullNormal natural parameters have P = D \+ D²"),
        (lambda: FullNormal.fit(torch.tensor([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0]])),
         r"covariance must be symmetric positive definite; .* collinear data"),  # rank one
        (lambda: Poisson.fit(torch.zeros(0)), r"at least one datum"),
        (lambda: Normal(torch.tensor(1.0)), r"natural must have shape"),
    ],
)
def test_bad_parameters_raise_value_error(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_log_prob_checks_event_dimension():
    with pytest.raises(ValueError, match="last dimension D = 3, got 2"):
        member("DiagonalNormal", ()).log_prob(torch.zeros(2))
    with pytest.raises(ValueError, match="last dimension D = 3, got 4"):
        member("FullNormal", ()).log_prob(torch.zeros(4))
    with pytest.raises(ValueError, match=r"integers in \[0, 4\), got values in \[7, 7\]"):
        member("Categorical", ()).log_prob(torch.tensor(7))
