"""Exact inference in the hidden Markov model: pure functions on tensors (B10–B12, §2.2.1).

Every function here takes the model only through three tensors, so one forward–backward serves
every emission family (STYLE.md §1):

* ``log_init``: (K,) or (*batch, K), log p̂(x_1 = k) = log π_k.
* ``log_trans``: (K, K) for a homogeneous chain, or (T−1, K, K) for a time-varying one, with
  ``log_trans[..., i, j] = log p̂(x_t = j | x_{t−1} = i)``: **rows are the state left, columns
  the state entered** (row-stochastic, as hmmlearn and dynamax). The book's column-stochastic
  ``A`` (a_ij = p(x_t = i | x_{t−1} = j), B:805, B:2079; errata E-6) is the transpose:
  ``A = exp(log_trans).T``.
* ``log_lik``: (*batch, T, K), log p̂(y_t | x_t = k), the emission table.

Optional ``mask`` (*batch, T) marks observed steps (False: the observation is missing, its
likelihood is taken as 1 and its entry of ``log_lik`` may be NaN); optional ``lengths``
(*batch,) gives each sequence's length (steps at and beyond it are padding: their outputs are
zero, or −1 for state paths).

Forms (torch's per-call overhead, not arithmetic, dominates a Python loop over T with small
K × K matrices, so the long-sequence forms cut the number of Python-level steps):

* ``"sequential"``: the book's recursion, a Python loop over time vectorised over sequences.
* ``"sweeps"`` (parallel in time, O(T K²) work): the sequence is cut into chunks of L = 64
  steps; all chunks run the recursion at once from a guess of their incoming distribution,
  the guesses are replaced by the previous chunk's result, and the chunks that moved are re-run
  until every chunk starts from its predecessor's result to 1e-11 (relative) — two sweeps for
  a chain that forgets its start within L steps. Falls back to ``"chunked"`` (K ≤ 48) or
  ``"sequential"`` when the chain mixes too slowly. Viterbi uses the same idea, exactly:
  max-product paths coalesce, so the backpointers become those of the sequential recursion.
* ``"chunked"`` (exact in one pass, O(T K³) work): the product of each chunk's
  transition–likelihood matrices (its *transfer matrix*) is formed for all chunks at once; the
  filter and the backward message are carried across chunk boundaries; the recursions then run
  inside all chunks at once. O(√T) Python steps.
* ``"scan"``: an associative (Blelloch-style odd–even) scan over log-semiring matrix products
  (``linalg.logmatmulexp``): O(log T) steps, O(T K³) work and O(T K²) memory — the form for
  accelerators (not chosen automatically on CPU, where it is the slowest); handles
  time-varying transitions and padding.
* ``"compiled"`` (CPU only, needs Numba): the book's recursions as one compiled loop over
  sequences, time and states (``_hmm_compiled``); no per-step overhead, O(T K²) work, any
  padding or time-varying transitions. Not differentiable.
* ``"auto"``: ``"compiled"`` for CPU tensors that need no gradient; ``"scan"`` when a
  gradient is required (the only form autograd runs through); otherwise (accelerators)
  sequential below T = 512 (or with padding / time-varying transitions), sweeps above
  (measured in benchmarks/bench_hmm.py). A max-plus matrix scan for Viterbi was measured
  slower on CPU for K ≥ 8 (its K³ max-plus products have no BLAS) and is not offered.

All forms agree with the sequential one to rounding (tests: ≤ 1e-9 relative).

Complexity (the book's empty heading B:845, errata E-7): O(T K²) time and O(T K) memory for the
sequential forms (Rabiner 1989; Bishop 2006 §13.2).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

import torch
from torch import Tensor

from genmodels._validation import as_tensor, check_positive_int
from genmodels.inference import _hmm_compiled
from genmodels.inference.scan import associative_scan
from genmodels.linalg import eps, logmatmulexp

__all__ = [
    "AlphaGamma",
    "HMMFiltered",
    "HMMPosterior",
    "ViterbiPath",
    "alpha_gamma",
    "backward_smooth",
    "forward_backward",
    "forward_filter",
    "hmm_log_marginal",
    "sample_posterior",
    "viterbi",
]

METHODS = ("auto", "sequential", "sweeps", "chunked", "scan", "compiled")
#: Under ``method="auto"`` sequences at least this long use the chunked form (below it the
#: Python loop over time is cheaper than forming transfer matrices) ...
AUTO_CHUNK_MIN_T = 512
#: ... when the chain has at most this many states: the chunked forward–backward costs
#: O(T K³) flops against the sequential O(T K²) plus a per-step interpreter overhead of tens
#: of microseconds, which breaks even near K ≈ 50 on one CPU core (benchmarks/bench_hmm.py).
#: The chunked Viterbi is O(T K²) per fixed-point sweep and is chosen for any K.
AUTO_CHUNK_MAX_K = 48


_F = TypeVar("_F", bound=Callable[..., Any])


def _flush_subnormals(fn: _F) -> _F:
    """Run ``fn`` with subnormal floats flushed to zero on this thread (restored afterwards).

    The normalised recursions multiply probabilities by scaled likelihoods; products that land
    in the subnormal range (below 2.2e-308 in float64) are many times slower to compute on x86
    CPUs and made the sequential filter ~3× slower on ordinary data. Flushing them changes
    only values below 2.2e-308 (probabilities that cannot matter to a normalised result); the
    underflow fallbacks still see a zero normaliser as before."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if _SUBNORMAL * 1.0 == 0:  # already flushing (the caller's setting): leave it
            return fn(*args, **kwargs)
        torch.set_flush_denormal(True)
        try:
            return fn(*args, **kwargs)
        finally:
            torch.set_flush_denormal(False)

    return wrapper  # type: ignore[return-value]


_SUBNORMAL = torch.tensor(1e-310, dtype=torch.float64)


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


class HMMFiltered(NamedTuple):
    """The forward filter (Eqs. 2.36, 2.37, 2.40).

    filtered_probs: (*batch, T, K), p̂(x_t | y_1..y_t).
    predicted_probs: (*batch, T, K), p̂(x_t | y_1..y_{t−1}) (the time update; π at t = 1).
    log_normalizers: (*batch, T), log p̂(y_t | y_1..y_{t−1}) (0 at missing or padded steps).
    log_marginal: (*batch,), log p̂(y_1..y_T) = Σ_t log_normalizers (Eq. 2.40).
    """

    filtered_probs: Tensor
    predicted_probs: Tensor
    log_normalizers: Tensor
    log_marginal: Tensor


class HMMPosterior(NamedTuple):
    """Filter and smoother (Eqs. 2.36–2.40).

    filtered_probs: (*batch, T, K), p̂(x_t | y_1..y_t); None when not requested
        (``filtered=False``).
    smoothed_probs: (*batch, T, K), p̂(x_t | y_1..y_T) (γ_t, Eq. 2.43).
    log_marginal: (*batch,), log p̂(y_1..y_T).
    log_normalizers: (*batch, T), log p̂(y_t | y_1..y_{t−1}).
    expected_transitions: (*batch, K, K), Σ_{t=2}^T p̂(x_{t−1} = i, x_t = j | y_1..y_T): the
        pairwise smoothed marginals summed over time (what Baum–Welch needs, §7.2); None when
        not requested (``transitions=False``).
    pairwise_probs: (*batch, T−1, K, K) with ``[..., t−1, i, j] = p̂(x_{t−1} = i, x_t = j |
        y_1..y_T)`` when requested (``pairwise=True``), else None.
    """

    filtered_probs: Tensor | None
    smoothed_probs: Tensor
    log_marginal: Tensor
    log_normalizers: Tensor
    expected_transitions: Tensor | None
    pairwise_probs: Tensor | None = None


class AlphaGamma(NamedTuple):
    """The classical α–γ algorithm (Eqs. 2.41–2.44), in log space for α.

    log_alpha: (*batch, T, K), log α_t(x_t) = log p̂(x_t, y_1..y_t) (Eq. 2.42).
    smoothed_probs: (*batch, T, K), γ_t(x_t) = p̂(x_t | y_1..y_T) (Eq. 2.43).
    pairwise_probs: (*batch, T−1, K, K), p̂(x_{t−1} = i, x_t = j | y) by the first line of
        Eq. 2.44 (future conditioning with α_{t−1}).
    pairwise_probs_alt: the same by the second line of Eq. 2.44 (dividing by α_t).
    log_marginal: (*batch,), log Σ_x α_T(x) = log p̂(y_1..y_T).
    """

    log_alpha: Tensor
    smoothed_probs: Tensor
    pairwise_probs: Tensor
    pairwise_probs_alt: Tensor
    log_marginal: Tensor


