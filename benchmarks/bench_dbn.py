"""Greedy DBN training speed: one epoch per layer of ``fit_greedy`` vs one epoch of each of the
same harmoniums trained alone as in the harmonium issue (the stack should add no overhead of
its own beyond drawing each layer's inputs, one upward pass).

Both train a 64 → K and a K → K binary RBM with CD-1 and Adam through ``learning.trainer``
(``Trainer(BoltzmannLearner(rbm, CDNegative(1)))``): alone, on the binarised digits (1437
training images) and on K-unit posterior draws; in the stack, ``fit_greedy`` on the same
images, the second layer on the first one's aggregated-posterior draws (Eq. 10.24).

The two are timed in ONE process, interleaved (rotating order), after a warm-up; medians are
reported. The machine may be shared: read the ratio, not the seconds.

    python benchmarks/bench_dbn.py [--quick] [--hidden 64] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from genmodels.data import density_split
from genmodels.learning.contrastive import BoltzmannLearner, CDNegative
from genmodels.learning.greedy import aggregate_posterior_samples, fit_greedy
from genmodels.learning.trainer import Trainer
from genmodels.models.dbn import DBN
from genmodels.models.harmonium import BernoulliRBM


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    K, B = args.hidden, 50
    train, _ = density_split("binary")
    first = BernoulliRBM(64, K, seed=0, init_scale=0.5)
    h = aggregate_posterior_samples(first, train, generator=torch.Generator().manual_seed(0))

    rbm_a, rbm_b = BernoulliRBM(64, K, seed=0), BernoulliRBM(K, K, seed=1)

    def run_single(r: int) -> None:  # one epoch of each harmonium on its own, as issue 10
        Trainer(BoltzmannLearner(rbm_a, CDNegative(1)), epochs=1, batch_size=B, lr=1e-3,
                seed=r, progress=False).fit(train)
        Trainer(BoltzmannLearner(rbm_b, CDNegative(1)), epochs=1, batch_size=B, lr=1e-3,
                seed=r, progress=False).fit(h)

    dbn = DBN([BernoulliRBM(64, K, seed=0), BernoulliRBM(K, K, seed=1)])

    def run_greedy(r: int) -> None:  # one epoch per layer of the greedy stack
        fit_greedy(dbn, train, epochs=1, batch_size=B, lr=1e-3, seed=r, progress=False)

    fns: dict[str, Callable[[int], None]] = {"two RBMs": run_single, "greedy DBN": run_greedy}
    for f in fns.values():
        f(0)
    reps = 5 if args.quick else 20
    times: dict[str, list[float]] = {k: [] for k in fns}
    names = list(fns)
    for r in range(reps):
        for name in names[r % 2:] + names[: r % 2]:
            t0 = time.perf_counter()
            fns[name](r + 1)
            times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"one epoch of a 64→{K} and a {K}→{K} binary RBM, CD-1, batch {B}, "
          f"{train.shape[0]} images, {args.threads} thread(s), median of {reps}")
    for k, v in med.items():
        print(f"  {k:12s} {v * 1e3:8.1f} ms")
    print(f"  ratio greedy DBN / the two RBMs alone: {med['greedy DBN'] / med['two RBMs']:.2f}")


if __name__ == "__main__":
    main()
