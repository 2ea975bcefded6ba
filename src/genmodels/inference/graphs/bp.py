"""Belief propagation on factor graphs: sum-product and max-product, exact on trees, loopy
with damping elsewhere (book §3.5; Koller & Friedman 2009 ch. 10–11; Wainwright & Jordan
2008 §4; Murphy, Weiss & Jordan 1999 for loopy BP and damping).

Messages between variables i and factors a, in log space and normalised:

    q_{i→a}(x_i) = Σ_{b∈N(i)∖a} log m_{b→i}(x_i)                        (variable to factor)
    m_{a→i}(x_i) = ⊕_{x_a∖x_i} [log ψ_a(x_a) + Σ_{j∈N(a)∖i} q_{j→a}(x_j)]  (factor to variable)

with ⊕ = logsumexp (sum-product) or max (max-product). Beliefs b_i ∝ exp Σ_{a∈N(i)} m_{a→i}
and b_a ∝ ψ_a Π_j exp q_{j→a}. On a tree the messages reach their fixed point after as many
parallel ("flooding") sweeps as the tree's diameter and the beliefs are the exact marginals;
on a loopy graph the fixed point (if reached) is a stationary point of the Bethe free energy
and log Z is estimated by −F_Bethe (exact on trees):

    log Z_B = Σ_a Σ_{x_a} b_a (log ψ_a − log b_a) + Σ_i (d_i − 1) Σ_{x_i} b_i log b_i.

Damping λ mixes each new message with the old one in probability space,
m ← (1 − λ) m_new + λ m_old, which often turns oscillation into convergence.

The computation is vectorised over factors: factors with the same tuple of cardinalities
are stacked into one tensor, so a 100×100 Ising grid is a handful of tensor operations per
sweep. Exclusions ("all messages but one") are formed exactly — a sum of the finite parts and
a count of hard zeros — never by subtracting −∞.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import NamedTuple

import torch
from torch import Tensor

from genmodels._validation import check_choice, check_nonnegative_float, check_positive_int
from genmodels.inference.graphs.factor import FactorGraph

__all__ = ["BPResult", "belief_propagation", "max_product", "sum_product"]


class BPResult(NamedTuple):
    """Belief propagation's answer and its convergence report.

    marginals: {v: b_v} normalised beliefs (max-marginals for max-product), (k_v,) each.
    log_partition: the Bethe estimate of log Z (sum-product; exact on a tree); for
        max-product the log of the unnormalised probability of ``assignment``.
    assignment: {v: argmax b_v} (the MAP state on a tree when it is unique).
    converged: whether the largest message change fell below ``tol``.
    iterations: parallel sweeps run.  max_change: (iterations,) the largest absolute change in
        any message (probability scale) at each sweep.
    """

    marginals: dict[str, Tensor]
    log_partition: Tensor
    assignment: dict[str, int]
    converged: bool
    iterations: int
    max_change: Tensor


class _Group(NamedTuple):
    table: Tensor  # (F, k_1, ..., k_r) log ψ
    var: Tensor  # (F, r) variable index of each slot


def _groups(graph: FactorGraph) -> tuple[list[_Group], Tensor]:
    index = {v: i for i, v in enumerate(graph.variables)}
    by_shape: dict[tuple[int, ...], list[int]] = {}
    constant = torch.zeros((), dtype=torch.float64)
    for a, f in enumerate(graph.factors):
        if not f.variables:
            constant = constant + f.log_values
        else:
            by_shape.setdefault(tuple(f.log_values.shape), []).append(a)
    groups = []
    for _, members in by_shape.items():
        fs = [graph.factors[a] for a in members]
        groups.append(_Group(torch.stack([f.log_values for f in fs]),
                             torch.tensor([[index[v] for v in f.variables] for f in fs])))
    return groups, constant


def _log_normalise(m: Tensor) -> Tensor:
    z = torch.logsumexp(m, -1, keepdim=True)
    return m - torch.where(torch.isfinite(z), z, torch.zeros_like(z))


def _slot_view(q: Tensor, j: int, r: int) -> Tensor:
    """(F, k_j) message viewed to broadcast along axis j of an (F, k_1..k_r) table."""
    shape = [q.shape[0]] + [1] * r
    shape[1 + j] = q.shape[1]
    return q.reshape(shape)


def belief_propagation(graph: FactorGraph, *, kind: str = "sum", max_iter: int = 200,
                       tol: float = 1e-10, damping: float = 0.0,
                       evidence: Mapping[str, int] | None = None) -> BPResult:
    """Sum- or max-product belief propagation with a flooding schedule (module docstring).

    kind: "sum" | "max". max_iter: sweeps at most. tol: stop when no message changes by
    more than this (probability scale). damping: λ ∈ [0, 1). evidence: {v: state} reduces the
    graph first. Returns a ``BPResult`` with the convergence report.
    """
    check_choice(kind, "kind", ("sum", "max"))
    check_positive_int(max_iter, "max_iter")
    check_nonnegative_float(tol, "tol")
    damping = check_nonnegative_float(damping, "damping")
    if damping >= 1:
        raise ValueError(f"damping must be in [0, 1); got {damping}.")
    if evidence:
        graph = graph.reduce(evidence)
    groups, constant = _groups(graph)
    V = len(graph.variables)
    card = torch.tensor([graph.cardinalities[v] for v in graph.variables])
    K = int(card.max()) if V else 1
    pad = torch.where(torch.arange(K)[None, :] < card[:, None], 0.0, -math.inf).to(torch.float64)
    # factor → variable messages per group and slot, (F, k_j); uniform start
    msgs = [[torch.full((g.table.shape[0], g.table.shape[1 + j]), -math.log(g.table.shape[1 + j]),
                        dtype=torch.float64) for j in range(g.var.shape[1])] for g in groups]

    def reduce(t: Tensor, axes: tuple[int, ...]) -> Tensor:
        if not axes:
            return t
        return torch.logsumexp(t, axes) if kind == "sum" else t.amax(axes)

    def totals() -> tuple[Tensor, Tensor]:
        """Σ_a m_{a→i} split into finite parts (V, K) and counts of −∞ (V, K)."""
        fin = torch.zeros(V, K, dtype=torch.float64)
        zeros = torch.zeros(V, K, dtype=torch.float64)
        for g, ms in zip(groups, msgs):
            for j, m in enumerate(ms):
                k = m.shape[1]
                isinf = m == -math.inf
                fin[:, :k].index_add_(0, g.var[:, j], torch.where(isinf, 0.0, m))
                zeros[:, :k].index_add_(0, g.var[:, j], isinf.to(torch.float64))
        return fin, zeros

    def var_to_factor(fin: Tensor, zeros: Tensor) -> list[list[Tensor]]:
        out = []
        for g, ms in zip(groups, msgs):
            row = []
            for j, m in enumerate(ms):
                k = m.shape[1]
                isinf = m == -math.inf
                f = fin[g.var[:, j], :k] - torch.where(isinf, 0.0, m)
                z = zeros[g.var[:, j], :k] - isinf.to(torch.float64)
                row.append(_log_normalise(torch.where(z > 0.5, -math.inf, f)))
            out.append(row)
        return out

    changes = []
    converged = False
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007 (the count is reported)
        q = var_to_factor(*totals())
        change = torch.zeros((), dtype=torch.float64)
        for gi, g in enumerate(groups):
            r = g.var.shape[1]
            for j in range(r):
                t = g.table
                for i in range(r):
                    if i != j:
                        t = t + _slot_view(q[gi][i], i, r)
                new = _log_normalise(reduce(t, tuple(1 + i for i in range(r) if i != j)))
                old = msgs[gi][j]
                if damping > 0:
                    new = _log_normalise(torch.logaddexp(new + math.log1p(-damping),
                                                         old + math.log(damping)))
                change = torch.maximum(change, (new.exp() - old.exp()).abs().max())
                msgs[gi][j] = new
        changes.append(change)
        if float(change) <= tol:
            converged = True
            break
    fin, zeros = totals()
    log_b = torch.where(zeros > 0.5, -math.inf, fin) + pad  # (V, K) unnormalised
    log_b = _log_normalise(log_b)
    marginals = {v: log_b[i, : int(card[i])].exp() for i, v in enumerate(graph.variables)}
    assignment = {v: int(torch.argmax(log_b[i])) for i, v in enumerate(graph.variables)}
    if kind == "sum":
        log_z = _bethe_log_partition(groups, var_to_factor(fin, zeros), log_b, constant)
    else:
        st = torch.tensor([[assignment[v] for v in graph.variables]])
        log_z = graph.log_unnormalised(st)[0]
    return BPResult(marginals, log_z, assignment, converged, it, torch.stack(changes))


def _xlogy(p: Tensor, log_q: Tensor) -> Tensor:
    return torch.where(p > 0, p * log_q, torch.zeros_like(p))


def _bethe_log_partition(groups: list[_Group], q: list[list[Tensor]], log_b: Tensor,
                         constant: Tensor) -> Tensor:
    """−F_Bethe = Σ_a E_{b_a}[log ψ_a − log b_a] + Σ_i (d_i − 1) E_{b_i}[log b_i]."""
    V = log_b.shape[0]
    degree = torch.zeros(V, dtype=torch.float64)
    out = constant.clone()
    for g, qs in zip(groups, q):
        r = g.var.shape[1]
        t = g.table
        for j in range(r):
            t = t + _slot_view(qs[j], j, r)
            degree.index_add_(0, g.var[:, j], torch.ones(g.var.shape[0], dtype=torch.float64))
        flat = t.reshape(t.shape[0], -1)
        log_ba = flat - torch.logsumexp(flat, -1, keepdim=True)
        ba = log_ba.exp()
        out = out + (_xlogy(ba, g.table.reshape(ba.shape[0], -1)) - _xlogy(ba, log_ba)).sum()
    b = log_b.exp()
    out = out + ((degree - 1)[:, None] * _xlogy(b, log_b)).sum()
    return out


def sum_product(graph: FactorGraph, *, evidence: Mapping[str, int] | None = None) -> BPResult:
    """Exact sum-product on a tree-structured factor graph: marginals and log Z.

    Raises ``ValueError`` if the factor graph has a cycle (use ``JunctionTree`` for exact
    answers there, or ``belief_propagation`` for loopy BP).
    """
    return _tree(graph, "sum", evidence)


def max_product(graph: FactorGraph, *, evidence: Mapping[str, int] | None = None) -> BPResult:
    """Exact max-product on a tree-structured factor graph: max-marginals and the argmax."""
    return _tree(graph, "max", evidence)


def _tree(graph: FactorGraph, kind: str, evidence: Mapping[str, int] | None) -> BPResult:
    g = graph.reduce(evidence) if evidence else graph
    if not g.is_tree():
        raise ValueError("the factor graph has a cycle, so tree belief propagation is not "
                         "exact; use JunctionTree or belief_propagation (loopy BP).")
    # flooding reaches the fixed point within (diameter + 1) sweeps; after that the messages
    # change only by rounding (the exclusion fin − m feeds a message's own rounding back to
    # it), so stop at 64 ulps of 1
    res = belief_propagation(g, kind=kind, max_iter=len(g.variables) + len(g.factors) + 2,
                             tol=64 * torch.finfo(torch.float64).eps)
    if not res.converged:  # pragma: no cover - a tree always converges
        raise RuntimeError("tree belief propagation did not converge")
    return res
