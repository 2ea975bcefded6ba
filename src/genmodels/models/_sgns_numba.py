"""The Numba kernels behind ``SkipGram.fit_corpus``: skip-gram with negative sampling (word2vec;
Mikolov et al. 2013) as compiled stochastic gradient descent, imported lazily by
``genmodels.models.embeddings`` (so that importing genmodels does not import Numba).

Each update is one SGD step on the negative-sampling loss of one (input word, target word) pair
with its k negatives — NCE with k q(w) ≡ 1, so that Δs = s = u_wᵀ v_c (S2:160-175, erratum S2-4):

    ℓ = −log σ(u_wᵀ v_c) − Σ_{j=1..k} log σ(−u_{w̄_j}ᵀ v_c)
    ∂ℓ/∂u_w = (σ(u_wᵀv_c) − 1) v_c,   ∂ℓ/∂u_w̄ = σ(u_w̄ᵀv_c) v_c,
    ∂ℓ/∂v_c = (σ(u_wᵀv_c) − 1) u_w + Σ_j σ(u_w̄ᵀv_c) u_w̄.

Rows: ``syn0[c]`` = v_c (the input vectors, gensim's ``wv.vectors``), ``syn1neg[w]`` = u_w (the
output vectors). The sigmoid is exact (word2vec's table clips at |s| = 6 and skips the update
there). A negative equal to the positive word is skipped, as word2vec does.

Module-level functions, so that Numba's disk cache (``cache=True``) finds them in the next
process. ``nogil``: ``embeddings`` runs one kernel per thread over disjoint chunks of the corpus,
all updating the shared rows without locks (Hogwild; Recht et al. 2011), as gensim's workers do.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

#: Floating-point licence: reassociation (so that the length-D dot products and updates
#: vectorise), fused multiply–add, no signed zeros, reciprocals.
_FASTMATH = {"reassoc", "contract", "nsz", "arcp"}
_jit = numba.njit(cache=True, nogil=True, error_model="numpy", fastmath=_FASTMATH)

#: The 48-bit linear congruential generator of java.util.Random (and of word2vec and gensim):
#: state ← (A·state + C) mod 2⁴⁸, the draw is bits 16..47 of the old state (32 bits).
LCG_A = 25214903917
LCG_C = 11
LCG_MASK = (1 << 48) - 1


@_jit
def pair_update(syn0: Any, syn1neg: Any, c: int, w: int, negatives: Any, n_neg: int,
                alpha: Any, work: Any) -> None:
    """One SGD step with learning rate ``alpha`` on ℓ for the pair (input c, target w) and the
    first ``n_neg`` entries of ``negatives``. work: (D,) scratch for ∂ℓ/∂v_c."""
    D = syn0.shape[1]
    v = syn0[c]
    one = np.float32(1.0)
    for d in range(D):
        work[d] = 0.0
    for j in range(n_neg + 1):
        if j == 0:
            t, label = w, one
        else:
            t = negatives[j - 1]
            if t == w:
                continue
            label = np.float32(0.0)
        u = syn1neg[t]
        s = np.float32(0.0)
        for d in range(D):
            s += v[d] * u[d]
        g = np.float32((label - one / (one + np.exp(-s))) * alpha)  # −α ∂ℓ/∂s
        for d in range(D):
            work[d] += g * u[d]
        for d in range(D):
            u[d] += g * v[d]
    for d in range(D):
        v[d] += work[d]


@_jit
def train_pairs(syn0: Any, syn1neg: Any, inputs: Any, targets: Any, negatives: Any,
                alphas: Any) -> None:
    """Sequential SGD over given pairs: inputs, targets (P,), negatives (P, k), alphas (P,)."""
    work = np.empty(syn0.shape[1], dtype=syn0.dtype)
    k = negatives.shape[1]
    for p in range(inputs.shape[0]):
        pair_update(syn0, syn1neg, inputs[p], targets[p], negatives[p], k,
                    np.float32(alphas[p]), work)


@_jit
def train_chunks(tokens: Any, sentence_starts: Any, chunk_sentences: Any, chunk_words: Any,
                 chunks: Any, keep: Any, alias_keep: Any, alias: Any, syn0: Any, syn1neg: Any,
                 window: int, negative: int, shrink_windows: bool, alpha0: float,
                 alpha1: float, epoch: int, epochs: int, total_words: int, seed: int) -> int:
    """One epoch of skip-gram over the chunks listed in ``chunks`` (one thread's share).

    tokens: (N,) word ids of the whole corpus; sentence_starts: (S + 1,) offsets of the
    sentences in it; chunk_sentences: (C + 1,) the sentences of chunk i are
    chunk_sentences[i]..chunk_sentences[i+1]; chunk_words: (C,) the number of corpus words
    before chunk i (its progress through the epoch).
    keep: (V,) subsampling: word w is kept when a 32-bit draw is ≤ keep[w] (2³² − 1 keeps
    all).
    alias_keep, alias: (V,) Walker's alias table of the noise distribution q: draw i uniform,
    keep i when a 32-bit draw is < alias_keep[i], else take alias[i].
    Learning rate linear from alpha0 to alpha1 over all epochs, held per chunk (as gensim holds
    it per job). Windows: the window of word i is shrunk by b ~ U{0..window−1} (when
    ``shrink_windows``). Words within a sentence only. Returns the number of words kept after
    subsampling (the "effective words")."""
    D = syn0.shape[1]
    V = keep.shape[0]
    work = np.empty(D, dtype=syn0.dtype)
    longest = 0
    for s in range(sentence_starts.shape[0] - 1):
        longest = max(longest, sentence_starts[s + 1] - sentence_starts[s])
    buf = np.empty(longest, dtype=np.int64)
    negatives = np.empty(max(negative, 1), dtype=np.int64)
    effective = 0
    for ci in range(chunks.shape[0]):
        chunk = chunks[ci]
        progress = (epoch * total_words + chunk_words[chunk]) / (epochs * total_words)
        alpha = np.float32(max(alpha0 - (alpha0 - alpha1) * progress, alpha1))
        # a stream per (seed, epoch, chunk): the same draws whatever thread runs the chunk
        state = (seed * 1000003 + epoch * 7919 + chunk * 104729 + 1) & LCG_MASK
        for s in range(chunk_sentences[chunk], chunk_sentences[chunk + 1]):
            n = 0
            for p in range(sentence_starts[s], sentence_starts[s + 1]):
                word = tokens[p]
                r = state >> 16
                state = (state * LCG_A + LCG_C) & LCG_MASK
                if r <= keep[word]:
                    buf[n] = word
                    n += 1
            effective += n
            for i in range(n):
                b = 0
                if shrink_windows:
                    b = (state >> 16) % window
                    state = (state * LCG_A + LCG_C) & LCG_MASK
                lo = max(0, i - window + b)
                hi = min(n, i + window + 1 - b)
                for j in range(lo, hi):
                    if j == i:
                        continue
                    for q in range(negative):
                        r = (state >> 16) % V
                        state = (state * LCG_A + LCG_C) & LCG_MASK
                        if (state >> 16) < alias_keep[r]:
                            negatives[q] = r
                        else:
                            negatives[q] = alias[r]
                        state = (state * LCG_A + LCG_C) & LCG_MASK
                    pair_update(syn0, syn1neg, buf[j], buf[i], negatives, negative, alpha,
                                work)
    return effective


def alias_table(probs: Any) -> tuple[Any, Any]:
    """Walker's alias method (Vose 1991) for a categorical distribution probs (V,): draw i
    uniform, keep it with probability keep[i], else take alias[i]. Returns (keep as int64
    thresholds on a 32-bit draw, alias (V,) int64)."""
    p = np.asarray(probs, dtype=np.float64)
    V = p.shape[0]
    scaled = p * (V / p.sum())
    keep = np.ones(V)
    alias = np.arange(V, dtype=np.int64)
    small = [i for i in range(V) if scaled[i] < 1.0]
    large = [i for i in range(V) if scaled[i] >= 1.0]
    while small and large:
        s, g = small.pop(), large.pop()
        keep[s], alias[s] = scaled[s], g
        scaled[g] -= 1.0 - scaled[s]
        (small if scaled[g] < 1.0 else large).append(g)
    thresholds = np.minimum(np.floor(keep * 2.0**32), 2.0**32).astype(np.int64)
    return thresholds, alias


__all__ = ["LCG_A", "LCG_C", "LCG_MASK", "alias_table", "pair_update", "train_chunks",
           "train_pairs"]
