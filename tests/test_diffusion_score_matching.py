"""Tweedie's formula (Eq. 8.46), denoising score matching and Langevin dynamics (Eq. 8.44),
against the closed-form noisy marginal of a Gaussian mixture."""

from __future__ import annotations

import math

import pytest
import torch

from genmodels.inference.samplers import annealed_langevin, langevin, score_from_energy
from genmodels.learning.score_matching import (
    dsm_loss,
    energy_distance,
    energy_test,
    tweedie_mean,
    tweedie_score,
)

# a 2-D mixture of three full-covariance Gaussians
W = torch.tensor([0.5, 0.3, 0.2])
MU = torch.tensor([[-2.0, 0.0], [2.0, 1.0], [0.0, 3.0]])
A = torch.tensor([[[0.6, 0.2], [0.0, 0.4]], [[0.3, 0.0], [0.1, 0.5]], [[0.5, -0.2], [0.0, 0.3]]])
COV = A @ A.transpose(1, 2) + 0.05 * torch.eye(2)


def mixture(alpha: float = 1.0, noise: float = 0.0) -> torch.distributions.Distribution:
    """The law of y = αx + N(0, noise·I) for x from the mixture (closed form)."""
    comp = torch.distributions.MultivariateNormal(alpha * MU,
                                                  alpha**2 * COV + noise * torch.eye(2))
    return torch.distributions.MixtureSameFamily(torch.distributions.Categorical(W), comp)


def exact_score(y: torch.Tensor, alpha: float = 1.0, noise: float = 0.0) -> torch.Tensor:
    """∇ log p(y) = Σ_k r_k(y) S_k⁻¹(αμ_k − y), S_k = α²C_k + noise·I (closed form)."""
    S = alpha**2 * COV + noise * torch.eye(2)
    P = torch.linalg.inv(S)
    d = y[:, None, :] - alpha * MU  # (N, K, 2)
    Pd = torch.einsum("kij,nkj->nki", P, d)
    logr = W.log() - 0.5 * (d * Pd).sum(-1) - 0.5 * torch.logdet(S)
    return -(torch.softmax(logr, 1)[..., None] * Pd).sum(1)


def posterior_mean(y: torch.Tensor, alpha: float, noise: float) -> torch.Tensor:
    """E[x | y] for the mixture: Σ_k r_k(y) [μ_k + α C_k (α² C_k + noise I)⁻¹ (y − α μ_k)]."""
    S = alpha**2 * COV + noise * torch.eye(2)  # (K, 2, 2)
    comp = torch.distributions.MultivariateNormal(alpha * MU, S)
    logr = comp.log_prob(y[:, None, :]) + W.log()  # (N, K)
    r = torch.softmax(logr, 1)
    gain = alpha * COV @ torch.linalg.inv(S)  # (K, 2, 2)
    means = MU + torch.einsum("kij,nkj->nki", gain, y[:, None, :] - alpha * MU)
    return (r[..., None] * means).sum(1)


def test_tweedie_with_the_exact_posterior_mean_is_the_exact_score() -> None:
    g = torch.Generator().manual_seed(0)
    alpha, noise = 0.8, 0.3
    y = 3 * torch.randn(200, 2, generator=g)
    pm = posterior_mean(y, alpha, noise)
    torch.testing.assert_close(tweedie_score(pm, y, alpha, noise), exact_score(y, alpha, noise))
    # the closed-form score is the autograd force of the mixture's log-density
    auto = score_from_energy(lambda z: -mixture(alpha, noise).log_prob(z))(y)
    torch.testing.assert_close(exact_score(y, alpha, noise), auto)
    torch.testing.assert_close(tweedie_mean(exact_score(y, alpha, noise), y, alpha, noise), pm)
    # diagonal and full noise covariances reduce to the same for Σ = noise·I
    torch.testing.assert_close(tweedie_score(pm, y, alpha, torch.full((2,), noise)),
                               tweedie_score(pm, y, alpha, noise * torch.eye(2)))


def test_tweedie_in_one_dimension_matches_the_gaussian_score() -> None:
    """x ~ N(m, s²), y = αx + N(0, σ²): Tweedie with E[x|y] is the score of N(αm, α²s² + σ²)."""
    m, s2, alpha, sig2 = 1.2, 0.7, 0.6, 0.25
    y = torch.linspace(-3, 3, 11)[:, None]
    post = m + alpha * s2 / (alpha**2 * s2 + sig2) * (y - alpha * m)
    torch.testing.assert_close(tweedie_score(post, y, alpha, sig2),
                               -(y - alpha * m) / (alpha**2 * s2 + sig2))


def test_dsm_is_minimised_by_the_exact_noisy_score() -> None:
    """DSM(s) − DSM(s*) = E‖s − s*‖² (Vincent 2011), so the exact score is the minimiser."""
    g = torch.Generator().manual_seed(1)
    n, sigma = 100_000, 0.5
    x = _draw(n, g)
    eps = torch.randn(n, 2, generator=g)
    levels = torch.zeros(n, dtype=torch.long)

    def star(y, s):
        return exact_score(y, 1.0, sigma**2)

    base = dsm_loss(star, x, sigma, levels=levels, eps=eps, weight_power=0)
    for delta in (lambda y: 0.3 * torch.ones_like(y), lambda y: 0.2 * torch.tanh(y)):
        pert = dsm_loss(lambda y, s, d=delta: star(y, s) + d(y), x, sigma, levels=levels,
                        eps=eps, weight_power=0)
        diff = pert - base
        expected = 0.5 * (delta(x + sigma * eps) ** 2).sum(1)
        assert float(diff.mean()) > 0
        se = float((diff - expected).std()) / math.sqrt(n)
        assert abs(float((diff - expected).mean())) < 5 * se


