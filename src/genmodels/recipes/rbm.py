"""``genmodels fit rbm``: a restricted Boltzmann machine (book §3.1, §10.2) trained by PCD, CD-k
or the exact gradient, on a bundled data set or a file.

    genmodels fit rbm --data digits                       # binarised (X/16 > 0.5), CD-1, H = 64
    genmodels fit rbm --data digits --hidden 16 --method pcd --k 1
    genmodels fit rbm --data digits --visible gaussian    # grey levels, standardised
    genmodels fit rbm --data digits --resume --out report/

Trains through ``learning.trainer`` with a progress bar and a checkpoint every epoch
(``checkpoint.pt``), holds out a test split, and writes metrics.json (held-out and training
log-likelihood: exact when the hidden layer can be enumerated, else annealed importance
sampling with its standard error), the model, the learning curve of the held-out
log-likelihood, the filters (rows of W as pictures) and long-chain samples.
"""

from __future__ import annotations

import argparse
from typing import Any

import torch

from genmodels._validation import check_data_matrix
from genmodels.cli import Recipe
from genmodels.data import load_dataset
from genmodels.inference.partition import (
    PartitionEstimate,
    ais_log_partition,
    exact_log_partition,
)
from genmodels.learning.contrastive import (
    BoltzmannLearner,
    CDNegative,
    ExactNegative,
    NegativePhase,
    PersistentNegative,
)
from genmodels.learning.trainer import Trainer
from genmodels.models.harmonium import GaussianLayer, Harmonium
from genmodels.reports import Report

#: the most hidden units whose layer is enumerated for an exact log Z (2²⁰ states)
EXACT_HIDDEN = 20


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--hidden", type=int, default=64, help="hidden units H (default 64)")
    p.add_argument("--visible", choices=("bernoulli", "gaussian"), default="bernoulli",
                   help="bernoulli: data binarised at --threshold; gaussian: standardised "
                   "data, unit variances (default bernoulli)")
    p.add_argument("--threshold", type=float, default=None,
                   help="binarise as X > threshold (default: the middle of the data's range, "
                   "8 for digits: X/16 > 0.5)")
    p.add_argument("--method", choices=("pcd", "cd", "exact"), default="cd",
                   help="negative phase: persistent chains, CD-k from the data, or exact "
                   "(small H) (default cd)")
    p.add_argument("--k", type=int, default=1, help="Gibbs sweeps per update (default 1)")
    p.add_argument("--epochs", type=int, default=20, help="passes over the data (default 20)")
    p.add_argument("--batch-size", type=int, default=10, help="minibatch size (default 10)")
    p.add_argument("--lr", type=float, default=None,
                   help="SGD learning rate (default 0.01 bernoulli, 0.002 gaussian)")
    p.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (default 0.9)")
    p.add_argument("--weight-decay", type=float, default=0.0, help="L2 penalty (default 0)")
    p.add_argument("--test-fraction", type=float, default=0.2,
                   help="fraction of the data held out for evaluation (default 0.2)")
    p.add_argument("--ais-chains", type=int, default=100,
                   help="AIS runs for log Z when H > 20 (default 100)")
    p.add_argument("--ais-temperatures", type=int, default=10_000,
                   help="AIS temperatures for the final log Z (default 10000; the learning "
                   "curve uses 300)")
    p.add_argument("--sample-steps", type=int, default=1000,
                   help="Gibbs sweeps of the long chains drawn as samples (default 1000)")
    p.add_argument("--patience", type=int, default=None,
                   help="early stopping on the held-out log-likelihood (default: off)")
    p.add_argument("--resume", action="store_true",
                   help="continue from OUT/checkpoint.pt if it exists")


def _prepare(args: argparse.Namespace) -> tuple[torch.Tensor, dict[str, Any], Any]:
    ds = load_dataset(args.data)
    X = check_data_matrix(ds.X, name=f"data set {args.data!r}", min_samples=4,
                          dtype=torch.float64)
    info: dict[str, Any] = {"visible": args.visible}
    if args.visible == "bernoulli":
        if not bool(((X == 0) | (X == 1)).all()):
            lo, hi = float(X.min()), float(X.max())
            t = args.threshold if args.threshold is not None else (lo + hi) / 2
            X = (X > t).to(torch.float64)
            info["threshold"] = t
    else:
        mean, std = X.mean(0), X.std(0).clamp_min(1e-6)
        X = (X - mean) / std
        info["standardised"] = True
    return X, info, ds


