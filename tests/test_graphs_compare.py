"""Exact vs approximate on one model object: the HMM (forward–backward vs BP, mean field,
Gibbs) and a Bayesian network (junction tree vs loopy BP, mean field, Gibbs)."""

from __future__ import annotations

import pytest
import torch

from genmodels.inference.compare import (
    chain_factor_graph,
    compare_hmm,
    compare_network,
    plot_comparison,
)
from genmodels.inference.graphs import read_bif
from genmodels.inference.hmm import forward_backward


def _hmm(seed: int, T: int = 12, K: int = 3) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    return (torch.log_softmax(torch.randn(K, generator=g), 0),
            torch.log_softmax(3 * torch.randn(K, K, generator=g), 1),
            2 * torch.randn(T, K, generator=g))


def test_hmm_side_by_side(tmp_path) -> None:  # type: ignore[no-untyped-def]
    args = _hmm(0)
    comp = compare_hmm(*args, gibbs_sweeps=300, gibbs_chains=16)
    by = {m.name: m for m in comp.methods}
    assert set(by) == {"belief propagation", "mean field", "Gibbs sampling"}
    # BP on the chain is exact (a tree), including its log Z
    assert by["belief propagation"].max_error < 1e-12
    assert float(by["belief propagation"].log_partition) == pytest.approx(
        float(comp.exact.log_partition), abs=1e-10)
    # mean field is biased and its ELBO is below log p̂(y)
    assert by["mean field"].max_error > 1e-3
    assert float(by["mean field"].log_partition) < float(comp.exact.log_partition)
    # Gibbs within its Monte Carlo error
    gb = by["Gibbs sampling"]
    assert gb.stderr is not None
    z = max(float(((gb.marginals[v] - comp.exact.marginals[v]).abs()
                   / gb.stderr[v].clamp_min(1.0 / 4800)).max()) for v in gb.marginals)
    assert z < 6.0
    assert "forward–backward" in comp.table()
    pytest.importorskip("matplotlib")
    assert plot_comparison(comp, tmp_path / "hmm.png").stat().st_size > 1000


def test_the_chain_graph_is_the_hmm() -> None:
    args = _hmm(1)
    g = chain_factor_graph(*args)
    from genmodels.inference.graphs import JunctionTree
    cal = JunctionTree(g).calibrate()
    post = forward_backward(*args)
    assert float(cal.log_partition) == pytest.approx(float(post.log_marginal), abs=1e-10)


def test_bayesian_network_side_by_side() -> None:
    pgmpy = pytest.importorskip("pgmpy")
    from importlib.resources import files
    bn = read_bif(str(files(pgmpy) / "utils" / "example_models" / "child.bif.gz"))
    comp = compare_network(bn, {"LowerBodyO2": "<5", "RUQO2": "12+"}, name="child",
                           gibbs_sweeps=200, gibbs_chains=8)
    by = {m.name: m for m in comp.methods}
    # loopy BP on a loopy network: approximate, its error reported against the junction tree
    assert 1e-6 < by["belief propagation"].max_error < 0.5
    assert by["mean field"].max_error > by["belief propagation"].max_error
    assert float(by["mean field"].log_partition) <= float(comp.exact.log_partition) + 1e-12


def test_lgssm_rts_vs_particle_smoother(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from genmodels.inference.compare import compare_lgssm
    from genmodels.inference.kalman import LGSSMParams, sample_lgssm

    P = LGSSMParams(torch.zeros(2), torch.eye(2), torch.tensor([[0.9, 0.1], [0.0, 0.8]]),
                    0.3 * torch.eye(2), torch.tensor([[1.0, 0.5]]), 0.5 * torch.eye(1))
    _, y = sample_lgssm(P, 12, generator=torch.Generator().manual_seed(0))
    comp = compare_lgssm(P, y, num_particles=150, num_runs=8, seed=1)
    (ps,) = comp.methods
    assert ps.stderr is not None
    z = max(float(((ps.marginals[v] - comp.exact.marginals[v]).abs() / ps.stderr[v]).max())
            for v in ps.marginals)
    assert z < 6.0  # 24 means, 8 runs each: a t(7) spread, hence the wide bound
    assert ps.max_error > 0
    assert float(ps.log_partition) == pytest.approx(float(comp.exact.log_partition), abs=0.5)
    pytest.importorskip("matplotlib")
    assert plot_comparison(comp, tmp_path / "lgssm.png").exists()


def test_example_runs_tiny() -> None:
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / "exact_vs_approximate.py"
    spec = importlib.util.spec_from_file_location("exact_vs_approximate", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = mod.main(["--tiny"])
    assert out["hmm"]["belief propagation"] < 1e-12
    assert out["hmm"]["mean field"] > 1e-3
    assert out["rbm"]["belief propagation"] < out["rbm"]["mean field"]


def test_rbm_enumeration_vs_ais_vs_mean_field(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from genmodels.inference.compare import compare_rbm
    from genmodels.models.harmonium import Harmonium

    m = Harmonium(("bernoulli", 4), ("bernoulli", 7), seed=0, init_scale=1.0)
    g = torch.Generator().manual_seed(1)
    m.set_parameters(b_x=torch.randn(4, generator=g), b_y=0.5 * torch.randn(7, generator=g))
    comp = compare_rbm(m, ais_chains=50, ais_temperatures=500, gibbs_sweeps=200, gibbs_chains=8)
    by = {x.name: x for x in comp.methods}
    from genmodels.inference.partition import exact_log_partition
    with torch.no_grad():
        enum = float(exact_log_partition(m).log_z)
    assert float(comp.exact.log_partition) == pytest.approx(enum, abs=1e-10)  # JT = enumeration
    ais = by["AIS"]
    assert ais.log_partition_stderr is not None
    se = ais.log_partition_stderr
    assert abs(float(ais.log_partition) - enum) < 6 * se + 1e-3
    assert float(by["mean field"].log_partition) < enum  # the ELBO is a lower bound
    assert 0 < by["belief propagation"].max_error < by["mean field"].max_error
    assert "—" in comp.table()
    pytest.importorskip("matplotlib")
    assert plot_comparison(comp, tmp_path / "rbm.png").exists()
