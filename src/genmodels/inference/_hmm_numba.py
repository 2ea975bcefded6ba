"""The Numba kernels behind ``genmodels.inference._hmm_compiled`` (imported lazily from there,
so that importing genmodels does not import Numba).

Module-level functions, so that Numba's on-disk cache (``cache=True``) finds them again in the
next process: functions defined inside a closure hash their closure's contents, which change
from process to process, and were compiled anew every time (measured: 1.7 s per process).
"""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np
from llvmlite import ir
from numba.core.extending import intrinsic

#: Floating-point licence for the sums of the recursions: reassociation (so that dot
#: products vectorise), fused multiply–add, no signed zeros, reciprocals. NaN and infinity
#: keep their IEEE meaning (−inf log-probabilities are legitimate).
_FASTMATH = {"reassoc", "contract", "nsz", "arcp"}
#: Viterbi's max-plus scores are never NaN (−inf + finite or −inf + −inf only; +inf is
#: rejected by validation), so the compiler may also assume no NaN there.
_FASTMATH_MAXPLUS = _FASTMATH | {"nnan"}


def _maxnum(typingctx: Any, a: Any, b: Any) -> Any:
    """LLVM's maxnum: a maximum the loop vectoriser recognises as a reduction (numba's
    max() and a compare-and-select do not vectorise: measured 3× at K = 32)."""

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        t = args[0].type
        fn = builder.module.declare_intrinsic("llvm.maxnum", [t], ir.FunctionType(t, [t, t]))
        return builder.call(fn, args, fastmath=("nnan", "nsz"))

    if a != b:  # one floating type for both (no implicit conversion in an intrinsic)
        return None
    return a(a, b), codegen


maxnum: Any = intrinsic(_maxnum)


_jit = numba.njit(cache=True, nogil=True, error_model="numpy", fastmath=_FASTMATH)
_jit_maxplus = numba.njit(cache=True, nogil=True, error_model="numpy", fastmath=_FASTMATH_MAXPLUS)


@_jit
def matvec(M: Any, x: Any, out: Any) -> None:
    """out = M x, four rows at a time: four independent sums per pass over x, so that the
    additions do not wait on one another (measured 1.2× at K = 32 over one row at a
    time)."""
    K = x.shape[0]
    j = 0
    while j + 4 <= K:
        r0, r1, r2, r3 = M[j], M[j + 1], M[j + 2], M[j + 3]
        a0 = a1 = a2 = a3 = 0.0
        for i in range(K):
            v = x[i]
            a0 += r0[i] * v
            a1 += r1[i] * v
            a2 += r2[i] * v
            a3 += r3[i] * v
        out[j], out[j + 1], out[j + 2], out[j + 3] = a0, a1, a2, a3
        j += 4
    while j < K:
        r0 = M[j]
        a0 = 0.0
        for i in range(K):
            a0 += r0[i] * x[i]
        out[j] = a0
        j += 1


@_jit
def filter_one(trans_T: Any, init: Any, lik: Any, scale: Any, ll: Any, n: int, filt: Any,
               norm: Any, pred: Any, store_pred: bool, p: Any) -> bool:
    """The filter of one sequence (T, K) over its first n steps; lik = exp(ll − scale),
    likelihoods scaled to max 1 per step; trans_T [.., to, from]. Writes every entry of
    filt, norm (and pred when ``store_pred``), 0 at padding; the normaliser of step t is
    log p̂(y_t | y_<t) = log norm[t] + scale[t] (the logarithms are left to the caller,
    vectorised; a step taken in log space rewrites scale[t], and padding has norm 1,
    scale 0). p: (K,) scratch. Returns False if some step has zero probability (norm 0
    there)."""
    K = lik.shape[1]
    tv = trans_T.shape[0] > 1
    possible = True
    for t in range(n):
        if t == 0:
            p[:] = init
        else:  # time update, Eq. 2.36: pred_t(j) = Σ_i f_{t−1}(i) P_ij
            matvec(trans_T[t - 1] if tv else trans_T[0], filt[t - 1], p)
        if store_pred:
            pred[t] = p
        # measurement update, Eq. 2.37, and the scaled normaliser of Eq. 2.40
        f, lt = filt[t], lik[t]
        s = 0.0
        for k in range(K):
            f[k] = p[k] * lt[k]
            s += f[k]
        norm[t] = s
        if s > 0.0:
            inv = 1.0 / s
            for k in range(K):  # (a loop: numba's in-place array operators cost more)
                f[k] *= inv
            continue
        # the scaled normaliser underflowed (or no state can emit y_t): log space
        c = -math.inf
        for k in range(K):
            u = math.log(p[k]) + ll[t, k] if p[k] > 0.0 else -math.inf
            f[k] = u
            c = max(c, u)
        if c == -math.inf:  # zero probability: reported by the caller
            f[:] = 0.0
            possible = False
            continue
        s = 0.0
        for k in range(K):
            f[k] = math.exp(f[k] - c)
            s += f[k]
        f *= 1.0 / s
        norm[t], scale[t] = s, c
    filt[n:] = 0.0
    norm[n:] = 1.0
    scale[n:] = 0.0
    if store_pred:
        pred[n:] = 0.0
    return possible


