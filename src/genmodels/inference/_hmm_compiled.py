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

The kernels themselves live in ``_hmm_numba`` (module-level functions, so that Numba's disk
cache serves later processes); this module imports it lazily, on first use, and holds the
torch side: the scaled likelihoods (in a reused scratch buffer), the outputs, the logarithms of
the normalisers, and the split of a batch over threads. The first use compiles (a few seconds,
once per dtype and machine); later processes load the machine code in milliseconds.
"""

from __future__ import annotations

import functools
import itertools
import math
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch
from torch import Tensor

from genmodels._threads import choose_threads, idle_cores, thread_ceiling

__all__ = ["available", "forward_backward", "viterbi"]


@functools.cache
def available() -> bool:
    """Whether Numba can be imported (the compiled forms need it)."""
    try:
        import numba  # noqa: F401
    except ImportError:  # pragma: no cover - numba is a dependency; kept for odd installs
        return False
    return True


@functools.cache
def _kernels() -> Any:
    """The compiled kernels (Numba imported, and the machine code loaded from its on-disk cache
    or compiled, on first use)."""
    from genmodels.inference import _hmm_numba

    return _hmm_numba


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
    work = B * T * K * K
    n = 1 if work < _MIN_PARALLEL_WORK else min(B, choose_threads(
        work, ceiling=thread_ceiling(), idle=idle_cores(),
        min_flops_per_thread=_MIN_PARALLEL_WORK / 2))
    if n <= 1:
        kernel(*shared, *per_seq)
        return
    def part(a: Any, lo: int, hi: int) -> Any:  # per-sequence arrays are cut, the rest kept
        return a[lo:hi] if getattr(a, "shape", (0,))[:1] == (B,) else a

    cuts = [B * i // n for i in range(n + 1)]
    futures = [_pool(n).submit(kernel, *shared, *(part(a, lo, hi) for a in per_seq))
               for lo, hi in itertools.pairwise(cuts)]
    for f in futures:
        f.result()


#: The largest scratch buffer kept between calls (bytes); larger ones are freed after use.
_MAX_KEPT_SCRATCH = 1 << 28
_local = threading.local()


def scratch(name: str, shape: tuple[int, ...], dtype: torch.dtype) -> Tensor:
    """A tensor of ``shape`` on this thread's reusable buffer ``name``, for a temporary that
    never outlives the call that asked for it (the next request for ``name`` overwrites it).
    Reusing it spares the allocator a fresh (B, T, K) block per call, whose pages would
    otherwise be faulted in anew each time (measured: half the time of a posterior over
    1,000 × 100 steps)."""
    n = math.prod(shape)
    kept: dict[tuple[str, torch.dtype], Tensor] = _local.__dict__.setdefault("scratch", {})
    buf = kept.get((name, dtype))
    if buf is None or buf.numel() < n:
        buf = torch.empty(n, dtype=dtype)
        if n * buf.element_size() <= _MAX_KEPT_SCRATCH:
            kept[(name, dtype)] = buf
    return buf[:n].view(shape)


def _scaled_likelihoods(ll: Tensor) -> tuple[Tensor, Tensor]:
    """lik = exp(ll − scale) with scale = max_k ll (finite scales only), vectorised once for
    both passes (the kernels' own exp would be scalar), into scratch memory. The exponential
    is NumPy's (measured 1.7× torch's on float64 here)."""
    import numpy as np

    scale = ll.amax(-1)
    scale = torch.where(torch.isfinite(scale), scale, torch.zeros((), dtype=ll.dtype))
    lik = torch.sub(ll, scale[..., None], out=scratch("lik", tuple(ll.shape), ll.dtype))
    np.exp(lik.numpy(), out=lik.numpy())
    return lik, scale


def forward_backward(init: Tensor, trans: Tensor, ll: Tensor, lengths: Tensor | None, *,
                     counts: bool, keep_pred: bool = False, smooth: bool = True,
                     filtered: bool = True
                     ) -> tuple[Tensor | None, Tensor | None, Tensor, Tensor | None,
                                Tensor | None]:
    """Filter and smoother. init: (B, K) probabilities; trans: (K, K) or (T−1, K, K);
    ll: (B, T, K); lengths: (B,) or None. Returns filt (B, T, K), pred (B, T, K) if
    ``keep_pred``, log_norm (B, T), γ (B, T, K) and Σ_t ξ_t (B, K, K) if ``counts`` — γ and
    counts are None without ``smooth``, or when the filter met a zero-probability step
    (log_norm −inf) or some γ underflowed (the caller then takes the log-space torch form).
    ``filtered=False`` (with ``smooth``): γ overwrites the filter, and filt is None — one
    (B, T, K) block less to allocate when only the smoothed marginals are wanted."""
    import numpy as np

    B, T, K = ll.shape
    ll = ll.contiguous()  # each sequence's steps one after another (no copy if already so)
    lik, scale = _scaled_likelihoods(ll)
    trans3 = _as_3d(trans)
    filt, norm = torch.empty_like(ll), ll.new_empty(B, T)
    dummy = ll.new_empty(1, 1, 1)
    pred = torch.empty_like(ll) if keep_pred else dummy
    in_place = smooth and not filtered
    gamma = filt if in_place else torch.empty_like(ll) if smooth else dummy
    xi = ll.new_empty(B, K, K) if counts and smooth else dummy
    ok = np.ones(B, dtype=np.bool_)
    kernels = _kernels()
    per_seq = (_np(init), lik.numpy(), scale.numpy(), ll.numpy(), _lengths(lengths, B, T),
               filt.numpy(), norm.numpy())
    if _use_lanes(B, T, K, _FB_LANES_MAX_K) and not keep_pred:
        _run(kernels.fb_lanes, (_np(trans3),),
             (*per_seq, gamma.numpy(), in_place, xi.numpy(), counts and smooth, smooth, ok),
             ll.shape)
    else:
        _run(kernels.fb_kernel, (_np(trans3.mT), _np(trans3)),
             (*per_seq, pred.numpy(), keep_pred, gamma.numpy(), xi.numpy(), counts and smooth,
              smooth, ok), ll.shape)
    log_norm = norm.log_().add_(scale)  # log p̂(y_t | y_<t), Eq. 2.40
    out_pred = pred if keep_pred else None
    if not smooth or not bool(ok.all()):
        return None if in_place else filt, out_pred, log_norm, None, None
    return None if in_place else filt, out_pred, log_norm, gamma, xi if counts else None


def viterbi(log_init: Tensor, log_trans: Tensor, ll: Tensor, lengths: Tensor | None
            ) -> tuple[Tensor, Tensor]:
    """Most probable paths. Returns states (B, T) long (−1 at padding), log joint (B,)."""
    B, T, K = ll.shape
    states = torch.empty(B, T, dtype=torch.long)
    log_joint = ll.new_empty(B)
    lt = _as_3d(log_trans)
    kernels = _kernels()
    if _use_lanes(B, T, K, _VITERBI_LANES_MAX_K):
        kernel, shared = kernels.viterbi_lanes, (_np(lt),)
    else:
        kernel, shared = kernels.viterbi_kernel, (_np(lt.mT),)
    _run(kernel, shared, (_np(log_init), _np(ll), _lengths(lengths, B, T), states.numpy(),
                          log_joint.numpy()), ll.shape)
    return states, log_joint


#: The lane-batched kernels serve K below these (measured against the per-sequence kernels
#: on 1,000 × 100 steps: Viterbi 4× at K = 4, 1.7× at K = 8, even at K = 16; forward–backward
#: 2× at K = 4, 1.2–1.4× at K = 8, even at K = 12) ...
_VITERBI_LANES_MAX_K = 16
_FB_LANES_MAX_K = 11
#: ... and sequences short enough that a group's messages (T, K, LANES) stay small.
_LANES_MAX_ENTRIES = 1 << 20


def _use_lanes(B: int, T: int, K: int, max_k: int) -> bool:
    """Whether B sequences of T steps and K states take a lane-batched kernel."""
    return B > 1 and K < max_k and T * K * _kernels().LANES <= _LANES_MAX_ENTRIES
