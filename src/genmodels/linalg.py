"""Stable numerical primitives shared by every model.

Every constant here is relative to the dtype in use, so the same code is right in float32 and
float64:

* ``eps(dtype)`` is the machine epsilon, ``torch.finfo(dtype).eps`` (2.2e-16 for float64,
  1.2e-7 for float32).
* Jitter added to a diagonal before a Cholesky factorisation starts at ``10 * eps`` times the
  mean of the diagonal (the scale scikit-learn uses for ``reg_covar``-free factorisations) and
  grows tenfold per failed attempt; a matrix that needs more than ``1e6 * eps`` relative jitter
  is not positive definite in any useful sense and raises.
"""

from __future__ import annotations

import math
import warnings

import torch
from torch import Tensor

from genmodels.exceptions import JitterWarning

#: log(2π), the Gaussian normaliser's constant (the book writes τ = 2π).
LOG_TAU = math.log(2.0 * math.pi)


def eps(dtype: torch.dtype) -> float:
    """Machine epsilon of a floating dtype."""
    return float(torch.finfo(dtype).eps)


def symmetrize(a: Tensor) -> Tensor:
    """``(A + Aᵀ) / 2`` over the last two dimensions: removes rounding asymmetry. a: (*, D, D)."""
    return 0.5 * (a + a.mT)


def add_diagonal(a: Tensor, value: Tensor | float) -> Tensor:
    """``A + value · I`` without writing into ``a``.

    a: (*, D, D); value: a scalar, (*,) per matrix, or (*, D) per diagonal entry.
    """
    d = a.shape[-1]
    v = torch.as_tensor(value, dtype=a.dtype, device=a.device)
    if v.dim() == 0 or v.shape[-1] != d or v.dim() < a.dim() - 1:
        v = v[..., None].expand(*a.shape[:-1])
    return a + torch.diag_embed(v)


def safe_cholesky(a: Tensor, *, max_relative_jitter: float = 1e6) -> Tensor:
    """Lower Cholesky factor of a symmetric positive (semi-)definite matrix, with jitter.

    Tries the plain factorisation first. Each matrix of the batch that fails gets, on its own
    diagonal only, ``10**k · 10 · eps · mean(diag A)`` for k = 0, 1, ... until it succeeds; the
    matrices that factorised untouched are returned exactly. A ``JitterWarning`` says how many
    matrices needed jitter and the largest relative jitter used. A matrix that still fails once
    the relative jitter exceeds ``max_relative_jitter · eps`` raises ``ValueError``.

    a: (*, D, D) → L: (*, D, D) with ``L Lᵀ ≈ A``.
    """
    a = symmetrize(a)
    L, info = torch.linalg.cholesky_ex(a)
    failed = info > 0  # (*,) which matrices need jitter
    if not bool(failed.any()):
        return L
    e = eps(a.dtype)
    batch = a.shape[:-2]
    flat_a = a.reshape(-1, *a.shape[-2:])
    flat_L = L.reshape(-1, *a.shape[-2:]).clone()
    todo = failed.reshape(-1).nonzero().squeeze(-1)  # indices still failing
    n_jittered = int(todo.numel())
    scale = flat_a.diagonal(dim1=-2, dim2=-1).abs().mean(-1).clamp_min(torch.finfo(a.dtype).tiny)
    rel = 10.0 * e
    while rel <= max_relative_jitter * e:
        Lk, infok = torch.linalg.cholesky_ex(add_diagonal(flat_a[todo], rel * scale[todo]))
        ok = infok == 0
        flat_L[todo[ok]] = Lk[ok]
        todo = todo[~ok]
        if todo.numel() == 0:
            warnings.warn(
                f"{n_jittered} of {max(flat_a.shape[0], 1)} matrices were not numerically "
                f"positive definite; added up to {rel:.3g}·mean(diag) to their diagonal "
                "(the others are untouched). Consider a larger regulariser (reg_covar, "
                "min_covar) or rescaling the data.",
                JitterWarning,
                stacklevel=2,
            )
            return flat_L.reshape(*batch, *a.shape[-2:])
        rel *= 10.0
    raise ValueError(
        f"{int(todo.numel())} matrix(es) not positive definite even after adding "
        f"{max_relative_jitter:g}·eps relative jitter to the diagonal; check that the covariance "
        "is well defined (enough samples, no constant or duplicated features) or increase the "
        "regularisation (reg_covar)."
    )


