"""``genmodels fit glm`` and ``genmodels fit logistic``: a generalised linear model by IRLS.

    genmodels fit glm --data breast_cancer --family binomial --features mean
    genmodels fit glm --data scotland --family gamma --link log
    genmodels fit glm --data randhie --family poisson
    genmodels fit logistic --data breast_cancer

Prints the summary table (coefficients, standard errors, z, p, deviance, AIC...) and writes
``metrics.json``, ``coefficients.csv`` and the fitted model (``model/``, loadable with
``genmodels.load``).
"""

from __future__ import annotations

import argparse
import warnings
from typing import Any

import torch

from genmodels.cli import Recipe
from genmodels.data import load_dataset, load_file
from genmodels.io import atomic_write_text
from genmodels.learning.irls import SeparationWarning
from genmodels.models.glm import GLM
from genmodels.models.glm_families import FAMILIES, LINKS
from genmodels.reports import Report


def _add_common(p: argparse.ArgumentParser, family_default: str) -> None:
    p.add_argument("--family", default=family_default, choices=sorted(FAMILIES),
                   help=f"response family (default: {family_default})")
    p.add_argument("--link", default=None, choices=sorted(LINKS),
                   help="link function (default: the family's canonical link)")
    p.add_argument("--features", default="all",
                   help="'all', a prefix such as 'mean' (columns whose names start with it), "
                   "or a comma-separated list of column names or indices (default: all)")
    p.add_argument("--alpha", type=float, default=0.0,
                   help="L2 penalty on the non-constant coefficients (default: 0, plain ML)")
    p.add_argument("--standardize", action="store_true",
                   help="centre and scale the features before fitting")
    p.add_argument("--target", type=int, default=-1,
                   help="for .csv/.npy files: the response column (default: the last)")
    p.add_argument("--max-iter", type=int, default=100, help="IRLS iterations (default: 100)")
    p.add_argument("--tol", type=float, default=1e-8, help="Newton-decrement tolerance")


def _select(names: list[str], spec: str) -> list[int]:
    if spec == "all":
        return list(range(len(names)))
    parts = [s.strip() for s in spec.split(",") if s.strip()]
    if len(parts) == 1 and not parts[0].isdigit() and parts[0] not in names:
        idx = [j for j, n in enumerate(names) if n.startswith(parts[0])]
        if not idx:
            raise ValueError(f"no feature name starts with {parts[0]!r}; names: {names}")
        return idx
    out = []
    for p in parts:
        if p.isdigit():
            out.append(int(p))
        elif p in names:
            out.append(names.index(p))
        else:
            raise ValueError(f"unknown feature {p!r}; names: {names}")
    return out


def run(args: argparse.Namespace, report: Report) -> dict[str, Any]:
    if args.data.endswith((".csv", ".npy", ".txt")):
        ds = load_file(args.data, target_column=args.target)
    else:
        ds = load_dataset(args.data)
    if ds.y is None:
        raise ValueError(f"data set {args.data!r} has no response y.")
    names = ds.feature_names or [f"x{j + 1}" for j in range(ds.X.shape[1])]
    cols = _select(names, args.features)
    X = ds.X[:, cols].to(torch.float64)
    if args.standardize:
        X = (X - X.mean(0)) / X.std(0).clamp_min(1e-300)
    X = torch.cat([torch.ones(X.shape[0], 1, dtype=X.dtype), X], dim=1)
    exog_names = ["const"] + [names[j] for j in cols]
    model = GLM(ds.y.to(torch.float64), X, family=args.family, link=args.link,
                device=args.device)
    model.exog_names = exog_names
    model.endog_name = args.data
    with report.stages(args.model, ["IRLS", "summary", "save"], not args.no_progress) as bar:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = model.fit(max_iter=args.max_iter, tol=args.tol, alpha=args.alpha)
        bar.done("IRLS")
        for w in caught:
            report.notes.append(f"{w.category.__name__}: {w.message}")
        summary = res.summary()
        lines = ["name,coef,std_err,z,p_value"]
        for j, n in enumerate(exog_names):
            lines.append(f"{n},{float(res.params[j])!r},{float(res.bse[j])!r},"
                         f"{float(res.tvalues[j])!r},{float(res.pvalues[j])!r}")
        bar.done("summary")
        atomic_write_text(report.out / "coefficients.csv", "\n".join(lines) + "\n")
        report.files.append("coefficients.csv")
        report.save_model(res.to_model())
        bar.done("save")
    print(summary)
    metrics: dict[str, Any] = {
        "family": res.family.name,
        "link": res.link.name,
        "n_obs": model.nobs,
        "n_params": int(res.params.shape[0]),
        "deviance": res.deviance,
        "null_deviance": res.null_deviance,
        "scale": res.scale,
        "log_likelihood": res.llf,
        "aic": res.aic,
        "bic": res.bic,
        "pseudo_r2_mcfadden": res.pseudo_rsquared,
        "iterations": res.n_iter,
        "converged": res.converged,
        "separated": res.separated,
        "coefficients": {n: float(res.params[j]) for j, n in enumerate(exog_names)},
    }
    if res.family.name == "binomial":
        metrics["train_accuracy"] = float(((res.mu > 0.5).to(X.dtype) ==
                                           model.endog).to(X.dtype).mean())
    if any(issubclass(w.category, SeparationWarning) for w in caught):
        metrics["warning"] = "separation: coefficients are not estimates"
    return metrics


def _glm_arguments(p: argparse.ArgumentParser) -> None:
    _add_common(p, "gaussian")


def _logistic_arguments(p: argparse.ArgumentParser) -> None:
    _add_common(p, "binomial")


GLM_RECIPE = Recipe(
    name="glm",
    help="generalised linear model by IRLS (gaussian/binomial/poisson/gamma, any link)",
    default_data="breast_cancer",
    add_arguments=_glm_arguments,
    run=run,
)

LOGISTIC_RECIPE = Recipe(
    name="logistic",
    help="logistic regression by IRLS, with the GLM summary table",
    default_data="breast_cancer",
    add_arguments=_logistic_arguments,
    run=run,
)
