"""``genmodels fit helmholtz``, ``fit dbn`` and ``fit rtrbm``: deep and recurrent harmoniums.

    genmodels fit helmholtz --data digits --layers 64 32 --epochs 150 --out report/
    genmodels fit helmholtz --data digits --objective ws        # plain wake–sleep
    genmodels fit dbn --data digits --layers 20 64 --fine-tune-epochs 50
    genmodels fit rtrbm --data bouncing_balls --hidden 100 --baseline

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


# ----------------------------------------------------------------------------- dbn
def _dbn_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--layers", type=int, nargs="+", default=[20, 64],
                   help="hidden layer sizes K_1 … K_L, bottom first (default 20 64: the second "
                   "harmonium starts unrolled, Fig 10.2B)")
    p.add_argument("--negative", default="1",
                   help="negative phase of each layer's CD: k for CD-k, or 'pcd' (persistent, "
                   "100 chains) (default 1)")
    p.add_argument("--epochs", type=int, default=100, help="epochs per layer (default 100)")
    p.add_argument("--batch-size", type=int, default=10, help="minibatch size (default 10)")
    p.add_argument("--lr", type=float, default=0.01, help="learning rate (default 0.01)")
    p.add_argument("--momentum", type=float, default=0.9,
                   help="SGD momentum (default 0.9, Hinton 2010 §9); 0 uses Adam instead")
    p.add_argument("--fine-tune-epochs", type=int, default=0,
                   help="epochs of up–down fine-tuning after the greedy stack (default 0)")
    p.add_argument("--ais-chains", type=int, default=100,
                   help="AIS runs for the top harmonium's log Z (default 100)")
    p.add_argument("--ais-temperatures", type=int, default=3000,
                   help="AIS temperatures (default 3000)")
    p.add_argument("--gibbs-steps", type=int, default=1000,
                   help="Gibbs sweeps in the top harmonium per sample (default 1000)")


def _negative_factory(spec: str) -> Any:
    from genmodels.learning.contrastive import CDNegative, PersistentNegative

    if spec == "pcd":
        return lambda rbm: PersistentNegative(rbm, 100)
    try:
        k = int(spec)
    except ValueError as err:
        raise ValueError(f"--negative must be 'pcd' or an integer k, got {spec!r}.") from err
    return lambda _: CDNegative(k)


def _dbn_run(args: argparse.Namespace, report: Report) -> dict[str, Any]:
    from genmodels.inference.partition import ais_log_partition, exact_log_partition
    from genmodels.learning.greedy import UpDown, fit_greedy
    from genmodels.learning.trainer import Trainer
    from genmodels.models.dbn import bernoulli_dbn

    train, test, shape = _binary_data(args)
    dbn = bernoulli_dbn([train.shape[1], *args.layers], seed=args.seed)
    with torch.no_grad():  # the first harmonium's visible biases at the pixels' base rates
        dbn.rbm(0).visible.bias.copy_(dbn.rbm(0).visible.base_rate_bias(train))
    dbn.to(args.device)
    tr, te = train.to(args.device), test.to(args.device)
    opt: Any = None
    if args.momentum > 0:
        def opt(params: Any) -> torch.optim.Optimizer:
            return torch.optim.SGD(params, lr=args.lr, momentum=args.momentum)
    results = fit_greedy(dbn, tr, negative=_negative_factory(args.negative), init="unrolled",
                         epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                         optimizer=opt, seed=args.seed, progress=not args.no_progress,
                         device=args.device)
    metrics: dict[str, Any] = {
        "n_train": int(train.shape[0]), "n_test": int(test.shape[0]),
        "layers": dbn.layer_sizes, "negative": args.negative, "epochs_per_layer": args.epochs,
        "optimizer": f"SGD, momentum {args.momentum}" if args.momentum > 0 else "Adam",
    }
    g = torch.Generator(device=args.device).manual_seed(args.seed + 1)

    def log_z(rbm: Any) -> Any:
        small = min(rbm.hidden.size, rbm.visible.size)
        if small <= 20:
            return exact_log_partition(rbm)
        return ais_log_partition(rbm, num_chains=args.ais_chains,
                                 num_temperatures=args.ais_temperatures, seed=args.seed,
                                 data=tr if rbm is dbn.rbm(0) else None)

    with torch.no_grad():
        lz1 = log_z(dbn.rbm(0))
        metrics["rbm_test_log_likelihood"] = float(dbn.rbm(0).log_prob(te, lz1.log_z).mean())
        metrics["rbm_log_z_method"] = lz1.method
        lzt = log_z(dbn.top)
        bound, se = dbn.lower_bound(te, log_z=lzt, n_samples=100, generator=g).mean()
        metrics.update({"dbn_test_lower_bound": bound, "dbn_test_lower_bound_stderr": se,
                        "top_log_z_method": lzt.method})
    if args.fine_tune_epochs > 0:
        Trainer(UpDown(dbn, k=5), epochs=args.fine_tune_epochs, batch_size=args.batch_size,
                lr=args.lr / 3, seed=args.seed, progress=not args.no_progress,
                device=args.device).fit(tr)
        with torch.no_grad():
            lzt = log_z(dbn.top)
            bound, se = dbn.lower_bound(te, log_z=lzt, n_samples=100, generator=g).mean()
        metrics.update({"fine_tuned_test_lower_bound": bound,
                        "fine_tuned_test_lower_bound_stderr": se})
    metrics["learning_curves_surrogate"] = [r.history["train_loss"] for r in results]
    report.save_model(dbn)
    fig = report.figure("learning_curve.png")
    if fig is not None:
        f, ax = fig
        for l, r in enumerate(results):
            ax.plot(r.history["train_loss"], label=f"layer {l + 1}")
        ax.set_xlabel("epoch")
        ax.set_ylabel("Boltzmann surrogate ⟨F(data)⟩ − ⟨F(negatives)⟩")
        ax.legend()
        report.save_figure(f, "learning_curve.png")
    if shape is not None:
        hs, _ = dbn.sample(30, args.gibbs_steps, g)
        means = dbn.rbm(0).visible.mean(dbn.generative_natural(0, hs[0])).detach()
        report.image_grid(means.cpu(), shape, filename="samples.png",
                          title="samples: Gibbs in the top harmonium, then down; E[y | h_1]")
    return metrics


DBN_RECIPE = Recipe(
    name="dbn",
    help="deep belief net: greedy harmonium stack (CD/PCD), optional up–down fine-tuning",
    default_data="digits",
    add_arguments=_dbn_arguments,
    run=_dbn_run,
)


# ----------------------------------------------------------------------------- rtrbm
def _rtrbm_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--hidden", type=int, default=100, help="hidden units K (default 100)")
    p.add_argument("--sequences", type=int, default=200,
                   help="bouncing_balls: training sequences (default 200; 50 more held out)")
    p.add_argument("--frames", type=int, default=20, help="bouncing_balls: frames (default 20)")
    p.add_argument("--res", type=int, default=15, help="bouncing_balls: pixels per side (15)")
    p.add_argument("--balls", type=int, default=2, help="bouncing_balls: balls (default 2)")
    p.add_argument("--k", type=int, default=1, help="CD-k sweeps per step (default 1)")
    p.add_argument("--epochs", type=int, default=30, help="passes over the data (default 30)")
    p.add_argument("--batch-size", type=int, default=20, help="sequences per batch (20)")
    p.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate (default 3e-3)")
    p.add_argument("--baseline", action="store_true",
                   help="also train a per-frame RBM with the same updates and compare")


def _sequences(args: argparse.Namespace) -> tuple[Tensor, Tensor, tuple[int, int] | None]:
    from genmodels.data.sequences import bouncing_balls

    if args.data != "bouncing_balls":
        raise ValueError(f"fit rtrbm needs sequences: use --data bouncing_balls (the videos of "
                         f"Sutskever et al. 2008), got {args.data!r}.")
    n = args.sequences + 50
    bb = bouncing_balls(n, args.frames, res=args.res, n_balls=args.balls, seed=args.seed)
    V = bb.frames.flatten(2)
    V = torch.bernoulli(V, generator=torch.Generator().manual_seed(args.seed))
    return V[: args.sequences], V[args.sequences:], (args.res, args.res)


def _rtrbm_run(args: argparse.Namespace, report: Report) -> dict[str, Any]:
    from genmodels.learning.contrastive import BoltzmannLearner, CDNegative
    from genmodels.learning.trainer import Trainer
    from genmodels.models.harmonium import BernoulliRBM
    from genmodels.models.temporal import RTRBM, predict_next_frames

    train, test, shape = _sequences(args)
    D, T = train.shape[2], train.shape[1]
    model = RTRBM(D, args.hidden, k=args.k, seed=args.seed).to(args.device)
    tr, te = train.to(args.device), test.to(args.device)
    kw = {"epochs": args.epochs, "lr": args.lr, "seed": args.seed,
          "progress": not args.no_progress, "device": args.device}
    result = Trainer(model, batch_size=args.batch_size, **kw).fit(tr)
    g = torch.Generator(device=args.device).manual_seed(args.seed + 1)
    pred = model.predict_next(te, generator=g)
    err = float(((pred - te[:, 1:]) ** 2).sum(-1).mean())
    metrics: dict[str, Any] = {
        "n_train_sequences": int(train.shape[0]), "n_test_sequences": int(test.shape[0]),
        "frames": T, "pixels": D, "hidden": args.hidden,
        "next_frame_squared_error": err,
        "copy_last_frame_squared_error": float(((te[:, :-1] - te[:, 1:]) ** 2).sum(-1).mean()),
        "learning_curve_surrogate": result.history["train_loss"],
    }
    if args.baseline:
        rbm = BernoulliRBM(D, args.hidden, seed=args.seed).to(args.device)
        Trainer(BoltzmannLearner(rbm, CDNegative(args.k)), batch_size=args.batch_size * T,
                **kw).fit(tr.flatten(0, 1))
        base = predict_next_frames(rbm, te[:, :-1], generator=g)
        metrics["rbm_next_frame_squared_error"] = float(((base - te[:, 1:]) ** 2).sum(-1).mean())
    report.save_model(model)
    report.learning_curve(metrics["learning_curve_surrogate"], xlabel="epoch",
                          ylabel="CD surrogate per frame (train)")
    if shape is not None:
        film = model.sample_sequence(2, 10, gibbs_steps=100, generator=g)
        report.image_grid(film.flatten(0, 1).cpu(), shape, filename="samples.png",
                          title="two sampled sequences (rows), frames left to right")
        strip = torch.cat([te[0, 1:11], pred[0, :10]])
        report.image_grid(strip.cpu(), shape, filename="predictions.png",
                          title="held-out frames 2–11 (top) and one-step predictions (bottom)")
    return metrics


RTRBM_RECIPE = Recipe(
    name="rtrbm",
    help="recurrent temporal RBM (CD + BPTT) on bouncing balls; samples as a film strip",
    default_data="bouncing_balls",
    add_arguments=_rtrbm_arguments,
    run=_rtrbm_run,
)
