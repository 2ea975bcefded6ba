"""Word embeddings by skip-gram with negative sampling (word2vec; Mikolov et al. 2013; the NCE
slides S2:70-77, 160-175; CATALOGUE I3).

The model scores a target word w against an input ("centre") word c by s(w|c) = u_wᵀ v_c, an
unnormalised log-probability of the softmax Pr(w|c) = exp s(w|c) / Σ_w′ exp s(w′|c) (S2:70). The
normaliser sums over the vocabulary; negative sampling avoids it. It is NCE with k q(w) ≡ 1
(erratum S2-5): Δs = s, and the loss of a pair with its k noise words w̄ ~ q is

    ℓ = −log σ(u_wᵀ v_c) − Σ_j log σ(−u_w̄ⱼᵀ v_c)                        (S2-4, corrected)

With word2vec's noise q ∝ count^¾ and small k this is *not* consistent NCE: the optimum is
u_wᵀv_c = log p(w, c)/(p(w) p(c)) − log k with q the unigram distribution (the shifted PMI,
Levy & Goldberg 2014), which does not self-normalise; ``objective="nce"`` trains the
consistent, self-normalising conditional NCE instead (Δs = s − log k q(w)).

Two ways to train, one loss:

* ``SkipGram.loss`` over (input, target) pairs, through ``learning.trainer`` (any device,
  either objective) — ``skipgram_pairs`` makes the pairs;
* ``SkipGram.fit_corpus``, the word2vec algorithm as compiled SGD on the CPU (Numba; the
  kernels in ``_sgns_numba``): a pass over the corpus with subsampling of frequent words, a
  shrunk window per word, a learning rate decaying linearly, and the negative-sampling loss's
  exact gradient step per pair, on ``workers`` threads without locks (Hogwild), as gensim does.

``WordVectors`` holds the trained input vectors with gensim's ``KeyedVectors`` names
(``most_similar``, ``similarity``, ``evaluate_word_pairs``, ``evaluate_word_analogies``).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from genmodels._threads import single_threaded
from genmodels._validation import (
    check_choice,
    check_nonnegative_float,
    check_positive_int,
)
from genmodels.io import SavableModule
from genmodels.learning.nce import (
    UnigramNoise,
    conditional_nce_loss,
    skipgram_negative_sampling_loss,
)

__all__ = ["AnalogyScores", "SkipGram", "WordPairScores", "WordVectors", "chunk_corpus",
           "keep_probabilities", "skipgram_pairs", "spearman"]

#: Corpus words per chunk of the compiled pass (gensim's ``batch_words``): the learning rate
#: is held per chunk, and chunks are the unit the threads share.
WORDS_PER_CHUNK = 10_000


@functools.cache
def _kernels() -> Any:
    from genmodels.models import _sgns_numba

    return _sgns_numba


def keep_probabilities(counts: Any, sample: float) -> np.ndarray:
    """word2vec's subsampling of frequent words (Mikolov et al. 2013, as in gensim): with
    t = sample · Σ counts, word w is kept with probability min(1, (√(n_w/t) + 1) t/n_w);
    1 for all when sample = 0. counts: (V,) → (V,)."""
    n = np.asarray(counts, dtype=np.float64)
    if sample == 0:
        return np.ones_like(n)
    t = sample * n.sum()
    return np.minimum((np.sqrt(n / t) + 1.0) * (t / n), 1.0)


def chunk_corpus(sentence_starts: np.ndarray, words: int = WORDS_PER_CHUNK
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Group consecutive sentences into chunks: those whose first word falls in the same block
    of ``words`` corpus words (so a chunk holds about ``words`` words, more when a long
    sentence starts in it). Returns (chunk_sentences (C + 1,): the sentences of chunk
    i are chunk_sentences[i]..[i + 1]; chunk_words (C,): the corpus words before chunk i)."""
    first = sentence_starts[:-1] // words  # the chunk a sentence's first word falls in
    begins = np.flatnonzero(np.diff(first, prepend=-1))
    chunk_sentences = np.append(begins, len(sentence_starts) - 1).astype(np.int64)
    return chunk_sentences, sentence_starts[begins].astype(np.int64)