def _draw(n: int, g: torch.Generator) -> torch.Tensor:
    k = torch.multinomial(W, n, replacement=True, generator=g)
    z = torch.randn(n, 2, generator=g)
    return MU[k] + torch.einsum("nij,nj->ni", torch.linalg.cholesky(COV)[k], z)


def test_dsm_least_squares_optimum_recovers_the_mixture_score() -> None:
    """DSM is a regression of −ε/σ on y; over a rich linear basis its optimum (least squares)
    is the exact score of the noisy mixture."""
    g = torch.Generator().manual_seed(2)
    n, sigma = 150_000, 0.6
    x = _draw(n, g)
    eps = torch.randn(n, 2, generator=g)
    y = x + sigma * eps
    centres = torch.stack(torch.meshgrid(torch.linspace(-4, 4, 9), torch.linspace(-2, 5, 8),
                                         indexing="ij"), -1).reshape(-1, 2)

    def features(z):
        return torch.exp(-((z[:, None, :] - centres) ** 2).sum(-1) / (2 * 1.0**2))

    coef = torch.linalg.lstsq(features(y), -eps / sigma).solution  # (F, 2)
    grid = _draw(2000, g) + sigma * torch.randn(2000, 2, generator=g)
    fitted, exact = features(grid) @ coef, exact_score(grid, 1.0, sigma**2)
    rel = ((fitted - exact) ** 2).sum(1).mean() / (exact**2).sum(1).mean()
    assert float(rel) < 0.02


def test_langevin_samples_a_known_mixture() -> None:
    """Eq. 8.44 with the exact score of a known mixture (the mixture above convolved with
    N(0, 0.5 I), so its modes overlap and chains mix): 2,000 chains pass a two-sample test
    against exact draws."""
    g = torch.Generator().manual_seed(3)
    x = 4 * torch.rand(2000, 2, generator=g) - 2
    out = langevin(lambda z: exact_score(z, 1.0, 0.5), x, 1e-2, 1500, generator=g)
    truth = _draw(2000, g) + 0.5**0.5 * torch.randn(2000, 2, generator=g)
    stat, p = energy_test(out[:1000], truth[:1000], n_permutations=100, generator=g)
    assert p > 0.01, (stat, p)
    torch.testing.assert_close(out.mean(0), truth.mean(0), atol=0.15, rtol=0)
    # and a wrong score (the unconvolved mixture's) is detected
    wrong = langevin(lambda z: exact_score(z), x, 1e-2, 1500, generator=g)
    assert energy_test(wrong[:1000], truth[:1000], n_permutations=100, generator=g)[1] < 0.01


def test_annealed_langevin_gets_the_weights_of_separated_modes() -> None:
    """Two far-apart modes, weights 0.8/0.2: annealing over noise levels recovers the weights
    (Song & Ermon 2019 §3), which plain Langevin from a uniform start does not."""
    w, mu = torch.tensor([0.8, 0.2]), torch.tensor([[-5.0], [5.0]])

    def score(z, sigma):
        d = torch.distributions.MixtureSameFamily(
            torch.distributions.Categorical(w),
            torch.distributions.Normal(mu[:, 0], (0.25 + sigma**2) ** 0.5))
        return score_from_energy(lambda y: -d.log_prob(y[:, 0]))(z)

    g = torch.Generator().manual_seed(4)
    n = 4000
    x0 = 16 * torch.rand(n, 1, generator=g) - 8
    sigmas = torch.logspace(math.log10(8), math.log10(0.05), 10)
    out = annealed_langevin(score, x0, sigmas, 2e-4, 100, generator=g)
    frac = float((out[:, 0] < 0).double().mean())
    assert abs(frac - 0.8) < 4 * math.sqrt(0.16 / n) + 0.02
    plain = langevin(lambda z: score(z, 0.0), x0, 2e-2, 1000, generator=g)
    assert abs(float((plain[:, 0] < 0).double().mean()) - 0.8) > 0.15


def test_energy_distance() -> None:
    g = torch.Generator().manual_seed(5)
    a, b = torch.randn(500, 2, generator=g), torch.randn(500, 2, generator=g)
    assert float(energy_distance(a, b)) < float(energy_distance(a, b + 1.0))
    stat, p = energy_test(a, b + 1.0, n_permutations=50, generator=g)
    assert stat == pytest.approx(float(energy_distance(a, b + 1.0))) and p < 0.05
    with pytest.raises(ValueError, match="must be"):
        energy_distance(a, b[:, :1])


def test_bad_noise_raises() -> None:
    x = torch.zeros(3, 2)
    with pytest.raises(ValueError, match="sigmas must hold positive"):
        dsm_loss(lambda y, s: y, x, [0.1, -1.0])
    with pytest.raises(ValueError, match="contains 1 non-finite"):
        dsm_loss(lambda y, s: y, torch.tensor([[0.0, float("nan")]]), 0.1)
    with pytest.raises(ValueError, match="positive definite"):
        tweedie_score(x, x, 1.0, -torch.eye(2))
    with pytest.raises(ValueError, match="strictly decrease"):
        annealed_langevin(lambda y, s: y, x, [0.1, 0.2], 1e-3, 1)
