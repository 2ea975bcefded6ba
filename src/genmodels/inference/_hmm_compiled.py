"""Compiled (Numba) forms of the HMM recursions, for CPU tensors: ``method="compiled"``.

A Python loop over time pays torch's per-call overhead (microseconds) at every step, which
dominates the O(K²) arithmetic of a step for the K of practice; the parallel-in-time forms cut
the number of steps but add work. These kernels run the book's recursions themselves —
the normalised filter (Eqs. 2.36, 2.37, 2.40), the backward smoother (Eqs. 2.38–2.39) and the
max-product recursion with backtracking — as one compiled loop over sequences, time and
states, reading and writing torch's buffers in place (no copies).

Each kernel takes the batch flattened to B sequences with their lengths (B,): steps at and
beyond a sequence's length are padding and left at zero (−1 for states). Missing observations
arrive as log-likelihood 0 (``_check_chain`` sets them). Transitions come as (T′, K, K) with
T′ = 1 for a homogeneous chain and T′ = T − 1 for a time-varying one.

Numba is imported lazily, and the kernels compile on first use (once per dtype; the machine
code is cached on disk, so later processes load it in milliseconds).
"""

from __future__ import annotations

import functools
import itertools
import math
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch
from torch import Tensor

__all__ = ["available", "forward_backward", "viterbi"]


@functools.cache
def available() -> bool:
    """Whether Numba can be imported (the compiled forms need it)."""
    try:
        import numba  # noqa: F401
    except ImportError:  # pragma: no cover - numba is a dependency; kept for odd installs
        return False
    return True


#: Floating-point licence for the sums of the recursions: reassociation (so that dot
#: products vectorise), fused multiply–add, no signed zeros, reciprocals. NaN and infinity
#: keep their IEEE meaning (−inf log-probabilities are legitimate).
_FASTMATH = {"reassoc", "contract", "nsz", "arcp"}
#: Viterbi's max-plus scores are never NaN (−inf + finite or −inf + −inf only; +inf is
#: rejected by validation), so the compiler may also assume no NaN there.
_FASTMATH_MAXPLUS = _FASTMATH | {"nnan"}