@_jit
def smooth_one(trans: Any, filt: Any, lik: Any, n: int, gamma: Any, counts: Any,
               want_counts: bool, beta: Any, w: Any, acc_fw: Any) -> bool:
    """γ_t = f_t ⊙ β_t / Σ for one sequence, with β_{t−1}(i) ∝ Σ_j P_ij lik_t(j) β_t(j)
    (the backward message of Eqs. 2.41–2.43 in scaled form; equal to Eqs. 2.38–2.39).
    β is rescaled to sum 1 each step, so no sum can overflow (a sum, unlike a
    maximum, vectorises). With ``want_counts``,
    counts = Σ_t ξ_t, ξ_t(i, j) = f_{t−1}(i) P_ij lik_t(j) β_t(j) / Σ (the pairwise
    marginal, Eq. 2.44). ``gamma`` may be ``filt`` itself (γ then overwrites the filter:
    step t−1 of the filter is read before γ_{t−1} is written). beta, w: (K,),
    acc_fw: (K, K) scratch. Returns False if some γ underflowed (the caller then takes
    the log-space form)."""
    K = filt.shape[1]
    tv = trans.shape[0] > 1
    gamma[n - 1] = filt[n - 1]
    gamma[n:] = 0.0
    if want_counts:
        acc_fw[:] = 0.0
    beta[:] = 1.0
    r = 1.0  # β_t times r sums to 1
    for t in range(n - 1, 0, -1):
        lt = lik[t]
        for j in range(K):
            w[j] = lt[j] * beta[j] * r
        P = trans[t - 1] if tv else trans[0]
        matvec(P, w, beta)
        f = filt[t - 1]
        s = 0.0
        tot = 0.0
        for i in range(K):
            tot += beta[i]
            s += f[i] * beta[i]
        if not (s > 0.0 and s < math.inf):
            return False
        inv = 1.0 / s
        if want_counts:  # Σ_t f_{t−1}(i) w_t(j) / Σ, times P_ij (at the end if fixed)
            for i in range(K):
                a = f[i] * inv
                c_row = acc_fw[i]
                if tv:
                    row = P[i]
                    for j in range(K):
                        c_row[j] += a * row[j] * w[j]
                else:
                    for j in range(K):
                        c_row[j] += a * w[j]
        out = gamma[t - 1]
        for i in range(K):
            out[i] = f[i] * beta[i] * inv
        r = 1.0 / tot
    if want_counts:
        counts[:] = acc_fw if tv else acc_fw * trans[0]
    return True


@_jit
def fb_kernel(trans_T: Any, trans: Any, init: Any, lik: Any, scale: Any, ll: Any,
              lengths: Any, filt: Any, norm: Any, pred: Any, store_pred: bool,
              gamma: Any, counts: Any, want_counts: bool, smooth: bool, ok: Any) -> None:
    """Filter then (with ``smooth``) smoother, sequence by sequence, so that a sequence's
    filter is still in cache when its smoother reads it. ok[b]: False if sequence b has
    zero probability or its γ underflowed."""
    K = lik.shape[2]
    p = np.empty(K, dtype=lik.dtype)
    beta = np.empty(K, dtype=lik.dtype)
    w = np.empty(K, dtype=lik.dtype)
    acc_fw = np.empty((K, K), dtype=lik.dtype)
    for b in range(lik.shape[0]):
        n = lengths[b]
        ok[b] = filter_one(trans_T, init[b], lik[b], scale[b], ll[b], n, filt[b],
                           norm[b], pred[b] if store_pred else pred[0], store_pred, p)
        if smooth and ok[b]:
            ok[b] = smooth_one(trans, filt[b], lik[b], n, gamma[b],
                               counts[b] if want_counts else counts[0], want_counts,
                               beta, w, acc_fw)