class ViterbiPath(NamedTuple):
    """The most probable state sequence.

    states: (*batch, T) long, argmax_x p̂(x_1..x_T | y_1..y_T) (−1 at padded steps).
    log_joint: (*batch,), max_x log p̂(x_1..x_T, y_1..y_T).
    """

    states: Tensor
    log_joint: Tensor


# --------------------------------------------------------------------------------------------
# Validation: one place, clear messages
# --------------------------------------------------------------------------------------------


@dataclass
class _Chain:
    """Validated inputs, batch flattened to B sequences."""

    log_init: Tensor  # (B, K)
    log_trans: Tensor  # (K, K) or (T−1, K, K)
    trans: Tensor  # exp(log_trans)
    log_lik: Tensor  # (B, T, K), missing and padded steps set to 0
    valid: Tensor | None  # (B, T) bool, False at padding; None: no padding
    lengths: Tensor | None  # (B,) long
    batch_shape: torch.Size

    @property
    def homogeneous(self) -> bool:
        return self.log_trans.dim() == 2

    def reshape(self, t: Tensor, extra: int) -> Tensor:
        """(B, ...) → (*batch, ...) where ``extra`` trailing dims are kept."""
        tail = t.shape[t.dim() - extra:] if extra else torch.Size()
        return t.reshape((*self.batch_shape, *tail))


def _stochastic_tol(dtype: torch.dtype) -> float:
    # A probability vector normalised by one division is off by a few eps; √eps (1.5e-8 in
    # float64, 3.5e-4 in float32) admits that and rejects any genuinely unnormalised input.
    return math.sqrt(eps(dtype))


def _check_chain(log_init: Any, log_trans: Any, log_lik: Any, mask: Any = None,
                 lengths: Any = None) -> _Chain:
    # the shared conversion: NumPy arrays and lists as tensors; strings, objects and complex
    # numbers refused by name; −inf is a legitimate log-probability, NaN/+inf checked below
    log_lik = as_tensor(log_lik, name="log_lik", allow_nan=True, detach=False)
    dtype, device = log_lik.dtype, log_lik.device
    log_init = as_tensor(log_init, name="log_init", dtype=dtype, device=device, allow_nan=True,
                         detach=False)
    log_trans = as_tensor(log_trans, name="log_trans", dtype=dtype, device=device,
                          allow_nan=True, detach=False)
    if log_lik.dim() < 2:
        raise ValueError(f"log_lik must have shape (*batch, T, K), got {tuple(log_lik.shape)}.")
    T, K = log_lik.shape[-2], log_lik.shape[-1]
    if T == 0:
        raise ValueError("log_lik has T = 0 time steps: an empty sequence has no posterior.")
    if K == 0:
        raise ValueError("log_lik has K = 0 states.")
    batch_shape = log_lik.shape[:-2]
    if log_init.shape[-1:] != (K,) or log_init.dim() > 1 + len(batch_shape):
        raise ValueError(f"log_init must have shape (K,) = ({K},) or (*batch, K) (K states "
                         f"from log_lik of shape {tuple(log_lik.shape)}), got "
                         f"{tuple(log_init.shape)}.")
    if log_trans.shape not in ((K, K), (T - 1, K, K)):
        raise ValueError(f"log_trans must have shape (K, K) = ({K}, {K}) or (T-1, K, K) = "
                         f"({T - 1}, {K}, {K}) (T steps and K states from log_lik of shape "
                         f"{tuple(log_lik.shape)}), got {tuple(log_trans.shape)}.")
    tol = _stochastic_tol(dtype)
    if bool(torch.isnan(log_init).any()) or bool((log_init == math.inf).any()):
        raise ValueError("log_init contains NaN or +inf.")
    init_sum = torch.logsumexp(log_init, -1)
    if bool(((init_sum.exp() - 1).abs() > tol).any()):
        raise ValueError(f"exp(log_init) must sum to 1 (a probability vector); it sums to "
                         f"{init_sum.exp().flatten()[0].item():.6g}.")
    if bool(torch.isnan(log_trans).any()) or bool((log_trans == math.inf).any()):
        raise ValueError("log_trans contains NaN or +inf.")
    row_sums = torch.logsumexp(log_trans, -1).exp()
    bad = (row_sums - 1).abs() > tol
    if bool(bad.any()):
        idx = tuple(int(i) for i in torch.nonzero(bad)[0])
        raise ValueError(
            f"log_trans: the transition matrix must be row-stochastic (rows: the state left, "
            f"columns: the state entered; each row sums to 1); row {idx} sums to "
            f"{row_sums[idx].item():.6g}. "
            "If you hold the book's column-stochastic A, pass its transpose.")
    B = int(torch.Size(batch_shape).numel())
    ll = log_lik.reshape(B, T, K)
    observed = None
    if mask is not None:
        m = as_tensor(mask, name="mask", device=device, detach=False)
        if m.shape != log_lik.shape[:-1]:
            raise ValueError(f"mask must have shape (*batch, T) = {tuple(log_lik.shape[:-1])}, "
                             f"got {tuple(m.shape)}.")
        observed = m.to(torch.bool).reshape(B, T)
    valid = None
    lens = None
    if lengths is not None:
        lens = as_tensor(lengths, name="lengths", device=device, detach=False)
        if lens.shape != batch_shape:
            raise ValueError(f"lengths must have shape (*batch,) = {tuple(batch_shape)}, got "
                             f"{tuple(lens.shape)}.")
        if lens.is_floating_point() and bool((lens != lens.round()).any()):
            raise ValueError("lengths must be integers.")
        lens = lens.to(torch.long).reshape(B)
        if bool((lens < 1).any()):
            raise ValueError(f"every sequence needs length >= 1 (an empty sequence has no "
                             f"posterior); got lengths {lens.tolist()[:10]}.")
        if bool((lens > T).any()):
            raise ValueError(f"lengths must be <= T = {T}; got max {int(lens.max())}.")
        valid = torch.arange(T, device=device) < lens[:, None]
        if bool(valid.all()):
            valid = None
    use: Tensor | None = None
    if observed is not None:
        use = observed if valid is None else observed & valid
    elif valid is not None:
        use = valid
    total = ll.sum()  # one pass: NaN or +inf anywhere makes it NaN or +inf (−inf is legitimate)
    if bool(torch.isnan(total)) or bool(total == math.inf):
        bad_ll = torch.isnan(ll) | (ll == math.inf)
        if use is not None:
            bad_ll = bad_ll & use[..., None]
        if bool(bad_ll.any()):
            idx = tuple(int(i) for i in torch.nonzero(bad_ll)[0])
            raise ValueError(f"log_lik contains NaN or +inf at (sequence, t, state) = {idx} "
                             "where the observation is not masked; mark missing observations "
                             "in `mask`.")
    if use is not None:
        ll = torch.where(use[..., None], ll, torch.zeros((), dtype=dtype, device=device))
    li = log_init.expand(*batch_shape, K).reshape(B, K)
    return _Chain(li, log_trans, log_trans.exp(), ll, valid, lens, batch_shape)


def _trans_at(trans: Tensor, t: int) -> Tensor:
    """The transition matrix into step t (t ≥ 1)."""
    return trans if trans.dim() == 2 else trans[t - 1]


def _needs_grad(c: _Chain) -> bool:
    return torch.is_grad_enabled() and any(
        t.requires_grad for t in (c.log_init, c.log_trans, c.log_lik))


def _compiled_unusable(c: _Chain) -> str | None:
    """Why the compiled kernels cannot serve this chain (None: they can)."""
    if c.log_lik.device.type != "cpu":
        return f"the tensors are on {c.log_lik.device}, not the CPU"
    if c.log_lik.dtype not in (torch.float32, torch.float64):
        return f"dtype {c.log_lik.dtype} is not float32/float64"
    if _needs_grad(c):
        return "a gradient is required (the compiled kernels are not differentiable)"
    if not _hmm_compiled.available():
        return "Numba is not installed"
    return None


def _resolve(method: str, c: _Chain) -> str:
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}.")
    why_not = _compiled_unusable(c)
    if method == "compiled" and why_not is not None:
        raise ValueError(f"method='compiled' cannot be used: {why_not}.")
    if method == "auto" and why_not is None:
        return "compiled"
    if method == "auto" and _needs_grad(c):
        return "scan"  # the log-semiring scan is the differentiable form
    chunk_ok = c.homogeneous and c.valid is None
    if method in ("chunked", "sweeps") and not chunk_ok:
        raise ValueError(f"method={method!r} needs a homogeneous transition matrix and no "
                         "padding (lengths); use 'sequential' or 'scan'.")
    if method != "auto":
        return method
    T = c.log_lik.shape[1]
    return "sweeps" if chunk_ok and T >= AUTO_CHUNK_MIN_T else "sequential"


