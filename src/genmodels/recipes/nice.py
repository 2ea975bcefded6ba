"""``genmodels fit nice``: a NICE normalising flow (book §9.2; Dinh, Krueger & Bengio 2015).

    genmodels fit nice --data digits --epochs 200 --out report/
    genmodels fit nice --data pinwheel --epochs 200        # a 2-D toy mixture

On integer data (digits' 17 grey levels) the flow models the uniformly dequantised images
y = x + u (a fixed scaling y/K − ½ inside the flow, so densities stay in the data's units) and
is scored in held-out **bits/dim**, −E_u log₂ p̂(x + u)/D — on digits the density table's held-
out split. On real-valued data the flow models the data directly (nats per datum).

Writes metrics.json, the model (model/), learning_curve.png and samples.png.
"""

from __future__ import annotations

import argparse
import math
from typing import Any

import torch

from genmodels.cli import Recipe
from genmodels.recipes.diffusion import _scatter, gmm_baseline, prepare_data
from genmodels.reports import Report

__all__ = ["NICE_RECIPE", "fit_nice"]


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--couplings", type=int, default=4,
                   help="additive coupling layers (default 4, as in NICE)")
    p.add_argument("--hidden", type=int, default=None,
                   help="coupling-network width (default 256; 64 on 2-D data)")
    p.add_argument("--layers", type=int, default=3,
                   help="hidden layers per coupling network (default 3)")
    p.add_argument("--prior", choices=("logistic", "gaussian"), default="logistic",
                   help="latent prior (default logistic, as in NICE)")
    p.add_argument("--coupling", choices=("additive", "affine"), default="additive",
                   help="additive (NICE) or affine (RealNVP) couplings (default additive)")
    p.add_argument("--epochs", type=int, default=200, help="passes over the data (default 200)")
    p.add_argument("--batch-size", type=int, default=128, help="minibatch size (default 128)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    p.add_argument("--eval-draws", type=int, default=10,
                   help="dequantisation draws per held-out image (default 10)")
    p.add_argument("--test-fraction", type=float, default=0.2,
                   help="held-out fraction (not for digits, which uses the density split)")
    p.add_argument("--resume", action="store_true",
                   help="continue from OUT/checkpoint.pt if it exists")


def fit_nice(train: torch.Tensor, test: torch.Tensor, levels: int | None, args: argparse.Namespace,
             report: Report | None = None) -> tuple[Any, dict[str, Any]]:
    """Train the flow of ``args`` on ``train`` (data's own scale); returns (flow, metrics) with
    held-out bits/dim (integer data, dequantised) or nats per datum."""
    from genmodels.learning.trainer import Trainer
    from genmodels.models.flows import ElementwiseAffine, nice, realnvp

    d = train.shape[1]
    if levels is not None:
        pre = ElementwiseAffine(levels / 2, float(levels))  # y ∈ [0, K) → [−½, ½)
    else:
        pre = ElementwiseAffine(train.mean(0), train.std(0).clamp_min(1e-6))
    build = nice if args.coupling == "additive" else realnvp
    hidden = args.hidden or (64 if d <= 4 else 256)
    flow = build(d, n_couplings=args.couplings, hidden=hidden, n_hidden=args.layers,
                 prior=args.prior, preprocess=pre, dequantise=levels is not None,
                 seed=args.seed).to(args.device)
    trainer = Trainer(flow, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                      seed=args.seed,
                      checkpoint=None if report is None else report.out / "checkpoint.pt",
                      resume=getattr(args, "resume", False),
                      progress=not getattr(args, "no_progress", True), device=args.device)
    result = trainer.fit(train.float().to(args.device))
    flow.eval()
    gen = torch.Generator(device=args.device).manual_seed(args.seed + 1)
    te = test.float().to(args.device)
    n = te.shape[0]
    metrics: dict[str, Any] = {
        "n_train": int(train.shape[0]), "n_test": n, "n_features": d, "levels_of_data": levels,
        "coupling": args.coupling, "couplings": args.couplings, "prior": args.prior,
        "n_parameters": sum(p.numel() for p in flow.parameters()),
        "epochs_run": result.epochs_run,
        "learning_curve_nll": result.history["train_loss"],
    }
    if levels is not None:
        bpd = flow.bits_per_dim(te, n_draws=args.eval_draws, generator=gen)
        metrics["test_bits_per_dim"] = float(bpd.mean())
        metrics["test_bits_per_dim_stderr"] = float(bpd.std() / math.sqrt(n))
        metrics["eval_draws"] = args.eval_draws
    else:
        with torch.no_grad():
            ll = flow.log_prob(te)
        metrics["test_log_likelihood_nats"] = float(ll.mean())
        metrics["test_log_likelihood_nats_stderr"] = float(ll.std() / math.sqrt(n))
    return flow, metrics


def _run(args: argparse.Namespace, report: Report) -> dict[str, Any]:
    from genmodels.learning.score_matching import energy_distance

    train, test, levels, shape, source = prepare_data(args.data, seed=args.seed,
                                                      test_fraction=args.test_fraction)
    flow, metrics = fit_nice(train, test, levels, args, report)
    metrics["split"] = source
    report.save_model(flow)
    report.learning_curve(metrics["learning_curve_nll"], xlabel="epoch",
                          ylabel="training NLL per datum (nats)")
    gen = torch.Generator(device=args.device).manual_seed(args.seed + 2)
    if shape is not None:
        x = flow.sample(40, generator=gen).cpu()
        if levels is not None:
            x = x.floor().clamp(0, levels - 1)
        report.image_grid(x, shape, filename="samples.png", title="NICE samples")
    if train.shape[1] == 2:
        n = min(2000, test.shape[0] * 2)
        samples = flow.sample(n, generator=gen).cpu().double()
        metrics["energy_distance"] = float(energy_distance(samples, test.double()))
        metrics.update(gmm_baseline(train, test, metrics["n_parameters"], args.seed, n))
        _scatter(report, samples, test, "samples.png", "NICE samples vs held-out data")
    return metrics


NICE_RECIPE = Recipe(
    name="nice",
    help="NICE normalising flow (held-out bits/dim on dequantised data, samples)",
    default_data="digits",
    add_arguments=_arguments,
    run=_run,
)
