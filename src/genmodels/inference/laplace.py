"""Laplace's method (book §2.1.3, Eqs. 2.30–2.32; CATALOGUE B8), batched over data.

For a model with a differentiable joint p̂(x, y), the posterior energy E_post(x) = −log p̂(x, y)
(up to a constant in x) is expanded to second order at its mode x̂⁰, where ∂E/∂x = 0 and the
Hessian H = ∂²E/∂x∂xᵀ ≻ 0 (Eq. 2.30). Then

    p̂(x | y) ≈ N(x̂⁰, H⁻¹)                                                        (Eq. 2.31)
    p̂(y)     ≈ p̂(x̂⁰, y) τ^{K/2} |H|^{−1/2},  τ = 2π                              (Eq. 2.32)

Exact when p̂(x, y) is jointly Gaussian in x; inappropriate for multimodal or discrete posteriors.

``laplace_approximation`` takes the negative log-joint as a function of x (the data closed
over), vectorised over a leading batch: ``neg_log_joint(x: (*batch, K)) -> (*batch,)``, each
datum's value depending on its own row only. The mode comes from a model-supplied solver (e.g.
the LASSO for the Laplace prior, ``genmodels.inference.lasso``) or from the damped Newton method
here; the Hessian from a model-supplied closed form or from autograd (K backward passes of the
batch-summed gradient — one per latent dimension, none per datum).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import Tensor

from genmodels._validation import (
    as_tensor,
    check_finite,
    check_nonnegative_float,
    check_positive_int,
)
from genmodels.linalg import LOG_TAU, cholesky_logdet, safe_cholesky

__all__ = [
    "LaplaceApproximation",
    "energy_gradient",
    "energy_hessian",
    "gaussian_log_marginal_from_mode",
    "laplace_approximation",
    "newton_mode",
]

NegLogJoint = Callable[[Tensor], Tensor]


class LaplaceApproximation(NamedTuple):
    """The Gaussian approximation of p̂(x | y) and the approximate log p̂(y), per datum."""

    mode: Tensor
    """x̂⁰: (*batch, K), the posterior mode (= the approximate posterior mean)"""
    precision: Tensor
    """H: (*batch, K, K), ∂²E_post/∂x∂xᵀ at the mode (the inverse covariance, Eq. 2.31)"""
    log_marginal: Tensor
    """(*batch,) log p̂(y) ≈ log p̂(x̂⁰, y) + (K/2) log τ − ½ log|H| (Eq. 2.32)"""
    precision_cholesky: Tensor
    """(*batch, K, K) lower Cholesky factor of H"""

    @property
    def covariance(self) -> Tensor:
        """H⁻¹: (*batch, K, K)."""
        return torch.cholesky_inverse(self.precision_cholesky)


def energy_gradient(neg_log_joint: NegLogJoint, x: Tensor) -> tuple[Tensor, Tensor]:
    """(E(x) (*batch,), ∂E/∂x (*batch, K)) by autograd; rows are independent, so the gradient of
    the batch sum is each datum's gradient."""
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        e = neg_log_joint(xg)
        (g,) = torch.autograd.grad(e.sum(), xg)
    return e.detach(), g


def energy_hessian(neg_log_joint: NegLogJoint, x: Tensor) -> Tensor:
    """∂²E/∂x∂xᵀ per datum by autograd: (*batch, K) → (*batch, K, K). One backward pass per
    latent dimension k of Σ_n ∂E_n/∂x_{nk} (rows independent), none per datum."""
    K = x.shape[-1]
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(neg_log_joint(xg).sum(), xg, create_graph=True)
        rows = []
        for k in range(K):
            (hk,) = torch.autograd.grad(g[..., k].sum(), xg, retain_graph=k < K - 1,
                                        allow_unused=True)
            rows.append(torch.zeros_like(x) if hk is None else hk)
    H = torch.stack(rows, -2)
    return 0.5 * (H + H.mT)


def _check_start(x0: Any) -> Tensor:
    """x0 (*batch, K), K >= 1, through the shared validation."""
    x = as_tensor(x0, name="x0")
    if x.dim() < 1 or x.shape[-1] == 0:
        raise ValueError(f"x0 must have shape (*batch, K) with K >= 1, got {tuple(x.shape)}.")
    return x