@functools.cache
def _kernels() -> Any:
    """Compile (or load from the on-disk cache) the kernels; returns a namespace."""
    import numba
    import numpy as np

    jit = numba.njit(cache=True, nogil=True, error_model="numpy", fastmath=_FASTMATH)
    jit_maxplus = numba.njit(cache=True, nogil=True, error_model="numpy",
                             fastmath=_FASTMATH_MAXPLUS)

    @jit
    def filter_one(trans_T: Any, init: Any, lik: Any, scale: Any, ll: Any, n: int, filt: Any,
                   log_norm: Any, pred: Any, store_pred: bool, p: Any) -> bool:
        """The filter of one sequence (T, K) over its first n steps; lik = exp(ll − scale),
        likelihoods scaled to max 1 per step; trans_T [.., to, from]. Writes every entry of
        filt, log_norm (and pred when ``store_pred``), 0 at padding. p: (K,) scratch.
        Returns False if some step has zero probability (log_norm −inf there)."""
        K = lik.shape[1]
        tv = trans_T.shape[0] > 1
        possible = True
        for t in range(n):
            if t == 0:
                p[:] = init
            else:  # time update, Eq. 2.36: pred_t(j) = Σ_i f_{t−1}(i) P_ij
                PT = trans_T[t - 1] if tv else trans_T[0]
                f_prev = filt[t - 1]
                for j in range(K):
                    row = PT[j]
                    acc = 0.0
                    for i in range(K):
                        acc += f_prev[i] * row[i]
                    p[j] = acc
            if store_pred:
                pred[t] = p
            # measurement update, Eq. 2.37, and the scaled normaliser of Eq. 2.40
            f, lt = filt[t], lik[t]
            s = 0.0
            for k in range(K):
                f[k] = p[k] * lt[k]
                s += f[k]
            if s > 0.0:
                f *= 1.0 / s
                log_norm[t] = math.log(s) + scale[t]
                continue
            # the scaled normaliser underflowed (or no state can emit y_t): log space
            c = -math.inf
            for k in range(K):
                u = math.log(p[k]) + ll[t, k] if p[k] > 0.0 else -math.inf
                f[k] = u
                c = max(c, u)
            if c == -math.inf:  # zero probability: reported by the caller
                f[:] = 0.0
                log_norm[t] = -math.inf
                possible = False
                continue
            s = 0.0
            for k in range(K):
                f[k] = math.exp(f[k] - c)
                s += f[k]
            f *= 1.0 / s
            log_norm[t] = c + math.log(s)
        filt[n:] = 0.0
        log_norm[n:] = 0.0
        if store_pred:
            pred[n:] = 0.0
        return possible

    @jit
    def smooth_one(trans: Any, filt: Any, lik: Any, n: int, gamma: Any, counts: Any,
                   want_counts: bool, beta: Any, w: Any, acc_fw: Any) -> bool:
        """γ_t = f_t ⊙ β_t / Σ for one sequence, with β_{t−1}(i) ∝ Σ_j P_ij lik_t(j) β_t(j)
        (the backward message of Eqs. 2.41–2.43 in scaled form; equal to Eqs. 2.38–2.39).
        β is rescaled to max 1 each step, so no sum can overflow. With ``want_counts``,
        counts = Σ_t ξ_t, ξ_t(i, j) = f_{t−1}(i) P_ij lik_t(j) β_t(j) / Σ (the pairwise
        marginal, Eq. 2.44). beta, w: (K,), acc_fw: (K, K) scratch. Returns False if some γ
        underflowed (the caller then takes the log-space form)."""
        K = filt.shape[1]
        tv = trans.shape[0] > 1
        gamma[n - 1] = filt[n - 1]
        gamma[n:] = 0.0
        if want_counts:
            acc_fw[:] = 0.0
        beta[:] = 1.0
        for t in range(n - 1, 0, -1):
            lt = lik[t]
            for j in range(K):
                w[j] = lt[j] * beta[j]
            P = trans[t - 1] if tv else trans[0]
            f, out = filt[t - 1], gamma[t - 1]
            s = 0.0
            mx = 0.0
            for i in range(K):
                row = P[i]
                acc = 0.0
                for j in range(K):
                    acc += row[j] * w[j]
                beta[i] = acc
                mx = max(mx, acc)
                out[i] = f[i] * acc
                s += out[i]
            if not (s > 0.0 and s < math.inf):
                return False
            inv = 1.0 / s
            out *= inv
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
            beta *= 1.0 / mx
        if want_counts:
            counts[:] = acc_fw if tv else acc_fw * trans[0]
        return True

    @jit
    def fb_kernel(trans_T: Any, trans: Any, init: Any, lik: Any, scale: Any, ll: Any,
                  lengths: Any, filt: Any, log_norm: Any, pred: Any, store_pred: bool,
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
                               log_norm[b], pred[b] if store_pred else pred[0], store_pred, p)
            if smooth and ok[b]:
                ok[b] = smooth_one(trans, filt[b], lik[b], n, gamma[b],
                                   counts[b] if want_counts else counts[0], want_counts,
                                   beta, w, acc_fw)

    @jit_maxplus
    def max_plus_by_reduction(delta: Any, LT: Any, best: Any, arg: Any) -> None:
        """best[j] = max_i δ_i + LT[j, i] (first index on ties); the small-K form."""
        K = delta.shape[0]
        for j in range(K):
            row = LT[j]
            b = delta[0] + row[0]
            a = 0
            for i in range(1, K):
                v = delta[i] + row[i]
                if v > b:
                    b = v
                    a = i
            best[j] = b
            arg[j] = a

    @jit_maxplus
    def max_plus_by_rows(delta: Any, L: Any, best: Any, arg: Any) -> None:
        """The same over rows of L = LTᵀ: vectorises over j, the large-K form."""
        K = delta.shape[0]
        row = L[0]
        for j in range(K):
            best[j] = delta[0] + row[j]
            arg[j] = 0
        for i in range(1, K):
            row = L[i]
            d = delta[i]
            for j in range(K):
                v = d + row[j]
                gt = v > best[j]
                best[j] = v if gt else best[j]
                arg[j] = i if gt else arg[j]

    @jit_maxplus
    def viterbi_kernel(log_trans: Any, log_trans_T: Any, log_init: Any, ll: Any,
                       lengths: Any, states: Any, log_joint: Any) -> None:
        B, T, K = ll.shape
        tv = log_trans.shape[0] > 1
        by_rows = K >= 16  # measured: the row form wins from K ≈ 16 (benchmarks/bench_hmm.py)
        psi = np.empty((T, K), dtype=np.int32)  # backpointers of one sequence, reused
        delta = np.empty(K, dtype=ll.dtype)
        best = np.empty(K, dtype=ll.dtype)
        for b in range(B):
            n = lengths[b]
            for k in range(K):
                delta[k] = log_init[b, k] + ll[b, 0, k]
            for t in range(1, n):
                s = t - 1 if tv else 0
                if by_rows:
                    max_plus_by_rows(delta, log_trans[s], best, psi[t])
                else:
                    max_plus_by_reduction(delta, log_trans_T[s], best, psi[t])
                for j in range(K):
                    delta[j] = best[j] + ll[b, t, j]
            x = 0
            for k in range(1, K):
                if delta[k] > delta[x]:
                    x = k
            log_joint[b] = delta[x]
            states[b, n - 1] = x
            for t in range(n - 1, 0, -1):
                x = psi[t, x]
                states[b, t - 1] = x
            states[b, n:] = -1

    class Kernels:
        forward_backward = fb_kernel
        viterbi = viterbi_kernel

    return Kernels


