"""Discrete factors and factor graphs (book §3.5; CATALOGUE C8).

A factor graph holds an unnormalised distribution over discrete variables as a product of
non-negative potentials, p̂(x) = (1/Z) Π_a ψ_a(x_a) (the book's Eq. for Fig. 3.1A, where
Z is the missing normaliser p̌(ŷ) of §3.5). Potentials are held as log-tables (log ψ, with
−∞ for a hard zero) so that products are sums and no table underflows; the tables are
float64 by default.

Notation: V variables, a factor's scope x_a is a tuple of variable names; a variable's
cardinality (number of states) is k_v.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["DiscreteFactor", "FactorGraph", "expand_to", "joint_log_table"]


def _log_table(values: Any, name: str, dtype: torch.dtype) -> Tensor:
    """log of a non-negative, finite potential table, with the offending index in the error."""
    t = torch.as_tensor(np.asarray(values) if not isinstance(values, Tensor) else values)
    t = t.detach().to(dtype)
    bad = ~torch.isfinite(t)
    if bool(bad.any()):
        idx = tuple(int(i) for i in torch.nonzero(bad)[0])
        raise ValueError(f"factor {name}: potential at index {idx} is {float(t[idx])}; "
                         "potentials must be finite and non-negative.")
    neg = t < 0
    if bool(neg.any()):
        idx = tuple(int(i) for i in torch.nonzero(neg)[0])
        raise ValueError(f"factor {name}: negative potential {float(t[idx])} at index {idx}; "
                         "potentials must be non-negative (pass log_values= for log-potentials).")
    return t.log()


@dataclass(frozen=True)
class DiscreteFactor:
    """A potential ψ(x_a) over the discrete variables ``variables`` (its scope).

    variables: tuple of distinct variable names, one per axis of the table.
    log_values: (k_1, ..., k_r) log ψ; −∞ marks a zero potential.

    Build with ``DiscreteFactor(("a", "b"), values=table)`` from a non-negative table or with
    ``log_values=`` from log-potentials (an Ising coupling, say). A 0-d table is a constant.
    """

    variables: tuple[str, ...]
    log_values: Tensor = field(repr=False)

    def __init__(self, variables: Sequence[str], values: Any = None, *,
                 log_values: Any = None, dtype: torch.dtype = torch.float64) -> None:
        variables = tuple(str(v) for v in variables)
        name = "(" + ", ".join(variables) + ")"
        if len(set(variables)) != len(variables):
            raise ValueError(f"factor {name}: a variable appears twice in its scope.")
        if (values is None) == (log_values is None):
            raise ValueError(f"factor {name}: give exactly one of values= and log_values=.")
        if values is not None:
            table = _log_table(values, name, dtype)
        else:
            table = torch.as_tensor(log_values).detach().to(dtype)
            if bool(torch.isnan(table).any()) or bool((table == math.inf).any()):
                raise ValueError(f"factor {name}: log_values contains NaN or +inf.")
        if table.dim() != len(variables):
            raise ValueError(f"factor {name}: the table has {table.dim()} axes but the scope "
                             f"has {len(variables)} variables.")
        if any(k == 0 for k in table.shape):
            raise ValueError(f"factor {name}: a variable has cardinality 0 "
                             f"(table shape {tuple(table.shape)}).")
        object.__setattr__(self, "variables", variables)
        object.__setattr__(self, "log_values", table)

    @property
    def cardinalities(self) -> dict[str, int]:
        """{variable: k_v} for the scope."""
        return dict(zip(self.variables, self.log_values.shape))

    @property
    def values(self) -> Tensor:
        """ψ itself (exp of the log-table)."""
        return self.log_values.exp()

    def reduce(self, evidence: Mapping[str, int]) -> DiscreteFactor:
        """ψ(x_a) restricted to x_e = evidence (the observed variables leave the scope)."""
        idx: list[Any] = []
        keep: list[str] = []
        for v, k in zip(self.variables, self.log_values.shape):
            if v in evidence:
                s = int(evidence[v])
                if not 0 <= s < k:
                    raise ValueError(f"evidence {v}={s} is outside its domain 0..{k - 1}.")
                idx.append(s)
            else:
                idx.append(slice(None))
                keep.append(v)
        return DiscreteFactor(keep, log_values=self.log_values[tuple(idx)])


def expand_to(factor: DiscreteFactor, target: Sequence[str]) -> Tensor:
    """The factor's log-table permuted and viewed to broadcast over the axes ``target``.

    target: the ordered variables of a larger table (a clique); it must contain the scope.
    Returns a view with a singleton axis for every target variable outside the scope.
    """
    pos = {v: i for i, v in enumerate(target)}
    order = sorted(range(len(factor.variables)), key=lambda i: pos[factor.variables[i]])
    t = factor.log_values.permute(order) if order != sorted(order) else factor.log_values
    shape = [1] * len(target)
    for i in order:
        shape[pos[factor.variables[i]]] = factor.log_values.shape[i]
    return t.reshape(shape)


class FactorGraph:
    """An unnormalised distribution p̂(x) ∝ Π_a ψ_a(x_a) over discrete variables.

    factors: the potentials ψ_a. cardinalities: optional {variable: k_v}, for variables that
    appear in no factor (they then carry a uniform potential) or to check the tables against.

    Raises ``ValueError`` when two factors (or a factor and ``cardinalities``) disagree about
    a variable's number of states, naming the variable and the factors.
    """

    def __init__(self, factors: Iterable[DiscreteFactor],
                 cardinalities: Mapping[str, int] | None = None) -> None:
        self.factors: list[DiscreteFactor] = list(factors)
        card: dict[str, int] = {}
        where: dict[str, str] = {}
        if cardinalities is not None:
            for v, k in cardinalities.items():
                if int(k) < 1:
                    raise ValueError(f"cardinalities[{v!r}] = {k}; it must be at least 1.")
                card[str(v)] = int(k)
                where[str(v)] = "cardinalities"
        for i, f in enumerate(self.factors):
            if not isinstance(f, DiscreteFactor):
                raise ValueError(f"factors[{i}] is a {type(f).__name__}, not a DiscreteFactor.")
            for v, k in f.cardinalities.items():
                if v in card and card[v] != k:
                    raise ValueError(
                        f"variable {v!r} has {card[v]} states in {where[v]} but {k} in "
                        f"factors[{i}] over {f.variables}: inconsistent cardinalities.")
                if v not in card:
                    card[v], where[v] = k, f"factors[{i}] over {f.variables}"
        self.cardinalities: dict[str, int] = card
        self.variables: list[str] = list(card)

    def __repr__(self) -> str:
        return f"FactorGraph({len(self.variables)} variables, {len(self.factors)} factors)"

    def reduce(self, evidence: Mapping[str, int]) -> FactorGraph:
        """The graph of p̂(x_rest, x_e = evidence): every factor restricted to the evidence.

        Its normaliser is p̂(x_e) × Z (the slice of §3.5); evidence keys must be variables.
        """
        for v, s in evidence.items():
            if v not in self.cardinalities:
                raise ValueError(f"evidence on {v!r}, which is not a variable of the graph.")
            k = self.cardinalities[v]
            if not 0 <= int(s) < k:
                raise ValueError(f"evidence {v}={s} is outside its domain 0..{k - 1}.")
        card = {v: k for v, k in self.cardinalities.items() if v not in evidence}
        return FactorGraph([f.reduce(evidence) for f in self.factors], card)

    def neighbours(self) -> dict[str, set[str]]:
        """The interaction (Markov) graph: u ~ v when some factor has both in its scope."""
        nb: dict[str, set[str]] = {v: set() for v in self.variables}
        for f in self.factors:
            for u in f.variables:
                nb[u].update(w for w in f.variables if w != u)
        return nb

    def is_tree(self) -> bool:
        """Whether the bipartite factor graph (variables + factors with non-empty scope) is a
        forest: no cycle through factors and variables."""
        parent = {v: v for v in self.variables}

        def find(v: str) -> str:
            while parent[v] != v:
                parent[v] = parent[parent[v]]
                v = parent[v]
            return v

        for f in self.factors:  # a factor joins its scope; a repeated join closes a cycle
            roots = [find(v) for v in f.variables]
            if len(set(roots)) != len(roots):
                return False
            for r in roots[1:]:
                parent[r] = roots[0]
        return True

    def log_unnormalised(self, states: Tensor) -> Tensor:
        """log Π_a ψ_a(x_a) at full assignments. states: (N, V) integer, columns in
        ``self.variables`` order. Returns (N,)."""
        col = {v: i for i, v in enumerate(self.variables)}
        out = torch.zeros(states.shape[0], dtype=torch.float64)
        for f in self.factors:
            if not f.variables:
                out = out + f.log_values
                continue
            idx = tuple(states[:, col[v]].long() for v in f.variables)
            out = out + f.log_values[idx]
        return out


def joint_log_table(graph: FactorGraph) -> Tensor:
    """log Π_a ψ_a(x_a) over every joint state, by brute force: (k_1, ..., k_V) in
    ``graph.variables`` order. The oracle for small graphs (Π_v k_v entries)."""
    shape = [graph.cardinalities[v] for v in graph.variables]
    table = torch.zeros(shape, dtype=torch.float64)
    for f in graph.factors:
        table = table + expand_to(f, graph.variables)
    return table
