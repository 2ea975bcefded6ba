"""Shared helpers for the graph tests: random factor graphs and brute-force answers."""

from __future__ import annotations

import itertools

import torch

from genmodels.inference.graphs import DiscreteFactor, FactorGraph, joint_log_table


def brute_marginals(graph: FactorGraph) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """log Z and every single-variable marginal by enumerating the joint table."""
    J = joint_log_table(graph)
    log_z = torch.logsumexp(J.reshape(-1), 0)
    out = {}
    for i, v in enumerate(graph.variables):
        other = [a for a in range(J.dim()) if a != i]
        out[v] = (torch.logsumexp(J, other) - log_z).exp() if other else (J - log_z).exp()
    return log_z, out


def brute_map(graph: FactorGraph) -> tuple[dict[str, int], torch.Tensor]:
    J = joint_log_table(graph)
    flat = int(torch.argmax(J.reshape(-1)))
    idx = torch.unravel_index(torch.tensor(flat), J.shape)
    return {v: int(i) for v, i in zip(graph.variables, idx)}, J.reshape(-1)[flat]


def four_cycle(gen: torch.Generator, cards: tuple[int, ...] = (2, 3, 2, 4)) -> FactorGraph:
    """Fig. 3.1A: ψ_A(x1, x2) ψ_B(x1, x3) ψ_C(x2, x4) ψ_D(x3, x4)."""
    k = dict(zip(["x1", "x2", "x3", "x4"], cards))
    scopes = [("x1", "x2"), ("x1", "x3"), ("x2", "x4"), ("x3", "x4")]
    return FactorGraph([DiscreteFactor(s, torch.rand(k[s[0]], k[s[1]], generator=gen) + 0.05)
                        for s in scopes])


def random_bounded_treewidth(gen: torch.Generator, n: int, width: int) -> FactorGraph:
    """A random partial `width`-tree on n variables (treewidth ≤ width): each new variable
    joins a random subset of an existing clique; factors on random edges and triangles."""
    names = [f"v{i}" for i in range(n)]
    card = {v: int(torch.randint(2, 4, (1,), generator=gen)) for v in names}
    cliques = [names[: width + 1]]
    edges: set[tuple[str, str]] = set(itertools.combinations(names[: width + 1], 2))
    for v in names[width + 1:]:
        base = cliques[int(torch.randint(len(cliques), (1,), generator=gen))]
        keep = [u for u in base if bool(torch.rand(1, generator=gen) < 0.7)] or [base[0]]
        drop = base[int(torch.randint(len(base), (1,), generator=gen))]
        cliques.append([*[u for u in base if u != drop], v])
        edges.update((u, v) for u in keep)
    factors = [DiscreteFactor((v,), torch.rand(card[v], generator=gen) + 0.1) for v in names]
    for a, b in sorted(edges):
        factors.append(DiscreteFactor((a, b), 2 * torch.rand(card[a], card[b], generator=gen)))
    return FactorGraph(factors)
