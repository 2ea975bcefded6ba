"""The Numba kernel behind ``genmodels.inference.lasso.lasso(method="cd")``: cyclic coordinate
descent with covariance updates (Friedman, Hastie & Tibshirani 2010, §2.2) on a block of data,
imported lazily (so that importing genmodels does not import Numba).

Each datum's problem is, in the scaled form used here (t_k = α_k / λ),

    x̂⁰ = argmin_x ½‖y − C x‖² + Σ_k t_k |x_k|,

and the kernel touches y only through q = Cᵀy and the Gram matrix G = CᵀC. It keeps the
gradient residual r = q − G x (so r_k = c_kᵀ(y − C x)); the exact minimiser along coordinate k is
the soft threshold x_k ← S(r_k + G_kk x_k, t_k) / G_kk, and a change d of x_k costs one column
update r ← r − d G[:, k]. A coordinate that stays at zero costs O(1), so a sweep over K atoms
with s non-zeros costs O(K + s K).

A few greedy (Gauss–Southwell) steps first pick a support of about the right size; then active
sets (glmnet): after a full sweep, sweeps run over the non-zero coordinates only, and a Newton
step on the support and signs (an exact solve of the stationarity conditions there) finishes
the datum once the support is right — so the codes satisfy the optimality (KKT) conditions to
rounding error. The loop ends when they hold to ``tol``:

    |r_k| ≤ t_k  where x_k = 0,      r_k = t_k sign(x_k)  where x_k ≠ 0.

Module-level functions with ``cache=True`` and ``nogil=True``: ``lasso`` runs one kernel per
thread on disjoint blocks of rows.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

_jit = numba.njit(cache=True, nogil=True, error_model="numpy")


@_jit
def _kkt_violation(x: Any, r: Any, t: Any) -> float:
    """max_k of the KKT violation of one datum (scaled units)."""
    worst = 0.0
    for k in range(x.shape[0]):
        if x[k] == 0.0:
            v = abs(r[k]) - t[k]
        elif x[k] > 0.0:
            v = abs(r[k] - t[k])
        else:
            v = abs(r[k] + t[k])
        if v > worst:
            worst = v
    return worst


@_jit
def _sweep(G: Any, x: Any, r: Any, t: Any, idx: Any, n_idx: int) -> int:
    """One cyclic pass of exact coordinate minimisations over the coordinates idx[:n_idx];
    returns the number of support changes."""
    K = x.shape[0]
    changes = 0
    for i in range(n_idx):
        k = idx[i]
        gkk = G[k, k]
        old = x[k]
        z = r[k] + gkk * old
        if z > t[k]:
            new = (z - t[k]) / gkk
        elif z < -t[k]:
            new = (z + t[k]) / gkk
        else:
            new = 0.0
        if new != old:
            d = new - old
            x[k] = new
            if old == 0.0 or new == 0.0:
                changes += 1
            for j in range(K):
                r[j] -= d * G[k, j]  # G symmetric: row k = column k, read contiguously
    return changes


@_jit
def _sweep_restricted(G: Any, x: Any, r: Any, t: Any, idx: Any, n_idx: int) -> int:
    """``_sweep`` over idx[:n_idx] that keeps r up to date on those coordinates only: O(n²) per
    pass instead of O(nK). The rest of r is stale until ``_residual`` recomputes it. Returns the
    number of support changes."""
    changes = 0
    for i in range(n_idx):
        k = idx[i]
        gkk = G[k, k]
        old = x[k]
        z = r[k] + gkk * old
        if z > t[k]:
            new = (z - t[k]) / gkk
        elif z < -t[k]:
            new = (z + t[k]) / gkk
        else:
            new = 0.0
        if new != old:
            d = new - old
            x[k] = new
            if old == 0.0 or new == 0.0:
                changes += 1
            for j in range(n_idx):
                r[idx[j]] -= d * G[k, idx[j]]
    return changes


@_jit
def _residual(G: Any, q: Any, x: Any, r: Any) -> None:
    """r = q − G x, over the non-zeros of x: O(K s)."""
    K = x.shape[0]
    for k in range(K):
        r[k] = q[k]
    for j in range(K):
        if x[j] != 0.0:
            for k in range(K):
                r[k] -= G[j, k] * x[j]


@_jit
def _gauss_southwell(G: Any, x: Any, r: Any, t: Any, tol: float, max_steps: int) -> int:
    """Greedy coordinate descent (the Gauss–Southwell rule; Nutini et al. 2015): minimise
    exactly along the coordinate whose optimality condition is violated most, until none is
    violated by more than tol or max_steps. From x = 0 it adds atoms in order of their
    correlation with the residual (as matching pursuit does), so it reaches a support of about
    the right size where a cyclic sweep would switch on every atom that correlates with y.
    Returns the steps taken."""
    K = x.shape[0]
    for step in range(max_steps):
        worst = tol
        pick = -1
        for k in range(K):
            if x[k] > 0.0:
                v = abs(r[k] - t[k])
            elif x[k] < 0.0:
                v = abs(r[k] + t[k])
            else:
                v = abs(r[k]) - t[k]
            if v > worst:
                worst = v
                pick = k
        if pick < 0:
            return step
        gkk = G[pick, pick]
        old = x[pick]
        z = r[pick] + gkk * old
        if z > t[pick]:
            new = (z - t[pick]) / gkk
        elif z < -t[pick]:
            new = (z + t[pick]) / gkk
        else:
            new = 0.0
        d = new - old
        x[pick] = new
        for j in range(K):
            r[j] -= d * G[pick, j]
    return max_steps


@_jit
def _chol_solve(G: Any, idx: Any, s: int, b: Any, L: Any) -> bool:
    """Solve G[idx, idx] z = b[:s] in place (b ← z) by Cholesky into L[:s, :s]; False when the
    submatrix is not numerically positive definite (linearly dependent atoms)."""
    for i in range(s):
        ki = idx[i]
        for j in range(i + 1):
            acc = G[ki, idx[j]]
            for p in range(j):
                acc -= L[i, p] * L[j, p]
            if i == j:
                if acc <= 1e-12 * G[ki, ki]:
                    return False
                L[i, i] = np.sqrt(acc)
            else:
                L[i, j] = acc / L[j, j]
    for i in range(s):  # forward, then backward substitution
        acc = b[i]
        for p in range(i):
            acc -= L[i, p] * b[p]
        b[i] = acc / L[i, i]
    for i in range(s - 1, -1, -1):
        acc = b[i]
        for p in range(i + 1, s):
            acc -= L[p, i] * b[p]
        b[i] = acc / L[i, i]
    return True


@_jit
def _polish(G: Any, q: Any, x: Any, r: Any, t: Any, tol: float, idx: Any, L: Any, b: Any,
            r_new: Any) -> bool:
    """Newton step on the current support and signs: if A = {k : x_k ≠ 0} and σ = sign(x_A) are
    those of the minimiser, it solves the stationarity condition G_AA x_A = q_A − t_A ∘ σ exactly
    (Cholesky). Accepted, in place, only when the signs are kept and every KKT condition then
    holds to ``tol``; returns whether it was accepted."""
    K = x.shape[0]
    s = 0
    for k in range(K):
        if x[k] != 0.0:
            idx[s] = k
            s += 1
    if s == 0:
        return False
    for i in range(s):
        ki = idx[i]
        b[i] = q[ki] - (t[ki] if x[ki] > 0.0 else -t[ki])
    if not _chol_solve(G, idx, s, b, L):
        return False  # the support's atoms are (numerically) linearly dependent
    for i in range(s):
        if (b[i] > 0.0) != (x[idx[i]] > 0.0) or b[i] == 0.0:
            return False
    for k in range(K):
        r_new[k] = q[k]
    for i in range(s):
        ki = idx[i]
        for k in range(K):
            r_new[k] -= G[ki, k] * b[i]
    worst = 0.0
    for k in range(K):  # inactive coordinates must stay inside their thresholds
        if x[k] == 0.0:
            v = abs(r_new[k]) - t[k]
            if v > worst:
                worst = v
    for i in range(s):
        ki = idx[i]
        v = abs(r_new[ki] - t[ki]) if b[i] > 0.0 else abs(r_new[ki] + t[ki])
        if v > worst:
            worst = v
    if worst > tol:
        return False
    for i in range(s):
        x[idx[i]] = b[i]
    for k in range(K):
        r[k] = r_new[k]
    return True


@_jit
def cd_block(G: Any, Q: Any, X: Any, t: Any, tol: float, max_iter: int,
             n_iter: Any, violation: Any, inner_max: int = 8, greedy: int = 0) -> None:
    """Coordinate descent, in place, for every row of one block.

    G: (K, K) Gram matrix CᵀC; Q: (B, K) rows q = Cᵀy; X: (B, K) warm start, overwritten with the
    codes; t: (K,) thresholds α/λ; tol: KKT tolerance (scaled units); max_iter: full sweeps.
    Outputs n_iter: (B,) full sweeps used; violation: (B,) the final KKT violation.

    First at most ``greedy`` Gauss–Southwell steps (``_gauss_southwell``); then rounds of one
    full sweep, at most ``inner_max`` sweeps over the active set (r kept on it only, then
    recomputed), and a Newton step on the support (``_polish``), which ends the datum when it
    succeeds.
    """
    B, K = X.shape
    r = np.empty(K, dtype=X.dtype)
    r_new = np.empty(K, dtype=X.dtype)
    rhs = np.empty(K, dtype=X.dtype)
    L = np.empty((K, K), dtype=X.dtype)
    all_idx = np.arange(K)
    active = np.empty(K, dtype=np.int64)
    for b in range(B):
        x = X[b]
        _residual(G, Q[b], x, r)
        if greedy > 0:
            _gauss_southwell(G, x, r, t, tol, greedy)
        v = _kkt_violation(x, r, t)
        it = 0
        while v > tol and it < max_iter:
            _sweep(G, x, r, t, all_idx, K)
            it += 1
            n_act = 0
            for k in range(K):
                if x[k] != 0.0:
                    active[n_act] = k
                    n_act += 1
            inner = 0
            while n_act > 0 and inner < inner_max:
                worst = 0.0
                for i in range(n_act):
                    k = active[i]
                    if x[k] > 0.0:
                        w = abs(r[k] - t[k])
                    elif x[k] < 0.0:
                        w = abs(r[k] + t[k])
                    else:
                        w = abs(r[k]) - t[k]
                    if w > worst:
                        worst = w
                if worst <= tol:
                    break
                _sweep_restricted(G, x, r, t, active, n_act)
                inner += 1
            if inner > 0:
                _residual(G, Q[b], x, r)
            if _polish(G, Q[b], x, r, t, tol, active, L, rhs, r_new):
                v = 0.0
                break
            v = _kkt_violation(x, r, t)
        n_iter[b] = it
        violation[b] = _kkt_violation(x, r, t)

