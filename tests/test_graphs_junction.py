"""Junction tree: exact against brute force (Fig. 3.1's four-cycle, random graphs of
treewidth ≤ 6) and against pgmpy's VariableElimination on its bundled bnlearn networks."""

from __future__ import annotations

import math

import pytest
import torch
from _graph_oracles import brute_map, brute_marginals, four_cycle, random_bounded_treewidth

from genmodels.inference.graphs import (
    BayesianNetwork,
    DiscreteFactor,
    FactorGraph,
    JunctionTree,
    TabularCPD,
    joint_log_table,
    read_bif,
)


def _check_exact(graph: FactorGraph, heuristic: str) -> JunctionTree:
    jt = JunctionTree(graph, heuristic)
    cal = jt.calibrate()
    log_z, marg = brute_marginals(graph)
    assert float(cal.log_partition) == pytest.approx(float(log_z), abs=1e-12, rel=1e-12)
    for v, p in cal.marginals().items():
        torch.testing.assert_close(p, marg[v], atol=1e-12, rtol=0)
    states, best = brute_map(graph)
    m = jt.map_assignment()
    assert float(m.log_value) == pytest.approx(float(best), abs=1e-12)
    assert m.assignment == states  # continuous random potentials: a unique maximiser
    return jt


@pytest.mark.parametrize("heuristic", ["min_fill", "min_weight"])
def test_four_cycle_of_fig_3_1_equals_brute_force(heuristic: str) -> None:
    gen = torch.Generator().manual_seed(0)
    g = four_cycle(gen)
    jt = _check_exact(g, heuristic)
    assert jt.treewidth == 2  # the four-cycle triangulates into two triangles
    assert len(jt.cliques) == 2
    # a pairwise marginal inside a clique, both axis orders
    J = joint_log_table(g)
    J = (J - torch.logsumexp(J.reshape(-1), 0)).exp()
    cal = jt.calibrate()
    pair = next(c for c in jt.cliques if "x1" in c and len(c) == 3)
    u, w = [v for v in pair if v != "x1"][:1][0], "x1"
    iu, iw = g.variables.index(u), g.variables.index(w)
    want = J.sum(tuple(a for a in range(4) if a not in (iu, iw)))
    want = want if iu < iw else want.T
    torch.testing.assert_close(cal.marginal((u, w)), want, atol=1e-12, rtol=0)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("heuristic", ["min_fill", "min_weight"])
def test_random_graphs_of_treewidth_at_most_6_equal_brute_force(seed: int, heuristic: str
                                                                 ) -> None:
    gen = torch.Generator().manual_seed(seed)
    g = random_bounded_treewidth(gen, n=11, width=2 + seed)
    _check_exact(g, heuristic)


def test_evidence_gives_the_conditional_and_log_z_is_the_evidence_probability() -> None:
    gen = torch.Generator().manual_seed(3)
    g = random_bounded_treewidth(gen, n=9, width=3)
    ev = {"v2": 1, "v7": 0}
    cal = JunctionTree(g.reduce(ev)).calibrate()
    J = joint_log_table(g)
    idx = tuple(ev.get(v, slice(None)) for v in g.variables)
    sliced = J[idx]
    assert float(cal.log_partition) == pytest.approx(float(torch.logsumexp(sliced.reshape(-1),
                                                                            0)), abs=1e-12)
    rest = [v for v in g.variables if v not in ev]
    for i, v in enumerate(rest):
        other = [a for a in range(sliced.dim()) if a != i]
        want = (torch.logsumexp(sliced, other) - cal.log_partition).exp()
        torch.testing.assert_close(cal.marginal(v), want, atol=1e-12, rtol=0)


def test_disconnected_graph_and_a_lonely_variable() -> None:
    gen = torch.Generator().manual_seed(1)
    g = FactorGraph([DiscreteFactor(("a", "b"), torch.rand(2, 3, generator=gen)),
                     DiscreteFactor(("c",), torch.rand(4, generator=gen)),
                     DiscreteFactor((), torch.tensor(2.5))], cardinalities={"d": 3})
    _check_exact(g, "min_fill")


