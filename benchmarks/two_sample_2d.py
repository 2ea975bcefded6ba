"""Diffusion and NICE against Gaussian mixtures on 2-D toy densities, by a two-sample distance.

    python benchmarks/two_sample_2d.py                          # every truth, default sizes
    python benchmarks/two_sample_2d.py --truth moons --epochs 400 --json out.json

For each truth (``genmodels.recipes.diffusion.TOYS``: two moons, a checkerboard, the pinwheel —
none of them a Gaussian mixture) 4,000 training points are drawn and

* a Gaussian diffusion model (``MLPDenoiser``, L levels, ε-prediction, L_simple) and a NICE flow
  (additive couplings, diagonal scaling, logistic prior) are trained through the ``Trainer``
  (Adam, the learning rate annealed to zero by a cosine); P = the number of their parameters;
* Gaussian mixtures (full covariance, EM) are fitted with the **same parameter budget**: in
  2-D a component costs 6 numbers (2 mean, 3 covariance, 1 weight; one weight is implied), so
  K_P = ⌊(P + 1)/6⌋ components — hundreds or thousands for any useful network, so K_P is
  capped at N/10 = 400 (EM cannot fit more components than points, and overfits long
  before); and also the best mixture *within* the budget: K ≤ that (powers of two) chosen by
  the log-likelihood of 2,000 fresh validation draws.

The distance is the **energy distance** (Székely & Rizzo; ``genmodels.learning.score_matching.
energy_distance``), 2E‖X − Y‖ − E‖X − X′‖ − E‖Y − Y′‖ — the squared MMD with the distance
kernel −‖x − y‖ — between 4,000 model samples and 5,000 fresh draws from the truth (the
V-statistic), as mean ± s.d. over 3 sampling seeds. Its floor is the same statistic between
two independent truth samples of those sizes. Lower is better.

    python benchmarks/two_sample_2d.py --replicated --reps 3     # moons, circles, swissroll
    python benchmarks/two_sample_2d.py --replicated --target moons --diffusion '{"hidden": 16}'

``--replicated`` is the comparison with standard errors, on ``TARGETS`` (two moons, two rings
in scikit-learn's ``make_circles`` layout, scikit-learn's ``make_swiss_roll`` seen along its
axis). Each of R replicates draws its own training, validation and truth samples and trains
every model with its own seed; the distances are the **U-statistics** of the energy distance
and of the Gaussian-kernel MMD² (bandwidth 0.1), unbiased for the population distances (the
truth against itself is 0 in expectation), reported as mean ± s.e. over the replicates, and
each row's paired difference to diffusion / NICE (same truth sample in every replicate) with
its s.e. Mixtures: every K in powers of two up to N/10, the same-budget K = min(⌊(P + 1)/6⌋,
N/10) and the best within it by validation log-likelihood. ``--diffusion`` / ``--nice`` take
JSON overrides of the model settings (width, depth, levels, schedule, epochs, sample_kwargs,
"ema": sample with the moving average of the weights, "reverse_variance": "posterior" for the
ancestral sampler's β̃_l; NICE "builder": "realnvp" for affine couplings, "prior").
``--n-samples`` sets both the model's and the truth's sample sizes (16,000 shrinks the
paired standard errors 1.2–2× against the default 4,000).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from genmodels import GaussianMixture
from genmodels.learning.score_matching import energy_distance
from genmodels.learning.trainer import Trainer
from genmodels.models.denoisers import MLPDenoiser
from genmodels.models.diffusion import GaussianDiffusion, GaussianSchedule
from genmodels.models.flows import ElementwiseAffine, nice, realnvp
from genmodels.recipes.diffusion import TOYS

PER_COMPONENT = 6  # a full-covariance 2-D Gaussian component: 2 + 3 + 1 numbers
MIN_POINTS = 10  # EM needs data for each component: at most N/10 components


def gmm_components(n_parameters: int) -> int:
    """K with K·6 − 1 ≤ P: the mixture with (at most) the same number of parameters."""
    return max(1, (n_parameters + 1) // PER_COMPONENT)


def distances(draw: Callable[[int, torch.Generator], Tensor], ref: Tensor, n: int,
              seeds: tuple[int, ...]) -> list[float]:
    """Energy distances of n draws (one set per seed) to the reference sample."""
    return [float(energy_distance(draw(n, torch.Generator().manual_seed(s)).double(), ref))
            for s in seeds]


def _cosine(epochs: int) -> Callable[[torch.optim.Optimizer], Any]:
    """The learning rate annealed to zero over the run (cosine, per epoch): the last iterate
    is then not the noisy one of a constant step size (diffusion models usually average the
    weights instead; a decay is the cheaper cure)."""
    return lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)


def _fit(model: torch.nn.Module, data: Tensor, *, epochs: int, batch_size: int, lr: float,
         seed: int, ema: float = 0.0) -> None:
    """Adam through the ``Trainer``, the learning rate annealed by a cosine; with ``ema`` > 0
    the model ends with the exponential moving average of its weights over the steps (decay
    ``ema``; Ho et al. 2020 sample with it) instead of the last iterate."""
    average = None
    if ema > 0:
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        average = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(ema))
    Trainer(model, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
            scheduler=_cosine(epochs), progress=False,
            callback=None if average is None else lambda *_: average.update_parameters(model)
            ).fit(data)
    if average is not None:
        with torch.no_grad():
            for p, q in zip(model.parameters(), average.module.parameters()):
                p.copy_(q)


def train_diffusion(train: Tensor, *, hidden: int, layers: int, levels: int, epochs: int,
                    batch_size: int, lr: float, seed: int, schedule: str = "linear",
                    sample_kwargs: dict[str, Any] | None = None, ema: float = 0.0,
                    reverse_variance: str = "transition") -> tuple[Any, Callable[..., Tensor]]:
    """A diffusion model on the standardised data; returns (model, draw(n, generator)).
    ``sample_kwargs`` go to ``GaussianDiffusion.sample`` (e.g. the DDIM sampler); ``ema``:
    see ``_fit``; ``reverse_variance``: σ_l² of the ancestral sampler, β_l ("transition") or
    the posterior's β̃_l ("posterior"), Ho et al. 2020's two choices."""
    mu, sd = train.mean(0), train.std(0)
    net = MLPDenoiser(2, hidden, layers, 16, seed=seed)
    sched = getattr(GaussianSchedule, schedule)(levels)
    model = GaussianDiffusion(net, sched, "eps", reverse_variance=reverse_variance)
    _fit(model, ((train - mu) / sd).float(), epochs=epochs, batch_size=batch_size, lr=lr,
         seed=seed, ema=ema)

    def draw(n: int, g: torch.Generator) -> Tensor:
        return model.sample(n, (2,), generator=g, **(sample_kwargs or {})).double() * sd + mu

    return model, draw


def train_nice(train: Tensor, *, hidden: int, layers: int, couplings: int, epochs: int,
               batch_size: int, lr: float, seed: int, prior: str = "logistic",
               builder: str = "nice", ema: float = 0.0) -> tuple[Any, Callable[..., Tensor]]:
    """NICE (or, ``builder="realnvp"``, affine couplings) with the standardisation inside the
    flow; returns (flow, draw(n, generator)). ``ema``: see ``_fit``."""
    make = {"nice": nice, "realnvp": realnvp}[builder]
    flow = make(2, n_couplings=couplings, hidden=hidden, n_hidden=layers, prior=prior,
                preprocess=ElementwiseAffine(train.mean(0), train.std(0)), seed=seed)
    flow.initialise_scaling(train.float(), torch.Generator().manual_seed(seed))
    _fit(flow, train.float(), epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, ema=ema)

    def draw(n: int, g: torch.Generator) -> Tensor:
        return flow.sample(n, generator=g).double()

    return flow, draw


def gmm_draw(gm: GaussianMixture) -> Callable[[int, torch.Generator], Tensor]:
    def draw(n: int, g: torch.Generator) -> Tensor:
        return gm.model_.sample(n, generator=g)[1].double()
    return draw


def compare(truth: str, *, n_train: int = 4000, n_samples: int = 4000, n_ref: int = 5000,
            epochs: int = 400, hidden: int = 64, layers: int = 2, levels: int = 100,
            couplings: int = 6, batch_size: int = 256, lr: float = 2e-3,
            seeds: tuple[int, ...] = (1, 2, 3), seed: int = 0) -> dict[str, Any]:
    """Every number of one truth: energy distances (lists over ``seeds``), parameter counts,
    mixture sizes and training seconds."""
    sample = TOYS[truth]
    train, ref = sample(n_train, seed=seed), sample(n_ref, seed=seed + 1000)
    val = sample(2000, seed=seed + 2000)
    out: dict[str, Any] = {"truth": truth, "n_train": n_train, "n_samples": n_samples,
                           "n_ref": n_ref, "epochs": epochs}
    out["floor"] = distances(lambda n, g: sample(n, seed=int(torch.randint(
        0, 2**31 - 1, (1,), generator=g))), ref, n_samples, seeds)
    budgets: dict[str, int] = {}
    for name, fit in (("diffusion", lambda: train_diffusion(
            train, hidden=hidden, layers=layers, levels=levels, epochs=epochs,
            batch_size=batch_size, lr=lr, seed=seed)),
                      ("nice", lambda: train_nice(
            train, hidden=hidden, layers=layers, couplings=couplings, epochs=epochs,
            batch_size=batch_size, lr=lr, seed=seed))):
        t0 = time.perf_counter()
        model, draw = fit()
        out[f"{name}_seconds"] = time.perf_counter() - t0
        budgets[name] = sum(p.numel() for p in model.parameters())
        out[f"{name}_parameters"] = budgets[name]
        out[name] = distances(draw, ref, n_samples, seeds)
    fitted: dict[int, GaussianMixture] = {}

    def fit_gmm(k: int) -> GaussianMixture:
        if k not in fitted:
            fitted[k] = GaussianMixture(k, covariance_type="full", random_state=seed).fit(train)
        return fitted[k]

    for name, p in budgets.items():
        k_p = min(gmm_components(p), n_train // MIN_POINTS)
        out[f"gmm_same_budget_as_{name}"] = {"components": k_p,
                                             "budget_components": gmm_components(p),
                                             "parameters": PER_COMPONENT * k_p - 1,
                                             "distance": distances(gmm_draw(fit_gmm(k_p)), ref,
                                                                   n_samples, seeds)}
        ks = [2**i for i in range(int(math.log2(k_p)) + 1)]
        best = max(ks, key=lambda k: float(fit_gmm(k).score(val)))
        out[f"gmm_within_budget_of_{name}"] = {
            "components": best, "parameters": PER_COMPONENT * best - 1,
            "validation_log_likelihood": float(fit_gmm(best).score(val)),
            "distance": distances(gmm_draw(fit_gmm(best)), ref, n_samples, seeds)}
    return out


def circles(n: int, *, factor: float = 0.5, noise: float = 0.05, seed: int = 0) -> Tensor:
    """scikit-learn's ``make_circles`` layout (two concentric rings of radii 1 and ``factor``,
    N(0, noise²) per coordinate) with independent uniform angles — ``make_circles`` puts its
    angles on a grid, so two of its draws are not independent samples. (n, 2) float64."""
    g = torch.Generator().manual_seed(seed)
    r = torch.where(torch.rand(n, generator=g) < 0.5, 1.0, factor).double()
    theta = 2 * math.pi * torch.rand(n, generator=g, dtype=torch.float64)
    x = r[:, None] * torch.stack([theta.cos(), theta.sin()], 1)
    return x + noise * torch.randn(n, 2, generator=g, dtype=torch.float64)


def swiss_roll(n: int, *, noise: float = 0.5, seed: int = 0) -> Tensor:
    """scikit-learn's ``make_swiss_roll`` (t = 1.5π(1 + 2u), (t cos t, t sin t), N(0, noise²)
    per coordinate, independent draws) seen from its axis — coordinates 0 and 2 — and divided
    by 10: a spiral of about 1.4 turns, arms 0.63 apart and 0.05 thick. (n, 2) float64."""
    from sklearn.datasets import make_swiss_roll

    x, _ = make_swiss_roll(n, noise=noise, random_state=seed)
    return torch.from_numpy(x[:, [0, 2]] / 10).double()


# the targets of the replicated comparison: none is a Gaussian mixture
TARGETS: dict[str, Callable[..., Tensor]] = {"moons": TOYS["moons"], "circles": circles,
                                             "swissroll": swiss_roll}


def pair_sums(a: Tensor, b: Tensor, bandwidth: float, block: int = 2048) -> tuple[float, float]:
    """Σ‖a_i − b_j‖ and Σ exp(−‖a_i − b_j‖²/2h²) over every pair (i, j), over ``block`` rows of
    a at a time, so memory stays O(block · len(b)) for samples of tens of thousands."""
    dist, kern = 0.0, 0.0
    for start in range(0, a.shape[0], block):
        d = torch.cdist(a[start:start + block], b)
        dist += float(d.sum())
        kern += float(torch.exp(-0.5 * (d / bandwidth) ** 2).sum())
    return dist, kern


def unbiased_distances(x: Tensor, y: Tensor, bandwidth: float, block: int = 2048,
                       y_sums: tuple[float, float] | None = None) -> tuple[float, float]:
    """The U-statistics of (the energy distance, the squared Gaussian-kernel MMD of
    ``bandwidth``) between the samples x (n, D) and y (m, D): their expectations are the
    population distances themselves (0 when the laws agree, so estimates can be negative),
    unlike the V-statistic ``energy_distance``, whose floor is ≈ E‖X − X′‖(1/n + 1/m).
    ``y_sums``: ``pair_sums(y, y, bandwidth)`` when many samples are scored against one y."""
    n, m = x.shape[0], y.shape[0]
    dxy, kxy = pair_sums(x, y, bandwidth, block)
    dxx, kxx = pair_sums(x, x, bandwidth, block)
    dyy, kyy = pair_sums(y, y, bandwidth, block) if y_sums is None else y_sums
    energy = 2 * dxy / (n * m) - dxx / (n * (n - 1)) - dyy / (m * (m - 1))
    mmd = (kxx - n) / (n * (n - 1)) + (kyy - m) / (m * (m - 1)) - 2 * kxy / (n * m)
    return energy, mmd


def replicate(target: str, rep: int, *, n_train: int = 4000, n_samples: int = 4000,
              diffusion: dict[str, Any] | None = None, nice_cfg: dict[str, Any] | None = None,
              k_max: int | None = None, bandwidth: float = 0.1) -> dict[str, Any]:
    """One replicate ``rep`` of the whole pipeline on one target: a fresh training set,
    validation set and truth sample, each model trained with seed ``rep``; returns for every
    model its (energy, MMD²) U-statistics against the truth sample, its parameter count and
    its training seconds. Mixtures: every K in powers of two up to ``k_max`` (default
    N/10) is fitted; "gmm_same_budget_as_X" is K = min(⌊(P_X + 1)/6⌋, N/10), the
    "within budget" one the K ≤ that with the best validation log-likelihood."""
    draw_truth = TARGETS[target]
    s = 10_000 * rep
    train, val = draw_truth(n_train, seed=s), draw_truth(2000, seed=s + 1)
    ref = draw_truth(n_samples, seed=s + 2)
    gen = torch.Generator().manual_seed(s + 3)
    out: dict[str, Any] = {"target": target, "rep": rep}

    ref_sums = pair_sums(ref, ref, bandwidth)  # the truth sample's own sums, once

    def score(x: Tensor) -> tuple[float, float]:
        return unbiased_distances(x.double(), ref, bandwidth, y_sums=ref_sums)

    out["truth"] = {"distance": score(draw_truth(n_samples, seed=s + 4)), "parameters": 0}
    budgets = {}
    dcfg = {"hidden": 64, "layers": 2, "levels": 100, "epochs": 400, "batch_size": 256,
            "lr": 2e-3, **(diffusion or {})}
    ncfg = {"hidden": 64, "layers": 2, "couplings": 6, "epochs": 400, "batch_size": 256,
            "lr": 2e-3, **(nice_cfg or {})}
    for name, fit, cfg in (("diffusion", train_diffusion, dcfg), ("nice", train_nice, ncfg)):
        if cfg.get("epochs", 1) == 0:
            continue
        t0 = time.perf_counter()
        model, draw = fit(train, seed=rep, **cfg)
        seconds = time.perf_counter() - t0
        p = sum(q.numel() for q in model.parameters())
        budgets[name] = p
        out[name] = {"distance": score(draw(n_samples, gen)), "parameters": p,
                     "seconds": seconds}
    cap = n_train // MIN_POINTS if k_max is None else k_max
    ks = [2**i for i in range(int(math.log2(cap)) + 1)]
    ks = sorted({*ks, cap, *(min(gmm_components(p), cap) for p in budgets.values())})
    gmms = {k: GaussianMixture(k, covariance_type="full", random_state=rep).fit(train)
            for k in ks}
    val_ll = {k: float(g.score(val)) for k, g in gmms.items()}
    for k, g in gmms.items():
        out[f"gmm_{k}"] = {"distance": score(gmm_draw(g)(n_samples, gen)),
                           "parameters": PER_COMPONENT * k - 1, "validation_ll": val_ll[k]}
    for name, p in budgets.items():
        k_p = min(gmm_components(p), cap)
        best = max((k for k in ks if k <= k_p), key=val_ll.__getitem__)
        out[f"gmm_same_budget_as_{name}"] = {**out[f"gmm_{k_p}"], "components": k_p}
        out[f"gmm_within_budget_of_{name}"] = {**out[f"gmm_{best}"], "components": best}
    return out


def summarise(reps: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Mean and standard error (s.d./√R over the R replicates) of each row's two distances,
    and of its paired difference to the diffusion model (same truth sample, same replicate)."""
    rows: dict[str, dict[str, Any]] = {}
    for key in reps[0]:
        if not isinstance(reps[0][key], dict):
            continue
        e = [r[key]["distance"][0] for r in reps]
        m = [r[key]["distance"][1] for r in reps]
        row: dict[str, Any] = {"parameters": reps[0][key]["parameters"],
                               "energy": _mse(e), "mmd2": _mse(m)}
        if "components" in reps[0][key]:
            row["components"] = [r[key]["components"] for r in reps]
        for ref in ("diffusion", "nice"):
            if ref in reps[0] and key != ref:
                for i, stat in enumerate(("energy", "mmd2")):
                    row[f"{stat}_minus_{ref}"] = _mse([r[key]["distance"][i]
                                                       - r[ref]["distance"][i] for r in reps])
        rows[key] = row
    return rows


