"""``genmodels fit hmm``: a Gaussian hidden Markov model fitted by Baum–Welch to a time series.

    genmodels fit hmm                              # the Nile's annual flow, 2 regimes
    genmodels fit hmm --states 3 --data my.csv     # rows = time steps, columns = features

Default data: the annual flow of the Nile at Aswan, 1871–1970 (statsmodels, via
``genmodels.data``). It is the textbook change-point series (Cobb 1978; Durbin & Koopman): the
mean flow drops after the Aswan dam of 1898–1902, so a two-state HMM should find two regimes
and put the switch near 1898 — an answer that can be checked by eye on the plot.

Writes metrics.json (log-likelihood, BIC/AIC, fitted parameters, the change points), the model
(model/), learning_curve.png and states.png (the data coloured by the Viterbi states above the
posterior state probabilities).
"""

from __future__ import annotations

import argparse
import math
from typing import Any

import torch

from genmodels._validation import check_choice, check_positive_int, make_generator
from genmodels.cli import Recipe
from genmodels.data import load_dataset
from genmodels.learning.em import fit_em
from genmodels.models.covariance import GaussianEmission
from genmodels.models.hmm import HiddenMarkovModel, pack_sequences
from genmodels.reports import Report


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--states", type=int, default=2, help="number of hidden states (default 2)")
    p.add_argument("--covariance", default="diag",
                   choices=("full", "diag", "spherical", "tied"),
                   help="covariance structure of the Gaussian emissions (default diag)")
    p.add_argument("--iters", type=int, default=200, help="maximum EM iterations (default 200)")
    p.add_argument("--tol", type=float, default=1e-6,
                   help="stop when the log-likelihood per step changes less (default 1e-6)")
    p.add_argument("--n-init", type=int, default=5, help="EM restarts; the best is kept")
    p.add_argument("--reg-covar", type=float, default=1e-6,
                   help="added to each covariance's diagonal, relative to the data variance")


def _run(args: argparse.Namespace, report: Report) -> dict[str, Any]:
    k = check_positive_int(args.states, "--states")
    check_choice(args.covariance, "--covariance", ("full", "diag", "spherical", "tied"))
    ds = load_dataset(args.data)
    y = ds.X.to(torch.float64)
    if y.shape[0] < 2 * k:
        raise ValueError(f"the series has {y.shape[0]} steps: too short for {k} states.")
    # Standardise (a reported, reversible change of units): EM's start and reg_covar are then
    # scale-free. Parameters are reported in the data's units.
    loc, scale = y.mean(0), y.std(0).clamp_min(1e-12)
    z = (y - loc) / scale
    data = pack_sequences(z, device=args.device)
    emission = GaussianEmission(k, z.shape[1], args.covariance, reg_covar=args.reg_covar,
                                device=args.device)
    model = HiddenMarkovModel(torch.full((k,), 1.0 / k), torch.full((k, k), 1.0 / k), emission)
    model.to(args.device)
    result = fit_em(model, data, n_init=args.n_init, seed=make_generator(args.seed),
                    max_iter=args.iters, tol=args.tol, per_datum=True,
                    progress=not args.no_progress)
    post = model.posterior(data)
    path = model.most_probable_states(data).states[0]
    # order the states by their mean of the first feature, for a stable report
    order = torch.argsort(emission.means[:, 0])
    relabel = torch.empty_like(order)
    relabel[order] = torch.arange(k, device=order.device)
    path = relabel[path]
    gamma = post.smoothed_probs[0][:, order]
    T = z.shape[0]
    log_lik = float(post.log_marginal.sum()) - T * float(torch.log(scale).sum())  # data units
    p = model.num_parameters()
    index = ds.index if ds.index is not None else torch.arange(T)
    switches = [int(index[t]) for t in range(1, T) if int(path[t]) != int(path[t - 1])]
    metrics: dict[str, Any] = {
        "states": k,
        "covariance": args.covariance,
        "steps": T,
        "log_likelihood": log_lik,
        "log_likelihood_per_step": log_lik / T,
        "bic": -2 * log_lik + p * math.log(T),
        "aic": -2 * log_lik + 2 * p,
        "parameters": p,
        "em_iterations": result.n_iter,
        "converged": result.converged,
        "state_means": (emission.means[order] * scale + loc).tolist(),
        "transition_matrix": model.transition_matrix[order][:, order].tolist(),
        "initial_probs": model.initial_probs[order].tolist(),
        "viterbi_switches_at": switches,
        "state_occupancy": torch.bincount(path, minlength=k).tolist(),
    }
    report.save_model(model)
    report.learning_curve(result.log_likelihood, ylabel="log-likelihood per step (standardised)")
    _plot(report, ds, y, index, path, gamma, k)
    return metrics


def _plot(report: Report, ds: Any, y: torch.Tensor, index: torch.Tensor, path: torch.Tensor,
          gamma: torch.Tensor, k: int) -> None:
    plt = report._pyplot()
    if plt is None:
        return
    x = index.cpu().numpy()
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(8, 5), sharex=True,
                                   gridspec_kw={"height_ratios": [2, 1]})
    colors = plt.get_cmap("tab10")
    yv = y[:, 0].cpu().numpy()
    ax1.plot(x, yv, color="0.7", lw=1, zorder=1)
    pv = path.cpu().numpy()
    for s in range(k):
        sel = pv == s
        ax1.scatter(x[sel], yv[sel], s=14, color=colors(s), label=f"state {s}", zorder=2)
    name = ds.feature_names[0] if ds.feature_names else "y"
    ax1.set_ylabel(name)
    ax1.set_title(f"{ds.name}: Viterbi states of a {k}-state Gaussian HMM")
    ax1.legend(loc="best", fontsize=8)
    g = gamma.cpu().numpy()
    ax2.stackplot(x, g.T, colors=[colors(s) for s in range(k)], alpha=0.8)
    ax2.set_ylim(0, 1)
    ax2.set_ylabel("p(state | all data)")
    ax2.set_xlabel("year" if ds.index is not None else "t")
    report.save_figure(fig, "states.png")


HMM_RECIPE = Recipe(
    name="hmm",
    help="Gaussian hidden Markov model fitted by Baum–Welch to a time series",
    default_data="nile",
    add_arguments=_add_arguments,
    run=_run,
)
