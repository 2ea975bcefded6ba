"""``Word2Vec``: skip-gram with negative sampling behind gensim's names (``gensim.models.
Word2Vec``): ``Word2Vec(sentences, vector_size=100, window=5, min_count=5, negative=5, ...)``,
``build_vocab``, ``train``, ``wv`` (``most_similar``, ``similarity``, ``evaluate_word_pairs``,
``evaluate_word_analogies``), ``syn1neg``.

A thin face over ``genmodels.models.embeddings.SkipGram``: the compiled word2vec pass on the
CPU (``backend="compiled"``), or the same loss through ``learning.trainer`` on any device
(``backend="torch"``). Only skip-gram with negative sampling is implemented: ``sg=1`` is the
default here (gensim's default is CBOW, ``sg=0``, which is refused, as is ``hs=1``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

import numpy as np
import torch

from genmodels._validation import check_choice, check_nonnegative_float, check_positive_int
from genmodels.data.text import Vocabulary
from genmodels.estimators._base import check_fitted
from genmodels.models.embeddings import SkipGram, WordVectors, skipgram_pairs

__all__ = ["Word2Vec"]


class Word2Vec:
    """Skip-gram word embeddings with gensim's parameter names.

    sentences: optional corpus (an iterable of token lists); given, the model is built and
        trained at once, as in gensim.
    vector_size, window, min_count, sample, negative, ns_exponent, alpha, min_alpha, epochs,
    seed, workers, shrink_windows: as gensim (``workers`` threads share the vectors without
    locks).
    sg, hs: must be 1 and 0 (skip-gram, negative sampling).
    backend: ``"compiled"`` (Numba, CPU) or ``"torch"`` (``learning.trainer``; batches of
        ``batch_size`` pairs, SGD with learning rate alpha·batch_size decaying linearly per
        epoch; pairs and subsampling drawn once).
    device: for the torch backend.

    Fitted: ``wv`` (``WordVectors``: ``vectors``, ``index_to_key``, ``key_to_index``),
    ``syn1neg`` (the output vectors), ``corpus_count`` (sentences), ``corpus_total_words``,
    ``skipgram_`` (the ``SkipGram`` module), ``effective_words_`` (words trained on after
    subsampling, all epochs).
    """

    def __init__(self, sentences: Iterable[Sequence[str]] | None = None, *,
                 vector_size: int = 100, alpha: float = 0.025, window: int = 5,
                 min_count: int = 5, sample: float = 1e-3, seed: int = 1, workers: int = 3,
                 min_alpha: float = 0.0001, sg: int = 1, hs: int = 0, negative: int = 5,
                 ns_exponent: float = 0.75, epochs: int = 5, shrink_windows: bool = True,
                 backend: str = "compiled", batch_size: int = 1024,
                 device: str | torch.device = "cpu", progress: bool = False) -> None:
        if sg != 1 or hs != 0:
            raise ValueError(f"only skip-gram with negative sampling is implemented (sg=1, "
                             f"hs=0); got sg={sg}, hs={hs}.")
        self.vector_size = check_positive_int(vector_size, "vector_size")
        self.alpha = check_nonnegative_float(alpha, "alpha", strictly=True)
        self.window = check_positive_int(window, "window")
        self.min_count = check_positive_int(min_count, "min_count")
        self.sample = check_nonnegative_float(sample, "sample")
        self.seed = int(seed)
        self.workers = check_positive_int(workers, "workers")
        self.min_alpha = check_nonnegative_float(min_alpha, "min_alpha")
        self.sg, self.hs = sg, hs
        self.negative = check_positive_int(negative, "negative")
        self.ns_exponent = float(ns_exponent)
        self.epochs = check_positive_int(epochs, "epochs")
        self.shrink_windows = bool(shrink_windows)
        self.backend = check_choice(backend, "backend", ("compiled", "torch"))
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self.device = device
        self.progress = progress
        if sentences is not None:
            corpus = _as_corpus(sentences)
            self.build_vocab(corpus)
            self.train(corpus)

    def build_vocab(self, corpus_iterable: Iterable[Sequence[str]]) -> Word2Vec:
        """Count the words, keep those with at least ``min_count`` occurrences (most frequent
        first) and initialise the vectors."""
        corpus = _as_corpus(corpus_iterable)
        self.vocabulary_ = Vocabulary.build(corpus, self.min_count)
        self.corpus_count = len(corpus)
        self.corpus_total_words = sum(len(s) for s in corpus)
        self.skipgram_ = SkipGram(self.vocabulary_.counts, self.vector_size,
                                  negative=self.negative, ns_exponent=self.ns_exponent,
                                  words=self.vocabulary_.words, seed=self.seed)
        self._wv: WordVectors | None = None
        return self

    def train(self, corpus_iterable: Iterable[Sequence[str]], *,
              total_examples: int | None = None, epochs: int | None = None) -> Word2Vec:
        """Train on a corpus with the built vocabulary (``total_examples`` is accepted for
        gensim compatibility; the corpus is counted here)."""
        check_fitted(self, "skipgram_")
        corpus = _as_corpus(corpus_iterable)
        epochs = self.epochs if epochs is None else check_positive_int(epochs, "epochs")
        tokens, starts = self.vocabulary_.encode(corpus)
        if tokens.size == 0:
            raise ValueError("the corpus has no word of the vocabulary.")
        if self.backend == "compiled":
            self.effective_words_ = self.skipgram_.fit_corpus(
                tokens, starts, window=self.window, sample=self.sample, epochs=epochs,
                alpha=self.alpha, min_alpha=self.min_alpha, workers=self.workers,
                shrink_windows=self.shrink_windows, seed=self.seed, progress=self.progress)
        else:
            self._train_torch(torch.from_numpy(tokens), torch.from_numpy(starts), epochs)
            self._wv = None  # moving to a device and back may replace the parameters' storage
        return self

    def _train_torch(self, tokens: torch.Tensor, starts: torch.Tensor, epochs: int) -> None:
        from genmodels.learning.trainer import Trainer

        g = torch.Generator().manual_seed(self.seed)
        model = self.skipgram_
        tokens, starts = model.subsample(tokens, starts, self.sample, g)
        pairs = skipgram_pairs(tokens, starts, self.window, shrink_windows=self.shrink_windows,
                               generator=g)
        if pairs.shape[0] == 0:
            raise ValueError("the corpus gives no (input, target) pair: every sentence has "
                             "fewer than two in-vocabulary words.")
        self.effective_words_ = int(tokens.shape[0]) * epochs
        lr = self.alpha * self.batch_size  # the loss is a mean over the batch

        def decay(epoch: int) -> float:
            return max(1.0 - epoch / epochs, self.min_alpha / self.alpha)

        model.to(self.device)
        Trainer(model, epochs=epochs, batch_size=self.batch_size, seed=self.seed,
                optimizer=lambda p: torch.optim.SGD(p, lr=lr),
                scheduler=lambda o: torch.optim.lr_scheduler.LambdaLR(o, decay),
                progress=self.progress, device=self.device).fit(pairs)
        model.cpu()

    @property
    def wv(self) -> WordVectors:
        """The input vectors (a live view of the parameters on the CPU, as gensim's)."""
        check_fitted(self, "skipgram_")
        if self._wv is None:
            self._wv = WordVectors(self.vocabulary_.words,
                                   self.skipgram_.input_vectors.detach().numpy())
        return self._wv

    @property
    def syn1neg(self) -> np.ndarray:
        check_fitted(self, "skipgram_")
        return self.skipgram_.output_vectors.detach().cpu().numpy()

    def save(self, path: str | os.PathLike[str]) -> None:
        """Save the trained ``SkipGram`` (vectors, vocabulary, counts) with ``genmodels.save``;
        ``genmodels.load(path).word_vectors()`` gives the vectors back."""
        from genmodels.io import save

        check_fitted(self, "skipgram_")
        save(self.skipgram_, path)


def _as_corpus(sentences: Iterable[Sequence[str]]) -> list[Sequence[str]]:
    if isinstance(sentences, str):
        raise ValueError("sentences must be an iterable of token lists, not a string.")
    corpus = list(sentences)
    for i, s in enumerate(corpus):
        if isinstance(s, str) or not all(isinstance(w, str) for w in s):
            raise ValueError(f"sentence {i} must be a list of string tokens, got "
                             f"{type(s).__name__} {str(s)[:40]!r}.")
    if not corpus:
        raise ValueError("the corpus is empty: sentences must hold at least one sentence.")
    return corpus