def _fb_dispatch(c: _Chain, how: str, pairwise: bool, chunk_size: int | None
                 ) -> tuple[Tensor, ...]:
    """(filt, pred, log_norm, gamma) by the chosen form; "sweeps" falls back to "chunked"
    (K ≤ AUTO_CHUNK_MAX_K) or "sequential" when its sweeps do not settle."""
    if how == "sweeps":
        out = _forward_backward_sweeps(c, chunk_size)
        if out is not None:
            return out
        how = "chunked" if c.log_lik.shape[-1] <= AUTO_CHUNK_MAX_K else "sequential"
    if how == "chunked":
        return _forward_backward_chunked(c, pairwise, chunk_size)
    if how == "scan":
        return _forward_backward_scan(c, pairwise)
    filt, pred, log_norm = _filter_seq(c.log_init.exp(), c.trans, c.log_lik, c.valid)
    if bool((log_norm == -math.inf).any()):
        raise _zero_prob_error(log_norm)
    if c.lengths is not None:
        g_last = filt[torch.arange(filt.shape[0], device=filt.device), c.lengths - 1]
    else:
        g_last = filt[:, -1]  # the smoother starts from the filter at T
    gamma = _smooth_seq(filt, pred, c.trans, g_last, c.valid)
    return filt, pred, log_norm, gamma


def _zero_prob_error(log_norm: Tensor) -> ValueError:
    b, t = (int(i) for i in torch.nonzero(log_norm == -math.inf)[0])
    return ValueError(
        f"sequence {b} has zero probability under the model at time step {t}: no state with "
        "non-zero predicted probability can emit that observation (check the emission "
        "parameters, the transition matrix's zeros, or mask the observation).")


# --------------------------------------------------------------------------------------------
# Sequential forms (the book's recursions)
# --------------------------------------------------------------------------------------------


def _time_major_lik(ll: Tensor) -> tuple[Tensor, Tensor]:
    """Scaled likelihoods exp(ll − max ll) laid out time-major (T, N, K), contiguous (so that
    each step reads one contiguous block), and the per-step log-scales m (N, T, 1)."""
    lt = ll.transpose(0, 1)  # (T, N, K): contiguous when the table was made time-major
    m = lt.amax(-1, keepdim=True)
    m = m.nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0)  # only finite scales
    lik = (lt - m).contiguous()
    return lik.exp_(), m.transpose(0, 1)


def _filter_tm(pred0: Tensor, trans: Tensor, lik: Tensor, valid: Tensor | None = None
               ) -> tuple[Tensor, Tensor, Tensor]:
    """The normalised filter on time-major scaled likelihoods lik (T, N, K), writing into
    preallocated time-major buffers (no per-step allocation or stacking).
    valid: (T, N) bool or None. Returns filt, pred (T, N, K), normalisers (T, N, 1)."""
    T = lik.shape[0]
    filt = torch.empty_like(lik)
    pred = torch.empty_like(lik)
    norm = lik.new_empty(T, lik.shape[1], 1)
    pred[0] = pred0
    for t in range(T):
        if t > 0:
            torch.matmul(filt[t - 1], _trans_at(trans, t), out=pred[t])  # Eq. 2.36
            if valid is not None:
                pred[t] = torch.where(valid[t, :, None], pred[t], filt[t - 1])
        torch.mul(pred[t], lik[t], out=filt[t])  # numerator of Eq. 2.37
        torch.sum(filt[t], -1, keepdim=True, out=norm[t])  # Eq. 2.40 (scaled)
        filt[t].div_(norm[t])  # Eq. 2.37
    return filt, pred, norm


def _filter_seq(pred0: Tensor, trans: Tensor, ll: Tensor, valid: Tensor | None
                ) -> tuple[Tensor, Tensor, Tensor]:
    """Normalised forward filter. pred0: (N, K) predicted probabilities at the first step;
    trans: (K, K) or (T−1, K, K); ll: (N, T, K). Returns filt, pred (N, T, K), log_norm (N, T)
    (the first two are views of time-major buffers).

    Fast path: likelihoods scaled to max 1 per step, ``l_t = exp(ll_t − max ll_t)``, computed
    for the whole table at once; the time update multiplies probabilities (entries in [0, 1]).
    If some step's normaliser underflows to 0 (log-likelihoods of extreme scale meeting a
    near-zero predicted probability), the pass is redone with the measurement update in log
    space, which is safe at any scale.
    """
    lik, m = _time_major_lik(ll)
    filt, pred, norm = _filter_tm(pred0, trans, lik, None if valid is None else valid.T)
    # u ≥ 0 is finite (p ≤ 1, lik ≤ 1), so the filter is finite iff every normaliser is > 0
    if bool(norm.amin() > 0):
        log_norm = torch.log(norm[..., 0]).T + m[..., 0]
        return filt.transpose(0, 1), pred.transpose(0, 1), log_norm
    return _filter_seq_log(pred0, trans, ll, valid)


def _filter_seq_log(pred0: Tensor, trans: Tensor, ll: Tensor, valid: Tensor | None
                    ) -> tuple[Tensor, Tensor, Tensor]:
    """``_filter_seq`` with the measurement update in log space (safe at any scale)."""
    T = ll.shape[1]
    filts, preds, norms = [], [], []
    p = pred0
    f = pred0
    for t in range(T):
        if t > 0:
            p = f @ _trans_at(trans, t)
            if valid is not None:
                p = torch.where(valid[:, t, None], p, f)
        log_u = torch.log(p) + ll[:, t]
        c = torch.logsumexp(log_u, -1, keepdim=True)
        f = torch.exp(log_u - c)
        preds.append(p)
        filts.append(f)
        norms.append(c)
    return torch.stack(filts, 1), torch.stack(preds, 1), torch.cat(norms, 1)


def _smooth_tm(filt: Tensor, inv_pred: Tensor, trans: Tensor, g_last: Tensor,
               valid: Tensor | None = None, divide: bool = False) -> Tensor:
    """The backward smoother on time-major filt, 1/pred (T, N, K) from γ at the last step
    (with ``divide``, ``inv_pred`` holds pred itself, > 0, and is divided by).
    γ_{t−1}(j) = f_{t−1}(j) Σ_i P_ji γ_t(i) / pred_t(i) (Eqs. 2.38–2.39). valid: (T, N)."""
    T = filt.shape[0]
    gamma = torch.empty_like(filt)
    gamma[T - 1] = g_last
    tmp = torch.empty_like(g_last)
    trans_T = trans.mT.contiguous()  # [to, from], read row-major by every step
    for t in range(T - 1, 0, -1):
        if divide:
            torch.div(gamma[t], inv_pred[t], out=tmp)
        else:
            torch.mul(gamma[t], inv_pred[t], out=tmp)
        torch.matmul(tmp, _trans_at(trans_T, t), out=gamma[t - 1])
        gamma[t - 1].mul_(filt[t - 1])
        if valid is not None:
            gamma[t - 1] = torch.where(valid[t, :, None], gamma[t - 1], gamma[t])
    return gamma


def _smooth_seq(filt: Tensor, pred: Tensor, trans: Tensor, gamma_last: Tensor,
                valid: Tensor | None) -> Tensor:
    """The book's backward smoother (Eqs. 2.38–2.39): future conditioning then the backward
    step, from the filter alone (the data are not re-accessed). filt, pred: (N, T, K).
    Returns γ: (N, T, K) (a view of a time-major buffer).

    A predicted probability of 0 has γ = 0 too, so 1/pred is taken as 1/tiny there (and
    0 · 1/tiny = 0). If the ratio γ/pred overflows (extreme log-likelihood scales), the pass is
    redone with per-step rescaling.
    """
    ft = filt.transpose(0, 1).contiguous()
    pt = pred.transpose(0, 1)
    if bool((trans == 0).any()) or bool((pt[0] == 0).any()):
        pt = pt.clamp_min(torch.finfo(filt.dtype).tiny)  # else pred ≥ min P > 0 for t ≥ 2
    gamma = _smooth_tm(ft, pt.contiguous(), trans, gamma_last,
                       None if valid is None else valid.T, divide=True)
    if bool(torch.isfinite(gamma.sum())):  # one reduction: NaN or inf anywhere shows in the sum
        return gamma.transpose(0, 1)
    return _smooth_seq_safe(filt, pred, trans, gamma_last, valid)


