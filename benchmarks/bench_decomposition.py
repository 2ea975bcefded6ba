"""FactorAnalysis and PCA fit times: genmodels vs scikit-learn, side by side in one process.

    python benchmarks/bench_decomposition.py          # digits + synthetic N=100,000, D=64
    python benchmarks/bench_decomposition.py --quick  # fewer repeats, N=20,000
    python benchmarks/bench_decomposition.py --threads 1  # same thread count for both

Both libraries fit the same data with their default solvers (genmodels FactorAnalysis: EM on the
data's second moments, tol 1e-4; scikit-learn: its SVD iteration, tol 1e-2). Each cell is the
median of interleaved repeats (genmodels, scikit-learn, genmodels, ...), so load on a shared
machine hits both alike; the ratio is scikit-learn time / genmodels time (> 1: genmodels faster).
The last column compares the fitted mean log-likelihoods (genmodels − scikit-learn, nats per
datum; ≥ 0 means genmodels fits at least as well).
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from sklearn import decomposition as skd

from genmodels.data import load_dataset
from genmodels.estimators.decomposition import PCA, FactorAnalysis
from genmodels.exceptions import DegenerateFitWarning


def synthetic(n: int, d: int = 64, k: int = 10, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(k, d))
    return rng.normal(size=(n, k)) @ W + rng.normal(size=(n, d)) * rng.uniform(0.5, 2.0, d)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def compare(X: np.ndarray, ours: Callable[[], Any], theirs: Callable[[], Any],
            repeats: int) -> tuple[float, float, float]:
    t_ours, t_theirs = [], []
    fitted_ours = fitted_theirs = None
    for _ in range(repeats):
        t, fitted_ours = timed(ours)
        t_ours.append(t)
        t, fitted_theirs = timed(theirs)
        t_theirs.append(t)
    assert fitted_ours is not None and fitted_theirs is not None
    gap = fitted_ours.score(X) - fitted_theirs.score(X)
    return statistics.median(t_ours), statistics.median(t_theirs), gap


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                      formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repeats, smaller synthetic")
    parser.add_argument("--threads", type=int, default=None,
                        help="limit torch's and NumPy's BLAS threads alike (default: leave them)")
    parser.add_argument("--busy", action="store_true",
                    help="run beside one CPU-bound competing process (a user's second job)")
    args = parser.parse_args()
    if args.busy:
        from run_all import start_competitor

        start_competitor()
    if args.threads:
        from threadpoolctl import threadpool_limits

        torch.set_num_threads(args.threads)
        threadpool_limits(args.threads)
    repeats = 3 if args.quick else 7
    n_syn = 20_000 if args.quick else 100_000
    data = {"digits (1797×64)": load_dataset("digits").X.numpy(),
            f"synthetic ({n_syn:,}×64)": synthetic(n_syn)}
    rows = []
    warnings.simplefilter("ignore", DegenerateFitWarning)
    for name, X in data.items():
        rows.append(("FactorAnalysis(10)", name, *compare(
            X, lambda X=X: FactorAnalysis(10).fit(X), lambda X=X: skd.FactorAnalysis(10).fit(X),
            repeats)))
        rows.append(("PCA(10)", name, *compare(
            X, lambda X=X: PCA(10).fit(X), lambda X=X: skd.PCA(10).fit(X), repeats)))
    print(f"threads: torch {torch.get_num_threads()}, BLAS "
          f"{args.threads or 'default'}; median of {repeats} interleaved repeats\n")
    print("| estimator | data | genmodels (s) | scikit-learn (s) | ratio sklearn/genmodels "
          "| Δ log-lik per datum |")
    print("|---|---|---:|---:|---:|---:|")
    for est, name, t_o, t_t, gap in rows:
        print(f"| {est} | {name} | {t_o:.4f} | {t_t:.4f} | {t_t / t_o:.2f} | {gap:+.2e} |")


if __name__ == "__main__":
    main()
