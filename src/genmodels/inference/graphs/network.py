"""Bayesian networks over discrete variables: conditional probability tables, evidence,
ancestral sampling and the BIF file format (book §3.5; Koller & Friedman 2009 ch. 3).

A Bayesian network is a directed acyclic graph with one table per variable,
p̂(x) = Π_v p̂(x_v | x_pa(v)); as a factor graph each table is a factor over (pa(v), v), and
conditioning on evidence e restricts the factors, leaving an unnormalised slice whose
normaliser is p̂(e) (the point of §3.5).
"""

from __future__ import annotations

import gzip
import math
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from genmodels._validation import check_positive_int, make_generator
from genmodels.inference.graphs.factor import DiscreteFactor, FactorGraph
from genmodels.inference.graphs.junction import Calibration, JunctionTree, MAPAssignment

__all__ = ["BayesianNetwork", "TabularCPD", "read_bif"]

#: rows of a conditional table must sum to 1 within this (BIF files print 2–6 digits)
ROW_SUM_TOL = 1e-4


class TabularCPD:
    """p̂(x_v | x_pa(v)) as a table.

    variable: the child's name. table: (k_pa1, ..., k_paP, k_v), each row over the child's
    states sums to 1 within ``ROW_SUM_TOL`` (printed tables are rounded) and is renormalised
    to sum to 1 exactly. parents: names in the order of the table's leading axes.
    states: optional names of the child's states (default "0", "1", ...).
    """

    def __init__(self, variable: str, table: Any, parents: Sequence[str] = (),
                 states: Sequence[str] | None = None) -> None:
        self.variable = str(variable)
        self.parents = tuple(str(p) for p in parents)
        t = torch.as_tensor(np.asarray(table) if not isinstance(table, Tensor) else table)
        t = t.detach().to(torch.float64)
        if t.dim() != len(self.parents) + 1:
            raise ValueError(f"CPD of {self.variable!r}: the table has {t.dim()} axes, expected "
                             f"{len(self.parents) + 1} (one per parent, then the child).")
        if self.variable in self.parents:
            raise ValueError(f"CPD of {self.variable!r}: the variable is its own parent.")
        if bool((~torch.isfinite(t)).any()) or bool((t < 0).any()):
            idx = tuple(int(i) for i in torch.nonzero(~torch.isfinite(t) | (t < 0))[0])
            raise ValueError(f"CPD of {self.variable!r}: entry {idx} is {float(t[idx])}; "
                             "probabilities must be finite and non-negative.")
        rows = t.sum(-1)
        bad = (rows - 1).abs() > ROW_SUM_TOL
        if bool(bad.any()):
            idx = tuple(int(i) for i in torch.nonzero(bad)[0])
            raise ValueError(f"CPD of {self.variable!r}: the row for parent states {idx} sums "
                             f"to {float(rows[idx]):.6g}, not 1.")
        self.table = t / rows[..., None]  # exactly normalised, so p̂(x) sums to 1 (and barren
        k = t.shape[-1]  # descendants of a query can be pruned, as peers do)
        self.states = tuple(str(s) for s in states) if states is not None else tuple(
            str(i) for i in range(k))
        if len(self.states) != k:
            raise ValueError(f"CPD of {self.variable!r}: {len(self.states)} state names for "
                             f"{k} states.")

    @property
    def cardinality(self) -> int:
        return int(self.table.shape[-1])

    def factor(self) -> DiscreteFactor:
        """The factor ψ(x_pa, x_v) = p̂(x_v | x_pa)."""
        return DiscreteFactor((*self.parents, self.variable), values=self.table)


