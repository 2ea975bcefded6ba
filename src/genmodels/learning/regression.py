"""Linear regression, ridge (MAP), weighted least squares, Newton–Raphson and one-step
cross-validation (book §5.1.1, App. A.1; CATALOGUE E1–E4, E13).

The book writes samples as *columns* (inputs Y: M × N, outputs X: K × N) and the regression
``X ≈ D Y``; here, as in every regression library, samples are *rows*: design ``X`` (N, D),
targets ``y`` (N,) or (N, K), coefficients ``w`` (D,) or (D, K) with ``ŷ = X w``. So the book's
``D = ⟨XYᵀ⟩⟨YYᵀ⟩⁻¹`` (Eq. 5.2) is ``wᵀ`` here and ``w = (XᵀX)⁻¹Xᵀy``.

No explicit inverse is formed: least squares goes through a QR factorisation of X (accuracy
∝ cond(X)) or a Cholesky factorisation of XᵀX (faster, accuracy ∝ cond(X)²); ridge appends
√(αP) rows to X, which turns MAP estimation under a Gaussian prior (Eq. 5.6) into ordinary
least squares on an augmented design. The ridge penalty uses *sums*, ``(XᵀX + σ²Σ_d⁻¹)w =
Xᵀy`` (CATALOGUE errata E-12: with averages the prior term would have to be divided by N).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
from torch import Tensor

from genmodels.learning.irls import RANK_TOLERANCE, check_full_rank, equilibrated_cholesky

_METHODS = ("qr", "cholesky")


def _rank_error(bad: list[int]) -> ValueError:
    return ValueError(
        f"the design matrix is rank deficient: column(s) {bad} are (numerically) linear "
        "combinations of the columns before them (collinear or constant features, or fewer "
        "samples than features). Drop them or use ridge (alpha > 0)."
    )


def _augment(X: Tensor, alpha: float | Tensor, penalty_mask: Tensor | None) -> Tensor:
    """[X; √(αP)]: the ridge prior as D extra pseudo-observations with target 0 (Eq. 5.6)."""
    d = X.shape[1]
    a = torch.as_tensor(alpha, dtype=X.dtype, device=X.device)
    P = torch.ones(d, dtype=X.dtype, device=X.device) if penalty_mask is None else penalty_mask
    return torch.cat([X, torch.diag(torch.sqrt(a * P))], dim=0)


def _qr_r_check(R: Tensor) -> None:
    """Rank check from the QR factor: |R_jj| tiny relative to the column norm ‖X_j‖ = ‖R_:j‖."""
    col = R.norm(dim=0).clamp_min(torch.finfo(R.dtype).tiny)
    rel = (R.diagonal().abs() / col).square()
    bad = [int(j) for j in torch.nonzero(rel < RANK_TOLERANCE).flatten()]
    if bad:
        raise _rank_error(bad)


def least_squares(
    X: Tensor,
    y: Tensor,
    *,
    weights: Tensor | None = None,
    alpha: float | Tensor = 0.0,
    penalty_mask: Tensor | None = None,
    method: str = "qr",
) -> Tensor:
    """``argmin_w Σ_n v_n ‖y_n − wᵀx_n‖² + α Σ_j P_j ‖w_j‖²`` (Eqs 5.2, 5.6, 5.10 with diagonal Υ).

    X: (N, D); y: (N,) or (N, K); weights v: (N,) ≥ 0 (inverse noise variances, Υ = diag(1/v));
    alpha ≥ 0 with penalty_mask P: (D,) (0 = unpenalised, e.g. an intercept column).
    method: "qr" (Householder QR of [√v X; √(αP)]) or "cholesky" (of XᵀVX + αP, Jacobi
    equilibrated). Raises ``ValueError`` for a rank-deficient problem.
    → w: (D,) or (D, K).
    """
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}.")
    vec = y.dim() == 1
    Y = y[:, None] if vec else y
    if weights is not None:
        s = weights.sqrt()
        X, Y = X * s[:, None], Y * s[:, None]
    has_penalty = bool(torch.as_tensor(alpha).gt(0).any())
    if method == "qr":
        Z = _augment(X, alpha, penalty_mask) if has_penalty else X
        Yz = torch.cat([Y, Y.new_zeros(Z.shape[0] - Y.shape[0], Y.shape[1])]) if has_penalty else Y
        if Z.shape[0] < Z.shape[1]:
            raise _rank_error(list(range(Z.shape[0], Z.shape[1])))
        Q, R = torch.linalg.qr(Z, mode="reduced")
        _qr_r_check(R)
        w = torch.linalg.solve_triangular(R, Q.mT @ Yz, upper=True)
    else:
        G = X.mT @ X  # Eq. 5.2: Σ x xᵀ (sums, errata E-12)
        if has_penalty:
            P = torch.ones(X.shape[1], dtype=X.dtype) if penalty_mask is None else penalty_mask
            G = G + torch.diag(torch.as_tensor(alpha, dtype=X.dtype) * P)  # Eq. 5.6
        check_full_rank(G)
        L, s_ = equilibrated_cholesky(G)
        assert L is not None
        w = torch.cholesky_solve((X.mT @ Y) * s_[:, None], L) * s_[:, None]
    return w[:, 0] if vec else w


def ridge_regression(
    X: Tensor,
    y: Tensor,
    *,
    prior_precision: float | Tensor = 1.0,
    noise_variance: float = 1.0,
) -> Tensor:
    """MAP coefficients under ``w_k ~ N(0, Σ_d)`` and noise ``σ²I`` (Eqs 5.3–5.6):
    ``w = (XᵀX + σ² Σ_d⁻¹)⁻¹ Xᵀy`` with sums (errata E-12).

    prior_precision Σ_d⁻¹: a scalar (isotropic), a (D,) diagonal, or a (D, D) SPD matrix.
    For a scalar λ this is scikit-learn's ``Ridge(alpha=σ²λ, fit_intercept=False)``.
    """
    lam = torch.as_tensor(prior_precision, dtype=X.dtype, device=X.device)
    if lam.dim() <= 1:
        return least_squares(X, y, alpha=noise_variance * lam, method="qr")
    G = X.mT @ X + noise_variance * lam
    L, s = equilibrated_cholesky(G)
    if L is None:
        raise ValueError("XᵀX + σ²Σ_d⁻¹ is not positive definite: prior_precision must be SPD.")
    Y = y[:, None] if y.dim() == 1 else y
    w = torch.cholesky_solve((X.mT @ Y) * s[:, None], L) * s[:, None]
    return w[:, 0] if y.dim() == 1 else w


def weighted_least_squares(
    X: Tensor,
    y: Tensor,
    *,
    weights: Tensor | None = None,
    covariance: Tensor | None = None,
) -> Tensor:
    """Eq. 5.10, ``w = (XᵀΥ⁻¹X)⁻¹XᵀΥ⁻¹y``, for sample noise covariance Υ.

    Give ``weights`` v (N,) for a diagonal Υ = diag(1/v) (heteroscedastic samples), or the full
    ``covariance`` Υ (N, N) (correlated samples): the data are whitened by the Cholesky factor
    of Υ (L⁻¹X, L⁻¹y by triangular solves — "multiply by Υ^{-1/2}") and solved by QR.
    """
    if (weights is None) == (covariance is None):
        raise ValueError("give exactly one of weights (N,) or covariance (N, N).")
    if weights is not None:
        return least_squares(X, y, weights=weights, method="qr")
    assert covariance is not None
    L, info = torch.linalg.cholesky_ex(covariance)
    if int(info) > 0:
        raise ValueError("covariance Υ must be symmetric positive definite.")
    Xw = torch.linalg.solve_triangular(L, X, upper=False)
    Y = y[:, None] if y.dim() == 1 else y
    Yw = torch.linalg.solve_triangular(L, Y, upper=False)
    w = least_squares(Xw, Yw, method="qr")
    return w[:, 0] if y.dim() == 1 else w


# --------------------------------------------------------------------------------------------
# Newton–Raphson (Eq. 5.7)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewtonResult:
    """theta: (P,) the stationary point; n_iter steps; history: objective after each step."""

    theta: Tensor
    value: float
    n_iter: int
    converged: bool
    history: list[float] = field(default_factory=list)


def newton_raphson(
    fun: Callable[[Tensor], tuple[float, Tensor, Tensor]],
    theta0: Tensor,
    *,
    tol: float = 1e-10,
    max_iter: int = 100,
    max_halvings: int = 30,
) -> NewtonResult:
    """Minimise a convex f by ``θ⁽ⁱ⁺¹⁾ = θ⁽ⁱ⁾ − (∇²f)⁻¹∇f`` (Eq. 5.7), with step-halving.

    fun(θ) → (f(θ), ∇f(θ) (P,), ∇²f(θ) (P, P) positive definite). Stops when the Newton
    decrement ∇fᵀ(∇²f)⁻¹∇f / 2 ≤ tol (1 + |f|). On a quadratic it stops after one step.
    """
    theta = theta0.clone()
    f, g, H = fun(theta)
    history = [f]
    converged = False
    n_iter = 0
    while n_iter < max_iter:
        L, s = equilibrated_cholesky(H)
        if L is None:
            raise ValueError("the Hessian is not positive definite: Newton–Raphson needs a "
                             "convex objective (or add a ridge penalty).")
        step = -torch.cholesky_solve((g * s)[:, None], L)[:, 0] * s  # Eq. 5.7
        decrement = float(-(step @ g))
        n_iter += 1
        if 0.5 * decrement <= tol * (1.0 + abs(f)):
            converged = True
            theta = theta + step
            f, g, H = fun(theta)
            history.append(f)
            break
        t = 1.0
        for _ in range(max_halvings + 1):
            fn, gn, Hn = fun(theta + t * step)
            if math.isfinite(fn) and fn <= f + 1e-12 * (1.0 + abs(f)):
                break
            t *= 0.5
        theta = theta + t * step
        f, g, H = fn, gn, Hn
        history.append(f)
    return NewtonResult(theta=theta, value=f, n_iter=n_iter, converged=converged, history=history)


# --------------------------------------------------------------------------------------------
# One-step leave-one-out and K-fold cross-validation (App. A.1)
# --------------------------------------------------------------------------------------------


class CVResiduals(NamedTuple):
    """Cross-validated residuals of (ridge) linear regression, from ONE fit.

    residuals: (N,) or (N, K) e_CV = y − ŷ_CV (Eq. A.7 / A.8);
    predictions: ŷ_CV, each datum predicted by the fit without it (its fold);
    leverage: (N,) h_nn, the diagonal of the hat matrix (Eq. A.3), 0 ≤ h_nn ≤ 1.
    """

    residuals: Tensor
    predictions: Tensor
    leverage: Tensor


def _hat_factor(X: Tensor, alpha: float, penalty_mask: Tensor | None) -> tuple[Tensor, Tensor]:
    """Q₁ (N, D) with H = Q₁Q₁ᵀ = X(XᵀX + αP)⁻¹Xᵀ, and the fitted coefficients' R factor.

    H is Eq. A.3 (samples as rows: H = X(XᵀX)⁻¹Xᵀ); with a ridge penalty it is the hat matrix of
    the augmented least-squares problem restricted to the real rows.
    """
    n = X.shape[0]
    Z = _augment(X, alpha, penalty_mask) if alpha > 0 else X
    if Z.shape[0] < Z.shape[1]:
        raise _rank_error(list(range(Z.shape[0], Z.shape[1])))
    Q, R = torch.linalg.qr(Z, mode="reduced")
    _qr_r_check(R)
    return Q[:n], R


def hat_matrix(X: Tensor, *, alpha: float = 0.0, penalty_mask: Tensor | None = None) -> Tensor:
    """H = X(XᵀX + αP)⁻¹Xᵀ (Eq. A.3): ŷ = Hy (Eq. A.2). X: (N, D) → (N, N).

    For α = 0, H is symmetric and idempotent with trace D (the number of columns)."""
    Q1, _ = _hat_factor(X, alpha, penalty_mask)
    return Q1 @ Q1.mT


def loo_residuals(
    X: Tensor,
    y: Tensor,
    *,
    alpha: float = 0.0,
    penalty_mask: Tensor | None = None,
) -> CVResiduals:
    """Leave-one-out residuals e_LOO = M_d⁻¹ e (Eq. A.7) and predictions
    ŷ_LOO = M_d⁻¹(ŷ − H_d y) (Eq. A.6), with M_d = diag(1 − h_nn), from one QR factorisation.

    Exact also for ridge (alpha > 0): the Sherman–Morrison step of App. A.1 only needs the
    removed sample's rank-one term, not α = 0. X: (N, D) (include a ones column for an
    intercept); y: (N,) or (N, K).
    """
    Q1, _ = _hat_factor(X, alpha, penalty_mask)
    h = Q1.square().sum(1)  # h_nn, Eq. A.3 diagonal
    Y = y[:, None] if y.dim() == 1 else y
    yhat = Q1 @ (Q1.mT @ Y)  # Eq. A.2
    m = (1.0 - h)[:, None]  # m_nn, Eq. A.4
    if bool((m <= 1e3 * torch.finfo(X.dtype).eps).any()):
        i = int(torch.nonzero(m[:, 0] <= 1e3 * torch.finfo(X.dtype).eps)[0])
        raise ValueError(
            f"sample {i} has leverage h_nn = 1: without it the regression is rank deficient, "
            "so its leave-one-out prediction is undefined (use alpha > 0)."
        )
    e_loo = (Y - yhat) / m  # Eq. A.7
    pred = Y - e_loo  # = (ŷ − H_d y)/m, Eq. A.6
    if y.dim() == 1:
        return CVResiduals(e_loo[:, 0], pred[:, 0], h)
    return CVResiduals(e_loo, pred, h)


def kfold_residuals(
    X: Tensor,
    y: Tensor,
    folds: Sequence[Tensor] | Tensor,
    *,
    alpha: float = 0.0,
    penalty_mask: Tensor | None = None,
) -> CVResiduals:
    """Leave-one-fold-out residuals e_LOFO,k = (I − H_k)⁻¹ e_k for every fold (Eq. A.8:
    e_LOFO = M_bd⁻¹ e, one block per fold), from ONE fit.

    folds: a list of index tensors (disjoint, any sizes) or an (N,) tensor of fold labels.
    H_k = Q₁[k] Q₁[k]ᵀ is the fold's diagonal block of the hat matrix; each block system is
    solved by Cholesky (I − H_k is positive definite exactly when the model stays identifiable
    without the fold). Returns predictions ŷ_LOFO,k = (I − H_k)⁻¹(ŷ_k − H_k y_k).
    """
    n = X.shape[0]
    if isinstance(folds, Tensor) and folds.dim() == 1 and folds.shape[0] == n and \
            not folds.is_floating_point():
        labels = folds
        fold_list = [torch.nonzero(labels == v).flatten() for v in torch.unique(labels)]
    else:
        fold_list = [torch.as_tensor(f, dtype=torch.long) for f in folds]
    seen = torch.zeros(n, dtype=torch.long)
    for f in fold_list:
        seen[f] += 1
    if bool((seen > 1).any()):
        raise ValueError("folds must be disjoint: some samples appear in more than one fold.")
    Q1, _ = _hat_factor(X, alpha, penalty_mask)
    Y = y[:, None] if y.dim() == 1 else y
    yhat = Q1 @ (Q1.mT @ Y)
    e = Y - yhat
    e_cv = e.clone()
    h = Q1.square().sum(1)
    for k, idx in enumerate(fold_list):  # loop over folds (K), not data
        Qk = Q1[idx]
        Mk = torch.eye(len(idx), dtype=X.dtype, device=X.device) - Qk @ Qk.mT  # M_k = I − H_k
        L, info = torch.linalg.cholesky_ex(Mk)
        if int(info) > 0:
            raise ValueError(f"without fold {k} the regression is rank deficient, so its "
                             "held-out predictions are undefined (use alpha > 0 or other folds).")
        e_cv[idx] = torch.cholesky_solve(e[idx], L)  # Eq. A.8 block
    pred = Y - e_cv
    if y.dim() == 1:
        return CVResiduals(e_cv[:, 0], pred[:, 0], h)
    return CVResiduals(e_cv, pred, h)


__all__ = [
    "CVResiduals",
    "NewtonResult",
    "hat_matrix",
    "kfold_residuals",
    "least_squares",
    "loo_residuals",
    "newton_raphson",
    "ridge_regression",
    "weighted_least_squares",
]
