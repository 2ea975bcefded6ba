"""``genmodels fit gmm | kmeans | lda | qda``: mixtures and Gaussian classifiers on real data.

    genmodels fit gmm --data digits --components 10 --out report/
    genmodels fit kmeans --data iris --clusters 3
    genmodels fit lda --data wine
    genmodels fit qda --data digits --reg-param 0.05

gmm: a Gaussian mixture fitted by EM (§7.1) on a fixed 80/20 split of the data. Writes
metrics.json (train/test log-likelihood per sample, BIC, AIC, iterations, convergence, and for
labelled data the adjusted Rand index of the clusters against the labels), the model (model/,
checked to load back identically), learning_curve.png, and for image data means.png (each
component's mean as a picture, with its weight) and samples.png (draws from the model).

kmeans: K-means (§7.1.1) with k-means++ starts; inertia, ARI, centres as pictures; the model
saved as the equal-weight, shared-spherical-variance Gaussian mixture (``kmeans_as_mixture``).
lda / qda: Gaussian class-conditionals from the labels (Eqs. 2.8–2.9) on a fixed 75/25 split;
train and test accuracy, class means as pictures.
"""

from __future__ import annotations

import argparse
import math
from typing import Any

import torch
from torch import Tensor

from genmodels._validation import (
    check_choice,
    check_nonnegative_float,
    check_positive_int,
    make_generator,
)
from genmodels.cli import Recipe
from genmodels.data import Dataset, load_dataset
from genmodels.io import load
from genmodels.learning.em import fit_em
from genmodels.learning.kmeans import kmeans
from genmodels.models.covariance import GaussianEmission
from genmodels.models.mixture import MixtureModel
from genmodels.reports import Report

COVARIANCES = ("full", "diag", "spherical", "tied")


def adjusted_rand_index(a: Tensor, b: Tensor) -> float:
    """Adjusted Rand index of two labelings (Hubert & Arabie 1985): 1 for identical
    partitions, about 0 for independent ones. a, b: (N,) integer labels."""
    _, ia = torch.unique(a, return_inverse=True)
    _, ib = torch.unique(b, return_inverse=True)
    table = torch.zeros(int(ia.max()) + 1, int(ib.max()) + 1, dtype=torch.float64)
    table.index_put_((ia.cpu(), ib.cpu()), torch.ones(len(a), dtype=torch.float64),
                     accumulate=True)

    def pairs(x: Tensor) -> Tensor:
        return (x * (x - 1) / 2).sum()

    n = float(len(a))
    index = pairs(table)
    rows, cols = pairs(table.sum(1)), pairs(table.sum(0))
    expected = rows * cols / (n * (n - 1) / 2)
    top = 0.5 * (rows + cols)
    if float(top - expected) == 0.0:
        return 1.0
    return float((index - expected) / (top - expected))