class BayesianNetwork:
    """A discrete Bayesian network p̂(x) = Π_v p̂(x_v | x_pa(v)).

    cpds: one ``TabularCPD`` per variable. Raises ``ValueError`` for a missing or repeated
    CPD, a parent whose cardinality disagrees with its own table, or a directed cycle
    (naming it).

    variables: names in a topological order (parents first).
    """

    def __init__(self, cpds: Sequence[TabularCPD]) -> None:
        self.cpds: dict[str, TabularCPD] = {}
        for c in cpds:
            if c.variable in self.cpds:
                raise ValueError(f"two CPDs for {c.variable!r}.")
            self.cpds[c.variable] = c
        for c in self.cpds.values():
            for a, p in enumerate(c.parents):
                if p not in self.cpds:
                    raise ValueError(f"CPD of {c.variable!r} has parent {p!r}, which has no "
                                     "CPD.")
                if self.cpds[p].cardinality != c.table.shape[a]:
                    raise ValueError(
                        f"CPD of {c.variable!r}: parent {p!r} has {self.cpds[p].cardinality} "
                        f"states but axis {a} of the table has {c.table.shape[a]}: "
                        "inconsistent cardinalities.")
        self.variables: list[str] = self._topological_order()
        self._graph: FactorGraph | None = None
        self._trees: dict[str, JunctionTree] = {}

    def _topological_order(self) -> list[str]:
        state: dict[str, int] = {}  # 1 on the stack, 2 done
        order: list[str] = []
        for root in self.cpds:
            if root in state:
                continue
            stack: list[tuple[str, int]] = [(root, 0)]
            path = [root]
            state[root] = 1
            while stack:
                v, i = stack[-1]
                parents = self.cpds[v].parents
                if i < len(parents):
                    stack[-1] = (v, i + 1)
                    p = parents[i]
                    if state.get(p) == 1:
                        cycle = [*path[path.index(p):], p]
                        raise ValueError("the graph has a directed cycle ("
                                         + " <- ".join(cycle)
                                         + "), so it is not a Bayesian network.")
                    if p not in state:
                        state[p] = 1
                        stack.append((p, 0))
                        path.append(p)
                else:
                    stack.pop()
                    path.pop()
                    state[v] = 2
                    order.append(v)
        return order

    @property
    def cardinalities(self) -> dict[str, int]:
        return {v: self.cpds[v].cardinality for v in self.variables}

    @property
    def states(self) -> dict[str, tuple[str, ...]]:
        return {v: self.cpds[v].states for v in self.variables}

    def parents(self, v: str) -> tuple[str, ...]:
        return self.cpds[v].parents

    def factor_graph(self) -> FactorGraph:
        """The network as factors ψ_v(x_pa(v), x_v) = p̂(x_v | x_pa(v)) (Z = 1); built once
        (the tables are not changed after construction)."""
        if self._graph is None:
            self._graph = FactorGraph([self.cpds[v].factor() for v in self.variables],
                                      self.cardinalities)
        return self._graph

    def evidence_indices(self, evidence: Mapping[str, int | str] | None) -> dict[str, int]:
        """Evidence given by state name or index, as indices; ``ValueError`` for an unknown
        variable or a state outside its domain."""
        out: dict[str, int] = {}
        for v, s in (evidence or {}).items():
            if v not in self.cpds:
                raise ValueError(f"evidence on {v!r}, which is not a variable of the network.")
            names = self.cpds[v].states
            if isinstance(s, str):
                if s not in names:
                    raise ValueError(f"evidence {v}={s!r} is outside its domain {names}.")
                out[v] = names.index(s)
            else:
                if not 0 <= int(s) < len(names):
                    raise ValueError(f"evidence {v}={s} is outside its domain "
                                     f"0..{len(names) - 1}.")
                out[v] = int(s)
        return out

    def junction_tree(self, heuristic: str = "min_fill") -> JunctionTree:
        """The network's junction tree, built once per heuristic; evidence enters at
        calibration."""
        if heuristic not in self._trees:
            self._trees[heuristic] = JunctionTree(self.factor_graph(), heuristic)
        return self._trees[heuristic]

    def query(self, evidence: Mapping[str, int | str] | None = None,
              heuristic: str = "min_fill") -> Calibration:
        """Calibrated junction tree of p̂(x | e): ``.marginals()``, ``.marginal(vars)`` (one-hot
        for observed variables), and ``.log_partition`` = log p̂(e)."""
        return self.junction_tree(heuristic).calibrate("sum", self.evidence_indices(evidence))

    def map_assignment(self, evidence: Mapping[str, int | str] | None = None,
                       heuristic: str = "min_fill") -> MAPAssignment:
        """argmax_x p̂(x | e) (the observed variables at their values), with log p̂(x*, e)
        and log p̂(e)."""
        return self.junction_tree(heuristic).map_assignment(
            evidence=self.evidence_indices(evidence))

    def log_prob(self, states: Tensor) -> Tensor:
        """log p̂(x) at full assignments; states: (N, V) integer, columns in ``variables``."""
        return self.factor_graph().log_unnormalised(states)

    def sample(self, num_samples: int, *, generator: torch.Generator | int | None = None
               ) -> Tensor:
        """Ancestral samples, (N, V) int64, columns in ``variables`` (topological) order."""
        n = check_positive_int(num_samples, "num_samples")
        gen = make_generator(generator)
        col = {v: i for i, v in enumerate(self.variables)}
        out = torch.zeros(n, len(self.variables), dtype=torch.int64)
        for v in self.variables:
            c = self.cpds[v]
            rows = c.table[tuple(out[:, col[p]] for p in c.parents)] if c.parents else \
                c.table.expand(n, -1)
            out[:, col[v]] = torch.multinomial(rows, 1, generator=gen)[:, 0]
        return out