def _smooth_seq_safe(filt: Tensor, pred: Tensor, trans: Tensor, gamma_last: Tensor,
                     valid: Tensor | None) -> Tensor:
    """``_smooth_seq`` with the ratio γ/pred formed in log space and rescaled every step."""
    T = filt.shape[1]
    g = gamma_last
    out = [g]
    for t in range(T - 1, 0, -1):
        lr = torch.log(g) - torch.log(pred[:, t])
        lr = torch.where(torch.isnan(lr) | (g == 0), torch.full_like(lr, -math.inf), lr)
        mx = lr.amax(-1, keepdim=True)
        r = torch.exp(lr - torch.where(torch.isfinite(mx), mx, torch.zeros_like(mx)))
        g_new = filt[:, t - 1] * (r @ _trans_at(trans, t).mT)
        g_new = g_new / g_new.sum(-1, keepdim=True)
        if valid is not None:
            g_new = torch.where(valid[:, t, None], g_new, g)
        g = g_new
        out.append(g)
    return torch.stack(out[::-1], 1)


def _pairwise(filt: Tensor, pred: Tensor, gamma: Tensor, trans: Tensor, valid: Tensor | None,
              per_step: bool) -> tuple[Tensor, Tensor | None]:
    """Pairwise smoothed marginals p̂(x_{t−1} = i, x_t = j | y) = f_{t−1}(i) P_ij γ_t(j) /
    pred_t(j) (Eqs. 2.38–2.39 before marginalising), summed over t (and per step on request)."""

    # γ_t / pred_t, with pred = 0 only where γ = 0 (0 · 1/tiny = 0)
    ratio = gamma[:, 1:] / pred[:, 1:].clamp_min(torch.finfo(filt.dtype).tiny)  # (N, T−1, K)
    if valid is not None:
        ratio = ratio * valid[:, 1:, None].to(ratio.dtype)
    f_prev = filt[:, :-1]
    if trans.dim() == 2:
        counts = trans * torch.einsum("nti,ntj->nij", f_prev, ratio)
    else:
        counts = torch.einsum("nti,tij,ntj->nij", f_prev, trans, ratio)
    pair = None
    if per_step:
        pair = f_prev[..., :, None] * trans * ratio[..., None, :]
    return counts, pair


def _finish_masks(c: _Chain, *tensors: Tensor) -> list[Tensor]:
    if c.valid is None:
        return list(tensors)
    out = []
    for t in tensors:
        v = c.valid
        while v.dim() < t.dim():
            v = v[..., None]
        out.append(t * v.to(t.dtype))
    return out


# --------------------------------------------------------------------------------------------
# Chunked (exact, parallel-in-time) form
# --------------------------------------------------------------------------------------------


def _chunk_size(T: int, chunk_size: int | None) -> int:
    if chunk_size is not None:
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}.")
        return int(chunk_size)
    return max(1, math.ceil(math.sqrt(T)))


def _pad_time(ll: Tensor, L: int) -> tuple[Tensor, int]:
    """Append missing-observation steps (log-likelihood 0) so that L divides T. Appended steps
    do not change the filter, the smoother or the marginal of the real steps: Σ_j P_ij = 1."""
    N, T, K = ll.shape
    C = math.ceil(T / L)
    if C * L != T:
        ll = torch.cat([ll, ll.new_zeros(N, C * L - T, K)], dim=1)
    return ll, C


def _transfer(trans: Tensor, ll: Tensor) -> tuple[Tensor, Tensor]:
    """Row-scaled transfer matrices of every chunk (see ``_transfer_log``), fast path: the
    likelihoods are scaled to max 1 per step and multiplied in linear space. If a row
    underflows to zero (log-likelihoods of extreme scale), the log-space form is used."""
    N, C, L, K = ll.shape
    m = ll.amax(-1, keepdim=True)
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    lik = torch.exp(ll - m)  # (N, C, L, K)
    M = trans.expand(N, C, K, K).clone()
    M[:, 0] = torch.eye(K, dtype=ll.dtype, device=ll.device)
    scales = []
    for step in range(L):
        if step > 0:
            M = M @ trans
        M = M * lik[:, :, step, None, :]
        s = M.amax(-1, keepdim=True)
        M = M / s
        scales.append(s)
    log_scale = torch.log(torch.cat(scales, -1)).sum(-1) + m[..., 0].sum(-1)[..., None]
    if bool(torch.isfinite(M).all()) and bool(torch.isfinite(log_scale).all()):
        return M, log_scale
    return _transfer_log(trans, ll)


def _transfer_log(trans: Tensor, ll: Tensor) -> tuple[Tensor, Tensor]:
    """Row-scaled transfer matrices of every chunk.

    ll: (N, C, L, K) emission log-likelihoods. Chunk c's transfer matrix is
    M_c = A_c diag(l_{c,0}) P diag(l_{c,1}) ··· P diag(l_{c,L−1}) (l = exp(ll)) with A_0 = I (the
    chunk holding t = 1 starts from π) and A_c = P otherwise, so that the unnormalised filter at
    the end of chunk c is (filter at the end of chunk c−1) · M_c. Each step multiplies by P in
    linear space (entries in [0, 1]: no overflow) and by the likelihoods in log space, then
    rescales every row to max 1, keeping its log-scale: log M_c[i, j] = log_scale[c, i] +
    log M̃_c[i, j]. Row scaling (not one scale per matrix) keeps each start state's row
    representable whatever the scale of the log-likelihoods.
    Returns (M̃: (N, C, K, K), log_scale: (N, C, K)).
    """
    N, C, L, K = ll.shape
    eye = torch.eye(K, dtype=ll.dtype, device=ll.device)
    q = trans.expand(N, C, K, K).clone()
    q[:, 0] = eye
    log_scale = torch.zeros(N, C, K, dtype=ll.dtype, device=ll.device)
    M = q
    for step in range(L):
        if step > 0:
            q = M @ trans
        lq = torch.log(q) + ll[:, :, step, None, :]
        r = lq.amax(-1, keepdim=True)
        r_safe = torch.where(torch.isfinite(r), r, torch.zeros_like(r))
        M = torch.exp(lq - r_safe)
        log_scale += r[..., 0]
    return M, log_scale


def _forward_backward_chunked(c: _Chain, per_step: bool, chunk_size: int | None,
                              smooth: bool = True) -> tuple[Tensor, ...]:
    ll0 = c.log_lik
    N, T, K = ll0.shape
    L = _chunk_size(T, chunk_size)
    ll, C = _pad_time(ll0, L)
    trans = c.trans
    M, log_scale = _transfer(trans, ll.reshape(N, C, L, K))
    # Across chunks, forward: log filter at the end of each chunk (the start of the next).
    log_f = c.log_init  # (N, K): "filter before chunk 0" is π (A_0 = I)
    starts = [log_f]
    for k in range(C - 1):
        a = log_f + log_scale[:, k]
        a = a - a.amax(-1, keepdim=True)
        v = (torch.exp(a)[:, None, :] @ M[:, k])[:, 0]  # filter at the end of chunk k
        log_f = torch.log(v / v.sum(-1, keepdim=True))
        starts.append(log_f)
    start = torch.stack(starts, 1)  # (N, C, K)
    # Predicted probabilities at each chunk's first step.
    f_start = start.exp()
    pred0 = torch.cat([f_start[:, :1], f_start[:, 1:] @ trans], 1)
    filt_c, pred_c, log_norm = _filter_seq(pred0.reshape(N * C, K), trans,
                                           ll.reshape(N * C, L, K), None)
    filt_c = filt_c.reshape(N, C * L, K)
    pred_c = pred_c.reshape(N, C * L, K)
    filt, pred = filt_c[:, :T], pred_c[:, :T]
    log_norm = log_norm.reshape(N, C * L)[:, :T]
    if not smooth:
        return filt, pred, log_norm
    # Across chunks, backward: log β at the end of each chunk, β_end(C−1) = 1, and
    # β_end(c−1) = M_c β_end(c) (the backward message through chunk c is the same product).
    log_b = torch.zeros(N, K, dtype=ll.dtype, device=ll.device)
    ends = [log_b]
    for k in range(C - 1, 0, -1):
        log_b = log_scale[:, k] + torch.log(M[:, k] @ torch.exp(log_b)[..., None])[..., 0]
        log_b = log_b - log_b.amax(-1, keepdim=True)
        ends.append(log_b)
    end_b = torch.stack(ends[::-1], 1)  # (N, C, K)
    f_end = filt_c.reshape(N, C, L, K)[:, :, -1]
    g_end = torch.softmax(torch.log(f_end) + end_b, -1)  # γ at each chunk's last step
    gamma = _smooth_seq(filt_c.reshape(N * C, L, K), pred_c.reshape(N * C, L, K), trans,
                        g_end.reshape(N * C, K), None)
    gamma = gamma.reshape(N, C * L, K)[:, :T]
    return filt, pred, log_norm, gamma


