"""VAE training speed: genmodels (VAE + Trainer) vs a hand-written PyTorch loop vs Pyro SVI.

One epoch of minibatch Adam on binarised digits (1797 × 64, threshold 8) with the same
architecture in all three: encoder 64 → H (tanh) → 2K (mean, log-variance), decoder
K → H (tanh) → 64 Bernoulli logits, one reparameterised sample per datum, batch 64, float32.

All use Adam (lr 1e-3) with torch's multi-tensor ``foreach`` kernels, the Trainer's default.

* genmodels: ``Trainer(VAE(64, K, hidden=[H]), epochs=1).fit(X)`` — everything the library does
  per epoch (data order, sharding logic, loss through the VAE's recognition/emission objects).
* plain PyTorch: the same network and loss written inline (closed-form KL, BCE with logits).
* Pyro: ``SVI(model, guide, pyro.optim.Adam, Trace_ELBO())`` with the same networks
  (``pyro.module``), validation off; its KL is Monte Carlo (Trace_ELBO's definition).

The three are timed in ONE process, interleaved (each repeat runs one epoch of each, in
rotating order), after a warm-up epoch; the table reports medians. The machine may be shared:
read the ratios, not the absolute seconds. ``--quick`` runs fewer repeats.

    python benchmarks/bench_vae.py [--quick] [--hidden 128] [--latent 8] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from genmodels.data import load_dataset
from genmodels.learning.trainer import Trainer
from genmodels.models.vae import VAE


def _digits() -> torch.Tensor:
    return (load_dataset("digits").X >= 8).to(torch.float32)


def make_genmodels(X: torch.Tensor, H: int, K: int, B: int) -> Callable[[int], float]:
    model = VAE(64, K, hidden=[H], likelihood="bernoulli", seed=0)
    history: list[float] = []

    def epoch(r: int) -> float:
        res = Trainer(model, epochs=1, batch_size=B, lr=1e-3, seed=r, progress=False).fit(X)
        history.append(res.history["train_loss"][-1])
        return history[-1]

    return epoch


def make_plain(X: torch.Tensor, H: int, K: int, B: int) -> Callable[[int], float]:
    torch.manual_seed(0)
    enc = nn.Sequential(nn.Linear(64, H), nn.Tanh(), nn.Linear(H, 2 * K))
    dec = nn.Sequential(nn.Linear(K, H), nn.Tanh(), nn.Linear(H, 64))
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=1e-3, foreach=True)
    N = X.shape[0]

    def epoch(r: int) -> float:
        g = torch.Generator().manual_seed(r)
        perm = torch.randperm(N, generator=g)
        total, steps = 0.0, 0
        for i in range(0, N, B):  # the last, partial batch too (as the Trainer does)
            y = X[perm[i:i + B]]
            mu, logvar = enc(y).chunk(2, -1)
            x = mu + (0.5 * logvar).exp() * torch.randn(mu.shape, generator=g)
            rec = F.binary_cross_entropy_with_logits(dec(x), y, reduction="none").sum(-1)
            kl = 0.5 * (logvar.exp() + mu.square() - 1 - logvar).sum(-1)
            loss = (rec + kl).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach())
            steps += 1
        return total / steps

    return epoch


def make_pyro(X: torch.Tensor, H: int, K: int, B: int) -> Callable[[int], float]:
    import pyro
    import pyro.distributions as dist
    from pyro.infer import SVI, Trace_ELBO
    from pyro.optim import Adam

    pyro.enable_validation(False)
    pyro.clear_param_store()
    torch.manual_seed(0)
    enc = nn.Sequential(nn.Linear(64, H), nn.Tanh(), nn.Linear(H, 2 * K))
    dec = nn.Sequential(nn.Linear(K, H), nn.Tanh(), nn.Linear(H, 64))

    def model(y: torch.Tensor) -> None:
        pyro.module("decoder", dec)
        with pyro.plate("data", y.shape[0]):
            x = pyro.sample("x", dist.Normal(torch.zeros(y.shape[0], K), 1.0).to_event(1))
            pyro.sample("y", dist.Bernoulli(logits=dec(x)).to_event(1), obs=y)

    def guide(y: torch.Tensor) -> None:
        pyro.module("encoder", enc)
        with pyro.plate("data", y.shape[0]):
            mu, logvar = enc(y).chunk(2, -1)
            pyro.sample("x", dist.Normal(mu, (0.5 * logvar).exp()).to_event(1))

    # the same optimiser settings; Pyro keeps one optimiser per parameter, so foreach cannot
    # batch its updates — part of the per-step cost it pays by design
    svi = SVI(model, guide, Adam({"lr": 1e-3, "foreach": True}), loss=Trace_ELBO())
    N = X.shape[0]

    def epoch(r: int) -> float:
        g = torch.Generator().manual_seed(r)
        perm = torch.randperm(N, generator=g)
        total, steps = 0.0, 0
        for i in range(0, N, B):
            y = X[perm[i:i + B]]
            total += svi.step(y) / y.shape[0]
            steps += 1
        return total / steps

    return epoch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="5 repeats instead of 15")
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--latent", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (default 1: small networks; fair on a shared machine)")
    ap.add_argument("--busy", action="store_true",
                    help="run beside one CPU-bound competing process (a user's second job)")
    args = ap.parse_args()
    if args.busy:
        from run_all import start_competitor

        start_competitor()
    torch.set_num_threads(args.threads)
    repeats = args.repeats or (5 if args.quick else 15)
    X = _digits()
    H, K, B = args.hidden, args.latent, args.batch_size
    runners = {
        "genmodels (VAE + Trainer)": make_genmodels(X, H, K, B),
        "plain PyTorch loop": make_plain(X, H, K, B),
        "Pyro SVI + Trace_ELBO": make_pyro(X, H, K, B),
    }
    names = list(runners)
    times: dict[str, list[float]] = {n: [] for n in names}
    losses: dict[str, float] = {}
    for n in names:  # warm-up
        runners[n](0)
    for r in range(repeats):
        order = names[r % len(names):] + names[:r % len(names)]
        for n in order:
            t0 = time.perf_counter()
            losses[n] = runners[n](r + 1)
            times[n].append(time.perf_counter() - t0)
    med = {n: statistics.median(times[n]) for n in names}
    ref = med["genmodels (VAE + Trainer)"]
    print(f"\nVAE, one epoch on binarised digits (N={X.shape[0]}, D=64, H={H}, K={K}, batch {B}, "
          f"float32, {args.threads} thread(s)); median of {repeats} interleaved repeats\n")
    print("| implementation | seconds / epoch | ratio to genmodels | −ELBO per datum after |")
    print("|---|---:|---:|---:|")
    for n in names:
        print(f"| {n} | {med[n]:.4f} | {med[n] / ref:.2f}× | {losses[n]:.2f} |")
    print(f"\ngenmodels / plain PyTorch = {ref / med['plain PyTorch loop']:.3f} (target ≤ 1.1); "
          f"Pyro / genmodels = {med['Pyro SVI + Trace_ELBO'] / ref:.2f} (target ≥ 2)")


if __name__ == "__main__":
    main()
