"""Distributed EM: two gloo processes on localhost, each with half the data, end with the
parameters of single-process EM on all of it."""

import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from em_toy import UnitVarianceMixture, toy_data

from genmodels.distributed import all_reduce_estep, run_em_distributed, shard
from genmodels.learning.em import run_em

pytestmark = pytest.mark.distributed


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, out: str) -> None:
    torch.set_default_dtype(torch.float64)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world)
    try:
        y = toy_data(1001)
        model = UnitVarianceMixture(2)
        if rank == 1:  # a different start on rank 1: broadcast must overwrite it
            model.means = torch.tensor([10.0, 20.0])
        result = run_em_distributed(model, [shard(y)], max_iter=25, tol=0.0, warn=False)
        if rank == 0:
            torch.save({"means": model.means, "weights": model.weights,
                        "ll": result.log_likelihood}, out)
        else:
            torch.save({"means": model.means}, out + ".1")
    finally:
        dist.destroy_process_group()


def test_two_gloo_processes_equal_single_process(tmp_path):
    out = str(tmp_path / "rank0.pt")
    mp.spawn(_worker, args=(2, _free_port(), out), nprocs=2, join=True)
    got = torch.load(out)
    other = torch.load(out + ".1")

    model = UnitVarianceMixture(2)
    ref = run_em(model, [toy_data(1001)], max_iter=25, tol=0.0, warn=False)
    torch.testing.assert_close(got["means"], model.means, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(got["weights"], model.weights, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(other["means"], got["means"], rtol=0, atol=0)
    assert got["ll"] == pytest.approx(ref.log_likelihood, rel=1e-12)


def test_reduce_is_identity_without_process_group():
    model = UnitVarianceMixture(2)
    est = model.expected_stats(toy_data(10))
    assert all_reduce_estep(est) is est
    assert shard(torch.arange(10)).tolist() == list(range(10))


def test_torchrun_launch_equals_one_process(tmp_path):
    """The example launched by torchrun (two gloo processes) gives one process's result."""
    import subprocess
    import sys
    from pathlib import Path

    script = str(Path(__file__).resolve().parents[1] / "examples" / "distributed_em.py")
    env = {**__import__("os").environ, "OMP_NUM_THREADS": "1"}
    two, one = str(tmp_path / "two.pt"), str(tmp_path / "one.pt")
    launched = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                               "--nproc_per_node=2", script, "--out", two], check=True,
                              env=env, capture_output=True, text=True, timeout=300)
    assert "2 process(es)" in launched.stdout
    subprocess.run([sys.executable, script, "--out", one], check=True, env=env,
                   capture_output=True, timeout=300)
    a, b = torch.load(two), torch.load(one)
    torch.testing.assert_close(a["means"], b["means"], rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(a["weights"], b["weights"], rtol=1e-10, atol=1e-12)
    assert a["log_likelihood"] == pytest.approx(b["log_likelihood"], rel=1e-12)
