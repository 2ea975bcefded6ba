"""InfomaxICA (genmodels) vs scikit-learn's FastICA: fit time and Amari distance, same data.

Sources: a mix of super-Gaussian distributions (Laplace, Student-t(5), centred exponential,
logistic, ...), mixed by a random square matrix. Every configuration is fitted by each method
``--repeats`` times, the methods interleaved (so machine load hits them alike); the table shows
the median wall time, the ratio to FastICA (< 1: genmodels faster) and the Amari distance of the
estimated unmixing to the true mixing (0 = perfect separation, up to order and scale).

    python benchmarks/bench_ica.py            # N ∈ {5000, 50000}, K ∈ {3, 8}
    python benchmarks/bench_ica.py --quick    # N = 5000 only, 3 repeats
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np
import torch
from sklearn.decomposition import FastICA

from genmodels.estimators.ica import InfomaxICA
from genmodels.models.ica import amari_distance


def make_data(n: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    makers = [
        lambda: rng.laplace(size=n),
        lambda: rng.standard_t(5, size=n),
        lambda: rng.exponential(size=n) - 1.0,
        lambda: rng.logistic(size=n),
    ]
    S = np.stack([makers[i % len(makers)]() for i in range(k)], 1)
    A = rng.normal(size=(k, k))
    return S @ A.T, A


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--busy", action="store_true",
                    help="run beside one CPU-bound competing process (a user's second job)")
    args = parser.parse_args()
    if args.busy:
        from run_all import start_competitor

        start_competitor()
    sizes = [(5000, 3), (5000, 8)] if args.quick else [(5000, 3), (5000, 8), (50000, 3),
                                                        (50000, 8)]
    repeats = args.repeats or (3 if args.quick else 5)
    methods = {
        "FastICA (sklearn, logcosh)": lambda: FastICA(whiten="unit-variance", random_state=0,
                                                      max_iter=1000, tol=1e-4),
        "InfomaxICA natural gradient": lambda: InfomaxICA(random_state=0, max_iter=1000,
                                                          tol=1e-4),
        "InfomaxICA relative Newton": lambda: InfomaxICA(random_state=0, solver="newton",
                                                         tol=1e-4),
    }
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; median of {repeats} "
          "interleaved fits; float64\n")
    print("| N | K | method | fit time (s) | ratio to FastICA | Amari distance | iterations |")
    print("|---|---|---|---|---|---|---|")
    for n, k in sizes:
        X, A = make_data(n, k, seed=n + k)
        times: dict[str, list[float]] = {m: [] for m in methods}
        fitted: dict[str, object] = {}
        for _ in range(repeats):
            for name, make in methods.items():
                est = make()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    t0 = time.perf_counter()
                    est.fit(X)
                    times[name].append(time.perf_counter() - t0)
                fitted[name] = est
        base = statistics.median(times["FastICA (sklearn, logcosh)"])
        for name in methods:
            est = fitted[name]
            med = statistics.median(times[name])
            amari = float(amari_distance(torch.as_tensor(est.components_), torch.as_tensor(A)))
            print(f"| {n} | {k} | {name} | {med:.4f} | {med / base:.2f} | {amari:.4f} | "
                  f"{est.n_iter_} |")


if __name__ == "__main__":
    main()
