"""Exact and approximate inference on one model object, side by side with their errors.

For a model whose posterior marginals can be computed exactly, run the approximations on
the same object and report each one's error against the exact answer:

* ``compare_hmm``: forward–backward (exact, B10–B11) vs belief propagation on the chain's
  factor graph (exact on a tree: its error is rounding), naive mean field (biased: it
  ignores the correlations between neighbouring states) and Gibbs sampling (Monte Carlo:
  its error should sit within a few standard errors);
* ``compare_network``: the junction tree (exact) vs loopy BP, mean field and Gibbs on a
  Bayesian network, with evidence;
* ``compare_factor_graph``: the same for any factor graph small enough for a junction tree;
* ``compare_lgssm``: the RTS smoother (exact, Eqs 2.50–2.55) vs the particle smoother
  (FFBSm, Eqs 2.60–2.61) on a linear-Gaussian state-space model: smoothed means, with
  standard errors from independent runs, and the particle filter's log-marginal estimate.

* ``compare_rbm``: a small Bernoulli RBM (issue 10's ``Harmonium``) as a factor graph:
  log Z by enumeration of the smaller layer vs annealed importance sampling (± its standard
  error) vs the mean-field ELBO (a lower bound) vs the Bethe estimate; unit marginals by the
  junction tree vs loopy BP, mean field and Gibbs.

``plot_comparison`` draws the errors as a bar chart and each method's marginals against
the exact ones.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from genmodels.inference.graphs import (
    BayesianNetwork,
    DiscreteFactor,
    FactorGraph,
    JunctionTree,
    belief_propagation,
    gibbs_marginals,
)
from genmodels.inference.hmm import forward_backward
from genmodels.inference.mean_field import mean_field

__all__ = [
    "Comparison",
    "MethodResult",
    "chain_factor_graph",
    "compare_factor_graph",
    "compare_hmm",
    "compare_lgssm",
    "compare_network",
    "compare_rbm",
    "plot_comparison",
    "rbm_factor_graph",
]


@dataclass
class MethodResult:
    """One inference method's answer on the model and its error against the exact one.

    marginals: {v: (k_v,)}.  log_partition: its estimate of log Z (None when it has none;
    the ELBO for mean field, the Bethe estimate for BP).  stderr: Monte Carlo standard errors
    {v: (k_v,)} (Gibbs), else None.  seconds: wall time.  max_error / mean_error: the largest
    and the average |p̂ − p| over all variables and states (NaN for a method without
    marginals).  note: convergence etc.  log_partition_stderr: the standard error of a Monte
    Carlo log Z (AIS).
    """

    name: str
    marginals: dict[str, Tensor]
    seconds: float
    log_partition: Tensor | None = None
    stderr: dict[str, Tensor] | None = None
    max_error: float = 0.0
    mean_error: float = 0.0
    note: str = ""
    log_partition_stderr: float | None = None


@dataclass
class Comparison:
    """The exact answer and every method's, on one model. ``table()`` formats them."""

    model: str
    exact: MethodResult
    methods: list[MethodResult] = field(default_factory=list)
    quantity: str = "marginal"

    def table(self) -> str:
        lines = [f"{self.model}: exact = {self.exact.name} ({self.exact.seconds:.3g} s"
                 + (f", log Z {float(self.exact.log_partition):.6f}"
                    if self.exact.log_partition is not None else "") + ")",
                 f"{'method':<22}{'max |Δ|':>11}{'mean |Δ|':>11}{'log Z':>14}{'s':>9}  note"
                 f"  (Δ: {self.quantity}s)"]
        for m in self.methods:
            lz = f"{float(m.log_partition):.6f}" if m.log_partition is not None else "—"
            mx, mn = ((f"{m.max_error:.2e}", f"{m.mean_error:.2e}") if m.marginals
                      else ("—", "—"))
            lines.append(f"{m.name:<22}{mx:>11}{mn:>11}{lz:>14}{m.seconds:>9.3g}  {m.note}")
        return "\n".join(lines)


