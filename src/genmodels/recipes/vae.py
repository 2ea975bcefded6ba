"""``genmodels fit vae``: a variational autoencoder (book §8.2) on a bundled data set or a file.

    genmodels fit vae --data digits --epochs 50 --out report/
    genmodels fit vae --data digits --recognition gumbel --latent-dim 10 --categories 10
    genmodels fit vae --data wine --likelihood gaussian --latent-dim 2
    genmodels fit vae --data digits --resume --out report/     # continue from the checkpoint

Trains with a progress bar, checkpoints every epoch (``checkpoint.pt`` in the report folder),
holds out a test split, and writes metrics.json (ELBO and importance-weighted log-likelihood
on train and test), the model, the learning curve, and — for image data — samples and
reconstructions.
"""

from __future__ import annotations

import argparse
from typing import Any

import torch

from genmodels._validation import check_data_matrix
from genmodels.cli import Recipe
from genmodels.data import load_dataset
from genmodels.learning.trainer import Trainer
from genmodels.models.vae import VAE
from genmodels.reports import Report


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--latent-dim", type=int, default=8,
                   help="latent dimension K (categorical latents: number of variables); 8")
    p.add_argument("--hidden", type=int, nargs="+", default=[64],
                   help="hidden layer widths (conv: channel width); default 64")
    p.add_argument("--network", choices=("mlp", "conv", "linear"), default="mlp",
                   help="encoder/decoder networks (conv needs image data); default mlp")
    p.add_argument("--recognition", choices=("diagonal", "full", "gumbel", "score"),
                   default="diagonal",
                   help="p̌(x|y): diagonal or full (Cholesky) Gaussian, or categorical latents "
                   "trained by Gumbel-softmax or by the score function; default diagonal")
    p.add_argument("--categories", type=int, default=10,
                   help="categories per latent variable (gumbel/score); default 10")
    p.add_argument("--likelihood", choices=("auto", "bernoulli", "gaussian", "categorical"),
                   default="auto",
                   help="p̂(y|x); auto: bernoulli for images and [0, 1] data (binarised at "
                   "--threshold), else gaussian on standardised data")
    p.add_argument("--threshold", type=float, default=None,
                   help="binarise at this value for a Bernoulli emission (default: the middle "
                   "of the data's range, 8 for digits)")
    p.add_argument("--epochs", type=int, default=50, help="passes over the data (default 50)")
    p.add_argument("--batch-size", type=int, default=64, help="minibatch size (default 64)")
    p.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate (default 3e-3)")
    p.add_argument("--samples", type=int, default=1,
                   help="Monte Carlo samples per datum in the training loss (default 1)")
    p.add_argument("--iw-samples", type=int, default=500,
                   help="importance samples k for the IW log-likelihood (default 500)")
    p.add_argument("--test-fraction", type=float, default=0.15,
                   help="fraction of the data held out for evaluation (default 0.15)")
    p.add_argument("--patience", type=int, default=None,
                   help="early stopping: epochs without improvement of the validation ELBO "
                   "(10%% of the training split) before stopping (default: off)")
    p.add_argument("--resume", action="store_true",
                   help="continue from OUT/checkpoint.pt if it exists")


def _prepare(args: argparse.Namespace) -> tuple[torch.Tensor, str, dict[str, Any], Any]:
    ds = load_dataset(args.data)
    X = check_data_matrix(ds.X, name=f"data set {args.data!r}", min_samples=4,
                          dtype=torch.float32)
    lo, hi = float(X.min()), float(X.max())
    likelihood = args.likelihood
    if likelihood == "auto":
        likelihood = "bernoulli" if ds.image_shape is not None or (lo >= 0 and hi <= 1) \
            else "gaussian"
    info: dict[str, Any] = {"likelihood": likelihood}
    if likelihood == "bernoulli":
        binary = bool(((X == 0) | (X == 1)).all())
        if not binary:
            t = args.threshold if args.threshold is not None else (lo + hi) / 2
            X = (X >= t).to(torch.float32)
            info["threshold"] = t
    elif likelihood == "gaussian":
        mean, std = X.mean(0), X.std(0).clamp_min(1e-6)
        X = (X - mean) / std
        info["standardised"] = True
    else:
        if not bool((X == X.round()).all()) or lo < 0:
            raise ValueError("a categorical emission needs non-negative integer data.")
        info["n_values"] = int(hi) + 1
    return X, likelihood, info, ds


def _run(args: argparse.Namespace, report: Report) -> dict[str, Any]:
    X, likelihood, info, ds = _prepare(args)
    if not 0 < args.test_fraction < 1:
        raise ValueError("--test-fraction must be in (0, 1).")
    n, d = X.shape
    gen = torch.Generator().manual_seed(args.seed)
    perm = torch.randperm(n, generator=gen)
    n_test = max(1, round(args.test_fraction * n))
    test, train = X[perm[:n_test]], X[perm[n_test:]]
    val = None
    if args.patience is not None:
        n_val = max(1, round(0.1 * train.shape[0]))
        val, train = train[:n_val], train[n_val:]
    image_shape = ds.image_shape if ds.image_shape is not None and len(ds.image_shape) == 2 \
        else None
    model = VAE(d, args.latent_dim, hidden=args.hidden, network=args.network,
                recognition=args.recognition, likelihood=likelihood,
                n_categories=args.categories, n_values=info.get("n_values", 2),
                n_samples=args.samples, image_shape=image_shape, seed=args.seed)
    model.to(args.device)
    trainer = Trainer(model, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                      seed=args.seed, checkpoint=report.out / "checkpoint.pt",
                      resume=args.resume, val_data=val, patience=args.patience,
                      progress=not args.no_progress, device=args.device)
    result = trainer.fit(train)
    model.eval()
    ev = torch.Generator(device=args.device).manual_seed(args.seed + 1)
    train_d, test_d = train.to(args.device), test.to(args.device)
    with torch.no_grad():
        metrics: dict[str, Any] = {
            "n_train": int(train.shape[0]),
            "n_test": int(test.shape[0]),
            "n_features": d,
            **info,
            "recognition": args.recognition,
            "network": args.network,
            "latent_dim": args.latent_dim,
            "epochs_run": result.epochs_run,
            "best_epoch": result.best_epoch,
            "stopped_early": result.stopped_early,
            "train_elbo": float(model.elbo(train_d, 10, ev).elbo.mean()),
            "test_elbo": float(model.elbo(test_d, 10, ev).elbo.mean()),
            "test_kl": float(model.elbo(test_d, 10, ev).kl.mean()),
            "test_iw_log_likelihood": float(model.iwae_bound(test_d, args.iw_samples, ev).mean()),
            "iw_samples": args.iw_samples,
            "learning_curve_elbo": [-v for v in result.history["train_loss"]],
        }
    report.save_model(model)
    report.learning_curve(metrics["learning_curve_elbo"], ylabel="ELBO per datum (train, MC)",
                          xlabel="epoch")
    if ds.image_shape is not None and likelihood != "gaussian":
        shape = tuple(ds.image_shape)
        report.image_grid(model.sample(20, ev, mean=True).cpu(), shape, filename="samples.png",
                          title="samples: E[y | x], x ~ prior")
        shown = test_d[:10]
        report.image_grid(torch.cat([shown, model.reconstruct(shown)]).cpu(), shape,
                          filename="reconstructions.png",
                          title="held-out data (top) and reconstructions (bottom)")
    return metrics


VAE_RECIPE = Recipe(
    name="vae",
    help="variational autoencoder (ELBO, importance-weighted log-likelihood, samples)",
    default_data="digits",
    add_arguments=_arguments,
    run=_run,
)
