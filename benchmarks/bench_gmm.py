"""Gaussian-mixture EM: genmodels vs scikit-learn, side by side in one process.

    python benchmarks/bench_gmm.py            # N=200,000, D=16, K=32, full covariance
    python benchmarks/bench_gmm.py --quick    # N=20,000, D=8, K=8

Both libraries start from the same parameters (weights_init / means_init / precisions_init)
and run the same number of EM iterations with tol=0, so they do the same work and must reach
the same log-likelihood. Seconds per iteration = (time of a fit with 1 + ITERS iterations −
time of a fit with 1 iteration) / ITERS, so set-up (validation, scikit-learn's k-means start)
is not counted. Repeats are interleaved (scikit-learn, genmodels float64, genmodels
float32, ...) and the median is reported, because the machine may be shared. Both are limited
to the same number of threads (torch.set_num_threads and threadpoolctl for scikit-learn's BLAS).

The last columns relate the time to the machine's measured matmul speed: genmodels' E + M
steps do ≈ 4·N·K·D(D+1)/2 + 4·N·K·D flops (quadratic features, symmetry exploited), the
textbook formulation ≈ 4·N·K·D² ("naive" flops, the brief's 6.6 GFLOP at full size).
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from typing import Any

import numpy as np
import torch


def matmul_gflops(dtype: torch.dtype, n: int = 1024, repeats: int = 5,
                  clock: Any = time.perf_counter) -> float:
    a = torch.randn(n, n, dtype=dtype)
    b = torch.randn(n, n, dtype=dtype)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        t0 = clock()
        a @ b
        best = min(best, clock() - t0)
    return 2 * n**3 / best / 1e9


def make_data(n: int, d: int, k: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    means = rng.normal(scale=4.0, size=(k, d))
    a = rng.normal(size=(k, d, d)) / np.sqrt(d)
    chol = a + np.eye(d)
    z = rng.integers(k, size=n)
    eps = rng.normal(size=(n, d))
    return means[z] + np.einsum("nij,nj->ni", chol[z], eps)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small sizes for a fast check")
    p.add_argument("--n", type=int, default=None)
    p.add_argument("--d", type=int, default=None)
    p.add_argument("--k", type=int, default=None)
    p.add_argument("--iters", type=int, default=None, help="EM iterations per timed fit")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="cpu: process CPU time (meaningful at --threads 1 on a shared machine)")
    p.add_argument("--busy", action="store_true",
                    help="run beside one CPU-bound competing process (a user's second job)")
    args = p.parse_args()
    if args.busy:
        from run_all import start_competitor

        start_competitor()
    n = args.n or (20_000 if args.quick else 200_000)
    d = args.d or (8 if args.quick else 16)
    k = args.k or (8 if args.quick else 32)
    iters = args.iters or (10 if args.quick else 5)

    from sklearn.mixture import GaussianMixture as SkGMM
    from threadpoolctl import threadpool_limits

    from genmodels.estimators.mixture import GaussianMixture

    torch.set_num_threads(args.threads)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    X = make_data(n, d, k)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = GaussianMixture(k, max_iter=1, random_state=0).fit(X[: min(n, 20_000)])
    init = dict(weights_init=start.weights_, means_init=start.means_,
                precisions_init=start.precisions_, covariance_type="full", tol=0.0)

    def timed(make: Any) -> tuple[float, float]:
        t = {}
        for m in (1, 1 + iters):
            est = make(m)
            t0 = clock()
            est.fit(X)
            t[m] = clock() - t0
        return (t[1 + iters] - t[1]) / iters, float(est.lower_bound_)

    def run_sklearn() -> tuple[float, float]:
        with threadpool_limits(args.threads):
            return timed(lambda m: SkGMM(k, max_iter=m, **init))

    def run_ours(dtype: str) -> tuple[float, float]:
        return timed(lambda m: GaussianMixture(k, dtype=dtype, max_iter=m, **init))

    runs = {"scikit-learn (float64)": run_sklearn,
            "genmodels (float64)": lambda: run_ours("float64"),
            "genmodels (float32)": lambda: run_ours("float32")}
    times: dict[str, list[float]] = {name: [] for name in runs}
    lls: dict[str, float] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(args.repeats):  # interleaved
            for name, fn in runs.items():
                t, ll = fn()
                times[name].append(t)
                lls[name] = ll
    gf64 = matmul_gflops(torch.float64, clock=clock)
    gf32 = matmul_gflops(torch.float32, clock=clock)
    t_pairs = d * (d + 1) // 2
    flops_ours = 4 * n * k * t_pairs + 4 * n * k * d + n * t_pairs
    flops_naive = 4 * n * k * d * d
    ref = statistics.median(times["scikit-learn (float64)"])
    print(f"\nGaussianMixture EM, full covariance: N={n:,} D={d} K={k}, {iters} timed iterations,"
          f" {args.threads} threads, median of {args.repeats} interleaved repeats")
    print(f"measured matmul: float64 {gf64:.1f} GFLOP/s, float32 {gf32:.1f} GFLOP/s; E+M "
          f"flops/iteration: genmodels {flops_ours / 1e9:.2f} G, naive {flops_naive / 1e9:.2f} G\n")
    print("| implementation | s / iteration | speed-up vs scikit-learn | final log-lik / sample "
          "| % of matmul peak (genmodels flops) | % of peak (naive flops) |")
    print("|---|---|---|---|---|---|")
    for name, ts in times.items():
        med = statistics.median(ts)
        peak = gf32 if "float32" in name else gf64
        frac = flops_ours / med / 1e9 / peak if name.startswith("genmodels") else float("nan")
        frac_naive = flops_naive / med / 1e9 / peak
        fr = f"{100 * frac:.0f}%" if frac == frac else "–"
        print(f"| {name} | {med:.4f} | {ref / med:.1f}× | {lls[name]:.8f} | {fr} | "
              f"{100 * frac_naive:.0f}% |")
    diff = abs(lls["genmodels (float64)"] - lls["scikit-learn (float64)"])
    print(f"\n|Δ final log-likelihood| float64 vs scikit-learn: {diff:.2e} per sample")


if __name__ == "__main__":
    main()
