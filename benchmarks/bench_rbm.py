"""RBMs side by side: one PCD-1 epoch of genmodels' ``BernoulliRBM`` — the compiled kernel
(``solver="compiled"``, the default for binary data) and the Boltzmann gradient through
``learning.trainer`` (``solver="trainer"``) — against scikit-learn's ``BernoulliRBM``,
on the binarised digits of the density table (1,437 × 64), H = 64 and 256, batch 10 and 100,
same learning rate, one thread each (torch and the BLAS under NumPy); then the partition
functions: exact log Z at H = 20 (2²⁰ hidden states enumerated) and AIS with 100 runs ×
10,000 temperatures at H = 64 and 256.

Both libraries run in ONE process, alternating, the median of ``--repeats`` epochs each; the
ratio is scikit-learn's time ÷ genmodels' (above 1: genmodels is faster). The machine may be
shared: the load average is printed with the results.

    python benchmarks/bench_rbm.py [--repeats 5] [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch

from genmodels.data import density_split
from genmodels.estimators.rbm import BernoulliRBM
from genmodels.inference.partition import ais_log_partition, exact_log_partition
from genmodels.models.harmonium import BernoulliRBM as RBMModel


def _epoch_times(X: np.ndarray, hidden: int, batch: int, repeats: int
                 ) -> tuple[float, float, float]:
    """Median seconds of one epoch: genmodels compiled, genmodels through the trainer,
    scikit-learn — in rotating order."""
    from sklearn.neural_network import BernoulliRBM as SkRBM

    times: list[list[float]] = [[], [], []]
    for r in range(repeats):
        for who in np.roll(np.arange(3), r):
            t0 = time.perf_counter()
            if who == 2:
                SkRBM(n_components=hidden, batch_size=batch, n_iter=1, learning_rate=0.1,
                      random_state=r).fit(X)
            else:
                BernoulliRBM(n_components=hidden, batch_size=batch, n_iter=1,
                             learning_rate=0.1, random_state=r,
                             solver=("compiled", "trainer")[who]).fit(X)
            times[who].append(time.perf_counter() - t0)
    c, t, s = (statistics.median(v) for v in times)
    return c, t, s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true",
                        help="H = 64 only, 2 repeats, AIS with 1,000 temperatures")
    args = parser.parse_args()
    torch.set_num_threads(1)
    from threadpoolctl import threadpool_limits

    train, _ = density_split("binary")
    X = train.numpy()
    repeats = 2 if args.quick else args.repeats
    BernoulliRBM(n_components=2, n_iter=1, solver="compiled").fit(X[:20])  # compile once
    print(f"load average {os.getloadavg()[0]:.1f}; 1 thread each")
    with threadpool_limits(1):
        print("PCD-1 epoch on binarised digits (1,437 x 64), seconds, median of "
              f"{repeats}")
        for hidden in ((64,) if args.quick else (64, 256)):
            for batch in (10, 100):
                comp, trainer, theirs = _epoch_times(X, hidden, batch, repeats)
                print(f"  H={hidden:4d} batch={batch:4d}  genmodels compiled {comp:.4f} "
                      f"(ratio {theirs / comp:.2f}x)  trainer {trainer:.4f} (ratio "
                      f"{theirs / trainer:.2f}x)  scikit-learn {theirs:.4f}", flush=True)
    temps = 1000 if args.quick else 10_000
    g = torch.Generator().manual_seed(0)
    model = RBMModel(64, 20, init_scale=0.1)
    t0 = time.perf_counter()
    with torch.no_grad():
        lz = exact_log_partition(model).log_z
    print(f"exact log Z, H=20 (2^20 states): {time.perf_counter() - t0:.3f} s "
          f"(log Z = {float(lz):.4f})")
    for hidden in ((64,) if args.quick else (64, 256)):
        model = RBMModel(64, hidden, init_scale=0.1, seed=int(torch.randint(0, 100, (),
                                                                           generator=g)))
        t0 = time.perf_counter()
        est = ais_log_partition(model, num_chains=100, num_temperatures=temps, data=train,
                                seed=0)
        print(f"AIS, H={hidden}, 100 runs x {temps} temperatures: "
              f"{time.perf_counter() - t0:.2f} s (log Z = {float(est.log_z):.3f} "
              f"± {float(est.stderr):.3f}, ESS {float(est.ess):.0f})", flush=True)


if __name__ == "__main__":
    main()
