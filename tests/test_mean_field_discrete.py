"""Naive mean field on discrete factor graphs (ELBO ≤ log Z, never decreasing, exact
without interactions) and Gibbs sampling (marginals within their standard errors)."""

from __future__ import annotations

import pytest
import torch
from _graph_oracles import brute_marginals, random_bounded_treewidth

from genmodels.inference.graphs import DiscreteFactor, FactorGraph, JunctionTree, gibbs_marginals
from genmodels.inference.mean_field import mean_field


@pytest.mark.parametrize("seed", range(3))
def test_mean_field_elbo_never_decreases_and_bounds_log_z(seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    g = random_bounded_treewidth(gen, 9, 3)
    log_z, _ = brute_marginals(g)
    res = mean_field(g, generator=seed, tol=1e-13)
    h = res.elbo_history
    assert res.converged
    assert bool((h[1:] - h[:-1] >= -1e-12).all())
    assert float(res.elbo) <= float(log_z) + 1e-12
    assert float(log_z - res.elbo) > 1e-6  # interactions: the bound is not tight


def test_mean_field_is_exact_without_interactions() -> None:
    gen = torch.Generator().manual_seed(0)
    fs = [DiscreteFactor((v,), torch.rand(3, generator=gen)) for v in "abc"]
    fs.append(DiscreteFactor(("a",), torch.tensor([0.0, 1.0, 2.0])))  # a hard zero
    g = FactorGraph(fs)
    log_z, marg = brute_marginals(g)
    res = mean_field(g)
    assert float(res.elbo) == pytest.approx(float(log_z), abs=1e-12)
    for v in "abc":
        torch.testing.assert_close(res.marginals[v], marg[v], atol=1e-12, rtol=0)


def test_gibbs_marginals_agree_with_the_junction_tree_within_their_errors() -> None:
    gen = torch.Generator().manual_seed(4)
    g = random_bounded_treewidth(gen, 7, 2)
    exact = JunctionTree(g).calibrate().marginals()
    res = gibbs_marginals(g, num_sweeps=400, burn_in=50, num_chains=32, generator=1)
    z = max(float(((res.marginals[v] - exact[v]).abs() / res.stderr[v]).max())
            for v in g.variables)
    assert z < 5.0
    assert res.num_samples == 400 * 32
    with pytest.raises(ValueError, match="num_chains"):
        gibbs_marginals(g, num_chains=1)
