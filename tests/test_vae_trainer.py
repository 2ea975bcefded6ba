"""The gradient trainer: exact resume, early stopping, checkpoints, data parallelism."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from genmodels.learning.trainer import Trainer, noise_shard, per_sample_noise, sharded_batches
from genmodels.models.vae import VAE


def toy_data(n: int = 64) -> Tensor:
    g = torch.Generator().manual_seed(11)
    x = torch.randn(n, 3, generator=g, dtype=torch.float64)
    y = torch.tanh(x @ torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)) + 0.1 * torch.randn(
        n, generator=g, dtype=torch.float64)
    return torch.cat([x, y[:, None]], dim=1)


class Regression(nn.Module):
    """A tiny MLP regression; with ``noisy`` its loss also consumes the generator (like a VAE)."""

    def __init__(self, seed: int = 0, noisy: bool = False) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.net = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1)).double()
        self.noisy = noisy

    def loss(self, batch: Tensor, generator: torch.Generator | None = None) -> Tensor:
        pred = self.net(batch[:, :3]).squeeze(-1)
        out = ((pred - batch[:, 3]) ** 2).mean()
        if self.noisy:
            w = self.net[0].weight
            out = out + 0.1 * (w * torch.randn(w.shape, generator=generator, dtype=w.dtype)).sum()
        return out


def vae_data(n: int = 64) -> Tensor:
    """Binary data for the data-parallel VAE test: 64 rows of 12 correlated bits."""
    g = torch.Generator().manual_seed(12)
    z = torch.rand(n, 3, generator=g, dtype=torch.float64) < 0.5
    bits = z.repeat_interleave(4, 1).to(torch.float64)
    flip = torch.rand(n, 12, generator=g, dtype=torch.float64) < 0.1
    return torch.where(flip, 1.0 - bits, bits)


#: the data-parallel VAEs: mode -> make_vae's (recognition, n_samples)
RECOGNITION = {"vae": ("diagonal", 2), "gumbel": ("gumbel", 2), "score": ("score", 2),
               "score1": ("score", 1)}


def make_vae(recognition: str = "diagonal", n_samples: int = 2) -> VAE:
    """The VAE of the data-parallel test (Monte Carlo noise in every step; diagonal Gaussian,
    Gumbel-softmax or score-function recognition)."""
    return VAE(12, 2, hidden=[8], likelihood="bernoulli", n_samples=n_samples, seed=0,
               recognition=recognition, dtype=torch.float64)


def _params(m: nn.Module) -> list[Tensor]:
    return [p.detach().clone() for p in m.parameters()]


@pytest.mark.parametrize("n,world", [(40, 1), (41, 2), (37, 3)])
def test_sharded_order_is_distributed_samplers(n: int, world: int):
    from torch.utils.data import DistributedSampler

    for rank in range(world):
        sampler = DistributedSampler(range(n), num_replicas=world, rank=rank, shuffle=True,
                                     seed=5, drop_last=True)
        sampler.set_epoch(3)
        ours = torch.cat(sharded_batches(n, 4 * world, epoch=3, seed=5, rank=rank,
                                         world_size=world))
        assert ours.tolist() == list(sampler)


def test_sharded_batches_union_is_the_global_batch():
    single = sharded_batches(40, 8, epoch=2, seed=5)
    shards = [sharded_batches(40, 8, epoch=2, seed=5, rank=r, world_size=2) for r in range(2)]
    assert len(single) == len(shards[0]) == len(shards[1]) == 5
    for j in range(5):
        union = torch.cat([shards[0][j], shards[1][j]])
        assert sorted(union.tolist()) == sorted(single[j].tolist())
    # every datum once per epoch
    assert sorted(torch.cat(single).tolist()) == list(range(40))


def test_training_decreases_loss_and_is_reproducible():
    data = toy_data()
    a, b = Regression(noisy=True), Regression(noisy=True)
    ra = Trainer(a, epochs=5, batch_size=16, lr=0.02, seed=1, progress=False).fit(data)
    Trainer(b, epochs=5, batch_size=16, lr=0.02, seed=1, progress=False).fit(data)
    assert ra.history["train_loss"][-1] < ra.history["train_loss"][0]
    for p, q in zip(_params(a), _params(b)):
        assert torch.equal(p, q)


def test_interrupted_then_resumed_equals_uninterrupted(tmp_path: Path):
    data = toy_data()
    ref = Regression(noisy=True)
    sched = lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.7)  # noqa: E731
    ref_result = Trainer(ref, epochs=4, batch_size=16, lr=0.02, seed=7, progress=False,
                         scheduler=sched).fit(data)

    class Interrupt(Exception):
        pass

    def stop(epoch: int, step: int, loss: float) -> None:
        if epoch == 2 and step == 1:  # mid-epoch: the checkpoint holds the end of epoch 2
            raise Interrupt

    ck = tmp_path / "ck.pt"
    first = Regression(noisy=True)
    with pytest.raises(Interrupt):
        Trainer(first, epochs=4, batch_size=16, lr=0.02, seed=7, progress=False, callback=stop,
                checkpoint=ck, scheduler=sched).fit(data)
    assert ck.exists()
    resumed = Regression(seed=99, noisy=True)  # different init: everything must come from ck
    result = Trainer(resumed, epochs=4, batch_size=16, lr=0.02, seed=7, progress=False,
                     checkpoint=ck, resume=True, scheduler=sched).fit(data)
    for p, q in zip(_params(ref), _params(resumed)):
        assert torch.equal(p, q)
    assert result.history["train_loss"] == ref_result.history["train_loss"]
    assert result.epochs_run == 4
    assert not list(tmp_path.glob("*.tmp"))  # atomic writes leave no temporaries


def test_early_stopping_restores_best():
    data = toy_data()
    model = Regression()
    seen: list[dict[str, Tensor]] = []

    def metric(m: nn.Module, val: Tensor) -> float:
        seen.append({k: v.clone() for k, v in m.state_dict().items()})
        return [3.0, 1.0, 2.0, 2.5, 0.5][len(seen) - 1]  # best at epoch 2, then worse twice

    r = Trainer(model, epochs=5, batch_size=16, seed=0, progress=False, val_data=data,
                val_metric=metric, patience=2).fit(data)
    assert r.stopped_early and r.epochs_run == 4 and r.best_epoch == 2
    for k, v in model.state_dict().items():
        assert torch.equal(v, seen[1][k])


def test_bad_arguments():
    with pytest.raises(ValueError, match="loss"):
        Trainer(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="epochs"):
        Trainer(Regression(), epochs=0)
    with pytest.raises(ValueError, match="non-empty"):
        Trainer(Regression(), progress=False).fit(torch.zeros(0, 4))


def test_nonfinite_loss_is_an_error():
    data = toy_data()
    data[:, 3] = 1e200
    with pytest.raises(ValueError, match="training loss"):
        Trainer(Regression(), epochs=1, batch_size=16, progress=False).fit(data)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def two_gloo_runs(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    """One two-process launch of _vae_ddp_worker.py (both models), shared by the tests."""
    tmp_path = tmp_path_factory.mktemp("ddp")
    worker = Path(__file__).with_name("_vae_ddp_worker.py")
    src = str(Path(__file__).resolve().parents[1] / "src")
    for _attempt in range(3):  # a fresh port each time: the free one found may be taken
        port = _free_port()   # by another test process before gloo binds it
        procs = []
        for rank in range(2):
            env = dict(os.environ, RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank),
                       MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
                       PYTHONPATH=src + os.pathsep + os.environ.get("PYTHONPATH", ""))
            procs.append(subprocess.Popen(
                [sys.executable, str(worker), str(tmp_path / f"r{rank}.pt")],
                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
        outs_text = [p.communicate(timeout=120)[0].decode() for p in procs]
        if all(p.returncode == 0 for p in procs):
            break
    assert all(p.returncode == 0 for p in procs), "\n".join(t[-3000:] for t in outs_text)
    outs = [torch.load(tmp_path / f"r{r}.pt") for r in range(2)]
    assert [o["world"] for o in outs] == [2, 2]
    return outs


@pytest.mark.distributed
def test_two_gloo_processes_equal_one_process(two_gloo_runs: list[dict]):
    """DDP over two processes, each with half of every global batch, gives the single-process
    gradient of the global batch (first step) and the same parameters after two epochs."""
    outs = [o["toy"] for o in two_gloo_runs]

    data = toy_data()
    model = Regression(seed=0)
    grads: list[list[Tensor]] = []

    def keep(epoch: int, step: int, loss: float) -> None:
        if epoch == 0 and step == 0:
            grads.append([p.grad.detach().clone() for p in model.parameters()])

    Trainer(model, epochs=2, batch_size=16, seed=3, progress=False, callback=keep,
            optimizer=lambda p: torch.optim.SGD(p, lr=0.1)).fit(data)
    for o in outs:
        for g2, g1 in zip(o["grads"], grads[0]):
            torch.testing.assert_close(g2, g1, rtol=1e-12, atol=1e-14)
        for p2, p1 in zip(o["params"], _params(model)):
            torch.testing.assert_close(p2, p1, rtol=1e-10, atol=1e-12)


@pytest.mark.distributed
@pytest.mark.parametrize("mode", ["vae", "gumbel", "score", "score1"])
def test_two_gloo_processes_train_the_vae_as_one(two_gloo_runs: list[dict], mode: str):
    """The VAE itself, whose loss draws Monte Carlo noise every step: with the noise drawn by
    global sample index (per_sample_noise), two processes give the single-process gradients and
    parameters. (With seed + rank noise, as before, the first gradients already differ; the
    score-function estimator drew its samples from the generator directly until it drew them
    by global index too.) With two samples per datum the score-function baseline is the
    leave-one-out mean of the same datum's other sample; with one ("score1") it is the running
    mean of f, which must be the global batch's (``global_batch_mean``): with each process's
    own half-batch mean the parameters part after the first step."""
    outs = [o[mode] for o in two_gloo_runs]
    torch.set_num_threads(1)
    model = make_vae(*RECOGNITION[mode])
    grads: list[list[Tensor]] = []

    def keep(epoch: int, step: int, loss: float) -> None:
        if epoch == 0 and step == 0:
            grads.append([p.grad.detach().clone() for p in model.parameters()])

    Trainer(model, epochs=2, batch_size=16, seed=3, lr=1e-2, progress=False,
            callback=keep).fit(vae_data())
    for o in outs:
        for g2, g1 in zip(o["grads"], grads[0]):
            torch.testing.assert_close(g2, g1, rtol=1e-10, atol=1e-12)
        for p2, p1 in zip(o["params"], _params(model)):
            torch.testing.assert_close(p2, p1, rtol=1e-8, atol=1e-10)


def test_per_sample_noise_slices_the_global_draw():
    def draw(shape):
        return torch.randn(shape, generator=torch.Generator().manual_seed(0))

    whole = per_sample_noise(draw, (2, 6, 3), dim=-2)
    assert torch.equal(whole, draw((2, 6, 3)))
    with noise_shard(1, 3):
        part = per_sample_noise(draw, (2, 2, 3), dim=-2)
    assert torch.equal(part, whole[:, 1::3])
