"""The junction-tree algorithm (book §3.5 "Junction-tree algorithm", left empty there; filled
from Koller & Friedman 2009, ch. 9–10 and 13, and Jordan's *Introduction to Probabilistic
Graphical Models*, ch. 17).

Exact inference on any discrete factor graph, in four steps:

1. **Triangulate** the interaction graph by greedy variable elimination (min-fill: eliminate
   the variable whose elimination adds the fewest fill edges; min-weight: the one whose
   elimination clique has the smallest table, Π k_v). The elimination cliques' maximal
   members are the cliques of the chordal graph.
2. **Join** the cliques into a tree by a maximum-weight spanning tree on separator sizes
   |C_i ∩ C_j| (Kruskal); it has the running-intersection property.
3. **Assign** each factor to one clique that covers its scope: ψ_C = Π_{a→C} ψ_a.
4. **Calibrate** by Shafer–Shenoy message passing, up to a root and back:
   m_{i→j}(s_ij) = Σ_{C_i∖S_ij} ψ_i Π_{k∈N(i)∖j} m_{k→i}, beliefs β_i = ψ_i Π_{k∈N(i)} m_{k→i}
   (max instead of Σ for max-product). Then β_i = Z p̂(x_{C_i}), and Z = Σ β_i for any i.

All tables are log-tables (logsumexp for Σ, + for Π).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from genmodels._validation import check_choice
from genmodels.inference.graphs.factor import FactorGraph, expand_to

__all__ = [
    "Calibration",
    "JunctionTree",
    "MAPAssignment",
    "build_junction_tree",
    "elimination_order",
]

HEURISTICS = ("min_fill", "min_weight")


def elimination_order(graph: FactorGraph, heuristic: str = "min_fill"
                      ) -> tuple[list[str], list[tuple[str, ...]]]:
    """Greedy elimination order and its elimination cliques ({v} ∪ its uneliminated
    neighbours at elimination time), which triangulate the interaction graph.

    heuristic: "min_fill" (fewest fill edges added; ties by smaller table) or "min_weight"
    (smallest elimination-clique table Π k_v; ties by fewer fill edges). Remaining ties go to
    the variable that comes first in ``graph.variables``, so the order is deterministic.
    """
    check_choice(heuristic, "heuristic", HEURISTICS)
    nb = graph.neighbours()
    card = graph.cardinalities
    rank = {v: i for i, v in enumerate(graph.variables)}
    remaining = set(graph.variables)

    def fill(v: str) -> int:
        ns = list(nb[v])
        return sum(1 for a, b in itertools.combinations(ns, 2) if b not in nb[a])

    def weight(v: str) -> int:
        w = card[v]
        for u in nb[v]:
            w *= card[u]
        return w

    def cost(v: str) -> tuple[int, int, int]:
        if heuristic == "min_fill":
            return fill(v), weight(v), rank[v]
        return weight(v), fill(v), rank[v]

    order: list[str] = []
    cliques: list[tuple[str, ...]] = []
    while remaining:
        v = min(remaining, key=cost)
        ns = sorted(nb[v], key=rank.__getitem__)
        for a, b in itertools.combinations(ns, 2):  # the fill edges: v's neighbours become
            nb[a].add(b)  # a clique
            nb[b].add(a)
        for u in ns:
            nb[u].discard(v)
        del nb[v]
        remaining.discard(v)
        order.append(v)
        cliques.append(tuple(sorted([v, *ns], key=rank.__getitem__)))
    return order, cliques


def _maximal(cliques: Sequence[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """The cliques not contained in another (the first copy of duplicates kept)."""
    sets = [frozenset(c) for c in cliques]
    keep = []
    for i, c in enumerate(sets):
        if not any((c < d) or (c == d and j < i) for j, d in enumerate(sets) if j != i):
            keep.append(cliques[i])
    return keep


def _spanning_tree(cliques: Sequence[tuple[str, ...]]) -> list[tuple[int, int]]:
    """Maximum-weight spanning tree on |C_i ∩ C_j| (Kruskal; zero-weight edges join the
    components of a disconnected graph). Returns undirected edges (i, j)."""
    sets = [set(c) for c in cliques]
    pairs = sorted(((len(sets[i] & sets[j]), i, j)
                    for i, j in itertools.combinations(range(len(cliques)), 2)),
                   key=lambda t: (-t[0], t[1], t[2]))
    parent = list(range(len(cliques)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    edges = []
    for _, i, j in pairs:
        ri, rj = find(i), find(j)
        if ri != rj:
            parent[ri] = rj
            edges.append((i, j))
            if len(edges) == len(cliques) - 1:
                break
    return edges


def _reduce(table: Tensor, axes: tuple[int, ...], kind: str) -> Tensor:
    if not axes:
        return table
    if kind == "sum":
        return torch.logsumexp(table, dim=axes)
    return table.amax(dim=axes)


class MAPAssignment(NamedTuple):
    """The most probable joint state.

    assignment: {variable: state index} for every variable of the graph (observed ones at
        their evidence).
    log_value: log Π_a ψ_a at the assignment (for a normalised network with evidence e,
        log p̂(x*, e)).
    log_partition: log Z, so log_value − log_partition = log p̂(x* | e).
    """

    assignment: dict[str, int]
    log_value: Tensor
    log_partition: Tensor


@dataclass
class Calibration:
    """A calibrated junction tree (sum- or max-product).

    beliefs: log β_i over ``cliques[i]`` (axes in that order): log Z + log p̂(x_{C_i}) for
        sum-product, the log max-marginals for max-product.
    log_partition: log Z = log Σ_x Π_a ψ_a(x) (sum-product) or log max_x Π_a ψ_a(x) (max).
    """

    tree: JunctionTree
    kind: str
    beliefs: list[Tensor]
    log_partition: Tensor

    def marginal(self, variables: str | Sequence[str]) -> Tensor:
        """p̂(x_S) for a variable or a set of variables inside one clique (axes in the given
        order); for max-product, the normalised max-marginal max_{x∖S} p̂(x) / max_x p̂(x)."""
        vs = (variables,) if isinstance(variables, str) else tuple(variables)
        i = self.tree.home(vs)
        clique = self.tree.cliques[i]
        out = _reduce(self.beliefs[i], tuple(a for a, v in enumerate(clique) if v not in vs),
                      self.kind)
        kept = [v for v in clique if v in vs]
        out = out.permute([kept.index(v) for v in vs]) if len(vs) > 1 else out
        return (out - self.log_partition).exp()

    def marginals(self) -> dict[str, Tensor]:
        """{v: p̂(x_v)} for every variable, each from its smallest clique."""
        return {v: self.marginal(v) for v in self.tree.graph.variables}


class JunctionTree:
    """A junction (clique) tree of a factor graph, ready to calibrate.

    cliques: the maximal cliques of the triangulated graph, each a tuple of variables.
    edges: tree edges (parent, child), in breadth-first order from clique 0 (the root).
    separators: S_ij = C_i ∩ C_j per edge. assignment[i]: indices of the factors in clique i.
    order: the elimination order that produced the triangulation.
    """

    def __init__(self, graph: FactorGraph, heuristic: str = "min_fill") -> None:
        self.graph = graph
        self.heuristic = heuristic
        self.order, elim = elimination_order(graph, heuristic)
        self.cliques = _maximal(elim)
        undirected = _spanning_tree(self.cliques)
        adj: dict[int, list[int]] = {i: [] for i in range(len(self.cliques))}
        for i, j in undirected:
            adj[i].append(j)
            adj[j].append(i)
        self.edges: list[tuple[int, int]] = []
        seen = {0}
        frontier = [0]
        while frontier:  # breadth-first from the root
            nxt = []
            for i in frontier:
                for j in sorted(adj[i]):
                    if j not in seen:
                        seen.add(j)
                        self.edges.append((i, j))
                        nxt.append(j)
            frontier = nxt
        self._parent_edge: dict[int, int] = {j: e for e, (_, j) in enumerate(self.edges)}
        self.separators = [tuple(v for v in self.cliques[j] if v in self.cliques[i])
                           for i, j in self.edges]
        sets = [frozenset(c) for c in self.cliques]
        self.assignment: list[list[int]] = [[] for _ in self.cliques]
        self._constant = torch.zeros((), dtype=torch.float64)
        for a, f in enumerate(graph.factors):
            if not f.variables:
                self._constant = self._constant + f.log_values
                continue
            scope = frozenset(f.variables)
            home = min((i for i, s in enumerate(sets) if scope <= s),
                       key=lambda i: len(sets[i]))
            self.assignment[home].append(a)
        self._home: dict[frozenset[str], int] = {}
        self._psi: list[Tensor] | None = None

    @property
    def treewidth(self) -> int:
        """Largest clique size − 1 (of this triangulation: an upper bound on the treewidth)."""
        return max(len(c) for c in self.cliques) - 1

    def home(self, variables: Sequence[str]) -> int:
        """Index of the smallest clique containing all ``variables``."""
        key = frozenset(variables)
        if key not in self._home:
            for v in key:
                if v not in self.graph.cardinalities:
                    raise ValueError(f"{v!r} is not a variable of the graph (observed "
                                     "variables leave it).")
            cands = [i for i, c in enumerate(self.cliques) if key <= set(c)]
            if not cands:
                raise ValueError(f"no clique contains all of {sorted(key)}; ask for a set "
                                 "inside one clique.")
            self._home[key] = min(cands, key=lambda i: len(self.cliques[i]))
        return self._home[key]

    def potentials(self, evidence: Mapping[str, int] | None = None) -> list[Tensor]:
        """log ψ_C = Σ_{a→C} log ψ_a, each over its clique's axes (step 3), times the
        indicator 1[x_v = e_v] of each observed variable in its smallest clique — so one tree
        serves every evidence set (the observed variables stay in the cliques, fixed)."""
        if self._psi is None:
            card = self.graph.cardinalities
            out = []
            for c, members in zip(self.cliques, self.assignment):
                t = torch.zeros([card[v] for v in c], dtype=torch.float64)
                for a in members:
                    t = t + expand_to(self.graph.factors[a], c)
                out.append(t)
            self._psi = out
        if not evidence:
            return list(self._psi)
        psi = list(self._psi)
        for v, s in evidence.items():
            i = self.home((v,))
            k = self.graph.cardinalities[v]
            if not 0 <= int(s) < k:
                raise ValueError(f"evidence {v}={s} is outside its domain 0..{k - 1}.")
            ind = torch.full((k,), -math.inf, dtype=torch.float64)
            ind[int(s)] = 0.0
            psi[i] = psi[i] + _expand((v,), ind, self.cliques[i])
        return psi

    def calibrate(self, kind: str = "sum", evidence: Mapping[str, int] | None = None
                  ) -> Calibration:
        """Shafer–Shenoy calibration (step 4): collect to the root, distribute back.

        kind: "sum" (sum-product: marginals and log Z) or "max" (max-product: max-marginals
        and the log of the largest unnormalised probability). evidence: {v: state index}
        entered as indicator potentials; then log_partition = log Σ_x Π ψ 1[x_e = e] (log
        p̂(e) for a normalised network) and the marginals are conditional on e.
        """
        check_choice(kind, "kind", ("sum", "max"))
        psi = self.potentials(evidence)
        cl = self.cliques
        up: dict[int, Tensor] = {}  # message child → parent, over the separator (clique order)
        down: dict[int, Tensor] = {}  # message parent → child
        children: dict[int, list[int]] = {i: [] for i in range(len(cl))}
        for e, (i, _) in enumerate(self.edges):
            children[i].append(e)

        def absorb(i: int, table: Tensor, e: int, msg: Tensor) -> Tensor:
            return table + _expand(self.separators[e], msg, cl[i])

        gathered = list(psi)  # ψ_i Π_{children} m_{child→i}
        for e in reversed(range(len(self.edges))):  # collect: leaves first
            i, j = self.edges[e]
            sep = set(self.separators[e])
            up[e] = _reduce(gathered[j], tuple(a for a, v in enumerate(cl[j]) if v not in sep),
                            kind)
            gathered[i] = absorb(i, gathered[i], e, up[e])
        beliefs = list(gathered)
        for e, (i, j) in enumerate(self.edges):  # distribute: root first
            sep = set(self.separators[e])
            # ψ_i times every message into i but the child's own (exclusion, not division,
            # so hard zeros stay exact)
            table = psi[i]
            for e2 in children[i]:
                if e2 != e:
                    table = absorb(i, table, e2, up[e2])
            pe = self._parent_edge.get(i)
            if pe is not None:
                table = absorb(i, table, pe, down[pe])
            down[e] = _reduce(table, tuple(a for a, v in enumerate(cl[i]) if v not in sep),
                              kind)
            beliefs[j] = absorb(j, beliefs[j], e, down[e])
        log_z = _reduce(beliefs[0], tuple(range(beliefs[0].dim())), kind) + self._constant
        beliefs = [b + self._constant for b in beliefs]
        return Calibration(self, kind, beliefs, log_z)

    def map_assignment(self, calibration: Calibration | None = None,
                       evidence: Mapping[str, int] | None = None) -> MAPAssignment:
        """The most probable joint state, decoded from max-product beliefs: the root's argmax,
        then each child's argmax given its separator's chosen states (consistent because the
        max-marginals are calibrated; K&F §13.3)."""
        cal = calibration if calibration is not None else self.calibrate("max", evidence)
        if cal.kind != "max":
            raise ValueError("map_assignment needs a max-product calibration (kind='max').")
        states: dict[str, int] = {}
        for i in [0, *(j for _, j in self.edges)]:
            clique = self.cliques[i]
            idx = tuple(states[v] if v in states else slice(None) for v in clique)
            sub = cal.beliefs[i][idx]
            free = [v for v in clique if v not in states]
            if free:
                flat = int(torch.argmax(sub.reshape(-1)))
                for v, s in zip(free, _unravel(flat, tuple(sub.shape))):
                    states[v] = s
        st = torch.tensor([[states[v] for v in self.graph.variables]])
        log_value = self.graph.log_unnormalised(st)[0]
        log_z = self.calibrate("sum", evidence).log_partition
        return MAPAssignment(states, log_value, log_z)


def _unravel(flat: int, shape: tuple[int, ...]) -> list[int]:
    out = []
    for k in reversed(shape):
        out.append(flat % k)
        flat //= k
    return out[::-1]


def _expand(variables: Sequence[str], table: Tensor, target: Sequence[str]) -> Tensor:
    """A table over ``variables`` (a subsequence of ``target``, same order) viewed to
    broadcast over ``target``."""
    shape = [1] * len(target)
    it = iter(table.shape)
    vs = set(variables)
    for a, v in enumerate(target):
        if v in vs:
            shape[a] = next(it)
    return table.reshape(shape)


def build_junction_tree(graph: FactorGraph, heuristic: str = "min_fill",
                        evidence: Mapping[str, int] | None = None) -> JunctionTree:
    """A junction tree of ``graph`` (reduced by ``evidence`` first), see ``JunctionTree``."""
    return JunctionTree(graph.reduce(evidence) if evidence else graph, heuristic)