def _errors(result: MethodResult, exact: Mapping[str, Tensor]) -> MethodResult:
    if not result.marginals:  # a method that estimates log Z only
        result.max_error = result.mean_error = float("nan")
        return result
    diffs = torch.cat([(result.marginals[v] - exact[v]).abs().reshape(-1) for v in exact])
    result.max_error = float(diffs.max())
    result.mean_error = float(diffs.mean())
    return result


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def _approximations(graph: FactorGraph, exact: Mapping[str, Tensor], *, damping: float,
                    gibbs_sweeps: int, gibbs_chains: int, seed: int) -> list[MethodResult]:
    out = []
    tol = 64 * torch.finfo(torch.float64).eps  # to rounding: exact on a tree
    bp, s = _timed(lambda: belief_propagation(graph, damping=damping, max_iter=1000, tol=tol))
    out.append(_errors(MethodResult("belief propagation", bp.marginals, s, bp.log_partition,
                                    note=f"{'converged' if bp.converged else 'NOT converged'}"
                                         f" in {bp.iterations} sweeps"
                                         + (" (a tree: exact)" if graph.is_tree() else "")),
                       exact))
    mf, s = _timed(lambda: mean_field(graph, generator=seed))
    out.append(_errors(MethodResult("mean field", mf.marginals, s, mf.elbo,
                                    note=f"ELBO after {mf.iterations} sweeps"), exact))
    gb, s = _timed(lambda: gibbs_marginals(graph, num_sweeps=gibbs_sweeps,
                                           burn_in=max(1, gibbs_sweeps // 10),
                                           num_chains=gibbs_chains, generator=seed))
    res = _errors(MethodResult("Gibbs sampling", gb.marginals, s, None, gb.stderr), exact)
    # standard errors of states no chain visited are 0: floor them at one sample's worth
    floor = 1.0 / gb.num_samples
    z = max(float(((gb.marginals[v] - exact[v]).abs()
                   / gb.stderr[v].clamp_min(floor)).max()) for v in exact)
    res.note = f"{gb.num_samples} samples; largest error {z:.1f} standard errors"
    out.append(res)
    return out


def chain_factor_graph(log_init: Tensor, log_trans: Tensor, log_lik: Tensor) -> FactorGraph:
    """The HMM p̂(x_{1:T}, y_{1:T}) with y fixed as a chain of factors over x_1..x_T
    ("x0", "x1", ...): ψ_1 = π p̂(y_1 | x_1), ψ_t = P[x_{t−1}, x_t] p̂(y_t | x_t); log Z is
    log p̂(y_{1:T}). log_init (K,), log_trans (K, K), log_lik (T, K)."""
    T = log_lik.shape[0]
    fs = [DiscreteFactor(("x0",), log_values=log_init + log_lik[0])]
    fs += [DiscreteFactor((f"x{t - 1}", f"x{t}"), log_values=log_trans + log_lik[t][None, :])
           for t in range(1, T)]
    return FactorGraph(fs)


def compare_hmm(log_init: Tensor, log_trans: Tensor, log_lik: Tensor, *, gibbs_sweeps: int = 1000,
                gibbs_chains: int = 16, seed: int = 0) -> Comparison:
    """Forward–backward vs belief propagation, mean field and Gibbs on one HMM posterior.

    log_init: (K,); log_trans: (K, K) row-stochastic [from, to]; log_lik: (T, K)
    log p̂(y_t | x_t = k) (e.g. ``model.emission.log_likelihood(y)``); computed in float64.
    """
    # the factor graph is float64: so are the exact answer's inputs (float32 tables are
    # renormalised after the cast, or forward–backward would refuse them)
    log_init, log_trans, log_lik = (torch.as_tensor(t).to(torch.float64)
                                    for t in (log_init, log_trans, log_lik))
    log_init = log_init - torch.logsumexp(log_init, -1)
    log_trans = log_trans - torch.logsumexp(log_trans, -1, keepdim=True)
    forward_backward(log_init, log_trans, log_lik)  # warm-up: the compiled kernel's first call
    post, s = _timed(lambda: forward_backward(log_init, log_trans, log_lik))
    T = log_lik.shape[0]
    exact = {f"x{t}": post.smoothed_probs[t] for t in range(T)}
    comp = Comparison(f"HMM, T={T}, K={log_lik.shape[1]}",
                      MethodResult("forward–backward", exact, s, post.log_marginal))
    graph = chain_factor_graph(log_init, log_trans, log_lik)
    comp.methods = _approximations(graph, exact, damping=0.0, gibbs_sweeps=gibbs_sweeps,
                                   gibbs_chains=gibbs_chains, seed=seed)
    return comp


def compare_factor_graph(graph: FactorGraph, *, name: str = "factor graph",
                         damping: float = 0.0, gibbs_sweeps: int = 1000, gibbs_chains: int = 16,
                         seed: int = 0) -> Comparison:
    """The junction tree (exact) vs loopy BP, mean field and Gibbs on ``graph``."""
    cal, s = _timed(lambda: JunctionTree(graph).calibrate())
    exact = cal.marginals()
    comp = Comparison(name, MethodResult("junction tree", exact, s, cal.log_partition))
    comp.methods = _approximations(graph, exact, damping=damping, gibbs_sweeps=gibbs_sweeps,
                                   gibbs_chains=gibbs_chains, seed=seed)
    return comp


def compare_network(network: BayesianNetwork, evidence: Mapping[str, int | str] | None = None,
                    *, name: str = "Bayesian network", damping: float = 0.0,
                    gibbs_sweeps: int = 1000, gibbs_chains: int = 16, seed: int = 0
                    ) -> Comparison:
    """The junction tree vs loopy BP, mean field and Gibbs on p̂(x | e) of a network (the
    graph reduced by the evidence, so log Z = log p̂(e))."""
    ev = network.evidence_indices(evidence)
    graph = network.factor_graph().reduce(ev) if ev else network.factor_graph()
    return compare_factor_graph(graph, name=name, damping=damping, gibbs_sweeps=gibbs_sweeps,
                                gibbs_chains=gibbs_chains, seed=seed)


def compare_lgssm(params: Any, y: Tensor, *, num_particles: int = 500, num_runs: int = 4,
                  seed: int = 0) -> Comparison:
    """RTS smoother vs particle smoother (bootstrap filter + FFBSm) on one LGSSM.

    params: ``LGSSMParams`` (no inputs or offsets); y: (T, M). The particle answer is the
    average of ``num_runs`` independent runs of ``num_particles`` particles, its standard
    error their spread / √runs; "marginals" here are the smoothed means E[x_t | y_{1:T}].
    """
    from torch.distributions import MultivariateNormal

    from genmodels.inference.kalman import kalman_smoother
    from genmodels.inference.particle import particle_filter, particle_smoother

    ks, s = _timed(lambda: kalman_smoother(params, y))
    T = y.shape[0]
    exact = {f"x{t}": ks.means[t] for t in range(T)}
    comp = Comparison(f"LGSSM, T={T}, K={params.state_dim}",
                      MethodResult("RTS smoother", exact, s, ks.log_marginal),
                      quantity="smoothed mean")
    A, Q = params.dynamics, params.dynamics_covariance
    Cm, R = params.emission, params.emission_covariance

    def transition(x: Tensor, t: int) -> MultivariateNormal:
        return MultivariateNormal(x @ A.T, covariance_matrix=Q)

    def emission(x: Tensor, t: int) -> MultivariateNormal:
        return MultivariateNormal(x @ Cm.T, covariance_matrix=R)

    initial = MultivariateNormal(params.initial_mean, covariance_matrix=params.initial_covariance)
    gen = torch.Generator().manual_seed(seed)

    def runs() -> tuple[Tensor, Tensor]:
        means, logz = [], []
        for _ in range(num_runs):
            pf = particle_filter(y, initial, transition, emission, num_particles, generator=gen)
            means.append(particle_smoother(pf, transition).mean())
            logz.append(pf.log_marginal)
        return torch.stack(means), torch.stack(logz)

    (means, logz), s = _timed(runs)
    avg, se = means.mean(0), means.std(0) / num_runs ** 0.5
    res = _errors(MethodResult("particle smoother", {f"x{t}": avg[t] for t in range(T)}, s,
                               logz.mean(), {f"x{t}": se[t] for t in range(T)}), exact)
    z = float(((avg - ks.means).abs() / se.clamp_min(1e-300)).max())
    res.note = (f"{num_runs} × {num_particles} particles; largest error {z:.1f} standard "
                "errors; log Z averaged over runs")
    comp.methods = [res]
    return comp


def rbm_factor_graph(model: Any) -> FactorGraph:
    """A Bernoulli–Bernoulli harmonium p̂(x, y) ∝ exp{b_xᵀx + b_yᵀy + xᵀW y} (Eq. 3.3) as a
    factor graph over hidden units "h0", ... and visible units "v0", ...: a unary factor per
    unit (log ψ = [0, b]) and a pairwise factor per weight (log ψ = [[0, 0], [0, W_ij]])."""
    from genmodels.models.harmonium import BernoulliLayer

    if not (isinstance(model.hidden, BernoulliLayer) and isinstance(model.visible,
                                                                     BernoulliLayer)):
        raise ValueError("rbm_factor_graph needs Bernoulli hidden and visible layers.")
    W = model.weight.detach().to(torch.float64)
    bx, by = model.b_x.detach().to(torch.float64), model.b_y.detach().to(torch.float64)
    zero = torch.zeros((), dtype=torch.float64)
    fs = [DiscreteFactor((f"h{i}",), log_values=torch.stack([zero, b]))
          for i, b in enumerate(bx)]
    fs += [DiscreteFactor((f"v{j}",), log_values=torch.stack([zero, b]))
           for j, b in enumerate(by)]
    for i in range(W.shape[0]):
        for j in range(W.shape[1]):
            t = torch.zeros(2, 2, dtype=torch.float64)
            t[1, 1] = W[i, j]
            fs.append(DiscreteFactor((f"h{i}", f"v{j}"), log_values=t))
    return FactorGraph(fs)


def compare_rbm(model: Any, *, ais_chains: int = 100, ais_temperatures: int = 2000,
                damping: float = 0.3, gibbs_sweeps: int = 1000, gibbs_chains: int = 16,
                seed: int = 0) -> Comparison:
    """A small Bernoulli RBM: log Z by enumeration vs AIS vs mean field (ELBO) vs BP
    (Bethe); unit marginals by the junction tree vs loopy BP, mean field and Gibbs."""
    from genmodels.inference.partition import ais_log_partition, exact_log_partition

    graph = rbm_factor_graph(model)
    comp = compare_factor_graph(graph, name=f"RBM, {model.weight.shape[0]} hidden × "
                                f"{model.weight.shape[1]} visible", damping=damping,
                                gibbs_sweeps=gibbs_sweeps, gibbs_chains=gibbs_chains,
                                seed=seed)
    with torch.no_grad():
        enum, s = _timed(lambda: exact_log_partition(model))
        ais, s_ais = _timed(lambda: ais_log_partition(model, num_chains=ais_chains,
                                                      num_temperatures=ais_temperatures,
                                                      seed=seed))
    comp.exact.name = "enumeration + junction tree"
    assert comp.exact.log_partition is not None
    comp.exact.note = (f"log Z by enumeration {float(enum.log_z):.6f} ({s:.3g} s); the "
                       f"junction tree's {float(comp.exact.log_partition):.6f}")
    comp.methods.insert(0, _errors(MethodResult(
        "AIS", {}, s_ais, ais.log_z,
        note=f"log Z ± {float(ais.stderr):.2g} ({ais_chains} runs × {ais_temperatures} "
             "temperatures); no marginals", log_partition_stderr=float(ais.stderr)),
        comp.exact.marginals))
    return comp


def plot_comparison(comparison: Comparison, path: str | Path) -> Path:
    """Two panels: each method's max and mean |Δp| (log scale), and its marginals against
    the exact ones (every variable and state a point; the diagonal is exact). Needs
    matplotlib (the ``plot`` extra). Returns the PNG's path."""
    from genmodels.reports import Report

    path = Path(path)
    report = Report(path.parent)
    made = report.figure(path.name)
    if made is None:
        raise ModuleNotFoundError("plot_comparison needs matplotlib: pip install "
                                  "'genmodels[plot]'")
    fig, ax = made
    fig.set_size_inches(10, 4)
    ax.remove()
    left, right = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    shown = [m for m in comparison.methods if m.marginals]
    names = [m.name for m in shown]
    floor = 1e-17  # exact-to-rounding errors still show as a bar
    xs = range(len(names))
    left.bar([x - 0.2 for x in xs], [max(m.max_error, floor) for m in shown],
             width=0.4, label="max |Δ|")
    left.bar([x + 0.2 for x in xs], [max(m.mean_error, floor) for m in shown],
             width=0.4, label="mean |Δ|")
    left.set_yscale("log")
    left.set_xticks(list(xs), names, rotation=15)
    left.set_title(f"{comparison.model}: {comparison.quantity} error vs "
                   f"{comparison.exact.name}", fontsize=9)
    left.legend(fontsize=8)
    exact = comparison.exact.marginals
    ex = torch.cat([exact[v].reshape(-1) for v in exact])
    for m in shown:
        approx = torch.cat([m.marginals[v].reshape(-1) for v in exact])
        right.scatter(ex.numpy(), approx.numpy(), s=8, alpha=0.6, label=m.name)
    lo, hi = float(ex.min()), float(ex.max())
    right.plot([lo, hi], [lo, hi], color="k", lw=0.8)
    right.set_xlabel(f"exact {comparison.quantity} ({comparison.exact.name})")
    right.set_ylabel(f"approximate {comparison.quantity}")
    right.legend(fontsize=8)
    report.save_figure(fig, path.name)
    return path
