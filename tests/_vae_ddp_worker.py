"""One process of the two-process data-parallel trainer tests (launched by test_vae_trainer.py).

Usage: python _vae_ddp_worker.py OUT_FILE (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT set as
torchrun sets them). Trains the toy regression model (SGD), then a VAE with Gaussian, one with
Gumbel-softmax and two with score-function (REINFORCE) recognition — two samples per datum and
one ("score1": the moving-average baseline) — (Monte Carlo noise, Adam), each for two epochs, and
saves for each, under "toy", "vae", "gumbel", "score" and "score1", the
gradients this process saw at the first step after DDP's all-reduce, and the final parameters.
"""

import sys

import torch
import torch.distributed as dist

from genmodels.learning.trainer import Trainer, init_distributed

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from test_vae_trainer import RECOGNITION, Regression, make_vae, toy_data, vae_data


def train(mode: str) -> dict:
    if mode in RECOGNITION:
        data, model = vae_data(), make_vae(*RECOGNITION[mode])
        kw: dict = dict(lr=1e-2)
    else:
        data, model = toy_data(), Regression(seed=0)
        kw = dict(optimizer=lambda p: torch.optim.SGD(p, lr=0.1))
    grads: list[list[torch.Tensor]] = []

    def keep(epoch: int, step: int, loss: float) -> None:
        if epoch == 0 and step == 0:
            grads.append([p.grad.detach().clone() for p in model.parameters()])

    Trainer(model, epochs=2, batch_size=16, seed=3, progress=False, callback=keep, **kw).fit(data)
    return {"grads": grads[0], "params": [p.detach() for p in model.parameters()]}


if __name__ == "__main__":
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)
    rank, world = init_distributed("gloo")
    out = {mode: train(mode) for mode in ("toy", *RECOGNITION)}  # one launch, all tests
    torch.save({**out, "rank": rank, "world": world}, sys.argv[1])
    dist.barrier()  # both ranks done before either tears gloo down (an early teardown under
    dist.destroy_process_group()  # load aborted the other: "terminate called without ...")
