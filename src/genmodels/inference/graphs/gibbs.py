"""Gibbs sampling on a discrete factor graph (Geman & Geman 1984; Koller & Friedman 2009
§12.3): a variable is redrawn from its full conditional,

    p̂(x_v | x_{−v}) ∝ Π_{a ∋ v} ψ_a(x_v, x_{a∖v}).

Chromatic scan: the interaction graph is coloured greedily, so variables of one colour share
no factor and are conditionally independent given the rest; each colour class is redrawn at
once, which is exact Gibbs (the class's joint conditional factorises). Everything is
vectorised over the variables of a class, over the factors (stacked by shape, as in BP) and
over independent chains. Marginals are the time- and chain-averaged one-hot states; their
standard errors come from the spread of the per-chain averages (the chains are independent,
so this accounts for the autocorrelation within a chain).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import NamedTuple

import torch
from torch import Tensor

from genmodels._validation import check_positive_int, make_generator
from genmodels.inference.graphs.bp import _groups
from genmodels.inference.graphs.factor import FactorGraph

__all__ = ["GibbsResult", "gibbs_marginals", "greedy_coloring"]


class GibbsResult(NamedTuple):
    """marginals: {v: (k_v,)} Monte Carlo estimates; stderr: {v: (k_v,)} their standard
    errors (across chains); num_samples: sweeps kept × chains."""

    marginals: dict[str, Tensor]
    stderr: dict[str, Tensor]
    num_samples: int


def greedy_coloring(graph: FactorGraph) -> list[int]:
    """A colour per variable (in ``graph.variables`` order) such that no factor holds two
    variables of one colour: each takes the smallest colour unused by its neighbours."""
    nb = graph.neighbours()
    colour: dict[str, int] = {}
    for v in graph.variables:
        used = {colour[u] for u in nb[v] if u in colour}
        colour[v] = next(c for c in range(len(used) + 1) if c not in used)
    return [colour[v] for v in graph.variables]


def gibbs_marginals(graph: FactorGraph, *, num_sweeps: int = 2000, burn_in: int = 200,
                    num_chains: int = 16, evidence: Mapping[str, int] | None = None,
                    generator: torch.Generator | int | None = None) -> GibbsResult:
    """Chromatic-scan Gibbs sampling; every chain starts from a uniform random state.

    A sweep redraws every colour class once. A chain can stick where hard zeros disconnect
    the state space (deterministic tables); the per-chain spread then shows in ``stderr``.
    """
    sweeps = check_positive_int(num_sweeps, "num_sweeps")
    burn = check_positive_int(burn_in, "burn_in", minimum=0)
    c = check_positive_int(num_chains, "num_chains", minimum=2)
    g = graph.reduce(evidence) if evidence else graph
    gen = make_generator(generator)
    names = g.variables
    V = len(names)
    card = torch.tensor([g.cardinalities[v] for v in names])
    K = int(card.max()) if V else 1
    pad = torch.where(torch.arange(K)[None, :] < card[:, None], 0.0, -math.inf).to(
        torch.float64)  # (V, K): −∞ beyond each variable's states
    groups, _ = _groups(g)
    colours = torch.tensor(greedy_coloring(g))
    classes = [torch.nonzero(colours == k).reshape(-1) for k in range(int(colours.max()) + 1)]
    x = (torch.rand(c, V, generator=gen, dtype=torch.float64) * card).long()  # (C, V)
    counts = torch.zeros(c, V, K, dtype=torch.float64)

    def conditionals() -> Tensor:
        """log p̂(x_v = s | x_{−v}) + const for every chain, variable and state: (C, V, K)."""
        logits = pad.expand(c, V, K).clone()
        for grp in groups:
            F, r = grp.var.shape
            for j in range(r):
                t = grp.table.movedim(1 + j, -1)  # (F, k_others..., k_j)
                others = [grp.var[:, i] for i in range(r) if i != j]
                idx = (torch.arange(F)[None, :].expand(c, F),
                       *(x[:, o] for o in others))  # each (C, F)
                contrib = t[idx]  # (C, F, k_j)
                logits[:, :, : contrib.shape[-1]].index_add_(1, grp.var[:, j], contrib)
        return logits

    for sweep in range(burn + sweeps):
        for members in classes:
            logits = conditionals()[:, members]  # (C, M, K)
            u = torch.rand(logits.shape, generator=gen, dtype=torch.float64).clamp_min(1e-300)
            x[:, members] = torch.argmax(logits - torch.log(-torch.log(u)), -1)  # Gumbel-max
        if sweep >= burn:
            counts += torch.nn.functional.one_hot(x, K).to(torch.float64)
    per_chain = counts / sweeps  # (C, V, K)
    marg = per_chain.mean(0)
    se = per_chain.std(0) / c ** 0.5
    return GibbsResult({v: marg[i, : int(card[i])] for i, v in enumerate(names)},
                       {v: se[i, : int(card[i])] for i, v in enumerate(names)}, sweeps * c)
