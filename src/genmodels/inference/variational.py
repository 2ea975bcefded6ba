"""Recognition distributions and the joint relative entropy (book §6.3, §8.1; CATALOGUE D4, G1).

Two things live here, both about a recognition distribution p̌(x | y) standing in for the
posterior p̂(x | y; θ):

* **The joint relative entropy and its decompositions** on a discrete toy, every term computed
  from its own definition (``jre_decomposition``): JRE = MRE + PRE (Eq. 6.6); the free energy
  and the ELBO; the autoencoder form (Eq. 8.20, KL to the prior + reconstruction − data
  entropy) and the aggregated-posterior form (Eq. 8.21, KL of the aggregate to the prior +
  mutual information + reconstruction − data entropy).
* **Local Gaussian recognition** (§8.1, Eqs. 8.1–8.4): one N(ν_y, P_y⁻¹) per datum, fitted by the
  stationarity conditions E_q[∂E/∂x] = 0 (Eq. 8.3) and P_y = E_q[∂²E/∂x∂xᵀ] (Eq. 8.4), with E
  the joint energy −log p̂(x, y); and the free energy through the Gaussian entropy (Eq. 8.1).
  For an energy at most quadratic in x the fixed point is Laplace's method and the exact
  posterior.

Notation: N data, K latent dims, S Monte Carlo samples; X latent values, Y data values in the
discrete toy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

from genmodels._validation import check_positive_int
from genmodels.linalg import LOG_TAU, safe_cholesky

__all__ = [
    "JREDecomposition",
    "LocalGaussian",
    "gaussian_entropy",
    "gaussian_free_energy",
    "gaussian_vi_local",
    "jre_decomposition",
]


# ----------------------------------------------------------------------------------------------
# D4: the joint relative entropy on a discrete toy
# ----------------------------------------------------------------------------------------------


class JREDecomposition(NamedTuple):
    """Every term of the joint relative entropy for data p(y), recognition p̌(x | y) and model
    p̂(x, y) (all in nats, averaged over p(y); 0-d tensors).

    jre: D_KL{p̌(X|Y)p(Y) ‖ p̂(X, Y)} (Eq. 6.5).
    marginal_re: D_KL{p(Y) ‖ p̂(Y)} (MRE).  posterior_re: E_Y D_KL{p̌(X|Y) ‖ p̂(X|Y)} (PRE);
        jre = marginal_re + posterior_re (Eq. 6.6).
    free_energy: E[log p̌(X|Y) − log p̂(X, Y)] = jre + H_p[Y].  elbo: −free_energy.
    elbo_per_y: (Y,) the ELBO of each data value: log p̂(y) − D_KL{p̌(·|y) ‖ p̂(·|y)}.
    kl_to_prior: E_Y D_KL{p̌(X|Y) ‖ p̂(X)};  reconstruction: H_{(pp̌)p̂}[Y|X] =
        −E log p̂(Y|X); data_entropy: H_p[Y];  jre = kl_to_prior + reconstruction − data_entropy
        (Eq. 8.20).
    aggregate_kl: D_KL{p̌(X) ‖ p̂(X)} with p̌(x) = Σ_y p(y)p̌(x|y);  mutual_information:
        I(X̌; Y) under p(y)p̌(x|y);  jre = aggregate_kl + mutual_information + reconstruction −
        data_entropy (Eq. 8.21).
    """

    jre: Tensor
    marginal_re: Tensor
    posterior_re: Tensor
    free_energy: Tensor
    elbo: Tensor
    elbo_per_y: Tensor
    kl_to_prior: Tensor
    reconstruction: Tensor
    data_entropy: Tensor
    aggregate_kl: Tensor
    mutual_information: Tensor


def _xlogy_sum(p: Tensor, log_q: Tensor, dim: int | tuple[int, ...]) -> Tensor:
    """Σ p log q with the convention 0 log 0 = 0 (entries with p = 0 contribute nothing)."""
    return torch.where(p > 0, p * log_q, torch.zeros_like(p)).sum(dim)


def jre_decomposition(p_y: Tensor, recognition: Tensor, log_joint: Tensor) -> JREDecomposition:
    """All the terms of the joint relative entropy on a discrete toy, each from its definition.

    p_y: (Y,) data distribution p(y) (sums to 1).
    recognition: (Y, X) p̌(x | y), rows sum to 1.
    log_joint: (X, Y) log p̂(x, y) (normalised over both).
    """
    if p_y.dim() != 1 or recognition.shape != (p_y.shape[0], log_joint.shape[0]) \
            or log_joint.shape[1] != p_y.shape[0]:
        raise ValueError("expected p_y (Y,), recognition (Y, X) and log_joint (X, Y); got "
                         f"{tuple(p_y.shape)}, {tuple(recognition.shape)}, "
                         f"{tuple(log_joint.shape)}.")
    q = recognition
    log_q = q.log()
    log_p = p_y.log()
    lj = log_joint.T  # (Y, X)
    log_marg = torch.logsumexp(lj, 1)  # log p̂(y)
    log_post = lj - log_marg[:, None]  # log p̂(x | y)
    log_prior = torch.logsumexp(lj, 0)  # log p̂(x)
    log_lik = lj - log_prior[None, :]  # log p̂(y | x)
    joint_q = p_y[:, None] * q  # p(y) p̌(x|y)

    jre = _xlogy_sum(joint_q, log_q + log_p[:, None] - lj, (0, 1))  # Eq. 6.5
    mre = _xlogy_sum(p_y, log_p - log_marg, 0)
    pre = (p_y * _xlogy_sum(q, log_q - log_post, 1))
    data_entropy = -_xlogy_sum(p_y, log_p, 0)
    free_energy = _xlogy_sum(joint_q, log_q - lj, (0, 1))
    elbo_per_y = _xlogy_sum(q, lj - log_q, 1)
    kl_prior = _xlogy_sum(joint_q, log_q - log_prior[None, :], (0, 1))
    recon = -_xlogy_sum(joint_q, log_lik, (0, 1))
    aggregate = joint_q.sum(0)  # p̌(x)
    agg_kl = _xlogy_sum(aggregate, aggregate.log() - log_prior, 0)
    mi = _xlogy_sum(joint_q, log_q - aggregate.log()[None, :], (0, 1))
    return JREDecomposition(jre, mre, pre.sum(), free_energy, -free_energy, elbo_per_y,
                            kl_prior, recon, data_entropy, agg_kl, mi)


# ----------------------------------------------------------------------------------------------
# G1: local Gaussian recognition distributions
# ----------------------------------------------------------------------------------------------


class LocalGaussian(NamedTuple):
    """One Gaussian recognition distribution per datum, p̌(x | y_n) = N(nu[n], precision[n]⁻¹).

    nu: (N, K).  precision: (N, K, K) P_y.  free_energy: per iteration, the mean free energy
    (Eq. 8.1 without −H_p[Y]) estimated with the iteration's samples.
    """

    nu: Tensor
    precision: Tensor
    free_energy: list[float]


def gaussian_entropy(precision: Tensor) -> Tensor:
    """Entropy of N(ν, P⁻¹): ½(K log τ + K − log|P|) (§8.1, B:2281). (…, K, K) → (…)."""
    k = precision.shape[-1]
    L = safe_cholesky(precision)
    logdet = 2.0 * torch.diagonal(L, dim1=-2, dim2=-1).log().sum(-1)
    return 0.5 * (k * LOG_TAU + k - logdet)


def _draw(nu: Tensor, precision: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
    """x = ν + Lᵀ⁻¹ z with P = L Lᵀ, so Cov x = P⁻¹. z: (S, N, K) → x (S, N, K), L."""
    L = safe_cholesky(precision)
    w = torch.linalg.solve_triangular(L.mT, z.unsqueeze(-1), upper=True).squeeze(-1)
    return nu + w, L


def gaussian_free_energy(energy: Callable[[Tensor], Tensor], nu: Tensor, precision: Tensor,
                         n_samples: int = 100, generator: torch.Generator | None = None,
                         ) -> Tensor:
    """Eq. 8.1 per datum: E_q[E(X̌)] − H[p̌] = E_q[−log p̂(X̌, y)] + ½ log|P_y| − ½K(log τ + 1).

    energy: x (S, N, K) → (S, N), the joint energy −log p̂(x, y_n) of each datum.
    Returns (N,); averaged over the data it is the JRE up to the data entropy H_p[Y].
    """
    z = torch.randn((n_samples, *nu.shape), generator=generator, dtype=nu.dtype,
                    device=nu.device)
    x, _ = _draw(nu, precision, z)
    return energy(x).mean(0) - gaussian_entropy(precision)


def _grad_hess(energy: Callable[[Tensor], Tensor], x: Tensor) -> tuple[Tensor, Tensor]:
    """∂E/∂x (S, N, K) and ∂²E/∂x∂xᵀ (S, N, K, K) of a per-datum energy, by autograd."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        g = torch.autograd.grad(energy(x).sum(), x, create_graph=True)[0]
        rows = [torch.autograd.grad(g[..., k].sum(), x, retain_graph=True)[0]
                for k in range(x.shape[-1])]
    return g.detach(), torch.stack(rows, -2).detach()