def _np(t: Tensor) -> Any:
    return t.detach().contiguous().numpy()


def _lengths(lengths: Tensor | None, B: int, T: int) -> Any:
    import numpy as np

    if lengths is None:
        return np.full(B, T, dtype=np.int64)
    return _np(lengths.to(torch.int64))


def _as_3d(trans: Tensor) -> Tensor:
    return trans[None] if trans.dim() == 2 else trans


#: Below this many state updates (B · T · K²) a batch runs on the calling thread alone.
_MIN_PARALLEL_WORK = 1 << 21


@functools.cache
def _pool(n: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(n, thread_name_prefix="genmodels-hmm")


def _run(kernel: Any, shared: tuple[Any, ...], per_seq: tuple[Any, ...], shape: torch.Size
         ) -> None:
    """Run ``kernel(*shared, *per_seq)`` with the batch (the first axis of the arrays in
    ``per_seq`` with B rows) split across ``torch.get_num_threads()`` threads (the kernels
    release the GIL).
    shape: (B, T, K) of the chain, to size the work."""
    B, T, K = shape
    n = min(torch.get_num_threads(), B)
    if n <= 1 or B * T * K * K < _MIN_PARALLEL_WORK:
        kernel(*shared, *per_seq)
        return
    def part(a: Any, lo: int, hi: int) -> Any:  # per-sequence arrays are cut, the rest kept
        return a[lo:hi] if getattr(a, "shape", (0,))[:1] == (B,) else a

    cuts = [B * i // n for i in range(n + 1)]
    futures = [_pool(n).submit(kernel, *shared, *(part(a, lo, hi) for a in per_seq))
               for lo, hi in itertools.pairwise(cuts)]
    for f in futures:
        f.result()


def _scaled_likelihoods(ll: Tensor) -> tuple[Tensor, Tensor]:
    """lik = exp(ll − scale) with scale = max_k ll (finite scales only), vectorised by torch
    once for both passes (the kernels' own exp would be scalar)."""
    scale = ll.amax(-1)
    scale = torch.where(torch.isfinite(scale), scale, torch.zeros((), dtype=ll.dtype))
    lik = ll - scale[..., None]
    return lik.exp_(), scale


def forward_backward(init: Tensor, trans: Tensor, ll: Tensor, lengths: Tensor | None, *,
                     counts: bool, keep_pred: bool = False, smooth: bool = True
                     ) -> tuple[Tensor, Tensor | None, Tensor, Tensor | None, Tensor | None]:
    """Filter and smoother. init: (B, K) probabilities; trans: (K, K) or (T−1, K, K);
    ll: (B, T, K); lengths: (B,) or None. Returns filt (B, T, K), pred (B, T, K) if
    ``keep_pred``, log_norm (B, T), γ (B, T, K) and Σ_t ξ_t (B, K, K) if ``counts`` — γ and
    counts are None without ``smooth``, or when the filter met a zero-probability step
    (log_norm −inf) or some γ underflowed (the caller then takes the log-space torch form)."""
    import numpy as np

    B, T, K = ll.shape
    ll = ll.contiguous()  # each sequence's steps one after another (no copy if already so)
    lik, scale = _scaled_likelihoods(ll)
    trans3 = _as_3d(trans)
    filt, log_norm = torch.empty_like(ll), ll.new_empty(B, T)
    dummy = ll.new_empty(1, 1, 1)
    pred = torch.empty_like(ll) if keep_pred else dummy
    gamma = torch.empty_like(ll) if smooth else dummy
    xi = ll.new_empty(B, K, K) if counts and smooth else dummy
    ok = np.ones(B, dtype=np.bool_)
    _run(_kernels().forward_backward, (_np(trans3.mT), _np(trans3)),
         (_np(init), lik.numpy(), scale.numpy(), ll.numpy(), _lengths(lengths, B, T),
          filt.numpy(), log_norm.numpy(), pred.numpy(), keep_pred, gamma.numpy(), xi.numpy(),
          counts and smooth, smooth, ok), ll.shape)
    out_pred = pred if keep_pred else None
    if not smooth or not bool(ok.all()):
        return filt, out_pred, log_norm, None, None
    return filt, out_pred, log_norm, gamma, xi if counts else None


def viterbi(log_init: Tensor, log_trans: Tensor, ll: Tensor, lengths: Tensor | None
            ) -> tuple[Tensor, Tensor]:
    """Most probable paths. Returns states (B, T) long (−1 at padding), log joint (B,)."""
    B, T, _ = ll.shape
    states = torch.empty(B, T, dtype=torch.long)
    log_joint = ll.new_empty(B)
    lt = _as_3d(log_trans)
    _run(_kernels().viterbi, (_np(lt), _np(lt.mT)),
         (_np(log_init), _np(ll), _lengths(lengths, B, T), states.numpy(),
          log_joint.numpy()), ll.shape)
    return states, log_joint