def _agree(a: Tensor, b: Tensor, rtol: float) -> Tensor:
    """Whether probability vectors a, b (*, K) agree to relative tolerance ``rtol`` in every
    entry that is not below 1e-250 in both (entries that small cannot matter to a normalised
    recursion in double precision). → (*,) bool."""
    big = torch.maximum(a, b)
    ok = ((a - b).abs() <= rtol * big) | (big < 1e-250)
    return ok.all(-1)


def _forward_backward_sweeps(c: _Chain, chunk_size: int | None, max_sweeps: int = 6,
                             rtol: float = 1e-11, smooth: bool = True
                             ) -> tuple[Tensor, ...] | None:
    """Parallel-in-time filter and smoother by fixed-point sweeps over chunk boundaries.

    The sequence is cut into C chunks of L steps. A sweep runs the normalised filter (Eqs.
    2.36–2.37) inside every chunk at once, each from a guess of its incoming predicted
    distribution; the guesses are then replaced by what the previous chunk produced, and the
    chunks whose guess moved by more than ``rtol`` (relative, per entry) are re-run. The filter
    forgets its start geometrically, so after a few sweeps every chunk starts from its
    predecessor's result to within ``rtol`` and the whole equals the sequential recursion to
    ~rtol. The smoother (Eqs. 2.38–2.39) is done the same way backwards, from guesses of γ at
    each chunk's last step. Work O(T K²) per sweep (no K³ transfer matrices) and O(L) Python
    steps per sweep. Returns None if ``max_sweeps`` do not suffice (slowly mixing chains); the
    caller then uses the transfer-matrix form, which is exact in one pass.
    """
    ll0 = c.log_lik
    N, T, K = ll0.shape
    L = chunk_size if chunk_size is not None else 64
    ll, C = _pad_time(ll0, L)
    M = N * C
    lik, m = _time_major_lik(ll.reshape(M, L, K))  # (L, M, K), chunks as the batch
    trans = c.trans
    pi = c.log_init.exp()  # (N, K)
    pred0 = torch.full((N, C, K), 1.0 / K, dtype=ll.dtype, device=ll.device)
    pred0[:, 0] = pi
    filt = torch.empty(L, M, K, dtype=ll.dtype, device=ll.device)
    pred = torch.empty_like(filt)
    norm = torch.empty(L, M, 1, dtype=ll.dtype, device=ll.device)
    todo: Tensor | None = None  # None: every chunk
    for sweep in range(max_sweeps + 1):
        if todo is not None and todo.numel() == 0:
            break
        if sweep == max_sweeps:
            return None
        if todo is None:  # the first sweep, or most chunks moved
            filt, pred, norm = _filter_tm(pred0.reshape(M, K), trans, lik)
        else:
            f, p, n = _filter_tm(pred0.reshape(M, K)[todo], trans, lik[:, todo])
            filt[:, todo], pred[:, todo], norm[:, todo] = f, p, n
        f_end = filt[-1].reshape(N, C, K)
        new = torch.cat([pi[:, None], f_end[:, :-1] @ trans], 1)
        todo = torch.nonzero(~_agree(new, pred0, rtol).reshape(-1))[:, 0]
        todo = None if 2 * todo.numel() > M else todo  # re-run all rather than gather most
        pred0 = new
    if not bool(norm.amin() > 0):
        return None  # an underflowing normaliser: the safe forms handle it
    log_norm = (torch.log(norm[..., 0]).T + m[..., 0]).reshape(N, C * L)[:, :T]

    def batch_major(x: Tensor) -> Tensor:  # (L, N·C, K) → (N, T, K)
        return x.reshape(L, N, C, K).permute(1, 2, 0, 3).reshape(N, C * L, K)[:, :T]

    if not smooth:
        return batch_major(filt), batch_major(pred), log_norm
    # Backward sweeps: guesses of γ at each chunk's last step; the last chunk's is exact.
    inv_pred = 1.0 / pred.clamp_min(torch.finfo(ll.dtype).tiny)
    g_end = filt[-1].reshape(N, C, K).clone()
    gamma = torch.empty_like(filt)
    todo = None
    for sweep in range(max_sweeps + 1):
        if todo is not None and todo.numel() == 0:
            break
        if sweep == max_sweeps:
            return None
        if todo is None:
            gamma = _smooth_tm(filt, inv_pred, trans, g_end.reshape(M, K))
        else:
            gamma[:, todo] = _smooth_tm(filt[:, todo], inv_pred[:, todo], trans,
                                        g_end.reshape(M, K)[todo])
        g_first = gamma[0].reshape(N, C, K)
        ip_first = inv_pred[0].reshape(N, C, K)
        f_last = filt[-1].reshape(N, C, K)
        # the boundary step from chunk c + 1's first step back to chunk c's last (Eq. 2.39)
        new = torch.cat([f_last[:, :-1] * ((g_first[:, 1:] * ip_first[:, 1:]) @ trans.mT),
                         f_last[:, -1:]], 1)
        new = new / new.sum(-1, keepdim=True)
        todo = torch.nonzero(~_agree(new, g_end, rtol).reshape(-1))[:, 0]
        todo = None if 2 * todo.numel() > M else todo
        g_end = new
    return batch_major(filt), batch_major(pred), log_norm, batch_major(gamma)


# --------------------------------------------------------------------------------------------
# Associative-scan (log-semiring) form
# --------------------------------------------------------------------------------------------


def _scan_elements(c: _Chain) -> Tensor:
    """E_t[i, j] = log P_ij + log p̂(y_t | x_t = j) (identity at padded steps); E_0 has every row
    log π + log p̂(y_1 | ·). Shapes (N, T, K, K)."""
    N, _, K = c.log_lik.shape
    E = c.log_trans + c.log_lik[:, 1:, None, :]  # (N, T−1, K, K)
    if c.valid is not None:
        ident = torch.full((K, K), -math.inf, dtype=E.dtype, device=E.device)
        ident.fill_diagonal_(0.0)
        E = torch.where(c.valid[:, 1:, None, None], E, ident)
    E0 = (c.log_init + c.log_lik[:, 0])[:, None, None, :].expand(N, 1, K, K)
    return torch.cat([E0, E], 1)


def _forward_backward_scan(c: _Chain, per_step: bool) -> tuple[Tensor, ...]:
    E = _scan_elements(c)  # (N, T, K, K)
    N, T, K, _ = E.shape
    log_alpha = associative_scan(logmatmulexp, E, 1)[:, :, 0, :]  # (N, T, K), Eq. 2.41
    # Backward messages: log β_t = lse_j (E_{t+1} ··· E_{T−1})[i, j], a reversed scan.
    if T > 1:
        Er = E[:, 1:].flip(1)
        suffix = associative_scan(lambda a, b: logmatmulexp(b, a), Er, 1).flip(1)
        log_beta = torch.cat([torch.logsumexp(suffix, -1),
                              E.new_zeros(N, 1, K)], 1)  # (N, T, K)
    else:
        log_beta = E.new_zeros(N, 1, K)
    lse_alpha = torch.logsumexp(log_alpha, -1)  # log p̂(y_1..y_t)

    filt = torch.exp(log_alpha - lse_alpha[..., None])
    log_norm = torch.cat([lse_alpha[:, :1], lse_alpha[:, 1:] - lse_alpha[:, :-1]], 1)
    log_g = log_alpha + log_beta
    gamma = torch.softmax(log_g, -1)
    pred = torch.cat([c.log_init.exp()[:, None], filt[:, :-1] @ c.trans
                      if c.homogeneous else (filt[:, :-1, None, :] @ c.trans)[..., 0, :]], 1)
    if c.valid is not None:
        pred = torch.where(c.valid[..., None], pred, torch.cat([pred[:, :1], filt[:, :-1]], 1))
    return filt, pred, log_norm, gamma


# --------------------------------------------------------------------------------------------
# Public kernels
# --------------------------------------------------------------------------------------------


