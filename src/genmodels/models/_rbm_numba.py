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

The uniforms come from Numba's own Mersenne Twister, seeded per call.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

_jit = numba.njit(cache=True, nogil=True, error_model="numpy")


@_jit
def _seed(seed: int) -> None:
    np.random.seed(seed)  # noqa: NPY002 (Numba supports only the legacy generator)


@_jit
def _sigmoid_inplace(a: Any) -> None:
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            a[i, j] = 1.0 / (1.0 + np.exp(-a[i, j]))


@_jit
def _bernoulli_inplace(p: Any) -> None:
    for i in range(p.shape[0]):
        for j in range(p.shape[1]):
            p[i, j] = 1.0 if np.random.random() < p[i, j] else 0.0  # noqa: NPY002


@_jit
def _hidden_probs(v: Any, W: Any, bx: Any) -> Any:
    a = v @ W.T
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            a[i, j] += bx[j]
    _sigmoid_inplace(a)
    return a


@_jit
def _visible_probs(h: Any, W: Any, by: Any) -> Any:
    a = h @ W
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            a[i, j] += by[j]
    _sigmoid_inplace(a)
    return a


@_jit
def _sgd(theta: Any, grad_ascent: Any, buf: Any, lr: float, momentum: float,
         weight_decay: float, first: bool) -> None:
    flat_t = theta.reshape(-1)
    flat_g = grad_ascent.reshape(-1)
    flat_b = buf.reshape(-1)
    for i in range(flat_t.shape[0]):
        d = -flat_g[i] + weight_decay * flat_t[i]
        if momentum != 0.0:
            if first:
                flat_b[i] = d
            else:
                flat_b[i] = momentum * flat_b[i] + d
            d = flat_b[i]
        flat_t[i] -= lr * d


@_jit
def cd_epochs(X: Any, orders: Any, batch: int, W: Any, bx: Any, by: Any, bufW: Any, bufx: Any,
              bufy: Any, chains: Any, k: int, persistent: bool, lr: float, momentum: float,
              weight_decay: float, first: bool, seed: int) -> Any:
    """Run len(orders) epochs in place. X: (N, D) data; orders: (E, N) int64, each epoch's
    permutation; W (H, D), bx (H,), by (D,) and their momentum buffers; chains (M, D) the PCD
    chains (updated in place). ``first``: the momentum buffers are empty (the first step fills
    them). Returns each epoch's mean of ‖ΔW‖² over its minibatches (a progress statistic). (E,)
    """
    _seed(seed)
    n = X.shape[0]
    epochs = orders.shape[0]
    out = np.zeros(epochs)
    for e in range(epochs):
        total = 0.0
        nb = 0
        for start in range(0, n, batch):
            stop = min(start + batch, n)
            idx = orders[e, start:stop]
            b = stop - start
            v0 = np.empty((b, X.shape[1]))
            for i in range(b):
                v0[i] = X[idx[i]]
            h0 = _hidden_probs(v0, W, bx)
            vn = chains.copy() if persistent else v0.copy()
            for _ in range(k):
                hs = _hidden_probs(vn, W, bx)
                _bernoulli_inplace(hs)
                vn = _visible_probs(hs, W, by)
                _bernoulli_inplace(vn)
            hn = _hidden_probs(vn, W, bx)
            m = vn.shape[0]
            gW = (h0.T @ v0) / b - (hn.T @ vn) / m
            gx = h0.sum(axis=0) / b - hn.sum(axis=0) / m
            gy = v0.sum(axis=0) / b - vn.sum(axis=0) / m
            _sgd(W, gW, bufW, lr, momentum, weight_decay, first)
            _sgd(bx, gx, bufx, lr, momentum, weight_decay, first)
            _sgd(by, gy, bufy, lr, momentum, weight_decay, first)
            first = False
            if persistent:
                chains[:, :] = vn
            total += (gW * gW).sum()
            nb += 1
        out[e] = total / max(nb, 1)
    return out
