"""``genmodels fit fa`` and ``genmodels fit pca``: factor analysis (EM, book §7.3) and PCA
(closed form or EM, §7.3.1) on a bundled data set or a file.

    genmodels fit fa --data digits --components 10 --out report/
    genmodels fit pca --data digits --components 0.9 --out report/
    genmodels fit pca --data digits --components 10 --method em --out report/
"""

from __future__ import annotations

import argparse
from typing import Any

import torch

from genmodels._validation import check_data_matrix, make_generator
from genmodels.cli import Recipe
from genmodels.data import load_dataset
from genmodels.learning.em import run_em
from genmodels.models.factor_analysis import EMPCA, FactorAnalyzer, fit_ppca, pca
from genmodels.models.linear_gaussian import GaussianMoments
from genmodels.reports import Report


def _load(args: argparse.Namespace) -> tuple[Any, torch.Tensor]:
    ds = load_dataset(args.data)
    X = check_data_matrix(ds.X, name=f"data set {args.data!r}", min_samples=2,
                          dtype=torch.float64, device=args.device)
    return ds, X


def _fa_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--components", type=int, default=10, help="number of factors K (default 10)")
    p.add_argument("--max-iter", type=int, default=1000, help="EM iterations at most (1000)")
    p.add_argument("--tol", type=float, default=1e-2,
                   help="stop when the total log-likelihood changes by less (default 1e-2)")


def _fa_run(args: argparse.Namespace, report: Report) -> dict[str, Any]:
    ds, X = _load(args)
    n, d = X.shape
    if not 1 <= args.components <= d:
        raise ValueError(f"--components must be between 1 and {d} for this data set.")
    mean = X.mean(0)
    moments = GaussianMoments.from_data(X - mean)
    model = FactorAnalyzer(d, args.components).to(X.device)
    model.initialize(moments, make_generator(args.seed, X.device))
    result = run_em(model, [moments], max_iter=args.max_iter, tol=args.tol, per_datum=False,
                    frozen={"mean"}, progress=not args.no_progress)
    model.mean = mean
    shared = float(model.loadings.square().sum())
    total = float(moments.scatter().diagonal().sum()) / n
    report.save_model(model)
    report.learning_curve([v / n for v in result.log_likelihood])
    if ds.image_shape is not None:
        report.image_grid(model.loadings.mT, ds.image_shape, filename="factors.png",
                          title="factor loadings (columns of C)")
    return {
        "n_samples": n,
        "n_features": d,
        "n_components": args.components,
        "log_likelihood": float(model.log_marginal(X).mean()),
        "explained_variance": shared / total,
        "n_iter": result.n_iter,
        "converged": result.converged,
        "learning_curve": [v / n for v in result.log_likelihood],
    }


def _pca_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--components", type=float, default=10,
                   help="number of components, or a fraction in (0, 1) of the variance to keep "
                   "(default 10)")
    p.add_argument("--method", choices=("svd", "em"), default="svd",
                   help="closed form (svd) or EM in the zero-noise limit (em); default svd")
    p.add_argument("--max-iter", type=int, default=500, help="EM iterations at most (500)")
    p.add_argument("--tol", type=float, default=1e-8,
                   help="EM: stop when the reconstruction objective per datum changes by less")


def _pca_run(args: argparse.Namespace, report: Report) -> dict[str, Any]:
    ds, X = _load(args)
    n, d = X.shape
    full = pca(X)
    ratio = full.explained_variance / full.explained_variance.sum()
    cumulative = torch.cumsum(ratio, 0)
    if 0 < args.components < 1:
        k = int(torch.searchsorted(cumulative, torch.tensor(args.components, dtype=X.dtype,
                                                            device=X.device), right=True)) + 1
    elif float(args.components).is_integer() and 1 <= args.components < min(n, d):
        k = int(args.components)
    else:
        raise ValueError(f"--components must be a fraction in (0, 1) or an integer between 1 and "
                         f"{min(n, d) - 1} for this data set.")
    k = min(k, min(n, d) - 1)
    n_iter = 0
    model: Any
    if args.method == "svd":
        model = fit_ppca(X, k)  # Tipping & Bishop: PCA plus the ML isotropic noise
        components = full.components[:k]
        curve = cumulative.tolist()
        report.learning_curve(curve, ylabel="cumulative explained variance ratio",
                              xlabel="number of components")
        log_likelihood = float(model.log_marginal(X).mean())
    else:
        model = EMPCA(d, k).to(X.device)
        model.initialize(X, make_generator(args.seed, X.device))
        moments = GaussianMoments.from_data(X)
        result = run_em(model, [moments], max_iter=args.max_iter, tol=args.tol,
                        progress=not args.no_progress)
        n_iter = result.n_iter
        components, _ = model.principal_components(moments)
        curve = list(result.log_likelihood)
        report.learning_curve(curve, ylabel="−½ squared reconstruction error per datum")
        log_likelihood = float(fit_ppca(X, k).log_marginal(X).mean())
    report.save_model(model)
    if ds.image_shape is not None:
        report.image_grid(components, ds.image_shape, filename="components.png",
                          title="principal components")
    return {
        "n_samples": n,
        "n_features": d,
        "n_components": k,
        "method": args.method,
        "log_likelihood": log_likelihood,
        "explained_variance": float(cumulative[k - 1]),
        "explained_variance_ratio": ratio[:k].tolist(),
        "n_iter": n_iter,
        "learning_curve": curve,
    }


FA = Recipe(
    name="fa",
    help="factor analysis by EM (book §7.3): loadings, noise variances, posterior factors",
    default_data="digits",
    add_arguments=_fa_arguments,
    run=_fa_run,
)

PCA = Recipe(
    name="pca",
    help="principal components (closed form, or EM as the zero-noise limit of FA, §7.3.1)",
    default_data="digits",
    add_arguments=_pca_arguments,
    run=_pca_run,
)