@_flush_subnormals
def forward_filter(log_init: Any, log_trans: Any, log_lik: Any, *, mask: Any = None,
                   lengths: Any = None, method: str = "auto",
                   chunk_size: int | None = None) -> HMMFiltered:
    """The normalised forward filter (B11; Eqs. 2.36–2.37, 2.40).

    log_init: (K,) or (*batch, K); log_trans: (K, K) or (T−1, K, K), row-stochastic
    ``[from, to]``; log_lik: (*batch, T, K). See the module docstring for mask/lengths/method.
    """
    c = _check_chain(log_init, log_trans, log_lik, mask, lengths)
    how = _resolve(method, c)
    if how == "sweeps":
        out = _forward_backward_sweeps(c, chunk_size, smooth=False)
        how = "sequential" if out is None else how
    if how == "sweeps" and out is not None:
        filt, pred, log_norm = out[0], out[1], out[2]
    elif how == "chunked":
        filt, pred, log_norm, *_ = _forward_backward_chunked(c, False, chunk_size, smooth=False)
    elif how == "scan":
        filt, pred, log_norm, _ = _forward_backward_scan(c, False)
    elif how == "compiled":
        filt_or_none, pred_or_none, log_norm, *_ = _hmm_compiled.forward_backward(
            c.log_init.exp(), c.trans, c.log_lik, c.lengths, counts=False, keep_pred=True,
            smooth=False)
        assert filt_or_none is not None and pred_or_none is not None
        filt, pred = filt_or_none, pred_or_none
    else:
        filt, pred, log_norm = _filter_seq(c.log_init.exp(), c.trans, c.log_lik, c.valid)
    if bool((log_norm == -math.inf).any()):
        raise _zero_prob_error(log_norm)
    filt, pred, log_norm = _finish_masks(c, filt, pred, log_norm)
    log_marg = log_norm.sum(-1)
    return HMMFiltered(c.reshape(filt, 2), c.reshape(pred, 2), c.reshape(log_norm, 1),
                       c.reshape(log_marg, 0))


@_flush_subnormals
def backward_smooth(filtered: HMMFiltered, log_trans: Any, *, lengths: Any = None,
                    pairwise: bool = False) -> HMMPosterior:
    """The backward smoother (B11; Eqs. 2.38–2.39) from a filter's output alone.

    filtered: the result of ``forward_filter`` (same ``lengths``); log_trans as there.
    """
    filt = filtered.filtered_probs
    K, T = filt.shape[-1], filt.shape[-2]
    batch = filt.shape[:-2]
    B = int(torch.Size(batch).numel())
    log_trans = torch.as_tensor(log_trans, dtype=filt.dtype, device=filt.device)
    dummy = filt.new_zeros(*batch, T, K)
    c = _check_chain(filtered.predicted_probs[..., 0, :].clamp_min(0).log(), log_trans, dummy,
                     None, lengths)
    f = filt.reshape(B, T, K)
    p = filtered.predicted_probs.reshape(B, T, K)
    if c.lengths is not None:
        g_last = f[torch.arange(B, device=f.device), c.lengths - 1]
        valid = c.valid
    else:
        g_last, valid = f[:, -1], None
    gamma = _smooth_seq(f, p, c.trans, g_last, valid)
    counts, pair = _pairwise(f, p, gamma, c.trans, valid, pairwise)
    (gamma,) = _finish_masks(c, gamma)
    return HMMPosterior(
        filt, c.reshape(gamma, 2), filtered.log_marginal, filtered.log_normalizers,
        c.reshape(counts, 2), None if pair is None else c.reshape(pair, 3))


@_flush_subnormals
def forward_backward(log_init: Any, log_trans: Any, log_lik: Any, *, mask: Any = None,
                     lengths: Any = None, pairwise: bool = False, transitions: bool = True,
                     filtered: bool = True, method: str = "auto", chunk_size: int | None = None
                     ) -> HMMPosterior:
    """Filter and smoother of an HMM (B10–B11): posterior marginals, pairwise marginals (summed
    over time, and per step when ``pairwise``), and the log-marginal.

    log_init: (K,) or (*batch, K); log_trans: (K, K) or (T−1, K, K), row-stochastic
    ``[from, to]``; log_lik: (*batch, T, K); mask: (*batch, T) bool, True where observed;
    lengths: (*batch,). method: "auto" | "sequential" | "sweeps" | "chunked" | "scan".
    transitions=False skips the summed pairwise marginals (not needed for posteriors alone);
    filtered=False leaves out the filtered marginals (``filtered_probs`` is None), which spares
    the compiled form a (*batch, T, K) block: the smoother writes γ over the filter.
    """
    c = _check_chain(log_init, log_trans, log_lik, mask, lengths)
    how = _resolve(method, c)
    counts: Tensor | None = None
    pair = None
    gamma: Tensor | None = None
    filt: Tensor | None
    if how == "compiled":  # the summed pairwise marginals come from the kernel unless per step
        filt, pred, log_norm, gamma, counts = _hmm_compiled.forward_backward(
            c.log_init.exp(), c.trans, c.log_lik, c.lengths,
            counts=transitions and not pairwise, keep_pred=pairwise,
            filtered=filtered or pairwise)
        if bool((log_norm == -math.inf).any()):
            raise _zero_prob_error(log_norm)
        how = "sequential"  # serves below if the compiled smoother reported an underflow
    if gamma is None:  # (the compiled kernels leave zeros at padding themselves)
        filt, pred, log_norm, gamma = _fb_dispatch(c, how, pairwise, chunk_size)
        filt, gamma, log_norm = _finish_masks(c, filt, gamma, log_norm)
    if (transitions or pairwise) and counts is None:
        assert pred is not None and filt is not None
        counts, pair = _pairwise(filt, pred, gamma, c.trans, c.valid, pairwise)
    if bool((log_norm == -math.inf).any()):
        raise _zero_prob_error(log_norm)
    log_marg = log_norm.sum(-1)
    return HMMPosterior(
        c.reshape(filt, 2) if filtered and filt is not None else None, c.reshape(gamma, 2),
        c.reshape(log_marg, 0), c.reshape(log_norm, 1),
        None if counts is None else c.reshape(counts, 2),
        None if pair is None else c.reshape(pair, 3))


@_flush_subnormals
def hmm_log_marginal(log_init: Any, log_trans: Any, log_lik: Any, *, mask: Any = None,
                     lengths: Any = None, method: str = "auto") -> Tensor:
    """log p̂(y_1..y_T) (Eq. 2.40). Shapes as ``forward_filter``; returns (*batch,)."""
    return forward_filter(log_init, log_trans, log_lik, mask=mask, lengths=lengths,
                          method=method).log_marginal


def alpha_gamma(log_init: Any, log_trans: Any, log_lik: Any, *, mask: Any = None,
                lengths: Any = None) -> AlphaGamma:
    """The classical α–γ (forward–backward) algorithm (B12; Eqs. 2.41–2.44), α in log space.

    Presented, as in the book, to connect with the historical literature; ``forward_backward``
    is the form to use. Shapes as ``forward_filter``.
    """
    c = _check_chain(log_init, log_trans, log_lik, mask, lengths)
    N, T, K = c.log_lik.shape
    ident = torch.full((K, K), -math.inf, dtype=c.log_lik.dtype, device=c.log_lik.device)
    ident.fill_diagonal_(0.0)
    log_alpha = torch.empty_like(c.log_lik)
    a = c.log_init + c.log_lik[:, 0]  # α_1 = π ⊙ p̂(y_1 | ·)
    log_alpha[:, 0] = a
    for t in range(1, T):
        lt = _trans_at(c.log_trans, t)
        new = logmatmulexp(a[:, None, :], lt)[:, 0] + c.log_lik[:, t]  # Eq. 2.41
        if c.valid is not None:
            new = torch.where(c.valid[:, t, None], new, a)
        a = new
        log_alpha[:, t] = a
    log_marg = torch.logsumexp(a, -1)  # Σ_x α_T(x) = p̂(y_1..y_T)
    gamma = torch.empty_like(c.log_lik)
    g = torch.exp(a - log_marg[:, None])  # γ_T = α_T / p̂(y)
    gamma[:, T - 1] = g
    pair1 = c.log_lik.new_zeros(N, max(T - 1, 0), K, K)
    pair2 = c.log_lik.new_zeros(N, max(T - 1, 0), K, K)
    for t in range(T - 1, 0, -1):
        lt = _trans_at(c.log_trans, t)
        if c.valid is not None:
            lt = torch.where(c.valid[:, t, None, None], lt, ident)
        joint = log_alpha[:, t - 1, :, None] + lt  # log α_{t−1}(i) p̂(x_t = j | x_{t−1} = i)
        # Eq. 2.44, first line: γ_t(j) α_{t−1}(i) P_ij / Σ_i' α_{t−1}(i') P_i'j
        cond = joint - torch.logsumexp(joint, -2, keepdim=True)
        p1 = g[:, None, :] * cond.exp()
        # Eq. 2.44, second line: γ_t(j) α_{t−1}(i) P_ij p̂(y_t | j) / α_t(j)
        p2 = g[:, None, :] * torch.exp(joint + c.log_lik[:, t, None, :]
                                       - log_alpha[:, t, None, :])
        p1 = torch.nan_to_num(p1, nan=0.0)
        p2 = torch.nan_to_num(p2, nan=0.0)
        if c.valid is not None:
            keep = c.valid[:, t, None, None].to(p1.dtype)
            p1, p2 = p1 * keep, p2 * keep
        pair1[:, t - 1] = p1
        pair2[:, t - 1] = p2
        g_new = p1.sum(-1)  # γ_{t−1}(i) = Σ_j pairwise (Eq. 2.44, last line)
        if c.valid is not None:
            g_new = torch.where(c.valid[:, t, None], g_new, g)
        g = g_new
        gamma[:, t - 1] = g
    log_alpha, gamma = _finish_masks(c, log_alpha, gamma)
    return AlphaGamma(c.reshape(log_alpha, 2), c.reshape(gamma, 2), c.reshape(pair1, 3),
                      c.reshape(pair2, 3), c.reshape(log_marg, 0))


