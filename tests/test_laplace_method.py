"""Laplace's method (B8, Eqs. 2.30–2.32): exact for a Gaussian prior (the factor analyser),
Stirling's formula as the posterior sharpens, and a non-Gaussian model against importance
sampling with its error bar."""

from __future__ import annotations

import math

import pytest
import torch

from genmodels.inference.laplace import (
    energy_hessian,
    laplace_approximation,
    newton_mode,
)
from genmodels.linalg import LOG_TAU
from genmodels.models.factor_analysis import FactorAnalyzer


def _factor_analyser(D: int, K: int, seed: int) -> FactorAnalyzer:
    g = torch.Generator().manual_seed(seed)
    fa = FactorAnalyzer(D, K)
    fa.loadings.copy_(torch.randn(D, K, generator=g))
    fa.mean.copy_(torch.randn(D, generator=g))
    fa.noise_variance.copy_(0.2 + torch.rand(D, generator=g))
    return fa


def _fa_neg_log_joint(fa: FactorAnalyzer, Y: torch.Tensor):  # type: ignore[no-untyped-def]
    C, c, psi = fa.loadings, fa.mean, fa.noise_variance
    D, K = C.shape

    def f(x: torch.Tensor) -> torch.Tensor:  # −log N(x; 0, I) − log N(y; Cx + c, Ψ)
        r = Y - x @ C.T - c
        return (0.5 * x.square().sum(-1) + 0.5 * K * LOG_TAU
                + 0.5 * (r.square() / psi).sum(-1) + 0.5 * psi.log().sum() + 0.5 * D * LOG_TAU)

    return f


@pytest.mark.parametrize("hessian", ["autograd", "closed"])
def test_exact_for_the_factor_analyser(hessian: str) -> None:
    fa = _factor_analyser(6, 3, seed=0)
    g = torch.Generator().manual_seed(1)
    Y = torch.randn(40, 6, generator=g) * 2
    f = _fa_neg_log_joint(fa, Y)
    C, psi = fa.loadings, fa.noise_variance
    H_closed = C.T @ (C / psi[:, None]) + torch.eye(3)
    hess = None if hessian == "autograd" else (lambda x: H_closed.expand(x.shape[0], 3, 3))
    lap = laplace_approximation(f, torch.zeros(40, 3), hessian=hess)
    post = fa.posterior(Y)
    assert torch.allclose(lap.mode, post.mean, atol=1e-10)
    assert torch.allclose(lap.covariance, post.covariance.expand(40, 3, 3), atol=1e-12)
    assert torch.allclose(lap.log_marginal, fa.log_marginal(Y), atol=1e-10)


def test_given_mode_and_batch_shapes() -> None:
    fa = _factor_analyser(5, 2, seed=2)
    Y = torch.randn(2, 3, 5, generator=torch.Generator().manual_seed(3))
    f = _fa_neg_log_joint(fa, Y)
    lap = laplace_approximation(f, torch.zeros(2, 3, 2))
    assert lap.mode.shape == (2, 3, 2) and lap.precision.shape == (2, 3, 2, 2)
    assert lap.log_marginal.shape == (2, 3)
    again = laplace_approximation(f, torch.zeros(2, 3, 2), mode=lap.mode)
    assert torch.allclose(again.log_marginal, lap.log_marginal)
    assert torch.allclose(again.log_marginal, fa.log_marginal(Y.reshape(6, 5)).reshape(2, 3))


def test_stirling_as_the_posterior_sharpens() -> None:
    """∫₀^∞ xⁿ e^{−x} dx = n!: Laplace's method at the mode x = n gives Stirling's formula, whose
    relative error ≈ 1/(12n) shrinks as the integrand sharpens."""
    n = torch.tensor([[5.0], [20.0], [80.0], [320.0]])

    def f(x: torch.Tensor) -> torch.Tensor:  # (4, 1): E(x) = x − n log x
        return (x - n * x.log()).sum(-1)

    lap = laplace_approximation(f, torch.ones(4, 1) * 2.0)
    exact = torch.lgamma(n[:, 0] + 1)
    err = exact - lap.log_marginal
    assert torch.allclose(lap.mode, n, atol=1e-8)
    assert torch.allclose(err, torch.log1p(1 / (12 * n[:, 0])), rtol=0.02)  # log(1 + 1/12n)
    assert bool((err[1:] < err[:-1]).all())