def skipgram_pairs(tokens: Tensor, sentence_starts: Tensor, window: int, *,
                   shrink_windows: bool = True, generator: torch.Generator | None = None
                   ) -> Tensor:
    """Every (input, target) pair of a corpus of word ids: the target word i with each input
    word j ≠ i of its sentence within its window, |i − j| ≤ window − b_i, b_i ~ U{0..window−1}
    when ``shrink_windows`` (word2vec's weighting of near words). Vectorised over the corpus,
    one pass per offset. tokens: (N,); sentence_starts: (S + 1,) → (P, 2) int64."""
    w = check_positive_int(window, "window")
    n = tokens.shape[0]
    lengths = sentence_starts[1:] - sentence_starts[:-1]
    sentence = torch.repeat_interleave(torch.arange(lengths.shape[0]), lengths)
    if shrink_windows:
        reach = w - torch.randint(0, w, (n,), generator=generator)  # window of each target
    else:
        reach = torch.full((n,), w)
    pairs = []
    for o in range(1, w + 1):
        same = sentence[o:] == sentence[:-o]  # positions i, i + o in one sentence
        left, right = torch.arange(n - o), torch.arange(o, n)
        for target, inp in ((left, right), (right, left)):
            ok = same & (reach[target] >= o)
            pairs.append(torch.stack([tokens[inp[ok]], tokens[target[ok]]], 1))
    return torch.cat(pairs) if pairs else torch.empty(0, 2, dtype=torch.int64)