# --------------------------------------------------------------------------------------------
# Viterbi
# --------------------------------------------------------------------------------------------


def _viterbi_forward(delta0: Tensor, log_trans: Tensor, ll: Tensor, valid: Tensor | None,
                     start_t: int = 0, pointers: bool = True) -> tuple[Any, Tensor]:
    """Max-product recursion from δ at the first step. ll: (N, T, K). Returns backpointers
    (N, T, K) (entry t holds argmax_i for step t; row 0 unused; a view of a time-major buffer)
    and δ at the last step (N, K). Without ``pointers`` only δ is computed (psi is None).
    The scores are laid out (N, to, from) so that the maximum runs over the last dimension."""
    N, T, K = ll.shape
    llt = ll.transpose(0, 1).contiguous()
    psi = torch.empty(T, N, K, dtype=torch.long, device=ll.device)  # rows t ≥ 1 all written
    psi[0] = 0
    d = delta0.clone()
    best = torch.empty_like(d)
    scores = torch.empty(N, K, K, dtype=ll.dtype, device=ll.device)
    ar = torch.arange(K, device=ll.device)
    for t in range(1, T):
        torch.add(d[:, None, :], _trans_at(log_trans, t + start_t).mT, out=scores)
        if pointers:
            torch.max(scores, -1, out=(best, psi[t]))
        else:
            torch.amax(scores, -1, out=best)
        if valid is not None:
            v = valid[:, t, None]
            d = torch.where(v, best + llt[t], d)
            psi[t] = torch.where(v, psi[t], ar)
        else:
            torch.add(best, llt[t], out=d)
    return (psi.transpose(0, 1) if pointers else None), d


def _backtrack(psi: Tensor, last: Tensor) -> Tensor:
    """Follow backpointers psi (N, T, K) from ``last`` (N,) → states (N, T)."""
    N, T, _ = psi.shape
    pt = psi.transpose(0, 1)
    states = torch.empty(T, N, dtype=torch.long, device=psi.device)
    x = last
    states[T - 1] = x
    for t in range(T - 1, 0, -1):
        x = pt[t].gather(1, x[:, None])[:, 0]
        states[t - 1] = x
    return states.T


def _viterbi_values_backtrack(c: _Chain) -> tuple[Tensor, Tensor]:
    """Sequential Viterbi that stores the max-product values δ_t (T, N, K) but no
    backpointers: ``amax`` over the (N, K, K) scores is several times cheaper than ``max``
    with indices, and the backtrack recovers x_{t−1} = argmax_j δ_{t−1}(j) + log P[j, x_t]
    for the one state on the path (O(N K) per step), with the same scores and the same
    first-index tie rule as the forward pass. Returns (states (N, T), log joint (N,))."""
    ll = c.log_lik
    N, T, K = ll.shape
    llt = ll.transpose(0, 1).contiguous()
    delta = torch.empty(T, N, K, dtype=ll.dtype, device=ll.device)
    delta[0] = c.log_init + llt[0]
    scores = torch.empty(N, K, K, dtype=ll.dtype, device=ll.device)
    best = torch.empty(N, K, dtype=ll.dtype, device=ll.device)
    valid = None if c.valid is None else c.valid.T  # (T, N)
    for t in range(1, T):
        torch.add(delta[t - 1][:, None, :], _trans_at(c.log_trans, t).mT, out=scores)
        torch.amax(scores, -1, out=best)  # (N, to)
        torch.add(best, llt[t], out=delta[t])
        if valid is not None:
            delta[t] = torch.where(valid[t, :, None], delta[t], delta[t - 1])
    log_joint, x = delta[T - 1].max(-1)
    states = torch.empty(T, N, dtype=torch.long, device=ll.device)
    states[T - 1] = x
    for t in range(T - 1, 0, -1):
        lt_T = _trans_at(c.log_trans, t).mT  # [to, from]
        prev = (delta[t - 1] + lt_T[x]).argmax(-1)
        if valid is not None:
            prev = torch.where(valid[t], prev, x)
        x = prev
        states[t - 1] = x
    return states.T, log_joint


def _divisor_near(T: int, L0: int) -> int:
    """A chunk length near L0 that divides T if one exists within a factor 2 (no padding:
    padded steps would cost a select per step in the max-product recursion)."""
    L0 = max(1, min(L0, T))
    for delta in range(0, L0):
        for L in (L0 + delta, L0 - delta):
            if L0 // 2 <= L <= 2 * L0 and L >= 1 and T % L == 0:
                return L
        if L0 - delta < L0 // 2 and L0 + delta > 2 * L0:
            break
    return L0


