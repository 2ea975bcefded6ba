"""MAP codes of the Laplace-prior sparse-coding model: the LASSO / basis-pursuit denoising
(book Eq. 8.10; CATALOGUE G2), batched over data.

For the model of Eqs. 2.28–2.29 with Laplace energies E_k(x_k) = α_k |x_k| and emission
N(Cx, λ⁻¹I), the mode of the posterior of each datum y is

    x̂⁰(y) = argmin_x  E_joint(x, y) = ½ λ ‖y − C x‖² + Σ_k α_k |x_k|              (Eq. 8.10)

whose optimality (KKT) conditions are, with the residual correlation g = λ Cᵀ(y − C x̂⁰),

    |g_k| ≤ α_k  where x̂⁰_k = 0,        g_k = α_k sign(x̂⁰_k)  where x̂⁰_k ≠ 0.

Two solvers:

* ``method="cd"``: an active-set method on the support and signs (atoms join one at a time, each
  face's minimiser solved exactly by a Cholesky factor grown a row per join: the feature-sign
  search of Lee et al. 2007), finished where needed by coordinate descent with covariance
  (Gram) updates — cyclic sweeps with active sets and a Newton step on the support — compiled
  with Numba (``_lasso_numba``), the rows split over threads; it reaches the KKT conditions to
  rounding error. The default.
* ``method="lars"``: the LARS–lasso homotopy (Efron et al. 2004) from x = 0 down to α, for
  one common α, compiled likewise; a datum whose path ends off the KKT conditions (rounding, a
  dependent active set) is finished by coordinate descent.
* ``method="fista"``: the accelerated proximal gradient (Beck & Teboulle 2009), vectorised over
  the batch in torch (so it runs on a GPU), with adaptive restart per datum (O'Donoghue & Candès
  2015); converged rows leave the working set.

Conventions of the peers. scikit-learn's ``Lasso`` minimises (1/2n)‖y − Xw‖² + a‖w‖₁ with n the
number of rows of X (here M, the dimension of y), so a common α gives a = α / (λ M);
``sparse_encode(algorithm="lasso_cd", alpha=a)`` divides a by M itself, so there a = α / λ.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import Tensor

from genmodels._validation import (
    as_tensor,
    check_choice,
    check_nonnegative_float,
    check_positive_int,
)

__all__ = [
    "LassoSolution",
    "check_dictionary",
    "check_penalty",
    "lasso",
    "lasso_energy",
    "lasso_kkt_violation",
    "lasso_penalty_max",
    "soft_threshold",
]

METHODS = ("cd", "fista", "lars")
#: ``_lasso_numba.cd_block``'s tuning: coordinate descent's sweeps over the support per round
#: (measured on whitened 8×8 patches with 256 learned atoms), and the active-set method's steps
#: per atom before it hands a datum over to coordinate descent.
_INNER, _ACTIVE_STEPS = 8, 4


class LassoSolution:
    """The modes of a batch of LASSO problems.

    ``kkt_violation`` is computed when first read (one product with the dictionary per datum,
    as costly as the solve of a sparse datum), so callers that need only the codes do not pay
    for it."""

    __slots__ = ("_kkt", "_problem", "codes", "n_iter")

    codes: Tensor
    """x̂⁰: (*batch, K), the minimisers of Eq. 8.10."""
    n_iter: Tensor
    """(*batch,) iterations used: active-set steps plus full coordinate sweeps (cd), homotopy
    steps (lars) or gradient steps (fista)."""

    def __init__(self, codes: Tensor, n_iter: Tensor, kkt_violation: Tensor | None = None, *,
                 problem: tuple[Tensor, Tensor, float, Tensor] | None = None) -> None:
        if kkt_violation is None and problem is None:
            raise ValueError("LassoSolution needs kkt_violation or the problem (Y, C, lam, "
                             "alpha) to compute it from.")
        self.codes, self.n_iter = codes, n_iter
        self._kkt, self._problem = kkt_violation, problem

    @property
    def kkt_violation(self) -> Tensor:
        """(*batch,) max_k of the violation of the optimality conditions, in the energy's units
        (those of λ Cᵀ(y − Cx) and α), as ``lasso_kkt_violation`` computes it."""
        if self._kkt is None:
            assert self._problem is not None
            Y, C, lam, a = self._problem
            self._kkt = lasso_kkt_violation(self.codes, Y, C, lam, a)
            self._problem = None
        return self._kkt

    def __repr__(self) -> str:
        return (f"LassoSolution(codes: {tuple(self.codes.shape)}, "
                f"mean n_iter {float(self.n_iter.double().mean()):.3g})")


def _numba() -> ModuleType:
    from genmodels.inference import _lasso_numba

    return _lasso_numba


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------


def check_dictionary(C: Any, *, name: str = "C", dtype: torch.dtype | None = None) -> Tensor:
    """A dictionary (M, K): finite, 2-D, with no all-zero column (an atom that explains nothing
    has no coordinate minimiser and an undefined normalised direction)."""
    C = as_tensor(C, name=name, dtype=dtype)
    if C.dim() != 2 or C.shape[0] == 0 or C.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty (M, K) matrix, got shape {tuple(C.shape)}.")
    norms = C.square().sum(0)
    if bool((norms == 0).any()):
        k = int(torch.nonzero(norms == 0)[0])
        raise ValueError(
            f"{name} has {int((norms == 0).sum())} all-zero column(s) (atom {k} is the first); "
            "every atom needs a non-zero norm. Remove or re-initialise those atoms."
        )
    return C


def check_penalty(alpha: Any, K: int, *, name: str = "alpha", dtype: torch.dtype,
                  device: torch.device | None = None, strictly: bool = False) -> Tensor:
    """α as a (K,) tensor of finite, non-negative (positive when ``strictly``) penalties; a scalar
    is broadcast."""
    if isinstance(alpha, (int, float)) and not isinstance(alpha, bool):
        check_nonnegative_float(alpha, name, strictly=strictly)
        a = torch.tensor(float(alpha), dtype=dtype, device=device)
    else:
        a = as_tensor(alpha, name=name, dtype=dtype, device=device)
    if a.dim() == 0:
        a = a.expand(K)
    if a.shape != (K,):
        raise ValueError(f"{name} must be a scalar or have shape ({K},), got {tuple(a.shape)}.")
    bad = (a <= 0) if strictly else (a < 0)
    if bool(bad.any()):
        k = int(torch.nonzero(bad)[0])
        rel = "positive" if strictly else "non-negative"
        raise ValueError(f"{name} must be {rel}; entry {k} is {float(a[k])!r}.")
    return a.contiguous()


def _check_problem(Y: Any, C: Any, lam: Any, alpha: Any) -> tuple[Tensor, Tensor, float, Tensor]:
    C = check_dictionary(C)
    Y = as_tensor(Y, name="Y", dtype=C.dtype, device=C.device)
    if Y.dim() == 0 or Y.shape[-1] != C.shape[0]:
        raise ValueError(
            f"Y must have shape (*batch, {C.shape[0]}) to match C of shape {tuple(C.shape)}, "
            f"got {tuple(Y.shape)}."
        )
    lam = check_nonnegative_float(lam, "lam", strictly=True)
    a = check_penalty(alpha, C.shape[1], dtype=C.dtype, device=C.device)
    return Y, C, lam, a


# ---------------------------------------------------------------------------------------------
# The energy and its optimality conditions
# ---------------------------------------------------------------------------------------------


def soft_threshold(z: Tensor, t: Tensor | float) -> Tensor:
    """The proximal map of t|·|: sign(z) max(|z| − t, 0), elementwise."""
    return torch.sign(z) * (z.abs() - t).clamp_min(0.0)


def lasso_energy(X: Tensor, Y: Tensor, C: Tensor, lam: float, alpha: Tensor | float) -> Tensor:
    """E_joint(x, y) = ½λ‖y − Cx‖² + Σ_k α_k|x_k| (Eq. 8.10's objective), per datum.

    X: (*, K); Y: (*, M); C: (M, K) → (*,)."""
    resid = Y - X @ C.mT
    return 0.5 * lam * resid.square().sum(-1) + (X.abs() * alpha).sum(-1)


def lasso_kkt_violation(X: Tensor, Y: Tensor, C: Tensor, lam: float,
                        alpha: Tensor | float) -> Tensor:
    """max_k of the violation of the LASSO's optimality conditions, per datum (energy units).

    With g = λ Cᵀ(y − Cx): |g_k| − α_k (if positive) where x_k = 0 and |g_k − α_k sign x_k|
    where x_k ≠ 0. Zero exactly at the minimiser. X: (*, K); Y: (*, M) → (*,)."""
    g = lam * (Y - X @ C.mT) @ C
    a = torch.as_tensor(alpha, dtype=X.dtype, device=X.device).expand_as(g)
    zero = X == 0
    v = torch.where(zero, (g.abs() - a).clamp_min(0.0), (g - a * torch.sign(X)).abs())
    return v.amax(-1)


# ---------------------------------------------------------------------------------------------
# Solvers
# ---------------------------------------------------------------------------------------------


def lasso(
    Y: Any,
    C: Any,
    lam: float = 1.0,
    alpha: Any = 1.0,
    *,
    method: str = "cd",
    tol: float = 1e-10,
    max_iter: int = 10_000,
    init: Any = None,
    n_threads: int | None = None,
) -> LassoSolution:
    """The modes x̂⁰ = argmin ½λ‖y − Cx‖² + Σα_k|x_k| (Eq. 8.10) of a batch of data.

    Y: (*batch, M) observations; C: (M, K) dictionary (over- or under-complete; no zero column);
    lam: λ > 0, the emission precision; alpha: α ≥ 0, a scalar or (K,), the Laplace rates.
    method: "cd" (the active-set method, finished where needed by coordinate descent; Numba,
    CPU; the result comes back on C's device), "lars" (homotopy, Numba, one common α) or
    "fista" (torch, any device). tol: the KKT violation (energy units, see
    ``lasso_kkt_violation``) at which a datum stops. max_iter: full coordinate sweeps after a
    hand-over (cd) or gradient steps (fista). init: (*batch, K) warm start (default zeros).
    n_threads: threads for cd and lars (default: torch's intra-op thread count).

    Returns a ``LassoSolution`` with codes (*batch, K).
    """
    Y, C, lam, a = _check_problem(Y, C, lam, alpha)
    check_choice(method, "method", METHODS)
    tol = check_nonnegative_float(tol, "tol")
    max_iter = check_positive_int(max_iter, "max_iter")
    M, K = C.shape
    batch = Y.shape[:-1]
    Yf = Y.reshape(-1, M)
    if init is None:
        X0 = torch.zeros(Yf.shape[0], K, dtype=C.dtype, device=C.device)
    else:
        X0 = as_tensor(init, name="init", dtype=C.dtype, device=C.device)
        if X0.shape != (*batch, K):
            raise ValueError(f"init must have shape {(*batch, K)}, got {tuple(X0.shape)}.")
        X0 = X0.reshape(-1, K)
    if Yf.shape[0] == 0:
        empty = torch.zeros(*batch, dtype=torch.int64, device=C.device)
        return LassoSolution(X0.reshape(*batch, K), empty, empty.to(C.dtype))
    if method == "lars" and not bool((a == a[0]).all() and a[0] > 0):
        raise ValueError("method='lars' needs one common, positive alpha; use method='cd' for "
                         "per-atom penalties.")
    if method in ("cd", "lars"):
        X, n_iter = _lasso_cd(Yf, C, lam, a, tol, max_iter, X0, n_threads, lars=method == "lars",
                              own_init=init is None)
    else:
        X, n_iter = _lasso_fista(Yf, C, lam, a, tol, max_iter, X0)
    return LassoSolution(X.reshape(*batch, K), n_iter.reshape(batch), problem=(Y, C, lam, a))


def _lasso_cd(Y: Tensor, C: Tensor, lam: float, alpha: Tensor, tol: float, max_iter: int,
              X0: Tensor, n_threads: int | None, *, lars: bool = False,
              own_init: bool = False) -> tuple[Tensor, Tensor]:
    """Coordinate descent (or, with ``lars``, the LARS–lasso homotopy finished by coordinate
    descent where needed; it starts from 0, so ``X0`` is ignored) on the scaled problem
    ½‖y − Cx‖² + Σ (α_k/λ)|x_k|, rows over threads. ``own_init``: X0 is this call's own zeros
    (on the CPU the kernel then writes the codes into it, no copy)."""
    kern = _numba()
    device = C.device
    Cn = C.detach().cpu().numpy()
    G = np.ascontiguousarray(Cn.T @ Cn)  # (K, K)
    Q = np.ascontiguousarray(Y.detach().cpu().numpy() @ Cn)  # (N, K) rows Cᵀy
    X = X0.detach().cpu().numpy()
    if not own_init or not X.flags.c_contiguous:  # the caller's start stays as it was
        X = np.array(X, copy=True, order="C")
    t = np.ascontiguousarray((alpha / lam).cpu().numpy())
    N = X.shape[0]
    n_iter = np.zeros(N, dtype=np.int64)
    viol = np.zeros(N, dtype=X.dtype)
    tol_scaled = tol / lam
    threads = n_threads if n_threads is not None else torch.get_num_threads()
    threads = max(1, min(int(threads), os.cpu_count() or 1, N))
    def block(Qb: Any, Xb: Any, nb: Any, vb: Any) -> None:
        if lars:
            kern.lars_block(G, Qb, Xb, t, tol_scaled, max_iter, nb, vb)
        else:
            kern.cd_block(G, Qb, Xb, t, tol_scaled, max_iter, nb, vb, _INNER,
                          _ACTIVE_STEPS * G.shape[0])

    if threads == 1:
        block(Q, X, n_iter, viol)
    else:
        # interleaved blocks of 64 rows balance threads when some data need more sweeps
        bounds = [*range(0, N, 64), N]
        blocks = [(bounds[i], bounds[i + 1]) for i in range(len(bounds) - 1)]

        def run(share: list[tuple[int, int]]) -> None:
            for lo, hi in share:
                block(Q[lo:hi], X[lo:hi], n_iter[lo:hi], viol[lo:hi])

        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(run, [blocks[i::threads] for i in range(threads)]))
    return torch.from_numpy(X).to(device), torch.from_numpy(n_iter).to(device)


def _lipschitz(C: Tensor) -> float:
    """L = ‖C‖₂², the Lipschitz constant of ∇ ½‖y − Cx‖² (largest eigenvalue of CᵀC)."""
    return float(torch.linalg.matrix_norm(C, ord=2)) ** 2


def _lasso_fista(Y: Tensor, C: Tensor, lam: float, alpha: Tensor, tol: float, max_iter: int,
                 X0: Tensor) -> tuple[Tensor, Tensor]:
    """FISTA with adaptive (gradient-scheme) restart, per row; rows whose KKT violation falls
    below tol are removed from the working set. The KKT check costs one extra product, so it is
    made every ``check_every`` steps."""
    G = C.mT @ C  # (K, K)
    Q = Y @ C  # (N, K)
    t_thresh = alpha / lam
    L = _lipschitz(C) * (1.0 + 1e-12)
    step = 1.0 / L
    N = X0.shape[0]
    X = X0.clone()
    n_iter = torch.zeros(N, dtype=torch.int64, device=C.device)
    active = torch.arange(N, device=C.device)
    x, q = X.clone(), Q
    z = x.clone()  # extrapolated point
    mom = torch.ones(N, dtype=C.dtype, device=C.device)  # FISTA's t_k per row
    check_every = 10
    tol_scaled = tol / lam
    it = 0
    while active.numel() > 0 and it < max_iter:
        grad = z @ G - q  # ∇ of ½‖y − Cz‖²
        x_new = soft_threshold(z - step * grad, step * t_thresh)
        # restart where the step and the momentum disagree: (z − x_new)·(x_new − x) > 0
        restart = ((z - x_new) * (x_new - x)).sum(-1) > 0
        mom_new = 0.5 * (1.0 + torch.sqrt(1.0 + 4.0 * mom * mom))
        beta = torch.where(restart, torch.zeros_like(mom), (mom - 1.0) / mom_new)
        mom = torch.where(restart, torch.ones_like(mom), mom_new)
        z = x_new + beta[:, None] * (x_new - x)
        x = x_new
        it += 1
        if it % check_every == 0 or it == max_iter:
            g = q - x @ G
            viol = torch.where(x == 0, (g.abs() - t_thresh).clamp_min(0.0),
                               (g - t_thresh * torch.sign(x)).abs()).amax(-1)
            done = viol <= tol_scaled
            if bool(done.any()):
                idx = active[done]
                X[idx] = x[done]
                n_iter[idx] = it
                keep = ~done
                active, x, z, q, mom = active[keep], x[keep], z[keep], q[keep], mom[keep]
    if active.numel() > 0:
        X[active] = x
        n_iter[active] = it
    return X, n_iter


def lasso_penalty_max(Y: Tensor, C: Tensor, lam: float) -> Tensor:
    """The smallest common α at which x̂⁰ = 0, per datum: max_k |λ c_kᵀ y|. Y: (*, M) → (*,)."""
    return (lam * (Y @ C)).abs().amax(-1)
