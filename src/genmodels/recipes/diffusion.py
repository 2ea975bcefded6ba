"""``genmodels fit diffusion``: a Gaussian diffusion model (book §8.3) on digits, a 2-D toy
mixture or a file.

    genmodels fit diffusion --data digits --epochs 300 --out report/
    genmodels fit diffusion --data pinwheel --epochs 200       # a 2-D toy (also moons,
                                                               # checkerboard)
    genmodels fit diffusion --data digits --schedule cosine --weighting elbo --network conv

On integer data (digits' 17 grey levels) the images are scaled to [−1, 1] and the model is
scored by its ELBO with the discretised decoder (Ho et al. 2020) in held-out **bits/dim** — on
digits the density table's held-out split (``genmodels.data.density_split("grey")``). On real-
valued data the data are standardised and the ELBO uses a Gaussian decoder; on 2-D data the
samples' energy distance to held-out data is reported beside a Gaussian mixture's.

Writes metrics.json, the model (model/), learning_curve.png, samples.png, the denoising chain
as a film strip (chain.png), and for 2-D data a scatter of samples against the data.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from genmodels._validation import check_data_matrix
from genmodels.cli import Recipe
from genmodels.data import density_split, load_dataset
from genmodels.reports import Report

__all__ = ["DIFFUSION_RECIPE", "TOYS", "PreparedData", "checkerboard", "default_args",
           "fit_diffusion", "pinwheel", "prepare_data", "scale_data", "two_moons"]


def pinwheel(n: int, *, arms: int = 5, radial_std: float = 0.3, tangential_std: float = 0.1,
             rate: float = 0.25, seed: int = 0) -> Tensor:
    """A 2-D mixture of ``arms`` warped Gaussians (Johnson et al. 2016's pinwheel): each arm a
    Gaussian at radius 1 bent by a rotation growing with the radius. (n, 2) float64."""
    g = torch.Generator().manual_seed(seed)
    k = torch.randint(0, arms, (n,), generator=g)
    feats = torch.randn(n, 2, generator=g, dtype=torch.float64) * \
        torch.tensor([radial_std, tangential_std], dtype=torch.float64)
    feats[:, 0] += 1.0
    angle = 2 * math.pi * k / arms + rate * torch.exp(feats[:, 0])
    c, s = torch.cos(angle), torch.sin(angle)
    x = torch.stack([c * feats[:, 0] - s * feats[:, 1], s * feats[:, 0] + c * feats[:, 1]], 1)
    return 2 * x


def two_moons(n: int, *, noise: float = 0.05, seed: int = 0) -> Tensor:
    """Two interleaved half circles of radius 1 (scikit-learn's ``make_moons`` layout), each
    point on a uniformly drawn angle, plus N(0, noise²) per coordinate. (n, 2) float64."""
    g = torch.Generator().manual_seed(seed)
    upper = torch.rand(n, generator=g) < 0.5
    theta = math.pi * torch.rand(n, generator=g, dtype=torch.float64)
    x = torch.where(upper[:, None], torch.stack([theta.cos(), theta.sin()], 1),
                    torch.stack([1 - theta.cos(), 0.5 - theta.sin()], 1))
    return x + noise * torch.randn(n, 2, generator=g, dtype=torch.float64)


def checkerboard(n: int, *, squares: int = 4, seed: int = 0) -> Tensor:
    """Uniform on the dark squares of a ``squares`` × ``squares`` board of unit squares
    centred at the origin (half the board's area): a density with edges no Gaussian mixture
    has. (n, 2) float64."""
    g = torch.Generator().manual_seed(seed)
    dark = torch.tensor([(c, r) for c in range(squares) for r in range(squares)
                         if (c + r) % 2 == 0], dtype=torch.float64)  # (squares²/2, 2)
    corner = dark[torch.randint(0, dark.shape[0], (n,), generator=g)]
    return corner + torch.rand(n, 2, generator=g, dtype=torch.float64) - squares / 2


TOYS: dict[str, Callable[..., Tensor]] = {"pinwheel": pinwheel, "moons": two_moons,
                                          "checkerboard": checkerboard}


class PreparedData:
    """Training and held-out data on the model's scale.

    train, test: (N, D) tensors; levels: K grey levels for integer data (scaled to [−1, 1]) or
    None; image_shape: for pictures; to_data: the map back to the data's own scale.
    """

    def __init__(self, train: Tensor, test: Tensor, levels: int | None,
                 image_shape: tuple[int, ...] | None, shift: Tensor, scale: Tensor,
                 source: str) -> None:
        self.train, self.test, self.levels = train, test, levels
        self.image_shape, self.shift, self.scale, self.source = image_shape, shift, scale, source

    def to_data(self, x: Tensor) -> Tensor:
        return x * self.scale.to(x) + self.shift.to(x)


def prepare_data(name: str, *, test_fraction: float = 0.2, seed: int = 0,
                 centre_integers: bool = True) -> tuple[Tensor, Tensor, int | None,
                                                       tuple[int, ...] | None, str]:
    """(train, test, levels K or None, image_shape, source) on the data's own scale.

    digits: the density table's grey split (0..16, K = 17); a 2-D toy: 5,000 draws, 20% held
    out; other data: a seeded split; non-negative integer data get K = max + 1 levels.
    """
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}.")
    if name == "digits":
        train, test = density_split("grey")
        return train, test, 17, (8, 8), "density_split('grey')"
    if name in TOYS:
        X = TOYS[name](5000, seed=seed)
        image_shape = None
    else:
        ds = load_dataset(name)
        X = check_data_matrix(ds.X, name=f"data set {name!r}", min_samples=4,
                              dtype=torch.float64)
        image_shape = tuple(ds.image_shape) if ds.image_shape is not None \
            and len(ds.image_shape) == 2 else None
    perm = torch.randperm(X.shape[0], generator=torch.Generator().manual_seed(seed))
    n_test = max(1, round(test_fraction * X.shape[0]))
    test, train = X[perm[:n_test]], X[perm[n_test:]]
    integer = bool((X == X.round()).all()) and float(X.min()) >= 0 and float(X.max()) >= 1
    levels = int(X.max()) + 1 if integer and centre_integers else None
    return train, test, levels, image_shape, f"seeded {1 - test_fraction:.0%} split"


def default_args(**overrides: Any) -> argparse.Namespace:
    """The recipe's default options (as ``genmodels fit diffusion`` parses them), overridden
    by keyword: for programmatic use such as the density table."""
    p = argparse.ArgumentParser()
    _arguments(p)
    args = p.parse_args([])
    args.seed, args.device, args.no_progress = 0, "cpu", True
    vars(args).update(overrides)
    return args


def _scaled(name: str, args: argparse.Namespace) -> PreparedData:
    train, test, levels, shape, source = prepare_data(name, test_fraction=args.test_fraction,
                                                      seed=args.seed)
    return scale_data(train, test, levels, shape, source)


def scale_data(train: Tensor, test: Tensor, levels: int | None,
               shape: tuple[int, ...] | None = None, source: str = "") -> PreparedData:
    """The model's scale: K grey levels → the grid −1..1 of the discretised decoder;
    real-valued data standardised by the training mean and standard deviation."""
    if levels is not None:  # x ∈ {0..K−1} → [−1, 1], the decoder's grid
        half = (levels - 1) / 2
        shift, scale = torch.tensor(half), torch.tensor(half)
    else:
        shift, scale = train.mean(0), train.std(0).clamp_min(1e-6)
    return PreparedData(((train - shift) / scale).float(), ((test - shift) / scale).float(),
                        levels, shape, shift, scale, source)


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--network", choices=("auto", "mlp", "conv"), default="auto",
                   help="denoiser: MLP with a time embedding, or the small conv net for 8×8 "
                   "images (auto: mlp)")
    p.add_argument("--hidden", type=int, default=None,
                   help="MLP width / conv channels (default 256 / 32; 128 on 2-D data)")
    p.add_argument("--layers", type=int, default=3, help="residual blocks (default 3)")
    p.add_argument("--levels", type=int, default=1000, help="diffusion steps L (default 1000)")
    p.add_argument("--schedule", choices=("linear", "cosine"), default="linear",
                   help="noise schedule (default linear)")
    p.add_argument("--beta-start", type=float, default=None,
                   help="linear schedule's first β (default 1e-4·1000/L, Ho et al.); on coarse "
                   "grey levels a larger β_1 lets the discretised decoder take over sooner")
    p.add_argument("--beta-end", type=float, default=None,
                   help="linear schedule's last β (default 0.02·1000/L)")
    p.add_argument("--parameterisation", choices=("eps", "x0", "v"), default="eps",
                   help="what the denoiser predicts (default eps)")
    p.add_argument("--weighting", choices=("simple", "elbo", "book"), default="simple",
                   help="loss weighting: Ho et al.'s simple, the ELBO's (Eq. 8.40) or the book's "
                   "SNR decrements (Eq. 8.41); default simple")
    p.add_argument("--reverse-variance", choices=("posterior", "transition"),
                   default="transition", help="σ_l² of the reverse steps (default transition)")
    p.add_argument("--epochs", type=int, default=300, help="passes over the data (default 300)")
    p.add_argument("--batch-size", type=int, default=128, help="minibatch size (default 128)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    p.add_argument("--sampler", choices=("ancestral", "ddim"), default="ancestral",
                   help="sampler for the pictures (default ancestral)")
    p.add_argument("--ddim-steps", type=int, default=100, help="DDIM steps (default 100)")
    p.add_argument("--n-samples", type=int, default=40, help="samples drawn (default 40)")
    p.add_argument("--test-fraction", type=float, default=0.2,
                   help="held-out fraction (not for digits, which uses the density split)")
    p.add_argument("--resume", action="store_true",
                   help="continue from OUT/checkpoint.pt if it exists")


def build_model(d: int, args: argparse.Namespace, image_shape: tuple[int, ...] | None) -> Any:
    from genmodels.models.denoisers import ConvDenoiser, MLPDenoiser
    from genmodels.models.diffusion import GaussianDiffusion, GaussianSchedule

    network = args.network if args.network != "auto" else "mlp"
    if network == "conv":
        if image_shape is None or len(image_shape) != 2:
            raise ValueError("--network conv needs image data (e.g. --data digits).")
        net: Any = ConvDenoiser(image_shape, args.hidden or 32, args.layers, seed=args.seed)
    else:
        net = MLPDenoiser(d, args.hidden or (128 if d <= 4 else 256), args.layers,
                          seed=args.seed)
    sched = GaussianSchedule.linear(args.levels, getattr(args, "beta_start", None),
                                    getattr(args, "beta_end", None)) \
        if args.schedule == "linear" else GaussianSchedule.cosine(args.levels)
    return GaussianDiffusion(net, sched, args.parameterisation, weighting=args.weighting,
                             reverse_variance=args.reverse_variance)


def fit_diffusion(data: PreparedData, args: argparse.Namespace, report: Report | None = None
                  ) -> tuple[Any, dict[str, Any]]:
    """Train the model of ``args`` on ``data.train``; returns (model, metrics) with the
    held-out ELBO (bits/dim on integer data)."""
    from genmodels.learning.trainer import Trainer

    d = data.train.shape[1]
    model = build_model(d, args, data.image_shape).to(args.device)
    trainer = Trainer(model, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                      seed=args.seed,
                      checkpoint=None if report is None else report.out / "checkpoint.pt",
                      resume=getattr(args, "resume", False),
                      progress=not getattr(args, "no_progress", True), device=args.device)
    result = trainer.fit(data.train.to(args.device))
    model.eval()
    gen = torch.Generator(device=args.device).manual_seed(args.seed + 1)
    test = data.test.to(args.device)
    res = model.elbo(test, levels_of_data=data.levels, generator=gen)
    n = test.shape[0]
    metrics: dict[str, Any] = {
        "n_train": int(data.train.shape[0]), "n_test": n, "n_features": d,
        "split": data.source, "levels_of_data": data.levels, "diffusion_levels": args.levels,
        "schedule": args.schedule, "parameterisation": args.parameterisation,
        "weighting": args.weighting, "reverse_variance": args.reverse_variance,
        "network": type(model.denoiser).__name__,
        "n_parameters": sum(p.numel() for p in model.parameters()),
        "epochs_run": result.epochs_run,
        "learning_curve_loss": result.history["train_loss"],
        "test_elbo_nats": float(res.elbo.mean()),
        "test_elbo_nats_stderr": float(res.elbo.std() / math.sqrt(n)),
        "test_prior_kl_nats": float(res.prior.mean()),
        "test_decoder_nats": float(res.decoder.mean()),
    }
    if data.levels is not None:
        metrics["test_bits_per_dim"] = float(res.bits_per_dim.mean())
        metrics["test_bits_per_dim_stderr"] = float(res.bits_per_dim.std() / math.sqrt(n))
    else:  # a density in the data's own units: add log|det| of the standardisation
        log_scale = float(data.scale.log().sum())
        metrics["test_elbo_nats_data_units"] = metrics["test_elbo_nats"] - log_scale
    return model, metrics


def _film_strip(report: Report, levels: list[int], states: Tensor, data: PreparedData,
                sampler: str) -> None:
    out = report.figure("chain.png")
    if out is None or data.image_shape is None:
        return
    fig, _ = out
    fig.clf()
    if states.shape[0] > 11:  # at most 11 frames, evenly spaced, the last included
        keep = torch.linspace(0, states.shape[0] - 1, 11).round().long()
        states, levels = states[keep], [levels[int(i)] for i in keep]
    rows, cols = states.shape[1], states.shape[0]
    fig.set_size_inches(1.0 * cols, 1.05 * rows + 0.3)
    axes = fig.subplots(rows, cols, squeeze=False)
    for j in range(cols):
        for i in range(rows):
            ax = axes[i][j]
            ax.axis("off")
            img = data.to_data(states[j, i].clamp(-1.5, 1.5)).reshape(data.image_shape)
            lo, hi = data.to_data(torch.tensor([-1.0, 1.0])).tolist() \
                if data.levels is not None else (None, None)
            ax.imshow(img.cpu().numpy(), cmap="gray_r", vmin=lo, vmax=hi)
            if i == 0:
                ax.set_title(f"l={levels[j]}", fontsize=7)
    fig.suptitle(f"denoising chain x_L → x_0 ({sampler} sampling)")
    report.save_figure(fig, "chain.png")


def _scatter(report: Report, samples: Tensor, test: Tensor, filename: str, title: str) -> None:
    out = report.figure(filename)
    if out is None:
        return
    fig, ax = out
    ax.scatter(test[:, 0], test[:, 1], s=2, alpha=0.4, label="held-out data")
    ax.scatter(samples[:, 0], samples[:, 1], s=2, alpha=0.4, label="model samples")
    ax.set_aspect("equal")
    ax.legend(markerscale=4)
    ax.set_title(title)
    report.save_figure(fig, filename)


def gmm_baseline(train: Tensor, test: Tensor, n_params: int, seed: int, n: int) -> dict[str, Any]:
    """A full-covariance Gaussian mixture with (about) the same parameter budget, capped at
    N/20 components; its samples' energy distance to the held-out data."""
    from genmodels import GaussianMixture
    from genmodels.learning.score_matching import energy_distance

    d = train.shape[1]
    per = d + d * (d + 1) // 2 + 1
    k = max(1, min(n_params // per, train.shape[0] // 20))
    gm = GaussianMixture(k, covariance_type="full", random_state=seed).fit(train.double())
    draws = torch.as_tensor(gm.sample(n)[0], dtype=torch.float64)
    return {"gmm_components": k, "gmm_parameters": k * per - 1,
            "gmm_energy_distance": float(energy_distance(draws, test.double()))}


def _run(args: argparse.Namespace, report: Report) -> dict[str, Any]:
    from genmodels.learning.score_matching import energy_distance

    data = _scaled(args.data, args)
    model, metrics = fit_diffusion(data, args, report)
    report.save_model(model)
    report.learning_curve(metrics["learning_curve_loss"], xlabel="epoch",
                          ylabel=f"training loss ({args.weighting})")
    gen = torch.Generator(device=args.device).manual_seed(args.seed + 2)
    d = data.train.shape[1]
    kw: dict[str, Any] = {"sampler": args.sampler, "steps": args.ddim_steps,
                          "generator": gen, "device": args.device}
    if data.image_shape is not None:
        x0, levels, states = model.sample(args.n_samples, (d,), return_chain=True, **kw)
        imgs = data.to_data(x0.clamp(-1, 1)).cpu()
        report.image_grid(imgs, data.image_shape, filename="samples.png",
                          title=f"samples ({args.sampler})")
        _film_strip(report, levels, states[:, :8], data, args.sampler)
    if d == 2:
        n = min(2000, data.test.shape[0] * 2)
        x0 = model.sample(n, (2,), **kw).cpu().double()
        samples, test = data.to_data(x0), data.to_data(data.test.double())
        metrics["energy_distance"] = float(energy_distance(samples, test))
        train = data.to_data(data.train.double())
        metrics.update(gmm_baseline(train, test, metrics["n_parameters"], args.seed, n))
        _scatter(report, samples, test, "samples.png", "diffusion samples vs held-out data")
    return metrics


DIFFUSION_RECIPE = Recipe(
    name="diffusion",
    help="Gaussian diffusion model (held-out ELBO in bits/dim, samples, denoising chain)",
    default_data="digits",
    add_arguments=_arguments,
    run=_run,
)
