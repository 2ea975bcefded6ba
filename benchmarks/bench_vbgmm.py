"""Variational Bayesian GMM (CAVI) per iteration: genmodels vs scikit-learn.

``BayesianGaussianMixture(K, covariance_type=...)`` on N points in D dimensions drawn from a
K-component mixture, float64, both from the same initial responsibilities (scikit-learn's
k-means labels, passed to genmodels as ``responsibilities_init``). Seconds per iteration =
(fit with 41 iterations − fit with 1) / 40, so the initialisation cancels. The trajectories
are checked equal (1e-6 relative) before timing.

Timed in ONE process, interleaved, medians of ``--repeats``; ratio scikit-learn ÷ genmodels.

    python benchmarks/bench_vbgmm.py [--repeats 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.mixture import BayesianGaussianMixture as SkBGM

from genmodels.estimators.bayesian_mixture import BayesianGaussianMixture


def bench(n: int, d: int, k: int, kind: str, repeats: int) -> None:
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(size=(n // k, d)) + 5 * rng.normal(size=d)
                        for _ in range(k)])
    resp = np.eye(k)[KMeans(k, n_init=1, random_state=0).fit(X).labels_]

    def ours(it: int) -> list[float]:
        return BayesianGaussianMixture(k, covariance_type=kind, max_iter=it, tol=0,
                                       responsibilities_init=resp).fit(X).lower_bounds_

    def theirs(it: int) -> list[float]:
        return SkBGM(n_components=k, covariance_type=kind, max_iter=it, tol=0,
                     random_state=0).fit(X).lower_bounds_

    a, b = np.asarray(ours(5)), np.asarray(theirs(5), dtype=float).reshape(-1)
    assert np.allclose(a, b, rtol=1e-6), (a, b)
    times: dict[str, list[float]] = {"genmodels": [], "sklearn": []}
    for _ in range(repeats):
        for name, fn in (("genmodels", ours), ("sklearn", theirs)):
            t = time.perf_counter()
            fn(1)
            t1 = time.perf_counter()
            fn(41)
            t2 = time.perf_counter()
            times[name].append(((t2 - t1) - (t1 - t)) / 40)
    g, s = (statistics.median(times[x]) for x in ("genmodels", "sklearn"))
    print(f"N={n}, D={d}, K={k}, {kind}: genmodels {1e3 * g:.2f} ms/iteration | "
          f"scikit-learn {1e3 * s:.2f} ms/iteration | {s / g:.1f}×")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    for kind in ("full", "diag"):
        bench(20_000, 8, 10, kind, args.repeats)


if __name__ == "__main__":
    main()