def test_against_importance_sampling_on_a_cauchy_model() -> None:
    """A K = 2, M = 2 model with Cauchy sources (non-Gaussian posterior): Laplace's log-marginal
    against an importance-sampled estimate (Student-t proposal at the Laplace Gaussian, 4·10⁵
    draws) with its standard error; the gap is a few percent of the posterior's scale and far
    above the error bar, i.e. the approximation error is measured, not noise."""
    g = torch.Generator().manual_seed(4)
    C = torch.tensor([[1.0, 0.6], [0.2, 1.0]])
    lam, beta = 4.0, 0.5
    y = torch.tensor([[1.5, -0.7]])

    def neg_log_joint(x: torch.Tensor) -> torch.Tensor:
        prior = (torch.log(beta**2 + x.square()) - math.log(beta / math.pi)).sum(-1)
        r = y - x @ C.T
        return prior + 0.5 * lam * r.square().sum(-1) - math.log(lam / (2 * math.pi))

    lap = laplace_approximation(neg_log_joint, torch.zeros(1, 2))
    # importance sampling with a multivariate t(ν=3) at the Laplace mode and covariance
    nu, S = 3.0, 400_000
    Lcov = torch.linalg.cholesky(lap.covariance[0])
    z = torch.randn(S, 2, generator=g)
    chi = torch.randn(S, 3, generator=g).square().sum(-1)  # χ²(ν = 3)
    xs = lap.mode[0] + (z @ Lcov.T) * torch.sqrt(nu / chi)[:, None]
    dev = torch.linalg.solve_triangular(Lcov, (xs - lap.mode[0]).T, upper=False).T
    log_q = (torch.lgamma(torch.tensor((nu + 2) / 2)) - torch.lgamma(torch.tensor(nu / 2))
             - math.log(nu * math.pi) - torch.log(Lcov.diagonal()).sum()
             - (nu + 2) / 2 * torch.log1p(dev.square().sum(-1) / nu))
    log_w = -neg_log_joint(xs) - log_q
    m = log_w.max()
    wts = torch.exp(log_w - m)
    est = m + wts.mean().log()
    se = wts.std() / (math.sqrt(S) * wts.mean())  # delta method: sd of log of the mean
    gap = float(lap.log_marginal[0] - est)
    assert float(se) < 0.005
    assert 3 * float(se) < abs(gap) < 0.3  # a real but modest error of the approximation


def test_newton_mode_finds_the_minimum_of_a_non_quadratic_energy() -> None:
    def f(x: torch.Tensor) -> torch.Tensor:
        return (torch.cosh(x - 1.0) + 0.5 * x.square()).sum(-1)

    x = newton_mode(f, torch.zeros(7, 3) - 4.0)
    g = torch.sinh(x - 1.0) + x
    assert float(g.abs().max()) < 1e-10
    H = energy_hessian(f, x)
    assert torch.allclose(H, torch.diag_embed(torch.cosh(x - 1.0) + 1.0))


def test_bad_input() -> None:
    def f(x: torch.Tensor) -> torch.Tensor:  # concave: no minimum
        return -x.square().sum(-1)

    with pytest.raises(ValueError, match="not positive definite"):
        laplace_approximation(f, torch.zeros(2, 2), mode=torch.zeros(2, 2))
    with pytest.raises(ValueError, match=r"x0 contains 1 non-finite"):
        laplace_approximation(f, torch.tensor([[0.0, float("nan")]]))
    with pytest.raises(ValueError, match="mode must have the shape of x0"):
        laplace_approximation(f, torch.zeros(2, 2), mode=torch.zeros(3, 2))
