"""``genmodels fit sparse-coding``: a sparse-coding dictionary (book §2.1.3, §8.1.1) learned on
whitened natural-image patches (or any data set / file).

    genmodels fit sparse-coding --data images --components 128 --alpha 2 --out report/
    genmodels fit sparse-coding --data images --algorithm em --lam 100 --out report/

With ``--data images`` the patches come from ``genmodels.data.images`` (the photographs that ship
with scikit-learn and scikit-image), and the report also holds their radially averaged power
spectrum with its power-law fit (spectrum.png) and the whitening filter (whitening.png).
Writes the dictionary as a grid of pictures (dictionary.png), the learning curve, metrics
(objective, sparsity, Laplace evidence per datum, how localised and oriented the atoms are) and
the fitted ``SparseCodingModel``.
"""

from __future__ import annotations

import argparse
import math
from typing import Any

import torch

from genmodels._validation import check_data_matrix, make_generator
from genmodels.cli import Recipe
from genmodels.data import load_dataset
from genmodels.data.images import (
    atom_localisation,
    atom_orientation_selectivity,
    fit_power_law,
    natural_images,
    power_spectrum,
    radial_average,
    whitened_patches,
    whitening_filter,
)
from genmodels.inference.lasso import lasso
from genmodels.models.sparse_coding import (
    SparseCodingModel,
    fit_lewicki_olshausen,
    fit_map_dictionary,
    fit_sparse_coding_em,
)
from genmodels.reports import Report


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--components", type=int, default=128,
                   help="number of atoms K (default 128: 2× over-complete for 8×8 patches)")
    p.add_argument("--alpha", type=float, default=2.0, help="Laplace rate α (default 2)")
    p.add_argument("--lam", type=float, default=1.0,
                   help="emission precision λ (default 1; the MAP objective uses α/λ)")
    p.add_argument("--beta", type=float, default=10.0,
                   help="cosh sharpness β of the Laplace prior's curvature (default 10)")
    p.add_argument("--algorithm", choices=("map", "em", "lewicki-olshausen"), default="map",
                   help="MAP alternation with unit-norm atoms (map), the book's EM (em) or the "
                   "classical Laplace-marginal ascent (lewicki-olshausen); default map")
    p.add_argument("--max-iter", type=int, default=5, help="passes / iterations (default 5)")
    p.add_argument("--batch-size", type=int, default=256, help="minibatch size (default 256)")
    p.add_argument("--patch-size", type=int, default=8, help="images: patch side (default 8)")
    p.add_argument("--n-patches", type=int, default=20_000,
                   help="images: number of patches (default 20,000)")


def _spectrum_plots(report: Report) -> dict[str, Any]:
    imgs = natural_images()
    f, P = radial_average(power_spectrum([im / im.std() for im in imgs], 128))
    fit = fit_power_law(f, P, f_min=0.02, f_max=0.25)
    made = report.figure("spectrum.png")
    if made is not None:
        fig, ax = made
        ax.loglog(f.numpy(), P.numpy(), ".", label="radial average")
        ax.loglog(f.numpy(), (math.exp(fit.log_amplitude) * f.pow(fit.exponent)).numpy(),
                  label=f"fit: P ∝ f^{fit.exponent:.2f}")
        ax.set_xlabel("spatial frequency (cycles/pixel)")
        ax.set_ylabel("power")
        ax.legend()
        report.save_figure(fig, "spectrum.png")
    made = report.figure("whitening.png")
    if made is not None:
        fig, ax = made
        filt = whitening_filter(128, 128, fit)
        fr = torch.fft.fftfreq(128, dtype=torch.float64)
        ax.plot(fr[:64].numpy(), filt[0, :64].numpy())
        ax.set_xlabel("spatial frequency (cycles/pixel)")
        ax.set_ylabel("gain 1/√P(f)")
        ax.set_title("whitening filter")
        report.save_figure(fig, "whitening.png")
    return {"spectrum_exponent": fit.exponent, "spectrum_fit_residual": fit.residual_std}


def _run(args: argparse.Namespace, report: Report) -> dict[str, Any]:
    metrics: dict[str, Any] = {}
    if args.data == "images":
        ds, _ = whitened_patches(args.patch_size, args.n_patches, seed=args.seed)
        metrics.update(_spectrum_plots(report))
    else:
        ds = load_dataset(args.data)
    Y = check_data_matrix(ds.X, name=f"data set {args.data!r}", min_samples=2,
                          dtype=torch.float64)
    N, M = Y.shape
    K = args.components
    if K < 1:
        raise ValueError("--components must be at least 1.")
    g = make_generator(args.seed)
    C0 = torch.randn(M, K, generator=g, dtype=Y.dtype)
    C0 = C0 / C0.norm(dim=0)
    model = SparseCodingModel(M, K, alpha=args.alpha, beta=args.beta, lam=args.lam)
    model.set_dictionary(C0)
    if args.algorithm == "map":
        res = fit_map_dictionary(Y, C0, args.alpha, lam=args.lam, batch_size=args.batch_size,
                                 max_iter=args.max_iter, tol=1e-4, seed=args.seed)
        model.set_dictionary(res.dictionary)
        curve = res.objective
        ylabel = "½‖y − Cx̂‖² + (α/λ)|x̂| per datum"
    elif args.algorithm == "em":
        curve = [-v for v in fit_sparse_coding_em(model, Y, max_iter=args.max_iter,
                                                  batch_size=args.batch_size, warn=False)]
        ylabel = "JRE per datum (Eq. 8.8)"
    else:
        curve = [-v for v in fit_lewicki_olshausen(model, Y, n_iter=args.max_iter,
                                                   batch_size=args.batch_size,
                                                   learning_rate=0.01, seed=args.seed)]
        ylabel = "−log p̂(y) per datum (Laplace, Eq. 2.34)"
    report.learning_curve(curve, ylabel=ylabel)
    report.save_model(model)
    C = model.dictionary
    atoms = C.mT
    if ds.image_shape is not None:
        report.image_grid(atoms[: min(K, 100)], ds.image_shape, filename="dictionary.png",
                          title="dictionary atoms (columns of C)")
        shape = (int(ds.image_shape[0]), int(ds.image_shape[1]))
        metrics["atom_localisation_median"] = float(atom_localisation(atoms, shape).median())
        metrics["atom_orientation_median"] = float(
            atom_orientation_selectivity(atoms, shape).median())
    sub = Y[: min(N, 2000)]
    codes = lasso(sub, C, args.lam, args.alpha).codes
    metrics.update({
        "n_samples": N,
        "n_features": M,
        "n_components": K,
        "algorithm": args.algorithm,
        "mean_nonzeros": float((codes != 0).sum(1).double().mean()),
        "laplace_log_evidence": float(model.log_marginal(sub).mean()),
        "final_objective": curve[-1] if curve else float("nan"),
        "learning_curve": curve,
    })
    return metrics


SPARSE_CODING_RECIPE = Recipe(
    name="sparse-coding",
    help="sparse coding (book §2.1.3, §8.1): a dictionary of natural-image patches by MAP, EM "
    "or Lewicki–Olshausen learning",
    default_data="images",
    add_arguments=_arguments,
    run=_run,
)
