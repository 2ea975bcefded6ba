"""Logistic regression by IRLS: genmodels vs scikit-learn (newton-cholesky) vs statsmodels (IRLS).

Synthetic data, float64: X (N, D) standard normal with an intercept column, true coefficients
N(0, 0.3²/D·10), y ~ Bernoulli(σ(Xd)). Each library fits the same data in this process; the
rounds are interleaved and the median is reported (the machine may be shared: say so when you
quote the numbers). Every fit is unpenalised maximum likelihood (scikit-learn: C = inf).

Also measured: the machine's float64 matmul rate (a square 2048³ product and the tall-skinny
product (√W X)ᵀ(√W X) that one IRLS step needs), and the fraction of the square-gemm rate that
genmodels' XᵀWX products reach.

    python benchmarks/bench_glm.py            # N = 1,000,000, D = 50
    python benchmarks/bench_glm.py --quick    # N = 100,000, D = 50, fewer rounds
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np
import torch


def _time(f, *args):
    t0 = time.perf_counter()
    out = f(*args)
    return time.perf_counter() - t0, out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--n", type=int, default=None)
    p.add_argument("--d", type=int, default=50)
    p.add_argument("--rounds", type=int, default=None)
    p.add_argument("--no-statsmodels", action="store_true")
    p.add_argument("--busy", action="store_true",
                    help="run beside one CPU-bound competing process (a user's second job)")
    args = p.parse_args()
    if args.busy:
        from run_all import start_competitor

        start_competitor()
    n = args.n or (100_000 if args.quick else 1_000_000)
    d = args.d
    rounds = args.rounds or (2 if args.quick else 3)
    torch.manual_seed(0)

    from sklearn.linear_model import LogisticRegression as SkLogistic

    from genmodels.learning.irls import irls, weighted_gram
    from genmodels.models.glm_families import Binomial, Logit

    g = torch.Generator().manual_seed(0)
    X = torch.cat([torch.ones(n, 1, dtype=torch.float64),
                   torch.randn(n, d, generator=g, dtype=torch.float64)], 1)
    beta = torch.randn(d + 1, generator=g, dtype=torch.float64) * (0.3 * (10 / d) ** 0.5)
    y = (torch.rand(n, generator=g, dtype=torch.float64) < torch.sigmoid(X @ beta)).double()
    Xn, yn = X.numpy(), y.numpy()

    # machine matmul rates (float64)
    A = torch.randn(2048, 2048, dtype=torch.float64)
    w = torch.rand(n, dtype=torch.float64)
    sq, tall = [], []
    for _ in range(3):
        t, _ = _time(torch.mm, A, A)
        sq.append(2 * 2048**3 / t / 1e9)
        t, _ = _time(weighted_gram, X, w)
        tall.append(2 * n * (d + 1) ** 2 / t / 1e9)
    gemm_rate, gram_rate = statistics.median(sq), statistics.median(tall)

    fam, link = Binomial(), Logit()

    def ours():
        return irls(X, y, fam, link, tol=1e-10).params.numpy()

    def sk():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = SkLogistic(C=np.inf, solver="newton-cholesky", fit_intercept=False, tol=1e-10,
                           max_iter=100).fit(Xn, yn)
        return m.coef_[0]

    def sm_fit():
        import statsmodels.api as sm

        return sm.GLM(yn, Xn, family=sm.families.Binomial()).fit(tol=1e-10).params

    fits = {"genmodels irls": ours, "scikit-learn newton-cholesky": sk}
    if not args.no_statsmodels:
        fits["statsmodels GLM IRLS"] = sm_fit
    times: dict[str, list[float]] = {k: [] for k in fits}
    coefs: dict[str, np.ndarray] = {}
    for _ in range(rounds):
        for k, f in fits.items():
            t, c = _time(f)
            times[k].append(t)
            coefs[k] = c
    # genmodels' gram share: iterations × one weighted gram each
    r = irls(X, y, fam, link, tol=1e-10)
    grams = r.n_iter + 1  # + the first full solve
    med = {k: statistics.median(v) for k, v in times.items()}
    t_gram = 2 * n * (d + 1) ** 2 * grams / (gram_rate * 1e9)
    ref = coefs["genmodels irls"]
    print(f"Logistic regression, N = {n:,}, D = {d} (+ intercept), float64, "
          f"{torch.get_num_threads()} threads, median of {rounds} interleaved rounds\n")
    print("| fit | seconds | genmodels speed-up | max |Δcoef| vs genmodels |")
    print("|---|---:|---:|---:|")
    for k, t in med.items():
        diff = float(np.max(np.abs(coefs[k] - ref)))
        print(f"| {k} | {t:.3f} | {t / med['genmodels irls']:.2f}× | {diff:.1e} |")
    print(f"\ngenmodels: {r.n_iter} IRLS steps; XᵀWX products ≈ {t_gram:.3f} s of "
          f"{med['genmodels irls']:.3f} s")
    print(f"machine float64 matmul: square 2048³ gemm {gemm_rate:.1f} GFLOP/s; "
          f"tall-skinny (√W X)ᵀ(√W X) {gram_rate:.1f} GFLOP/s = "
          f"{100 * gram_rate / gemm_rate:.0f}% of the square-gemm rate")


if __name__ == "__main__":
    main()