def _split(n: int, test_fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    perm = torch.randperm(n, generator=make_generator(seed))
    n_test = max(1, round(test_fraction * n))
    return perm[n_test:], perm[:n_test]


def _data(args: argparse.Namespace) -> tuple[Dataset, Tensor]:
    ds = load_dataset(args.data)
    return ds, ds.X.to(dtype=torch.float64, device=args.device)


def _pictures(report: Report, ds: Dataset, images: Tensor, filename: str, title: str,
              titles: list[str] | None = None) -> None:
    if ds.image_shape is not None and math.prod(ds.image_shape) == images.shape[1]:
        report.image_grid(images, ds.image_shape, filename=filename, title=title, titles=titles)


# -- gmm --------------------------------------------------------------------------------------


def _gmm_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--components", type=int, default=10, help="mixture components K (default 10)")
    p.add_argument("--covariance", default="full", choices=COVARIANCES,
                   help="covariance structure (default full)")
    p.add_argument("--max-iter", type=int, default=200, help="maximum EM iterations (default 200)")
    p.add_argument("--tol", type=float, default=1e-4,
                   help="stop when the log-likelihood per sample changes less (default 1e-4)")
    p.add_argument("--n-init", type=int, default=3, help="EM restarts, best kept (default 3)")
    p.add_argument("--reg-covar", type=float, default=1e-2,
                   help="added to every covariance's diagonal, in the data's squared units "
                   "(default 1e-2; keeps constant features, e.g. blank pixels, from "
                   "dominating the likelihood)")
    p.add_argument("--init", default="kmeans", choices=("kmeans", "k-means++", "random"),
                   help="initial responsibilities (default kmeans)")


def _gmm_run(args: argparse.Namespace, report: Report) -> dict[str, Any]:
    k = check_positive_int(args.components, "--components")
    check_choice(args.covariance, "--covariance", COVARIANCES)
    reg = check_nonnegative_float(args.reg_covar, "--reg-covar")
    ds, X = _data(args)
    train, test = _split(X.shape[0], 0.2, args.seed)
    Xtr, Xte = X[train], X[test]
    if Xtr.shape[0] < k:
        raise ValueError(f"--components {k} exceeds the {Xtr.shape[0]} training samples.")
    d = X.shape[1]
    emission = GaussianEmission(k, d, args.covariance, reg_covar=reg, device=args.device)
    model = MixtureModel(torch.ones(k, dtype=X.dtype, device=X.device), emission, init=args.init)
    result = fit_em(model, Xtr, n_init=check_positive_int(args.n_init, "--n-init"),
                    seed=make_generator(args.seed), max_iter=args.max_iter, tol=args.tol,
                    progress=not args.no_progress)
    ll_train = model.log_marginal(Xtr)
    ll_test = model.log_marginal(Xte)
    emission.clear_cache()
    folder = report.save_model(model)
    reloaded = load(folder, device=args.device)
    round_trip = bool(torch.allclose(reloaded.log_marginal(Xte), ll_test, rtol=1e-12, atol=0))
    metrics: dict[str, Any] = {
        "components": k,
        "covariance": args.covariance,
        "reg_covar": reg,
        "n_train": int(Xtr.shape[0]),
        "n_test": int(Xte.shape[0]),
        "log_likelihood_train": float(ll_train.mean()),
        "log_likelihood_test": float(ll_test.mean()),
        "bic": model.bic(Xtr),
        "aic": model.aic(Xtr),
        "n_parameters": model.num_parameters(),
        "n_iter": result.n_iter,
        "converged": result.converged,
        "best_restart": result.init,
        "save_load_round_trip": round_trip,
        "weights": model.weights.tolist(),
    }
    if ds.y is not None:
        clusters = model.posterior(X).responsibilities.argmax(-1)
        metrics["adjusted_rand_index"] = adjusted_rand_index(clusters.cpu(), ds.y)
    report.learning_curve(result.log_likelihood)
    order = torch.argsort(model.weights, descending=True)
    _pictures(report, ds, emission.means[order], "means.png",
              f"GMM component means ({args.covariance} covariance)",
              [f"π={float(w):.2f}" for w in model.weights[order]])
    _, samples = model.sample(20, generator=make_generator(args.seed))
    _pictures(report, ds, samples.clamp(float(X.min()), float(X.max())), "samples.png",
              "samples from the fitted GMM")
    return metrics


# -- kmeans -----------------------------------------------------------------------------------


def kmeans_as_mixture(centers: Tensor, variance: float) -> MixtureModel:
    """K-means as the Gaussian mixture it is the hard-assignment limit of (§7.1.1): equal
    weights and one shared spherical variance σ² (the recipe uses the within-cluster mean
    squared deviation per coordinate, inertia / (N·D)). Its most probable component for any y
    is the nearest centre, so the saved model assigns clusters as K-means does.
    centers: (K, D)."""
    k = centers.shape[0]
    var = torch.full((k,), max(variance, 1e-12), dtype=centers.dtype, device=centers.device)
    emission = GaussianEmission.from_parameters(centers, var, "spherical", reg_covar=0.0)
    return MixtureModel(torch.full((k,), 1.0 / k, dtype=centers.dtype, device=centers.device),
                        emission)



def _kmeans_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--clusters", type=int, default=10, help="number of clusters (default 10)")
    p.add_argument("--n-init", type=int, default=10, help="k-means++ restarts (default 10)")
    p.add_argument("--max-iter", type=int, default=300, help="maximum Lloyd iterations")
    p.add_argument("--tol", type=float, default=1e-4,
                   help="relative centre-shift tolerance (scikit-learn's meaning)")


def _kmeans_run(args: argparse.Namespace, report: Report) -> dict[str, Any]:
    k = check_positive_int(args.clusters, "--clusters")
    ds, X = _data(args)
    with report.stages(args.model, ["k-means", "save"], not args.no_progress) as bar:
        res = kmeans(X, k, n_init=args.n_init, max_iter=args.max_iter, tol=args.tol,
                     seed=make_generator(args.seed))
        bar.done("k-means")
        report.save_model(kmeans_as_mixture(res.centers, float(res.inertia) / X.numel()))
        bar.done("save")
    metrics: dict[str, Any] = {"clusters": k, "inertia": float(res.inertia),
                               "inertia_per_sample": float(res.inertia) / X.shape[0],
                               "n_iter": res.n_iter, "converged": res.converged,
                               "cluster_sizes": torch.bincount(res.labels, minlength=k).tolist()}
    if ds.y is not None:
        metrics["adjusted_rand_index"] = adjusted_rand_index(res.labels.cpu(), ds.y)
    _pictures(report, ds, res.centers, "centers.png", "K-means centres")
    return metrics


# -- lda / qda --------------------------------------------------------------------------------


def _classifier_run(estimator: Any, args: argparse.Namespace, report: Report
                    ) -> dict[str, Any]:
    ds, X = _data(args)
    if ds.y is None:
        raise ValueError(f"data set {args.data!r} has no labels; LDA/QDA need a labelled set "
                         "(e.g. digits, iris, wine).")
    y = ds.y.cpu().numpy()
    train, test = _split(X.shape[0], 0.25, args.seed)
    tr, te = train.numpy(), test.numpy()
    with report.stages(args.model, ["fit", "score", "save"], not args.no_progress) as bar:
        estimator.fit(X[train], y[tr])
        bar.done("fit")
        metrics: dict[str, Any] = {
            "train_accuracy": float(estimator.score(X[train], y[tr])),
            "test_accuracy": float(estimator.score(X[test], y[te])),
            "n_train": len(tr),
            "n_test": len(te),
            "classes": len(estimator.classes_),
            "priors": [float(p) for p in estimator.priors_],
        }
        bar.done("score")
        report.save_model(estimator.model_)
        bar.done("save")
    _pictures(report, ds, torch.as_tensor(estimator.means_), "class_means.png",
              f"{type(estimator).__name__}: class means",
              [str(c) for c in estimator.classes_])
    return metrics


def _lda_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--solver", default="svd", choices=("svd", "lsqr", "eigen"),
                   help="which shared covariance (scikit-learn's solvers; default svd)")
    p.add_argument("--shrinkage", type=float, default=None,
                   help="shrink the covariance towards a scaled identity (lsqr/eigen only)")


