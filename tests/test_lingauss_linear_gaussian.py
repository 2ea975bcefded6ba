"""The jointly Gaussian model (B4, A1, A7, A8, D2) against dense joint Gaussians, scipy and
Monte Carlo."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal

from genmodels.models.linear_gaussian import (
    DiagonalCovariance,
    GaussianMoments,
    LinearGaussian,
    expected_quadratic,
    fit_gaussian,
    linear_gaussian_joint,
    linear_gaussian_log_marginal,
    linear_gaussian_posterior,
)


def random_spd(n: int, g: torch.Generator, batch: tuple[int, ...] = ()) -> torch.Tensor:
    A = torch.randn(*batch, n, n, generator=g)
    return A @ A.mT / n + 0.5 * torch.eye(n)


def random_model(k: int, d: int, seed: int = 0, batch: tuple[int, ...] = ()) -> LinearGaussian:
    g = torch.Generator().manual_seed(seed)
    return LinearGaussian(torch.randn(*batch, k, generator=g), random_spd(k, g, batch),
                          torch.randn(*batch, d, k, generator=g),
                          torch.randn(*batch, d, generator=g), random_spd(d, g, batch))


def condition_dense(mean: torch.Tensor, cov: torch.Tensor, k: int, y: torch.Tensor):
    """Condition the dense joint N([x; y]) on y with numpy's explicit inverse (the oracle)."""
    m, S = mean.numpy(), cov.numpy()
    Sxx, Sxy, Syy = S[:k, :k], S[:k, k:], S[k:, k:]
    Syy_inv = np.linalg.inv(Syy)
    post_mean = m[:k] + (y.numpy() - m[k:]) @ (Sxy @ Syy_inv).T
    post_cov = Sxx - Sxy @ Syy_inv @ Sxy.T
    return post_mean, post_cov


