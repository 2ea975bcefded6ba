"""Gibbs sampling on a discrete factor graph (Geman & Geman 1984; Koller & Friedman 2009
§12.3): each variable in turn is redrawn from its full conditional,

    p̂(x_v | x_{−v}) ∝ Π_{a ∋ v} ψ_a(x_v, x_{a∖v}),

vectorised over independent chains. Marginals are the time- and chain-averaged one-hot
states; their standard errors come from the spread of the per-chain averages (the chains
are independent, so this accounts for autocorrelation within a chain).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import torch
from torch import Tensor

from genmodels._validation import check_positive_int, make_generator
from genmodels.inference.graphs.factor import FactorGraph

__all__ = ["GibbsResult", "gibbs_marginals"]


class GibbsResult(NamedTuple):
    """marginals: {v: (k_v,)} Monte Carlo estimates; stderr: {v: (k_v,)} their standard
    errors (across chains); num_samples: sweeps kept × chains."""

    marginals: dict[str, Tensor]
    stderr: dict[str, Tensor]
    num_samples: int


def gibbs_marginals(graph: FactorGraph, *, num_sweeps: int = 2000, burn_in: int = 200,
                    num_chains: int = 16, evidence: Mapping[str, int] | None = None,
                    generator: torch.Generator | int | None = None) -> GibbsResult:
    """Single-site Gibbs sampling; every chain starts from a uniform random state.

    A chain can stick where hard zeros disconnect the state space (deterministic tables);
    the per-chain spread then shows in ``stderr``.
    """
    sweeps = check_positive_int(num_sweeps, "num_sweeps")
    burn = check_positive_int(burn_in, "burn_in", minimum=0)
    c = check_positive_int(num_chains, "num_chains", minimum=2)
    g = graph.reduce(evidence) if evidence else graph
    gen = make_generator(generator)
    names = g.variables
    col = {v: i for i, v in enumerate(names)}
    card = [g.cardinalities[v] for v in names]
    x = torch.stack([torch.randint(k, (c,), generator=gen) for k in card], 1)  # (C, V)
    touching: list[list[int]] = [[] for _ in names]
    for a, f in enumerate(g.factors):
        for v in f.variables:
            touching[col[v]].append(a)
    counts = [torch.zeros(c, k, dtype=torch.float64) for k in card]
    rows = torch.arange(c)
    for sweep in range(burn + sweeps):
        for i, v in enumerate(names):
            logits = torch.zeros(c, card[i], dtype=torch.float64)
            for a in touching[i]:
                f = g.factors[a]
                pos = f.variables.index(v)
                others = tuple(x[:, col[u]] for u in f.variables if u != v)
                t = f.log_values.movedim(pos, -1)  # (..., k_v)
                t = t[others] if others else t.expand(c, -1)  # (C, k_v)
                logits = logits + t
            # a uniform draw where every state is impossible (cannot happen from a valid
            # state of a positive-probability model)
            probs = torch.softmax(logits, -1).nan_to_num(1.0 / card[i])
            x[:, i] = torch.multinomial(probs, 1, generator=gen)[:, 0]
            if sweep >= burn:
                counts[i][rows, x[:, i]] += 1.0
    marg, se = {}, {}
    for i, v in enumerate(names):
        per_chain = counts[i] / sweeps  # (C, k)
        marg[v] = per_chain.mean(0)
        se[v] = per_chain.std(0) / c ** 0.5
    return GibbsResult(marg, se, sweeps * c)
