"""``genmodels fit lgssm``: a local-level (random walk plus noise) state-space model.

    genmodels fit lgssm --data nile --out report/

The model is x_t = x_{t−1} + η_t, y_t = x_t + ε_t (A = C = 1, one-dimensional per series; with
D > 1 columns each column gets its own level: A = C = I, diagonal variances are not enforced,
full covariances are fitted) with an exact diffuse initial state. The variances are fitted by
maximum likelihood: ``--em-iters`` EM steps (Eq. 7.4) and then L-BFGS on the exact gradient of
the log-marginal. Writes metrics.json, the model, and a plot of the data with the filtered and
smoothed means and ±2σ bands.
"""

from __future__ import annotations

import argparse
import warnings
from typing import Any

import torch

from genmodels.cli import Recipe
from genmodels.data import load_dataset
from genmodels.models.lgssm import LinearGaussianSSM
from genmodels.reports import Report


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--em-iters", type=int, default=20,
                   help="EM iterations before the gradient polish (default: 20)")
    p.add_argument("--no-gradient", action="store_true",
                   help="EM only (no L-BFGS polish on the exact log-likelihood)")


def _run(args: argparse.Namespace, report: Report) -> dict[str, Any]:
    ds = load_dataset(args.data)
    y = ds.X.to(torch.float64).clone()
    if y.dim() != 2 or y.shape[0] < 2:
        raise ValueError(f"the local-level model needs a (T, D) series with T >= 2, got "
                         f"{tuple(y.shape)}.")
    D = y.shape[1]
    model = LinearGaussianSSM(D, D, diffuse=True, device=args.device)
    var = torch.nan_to_num(y, nan=0.0).var(0)
    model.set_params(dynamics=torch.eye(D), emission=torch.eye(D),
                     dynamics_covariance=torch.diag(var / 10),
                     emission_covariance=torch.diag(var / 2))
    y = y.to(args.device)
    frozen = ["dynamics", "emission", "dynamics_offset", "emission_offset"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        em = model.fit(y, max_iter=max(args.em_iters, 1), tol=0.0, frozen=frozen,
                       progress=not args.no_progress)
    if not args.no_gradient:
        model.fit_gradient(y)
    sm = model.smooth(y)
    ll = float(sm.log_marginal)
    report.save_model(model)
    report.learning_curve(em.log_likelihood, ylabel="EM log-likelihood per step")
    drawn = report.figure("states.png")
    if drawn is not None:
        fig, ax = drawn
        t = (ds.index if ds.index is not None else torch.arange(y.shape[0])).cpu().numpy()
        ax.plot(t, y[:, 0].cpu().numpy(), "k.", ms=4, label="data")
        for name, mean, cov, colour in (
            ("filtered", sm.filtered.means, sm.filtered.covariances, "tab:blue"),
            ("smoothed", sm.means, sm.covariances, "tab:red"),
        ):
            m = mean[:, 0].cpu().numpy()
            s = cov[:, 0, 0].clamp_min(0).sqrt().cpu().numpy()
            ax.plot(t, m, color=colour, label=f"{name} mean")
            ax.fill_between(t, m - 2 * s, m + 2 * s, color=colour, alpha=0.15,
                            label=f"{name} ±2σ")
        ax.set_title(f"local level on {args.data}")
        ax.legend(fontsize=7)
        report.save_figure(fig, "states.png")
    metrics: dict[str, Any] = {
        "log_likelihood": round(ll, 6),
        "em_iterations": em.n_iter,
        "initialisation": "exact diffuse",
    }
    if D == 1:
        metrics["sigma2_level"] = round(float(model.dynamics_covariance), 4)
        metrics["sigma2_irregular"] = round(float(model.emission_covariance), 4)
    else:
        metrics["level_covariance"] = model.dynamics_covariance.tolist()
        metrics["irregular_covariance"] = model.emission_covariance.tolist()
    return metrics


recipe = Recipe(
    name="lgssm",
    help="local-level linear-Gaussian state-space model (Kalman filter, RTS smoother, EM + ML)",
    default_data="nile",
    add_arguments=_add_arguments,
    run=_run,
)
