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

An active-set method on the support and signs (``_active_set``: atoms join one at a time,
each face's minimiser solved exactly with a Cholesky factor grown by a row per join) solves
almost every datum in about as many steps as it has non-zeros. A datum it hands over (a
linearly dependent support, rounding) is finished by coordinate descent with active sets
(glmnet): after a full sweep, sweeps run over the non-zero coordinates only, and a Newton step
on the support and signs (an exact solve of the stationarity conditions there) finishes the
datum once the support is right — so the codes satisfy the optimality (KKT) conditions to
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
def _violation(xk: float, rk: float, tk: float) -> float:
    """How far coordinate k breaks the LASSO's optimality (KKT) condition: |r_k| ≤ t_k at
    x_k = 0, r_k = t_k sign(x_k) otherwise (scaled units)."""
    if xk == 0.0:
        return abs(rk) - tk
    if xk > 0.0:
        return abs(rk - tk)
    return abs(rk + tk)


@_jit
def _coordinate_minimum(z: float, tk: float, gkk: float) -> float:
    """The exact minimiser along one coordinate: soft-thresholding of z = r_k + G_kk x_k."""
    if z > tk:
        return (z - tk) / gkk
    if z < -tk:
        return (z + tk) / gkk
    return 0.0


@_jit
def _kkt_violation(x: Any, r: Any, t: Any) -> float:
    """max_k of the KKT violation of one datum (scaled units)."""
    worst = 0.0
    for k in range(x.shape[0]):
        v = _violation(x[k], r[k], t[k])
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
        new = _coordinate_minimum(r[k] + gkk * old, t[k], gkk)
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
        new = _coordinate_minimum(r[k] + gkk * old, t[k], gkk)
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
def _chol_factor(G: Any, idx: Any, s: int, L: Any) -> int:
    """Cholesky factor of G[idx[:s], idx[:s]] into L[:s, :s]. Returns −1 on success, or the first
    pivot i at which the submatrix is numerically singular (atom idx[i] is, to 1e-9 relative,
    a combination of idx[:i]); L[:i, :i] is then the valid factor of the leading block."""
    for i in range(s):
        ki = idx[i]
        for j in range(i + 1):
            acc = G[ki, idx[j]]
            for p in range(j):
                acc -= L[i, p] * L[j, p]
            if i == j:
                if acc <= 1e-9 * G[ki, ki]:
                    return i
                L[i, i] = np.sqrt(acc)
            else:
                L[i, j] = acc / L[j, j]
    return -1


@_jit
def _chol_apply(L: Any, s: int, b: Any) -> None:
    """b[:s] ← (L Lᵀ)⁻¹ b[:s]: forward, then backward substitution."""
    for i in range(s):
        acc = b[i]
        for p in range(i):
            acc -= L[i, p] * b[p]
        b[i] = acc / L[i, i]
    for i in range(s - 1, -1, -1):
        acc = b[i]
        for p in range(i + 1, s):
            acc -= L[p, i] * b[p]
        b[i] = acc / L[i, i]


@_jit
def _null_step(G: Any, x: Any, r: Any, t: Any, idx: Any, i: int, L: Any, v: Any) -> None:
    """The support idx[:i+1] is linearly dependent (``_chol_factor`` failed at pivot i): with
    G_<i w = G[idx[:i], idx[i]], the direction v = (w, −1) has C_A v ≈ 0, so moving along it
    leaves the reconstruction unchanged while the penalty Σ t|x| changes linearly. Move in the
    direction that does not raise the penalty until a coordinate reaches zero, and drop it —
    the reduction of a solution to one with linearly independent atoms (at most M of them)."""
    K = x.shape[0]
    ki = idx[i]
    for j in range(i):
        v[j] = G[idx[j], ki]
    _chol_apply(L, i, v)
    v[i] = -1.0
    slope = 0.0
    for j in range(i + 1):
        kj = idx[j]
        slope += t[kj] * (1.0 if x[kj] > 0.0 else -1.0) * v[j]
    if slope > 0.0:
        for j in range(i + 1):
            v[j] = -v[j]
    step = np.inf
    cross = -1
    for flip in range(2):
        if flip == 1:
            if slope != 0.0:
                return
            for j in range(i + 1):  # a flat direction: either way keeps the energy
                v[j] = -v[j]
        for j in range(i + 1):
            xj = x[idx[j]]
            if xj * v[j] < 0.0:
                a = -xj / v[j]
                if a < step:
                    step = a
                    cross = j
        if cross >= 0:
            break
    if cross < 0:
        return
    for j in range(i + 1):
        kj = idx[j]
        new = 0.0 if j == cross else x[kj] + step * v[j]
        d = new - x[kj]
        if d != 0.0:
            x[kj] = new
            for k in range(K):
                r[k] -= d * G[kj, k]


@_jit
def _polish(G: Any, q: Any, x: Any, r: Any, t: Any, tol: float, idx: Any, L: Any, b: Any,
            r_new: Any) -> int:
    """Newton step on the current support and signs, in place: b solves the stationarity
    condition G_AA b = q_A − t_A ∘ σ on A = {k : x_k ≠ 0}, σ = sign(x_A) (Cholesky). If b keeps
    the signs, x_A ← b (the minimiser on that face); otherwise x moves toward b up to the first
    sign change and that coordinate leaves the support. Either way the energy does not rise.
    Returns 1 when every KKT condition now holds to ``tol`` (the datum is solved), 2 when x is the
    face's minimiser but some zero coordinate violates its condition, 0 after a step that shrank
    the support (call again), −1 when there is no support."""
    K = x.shape[0]
    s = 0
    for k in range(K):
        if x[k] != 0.0:
            idx[s] = k
            s += 1
    if s == 0:
        return -1
    for i in range(s):
        ki = idx[i]
        b[i] = q[ki] - (t[ki] if x[ki] > 0.0 else -t[ki])
    fail = _chol_factor(G, idx, s, L)
    if fail >= 0:  # the support's atoms are (numerically) linearly dependent
        _null_step(G, x, r, t, idx, fail, L, b)
        return 0
    _chol_apply(L, s, b)
    # first sign change on the segment from x_A to the face's minimiser b
    step = 1.0
    cross = -1
    for i in range(s):
        xi = x[idx[i]]
        if (b[i] > 0.0) != (xi > 0.0) or b[i] == 0.0:
            a = xi / (xi - b[i])
            if a < step:
                step = a
                cross = i
    if cross >= 0:
        # the energy restricted to the orthant of sign(x_A) is a convex quadratic minimised at
        # b, so it decreases along the segment up to the first crossing: move there and drop
        # the crossing coordinate (an active-set step; progress even when CD stalls)
        for i in range(s):
            ki = idx[i]
            new = 0.0 if i == cross else x[ki] + step * (b[i] - x[ki])
            if (new > 0.0) != (x[ki] > 0.0):
                new = 0.0  # rounding at another crossing
            d = new - x[ki]
            if d != 0.0:
                x[ki] = new
                for k in range(K):
                    r[k] -= d * G[ki, k]
        return 0
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
    # the face's minimiser lowers the energy whether or not it is optimal: take it
    for i in range(s):
        x[idx[i]] = b[i]
    for k in range(K):
        r[k] = r_new[k]
    return 1 if worst <= tol else 2


@_jit
def _residual_on(G: Any, q: Any, x: Any, idx: Any, s: int, r: Any) -> None:
    """r = q − Σ_{i<s} G[idx_i] x[idx_i], the residual of a support listed in idx[:s]: O(sK)."""
    K = r.shape[0]
    for k in range(K):
        r[k] = q[k]
    i = 0
    while i + 4 <= s:  # four rows of G per pass over r: a quarter of the loads and stores of r
        k0, k1, k2, k3 = idx[i], idx[i + 1], idx[i + 2], idx[i + 3]
        x0, x1, x2, x3 = x[k0], x[k1], x[k2], x[k3]
        for k in range(K):
            r[k] -= (G[k0, k] * x0 + G[k1, k] * x1) + (G[k2, k] * x2 + G[k3, k] * x3)
        i += 4
    while i < s:
        ki = idx[i]
        xi = x[ki]
        for k in range(K):
            r[k] -= G[ki, k] * xi
        i += 1


@_jit
def _most_violated(r: Any, t: Any, inA: Any, tol: float) -> int:
    """The coordinate outside the active set whose condition |r_k| ≤ t_k is violated most, by
    more than tol; −1 if none (one comparison per atom)."""
    best = tol
    pick = -1
    for k in range(r.shape[0]):
        v = abs(r[k]) - t[k]
        if v > best and not inA[k]:
            best = v
            pick = k
    return pick


@_jit
def _chol_append(G: Any, idx: Any, s: int, j: int, L: Any) -> bool:
    """Grow the Cholesky factor L[:s, :s] of G[idx[:s], idx[:s]] by atom j: row s of L is
    l = L⁻¹ G[idx[:s], j], and L[s, s] = √(G_jj − ‖l‖²). False (L unchanged on its leading
    block) when atom j is, to 1e-9 relative, a combination of idx[:s]."""
    acc = G[j, j]
    for i in range(s):
        v = G[idx[i], j]
        for p in range(i):
            v -= L[i, p] * L[s, p]
        v /= L[i, i]
        L[s, i] = v
        acc -= v * v
    if acc <= 1e-9 * G[j, j]:
        return False
    L[s, s] = np.sqrt(acc)
    return True


@_jit
def _chol_delete(L: Any, s: int, c: int) -> None:
    """The Cholesky factor of G_AA with the c-th of its s atoms removed, in place into
    L[:s−1, :s−1]: the rows below c move up one, which leaves one entry above the diagonal in
    each of them, and Givens rotations of the column pairs (p, p + 1), p = c, …, s − 2, remove
    those (a rotation from the right keeps L Lᵀ). O((s − c)²), where a new factor costs O(s³)."""
    for i in range(c, s - 1):
        for p in range(i + 2):
            L[i, p] = L[i + 1, p]
    for p in range(c, s - 1):
        a = L[p, p]
        b = L[p, p + 1]
        h = np.hypot(a, b)
        cs = a / h
        sn = b / h
        for i in range(p, s - 1):
            u = L[i, p]
            v = L[i, p + 1]
            L[i, p] = cs * u + sn * v
            L[i, p + 1] = cs * v - sn * u
        L[p, p] = h
        L[p, p + 1] = 0.0


@_jit
def _join_solve(L: Any, x: Any, r: Any, t: Any, idx: Any, sg: Any, s: int, b: Any) -> None:
    """The face's minimiser b after atom j = idx[s−1] joined at the minimiser x_A of the face of
    A = idx[:s−1]: with g = G[A, j], l = L⁻¹g (row s−1 of L) and w = G_AA⁻¹ g = L⁻ᵀ l,

        b_j = (r_j − t_j σ_j) / (G_jj − ‖l‖²),      b_A = x_A − b_j w

    (the bordered system; r_j = q_j − G_jA x_A is the current residual and the denominator is
    L[s−1, s−1]²). One triangular solve, by columns (so its updates vectorise), for the two a
    fresh solve needs."""
    n = s - 1
    j = idx[n]
    lss = L[n, n]
    v = (r[j] - t[j] * sg[n]) / (lss * lss)
    for i in range(n):
        b[i] = L[n, i]
    for i in range(n - 1, -1, -1):  # w = L⁻ᵀ l, a column of Lᵀ (a row of L) at a time
        b[i] /= L[i, i]
        bi = b[i]
        for p in range(i):
            b[p] -= L[i, p] * bi
    for i in range(n):
        b[i] = x[idx[i]] - v * b[i]
    b[n] = v


@_jit
def _active_set(G: Any, q: Any, x: Any, r: Any, t: Any, tol: float, max_steps: int, idx: Any,
                sg: Any, inA: Any, L: Any, b: Any) -> tuple[int, int]:
    """An active-set method on the support and signs (the feature-sign search of Lee, Battle,
    Raina & Ng 2007; Osborne, Presnell & Turlach 2000) for one datum, in place on x, with
    r = q − Gx on return.

    The active set A carries signs σ; on the orthant they fix the energy is the quadratic
    f_σ(x) = ½‖y − Cx‖² + Σ_A t_k σ_k x_k, whose minimiser on A's face solves
    G_AA b = q_A − t_A ∘ σ_A (Cholesky, grown by one row per join: O(s²)). If b keeps the signs,
    x_A ← b; otherwise x moves toward b up to the first sign change and that atom leaves A (f_σ
    is convex and minimised at b, so the energy falls along the segment). At a face's minimiser
    r = q − G_A x_A is recomputed (O(sK)) and the zero coordinate that violates its condition
    |r_k| ≤ t_k most joins A with σ_k = sign(r_k); the energy's slope along it is
    −(|r_k| − t_k) < 0, so the next face's minimiser keeps that sign and the energy falls at
    every step — a datum with s non-zeros costs about s joins, O(s²K) in all, where a
    coordinate sweep costs O(sK) each and needs many.

    Starts from the support and signs of x (x = 0: A empty). Returns (1, steps) when every KKT
    condition holds to ``tol``; (0, steps) when it hands over (the atoms of A would become
    linearly dependent, rounding stalls it, or ``max_steps``), r then being recomputed."""
    K = x.shape[0]
    s = 0
    for k in range(K):
        inA[k] = x[k] != 0.0
        if inA[k]:
            idx[s] = k
            sg[s] = 1.0 if x[k] > 0.0 else -1.0
            s += 1
    if s > 0 and _chol_factor(G, idx, s, L) >= 0:
        _residual(G, q, x, r)
        return 0, 0
    solve = s > 0
    joined = -1  # position in A of the atom that joined last (still at zero)
    steps = 0
    while steps < max_steps:
        steps += 1
        if solve:
            if joined >= 0:  # from the old face's minimiser x_A, by the bordered system
                _join_solve(L, x, r, t, idx, sg, s, b)
            else:
                for i in range(s):
                    b[i] = q[idx[i]] - t[idx[i]] * sg[i]
                _chol_apply(L, s, b)
            step = 1.0
            cross = -1
            for i in range(s):
                if b[i] * sg[i] <= 0.0:
                    xi = x[idx[i]]
                    a = xi / (xi - b[i]) if xi != b[i] else 0.0
                    if a < step:
                        step = a
                        cross = i
            if cross < 0:
                for i in range(s):
                    x[idx[i]] = b[i]
            else:
                if step <= 0.0 and cross == joined:  # rounding: the join does not descend
                    break
                n_keep = 0
                for i in range(s):
                    ki = idx[i]
                    new = 0.0 if i == cross else x[ki] + step * (b[i] - x[ki])
                    if new * sg[i] <= 0.0:
                        new = 0.0
                    x[ki] = new
                    if new != 0.0:
                        idx[n_keep] = ki
                        sg[n_keep] = sg[i]
                        n_keep += 1
                    else:
                        inA[ki] = False
                if n_keep == s - 1:  # one atom left: delete its row and column of the factor
                    _chol_delete(L, s, cross)
                elif n_keep > 0 and _chol_factor(G, idx, n_keep, L) >= 0:
                    s = n_keep
                    break
                s = n_keep
                joined = -1
                solve = s > 0
                if solve:
                    continue
        # at the face's minimiser: the fresh residual, its worst violation, the next atom
        _residual_on(G, q, x, idx, s, r)
        pick = _most_violated(r, t, inA, tol)
        if pick < 0:
            worst = 0.0  # on the support: r_k = t_k σ_k at the face's minimiser, to rounding
            for i in range(s):
                v = abs(r[idx[i]] - t[idx[i]] * sg[i])
                if v > worst:
                    worst = v
            # (1, ·): solved; (0, ·): only rounding on the support is left, CD finishes
            return (1 if worst <= tol else 0), steps
        if not _chol_append(G, idx, s, pick, L):
            return 0, steps
        idx[s] = pick
        sg[s] = 1.0 if r[pick] > 0.0 else -1.0
        inA[pick] = True
        joined = s
        s += 1
        solve = True
    _residual(G, q, x, r)
    return 0, steps


@_jit
def cd_block(G: Any, Q: Any, X: Any, t: Any, tol: float, max_iter: int,
             n_iter: Any, violation: Any, inner_max: int = 8, active_steps: int = 0) -> None:
    """The LASSO, in place, for every row of one block.

    G: (K, K) Gram matrix CᵀC; Q: (B, K) rows q = Cᵀy; X: (B, K) warm start, overwritten with the
    codes; t: (K,) thresholds α/λ; tol: KKT tolerance (scaled units); max_iter: full sweeps.
    Outputs n_iter: (B,) active-set steps plus full sweeps used; violation: (B,) the final KKT
    violation.

    First at most ``active_steps`` steps of the active-set method (``_active_set``), which
    solves almost every datum; a datum it hands over is finished by coordinate descent: rounds
    of one full sweep, at most ``inner_max`` sweeps over the active set (r kept on it only, then
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
    sg = np.empty(K, dtype=X.dtype)
    inA = np.empty(K, dtype=np.bool_)
    for b in range(B):
        x = X[b]
        it = 0
        if active_steps > 0:
            code, it = _active_set(G, Q[b], x, r, t, tol, active_steps, active, sg, inA, L, rhs)
            if code == 1:
                n_iter[b] = it
                violation[b] = _kkt_violation(x, r, t)
                continue
        else:
            _residual(G, Q[b], x, r)
        v = _kkt_violation(x, r, t)
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
            code = 0
            for _ in range(K):  # active-set steps until the face's minimiser is reached
                code = _polish(G, Q[b], x, r, t, tol, active, L, rhs, r_new)
                if code != 0:
                    break
            if code == 1:
                v = 0.0
                break
            v = _kkt_violation(x, r, t)
        n_iter[b] = it
        violation[b] = _kkt_violation(x, r, t)



@_jit
def _lars_one(G: Any, q: Any, x: Any, c: Any, t: float, max_steps: int, idx: Any, L: Any,
              d: Any, a: Any, inA: Any) -> int:
    """The LARS–lasso homotopy (Efron, Hastie, Johnstone & Tibshirani 2004, with the lasso
    modification) for one datum from x = 0, down to the common threshold t: the active
    correlations |c_A| = c_max fall together along x_A += γ G_AA⁻¹ sign(c_A) while an inactive
    correlation catches up (it joins) or an active coefficient reaches zero (it leaves).
    The Cholesky factor of G_AA grows by one row per join (O(s²)) and is rebuilt after a drop.
    In place on x and c (= q − Gx, updated along the path). Returns the steps, or −1 when the
    active atoms become linearly dependent (the caller finishes by coordinate descent)."""
    K = x.shape[0]
    for k in range(K):
        x[k] = 0.0
        c[k] = q[k]
        inA[k] = False
    cmax = 0.0
    j = -1
    for k in range(K):
        if abs(c[k]) > cmax:
            cmax = abs(c[k])
            j = k
    if cmax <= t:
        return 0
    s = 0
    steps = 0
    join = j
    while steps < max_steps:
        steps += 1
        if join >= 0:  # grow the factor by one row
            if not _chol_append(G, idx, s, join, L):
                return -1
            idx[s] = join
            inA[join] = True
            s += 1
        # direction: G_AA d = sign(c_A)
        for i in range(s):
            d[i] = 1.0 if c[idx[i]] > 0.0 else -1.0
        for i in range(s):
            v = d[i]
            for p in range(i):
                v -= L[i, p] * d[p]
            d[i] = v / L[i, i]
        for i in range(s - 1, -1, -1):
            v = d[i]
            for p in range(i + 1, s):
                v -= L[p, i] * d[p]
            d[i] = v / L[i, i]
        for k in range(K):
            a[k] = 0.0
        for i in range(s):
            di = d[i]
            ki = idx[i]
            for k in range(K):
                a[k] += G[ki, k] * di
        gamma = cmax - t  # the step that reaches the target threshold
        join = -1
        drop = -1
        for k in range(K):
            if inA[k]:
                continue
            den = 1.0 - a[k]
            if den > 1e-12:
                g1 = (cmax - c[k]) / den
                if 0.0 < g1 < gamma:
                    gamma = g1
                    join = k
            den = 1.0 + a[k]
            if den > 1e-12:
                g2 = (cmax + c[k]) / den
                if 0.0 < g2 < gamma:
                    gamma = g2
                    join = k
        for i in range(s):
            xi = x[idx[i]]
            if xi != 0.0 and xi * d[i] < 0.0:
                g3 = -xi / d[i]
                if g3 < gamma:
                    gamma = g3
                    drop = i
                    join = -1
        for i in range(s):
            x[idx[i]] += gamma * d[i]
        for k in range(K):
            c[k] -= gamma * a[k]
        cmax -= gamma
        if join < 0 and drop < 0:
            return steps  # reached t
        if drop >= 0:  # remove it and rebuild the factor of the remaining active set
            kd = idx[drop]
            x[kd] = 0.0
            inA[kd] = False
            for i in range(drop, s - 1):
                idx[i] = idx[i + 1]
            s -= 1
            if _chol_factor(G, idx, s, L) >= 0:
                return -1
    return -1


@_jit
def lars_block(G: Any, Q: Any, X: Any, t: Any, tol: float, max_iter: int,
               n_iter: Any, violation: Any) -> None:
    """LARS–lasso (``_lars_one``) for every row of one block with a common threshold t[0],
    then the KKT check on a freshly computed residual; a datum that fails it (rounding along
    the path, or a dependent active set) is finished by ``cd_block`` from where LARS left it.
    Arguments as ``cd_block``; n_iter counts homotopy steps (plus sweeps after a hand-over)."""
    B, K = X.shape
    c = np.empty(K, dtype=X.dtype)
    r = np.empty(K, dtype=X.dtype)
    idx = np.empty(K, dtype=np.int64)
    L = np.empty((K, K), dtype=X.dtype)
    d = np.empty(K, dtype=X.dtype)
    a = np.empty(K, dtype=X.dtype)
    inA = np.empty(K, dtype=np.bool_)
    one_n = np.zeros(1, dtype=np.int64)
    one_v = np.zeros(1, dtype=X.dtype)
    for b in range(B):
        x = X[b]
        steps = _lars_one(G, Q[b], x, c, t[0], 4 * K, idx, L, d, a, inA)
        _residual(G, Q[b], x, r)
        v = _kkt_violation(x, r, t)
        if steps < 0 or v > tol:
            cd_block(G, Q[b:b + 1], X[b:b + 1], t, tol, max_iter, one_n, one_v, 8, 0)
            n_iter[b] = max(steps, 0) + one_n[0]
            violation[b] = one_v[0]
        else:
            n_iter[b] = steps
            violation[b] = v
