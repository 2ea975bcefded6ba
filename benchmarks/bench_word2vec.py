"""Word2vec side by side: genmodels' ``Word2Vec`` (compiled skip-gram pass) vs gensim's
``Word2Vec`` — speed (words per second) and quality (WordSim-353, SimLex-999, analogies).

Same corpus (gensim's shortened English Wikipedia, ``enwiki``, 453k tokens, or ``lee``),
articles split into pieces of at most 10,000 tokens (gensim truncates longer sentences), same
settings for both: skip-gram, negative = 5, window 5, vector size 100, min_count 5, sample
1e-3, 5 epochs, alpha 0.025 → 0.0001, the same seed and number of worker threads.

Speed: the wall time of ``build_vocab`` + ``train`` (and of ``train`` alone), as raw corpus
words × epochs per second; for each seed and thread count both libraries run one after the
other in ONE process, in alternating order; medians over the seeds. Quality: Spearman (and
Pearson) correlations of cosine similarity with the human scores, and 3CosAdd analogy
accuracy, each library's vectors scored by the same code (``WordVectors.evaluate_*``, which
the tests show equal to gensim's own evaluations); mean ± standard deviation over the seeds,
and the ratio of the means. The machine may be shared: report the load.

    python benchmarks/bench_word2vec.py [--corpus enwiki] [--seeds 5] [--threads 1 2]
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import time
from typing import Any

import numpy as np

from genmodels.data.text import load_corpus
from genmodels.estimators.word2vec import Word2Vec
from genmodels.models.embeddings import WordVectors

SETTINGS: dict[str, Any] = dict(vector_size=100, window=5, min_count=5, negative=5,
                                sample=1e-3, epochs=5, alpha=0.025, min_alpha=0.0001)


def _run_genmodels(sentences: list[Any], seed: int, workers: int) -> tuple[float, float, Any]:
    t0 = time.perf_counter()
    m = Word2Vec(seed=seed, workers=workers, **SETTINGS)
    m.build_vocab(sentences)
    t1 = time.perf_counter()
    m.train(sentences)
    t2 = time.perf_counter()
    return t2 - t0, t2 - t1, m.wv


def _run_gensim(sentences: list[Any], seed: int, workers: int) -> tuple[float, float, Any]:
    from gensim.models import Word2Vec as GensimWord2Vec

    t0 = time.perf_counter()
    m = GensimWord2Vec(sg=1, hs=0, seed=seed, workers=workers, **SETTINGS)
    m.build_vocab(sentences)
    t1 = time.perf_counter()
    m.train(sentences, total_examples=m.corpus_count, epochs=m.epochs)
    t2 = time.perf_counter()
    return t2 - t0, t2 - t1, WordVectors(m.wv.index_to_key, m.wv.vectors)


def _scores(wv: WordVectors) -> dict[str, float]:
    ws, sl = wv.evaluate_word_pairs("wordsim353"), wv.evaluate_word_pairs("simlex999")
    return {"wordsim353": ws.spearman, "simlex999": sl.spearman,
            "wordsim353_pearson": ws.pearson, "simlex999_pearson": sl.pearson,
            "analogies": wv.evaluate_word_analogies().accuracy}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--corpus", default="enwiki")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--busy", action="store_true",
                    help="run beside one CPU-bound competing process (a user's second job)")
    args = p.parse_args()
    if args.busy:
        from run_all import start_competitor

        start_competitor()
    logging.getLogger("gensim").setLevel(logging.WARNING)
    corpus = load_corpus(args.corpus)
    sentences = [list(s[i:i + 10_000]) for s in corpus.sentences
                 for i in range(0, len(s), 10_000)]
    words = sum(len(s) for s in sentences) * SETTINGS["epochs"]
    print(f"corpus {args.corpus}: {len(sentences)} sentences, {words // SETTINGS['epochs']} "
          f"tokens; settings {SETTINGS}; load average {os.getloadavg()}")
    _run_genmodels(sentences[:5], 0, 1)  # compile (or load from Numba's cache) first
    speed: dict[tuple[str, int], list[tuple[float, float]]] = {}
    quality: dict[str, list[dict[str, float]]] = {"genmodels": [], "gensim": []}
    for seed in range(1, args.seeds + 1):
        for workers in args.threads:
            runs = [("genmodels", _run_genmodels), ("gensim", _run_gensim)]
            for name, fn in runs if seed % 2 else runs[::-1]:
                total, train, wv = fn(sentences, seed, workers)
                speed.setdefault((name, workers), []).append((total, train))
                if workers == args.threads[0]:
                    quality[name].append(_scores(wv))
                print(f"  seed {seed} threads {workers} {name:9s} {words / total:9.0f} words/s "
                      f"(train alone {words / train:9.0f})", flush=True)
    print(f"\nload average after: {os.getloadavg()}")
    print("\n| threads | genmodels words/s | gensim words/s | ratio | train only: ratio |")
    print("|---:|---:|---:|---:|---:|")
    for workers in args.threads:
        ours = speed[("genmodels", workers)]
        theirs = speed[("gensim", workers)]
        a = statistics.median(words / t for t, _ in ours)
        b = statistics.median(words / t for t, _ in theirs)
        at = statistics.median(words / t for _, t in ours)
        bt = statistics.median(words / t for _, t in theirs)
        print(f"| {workers} | {a:,.0f} | {b:,.0f} | {a / b:.2f} | {at / bt:.2f} |")
    print(f"\nquality over {args.seeds} seeds (threads = {args.threads[0]}), mean ± sd:")
    print("| metric | genmodels | gensim | ratio of means |\n|---|---:|---:|---:|")
    for key in quality["gensim"][0]:
        a_ = np.array([q[key] for q in quality["genmodels"]])
        b_ = np.array([q[key] for q in quality["gensim"]])
        print(f"| {key} | {a_.mean():.4f} ± {a_.std(ddof=1) if a_.size > 1 else 0:.4f} | "
              f"{b_.mean():.4f} ± {b_.std(ddof=1) if b_.size > 1 else 0:.4f} | "
              f"{a_.mean() / b_.mean():.3f} |")


if __name__ == "__main__":
    main()
