"""The Numba kernel behind ``BernoulliRBM(solver="compiled")``: epochs of CD-k or PCD-k for the
binary RBM as compiled minibatch SGD, imported lazily (so that importing genmodels does not
import Numba). The same update as ``learning.contrastive.BoltzmannLearner`` through the trainer
(the word2vec precedent: one loss, a compiled pass beside the trainer's), without the ~20 torch
operations and the autograd graph per minibatch that make the trainer path slow for small
batches.

For the binary RBM, with H⁺ = σ(b_x + W v⁺) (the exact positive phase) and the negative states
v⁻ (CD-k: k block Gibbs sweeps from the batch; PCD: the persistent chains advanced k sweeps),
H⁻ = σ(b_x + W v⁻), the ascent direction of Eq. 10.23 / 10.19 is

    ΔW = ⟨H⁺ v⁺ᵀ⟩ − ⟨H⁻ v⁻ᵀ⟩,   Δb_x = ⟨H⁺⟩ − ⟨H⁻⟩,   Δb_y = ⟨v⁺⟩ − ⟨v⁻⟩,

the negative gradient of ``boltzmann_loss`` (free energies Rao–Blackwellise the hidden units).
The optimiser is ``torch.optim.SGD``'s: d = −Δ + λθ; the momentum buffer b ← d on the first
step, then b ← μ b + d; θ ← θ − η b.

How it is fast (one PCD-1 epoch on the binarised digits, 1 thread, is 2.9–6× scikit-learn's in
a 10-epoch fit at H = 64 / 256, batch 10 / 100, and 2.2–4.8× as a whole fit(n_iter=1) with the
estimator's ~0.5 ms set-up; scikit-learn's cost is five BLAS products, ``expit`` and NumPy's
generator per minibatch; ``benchmarks/bench_rbm.py``):

* the whole call — every epoch and minibatch — is one compiled function, nothing in Python per
  minibatch; W is held transposed (Wᵀ, D × H) so that every inner loop runs over H contiguous
  numbers;
* the visible states of the chains are binary and the data mostly zeros, so b_x + W v is the sum
  of the columns of W where v ≠ 0 (times v: data in [0, 1] are allowed), and the statistics
  H vᵀ are scattered into those columns alone;
* the hidden probabilities H⁻ of the chains, computed for the negative phase, are the ones the
  next minibatch's first Gibbs half-sweep samples from (as scikit-learn's PCD does; they were
  computed with the parameters before the update), so PCD-k costs k − 1 + 1 hidden passes of the
  chains per minibatch, not k + 1; CD-k's first sweep samples from H⁺;
* the passes run in float32 on float32 copies of the parameters (Wᵀ and W); the parameters and
  the SGD step stay float64, and one pass per minibatch (``_step``) updates them, refreshes the
  copy of Wᵀ and zeroes the statistics (W's copy is then transposed from it);
* σ is evaluated in vectorisable form (``_sigmoid``: exp as 2ᵏ · e^r with a Taylor polynomial),
  and the uniforms come from a counter-based SplitMix64 stream (``_uniforms``, 24-bit), which
  also vectorises.

PCD here keeps ``batch_size`` visible chains (``chains``) and recomputes their hidden
probabilities at the start of each epoch (so one call for E epochs equals E calls).
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

#: Floating-point licence (as the word2vec kernels): reassociation, fused multiply–add, no
#: signed zeros, reciprocals — not "no infinities".
_FASTMATH = {"reassoc", "contract", "nsz", "arcp"}
_jit = numba.njit(cache=True, nogil=True, error_model="numpy", fastmath=_FASTMATH)
#: the per-row helpers, inlined into the epoch loop (Numba IR level)
_inline = numba.njit(cache=True, nogil=True, error_model="numpy", fastmath=_FASTMATH,
                     inline="always")

_F = np.float32
_LOG2E = _F(1.4426950408889634)
_LN2_HI = _F(0.693145751953125)  # ln 2 split in two (Cody & Waite) for an exact r
_LN2_LO = _F(1.428606765330187e-06)
_XMAX = _F(87.0)  # e^87 < the largest float32; 2^±126 normal
_C = tuple(_F(1.0 / f) for f in (5040.0, 720.0, 120.0, 24.0, 6.0, 2.0, 1.0, 1.0))
_ONE = _F(1.0)
_ZERO = _F(0.0)
_HALF = _F(0.5)
_U24 = _F(1.0 / 16777216.0)
_GAMMA = np.uint64(0x9E3779B97F4A7C15)  # SplitMix64 (Steele, Lea & Flood 2014)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


@_inline
def _sigmoid(a: Any, i: int, bits: Any, scale: Any) -> None:
    """a[i] ← σ(a[i]) = 1 / (1 + e⁻ᵃ) in place, float32 a (·, n); ``bits`` an int32 scratch of
    length ≥ n and ``scale`` its float32 view. e^x = 2ᵏ e^r with k = round(x / ln 2),
    |r| ≤ ln 2 / 2 and e^r by its Taylor polynomial to r⁷ (remainder < 1e-8); 2ᵏ by writing the
    exponent field, so that the loop vectorises (libm's exp does not). x is clipped to ±87,
    where σ is 1 or below 1e-37."""
    c0, c1, c2, c3, c4, c5, c6, c7 = _C
    n = a.shape[1]
    for j in range(n):
        x = min(max(-a[i, j], -_XMAX), _XMAX)
        k = np.floor(x * _LOG2E + _HALF)
        r = (x - k * _LN2_HI) - k * _LN2_LO
        a[i, j] = ((((((c0 * r + c1) * r + c2) * r + c3) * r + c4) * r + c5) * r + c6) * r + c7
        bits[j] = (np.int32(k) + np.int32(127)) << np.int32(23)
    for j in range(n):
        a[i, j] = _ONE / (_ONE + a[i, j] * scale[j])


@_inline
def _uniforms(key: Any, counter: Any, out: Any) -> None:
    """out[j] ← the (counter + j)-th uniform on [0, 1) of the stream ``key``: SplitMix64's
    output function of key + (counter + j) γ, its top 24 bits as a float32. (n,)"""
    for j in range(out.shape[0]):
        z = key + (counter + np.uint64(j)) * _GAMMA
        z = (z ^ (z >> np.uint64(30))) * _MIX1
        z = (z ^ (z >> np.uint64(27))) * _MIX2
        z = z ^ (z >> np.uint64(31))
        out[j] = _F(z >> np.uint64(40)) * _U24


@_jit
def _stream_key(seed: int) -> Any:
    """A well-mixed 64-bit key from an integer seed (SplitMix64 of the seed)."""
    z = np.uint64(seed) * _GAMMA + _GAMMA
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


@_inline
def _nonzeros(X: Any, rows: Any, idx: Any, val: Any, cnt: Any) -> None:
    """The nonzeros of the rows X[rows[i]]: cnt[i] of them, at idx[i, :cnt[i]] with the values
    val[i, :cnt[i]] (float32). X (N, D); idx, val (len(rows), D)."""
    for i in range(rows.shape[0]):
        r = rows[i]
        c = 0
        for d in range(X.shape[1]):  # without a branch: written always, kept if nonzero
            x = X[r, d]
            idx[i, c] = d
            val[i, c] = x
            c += 1 if x != 0.0 else 0
        cnt[i] = c


@_inline
def _hidden_row(idx: Any, val: Any, cnt: Any, i: int, WT: Any, bx: Any, out: Any,
                bits: Any, scale: Any) -> None:
    """out[i] ← σ(b_x + W v) = p̂(h = 1 | v) for the sparse v of row i (``_nonzeros``): the
    columns Wᵀ[d] where v_d ≠ 0, four at a time. WT (D, H), out (·, H), float32."""
    H = bx.shape[0]
    for j in range(H):
        out[i, j] = bx[j]
    n = cnt[i]
    t = 0
    while t + 3 < n:
        d1, d2, d3, d4 = idx[i, t], idx[i, t + 1], idx[i, t + 2], idx[i, t + 3]
        a1, a2, a3, a4 = val[i, t], val[i, t + 1], val[i, t + 2], val[i, t + 3]
        for j in range(H):
            out[i, j] += (a1 * WT[d1, j] + a2 * WT[d2, j]) + (a3 * WT[d3, j] + a4 * WT[d4, j])
        t += 4
    while t < n:
        d1 = idx[i, t]
        a1 = val[i, t]
        for j in range(H):
            out[i, j] += a1 * WT[d1, j]
        t += 1
    _sigmoid(out, i, bits, scale)


@_inline
def _gibbs_row(hn: Any, i: int, W: Any, by: Any, vn: Any, idx: Any, cnt: Any, on: Any,
               u: Any, p: Any, bits: Any, scale: Any) -> None:
    """A Gibbs sweep of chain i from its hidden probabilities: h ~ Bernoulli(hn[i]), then
    vn[i] ← v ~ Bernoulli(σ(b_y + Wᵀ h)) — the sum of the rows W[j] of the units that are on,
    four at a time — with its ones listed in idx[i, :cnt[i]]. W (H, D) float32; the uniforms
    u (H + D,); ``on`` an int64 scratch (H,)."""
    H = W.shape[0]
    D = by.shape[0]
    c = 0
    for j in range(H):  # the units on, listed without a branch
        on[c] = j
        c += 1 if u[j] < hn[i, j] else 0
    for d in range(D):
        p[0, d] = by[d]
    t = 0
    while t + 3 < c:
        j1, j2, j3, j4 = on[t], on[t + 1], on[t + 2], on[t + 3]
        for d in range(D):
            p[0, d] += (W[j1, d] + W[j2, d]) + (W[j3, d] + W[j4, d])
        t += 4
    while t < c:
        j1 = on[t]
        for d in range(D):
            p[0, d] += W[j1, d]
        t += 1
    _sigmoid(p, 0, bits, scale)
    c = 0
    for d in range(D):
        one = u[H + d] < p[0, d]
        vn[i, d] = 1.0 if one else 0.0
        idx[i, c] = d
        c += 1 if one else 0
    cnt[i] = c


@_jit
def _transpose_to(WT: Any, W: Any) -> None:
    """W ← Wᵀᵀ as float32, in tiles of 8 rows of Wᵀ (contiguous stores). WT (D, H), W (H, D)."""
    D, H = WT.shape
    d0 = 0
    while d0 + 7 < D:
        for j in range(H):
            for dd in range(8):
                W[j, d0 + dd] = WT[d0 + dd, j]
        d0 += 8
    for d in range(d0, D):
        for j in range(H):
            W[j, d] = WT[d, j]


@_inline
def _scatter_statistics(GT: Any, idx: Any, val: Any, cnt: Any, i: int, h: Any,
                        scale: Any) -> None:
    """Wᵀ-shaped statistics: GT[d] += scale · v_d · h[i] over the nonzeros of row i."""
    for t in range(cnt[i]):
        d = idx[i, t]
        c = scale * val[i, t]
        for j in range(h.shape[1]):
            GT[d, j] += c * h[i, j]


@_jit
def _sgd(theta: Any, grad_ascent: Any, buf: Any, lr: float, momentum: float,
         weight_decay: float, first: bool) -> float:
    """torch's SGD step on θ with the ascent direction Δ (any shape, C-contiguous); returns
    ‖Δ‖²."""
    flat_t = theta.reshape(-1)
    flat_g = grad_ascent.reshape(-1)
    flat_b = buf.reshape(-1)
    total = 0.0
    for i in range(flat_t.shape[0]):
        g = flat_g[i]
        total += g * g
        d = -g + weight_decay * flat_t[i]
        if momentum != 0.0:
            if first:
                flat_b[i] = d
            else:
                flat_b[i] = momentum * flat_b[i] + d
            d = flat_b[i]
        flat_t[i] -= lr * d
    return total


@_inline
def _step(theta: Any, grad_ascent: Any, buf: Any, theta32: Any, lr: float, momentum: float,
          weight_decay: float, first: bool) -> float:
    """``_sgd`` fused with what follows it in the epoch loop, one pass over the parameters:
    the same step on θ (float64), then θ32 ← float32(θ) (the copy the passes read) and
    Δ ← 0 (the statistics of the next minibatch accumulate into it). Returns ‖Δ‖²."""
    flat_t = theta.reshape(-1)
    flat_g = grad_ascent.reshape(-1)
    flat_b = buf.reshape(-1)
    flat_32 = theta32.reshape(-1)
    total = 0.0
    if momentum == 0.0:  # the default: no buffer, a loop that vectorises
        for i in range(flat_t.shape[0]):
            g = np.float64(flat_g[i])
            total += g * g
            t = flat_t[i]
            t -= lr * (-g + weight_decay * t)
            flat_t[i] = t
            flat_32[i] = t
            flat_g[i] = 0.0
        return total
    for i in range(flat_t.shape[0]):
        g = np.float64(flat_g[i])
        total += g * g
        t = flat_t[i]
        d = -g + weight_decay * t
        if first:
            flat_b[i] = d
        else:
            flat_b[i] = momentum * flat_b[i] + d
        t -= lr * flat_b[i]
        flat_t[i] = t
        flat_32[i] = t
        flat_g[i] = 0.0
    return total


@_jit
def cd_epochs(X: Any, orders: Any, batch: int, W: Any, bx: Any, by: Any, bufW: Any, bufx: Any,
              bufy: Any, chains: Any, k: int, persistent: bool, lr: float, momentum: float,
              weight_decay: float, first: bool, seed: int) -> Any:
    """Run len(orders) epochs in place. X: (N, D) data in [0, 1]; orders: (E, N) int64, each
    epoch's permutation; W (H, D), bx (H,), by (D,) and their momentum buffers, float64; chains
    (M, D) the binary PCD chains (updated in place). ``first``: the momentum buffers are empty
    (the first step fills them). k ≥ 1. Returns each epoch's mean of ‖ΔW‖² over its
    minibatches (a progress statistic). (E,)

    Epoch e draws its uniforms from the stream of seed + e and starts by recomputing the
    chains' hidden probabilities, so one call for E epochs equals E calls of one epoch each
    with seeds seed, seed + 1, … (the estimator's progress bar makes the calls one by one).
    """
    n, D = X.shape
    H = W.shape[0]
    WT = np.ascontiguousarray(W.T)  # the parameters as Wᵀ during the call, written back
    bufWT = np.ascontiguousarray(bufW.T)
    WT32 = WT.astype(np.float32)  # the float32 copies the passes read, Wᵀ and W
    W32 = W.astype(np.float32)
    bx32 = bx.astype(np.float32)
    by32 = by.astype(np.float32)
    bmax = min(batch, n)
    m = chains.shape[0] if persistent else bmax
    mmax = max(m, bmax)
    vn = np.empty((mmax, D))  # the chains' visible states, their ones and H⁻ = p̂(h|v⁻)
    v_idx = np.empty((mmax, D), dtype=np.int64)
    v_cnt = np.zeros(mmax, dtype=np.int64)
    ones = np.ones((mmax, D), dtype=np.float32)
    hn = np.empty((mmax, H), dtype=np.float32)
    x_idx = np.empty((bmax, D), dtype=np.int64)  # the batch's nonzeros and H⁺
    x_val = np.empty((bmax, D), dtype=np.float32)
    x_cnt = np.empty(bmax, dtype=np.int64)
    h0 = np.empty((bmax, H), dtype=np.float32)
    on = np.empty(H, dtype=np.int64)
    u = np.empty(H + D, dtype=np.float32)
    p = np.empty((1, D), dtype=np.float32)
    bits = np.empty(max(H, D), dtype=np.int32)
    scale = bits.view(np.float32)
    GT = np.zeros((D, H), dtype=np.float32)  # the statistics, zeroed again by each _step
    gx = np.zeros(H)
    gy = np.zeros(D)
    if persistent:
        v_val = np.empty((m, D), dtype=np.float32)
        _nonzeros(chains, np.arange(m), v_idx, v_val, v_cnt)
        for i in range(m):
            vn[i] = chains[i]
            _hidden_row(v_idx, v_val, v_cnt, i, WT32, bx32, hn, bits, scale)
    epochs = orders.shape[0]
    out = np.zeros(epochs)
    for e in range(epochs):
        key = _stream_key(seed + e)
        counter = np.uint64(0)
        if persistent and e > 0:  # H⁻ of the chains with the parameters of now
            for i in range(m):
                _hidden_row(v_idx, ones, v_cnt, i, WT32, bx32, hn, bits, scale)
        total = 0.0
        nb = 0
        for start in range(0, n, batch):
            stop = min(start + batch, n)
            b = stop - start
            rows = orders[e, start:stop]
            _nonzeros(X, rows, x_idx, x_val, x_cnt)
            for i in range(b):  # positive phase: H⁺ = σ(b_x + W v⁺), exact
                _hidden_row(x_idx, x_val, x_cnt, i, WT32, bx32, h0, bits, scale)
            if not persistent:  # CD: the chains start at the batch (k ≥ 1), their H at H⁺
                m = b
                hn[:b] = h0[:b]
            for _ in range(k):  # k block Gibbs sweeps h ~ p(h|v), v ~ p(v|h) of each chain
                for i in range(m):
                    _uniforms(key, counter, u)
                    counter += np.uint64(H + D)
                    _gibbs_row(hn, i, W32, by32, vn, v_idx, v_cnt, on, u, p, bits, scale)
                    _hidden_row(v_idx, ones, v_cnt, i, WT32, bx32, hn, bits, scale)
            pos = _F(1.0 / b)
            neg = _F(-1.0 / m)
            for i in range(b):
                _scatter_statistics(GT, x_idx, x_val, x_cnt, i, h0, pos)
                for j in range(H):
                    gx[j] += h0[i, j]
                for t in range(x_cnt[i]):
                    gy[x_idx[i, t]] += x_val[i, t]
            for j in range(H):
                gx[j] *= m / b
            for d in range(D):
                gy[d] *= m / b
            for i in range(m):
                _scatter_statistics(GT, v_idx, ones, v_cnt, i, hn, neg)
                for j in range(H):
                    gx[j] -= hn[i, j]
                for t in range(v_cnt[i]):
                    gy[v_idx[i, t]] -= 1.0
            for j in range(H):
                gx[j] /= m
            for d in range(D):
                gy[d] /= m
            total += _step(WT, GT, bufWT, WT32, lr, momentum, weight_decay, first)
            _step(bx, gx, bufx, bx32, lr, momentum, weight_decay, first)
            _step(by, gy, bufy, by32, lr, momentum, weight_decay, first)
            first = False
            _transpose_to(WT32, W32)
            nb += 1
        out[e] = total / max(nb, 1)
    W[:, :] = WT.T
    bufW[:, :] = bufWT.T
    if persistent:
        chains[:, :] = vn[:m]
    return out