# ---------------------------------------------------------------------------------------------
# pgmpy's bundled networks (test-only peer; read from its installed package at run time)
# ---------------------------------------------------------------------------------------------

NETWORKS = ["asia", "cancer", "sachs", "child", "alarm"]
SLOW_NETWORKS = ["insurance", "win95pts"]


def _pgmpy_normalised(name: str):  # type: ignore[no-untyped-def]
    """pgmpy's model with each CPD renormalised: the printed tables sum to 1 only to ~1e-7,
    and pgmpy prunes barren nodes (exact only for normalised tables), as our BayesianNetwork
    renormalises them on reading."""
    utils = pytest.importorskip("pgmpy.utils")
    model = utils.get_example_model(name)
    for cpd in model.get_cpds():
        cpd.normalize()
    return model


def _bif_path(name: str) -> str:
    pgmpy = pytest.importorskip("pgmpy")
    from importlib.resources import files
    return str(files(pgmpy) / "utils" / "example_models" / f"{name}.bif.gz")


def _compare_with_pgmpy(name: str) -> None:
    inference = pytest.importorskip("pgmpy.inference")
    bn = read_bif(_bif_path(name))
    model = _pgmpy_normalised(name)
    ve = inference.VariableElimination(model)
    gen = torch.Generator().manual_seed(len(name))
    leaves = [v for v in bn.variables if not any(v in bn.parents(u) for u in bn.variables)]
    observed = [leaves[int(i)] for i in torch.randperm(len(leaves), generator=gen)[:2]]
    sample = bn.sample(1, generator=gen)[0]
    for evidence in ({}, {v: bn.states[v][int(sample[bn.variables.index(v)])]
                          for v in observed}):
        cal = bn.query(evidence)
        marg = cal.marginals()
        for v in bn.variables:
            if v in evidence:
                continue
            q = ve.query([v], evidence=evidence or None, show_progress=False)
            order = [bn.states[v].index(s) for s in q.state_names[v]]
            torch.testing.assert_close(marg[v][order], torch.as_tensor(q.values),
                                       atol=1e-10, rtol=0, msg=f"{name}: p({v} | {evidence})")
        if evidence:
            p_e = ve.query(list(evidence), show_progress=False)
            idx = tuple(p_e.state_names[v].index(s) for v, s in zip(p_e.variables,
                                                                      (evidence[v] for v in
                                                                       p_e.variables)))
            assert float(cal.log_partition) == pytest.approx(math.log(p_e.values[idx]),
                                                             abs=1e-10)
        m = bn.map_assignment(evidence)
        _check_map(bn, evidence, m.assignment, m.log_value, ve if not evidence else None)


def _check_map(bn: BayesianNetwork, evidence: dict, assignment: dict, log_value: torch.Tensor,
               ve) -> None:  # type: ignore[no-untyped-def]
    """The MAP against brute force where the joint is small (and pgmpy's map_query, which
    builds the joint, without evidence: with evidence pgmpy 1.1.2 returns a non-maximal
    assignment on sachs); on larger networks no single-variable change may improve it."""
    ev = bn.evidence_indices(evidence)
    g = bn.factor_graph().reduce(ev)
    if math.prod(g.cardinalities.values()) <= 2e5:
        _, best = brute_map(g)
        assert float(log_value) == pytest.approx(float(best), abs=1e-10)
        if ve is not None:
            theirs = ve.map_query(show_progress=False)
            st = {v: bn.states[v].index(s) for v, s in theirs.items()}
            lp = bn.log_prob(torch.tensor([[st[v] for v in bn.variables]]))[0]
            assert float(log_value) == pytest.approx(float(lp), abs=1e-10)
        return
    full = {**assignment, **ev}
    x = torch.tensor([[full[v] for v in bn.variables]])
    assert float(bn.log_prob(x)[0]) == pytest.approx(float(log_value), abs=1e-12)
    flips = []
    for i, v in enumerate(bn.variables):
        if v in ev:
            continue
        for s in range(bn.cardinalities[v]):
            y = x.clone()
            y[0, i] = s
            flips.append(y)
    assert float(bn.log_prob(torch.cat(flips)).max()) <= float(log_value) + 1e-12