def newton_mode(neg_log_joint: NegLogJoint, x0: Tensor, *,
                hessian: Callable[[Tensor], Tensor] | None = None, tol: float = 1e-10,
                max_iter: int = 100) -> Tensor:
    """A local minimum of E per datum (the mode of exp(−E)) by Newton's method with backtracking.

    Where H (from ``hessian`` or autograd) is positive definite the step solves H d = −∇E. Where
    it is not, the step is the saddle-free Newton step d = −V|Λ|⁻¹Vᵀ∇E (Dauphin et al. 2014),
    plus, near a stationary point, a move along the most negative curvature direction, so the
    search leaves saddles instead of stopping there. The step is then halved per datum until E
    does not increase (at most 40 halvings). Stops when every datum has max|∇E| ≤ tol and a positive
    definite Hessian. x0: (*batch, K) → (*batch, K)."""
    max_iter = check_positive_int(max_iter, "max_iter")
    tol = check_nonnegative_float(tol, "tol")
    x = _check_start(x0).clone()
    hess = hessian if hessian is not None else (lambda z: energy_hessian(neg_log_joint, z))
    for _ in range(max_iter):
        e, g = energy_gradient(neg_log_joint, x)
        H = hess(x)
        L, info = torch.linalg.cholesky_ex(H)
        pd = info == 0
        small = g.abs().amax(-1) <= tol
        if bool((small & pd).all()):
            break
        d = torch.where(pd[..., None], -torch.cholesky_solve(g[..., None], L)[..., 0],
                        torch.zeros_like(g))
        if not bool(pd.all()):
            w, V = torch.linalg.eigh(H[~pd])
            scale = w.abs().clamp_min(1e-8 * float(w.abs().amax().clamp_min(1.0)))
            gb = g[~pd]
            sfn = -(V @ ((V.mT @ gb[..., None])[..., 0] / scale)[..., None])[..., 0]
            v = V[..., 0]  # the most negative curvature direction
            sgn = torch.where((gb * v).sum(-1) > 0, -1.0, 1.0).to(g.dtype)
            neg = sgn[..., None] * v / w[..., 0].abs().sqrt()[..., None]
            d[~pd] = sfn + neg
        step = torch.ones_like(e)
        accepted = small & pd
        x_new = x
        for _ in range(40):
            cand = x + step[..., None] * d
            e_new = neg_log_joint(cand).detach()
            good = (e_new <= e) & ~accepted
            x_new = torch.where(good[..., None], cand, x_new)
            accepted = accepted | good
            if bool(accepted.all()):
                break
            step = torch.where(accepted, step, 0.5 * step)
        x = x_new
    return x


def gaussian_log_marginal_from_mode(log_joint_at_mode: Tensor, precision_cholesky: Tensor
                                    ) -> Tensor:
    """Eq. 2.32 in logs: log p̂(x̂⁰, y) + (K/2) log τ − ½ log|H|, with H = L Lᵀ."""
    K = precision_cholesky.shape[-1]
    return log_joint_at_mode + 0.5 * K * LOG_TAU - 0.5 * cholesky_logdet(precision_cholesky)


def laplace_approximation(
    neg_log_joint: NegLogJoint,
    x0: Tensor,
    *,
    mode: Callable[[Tensor], Tensor] | Tensor | None = None,
    hessian: Callable[[Tensor], Tensor] | None = None,
    tol: float = 1e-10,
    max_iter: int = 100,
) -> LaplaceApproximation:
    """Laplace's method (Eqs. 2.30–2.32) for every datum of a batch.

    neg_log_joint: x (*batch, K) → −log p̂(x, y) (*batch,), the *normalised* joint (so that the
        log-marginal is right, not just up to a constant), one datum per row.
    x0: (*batch, K) where the mode search starts.
    mode: the mode itself (*batch, K), or a solver x0 → mode (e.g. the LASSO); default Newton's
        method (``newton_mode``) with the Hessian below.
    hessian: x (*batch, K) → ∂²E/∂x∂xᵀ (*batch, K, K), a closed form; default autograd.

    Returns a ``LaplaceApproximation``; raises ``ValueError`` where the Hessian at the mode is not
    positive definite (the expansion of Eq. 2.30 has no Gaussian there).
    """
    x0 = _check_start(x0)
    check_nonnegative_float(tol, "tol")
    check_positive_int(max_iter, "max_iter")
    if isinstance(mode, Tensor):
        xhat = mode.detach()
        if xhat.shape != x0.shape:
            raise ValueError(f"mode must have the shape of x0 {tuple(x0.shape)}, got "
                             f"{tuple(xhat.shape)}.")
    elif mode is not None:
        xhat = mode(x0).detach()
    else:
        xhat = newton_mode(neg_log_joint, x0, hessian=hessian, tol=tol, max_iter=max_iter)
    check_finite(xhat, "mode")
    H = hessian(xhat) if hessian is not None else energy_hessian(neg_log_joint, xhat)
    L, info = torch.linalg.cholesky_ex(H)
    if bool((info > 0).any()):
        bad = tuple(int(i) for i in torch.nonzero(info > 0)[0])
        try:  # rounding-level indefiniteness: jitter as everywhere else in the library
            L = safe_cholesky(H)
        except ValueError as err:
            raise ValueError(
                f"the Hessian of the energy at the mode is not positive definite (datum {bad}): "
                "Laplace's method needs a strict local minimum; check the mode solver or the "
                "prior's curvature."
            ) from err
    with torch.no_grad():
        log_joint = -neg_log_joint(xhat)
    return LaplaceApproximation(xhat, H, gaussian_log_marginal_from_mode(log_joint, L), L)
