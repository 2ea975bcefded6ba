"""Diffusion speed: genmodels vs a hand-written PyTorch loop vs diffusers' scheduler loop.

The same denoiser (``MLPDenoiser(64, H, 3)``, float32) in every column, on digits-shaped data
(N × 64), linear schedule with L = 1000 levels, ε-prediction:

* train step: ``model.loss(batch) .backward()`` + Adam (genmodels) against the same loss written
  inline (random level, x_l = √ᾱ x + √(1−ᾱ) ε, ‖ε − ε̂‖² summed over dimensions);
* sampling step: one ancestral step (network call + Eq. 8.38 mean + noise) against the same
  DDPM update written inline;
* full DDPM run: ``model.sample`` over all L levels against diffusers' ``DDPMScheduler`` loop
  (``scheduler.step`` at each timestep around the same network).

All timed in ONE process, interleaved (each repeat runs each contender once, in rotating
order), after a warm-up; the table reports medians and the median of the per-repeat ratios.
The machine may be shared: read the ratios, not the absolute seconds.

    python benchmarks/bench_diffusion.py [--repeats 7] [--hidden 256] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from genmodels.inference.samplers import ancestral_step
from genmodels.models.denoisers import MLPDenoiser
from genmodels.models.diffusion import GaussianDiffusion, GaussianSchedule

L = 1000


def _timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def compare(contenders: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    for fn in contenders.values():  # warm-up
        fn()
    times: dict[str, list[float]] = {k: [] for k in contenders}
    names = list(contenders)
    for r in range(repeats):
        order = names[r % len(names):] + names[:r % len(names)]
        for k in order:
            times[k].append(_timed(contenders[k]))
    return times


def report(title: str, times: dict[str, list[float]], base: str) -> None:
    print(f"== {title}")
    for k, ts in times.items():
        line = f"  {k:<34} median {statistics.median(ts) * 1e3:9.3f} ms"
        if k != base:
            ratios = [a / b for a, b in zip(times[base], ts, strict=True)]
            line += f"   genmodels / this = {statistics.median(ratios):.3f}"
        print(line)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=20, help="train/sampling steps per repeat")
    ap.add_argument("--sample-batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    B, H = args.batch, args.hidden
    sched = GaussianSchedule.linear(L)
    g = torch.Generator().manual_seed(0)
    X = torch.rand(1437, 64, generator=g) * 2 - 1

    # -------------------------------------------------------------------- train step
    ours_net = MLPDenoiser(64, H, 3, seed=0)
    hand_net = MLPDenoiser(64, H, 3, seed=0)
    model = GaussianDiffusion(ours_net, sched, "eps", weighting="simple")
    opt_o = torch.optim.Adam(model.parameters(), lr=1e-4, foreach=True)
    opt_h = torch.optim.Adam(hand_net.parameters(), lr=1e-4, foreach=True)
    sqrt_ab = sched.alpha.float()
    sqrt_1m = sched.sigma.float()
    go, gh = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)

    def ours_train() -> None:
        for i in range(args.steps):
            batch = X[(i * B) % 1300:(i * B) % 1300 + B]
            opt_o.zero_grad(set_to_none=True)
            model.loss(batch, go).backward()
            opt_o.step()

    def hand_train() -> None:
        for i in range(args.steps):
            x0 = X[(i * B) % 1300:(i * B) % 1300 + B]
            opt_h.zero_grad(set_to_none=True)
            t = torch.randint(1, L + 1, (x0.shape[0],), generator=gh)
            eps = torch.randn(x0.shape, generator=gh)
            xt = sqrt_ab[t][:, None] * x0 + sqrt_1m[t][:, None] * eps
            loss = ((hand_net(xt, t.float() / L) - eps) ** 2).sum(1).mean()
            loss.backward()
            opt_h.step()

    report(f"train step ×{args.steps}, batch {B}, H={H}",
           compare({"genmodels GaussianDiffusion.loss": ours_train,
                    "hand-written loop": hand_train}, args.repeats),
           "genmodels GaussianDiffusion.loss")

    # ----------------------------------------------------------------- sampling step
    xs = torch.randn(args.sample_batch, 64, generator=g)
    abar = sched.alpha.float() ** 2
    betas = torch.cat([torch.zeros(1), sched.betas.float()])
    post_sd = [0.0, *((1 - abar[:-1]) / (1 - abar[1:]) * betas[1:]).sqrt().tolist()]
    coef_eps = (betas / (1 - abar).clamp_min(1e-30).sqrt()).tolist()
    inv_sqrt_alpha = (1 / (1 - betas).sqrt()).tolist()
    model.reverse_variance = "posterior"

    @torch.no_grad()
    def ours_sample_steps() -> None:
        x = xs
        for l in range(L, L - args.steps, -1):
            x = ancestral_step(model.predict_x0(x, l), x, l, sched, generator=go)

    @torch.no_grad()
    def hand_sample_steps() -> None:
        x = xs
        for l in range(L, L - args.steps, -1):
            t = torch.full((x.shape[0],), l / L)
            eps = hand_net(x, t)
            x = inv_sqrt_alpha[l] * (x - coef_eps[l] * eps) + post_sd[l] * torch.randn(
                x.shape, generator=gh)

    report(f"sampling step ×{args.steps}, batch {args.sample_batch}",
           compare({"genmodels ancestral_step": ours_sample_steps,
                    "hand-written DDPM step": hand_sample_steps}, args.repeats),
           "genmodels ancestral_step")

    # ------------------------------------------------------------- full DDPM sampling
    import diffusers

    peer = diffusers.DDPMScheduler(num_train_timesteps=L, beta_schedule="linear",
                                   clip_sample=False, prediction_type="epsilon")
    peer.set_timesteps(L)

    def ours_full() -> None:
        model.sample(args.sample_batch, (64,), generator=go)

    @torch.no_grad()
    def diffusers_full() -> None:
        x = torch.randn(args.sample_batch, 64, generator=gh)
        for t in peer.timesteps:
            tt = torch.full((x.shape[0],), (int(t) + 1) / L)
            x = peer.step(hand_net(x, tt), t, x, generator=gh).prev_sample

    report(f"full DDPM sampling, L={L}, batch {args.sample_batch}",
           compare({"genmodels GaussianDiffusion.sample": ours_full,
                    "diffusers DDPMScheduler loop": diffusers_full},
                   max(3, args.repeats // 2)),
           "genmodels GaussianDiffusion.sample")


if __name__ == "__main__":
    main()
