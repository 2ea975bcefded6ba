"""Belief propagation: sum-product on a chain equals the library's forward–backward,
max-product equals Viterbi; exact on trees; on loopy graphs its error against the junction
tree is reported; damping and the convergence report."""

from __future__ import annotations

import pytest
import torch
from _graph_oracles import brute_marginals, random_bounded_treewidth

from genmodels.inference.graphs import (
    DiscreteFactor,
    FactorGraph,
    JunctionTree,
    belief_propagation,
    max_product,
    sum_product,
)
from genmodels.inference.hmm import forward_backward, viterbi


def _hmm_chain(gen: torch.Generator, T: int, K: int) -> tuple[FactorGraph, tuple]:
    log_init = torch.log_softmax(torch.randn(K, generator=gen), 0)
    log_trans = torch.log_softmax(2 * torch.randn(K, K, generator=gen), 1)
    log_lik = 2 * torch.randn(T, K, generator=gen)
    fs = [DiscreteFactor(("x0",), log_values=log_init + log_lik[0])]
    fs += [DiscreteFactor((f"x{t - 1}", f"x{t}"), log_values=log_trans + log_lik[t][None, :])
           for t in range(1, T)]
    return FactorGraph(fs), (log_init, log_trans, log_lik)


@pytest.mark.parametrize("T", [1, 2, 17])
def test_sum_product_on_a_chain_equals_forward_backward(T: int) -> None:
    gen = torch.Generator().manual_seed(T)
    g, args = _hmm_chain(gen, T, 4)
    res = sum_product(g)
    post = forward_backward(*args)
    got = torch.stack([res.marginals[f"x{t}"] for t in range(T)])
    torch.testing.assert_close(got, post.smoothed_probs, atol=1e-12, rtol=0)
    assert float(res.log_partition) == pytest.approx(float(post.log_marginal), abs=1e-10)
    assert res.converged and res.iterations <= T + 2


def test_max_product_on_a_chain_equals_viterbi() -> None:
    gen = torch.Generator().manual_seed(5)
    g, args = _hmm_chain(gen, 25, 3)
    res = max_product(g)
    path = viterbi(*args)
    assert [res.assignment[f"x{t}"] for t in range(25)] == path.states.tolist()
    assert float(res.log_partition) == pytest.approx(float(path.log_joint), abs=1e-10)


def _random_tree(gen: torch.Generator, n: int) -> FactorGraph:
    card = [int(torch.randint(2, 5, (1,), generator=gen)) for _ in range(n)]
    fs = [DiscreteFactor((f"v{i}",), torch.rand(card[i], generator=gen)) for i in range(n)]
    for i in range(1, n):
        p = int(torch.randint(i, (1,), generator=gen))
        fs.append(DiscreteFactor((f"v{p}", f"v{i}"), torch.rand(card[p], card[i],
                                                                generator=gen)))
    # one factor of arity three keeps it a tree only if its scope spans three components:
    # attach a new leaf pair through a triple factor
    fs.append(DiscreteFactor(("v0", "w1", "w2"), torch.rand(card[0], 2, 3, generator=gen)))
    return FactorGraph(fs)


@pytest.mark.parametrize("seed", range(3))
def test_loopy_bp_is_exact_on_trees(seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    g = _random_tree(gen, 9)
    assert g.is_tree()
    log_z, marg = brute_marginals(g)
    for damping in (0.0, 0.5):
        res = belief_propagation(g, damping=damping, tol=1e-13, max_iter=500)
        assert res.converged
        for v in g.variables:
            torch.testing.assert_close(res.marginals[v], marg[v], atol=1e-10, rtol=0)
        # the Bethe free energy is exact on a tree
        assert float(res.log_partition) == pytest.approx(float(log_z), abs=1e-9)


def test_zero_potentials_stay_exact_on_a_tree() -> None:
    """Hard zeros (−∞ log-potentials) pass through the exclusions without NaN."""
    t = torch.tensor([[1.0, 0.0, 2.0], [0.0, 3.0, 0.0]])
    g = FactorGraph([DiscreteFactor(("a", "b"), t), DiscreteFactor(("b", "c"), t.T @ t),
                     DiscreteFactor(("a",), torch.tensor([0.0, 1.0]))])
    res = sum_product(g)
    log_z, marg = brute_marginals(g)
    for v in g.variables:
        torch.testing.assert_close(res.marginals[v], marg[v], atol=1e-12, rtol=0)
    assert float(res.log_partition) == pytest.approx(float(log_z), abs=1e-12)


def _ising(gen: torch.Generator, side: int, coupling: float, field: float) -> FactorGraph:
    name = [[f"s{i}_{j}" for j in range(side)] for i in range(side)]
    fs = []
    for i in range(side):
        for j in range(side):
            h = field * torch.randn((), generator=gen)
            fs.append(DiscreteFactor((name[i][j],), log_values=torch.stack([-h, h])))
            for di, dj in ((0, 1), (1, 0)):
                if i + di < side and j + dj < side:
                    J = coupling * torch.randn((), generator=gen)
                    fs.append(DiscreteFactor((name[i][j], name[i + di][j + dj]),
                                             log_values=torch.stack([torch.stack([J, -J]),
                                                                     torch.stack([-J, J])])))
    return FactorGraph(fs)


def test_loopy_bp_error_on_a_grid_is_reported_against_the_junction_tree() -> None:
    gen = torch.Generator().manual_seed(0)
    g = _ising(gen, 5, 0.5, 0.5)
    cal = JunctionTree(g).calibrate()
    exact = cal.marginals()
    res = belief_propagation(g, tol=1e-12, max_iter=1000)
    assert res.converged
    err = max(float((res.marginals[v] - exact[v]).abs().max()) for v in g.variables)
    z_err = abs(float(res.log_partition - cal.log_partition))
    # approximate, not exact, and not far off at moderate coupling
    assert 1e-5 < err < 0.1
    assert 1e-6 < z_err < 1.0


def test_damping_and_the_convergence_report() -> None:
    gen = torch.Generator().manual_seed(1)
    g = _ising(gen, 6, 1.0, 0.1)  # strong, frustrated couplings: undamped BP oscillates
    short = belief_propagation(g, max_iter=5, tol=1e-12)
    assert not short.converged and short.iterations == 5 and short.max_change.shape == (5,)
    assert float(short.max_change[-1]) > 1e-3
    undamped = belief_propagation(g, max_iter=600, tol=1e-8)
    damped = belief_propagation(g, max_iter=600, tol=1e-8, damping=0.3)
    assert damped.converged and float(damped.max_change[-1]) <= 1e-8
    assert damped.iterations < 0.8 * undamped.iterations


def test_sum_product_refuses_a_loopy_graph_and_bad_arguments() -> None:
    gen = torch.Generator().manual_seed(0)
    g = random_bounded_treewidth(gen, 6, 2)
    with pytest.raises(ValueError, match="has a cycle"):
        sum_product(g)
    with pytest.raises(ValueError, match=r"damping must be in \[0, 1\)"):
        belief_propagation(g, damping=1.0)
    with pytest.raises(ValueError, match="kind"):
        belief_propagation(g, kind="mean")