@_jit_maxplus
def max_plus(LT: Any, delta: Any, best: Any) -> None:
    """best[j] = max_i δ_i + LT[j, i]: the max-product step in log space, four rows at a time
    as ``matvec``. Without argmaxes the maxima vectorise."""
    K = delta.shape[0]
    j = 0
    while j + 4 <= K:
        r0, r1, r2, r3 = LT[j], LT[j + 1], LT[j + 2], LT[j + 3]
        v = delta[0]
        a0, a1, a2, a3 = v + r0[0], v + r1[0], v + r2[0], v + r3[0]
        for i in range(1, K):
            v = delta[i]
            a0 = maxnum(a0, v + r0[i])
            a1 = maxnum(a1, v + r1[i])
            a2 = maxnum(a2, v + r2[i])
            a3 = maxnum(a3, v + r3[i])
        best[j], best[j + 1], best[j + 2], best[j + 3] = a0, a1, a2, a3
        j += 4
    while j < K:
        r0 = LT[j]
        a0 = delta[0] + r0[0]
        for i in range(1, K):
            a0 = maxnum(a0, delta[i] + r0[i])
        best[j] = a0
        j += 1


@_jit_maxplus
def first_argmax_plus(delta: Any, row: Any) -> int:
    """The first i maximising δ_i + row[i]."""
    a = 0
    b = delta[0] + row[0]
    for i in range(1, delta.shape[0]):
        v = delta[i] + row[i]
        if v > b:
            b = v
            a = i
    return a


@_jit_maxplus
def viterbi_kernel(log_trans_T: Any, log_init: Any, ll: Any, lengths: Any, states: Any,
                   log_joint: Any) -> None:
    """Max-product forward pass keeping the messages δ_t (not backpointers), then the
    backtrack x_{t−1} = argmax_i δ_{t−1}(i) + log P_{i x_t}: the same sums as the forward
    pass, so the same path (first index on ties), and the forward pass needs no argmax."""
    B, T, K = ll.shape
    tv = log_trans_T.shape[0] > 1
    delta = np.empty((T, K), dtype=ll.dtype)  # δ of one sequence, reused
    for b in range(B):
        n = lengths[b]
        for k in range(K):
            delta[0, k] = log_init[b, k] + ll[b, 0, k]
        for t in range(1, n):
            d = delta[t]
            max_plus(log_trans_T[t - 1] if tv else log_trans_T[0], delta[t - 1], d)
            lt = ll[b, t]
            for j in range(K):
                d[j] += lt[j]
        x = 0
        last = delta[n - 1]
        for k in range(1, K):
            if last[k] > last[x]:
                x = k
        log_joint[b] = last[x]
        states[b, n - 1] = x
        for t in range(n - 1, 0, -1):
            LT = log_trans_T[t - 1] if tv else log_trans_T[0]
            x = first_argmax_plus(delta[t - 1], LT[x])
            states[b, t - 1] = x
        states[b, n:] = -1


#: Sequences side by side in the lane-batched kernels (the innermost, vectorised axis; 16 and
#: 64 measured no faster).
LANES = 32


@_jit_maxplus
def viterbi_lanes(log_trans: Any, log_init: Any, ll: Any, lengths: Any, states: Any,
                  log_joint: Any) -> None:
    """``viterbi_kernel`` for many sequences of few states: LANES sequences at a time, their
    messages δ_t(k) side by side, so that every max-plus update is one loop over sequences
    (vectorised) instead of a K-long reduction per sequence (measured 1.7× at K = 8, 4× at
    K = 4; slower from K ≈ 16, where the per-sequence kernel's rows vectorise). log_trans:
    (T′, K, K) ``[from, to]``. Steps past a sequence's length run on the zero log-likelihood
    of the padding and are never read back."""
    B, T, K = ll.shape
    tv = log_trans.shape[0] > 1
    delta = np.empty((T, K, LANES), dtype=ll.dtype)  # δ_t(k) of LANES sequences
    for b0 in range(0, B, LANES):
        m = min(LANES, B - b0)
        n_max = 0
        for g in range(m):
            n_max = max(n_max, lengths[b0 + g])
        for k in range(K):
            for g in range(m):
                delta[0, k, g] = log_init[b0 + g, k] + ll[b0 + g, 0, k]
        for t in range(1, n_max):
            L = log_trans[t - 1] if tv else log_trans[0]
            prev, cur = delta[t - 1], delta[t]
            for j in range(K):  # δ_t(j) = max_i δ_{t−1}(i) + log P_ij, then + log p̂(y_t | j)
                c, p0, l0 = cur[j], prev[0], L[0, j]
                for g in range(m):
                    c[g] = p0[g] + l0
            for i in range(1, K):
                p = prev[i]
                for j in range(K):
                    c, lij = cur[j], L[i, j]
                    for g in range(m):
                        c[g] = maxnum(c[g], p[g] + lij)
            for j in range(K):
                c = cur[j]
                for g in range(m):
                    c[g] += ll[b0 + g, t, j]
        for g in range(m):  # backtrack each sequence, as viterbi_kernel (first_argmax_plus
            # written out: called on the strided column delta[t − 1, :, g] it measured
            # 10–20 % slower at K ≤ 8)
            b = b0 + g
            n = lengths[b]
            x = 0
            for k in range(1, K):
                if delta[n - 1, k, g] > delta[n - 1, x, g]:
                    x = k
            log_joint[b] = delta[n - 1, x, g]
            states[b, n - 1] = x
            for t in range(n - 1, 0, -1):
                L = log_trans[t - 1] if tv else log_trans[0]
                a = 0
                best = delta[t - 1, 0, g] + L[0, x]
                for i in range(1, K):
                    v = delta[t - 1, i, g] + L[i, x]
                    if v > best:
                        best = v
                        a = i
                x = a
                states[b, t - 1] = x
            states[b, n:] = -1


