"""NICE training speed: genmodels (``nice()`` + ``Trainer``) vs the same architecture written by
hand in PyTorch.

One epoch of minibatch Adam (lr 1e-3, ``foreach``) on digits' 17 grey levels (the density
table's 1,437 training images), uniformly dequantised each step, batch 128, float32: four
additive couplings on alternating halves (each a ReLU MLP 32 → H → H → H → 32), a diagonal
scaling layer, the fixed scaling y/17 − ½, a logistic prior.

* genmodels: ``Trainer(flow, epochs=1).fit(train)`` — data order, the Flow's loss through the
  Composition of Bijections.
* plain PyTorch: the same networks, the couplings written with strided slices, the loss inline.

Both timed in ONE process, interleaved, after a warm-up epoch; medians and the median of the
per-repeat ratios. The machine may be shared: read the ratio, not the seconds.

    python benchmarks/bench_flows.py [--repeats 9] [--hidden 256] [--threads 1]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch
from torch import nn

from genmodels.data import density_split
from genmodels.learning.trainer import Trainer, sharded_batches
from genmodels.models.flows import ElementwiseAffine, coupling_net, nice


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    train = density_split("grey")[0].float()
    D, H, B = 64, args.hidden, args.batch

    flow = nice(D, n_couplings=4, hidden=H, n_hidden=3, prior="logistic",
                preprocess=ElementwiseAffine(8.5, 17.0), dequantise=True, seed=0)

    torch.manual_seed(0)
    nets = nn.ModuleList(coupling_net(32, 32, H, 3) for _ in range(4))
    log_scale = nn.Parameter(torch.zeros(D))
    opt = torch.optim.Adam([*nets.parameters(), log_scale], lr=1e-3, foreach=True)
    g = torch.Generator().manual_seed(0)

    def hand_log_prob(y: torch.Tensor) -> torch.Tensor:
        x = y / 17.0 - 0.5
        for k, net in enumerate(nets):
            a, b = (x[:, 0::2], x[:, 1::2]) if k % 2 == 0 else (x[:, 1::2], x[:, 0::2])
            b = b + net(a)
            x = torch.stack((a, b) if k % 2 == 0 else (b, a), 2).reshape(-1, D)
        z = x * log_scale.exp()
        prior = -(nn.functional.softplus(z) + nn.functional.softplus(-z)).sum(1)
        return prior + log_scale.sum() - D * math.log(17.0)

    def hand_epoch(epoch: int) -> float:
        total = 0.0
        for idx in sharded_batches(train.shape[0], B, epoch=epoch, seed=0):
            y = train[idx]
            y = y + torch.rand(y.shape, generator=g)
            opt.zero_grad(set_to_none=True)
            loss = -hand_log_prob(y).mean()
            loss.backward()
            opt.step()
            total += float(loss.detach())
        return total

    def ours_epoch(epoch: int) -> float:
        res = Trainer(flow, epochs=1, batch_size=B, lr=1e-3, seed=epoch, progress=False).fit(
            train)
        return res.history["train_loss"][-1]

    contenders = {"genmodels nice() + Trainer": ours_epoch, "hand-written NICE": hand_epoch}
    for fn in contenders.values():
        fn(0)
    times: dict[str, list[float]] = {k: [] for k in contenders}
    names = list(contenders)
    for r in range(args.repeats):
        for k in names[r % 2:] + names[:r % 2]:
            t0 = time.perf_counter()
            contenders[k](r + 1)
            times[k].append(time.perf_counter() - t0)
    ratios = [a / b for a, b in zip(times[names[0]], times[names[1]], strict=True)]
    print(f"== NICE epoch on grey digits (1,437 × 64), batch {B}, H={H}")
    for k in names:
        print(f"  {k:<30} median {statistics.median(times[k]):.4f} s")
    print(f"  genmodels / hand-written = {statistics.median(ratios):.3f} "
          f"(range {min(ratios):.3f}–{max(ratios):.3f})")


if __name__ == "__main__":
    main()
