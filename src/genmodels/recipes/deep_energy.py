"""``genmodels fit helmholtz`` (and the other deep and recurrent harmonium recipes).

    genmodels fit helmholtz --data digits --layers 64 32 --epochs 150 --out report/
    genmodels fit helmholtz --data digits --objective ws        # plain wake–sleep

On ``digits`` the images are the density table's split (``genmodels.data.density_split``:
binarised, 1,437 training and 360 held-out images), so the metrics are comparable with the
README's table; other data are binarised at the middle of their range and split at random.
Each run writes metrics.json (held-out importance-sampled log-likelihood with its standard
error, ELBO), the model, the learning curve and, for images, samples as pictures.
"""

from __future__ import annotations

import argparse
from typing import Any

import torch
from torch import Tensor

from genmodels._validation import check_data_matrix
from genmodels.cli import Recipe
from genmodels.data import density_split, load_dataset
from genmodels.reports import Report


def _binary_data(args: argparse.Namespace) -> tuple[Tensor, Tensor, tuple[int, ...] | None]:
    """(train, test, image_shape) of binary data for the recipes."""
    if args.data == "digits":
        train, test = density_split("binary")
        return train, test, (8, 8)
    ds = load_dataset(args.data)
    X = check_data_matrix(ds.X, name=f"data set {args.data!r}", min_samples=4)
    if not bool(((X == 0) | (X == 1)).all()):
        X = (X >= (X.min() + X.max()) / 2).to(X.dtype)
    perm = torch.randperm(X.shape[0], generator=torch.Generator().manual_seed(args.seed))
    n_test = max(1, round(0.2 * X.shape[0]))
    shape = tuple(ds.image_shape) if ds.image_shape is not None and len(ds.image_shape) == 2 \
        else None
    return X[perm[n_test:]], X[perm[:n_test]], shape


# ----------------------------------------------------------------------------- helmholtz
def _helmholtz_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--layers", type=int, nargs="+", default=[64, 32],
                   help="hidden layer sizes K_1 … K_L, bottom first (default 64 32)")
    p.add_argument("--objective", choices=("rws", "ws"), default="rws",
                   help="reweighted wake–sleep (Bornschein & Bengio 2015) or wake–sleep "
                   "(Hinton et al. 1995); default rws")
    p.add_argument("--samples", type=int, default=10,
                   help="RWS: importance samples per datum in training (default 10)")
    p.add_argument("--epochs", type=int, default=150, help="passes over the data (default 150)")
    p.add_argument("--batch-size", type=int, default=32, help="minibatch size (default 32)")
    p.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate (default 3e-3)")
    p.add_argument("--eval-samples", type=int, default=1000,
                   help="importance samples per held-out datum for log p̂(y) (default 1000)")


def _helmholtz_run(args: argparse.Namespace, report: Report) -> dict[str, Any]:
    from genmodels.learning.wake_sleep import fit_wake_sleep
    from genmodels.models.helmholtz import HelmholtzMachine

    train, test, shape = _binary_data(args)
    model = HelmholtzMachine([train.shape[1], *args.layers], seed=args.seed)
    model.set_base_rates(train).to(args.device)
    result = fit_wake_sleep(model, train, reweighted=args.objective == "rws",
                            n_samples=args.samples, epochs=args.epochs,
                            batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                            checkpoint=report.out / "checkpoint.pt",
                            progress=not args.no_progress, device=args.device)
    g = torch.Generator(device=args.device).manual_seed(args.seed + 1)
    te = test.to(args.device)
    ll, ll_se = model.importance_log_marginal(te, args.eval_samples, g).mean()
    elbo, elbo_se = model.elbo(te, 100, g).mean()
    metrics: dict[str, Any] = {
        "n_train": int(train.shape[0]), "n_test": int(test.shape[0]),
        "layers": [int(train.shape[1]), *args.layers], "objective": args.objective,
        "epochs_run": result.epochs_run,
        "test_log_likelihood_is": ll, "test_log_likelihood_is_stderr": ll_se,
        "test_elbo": elbo, "test_elbo_stderr": elbo_se,
        "eval_samples": args.eval_samples,
        "learning_curve": [-v for v in result.history["train_loss"]],
    }
    report.save_model(model)
    report.learning_curve(metrics["learning_curve"], xlabel="epoch",
                          ylabel=("importance-weighted bound" if args.objective == "rws"
                                  else "one-sample ELBO") + " per datum (train)")
    if shape is not None:
        hs, _ = model.sample(30, g)
        means = torch.sigmoid(model.generative_logits(1, hs[0])).detach()
        report.image_grid(means.cpu(), shape, filename="samples.png",
                          title="samples: E[y | h_1], h ~ p̂ (ancestral)")
    return metrics


HELMHOLTZ_RECIPE = Recipe(
    name="helmholtz",
    help="Helmholtz machine (sigmoid belief net) by (reweighted) wake–sleep",
    default_data="digits",
    add_arguments=_helmholtz_arguments,
    run=_helmholtz_run,
)
