"""InfoNCE loss speed: genmodels vs a hand-written PyTorch version, on one batch.

A batch of B pairs of D-dimensional embeddings (y_i, z_i), float32, the dot-product critic
h(y_j, z_i) = z_iᵀ y_j with in-batch negatives; forward and backward.

* genmodels: ``InfoNCE(BilinearCritic(D, D, dot=True), D).loss(batch)`` — the loss model the
  trainer calls (splitting the [y, z] rows, the critic's score matrix, the in-batch loss with
  its checks);
* hand-written: ``F.cross_entropy(z @ y.T, torch.arange(B))``.

Timed in ONE process, interleaved (each repeat times both, in rotating order), after a
warm-up; the table reports medians of the time per call, and the ratio hand-written ÷
genmodels (above 1: genmodels is faster).

    python benchmarks/bench_infonce.py [--repeats 30] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from genmodels.learning.nce import InfoNCE
from genmodels.models.cpc import BilinearCritic


def _time(fn: Callable[[], None], inner: int) -> float:
    t = time.perf_counter()
    for _ in range(inner):
        fn()
    return (time.perf_counter() - t) / inner


def bench(B: int, dim: int, repeats: int) -> tuple[float, float]:
    """Median seconds per forward + backward: (genmodels, hand-written)."""
    g = torch.Generator().manual_seed(0)
    batch = torch.randn(B, 2 * dim, generator=g).requires_grad_(True)
    model = InfoNCE(BilinearCritic(dim, dim, dot=True), dim)
    labels = torch.arange(B)

    def ours() -> None:
        model.loss(batch).backward()
        batch.grad = None

    def hand() -> None:
        y, z = batch[:, :dim], batch[:, dim:]
        F.cross_entropy(z @ y.T, labels).backward()
        batch.grad = None

    with torch.no_grad():
        y, z = batch[:, :dim], batch[:, dim:]
        assert torch.allclose(model.loss(batch), F.cross_entropy(z @ y.T, labels))
    inner = max(1, 20_000_000 // (B * B * dim // 8))
    for fn in (ours, hand):
        _time(fn, inner)  # warm-up
    times: dict[str, list[float]] = {"ours": [], "hand": []}
    for r in range(repeats):
        order = [("ours", ours), ("hand", hand)]
        for name, fn in order if r % 2 == 0 else order[::-1]:
            times[name].append(_time(fn, inner))
    return statistics.median(times["ours"]), statistics.median(times["hand"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--batches", type=int, nargs="+", default=[64, 256, 1024])
    p.add_argument("--busy", action="store_true",
                    help="run beside one CPU-bound competing process (a user's second job)")
    args = p.parse_args()
    if args.busy:
        from run_all import start_competitor

        start_competitor()
    torch.set_num_threads(args.threads)
    print(f"threads {args.threads}, load average {os.getloadavg()}")
    print("| B | D | genmodels (ms) | hand-written (ms) | ratio |\n|---:|---:|---:|---:|---:|")
    for B in args.batches:
        a, b = bench(B, args.dim, args.repeats)
        print(f"| {B} | {args.dim} | {1e3 * a:.3f} | {1e3 * b:.3f} | {b / a:.2f} |")


if __name__ == "__main__":
    main()