def psd_solve(a: Tensor, b: Tensor) -> Tensor:
    """Solve ``A X = B`` for symmetric positive definite ``A`` through its Cholesky factor.

    a: (*, D, D); b: (*, D, M) → X: (*, D, M). Never forms ``A⁻¹``.
    """
    return torch.cholesky_solve(b, safe_cholesky(a))


def psd_inverse(a: Tensor) -> Tensor:
    """Inverse of a symmetric positive definite matrix via Cholesky (for when the inverse itself
    is the quantity wanted, e.g. a precision matrix to report). a: (*, D, D)."""
    return symmetrize(torch.cholesky_inverse(safe_cholesky(a)))


def cholesky_logdet(L: Tensor) -> Tensor:
    """``log |L Lᵀ|`` from a lower Cholesky factor. L: (*, D, D) → (*,)."""
    return 2.0 * torch.log(L.diagonal(dim1=-2, dim2=-1)).sum(-1)


def mahalanobis_cholesky(L: Tensor, x: Tensor) -> Tensor:
    """Squared Mahalanobis norm ``xᵀ (L Lᵀ)⁻¹ x`` by one triangular solve.

    L: (*, D, D) lower; x: (*, N, D) → (*, N).
    """
    z = torch.linalg.solve_triangular(L, x.mT, upper=False)  # (*, D, N)
    return z.square().sum(-2)


def gaussian_log_density_cholesky(x: Tensor, mean: Tensor, L: Tensor) -> Tensor:
    """log N(x; mean, L Lᵀ) for a batch of points against a batch of Gaussians.

    x: (*, N, D); mean: (*, D); L: (*, D, D) → (*, N).
    """
    d = x.shape[-1]
    maha = mahalanobis_cholesky(L, x - mean[..., None, :])
    return -0.5 * (d * LOG_TAU + cholesky_logdet(L)[..., None] + maha)


def logmatmulexp(a: Tensor, b: Tensor) -> Tensor:
    """``log(exp(A) @ exp(B))`` computed stably.

    Shifts each row of ``a`` and each column of ``b`` by its maximum, multiplies in linear space
    and shifts back. Rows or columns that are entirely ``-inf`` (impossible states) are shifted by
    0 instead of ``-inf``, which avoids the ``-inf - (-inf) = nan`` trap and gives ``-inf`` out.

    a: (*, I, J); b: (*, J, K) → (*, I, K).
    """
    a_max = a.amax(-1, keepdim=True)
    b_max = b.amax(-2, keepdim=True)
    a_max = torch.where(torch.isfinite(a_max), a_max, torch.zeros_like(a_max))
    b_max = torch.where(torch.isfinite(b_max), b_max, torch.zeros_like(b_max))
    out = torch.log(torch.exp(a - a_max) @ torch.exp(b - b_max))
    return out + a_max + b_max


def log_normalize(log_p: Tensor, dim: int = -1) -> tuple[Tensor, Tensor]:
    """Normalise log-weights along ``dim``: returns ``(log_p - logsumexp, logsumexp)``.

    Eq. 2.7 (the softmax) in log space: the second output is the log-normaliser, e.g. the log
    marginal of a mixture (Eq. 2.10).
    """
    lse = torch.logsumexp(log_p, dim=dim, keepdim=True)
    safe = torch.where(torch.isfinite(lse), lse, torch.zeros_like(lse))
    return log_p - safe, lse.squeeze(dim)
