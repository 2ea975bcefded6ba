"""Variational Bayesian linear regression: the ELBO never decreases, the weights are
recovered, and with sharp priors on the precisions q(w) is the exact Gaussian posterior and
the ELBO the exact log evidence."""

from __future__ import annotations

import math

import pytest
import torch

from genmodels.inference.mean_field import bayesian_linear_regression


def _data(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, 4, generator=g)
    w = torch.tensor([1.0, -2.0, 0.5, 0.0])
    return X, X @ w + 0.3 * torch.randn(n, generator=g), w


def test_elbo_never_decreases_and_the_weights_are_recovered() -> None:
    X, y, w = _data(2000)
    fit = bayesian_linear_regression(X, y, tol=0.0, max_iter=30)
    h = fit.elbo_history
    assert bool((h[1:] - h[:-1] >= -1e-9 * h[1:].abs()).all())
    se = fit.covariance.diagonal().sqrt()
    assert bool(((fit.mean - w).abs() < 5 * se).all())
    assert float(fit.noise_shape / fit.noise_rate) == pytest.approx(1 / 0.09, rel=0.1)


def test_sharp_priors_give_the_exact_posterior_and_evidence() -> None:
    X, y, _ = _data(30, seed=1)
    alpha, tau, k = 2.0, 5.0, 1e9  # Gamma(kα, k) has mean α and vanishing spread
    fit = bayesian_linear_regression(X, y, alpha_prior=(k * alpha, k),
                                     noise_prior=(k * tau, k))
    S = torch.linalg.inv(tau * X.T @ X + alpha * torch.eye(4))
    torch.testing.assert_close(fit.covariance, S, rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(fit.mean, tau * S @ X.T @ y, rtol=1e-6, atol=1e-9)
    cov_y = X @ X.T / alpha + torch.eye(30) / tau
    log_ev = torch.distributions.MultivariateNormal(torch.zeros(30), cov_y).log_prob(y)
    assert float(fit.elbo_history[-1]) == pytest.approx(float(log_ev), abs=1e-3)


def test_bad_input() -> None:
    X, y, _ = _data(10)
    with pytest.raises(ValueError, match=r"expected X \(N, D\) and y \(N,\)"):
        bayesian_linear_regression(X, y[:5])
    with pytest.raises(ValueError, match="must be positive"):
        bayesian_linear_regression(X, y, alpha_prior=(0.0, 1.0))
    assert math.isfinite(float(bayesian_linear_regression(X, y).elbo_history[-1]))
