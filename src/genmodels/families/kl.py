"""Relative entropy between members of one exponential family, and the Gaussian closed forms.

For an exponential family the KL divergence is the Bregman divergence of the log-partition:

    KL(p_η₁ ‖ p_η₂) = E_η₁[log p_η₁ − log p_η₂] = A(η₂) − A(η₁) − (η₂ − η₁)ᵀ ∇A(η₁),

since log p_η₁(x) − log p_η₂(x) = (η₁ − η₂)ᵀ t(x) − A(η₁) + A(η₂) and E_η₁[t] = ∇A(η₁). It is
≥ 0 because A is convex (S0:33-45), zero only when η₁ = η₂ (up to directions A ignores), and
its Hessian in η₂ at η₂ = η₁ is ∇²A(η₁), the Fisher information (CATALOGUE J1).
"""

from __future__ import annotations

import torch
from torch import Tensor

from genmodels.families.base import ExponentialFamily
from genmodels.linalg import cholesky_logdet, safe_cholesky


def bregman_kl(family: type[ExponentialFamily], natural1: Tensor, natural2: Tensor) -> Tensor:
    """KL(p_η₁ ‖ p_η₂) = A(η₂) − A(η₁) − (η₂ − η₁)ᵀ∇A(η₁) on raw natural parameters.

    natural1, natural2: (*batch, P), broadcasting → (*batch,). Differentiable (used by the
    Fisher = Hessian-of-KL check)."""
    a1 = family.log_partition(natural1)
    a2 = family.log_partition(natural2)
    mu1 = family.mean_from_natural(natural1)
    return a2 - a1 - ((natural2 - natural1) * mu1).sum(-1)


def kl_divergence(p: ExponentialFamily, q: ExponentialFamily) -> Tensor:
    """KL(p ‖ q) for two members of the same family (batches broadcast). → (*batch,)."""
    if type(p) is not type(q):
        raise ValueError(f"KL between different families ({type(p).__name__}, "
                         f"{type(q).__name__}) is not an exponential-family Bregman divergence.")
    if p.num_natural != q.num_natural:
        raise ValueError(f"natural parameter sizes differ: {p.num_natural} vs {q.num_natural}.")
    return bregman_kl(type(p), p.natural, q.natural)


def kl_gaussian(mean1: Tensor, cov1: Tensor, mean2: Tensor, cov2: Tensor) -> Tensor:
    """KL(N(μ₁, Σ₁) ‖ N(μ₂, Σ₂)) in closed form (S2:522-548, CATALOGUE A6):

        ½ [log|Σ₂|/|Σ₁| − D + tr(Σ₂⁻¹Σ₁) + (μ₂ − μ₁)ᵀ Σ₂⁻¹ (μ₂ − μ₁)].

    Through Cholesky factors: with Σ₂ = L₂L₂ᵀ, tr(Σ₂⁻¹Σ₁) = ‖L₂⁻¹L₁‖²_F and the quadratic form
    is ‖L₂⁻¹(μ₂ − μ₁)‖². mean: (*, D); cov: (*, D, D) → (*,)."""
    L1, L2 = safe_cholesky(cov1), safe_cholesky(cov2)
    L1, L2 = torch.broadcast_tensors(L1, L2)
    d = mean1.shape[-1]
    m = torch.linalg.solve_triangular(L2, L1, upper=False)
    diff = (mean2 - mean1)[..., None]
    batch = torch.broadcast_shapes(diff.shape[:-2], L2.shape[:-2])
    z = torch.linalg.solve_triangular(L2.expand(*batch, d, d), diff.expand(*batch, d, 1),
                                      upper=False)
    return 0.5 * (cholesky_logdet(L2) - cholesky_logdet(L1) - d
                  + m.square().sum((-2, -1)) + z.square().sum((-2, -1)))


def kl_diagonal_gaussian(mean1: Tensor, var1: Tensor, mean2: Tensor, var2: Tensor) -> Tensor:
    """KL(N(μ₁, diag σ₁²) ‖ N(μ₂, diag σ₂²)) = Σ_k [log(σ₂/σ₁) + (σ₁² + (μ₁ − μ₂)²)/(2σ₂²) − ½]
    — the 1-D formula (S2:540) summed over coordinates (KL is additive over independent
    factors). All (*, D) → (*,)."""
    return (0.5 * (torch.log(var2) - torch.log(var1))
            + (var1 + (mean1 - mean2).square()) / (2 * var2) - 0.5).sum(-1)


def kl_diag_std_normal(mean: Tensor, log_var: Tensor) -> Tensor:
    """KL(N(μ, diag σ²) ‖ N(0, I)) = ½ Σ_k (σ_k² + μ_k² − 1 − log σ_k²), the VAE regulariser
    (B:2557-2565; S2:546 with the correction of CATALOGUE §4 S2-11, S2-12). (*, D) → (*,)."""
    return 0.5 * (torch.exp(log_var) + mean.square() - 1 - log_var).sum(-1)


def kl_tril_std_normal(mean: Tensor, scale_tril: Tensor) -> Tensor:
    """KL(N(μ, LLᵀ) ‖ N(0, I)) = ½(‖L‖²_F + ‖μ‖² − D) − Σ_k log L_kk (``kl_gaussian`` with
    Σ₂ = I: tr Σ₁ = ‖L‖²_F, log|Σ₁| = 2 Σ_k log L_kk), for a lower-triangular L with positive
    diagonal (the full-covariance VAE recognition). mean: (*, D); scale_tril: (*, D, D) → (*)."""
    d = mean.shape[-1]
    logdet_half = torch.diagonal(scale_tril, dim1=-2, dim2=-1).log().sum(-1)
    return 0.5 * (scale_tril.square().sum((-2, -1)) + mean.square().sum(-1) - d) - logdet_half
