"""D4 / G1: joint relative entropy identities on a discrete toy; local Gaussian recognition
fixed points (exact posterior for a linear-Gaussian model, stationarity otherwise)."""

from __future__ import annotations

import math

import torch
from torch.distributions import MultivariateNormal

from genmodels.inference.variational import (
    gaussian_entropy,
    gaussian_free_energy,
    gaussian_vi_local,
    jre_decomposition,
)


def _toy(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """x ∈ {1..3}, y ∈ {1..4}: arbitrary p(y), p̌(x|y), p̂(x, y) (CATALOGUE D4)."""
    g = torch.Generator().manual_seed(seed)
    p_y = torch.softmax(torch.randn(4, generator=g, dtype=torch.float64), 0)
    q = torch.softmax(torch.randn(4, 3, generator=g, dtype=torch.float64), 1)
    log_joint = torch.log_softmax(torch.randn(12, generator=g, dtype=torch.float64), 0)
    return p_y, q, log_joint.reshape(3, 4)


def test_jre_decompositions_hold_exactly():
    for seed in range(5):
        p_y, q, lj = _toy(seed)
        d = jre_decomposition(p_y, q, lj)
        torch.testing.assert_close(d.jre, d.marginal_re + d.posterior_re)  # Eq. 6.6
        torch.testing.assert_close(d.free_energy, d.jre + d.data_entropy)
        torch.testing.assert_close(d.jre, d.kl_to_prior + d.reconstruction - d.data_entropy)
        torch.testing.assert_close(
            d.jre, d.aggregate_kl + d.mutual_information + d.reconstruction - d.data_entropy)
        assert d.posterior_re > 0 and d.marginal_re > 0 and d.mutual_information > 0
        torch.testing.assert_close(d.elbo, (p_y * d.elbo_per_y).sum())
        # ELBO(y) ≤ log p̂(y), and log p̂(y) = ELBO(y) + KL(p̌(·|y) ‖ p̂(·|y))
        log_marg = torch.logsumexp(lj, 0)
        post = (lj - log_marg).exp().T  # (Y, X)
        kl = (q * (q.log() - post.log())).sum(1)
        assert torch.all(d.elbo_per_y < log_marg)
        torch.testing.assert_close(log_marg, d.elbo_per_y + kl)


def test_exact_posterior_closes_the_gap():
    p_y, _, lj = _toy(1)
    post = torch.softmax(lj, 0).T  # p̂(x | y), (Y, X)
    d = jre_decomposition(p_y, post, lj)
    torch.testing.assert_close(d.posterior_re, torch.zeros((), dtype=torch.float64))
    torch.testing.assert_close(d.jre, d.marginal_re)
    torch.testing.assert_close(d.elbo_per_y, torch.logsumexp(lj, 0))


def _linear_gaussian(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    D, K, lam = 5, 2, 4.0
    C = torch.randn(D, K, generator=g, dtype=torch.float64)
    y = torch.randn(6, D, generator=g, dtype=torch.float64) * 2

    def energy(x: torch.Tensor) -> torch.Tensor:  # −log p̂(x, y): N(0, I) prior, N(Cx, I/λ)
        r = y - x @ C.T
        return (0.5 * x.square().sum(-1) + 0.5 * K * math.log(2 * math.pi)
                + 0.5 * lam * r.square().sum(-1) - 0.5 * D * math.log(lam / (2 * math.pi)))

    return C, y, lam, energy


def test_local_gaussian_fixed_point_is_the_exact_posterior():
    """G1: for a linear-Gaussian model (energy quadratic in x) the fixed point of Eqs. 8.3–8.4
    is the exact posterior N(P⁻¹λCᵀy, P⁻¹), P = I + λCᵀC, and the free energy (Eq. 8.1) is
    −log p̂(y)."""
    C, y, lam, energy = _linear_gaussian()
    K = C.shape[1]
    fit = gaussian_vi_local(energy, torch.zeros(6, K, dtype=torch.float64), n_samples=8,
                            generator=torch.Generator().manual_seed(1))
    P = torch.eye(K, dtype=torch.float64) + lam * C.T @ C
    nu = torch.linalg.solve(P, lam * C.T @ y.T).T
    torch.testing.assert_close(fit.precision, P.expand(6, K, K))
    torch.testing.assert_close(fit.nu, nu)
    assert len(fit.free_energy) <= 3  # Newton on a quadratic: converged at once
    log_py = MultivariateNormal(torch.zeros(5, dtype=torch.float64),
                                C @ C.T + torch.eye(5, dtype=torch.float64) / lam).log_prob(y)
    fe = gaussian_free_energy(energy, fit.nu, fit.precision, n_samples=20000,
                              generator=torch.Generator().manual_seed(2))
    assert torch.all((fe + log_py).abs() < 0.02)  # MC error of E_q[E] ≈ √(K/2)/√20000


def test_free_energy_formula_equals_direct_monte_carlo():
    """Eq. 8.1 (energy + Gaussian entropy in closed form) equals E_q[log q − log p̂(x, y)]."""
    energy = _linear_gaussian(3)[3]
    g = torch.Generator().manual_seed(0)
    nu = torch.randn(6, 2, generator=g, dtype=torch.float64)
    A = torch.randn(6, 2, 2, generator=g, dtype=torch.float64)
    P = A @ A.mT + 0.5 * torch.eye(2, dtype=torch.float64)
    q = MultivariateNormal(nu, precision_matrix=P)
    torch.testing.assert_close(gaussian_entropy(P), q.entropy())
    x = q.sample((40000,))
    direct = (q.log_prob(x) + energy(x))
    fe = gaussian_free_energy(energy, nu, P, n_samples=40000,
                              generator=torch.Generator().manual_seed(5))
    se = direct.std(0) / math.sqrt(40000)
    assert torch.all((fe - direct.mean(0)).abs() < 6 * se * math.sqrt(2))


def test_local_gaussian_stationarity_for_a_non_quadratic_energy():
    """With a smooth sparse (log-cosh) prior the fixed point satisfies Eqs. 8.3–8.4 on its
    common random numbers, and its free energy is below that of the Laplace-at-zero start."""
    C, y, lam, _ = _linear_gaussian(2)

    def energy(x: torch.Tensor) -> torch.Tensor:
        r = y - x @ C.T
        return torch.log(torch.cosh(3 * x)).sum(-1) / 3 + 0.5 * lam * r.square().sum(-1)

    fit = gaussian_vi_local(energy, torch.zeros(6, 2, dtype=torch.float64), n_samples=32,
                            n_iter=200, generator=torch.Generator().manual_seed(4))
    from genmodels.inference.variational import _draw, _grad_hess, _moment_matched

    z = _moment_matched(32, 6, 2, torch.Generator().manual_seed(4), torch.float64,
                        torch.device("cpu"))
    x, _ = _draw(fit.nu, fit.precision, z)
    g, H = _grad_hess(energy, x)
    torch.testing.assert_close(g.mean(0), torch.zeros_like(fit.nu), atol=1e-7, rtol=0)
    torch.testing.assert_close(H.mean(0), fit.precision, atol=1e-6, rtol=1e-6)
    assert fit.free_energy[-1] < fit.free_energy[0]


def test_bad_input():
    import pytest

    _, _, _, energy = _linear_gaussian()
    with pytest.raises(ValueError, match="2K"):
        gaussian_vi_local(energy, torch.zeros(6, 2, dtype=torch.float64), n_samples=3)
    with pytest.raises(ValueError, match="expected p_y"):
        jre_decomposition(torch.ones(4) / 4, torch.ones(3, 3) / 3, torch.zeros(3, 4))
