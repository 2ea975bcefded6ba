"""The models over the one exponential-family core, against another source tree (issue 18).

    python benchmarks/bench_families.py                        # this tree's timings (JSON)
    python benchmarks/bench_families.py --against ../main/src  # side by side, interleaved

Workloads (float64, torch limited to ``--threads`` threads): the README's speed rows that run
through family code — logistic regression by IRLS (N = 200,000, D = 50: the binomial family's
variance function and deviance every step), one GaussianMixture EM iteration (N = 50,000,
D = 16, K = 16, full), GaussianHMM ``score_samples`` (200 × T = 100, K = 8) — and the family
emissions themselves: a Bernoulli mixture EM iteration (N = 100,000, D = 64, K = 16), PoissonHMM
and CategoricalHMM ``score_samples`` and one Baum–Welch iteration (200 × T = 100, K = 8).

With ``--against SRC`` the script runs itself as subprocesses, alternately with this tree's
``src`` and with ``SRC`` first on ``PYTHONPATH`` (``--rounds`` each), and prints the median
seconds of each side and their ratio (other ÷ this: above 1 means this tree is faster). On a
shared machine both sides suffer the same load; compare the ratio column.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def _median_time(f: Callable[[], Any], repeats: int) -> float:
    f()  # warm-up
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def workloads(repeats: int) -> dict[str, float]:
    import numpy as np
    import torch

    from genmodels.estimators.hmm import CategoricalHMM, GaussianHMM, PoissonHMM
    from genmodels.estimators.mixture import GaussianMixture
    from genmodels.learning.em import run_em
    from genmodels.learning.irls import irls
    from genmodels.models.family_emissions import BernoulliEmission
    from genmodels.models.glm_families import Binomial, Logit
    from genmodels.models.mixture import MixtureModel

    out: dict[str, float] = {}
    g = torch.Generator().manual_seed(0)

    # logistic regression by IRLS
    n, d = 200_000, 50
    X = torch.cat([torch.ones(n, 1, dtype=torch.float64),
                   torch.randn(n, d, generator=g, dtype=torch.float64)], 1)
    beta = torch.randn(d + 1, generator=g, dtype=torch.float64) * (0.3 * (10 / d) ** 0.5)
    y = (torch.rand(n, generator=g, dtype=torch.float64) < torch.sigmoid(X @ beta)).double()
    fam, link = Binomial(), Logit()
    out["glm logistic IRLS fit"] = _median_time(lambda: irls(X, y, fam, link, tol=1e-10),
                                                repeats)

    # GaussianMixture, one EM iteration (difference of max_iter = 3 and 1)
    rng = np.random.default_rng(0)
    Xg = np.concatenate([rng.normal(size=(50_000 // 16, 16)) + 4 * rng.normal(size=16)
                         for _ in range(16)])

    def gmm(m: int) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            GaussianMixture(16, max_iter=m, tol=0.0, random_state=0).fit(Xg)

    out["gmm EM iteration"] = max(_median_time(lambda: gmm(3), repeats)
                                  - _median_time(lambda: gmm(1), repeats), 0.0) / 2

    # HMMs on 200 sequences × T = 100, K = 8
    k, T, B = 8, 100, 200
    lengths = [T] * B
    A = rng.random((k, k)) + np.eye(k) * k
    A /= A.sum(1, keepdims=True)
    start = np.full(k, 1.0 / k)
    z = np.zeros(B * T, dtype=int)
    for t in range(1, B * T):
        z[t] = rng.choice(k, p=A[z[t - 1]])
    Yg = rng.normal(size=(B * T, 4)) + 2 * rng.normal(size=(k, 4))[z]
    gh = GaussianHMM(k, "diag", init_params="", n_iter=1, tol=0.0)
    gh.startprob_, gh.transmat_ = start, A
    gh.means_, gh.covars_ = rng.normal(size=(k, 4)) * 2, rng.uniform(0.5, 1.5, (k, 4))
    out["gaussian hmm score_samples"] = _median_time(lambda: gh.score_samples(Yg, lengths),
                                                     repeats)
    rates = rng.uniform(0.5, 10, (k, 6))
    Yp = rng.poisson(rates[z])

    def poisson_hmm(n_iter: int) -> PoissonHMM:
        m = PoissonHMM(k, init_params="", n_iter=n_iter, tol=0.0)
        m.startprob_, m.transmat_, m.lambdas_ = start, A, rates
        return m

    ph = poisson_hmm(1)
    out["poisson hmm score_samples"] = _median_time(lambda: ph.score_samples(Yp, lengths),
                                                    repeats)
    out["poisson hmm Baum-Welch iteration"] = _median_time(
        lambda: poisson_hmm(1).fit(Yp, lengths), repeats)
    emis = rng.dirichlet(np.ones(12), k)
    Yc = np.array([rng.choice(12, p=emis[s]) for s in z])[:, None]

    def categorical_hmm(n_iter: int) -> CategoricalHMM:
        m = CategoricalHMM(k, n_features=12, init_params="", n_iter=n_iter, tol=0.0)
        m.startprob_, m.transmat_, m.emissionprob_ = start, A, emis
        return m

    ch = categorical_hmm(1)
    out["categorical hmm score_samples"] = _median_time(lambda: ch.score_samples(Yc, lengths),
                                                        repeats)
    out["categorical hmm Baum-Welch iteration"] = _median_time(
        lambda: categorical_hmm(1).fit(Yc, lengths), repeats)

    # Bernoulli mixture, one EM iteration through the shared engine
    probs = torch.rand(16, 64, generator=g, dtype=torch.float64) * 0.8 + 0.1
    truth = MixtureModel(torch.ones(16, dtype=torch.float64), BernoulliEmission(16, 64, probs))
    _, Yb = truth.sample(100_000, g)

    def bern() -> None:
        m = MixtureModel(torch.ones(16, dtype=torch.float64),
                         BernoulliEmission(16, 64, probs.flip(0)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # two iterations on purpose, not convergence
            run_em(m, [Yb], max_iter=2, tol=0.0)

    out["bernoulli mixture 2 EM iterations"] = _median_time(bern, repeats)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--against", type=str, default=None,
                   help="another tree's src folder to run side by side")
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    if args.against is None:
        import torch

        torch.set_num_threads(args.threads)
        print(json.dumps(workloads(args.repeats)))
        return
    sides = {"this": str(HERE.parent / "src"), "other": str(Path(args.against).resolve())}
    results: dict[str, list[dict[str, float]]] = {s: [] for s in sides}
    for r in range(args.rounds):
        for side in (("this", "other") if r % 2 == 0 else ("other", "this")):
            env = dict(os.environ, PYTHONPATH=sides[side])
            cmd = [sys.executable, __file__, "--threads", str(args.threads), "--repeats",
                   str(args.repeats)]
            res = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
            results[side].append(json.loads(res.stdout.strip().splitlines()[-1]))
    print(f"| workload ({args.threads} thread(s), median of {args.rounds} interleaved rounds "
          f"× {args.repeats} repeats) | this tree s | other tree s | other ÷ this |")
    print("|---|---|---|---|")
    for name in results["this"][0]:
        a = statistics.median(r[name] for r in results["this"])
        b = statistics.median(r[name] for r in results["other"])
        print(f"| {name} | {a:.4f} | {b:.4f} | {b / a if a > 0 else float('nan'):.3f} |")


if __name__ == "__main__":
    main()