def _log_z(model: Harmonium, args: argparse.Namespace, data: torch.Tensor,
           temperatures: int, seed: int) -> PartitionEstimate:
    if model.hidden.size <= EXACT_HIDDEN:
        with torch.no_grad():
            return exact_log_partition(model)
    return ais_log_partition(model, num_chains=args.ais_chains, num_temperatures=temperatures,
                             data=data if args.visible == "bernoulli" else None, seed=seed)


def _run(args: argparse.Namespace, report: Report) -> dict[str, Any]:
    X, info, ds = _prepare(args)
    if not 0 < args.test_fraction < 1:
        raise ValueError("--test-fraction must be in (0, 1).")
    n, d = X.shape
    gen = torch.Generator().manual_seed(args.seed)
    perm = torch.randperm(n, generator=gen)
    n_test = max(1, round(args.test_fraction * n))
    test, train = X[perm[:n_test]], X[perm[n_test:]]
    visible: dict[str, Any] = {"kind": args.visible, "size": d}
    model = Harmonium(("bernoulli", args.hidden), visible, seed=args.seed)
    model.check_visible(train, "the training data")
    model.to(args.device)
    negative: NegativePhase
    if args.method == "pcd":
        negative = PersistentNegative(model, args.batch_size, args.k, seed=args.seed + 1)
    elif args.method == "cd":
        negative = CDNegative(args.k)
    else:
        negative = ExactNegative()
    learner = BoltzmannLearner(model, negative)
    lr = args.lr if args.lr is not None else (0.01 if args.visible == "bernoulli" else 0.002)
    curve_seed = args.seed + 2

    def held_out_nll(lrn: Any, data: torch.Tensor) -> float:
        with torch.no_grad():
            lz = _log_z(lrn.model, args, train, min(300, args.ais_temperatures),
                        curve_seed).log_z
            return float(lrn.model.free_energy(data).mean() + lz)

    trainer = Trainer(
        learner, epochs=args.epochs, batch_size=args.batch_size, lr=lr, seed=args.seed,
        optimizer=lambda p: torch.optim.SGD(p, lr=lr, momentum=args.momentum,
                                            weight_decay=args.weight_decay, foreach=True),
        checkpoint=report.out / "checkpoint.pt", resume=args.resume,
        val_data=test, val_metric=held_out_nll, patience=args.patience,
        progress=not args.no_progress, device=args.device)
    result = trainer.fit(train)
    est = _log_z(model, args, train, args.ais_temperatures, args.seed + 3)
    with torch.no_grad():
        ll_train = float(-model.free_energy(train).mean() - est.log_z)
        ll_test = float(-model.free_energy(test).mean() - est.log_z)
    metrics: dict[str, Any] = {
        "n_train": int(train.shape[0]), "n_test": int(test.shape[0]), "n_features": d,
        **info, "hidden": args.hidden, "method": args.method, "k": args.k,
        "epochs_run": result.epochs_run, "best_epoch": result.best_epoch,
        "stopped_early": result.stopped_early,
        "log_z": float(est.log_z), "log_z_stderr": float(est.stderr),
        "log_z_method": est.method,
        "train_log_likelihood": ll_train, "test_log_likelihood": ll_test,
        "log_likelihood_stderr": float(est.stderr),
        "learning_curve_test_log_likelihood": [-v for v in result.history["val_metric"]],
    }
    if est.method == "ais":
        metrics["ais"] = {"chains": args.ais_chains, "temperatures": args.ais_temperatures,
                          "ess": float(est.ess) if est.ess is not None else None}
    report.save_model(model)
    report.learning_curve(metrics["learning_curve_test_log_likelihood"],
                          ylabel="held-out log-likelihood per datum"
                          + (" (AIS, 300 temperatures)" if est.method == "ais" else ""),
                          xlabel="epoch")
    if ds.image_shape is not None:
        shape = tuple(ds.image_shape)
        filters = model.weight.detach()[: min(args.hidden, 50)]
        report.image_grid(filters.cpu(), shape, filename="filters.png",
                          title="filters: rows of W (hidden unit → pixels)")
        g = torch.Generator(device=args.device).manual_seed(args.seed + 4)
        state = model.gibbs(test[:20].to(args.device), args.sample_steps, g)
        with torch.no_grad():
            means = model.visible.mean(model.visible_natural(state.x))
            if isinstance(model.visible, GaussianLayer):
                means = means * model.visible.scale  # E[y] = σ E[y/σ]
        report.image_grid(means.cpu(), shape, filename="samples.png",
                          title=f"E[y | x] after {args.sample_steps} Gibbs sweeps from test data")
    return metrics


RBM_RECIPE = Recipe(
    name="rbm",
    help="restricted Boltzmann machine (PCD/CD/exact; exact or AIS log-likelihood, filters)",
    default_data="digits",
    add_arguments=_arguments,
    run=_run,
)
