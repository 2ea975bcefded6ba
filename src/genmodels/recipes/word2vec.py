"""``genmodels fit word2vec``: skip-gram word embeddings with negative sampling (NCE with
k q(w) ≡ 1; the NCE slides S2:160-175) on English text that ships with gensim, or a text file.

    genmodels fit word2vec --data enwiki --out report/
    genmodels fit word2vec --data lee --dim 50 --min-count 2 --epochs 20
    genmodels fit word2vec --data my_corpus.txt        # one sentence per line

Writes metrics.json (WordSim-353 and SimLex-999 Spearman and Pearson correlations with their
out-of-vocabulary share, analogy accuracy, words per second), the model (``model/``: vectors,
vocabulary and counts; ``genmodels.load(...).word_vectors()``), the vectors in word2vec's text
format (``vectors.txt``) and a 2-D projection (principal components) of frequent words.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from genmodels.cli import Recipe
from genmodels.data.text import load_corpus
from genmodels.estimators.word2vec import Word2Vec
from genmodels.io import atomic_write_text
from genmodels.reports import Report


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dim", type=int, default=100, help="vector size D (default 100)")
    p.add_argument("--window", type=int, default=5, help="context window (default 5)")
    p.add_argument("--min-count", type=int, default=5,
                   help="drop words seen fewer times (default 5)")
    p.add_argument("--negative", type=int, default=5, help="noise words k per pair (default 5)")
    p.add_argument("--sample", type=float, default=1e-3,
                   help="subsampling threshold of frequent words (default 1e-3; 0: off)")
    p.add_argument("--epochs", type=int, default=5, help="passes over the corpus (default 5)")
    p.add_argument("--alpha", type=float, default=0.025,
                   help="initial learning rate (default 0.025)")
    p.add_argument("--workers", type=int, default=1, help="training threads (default 1)")
    p.add_argument("--max-length", type=int, default=10_000,
                   help="split longer sentences into pieces of this many tokens (gensim "
                   "truncates at 10,000; default 10,000)")
    p.add_argument("--plot-words", type=int, default=60,
                   help="words in the 2-D projection (default 60)")


def _run(args: argparse.Namespace, report: Report) -> dict[str, Any]:
    if args.device != "cpu":
        raise ValueError("word2vec trains with the compiled CPU pass; use --device cpu.")
    corpus = load_corpus(args.data)
    n = max(int(args.max_length), 1)
    sentences = [s[i:i + n] for s in corpus.sentences for i in range(0, len(s), n)]
    start = time.perf_counter()
    model = Word2Vec(vector_size=args.dim, window=args.window, min_count=args.min_count,
                     negative=args.negative, sample=args.sample, epochs=args.epochs,
                     alpha=args.alpha, workers=args.workers, seed=args.seed,
                     progress=not args.no_progress)
    model.build_vocab(sentences)
    model.train(sentences)
    seconds = time.perf_counter() - start
    wv = model.wv
    metrics: dict[str, Any] = {
        "corpus": corpus.name,
        "sentences": model.corpus_count,
        "tokens": model.corpus_total_words,
        "vocabulary": len(wv),
        "dim": args.dim, "window": args.window, "negative": args.negative,
        "epochs": args.epochs,
        "train_seconds": round(seconds, 3),
        "words_per_second": round(model.corpus_total_words * args.epochs / seconds),
        "objective": "negative sampling (NCE with k q(w) = 1; not self-normalising)",
    }
    for name in ("wordsim353", "simlex999"):
        try:
            s = wv.evaluate_word_pairs(name)
        except ValueError:  # no pair in the vocabulary (a tiny corpus)
            metrics[f"{name}_spearman"] = None
            continue
        metrics[f"{name}_spearman"] = round(s.spearman, 4)
        metrics[f"{name}_pearson"] = round(s.pearson, 4)
        metrics[f"{name}_oov_percent"] = round(s.oov_ratio, 2)
    analogies = wv.evaluate_word_analogies()
    metrics["analogy_accuracy"] = round(analogies.accuracy, 4)
    metrics["analogy_questions_answered"] = sum(t for _, t in analogies.sections.values())
    report.save_model(model.skipgram_)
    lines = [f"{len(wv)} {wv.vector_size}"] + [
        w + " " + " ".join(f"{x:.6g}" for x in v) for w, v in zip(wv.index_to_key, wv.vectors)]
    atomic_write_text(report.out / "vectors.txt", "\n".join(lines) + "\n")
    report.files.append("vectors.txt")
    _projection(report, wv, args.plot_words)
    return metrics


def _projection(report: Report, wv: Any, n_words: int) -> None:
    """The most frequent words (skipping the 20 most frequent, mostly function words) on the
    first two principal components of their unit vectors."""
    lo = min(20, max(len(wv) - n_words, 0))
    idx = np.arange(lo, min(lo + n_words, len(wv)))
    drawn = report.figure("projection.png") if idx.size >= 3 else None
    if drawn is None:
        return
    fig, ax = drawn
    X = wv.get_normed_vectors()[idx].astype(np.float64)
    X -= X.mean(0)
    _, _, Vt = np.linalg.svd(X, full_matrices=False)
    P = X @ Vt[:2].T
    ax.scatter(P[:, 0], P[:, 1], s=6, color="tab:blue")
    for (x, y), i in zip(P, idx):
        ax.annotate(wv.index_to_key[i], (x, y), fontsize=6)
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.set_title("word vectors, 2-D projection (principal components)")
    report.save_figure(fig, "projection.png")


WORD2VEC_RECIPE = Recipe(
    name="word2vec",
    help="skip-gram word embeddings by negative sampling (similarity, analogies, projection)",
    default_data="lee",
    add_arguments=_arguments,
    run=_run,
)