def _lda_run(args: argparse.Namespace, report: Report) -> dict[str, Any]:
    import warnings

    from genmodels.estimators.discriminant import LinearDiscriminantAnalysis
    from genmodels.exceptions import DegenerateFitWarning

    est = LinearDiscriminantAnalysis(solver=args.solver, shrinkage=args.shrinkage,
                                     device=args.device)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DegenerateFitWarning)
        metrics = _classifier_run(est, args, report)
    report.notes.extend(str(w.message) for w in caught
                        if issubclass(w.category, DegenerateFitWarning))
    return metrics


def _qda_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--reg-param", type=float, default=0.05,
                   help="Σ_k ← (1 − r)Σ_k + r·I (default 0.05; 0 fails on rank-deficient "
                   "classes such as digits' blank pixels)")


def _qda_run(args: argparse.Namespace, report: Report) -> dict[str, Any]:
    from genmodels.estimators.discriminant import QuadraticDiscriminantAnalysis

    est = QuadraticDiscriminantAnalysis(reg_param=args.reg_param, device=args.device)
    return _classifier_run(est, args, report)


gmm = Recipe("gmm", "Gaussian mixture by EM: log-likelihood, BIC/AIC, clusters vs labels, means",
             "digits", _gmm_arguments, _gmm_run)
kmeans_recipe = Recipe("kmeans", "K-means clustering (k-means++ starts): inertia, ARI, centres",
                       "digits", _kmeans_arguments, _kmeans_run)
lda = Recipe("lda", "linear discriminant analysis (shared covariance): train/test accuracy",
             "digits", _lda_arguments, _lda_run)
qda = Recipe("qda", "quadratic discriminant analysis (per-class covariance): train/test accuracy",
             "digits", _qda_arguments, _qda_run)

__all__ = ["adjusted_rand_index", "gmm", "kmeans_as_mixture", "kmeans_recipe", "lda", "qda"]