def _viterbi_chunked(c: _Chain, chunk_size: int | None, max_sweeps: int = 8
                     ) -> tuple[Tensor, Tensor] | None:
    """Exact chunk-parallel Viterbi by fixed-point iteration on chunk boundaries.

    All chunks run the max-product recursion at once from a guess of their incoming δ (the
    normalised max-log-joint at the previous chunk's last step); each chunk's guess is then
    replaced by the previous chunk's result and the chunks whose guess changed are re-run,
    until no guess changes (to rounding): then every chunk started from its predecessor's
    exact result, and the path is the sequential one. Chunk c is exact after sweep c + 1 at the
    latest; because best paths coalesce, two or three sweeps suffice in practice. After
    ``max_sweeps`` without agreement (paths that stay apart for many chunks: a nearly
    deterministic chain with uninformative emissions) returns None and the caller runs the
    sequential recursion. Work O(T K²) per sweep, O(√T) Python steps.
    """
    ll0 = c.log_lik
    N, T, K = ll0.shape
    L = _chunk_size(T, chunk_size) if chunk_size is not None else _divisor_near(T, 64)
    ll, C = _pad_time(ll0, L)
    llc = ll.reshape(N, C, L, K)
    logP = c.log_trans
    dtype = ll.dtype
    tol_scale = 1e3 * eps(dtype)
    guess = torch.zeros(N, C, K, dtype=dtype, device=ll.device)  # normalised incoming δ
    psi = torch.zeros(N, C, L, K, dtype=torch.long, device=ll.device)
    ends = torch.zeros(N, C, K, dtype=dtype, device=ll.device)
    todo = torch.ones(N, C, dtype=torch.bool, device=ll.device)
    first = c.log_init + llc[:, 0, 0]  # δ at t = 1
    # The padded tail must not change the maximiser: identity transitions there (unlike the
    # sum-product, where appended missing steps are neutral, max-product is not).
    tail = (torch.arange(C * L, device=ll.device) < T).reshape(C, L)
    for sweep in range(max_sweeps + 1):
        # Sweep 0 runs values only (amax, ~4× cheaper than max with indices); from sweep 1 on
        # backpointers are kept, and sweep 1 re-runs every chunk so each has its pointers.
        pointers = sweep >= 1
        if sweep == 1:
            todo[:, 1:] = True
            todo[:, 0] = True
        idx = torch.nonzero(todo)  # (M, 2) (sequence, chunk)
        if idx.shape[0] == 0:
            break
        if sweep == max_sweeps:
            return None  # best paths did not coalesce within a few chunks: sequential form
        n_i, c_i = idx[:, 0], idx[:, 1]
        g = guess[n_i, c_i]
        scores = g[:, :, None] + logP
        best, arg0 = scores.max(-2)
        d0 = best + llc[n_i, c_i, 0]
        d0 = torch.where((c_i == 0)[:, None], first[n_i], d0)
        v = tail[c_i] if C * L != T else None
        p, d_end = _viterbi_forward(d0, logP, llc[n_i, c_i], v, pointers=pointers)
        if p is not None:
            p[:, 0] = arg0
            psi[n_i, c_i] = p
        mx = d_end.amax(-1, keepdim=True)
        ends[n_i, c_i] = d_end - torch.where(torch.isfinite(mx), mx, torch.zeros_like(mx))
        new_guess = guess.clone()
        new_guess[:, 1:] = ends[:, :-1]
        finite = torch.isfinite(new_guess) & torch.isfinite(guess)
        diff = torch.where(finite, (new_guess - guess).abs(), torch.zeros_like(guess))
        scale = tol_scale * (1 + torch.where(finite, new_guess.abs(), torch.zeros_like(guess)))
        same = ((diff <= scale) & (finite | (new_guess == guess))).all(-1)
        todo = ~same
        todo[:, 0] = False
        guess = new_guess
    # Backtrack inside every chunk from every end state at once.
    psi_t = psi.permute(2, 0, 1, 3).contiguous()  # (L, N, C, K)
    paths = torch.empty(L, N, C, K, dtype=torch.long, device=ll.device)
    x = torch.arange(K, device=ll.device).expand(N, C, K).contiguous()
    paths[L - 1] = x
    for s_ in range(L - 1, 0, -1):
        x = psi_t[s_].gather(-1, x)
        paths[s_ - 1] = x
    into = psi_t[0].gather(-1, paths[0])  # (N, C, K): the previous chunk's end state
    # End state of every chunk: E_{C−1} = argmax δ_T and E_{k−1} = into_k[E_k]; the suffix
    # compositions of the maps into_k come from one associative scan (pointer jumping).
    end_last = ends[:, -1].argmax(-1)  # (N,)
    end_state = torch.empty(N, C, dtype=torch.long, device=ll.device)
    end_state[:, -1] = end_last
    if C > 1:
        maps = into[:, 1:].flip(1)  # G_{C−1}, ..., G_1
        comp = associative_scan(lambda a, b: b.gather(-1, a), maps, 1)
        end_state[:, :-1] = comp.gather(-1, end_last[:, None, None].expand(N, C - 1, 1))[
            ..., 0].flip(1)
    states = paths.permute(1, 2, 0, 3).gather(
        -1, end_state[:, :, None, None].expand(N, C, L, 1))[..., 0]  # (N, C, L)
    states = states.reshape(N, C * L)[:, :T]
    return states, _path_log_joint(c, states)


def _path_log_joint(c: _Chain, states: Tensor) -> Tensor:
    """log p̂(x_1..x_T, y_1..y_T) of given paths (N, T) (padding ignored)."""
    T = states.shape[1]
    ll = c.log_lik.gather(-1, states.clamp_min(0)[..., None])[..., 0]
    lp = c.log_init.gather(-1, states[:, :1])[:, 0]
    if T > 1:
        prev, nxt = states[:, :-1].clamp_min(0), states[:, 1:].clamp_min(0)
        if c.homogeneous:
            tr = c.log_trans[prev, nxt]
        else:
            tr = c.log_trans[torch.arange(T - 1, device=states.device), prev, nxt]
        if c.valid is not None:
            tr = torch.where(c.valid[:, 1:], tr, torch.zeros_like(tr))
        lp = lp + tr.sum(-1)
    return lp + ll.sum(-1)


@torch.no_grad()  # a path is not differentiable; the values-only forms may run
def viterbi(log_init: Any, log_trans: Any, log_lik: Any, *, mask: Any = None,
            lengths: Any = None, method: str = "auto",
            chunk_size: int | None = None) -> ViterbiPath:
    """The most probable state path (max-product recursion and backtracking).

    Shapes as ``forward_filter``. method: "sequential" (loop over time), "chunked" (exact
    chunk-parallel fixed-point iteration, for long sequences), "compiled" (CPU, Numba) or
    "auto" (compiled where it can serve, as in the module docstring). (A max-plus matrix
    scan needs O(T K³) work without BLAS; measured slower on CPU for K ≥ 8, so not offered.)
    """
    c = _check_chain(log_init, log_trans, log_lik, mask, lengths)
    how = _resolve(method if method != "scan" else "sequential", c)
    out = _viterbi_chunked(c, chunk_size) if how in ("chunked", "sweeps") else None
    if how == "compiled":
        states, log_joint = _hmm_compiled.viterbi(c.log_init, c.log_trans, c.log_lik,
                                                  c.lengths)
    elif out is not None:
        states, log_joint = out
    elif c.log_lik.shape[-1] >= 8:  # max with indices costs more than the O(NK) backtrack
        states, log_joint = _viterbi_values_backtrack(c)
    else:
        psi, d = _viterbi_forward(c.log_init + c.log_lik[:, 0], c.log_trans, c.log_lik,
                                  c.valid)
        log_joint, last = d.max(-1)
        states = _backtrack(psi, last)
    if bool((log_joint == -math.inf).any()):
        b = int(torch.nonzero(log_joint == -math.inf)[0, 0])
        raise ValueError(f"sequence {b} has zero probability under the model: every state "
                         "path is impossible (check the transition zeros and emissions).")
    if c.valid is not None:
        states = torch.where(c.valid, states, torch.full_like(states, -1))
    return ViterbiPath(c.reshape(states, 1), c.reshape(log_joint, 0))


# --------------------------------------------------------------------------------------------
# Posterior sampling
# --------------------------------------------------------------------------------------------


@_flush_subnormals
def sample_posterior(log_init: Any, log_trans: Any, log_lik: Any, *, num_samples: int = 1,
                     generator: torch.Generator | None = None, mask: Any = None,
                     lengths: Any = None, method: str = "auto") -> Tensor:
    """Draw state paths from p̂(x_1..x_T | y_1..y_T) by forward filtering, backward sampling:
    x_T ~ p̂(x_T | y_1..T), then x_{t−1} ~ p̂(x_{t−1} | x_t, y_1..y_{t−1}) ∝ f_{t−1}(x_{t−1})
    P[x_{t−1}, x_t] (Eq. 2.38, future conditioning). Returns (num_samples, *batch, T) long
    (−1 at padded steps)."""
    num_samples = check_positive_int(num_samples, "num_samples")
    c = _check_chain(log_init, log_trans, log_lik, mask, lengths)
    filt = forward_filter(c.log_init.reshape(*c.batch_shape, c.log_lik.shape[-1]), log_trans,
                          c.log_lik.reshape(*c.batch_shape, *c.log_lik.shape[1:]),
                          lengths=lengths, method=method).filtered_probs
    N, T, K = c.log_lik.shape
    f = filt.reshape(1, N, T, K).expand(num_samples, N, T, K)
    S = num_samples
    u = torch.rand(S, N, T, dtype=f.dtype, device=f.device, generator=generator)
    states = torch.empty(S, N, T, dtype=torch.long, device=f.device)
    if c.lengths is not None:
        last_t = c.lengths - 1
        p_last = f[:, torch.arange(N), last_t]
    else:
        last_t = None
        p_last = f[:, :, T - 1]
    x = _categorical(p_last, u[:, :, T - 1])
    states[:, :, T - 1] = x
    for t in range(T - 1, 0, -1):
        P = _trans_at(c.trans, t)
        w = f[:, :, t - 1] * P.mT[x]  # f_{t−1}(j) P[j, x_t]
        x_new = _categorical(w, u[:, :, t - 1])
        if last_t is not None:
            at_end = last_t.eq(t - 1)  # draw the last real step from the filter
            x_new = torch.where(at_end, _categorical(f[:, :, t - 1], u[:, :, t - 1]), x_new)
        x = x_new
        states[:, :, t - 1] = x
    if c.valid is not None:
        states = torch.where(c.valid, states, torch.full_like(states, -1))
    return states.reshape(S, *c.batch_shape, T)


def _categorical(w: Tensor, u: Tensor) -> Tensor:
    """Inverse-CDF draw from unnormalised weights w (*, K) with uniforms u (*)."""
    cdf = w.cumsum(-1)
    target = u[..., None] * cdf[..., -1:]
    return (cdf <= target).sum(-1).clamp_max(w.shape[-1] - 1)