def _moment_matched(n_samples: int, n: int, k: int, generator: torch.Generator | None,
                    dtype: torch.dtype, device: torch.device) -> Tensor:
    """Standard normal base draws (S, N, K) whose sample mean is exactly 0 (antithetic pairs)
    and whose sample covariance is exactly I per datum (whitened): the sample average of any
    quadratic function then equals its expectation."""
    half = (n_samples + 1) // 2
    z = torch.randn((half, n, k), generator=generator, dtype=dtype, device=device)
    z = torch.cat([z, -z], 0)  # (2·half, N, K), mean 0
    cov = torch.einsum("sni,snj->nij", z, z) / z.shape[0]
    L = safe_cholesky(cov)
    return torch.linalg.solve_triangular(L, z.permute(1, 2, 0), upper=False).permute(2, 0, 1)


def gaussian_vi_local(energy: Callable[[Tensor], Tensor], nu0: Tensor, *, n_samples: int = 64,
                      n_iter: int = 50, tol: float = 1e-10,
                      generator: torch.Generator | None = None) -> LocalGaussian:
    """Fit one Gaussian recognition distribution per datum by the fixed-point conditions
    (§8.1 "local parameters", Opper & Archambeau 2009):

        P_y ← E_q[∂²E/∂x∂xᵀ]                        (Eq. 8.4)
        ν_y ← ν_y − P_y⁻¹ E_q[∂E/∂x]                 (a Newton step toward Eq. 8.3)

    with the expectations over ``n_samples`` common random numbers: the same base draws every
    iteration (so the iteration converges to the fixed point of the sample-average conditions),
    moment-matched (antithetic and whitened: sample mean 0, sample covariance I, needs
    n_samples ≥ 2K), so that for an energy at most quadratic in x the sample averages are exact
    and one iteration gives Laplace's method and the exact posterior.

    energy: x (S, N, K) → (S, N), −log p̂(x, y_n) (constants optional). nu0: (N, K) start.
    """
    n_samples = check_positive_int(n_samples, "n_samples")
    n_iter = check_positive_int(n_iter, "n_iter")
    if nu0.dim() != 2:
        raise ValueError(f"nu0 must have shape (N, K), got {tuple(nu0.shape)}.")
    nu = nu0.detach().clone()
    n, k = nu.shape
    if n_samples < 2 * k:
        raise ValueError(f"n_samples must be at least 2K = {2 * k} for moment-matched draws, "
                         f"got {n_samples}.")
    precision = torch.eye(k, dtype=nu.dtype, device=nu.device).expand(n, k, k).clone()
    z = _moment_matched(n_samples, n, k, generator, nu.dtype, nu.device)
    history: list[float] = []
    for _ in range(n_iter):
        x, _ = _draw(nu, precision, z)
        g, H = _grad_hess(energy, x)
        precision = 0.5 * (H.mean(0) + H.mean(0).mT)  # Eq. 8.4
        x, _ = _draw(nu, precision, z)
        g, _ = _grad_hess(energy, x)
        step = torch.linalg.solve(precision, g.mean(0).unsqueeze(-1)).squeeze(-1)
        nu = nu - step  # toward Eq. 8.3: E_q[∂E/∂x] = 0
        with torch.no_grad():
            x, _ = _draw(nu, precision, z)
            history.append(float((energy(x).mean(0) - gaussian_entropy(precision)).mean()))
        if float(step.abs().max()) < tol:
            break
    return LocalGaussian(nu, precision, history)
