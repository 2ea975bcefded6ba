"""EM and gradient learning across processes with ``torch.distributed``.

EM parallelises exactly over data: every process computes the E step's additive sufficient
statistics on its own shard, one all-reduce sums them, and every process then takes the same
M step (STYLE.md §6). The result equals single-process EM on the union of the shards, up to the
order of floating-point summation.

Launch with ``torchrun`` (``torchrun --standalone --nproc_per_node=2 script.py``), or any
launcher that sets the usual ``MASTER_ADDR``/``MASTER_PORT``/``RANK``/``WORLD_SIZE``. Gradient
learning uses ``torch.nn.parallel.DistributedDataParallel`` (see ``genmodels.learning.trainer``).
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from genmodels.learning.em import EMResult, EStep, run_em


def is_distributed() -> bool:
    """True inside an initialised process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def init_process_group(backend: str | None = None) -> tuple[int, int]:
    """Initialise the default process group from the environment (as set by ``torchrun``).

    Returns ``(rank, world_size)``; ``(0, 1)`` when not launched under a distributed launcher.
    The backend defaults to ``nccl`` when CUDA is available and ``gloo`` otherwise.
    """
    if "WORLD_SIZE" not in os.environ or int(os.environ["WORLD_SIZE"]) == 1:
        return 0, 1
    if not dist.is_initialized():
        backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
        dist.init_process_group(backend=backend)
    return dist.get_rank(), dist.get_world_size()


def all_reduce_estep(estep: EStep, group: Any = None) -> EStep:
    """Sum an E step over all processes with ONE all-reduce of the packed statistics."""
    if not is_distributed():
        return estep
    keys = sorted(estep.stats)
    parts = [estep.stats[k].reshape(-1) for k in keys]
    ref = parts[0] if parts else estep.log_likelihood
    extra = torch.stack([estep.log_likelihood.to(ref.dtype),
                         torch.as_tensor(estep.n, dtype=ref.dtype, device=ref.device)])
    flat = torch.cat([p.to(ref.dtype) for p in parts] + [extra])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM, group=group)
    out: dict[str, torch.Tensor] = {}
    offset = 0
    for k in keys:
        t = estep.stats[k]
        out[k] = flat[offset: offset + t.numel()].reshape(t.shape).to(t.dtype)
        offset += t.numel()
    return EStep(out, flat[offset].to(estep.log_likelihood.dtype), float(flat[offset + 1]))


def broadcast_module(module: nn.Module, src: int = 0, group: Any = None) -> None:
    """Copy every parameter and buffer of ``module`` from process ``src`` to all others, so all
    processes start EM from the same initialisation."""
    if not is_distributed():
        return
    with torch.no_grad():
        for t in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(t.data, src=src, group=group)


def shard(data: torch.Tensor, rank: int | None = None, world_size: int | None = None
          ) -> torch.Tensor:
    """This process's contiguous share of the rows of ``data`` (shares differ by at most one)."""
    if rank is None or world_size is None:
        rank, world_size = (dist.get_rank(), dist.get_world_size()) if is_distributed() else (0, 1)
    return torch.tensor_split(data, world_size, dim=0)[rank]


def run_em_distributed(model: Any, local_batches: Any, *, broadcast: bool = True,
                       **kwargs: Any) -> EMResult:
    """``run_em`` whose E step is summed over all processes.

    local_batches: this process's shard (a list of batches or a callable, as for ``run_em``).
    broadcast: first copy rank 0's parameters to every process (``model`` must be a module).
    Every process ends with identical parameters and the same log-likelihood history.
    """
    if broadcast and isinstance(model, nn.Module):
        broadcast_module(model)
    return run_em(model, local_batches, reduce=all_reduce_estep, **kwargs)