@_jit
def fb_lanes(trans: Any, init: Any, lik: Any, scale: Any, ll: Any, lengths: Any, filt: Any,
             norm: Any, gamma: Any, in_place: bool, counts: Any, want_counts: bool,
             smooth: bool, ok: Any) -> None:
    """``fb_kernel`` (without predictions) for many sequences of few states: LANES sequences
    at a time, so that every update is one vectorised loop over sequences. trans: (T′, K, K)
    ``[from, to]``; the arguments otherwise as ``fb_kernel``'s; ``in_place``: ``gamma`` is
    ``filt`` (γ takes the filter's place).

    A sequence whose normaliser underflows in this fast path is redone by ``filter_one`` and
    ``smooth_one``, which take the step in log space."""
    B, T, K = lik.shape
    G = LANES
    tv = trans.shape[0] > 1
    F = np.empty((T, K, G), dtype=lik.dtype)  # filter, then γ, of LANES sequences
    Lk = np.empty((T, K, G), dtype=lik.dtype)  # their scaled likelihoods
    u = np.empty((K, G), dtype=lik.dtype)  # prediction, then β
    w = np.empty((K, G), dtype=lik.dtype)
    s = np.empty(G, dtype=lik.dtype)
    tot = np.empty(G, dtype=lik.dtype)
    r = np.empty(G, dtype=lik.dtype)
    act = np.empty(G, dtype=lik.dtype)
    acc = np.zeros((K, K, G), dtype=lik.dtype)
    bad = np.zeros(G, dtype=np.bool_)
    p1 = np.empty(K, dtype=lik.dtype)
    b1 = np.empty(K, dtype=lik.dtype)
    w1 = np.empty(K, dtype=lik.dtype)
    a1 = np.empty((K, K), dtype=lik.dtype)
    for b0 in range(0, B, G):
        m = min(G, B - b0)
        n_max = 0
        for g in range(m):
            n_max = max(n_max, lengths[b0 + g])
            bad[g] = False
        for t in range(n_max):  # gather: the sequences side by side
            for k in range(K):
                for g in range(m):
                    Lk[t, k, g] = lik[b0 + g, t, k]
        # -- filter (Eqs. 2.36, 2.37, 2.40)
        for t in range(n_max):
            if t == 0:
                for k in range(K):
                    for g in range(m):
                        u[k, g] = init[b0 + g, k]
            else:
                P = trans[t - 1] if tv else trans[0]
                prev = F[t - 1]
                for j in range(K):
                    c, f0, q = u[j], prev[0], P[0, j]
                    for g in range(m):
                        c[g] = f0[g] * q
                for i in range(1, K):
                    fi = prev[i]
                    for j in range(K):
                        c, q = u[j], P[i, j]
                        for g in range(m):
                            c[g] += fi[g] * q
            cur, lt = F[t], Lk[t]
            for g in range(m):
                s[g] = 0.0
            for k in range(K):
                c, uk, lk = cur[k], u[k], lt[k]
                for g in range(m):
                    c[g] = uk[g] * lk[g]
                    s[g] += c[g]
            for g in range(m):
                r[g] = 1.0 / s[g] if s[g] > 0.0 else 0.0
            for k in range(K):
                c = cur[k]
                for g in range(m):
                    c[g] *= r[g]
            for g in range(m):
                norm[b0 + g, t] = s[g]  # (padding reset to 1 below)
                if not s[g] > 0.0 and t < lengths[b0 + g]:
                    bad[g] = True
        for g in range(m):
            norm[b0 + g, lengths[b0 + g]:] = 1.0  # padding
        if not in_place or not smooth:  # the filtered marginals, unless γ takes their place
            for t in range(n_max):
                for k in range(K):
                    for g in range(m):
                        filt[b0 + g, t, k] = F[t, k, g]
            for g in range(m):
                filt[b0 + g, lengths[b0 + g]:] = 0.0
        if smooth:
            # -- smoother (Eqs. 2.38–2.39 / 2.41–2.44, scaled β as smooth_one)
            for k in range(K):
                for g in range(m):
                    u[k, g] = 1.0
            for g in range(m):
                r[g] = 1.0
            if want_counts:
                acc[:, :, :m] = 0.0
            for t in range(n_max - 1, 0, -1):
                P = trans[t - 1] if tv else trans[0]
                lt, prev = Lk[t], F[t - 1]
                for g in range(m):
                    act[g] = 1.0 if t < lengths[b0 + g] else 0.0
                for j in range(K):
                    wj, lj, uj = w[j], lt[j], u[j]
                    for g in range(m):
                        wj[g] = lj[g] * uj[g] * r[g]
                for i in range(K):  # β_{t−1}(i) = Σ_j P_ij w_t(j)
                    c = u[i]
                    q = P[i, 0]
                    w0 = w[0]
                    for g in range(m):
                        c[g] = q * w0[g]
                    for j in range(1, K):
                        q, wj = P[i, j], w[j]
                        for g in range(m):
                            c[g] += q * wj[g]
                for g in range(m):
                    s[g] = 0.0
                    tot[g] = 0.0
                for i in range(K):
                    fi, ui = prev[i], u[i]
                    for g in range(m):
                        tot[g] += ui[g]
                        s[g] += fi[g] * ui[g]
                for g in range(m):
                    if act[g] > 0.0 and not (s[g] > 0.0 and s[g] < math.inf):
                        bad[g] = True
                    if act[g] > 0.0 and s[g] > 0.0:
                        s[g] = 1.0 / s[g]
                        r[g] = 1.0 / tot[g]
                    else:  # not started yet (t ≥ its length), or failed: adds nothing
                        s[g] = 0.0
                        r[g] = 1.0
                if want_counts:  # Σ_t f_{t−1}(i) w_t(j) / Σ (× P_ij, at the end if fixed)
                    for i in range(K):
                        fi = prev[i]
                        for g in range(m):
                            tot[g] = fi[g] * s[g]  # (tot is free again: f_{t−1}(i) / Σ)
                        for j in range(K):
                            a, wj = acc[i, j], w[j]
                            if tv:
                                q = P[i, j]
                                for g in range(m):
                                    a[g] += tot[g] * q * wj[g]
                            else:
                                for g in range(m):
                                    a[g] += tot[g] * wj[g]
                for i in range(K):  # γ_{t−1} over the filter (a lane not started keeps f)
                    fi, ui = prev[i], u[i]
                    for g in range(m):
                        if act[g] > 0.0:
                            fi[g] *= ui[g] * s[g]
                        ui[g] = 1.0 if act[g] == 0.0 else ui[g]
            for t in range(n_max):  # scatter γ, then zeros over the padding
                for k in range(K):
                    for g in range(m):
                        gamma[b0 + g, t, k] = F[t, k, g]
            for g in range(m):
                b = b0 + g
                gamma[b, lengths[b]:] = 0.0
                if want_counts:
                    for i in range(K):
                        for j in range(K):
                            counts[b, i, j] = acc[i, j, g] if tv else acc[i, j, g] * trans[0, i, j]
        for g in range(m):  # the rare sequence that underflowed: the careful kernels
            b = b0 + g
            ok[b] = True
            if bad[g]:
                n = lengths[b]
                ok[b] = filter_one(np.ascontiguousarray(trans.transpose(0, 2, 1)), init[b],
                                   lik[b], scale[b], ll[b], n, filt[b], norm[b], filt[b],
                                   False, p1)
                if smooth and ok[b]:
                    ok[b] = smooth_one(trans, filt[b], lik[b], n, gamma[b],
                                       counts[b] if want_counts else counts[0], want_counts,
                                       b1, w1, a1)