@pytest.mark.parametrize(("k", "d"), [(2, 5), (4, 3), (3, 3)])
@pytest.mark.parametrize("form", ["information", "covariance"])
def test_posterior_equals_conditioning_the_dense_joint(k, d, form):
    model = random_model(k, d, seed=k * 10 + d)
    y = torch.randn(7, d, generator=torch.Generator().manual_seed(1))
    post = model.posterior(y, form=form)
    joint = model.joint()
    mean, cov = condition_dense(joint.mean, joint.covariance, k, y)
    np.testing.assert_allclose(post.mean.numpy(), mean, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(post.covariance.numpy(), cov, rtol=1e-10, atol=1e-10)
    # the gain satisfies both Eq. 2.15 and Eq. 2.25
    S_yx = model.emission_covariance.numpy()
    gain_215 = cov @ model.emission_matrix.numpy().T @ np.linalg.inv(S_yx)
    np.testing.assert_allclose(post.gain.numpy(), gain_215, rtol=1e-9, atol=1e-10)


def test_information_and_covariance_forms_agree_and_identities_hold():
    model = random_model(3, 6, seed=3)
    y = torch.randn(4, 6, generator=torch.Generator().manual_seed(2))
    a, b = model.posterior(y, form="information"), model.posterior(y, form="covariance")
    torch.testing.assert_close(a.mean, b.mean, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(a.covariance, b.covariance, rtol=1e-10, atol=1e-10)
    # Σ_x − K C Σ_x = Σ_x − K Σ_y Kᵀ (Eq. 2.27)
    S_x, C = model.prior_covariance, model.emission_matrix
    S_y = model.marginal().covariance
    torch.testing.assert_close(S_x - a.gain @ C @ S_x, S_x - a.gain @ S_y @ a.gain.mT)
    # Σ_{x|y} ⪯ Σ_x
    assert float(torch.linalg.eigvalsh(S_x - a.covariance).min()) > -1e-12
    with pytest.raises(ValueError, match="form"):
        model.posterior(y, form="bogus")


def test_marginal_equals_the_dense_joint_marginal_and_scipy():
    model = random_model(3, 4, seed=5)
    joint = model.joint()
    marg = model.marginal()
    torch.testing.assert_close(marg.mean, joint.mean[3:])
    torch.testing.assert_close(marg.covariance, joint.covariance[3:, 3:])
    torch.testing.assert_close(model.cross_covariance(), joint.covariance[:3, 3:])
    y = torch.randn(6, 4, generator=torch.Generator().manual_seed(0))
    ref = multivariate_normal(marg.mean.numpy(), marg.covariance.numpy()).logpdf(y.numpy())
    for form in ("information", "covariance"):
        np.testing.assert_allclose(model.log_marginal(y, form=form).numpy(), ref, rtol=1e-10)


def test_bayes_inversion_recombines_to_the_joint():
    """log p(x, y) = log p(y) + log p(x | y) for arbitrary x (A1's invert-then-recombine)."""
    model = random_model(2, 3, seed=9)
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(5, 2, generator=g), torch.randn(5, 3, generator=g)
    post = model.posterior(y)
    log_post = torch.stack([
        torch.as_tensor(multivariate_normal(post.mean[i].numpy(),
                                            post.covariance.numpy()).logpdf(x[i].numpy()))
        for i in range(5)])
    torch.testing.assert_close(model.log_joint(x, y), model.log_marginal(y) + log_post)


def test_marginal_integrates_to_one_on_a_grid():
    # 1-D emission: D = 1, K = 2
    m1 = random_model(2, 1, seed=1)
    marg = m1.marginal()
    sd = float(marg.covariance[0, 0].sqrt())
    grid = torch.linspace(float(marg.mean[0]) - 10 * sd, float(marg.mean[0]) + 10 * sd, 4001)
    dens = m1.log_marginal(grid[:, None]).exp()
    assert abs(float(torch.trapezoid(dens, grid)) - 1.0) < 1e-6
    # 2-D emission: D = 2, K = 1 (the information form's Woodbury path)
    m2 = random_model(1, 2, seed=2)
    marg = m2.marginal()
    sds = marg.covariance.diagonal().sqrt()
    axes = [torch.linspace(float(marg.mean[i] - 9 * sds[i]), float(marg.mean[i] + 9 * sds[i]), 401)
            for i in range(2)]
    gx, gy = torch.meshgrid(*axes, indexing="ij")
    pts = torch.stack([gx.flatten(), gy.flatten()], -1)
    dens = m2.log_marginal(pts, form="information").exp().reshape(401, 401)
    total = torch.trapezoid(torch.trapezoid(dens, axes[1], dim=1), axes[0])
    assert abs(float(total) - 1.0) < 1e-5


@pytest.mark.parametrize("batch", [(), (5,), (2, 4)])
def test_batch_dimensions(batch):
    model = random_model(2, 3, seed=4, batch=batch)
    y = torch.randn(*batch, 6, 3, generator=torch.Generator().manual_seed(0))
    post = model.posterior(y)
    lm = model.log_marginal(y)
    assert post.mean.shape == (*batch, 6, 2) and post.covariance.shape == (*batch, 2, 2)
    assert lm.shape == (*batch, 6)
    if batch:
        idx = (0,) * len(batch)
        single = LinearGaussian(model.prior_mean[idx], model.prior_covariance[idx],
                                model.emission_matrix[idx], model.emission_offset[idx],
                                model.emission_covariance[idx])
        torch.testing.assert_close(single.posterior(y[idx]).mean, post.mean[idx])
        torch.testing.assert_close(single.log_marginal(y[idx]), lm[idx])
    else:  # a single datum (D,) for an unbatched model
        assert model.log_marginal(y[0]).shape == ()
        assert model.posterior(y[0]).mean.shape == (2,)


def test_sample_agrees_with_the_marginal():
    model = random_model(2, 3, seed=6)
    n = 40000
    _, y = model.sample(n, generator=torch.Generator().manual_seed(0))
    marg = model.marginal()
    sd = marg.covariance.diagonal().sqrt()
    # sample mean within 6 standard errors
    assert bool(((y.mean(0) - marg.mean).abs() < 6 * sd / math.sqrt(n)).all())
    # sample covariance within 6 standard errors of each entry (Var[y_i y_j] ≤ 3 σ_i² σ_j²)
    emp = torch.cov(y.T)
    tol = 6 * math.sqrt(3.0 / n) * torch.outer(sd, sd)
    assert bool(((emp - marg.covariance).abs() < tol).all())


def test_limits_of_the_noise():
    g = torch.Generator().manual_seed(0)
    k = 3
    C, c = torch.randn(k, k, generator=g) + 3 * torch.eye(k), torch.randn(k, generator=g)
    mu, S = torch.randn(k, generator=g), random_spd(k, g)
    y = torch.randn(2, k, generator=g)
    tiny = linear_gaussian_posterior(y, mu, S, C, c, 1e-10 * torch.eye(k))
    torch.testing.assert_close(tiny.mean, torch.linalg.solve(C, (y - c).mT).mT,
                               rtol=1e-6, atol=1e-6)
    huge = linear_gaussian_posterior(y, mu, S, C, c, DiagonalCovariance(1e12 * torch.ones(k)))
    torch.testing.assert_close(huge.mean, mu.expand(2, k), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(huge.covariance, S, rtol=1e-6, atol=1e-6)


def test_diagonal_noise_equals_dense_noise_and_singular_prior_in_covariance_form():
    g = torch.Generator().manual_seed(1)
    C, c, psi = torch.randn(5, 2, generator=g), torch.randn(5, generator=g), torch.rand(5) + 0.1
    y = torch.randn(3, 5, generator=g)
    mu, S = torch.zeros(2), torch.eye(2)
    a = linear_gaussian_log_marginal(y, mu, S, C, c, DiagonalCovariance(psi))
    b = linear_gaussian_log_marginal(y, mu, S, C, c, torch.diag(psi))
    torch.testing.assert_close(a, b)
    # a rank-deficient prior covariance works in the covariance form (Eq. 2.27)
    S_sing = torch.tensor([[1.0, 1.0], [1.0, 1.0]])
    post = linear_gaussian_posterior(y, mu, S_sing, C, c, torch.diag(psi), form="covariance")
    joint = linear_gaussian_joint(mu, S_sing, C, c, torch.diag(psi))
    mean, cov = condition_dense(joint.mean, joint.covariance, 2, y)
    np.testing.assert_allclose(post.mean.numpy(), mean, atol=1e-10)
    np.testing.assert_allclose(post.covariance.numpy(), cov, atol=1e-10)


def test_bad_input():
    with pytest.raises(ValueError, match="shapes"):
        LinearGaussian(torch.zeros(2), torch.eye(3), torch.zeros(4, 2), torch.zeros(4),
                       torch.eye(4))
    with pytest.raises(ValueError, match="NaN"):
        LinearGaussian(torch.zeros(2), torch.eye(2), torch.full((4, 2), float("nan")),
                       torch.zeros(4), torch.eye(4))
    model = random_model(2, 3)
    with pytest.raises(ValueError, match="features"):
        model.posterior(torch.zeros(4, 5))
    with pytest.raises(ValueError, match="positive definite"):
        linear_gaussian_log_marginal(torch.zeros(1, 2), torch.zeros(1), torch.eye(1),
                                     torch.zeros(2, 1), torch.zeros(2),
                                     torch.tensor([[1.0, 2.0], [2.0, 1.0]]), form="covariance")
    with pytest.raises(ValueError, match="positive"):
        DiagonalCovariance(torch.tensor([1.0, 0.0]))


def test_expected_quadratic_monte_carlo():
    g = torch.Generator().manual_seed(0)
    A, C = random_spd(3, g), torch.randn(3, 2, generator=g)
    b, mu, S = torch.randn(3, generator=g), torch.randn(2, generator=g), random_spd(2, g)
    exact = expected_quadratic(A, b, C, mu, S)
    n = 200000
    x = mu + torch.randn(n, 2, generator=g) @ torch.linalg.cholesky(S).mT
    r = b - x @ C.mT
    q = ((r @ A) * r).sum(-1)
    assert abs(float(q.mean() - exact)) < 6 * float(q.std()) / math.sqrt(n)
    # Σ = 0 reduces to the quadratic at the mean
    r0 = b - C @ mu
    torch.testing.assert_close(expected_quadratic(A, b, C, mu, torch.zeros(2, 2)), r0 @ A @ r0)


def test_fit_gaussian_and_moments():
    g = torch.Generator().manual_seed(0)
    y = torch.randn(50, 4, generator=g) @ torch.randn(4, 4, generator=g) + 3.0
    fit = fit_gaussian(y)
    np.testing.assert_allclose(fit.mean.numpy(), y.numpy().mean(0))
    np.testing.assert_allclose(fit.covariance.numpy(), np.cov(y.numpy().T, bias=True), atol=1e-12)
    halves = GaussianMoments.from_data(y[:20]) + GaussianMoments.from_data(y[20:])
    torch.testing.assert_close(fit_gaussian(halves).covariance, fit.covariance)
    # the average NLL has zero gradient at the solution
    mu = fit.mean.clone().requires_grad_(True)
    L = torch.linalg.cholesky(fit.covariance).clone().requires_grad_(True)
    nll = -torch.distributions.MultivariateNormal(mu, scale_tril=L).log_prob(y).mean()
    gm, gL = torch.autograd.grad(nll, (mu, L))
    assert float(gm.abs().max()) < 1e-10 and float(gL.tril().abs().max()) < 1e-10