@pytest.mark.parametrize("name", NETWORKS)
def test_marginals_and_map_equal_pgmpy_variable_elimination(name: str) -> None:
    _compare_with_pgmpy(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", SLOW_NETWORKS)
def test_marginals_and_map_equal_pgmpy_on_larger_networks(name: str) -> None:
    _compare_with_pgmpy(name)


def test_bif_reading_keeps_states_and_tables() -> None:
    bn = read_bif(_bif_path("asia"))
    assert bn.states["asia"] == ("yes", "no")
    assert bn.parents("either") == ("lung", "tub")
    # "(no, yes) 0.7, 0.3": bronc = no (state 1), either = yes (state 0)
    torch.testing.assert_close(bn.cpds["dysp"].table[1, 0], torch.tensor([0.7, 0.3]))
    text = """network x { }
    variable a { type discrete [ 2 ] { on, off }; }
    variable b { type discrete [ 3 ] { l, m, h }; }
    probability ( a ) { table 0.3, 0.7; }
    probability ( b | a ) { (off) 0.2, 0.3, 0.5; default 0.1, 0.1, 0.8; }"""
    bn = read_bif(text)
    torch.testing.assert_close(bn.cpds["b"].table, torch.tensor([[0.1, 0.1, 0.8],
                                                                 [0.2, 0.3, 0.5]]))
    with pytest.raises(ValueError, match="no variable block"):
        read_bif("variable a { type discrete [ 2 ] { x, y }; } probability ( a | q ) { }")


# ---------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------


def test_inconsistent_cardinalities_are_named() -> None:
    with pytest.raises(ValueError, match=r"variable 'b' has 3 states .* but 2 in factors\[1\]"):
        FactorGraph([DiscreteFactor(("a", "b"), torch.ones(2, 3)),
                     DiscreteFactor(("b",), torch.ones(2))])
    a = TabularCPD("a", [0.5, 0.5])
    with pytest.raises(ValueError, match="parent 'a' has 2 states but axis 0"):
        BayesianNetwork([a, TabularCPD("b", torch.full((3, 2), 0.5), ["a"])])


def test_negative_or_nonfinite_potentials_are_refused() -> None:
    with pytest.raises(ValueError, match=r"factor \(a, b\): negative potential -0.5 at index "
                                         r"\(1, 0\)"):
        DiscreteFactor(("a", "b"), torch.tensor([[1.0, 2.0], [-0.5, 1.0]]))
    with pytest.raises(ValueError, match="must be finite"):
        DiscreteFactor(("a",), torch.tensor([1.0, math.inf]))
    with pytest.raises(ValueError, match=r"sums to 1\.2"):
        TabularCPD("a", [0.5, 0.7])


def test_evidence_outside_a_domain() -> None:
    g = FactorGraph([DiscreteFactor(("a", "b"), torch.ones(2, 3))])
    with pytest.raises(ValueError, match=r"evidence b=3 is outside its domain 0..2"):
        g.reduce({"b": 3})
    with pytest.raises(ValueError, match="'z', which is not a variable"):
        g.reduce({"z": 0})
    bn = read_bif(_bif_path("asia"))
    with pytest.raises(ValueError, match=r"evidence smoke='maybe' is outside its domain"):
        bn.query({"smoke": "maybe"})


def test_a_cyclic_bayesian_network_is_refused_with_its_cycle() -> None:
    cpds = [TabularCPD("a", torch.full((2, 2), 0.5), ["c"]),
            TabularCPD("b", torch.full((2, 2), 0.5), ["a"]),
            TabularCPD("c", torch.full((2, 2), 0.5), ["b"])]
    with pytest.raises(ValueError, match=r"directed cycle \(.*<-.*\), so it is not a Bayesian"):
        BayesianNetwork(cpds)