class SkipGram(SavableModule):
    """Skip-gram: input vectors v_c (``input_vectors``, gensim's ``wv.vectors``) and output
    vectors u_w (``output_vectors``, gensim's ``syn1neg``), s(w|c) = u_wᵀ v_c.

    counts: (V,) word counts, for the noise distribution q ∝ counts^``ns_exponent``.
    dim: D. negative: k noise words per pair. objective: ``"negative_sampling"`` (word2vec,
    Δs = s) or ``"nce"`` (Δs = s − log k q(w)); the compiled pass trains negative sampling.
    words: optional vocabulary, kept with the model when it is saved.
    seed: initialisation as gensim 4's: v uniform on ±1/D (word2vec's C code: ±½/D, measured
    to score lower on WordSim-353 and SimLex-999), u = 0. float32, as word2vec.
    """

    def __init__(self, counts: Any = None, dim: int = 100, *, negative: int = 5,
                 ns_exponent: float = 0.75, objective: str = "negative_sampling",
                 words: Sequence[str] | None = None, num_words: int | None = None,
                 seed: int = 1) -> None:
        super().__init__()
        if counts is None:  # from a saved config: the buffers are loaded afterwards
            if num_words is None:
                raise ValueError("SkipGram needs counts (V,) (or num_words when loading).")
            counts = np.ones(num_words)
        c = np.asarray(counts, dtype=np.float64)
        if c.ndim != 1 or c.size == 0:
            raise ValueError(f"counts must have shape (V,) with V >= 1, got {c.shape}.")
        V = int(c.size)
        self.dim = check_positive_int(dim, "dim")
        self.negative = check_positive_int(negative, "negative")
        self.ns_exponent = float(ns_exponent)
        self.objective = check_choice(objective, "objective", ("negative_sampling", "nce"))
        if words is not None and len(words) != V:
            raise ValueError(f"words has {len(words)} entries but counts {V}.")
        self.words = tuple(words) if words is not None else None
        self.config = {"num_words": V, "dim": self.dim, "negative": self.negative,
                       "ns_exponent": self.ns_exponent, "objective": self.objective,
                       "words": list(self.words) if self.words is not None else None,
                       "seed": int(seed)}
        g = torch.Generator().manual_seed(int(seed))
        self.input_vectors = torch.nn.Parameter(
            (2 * torch.rand(V, self.dim, generator=g, dtype=torch.float32) - 1) / self.dim)
        self.output_vectors = torch.nn.Parameter(torch.zeros(V, self.dim, dtype=torch.float32))
        self.register_buffer("counts", torch.as_tensor(c))
        self.noise = UnigramNoise(c, self.ns_exponent)

    counts: Tensor

    @property
    def num_words(self) -> int:
        return int(self.counts.shape[0])

    def scores(self, centers: Tensor, words: Tensor) -> Tensor:
        """s(w|c) = u_wᵀ v_c for index tensors of one shape (*batch,) → (*batch,)."""
        return (self.output_vectors[words] * self.input_vectors[centers]).sum(-1)

    def loss(self, batch: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """The mean loss over (input, target) pairs batch (B, 2), with k fresh noise words per
        pair from q (a ``LossModel`` for ``learning.trainer``)."""
        c, w = batch[:, 0], batch[:, 1]
        neg = self.noise.sample(batch.shape[0] * self.negative, generator).to(batch.device)
        neg = neg.view(batch.shape[0], self.negative)
        if self.objective == "negative_sampling":
            return skipgram_negative_sampling_loss(self.output_vectors, self.input_vectors,
                                                   c, w, neg)
        v = self.input_vectors[c]
        s_pos = (self.output_vectors[w] * v).sum(-1)
        s_neg = torch.einsum("bkd,bd->bk", self.output_vectors[neg], v)
        return conditional_nce_loss(s_pos, s_neg, self.noise.log_prob(w),
                                    self.noise.log_prob(neg))

    def subsample(self, tokens: Tensor, sentence_starts: Tensor, sample: float,
                  generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """The corpus with frequent words dropped at random (``keep_probabilities``)."""
        keep_p = torch.as_tensor(keep_probabilities(self.counts.cpu().numpy(), sample))
        keep = torch.rand(tokens.shape[0], generator=generator, dtype=torch.float64) \
            < keep_p[tokens]
        lengths = sentence_starts[1:] - sentence_starts[:-1]
        sentence = torch.repeat_interleave(torch.arange(lengths.shape[0]), lengths)
        kept = torch.bincount(sentence[keep], minlength=lengths.shape[0])
        return tokens[keep], torch.cat([torch.zeros(1, dtype=torch.int64), kept.cumsum(0)])

    @single_threaded  # torch does only bookkeeping here; the pass runs on ``workers`` threads
    @torch.no_grad()
    def fit_corpus(self, tokens: Any, sentence_starts: Any, *, window: int = 5,
                   sample: float = 1e-3, epochs: int = 5, alpha: float = 0.025,
                   min_alpha: float = 1e-4, workers: int = 1, shrink_windows: bool = True,
                   seed: int = 1, progress: bool = False) -> int:
        """word2vec's training pass, compiled, on the CPU (the negative-sampling objective).

        tokens: (N,) word ids; sentence_starts: (S + 1,) offsets (``Vocabulary.encode``).
        window, sample, epochs, alpha → min_alpha (linear over all epochs), shrink_windows:
        as word2vec. workers: threads updating the vectors in parallel without locks (the
        user's count, as gensim's, not lowered by the thread policy: each worker's share is
        whole chunks of ≥ 10,000 words with no barrier before the epoch's end, so a worker
        that another process delays holds up no operation of the others).
        Returns the number of words trained on after subsampling, over all epochs."""
        if self.objective != "negative_sampling":
            raise ValueError("the compiled pass trains negative sampling; train "
                             "objective='nce' through learning.trainer (SkipGram.loss).")
        if self.input_vectors.device.type != "cpu":
            raise ValueError("fit_corpus runs on the CPU; move the model with .cpu() first.")
        K = _kernels()
        tok = np.ascontiguousarray(np.asarray(tokens, dtype=np.int64))
        starts = np.ascontiguousarray(np.asarray(sentence_starts, dtype=np.int64))
        V = self.num_words
        if tok.ndim != 1 or starts.ndim != 1 or starts.size < 2 or starts[0] != 0 \
                or starts[-1] != tok.size or np.any(np.diff(starts) < 0):
            raise ValueError("sentence_starts must rise from 0 to len(tokens) (S + 1 offsets).")
        if tok.size == 0:
            raise ValueError("the corpus is empty: no in-vocabulary tokens to train on.")
        if tok.min() < 0 or tok.max() >= V:
            raise ValueError(f"tokens must be word ids in [0, {V}), got values in "
                             f"[{tok.min()}, {tok.max()}].")
        window = check_positive_int(window, "window")
        epochs = check_positive_int(epochs, "epochs")
        workers = check_positive_int(workers, "workers")
        sample = check_nonnegative_float(sample, "sample")
        alpha = check_nonnegative_float(alpha, "alpha", strictly=True)
        min_alpha = check_nonnegative_float(min_alpha, "min_alpha")
        counts = self.counts.cpu().numpy()
        # gensim's threshold on a 32-bit draw: ⌊p (2³² − 1)⌋ (kept when the draw is ≤ it)
        keep = (keep_probabilities(counts, sample) * (2.0**32 - 1)).astype(np.int64)
        alias_keep, alias = K.alias_table(np.where(counts > 0, counts, 0) ** self.ns_exponent)
        chunk_sentences, chunk_words = chunk_corpus(starts)
        n_chunks = chunk_words.shape[0]
        shares = [np.arange(t, n_chunks, workers, dtype=np.int64) for t in range(workers)]
        syn0 = self.input_vectors.data.numpy()  # views: the kernel updates the parameters
        syn1 = self.output_vectors.data.numpy()

        def run(share: np.ndarray, epoch: int) -> int:
            return int(K.train_chunks(tok, starts, chunk_sentences, chunk_words, share, keep,
                                      alias_keep, alias, syn0, syn1, window, self.negative,
                                      shrink_windows, alpha, min_alpha, epoch, epochs,
                                      tok.size, int(seed)))

        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=epochs, desc="SkipGram", unit="epoch")
        effective = 0
        pool = ThreadPoolExecutor(workers) if workers > 1 else None
        try:
            for epoch in range(epochs):
                if pool is None:
                    effective += run(shares[0], epoch)
                else:
                    effective += sum(pool.map(run, shares, [epoch] * workers))
                if bar is not None:
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()
            if pool is not None:
                pool.shutdown()
        return effective

    def word_vectors(self, words: Sequence[str] | None = None) -> WordVectors:
        """The input vectors as ``WordVectors`` (a copy), keyed by ``words`` (default: the
        model's own)."""
        words = words if words is not None else self.words
        if words is None:
            raise ValueError("this SkipGram has no vocabulary; pass words.")
        return WordVectors(words, self.input_vectors.detach().cpu().numpy().copy())


# ---------------------------------------------------------------- evaluation
def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n with ties given their average rank (as scipy.stats.rankdata)."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    boundaries = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1], True])
    ranks_sorted = np.repeat(0.5 * (boundaries[:-1] + boundaries[1:] - 1) + 1,
                             np.diff(boundaries))
    out = np.empty(x.shape[0])
    out[order] = ranks_sorted
    return out


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    denom = math.sqrt(float(a @ a) * float(b @ b))
    return float(a @ b) / denom if denom > 0 else math.nan


def spearman(a: Any, b: Any) -> float:
    """Spearman's rank correlation: Pearson's correlation of the (tie-averaged) ranks."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return _pearson(_ranks(x), _ranks(y))


class WordPairScores(NamedTuple):
    """Agreement of the model's cosine similarities with human judgements.

    pearson, spearman: correlations over the pairs with both words known; oov_ratio: the
    percentage of pairs skipped for an unknown word (gensim's unit); n_pairs: pairs scored.
    """

    pearson: float
    spearman: float
    oov_ratio: float
    n_pairs: int


class AnalogyScores(NamedTuple):
    """3CosAdd analogy accuracy (a : b :: c : ?, the nearest word to b − a + c excluding a, b, c).

    accuracy: correct / answered over all sections; sections: {name: (correct, answered)};
    oov: questions skipped for an unknown word.
    """

    accuracy: float
    sections: dict[str, tuple[int, int]]
    oov: int


class WordVectors:
    """Word vectors with gensim's ``KeyedVectors`` names.

    words: (V,) the words (``index_to_key``); vectors: (V, D) float32.
    """

    def __init__(self, words: Sequence[str], vectors: Any) -> None:
        vec = np.asarray(vectors, dtype=np.float32)
        if vec.ndim != 2 or vec.shape[0] != len(words):
            raise ValueError(f"vectors must be ({len(words)}, D) for {len(words)} words, got "
                             f"{vec.shape}.")
        self.index_to_key = list(words)
        self.key_to_index = {w: i for i, w in enumerate(self.index_to_key)}
        self.vectors = vec

    @property
    def vector_size(self) -> int:
        return int(self.vectors.shape[1])

    def __len__(self) -> int:
        return len(self.index_to_key)

    def __contains__(self, word: str) -> bool:
        return word in self.key_to_index

    def get_index(self, word: str) -> int:
        if word not in self.key_to_index:
            raise KeyError(f"word {word!r} not in vocabulary")
        return self.key_to_index[word]

    def __getitem__(self, word: str) -> np.ndarray:
        return self.vectors[self.get_index(word)]

    def get_normed_vectors(self) -> np.ndarray:
        """Rows scaled to unit length (zero rows stay zero)."""
        norms = np.linalg.norm(self.vectors, axis=1, keepdims=True)
        return self.vectors / np.where(norms > 0, norms, 1.0)

    def similarity(self, w1: str, w2: str) -> float:
        """cos(v_w1, v_w2)."""
        a, b = self[w1], self[w2]
        return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))

    def most_similar(self, positive: Sequence[str] = (), negative: Sequence[str] = (),
                     topn: int = 10) -> list[tuple[str, float]]:
        """The words nearest (cosine) to the mean of the unit vectors of ``positive`` minus
        those of ``negative``, the query words excluded."""
        if isinstance(positive, str):
            positive = [positive]
        if isinstance(negative, str):
            negative = [negative]
        if not positive and not negative:
            raise ValueError("most_similar needs at least one positive or negative word.")
        normed = self.get_normed_vectors()
        idx = [self.get_index(w) for w in (*positive, *negative)]
        q = normed[idx[: len(positive)]].sum(0) - normed[idx[len(positive):]].sum(0)
        q /= max(float(np.linalg.norm(q)), np.finfo(np.float32).tiny)
        sims = normed @ q
        sims[idx] = -np.inf
        top = np.argsort(-sims, kind="stable")[:topn]
        return [(self.index_to_key[i], float(sims[i])) for i in top]

    def _ok_vocab(self, restrict_vocab: int, case_insensitive: bool) -> dict[str, int]:
        """The first ``restrict_vocab`` words, upper-cased when case-insensitive (the most
        frequent spelling wins), as gensim's evaluations build it."""
        keys = self.index_to_key[:restrict_vocab]
        if case_insensitive:
            return {k.upper(): self.key_to_index[k] for k in reversed(keys)}
        return {k: self.key_to_index[k] for k in reversed(keys)}

    def evaluate_word_pairs(self, pairs: str | Sequence[tuple[str, str, float]], *,
                            restrict_vocab: int = 300_000,
                            case_insensitive: bool = True) -> WordPairScores:
        """Correlation of cosine similarities with a human similarity set: ``wordsim353``,
        ``simlex999`` (gensim's test data), a file path, or (word1, word2, score) triples.
        Pairs with a word outside the first ``restrict_vocab`` words are skipped."""
        from genmodels.data.text import word_pairs

        triples = word_pairs(pairs) if isinstance(pairs, str) else list(pairs)
        ok = self._ok_vocab(restrict_vocab, case_insensitive)
        norm = (lambda w: w.upper()) if case_insensitive else (lambda w: w)
        known = [(ok[norm(a)], ok[norm(b)], s) for a, b, s in triples
                 if norm(a) in ok and norm(b) in ok]
        if not known:
            raise ValueError("no pair of the similarity set has both words in the vocabulary.")
        i, j, gold = (np.array(x) for x in zip(*known))
        normed = self.get_normed_vectors()
        model = (normed[i].astype(np.float64) * normed[j]).sum(1)
        oov = len(triples) - len(known)
        return WordPairScores(_pearson(gold, model), spearman(gold, model),
                              100.0 * oov / len(triples), len(known))

    def evaluate_word_analogies(self, path: str | None = None, *, restrict_vocab: int = 300_000,
                                case_insensitive: bool = True,
                                chunk: int = 2048) -> AnalogyScores:
        """3CosAdd accuracy on analogy questions (default Mikolov et al.'s questions-words.txt
        from gensim's test data), questions with a word outside the first ``restrict_vocab``
        words skipped; all questions of a chunk scored with one matrix product."""
        from genmodels.data.text import analogy_questions

        ok = self._ok_vocab(restrict_vocab, case_insensitive)
        norm = (lambda w: w.upper()) if case_insensitive else (lambda w: w)
        n_ok = min(restrict_vocab, len(self))
        normed = self.get_normed_vectors()[:n_ok]
        # each restricted word's evaluation key, as the index of the key's canonical spelling
        key_id = np.array([ok[norm(w)] for w in self.index_to_key[:n_ok]])
        sections: dict[str, tuple[int, int]] = {}
        oov = total_correct = total = 0
        for name, questions in analogy_questions(path):
            q = [tuple(norm(w) for w in quad) for quad in questions]
            known = [quad for quad in q if all(w in ok for w in quad)]
            oov += len(q) - len(known)
            correct = 0
            for start in range(0, len(known), chunk):
                a, b, c, d = np.array([[ok[w] for w in quad] for quad in
                                       known[start:start + chunk]]).T
                sims = (normed[b] + normed[c] - normed[a]) @ normed.T  # 3CosAdd, (Q, V′)
                for m in (a, b, c):  # the question words (in any spelling) are no answer
                    sims[key_id[None, :] == m[:, None]] = -np.inf
                correct += int((key_id[sims.argmax(1)] == d).sum())
            sections[name] = (correct, len(known))
            total_correct += correct
            total += len(known)
        return AnalogyScores(total_correct / total if total else 0.0, sections, oov)