def _mse(values: list[float]) -> tuple[float, float]:
    m = statistics.fmean(values)
    se = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else 0.0
    return m, se


def _fmt(values: list[float]) -> str:
    m = statistics.fmean(values)
    s = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{m:.5f} ± {s:.5f}"


def main_replicated(args: argparse.Namespace) -> None:
    dcfg, ncfg = json.loads(args.diffusion), json.loads(args.nice)
    results: dict[str, Any] = {"diffusion_config": dcfg, "nice_config": ncfg,
                               "n_train": args.n_train, "n_samples": args.n_samples,
                               "bandwidth": args.bandwidth, "targets": {}}
    for target in args.target or list(TARGETS):
        reps = []
        for rep in range(args.first_rep, args.first_rep + args.reps):
            reps.append(replicate(target, rep, n_train=args.n_train, n_samples=args.n_samples,
                                  diffusion=dcfg, nice_cfg=ncfg, bandwidth=args.bandwidth))
            print(f"  {target} rep {rep}: " + ", ".join(
                f"{k} {v['distance'][0]:.5f}" for k, v in reps[-1].items()
                if (isinstance(v, dict) and not k.startswith("gmm_")) or k.startswith("gmm_w")),
                flush=True)
        rows = summarise(reps)
        results["targets"][target] = {"replicates": reps, "summary": rows}
        if args.json:
            with open(args.json, "w") as f:
                json.dump(results, f, indent=2)
        print(f"== {target}: U-statistics against {args.n_samples} fresh truth draws, mean ± "
              f"s.e. over {args.reps} replicates (data, training and sampling seeds)")
        for key, row in rows.items():
            diff = "".join(f"   {k.removeprefix('energy_minus_')}: {v[0]:+.5f} ± {v[1]:.5f}"
                           for k, v in row.items() if k.startswith("energy_minus_"))
            diff += "".join(f"   MMD² − {k.removeprefix('mmd2_minus_')}: {v[0]:+.1e} ± {v[1]:.0e}"
                            for k, v in row.items() if k.startswith("mmd2_minus_"))
            print(f"  {key:<28} P = {row['parameters']:>6}  energy {row['energy'][0]:.5f} ± "
                  f"{row['energy'][1]:.5f}  MMD² {row['mmd2'][0]:.2e} ± {row['mmd2'][1]:.1e}"
                  f"{diff}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--truth", choices=sorted(TOYS), action="append",
                    help="a truth (repeatable); default all")
    ap.add_argument("--epochs", type=int, default=400)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--levels", type=int, default=100, help="diffusion levels L")
    ap.add_argument("--couplings", type=int, default=6, help="NICE couplings")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", help="also write the results to this JSON file")
    ap.add_argument("--replicated", action="store_true",
                    help="the replicated comparison on TARGETS (U-statistics, standard errors)")
    ap.add_argument("--target", choices=sorted(TARGETS), action="append")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--first-rep", type=int, default=0, help="replicates first-rep, ...")
    ap.add_argument("--n-train", type=int, default=4000)
    ap.add_argument("--n-samples", type=int, default=4000)
    ap.add_argument("--bandwidth", type=float, default=0.1)
    ap.add_argument("--diffusion", default="{}", help="JSON overrides of the diffusion config")
    ap.add_argument("--nice", default="{}", help="JSON overrides of the NICE config")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.replicated:
        main_replicated(args)
        return
    results = []
    for truth in args.truth or ["moons", "checkerboard", "pinwheel"]:
        r = compare(truth, epochs=args.epochs, hidden=args.hidden, layers=args.layers,
                    levels=args.levels, couplings=args.couplings)
        results.append(r)
        if args.json:  # after every truth: a long run keeps what it has measured
            with open(args.json, "w") as f:
                json.dump(results, f, indent=2)
        print(f"== {truth}: energy distance to 5,000 truth draws ({r['n_samples']} samples, "
              f"mean ± s.d. over 3 seeds)")
        print(f"  floor (truth vs truth)        {_fmt(r['floor'])}")
        for name in ("diffusion", "nice"):
            print(f"  {name:<9} P = {r[f'{name}_parameters']:>6}      {_fmt(r[name])}   "
                  f"({r[f'{name}_seconds']:.0f} s training)")
            for kind in ("same_budget_as", "within_budget_of"):
                g = r[f"gmm_{kind}_{name}"]
                print(f"    GMM K = {g['components']:>4} ({kind.replace('_', ' ')} {name})"
                      f"  {_fmt(g['distance'])}", flush=True)


if __name__ == "__main__":
    main()