_VARIABLE = re.compile(r"variable\s+([^\s{]+)\s*\{\s*type\s+discrete\s*\[\s*(\d+)\s*\]\s*"
                       r"\{([^}]*)\}\s*;(?:[^}]*)\}", re.S)
_PROBABILITY = re.compile(r"probability\s*\(\s*([^|)\s]+)\s*(?:\|\s*([^)]*))?\)\s*\{([^}]*)\}",
                          re.S)


def _split(s: str) -> list[str]:
    return [t.strip() for t in re.split(r"[,\s]+", s.strip()) if t.strip()]


def read_bif(source: str | os.PathLike[str]) -> BayesianNetwork:
    """Read a Bayesian network from a BIF file (``.bif`` or ``.bif.gz``) or a BIF string.

    Understands the discrete subset used by the bnlearn repository: ``variable`` blocks with
    ``type discrete [k] { states }`` and ``probability`` blocks with ``table`` (root nodes) or one
    ``(parent states) p_1, ..., p_k;`` line per parent configuration (``default`` fills the
    rest). Raises ``ValueError`` naming the block that does not parse.
    """
    text = str(source)
    if "{" not in text:
        path = os.fspath(source)
        opener: Any = gzip.open if path.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8") as fh:
            text = fh.read()
    text = re.sub(r"//[^\n]*|/\*.*?\*/", "", text, flags=re.S)
    states: dict[str, list[str]] = {}
    for m in _VARIABLE.finditer(text):
        names = _split(m.group(3))
        if len(names) != int(m.group(2)):
            raise ValueError(f"BIF variable {m.group(1)!r}: declares {m.group(2)} states but "
                             f"lists {len(names)}.")
        states[m.group(1)] = names
    if not states:
        raise ValueError("no discrete variable blocks found: is this a BIF file?")
    cpds = []
    for m in _PROBABILITY.finditer(text):
        child = m.group(1)
        parents = _split(m.group(2) or "")
        for v in (child, *parents):
            if v not in states:
                raise ValueError(f"BIF probability block for {child!r} names {v!r}, which has "
                                 "no variable block.")
        shape = [len(states[p]) for p in parents] + [len(states[child])]
        table = np.full(shape, math.nan)
        for entry in m.group(3).split(";"):
            entry = entry.strip()
            if not entry:
                continue
            if entry.startswith("table"):
                if parents:  # the flat order of a conditional table varies between writers
                    raise ValueError(f"BIF probability block for {child!r}: a flat 'table' "
                                     "with parents is not supported; write one row per "
                                     "parent configuration.")
                table = np.asarray([float(x) for x in _split(entry[5:])]).reshape(shape)
                continue
            if entry.startswith("default"):
                vals = np.asarray([float(x) for x in _split(entry[7:])])
                table[np.isnan(table[..., 0])] = vals
                continue
            head, _, tail = entry.partition(")")
            cfg = _split(head.lstrip("("))
            try:
                idx = tuple(states[p].index(s) for p, s in zip(parents, cfg))
            except ValueError as err:
                raise ValueError(f"BIF probability block for {child!r}: unknown parent state "
                                 f"in {entry!r}.") from err
            vals = np.asarray([float(x) for x in _split(tail)])
            if len(cfg) != len(parents) or len(vals) != shape[-1]:
                raise ValueError(f"BIF probability block for {child!r}: cannot read "
                                 f"{entry!r}.")
            table[idx] = vals
        if np.isnan(table).any():
            raise ValueError(f"BIF probability block for {child!r} leaves some parent "
                             "configurations without a row.")
        cpds.append(TabularCPD(child, table, parents, states[child]))
    return BayesianNetwork(cpds)
