"""Losses as negative log-likelihoods, penalties as negative log-priors (CATALOGUE E14, D1).

``argmax_θ p_θ(Y) = argmin_θ −log p_θ(Y)`` (S2:23-31): every loss here returns −log p, summed
over data, so that minimising it is maximum likelihood:

* Bernoulli with p = σ(logit) ⇔ the logistic / binary cross-entropy loss (S2:35-43);
* categorical with p = softmax(logits) ⇔ the softmax cross-entropy loss (S2:45-53);
* Gaussian N(ŷ, σ²) ⇔ the sum of squares (S2:55-60): ``C = Σ(ŷ − y)²`` is −log p up to a
  constant only when σ² = ½; in general −log p = C/(2σ²) + (N/2) log(τσ²).

Squared error on softmax outputs is *not* a likelihood of the labels and its gradient
``(p − y)ᵀ(diag p − ppᵀ)`` vanishes when a prediction is confidently wrong (p → a wrong
one-hot), whereas the cross-entropy gradient ``p − y`` stays large (the open question of
S2:62-68).

Penalties (B §4.1): an L2 penalty ½λ‖θ‖² is −log N(θ; 0, λ⁻¹I) up to a constant (ridge, Eq. 5.4),
an L1 penalty λ‖θ‖₁ is −log Laplace(θ; 0, 1/λ) up to a constant.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from genmodels.linalg import LOG_TAU


def bce_with_logits(logits: Tensor, y: Tensor) -> Tensor:
    """−Σ_n [y_n log σ(a_n) + (1 − y_n) log(1 − σ(a_n))], stably. logits, y: (N,) → 0-d."""
    return F.binary_cross_entropy_with_logits(logits, y, reduction="sum")


def softmax_cross_entropy(logits: Tensor, y: Tensor) -> Tensor:
    """−Σ_n Σ_k y_nk log softmax(a_n)_k. logits: (N, K); y: (N,) labels or (N, K) one-hot."""
    logp = torch.log_softmax(logits, dim=-1)
    if y.dim() == logits.dim() - 1:
        return -logp.gather(-1, y.long()[..., None]).sum()
    return -(y * logp).sum()


def gaussian_nll(pred: Tensor, y: Tensor, sigma: float = math.sqrt(0.5)) -> Tensor:
    """−Σ log N(y; ŷ, σ²) = Σ(ŷ − y)²/(2σ²) + (N/2) log(τσ²). The default σ² = ½ makes it the
    plain sum of squares plus a constant (S2:55-60)."""
    n = y.numel()
    return (pred - y).square().sum() / (2.0 * sigma**2) + 0.5 * n * (LOG_TAU + math.log(sigma**2))


def l2_penalty(theta: Tensor, lam: float) -> Tensor:
    """½ λ ‖θ‖² — the Gaussian-prior energy of Eq. 5.4 with Σ_d = λ⁻¹I."""
    return 0.5 * lam * theta.square().sum()


def l1_penalty(theta: Tensor, lam: float) -> Tensor:
    """λ ‖θ‖₁ — the Laplace-prior energy."""
    return lam * theta.abs().sum()


def gaussian_log_prior(theta: Tensor, lam: float) -> Tensor:
    """log N(θ; 0, λ⁻¹I) = −l2_penalty(θ, λ) + (P/2) log(λ/τ)."""
    p = theta.numel()
    return -l2_penalty(theta, lam) + 0.5 * p * (math.log(lam) - LOG_TAU)


def laplace_log_prior(theta: Tensor, lam: float) -> Tensor:
    """log Π_j (λ/2) exp(−λ|θ_j|) = −l1_penalty(θ, λ) + P log(λ/2)."""
    return -l1_penalty(theta, lam) + theta.numel() * math.log(lam / 2.0)


__all__ = [
    "bce_with_logits",
    "gaussian_log_prior",
    "gaussian_nll",
    "l1_penalty",
    "l2_penalty",
    "laplace_log_prior",
    "softmax_cross_entropy",
]
