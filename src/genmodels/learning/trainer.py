"""A general gradient trainer for any model that exposes a loss.

The book's gradient learners (VAEs §8.2, NCE, contrastive methods, ...) all minimise a Monte
Carlo estimate of an expected loss — for a VAE the joint relative entropy (Eq. 8.20) — by
stochastic gradient descent. What they share is the loop, and the loop lives here once:

* minibatches drawn without replacement each epoch, sharded across processes exactly as
  ``torch.utils.data.DistributedSampler`` shards them (one code path for 1 or many processes);
* a tqdm progress bar;
* atomic, resumable checkpoints (model, optimiser, epoch, generator state, history, early
  stopping state): ``resume=True`` continues *exactly* where an interrupted run left off;
* early stopping on a validation metric, restoring the best parameters;
* data-parallel training under ``torchrun``: the model is wrapped in
  ``DistributedDataParallel`` so the gradients of the per-process mean losses are averaged —
  with equal shards that is the gradient of the mean loss over the global batch;
* randomness only through a ``torch.Generator`` (the loss receives it for its Monte Carlo noise).
  Under data parallelism every process holds the *same* generator stream, and per-datum noise
  drawn through ``per_sample_noise`` is drawn for the whole global batch and sliced to this
  process's rows: the noise of a datum depends on its global sample index, not on the number
  of processes, so two processes train exactly as one does (to rounding). State a model keeps
  across steps from batch statistics (a running baseline) uses ``global_batch_mean``.

The model contract (``LossModel``): ``model.loss(batch, generator) -> 0-d Tensor``, the mean loss
over the batch (mean, not sum, so that shards average to the global batch).
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
import torch.distributed as dist
from torch import Tensor, nn

from genmodels._threads import work_sized
from genmodels._validation import (
    as_tensor,
    check_bool,
    check_finite,
    check_nonnegative_float,
    check_positive_int,
)
from genmodels.io import atomic_torch_save

__all__ = ["LossModel", "TrainResult", "Trainer", "fit", "global_batch_mean", "init_distributed",
           "noise_shard", "per_sample_noise", "sharded_batches"]

#: (rank, world): which rows of the global batch this process's loss sees (set by the trainer).
_NOISE_SHARD: ContextVar[tuple[int, int]] = ContextVar("genmodels_noise_shard", default=(0, 1))


@contextlib.contextmanager
def noise_shard(rank: int, world: int) -> Iterator[None]:
    """Within the block, ``per_sample_noise`` returns rows ``rank::world`` of the global batch's
    noise (the trainer sets it around each data-parallel step)."""
    token = _NOISE_SHARD.set((int(rank), int(world)))
    try:
        yield
    finally:
        _NOISE_SHARD.reset(token)


def per_sample_noise(draw: Callable[[tuple[int, ...]], Tensor], shape: tuple[int, ...] | Any,
                     dim: int) -> Tensor:
    """Noise for this process's data, by global sample index.

    ``draw(shape)`` draws noise of a shape (e.g. ``torch.randn`` with the loss's generator);
    ``dim`` is the data axis of ``shape``. Alone, this is ``draw(shape)``. Inside
    ``noise_shard(rank, world)`` it draws the noise of the whole global batch (``world`` times
    as many data, the order of ``sharded_batches``: this process's i-th datum is the global
    batch's datum i·world + rank) and returns this process's rows, so each datum gets the noise
    a single process would give it.
    """
    rank, world = _NOISE_SHARD.get()
    shape = tuple(int(d) for d in shape)
    if world == 1:
        return draw(shape)
    d = dim % len(shape)
    full = draw((*shape[:d], shape[d] * world, *shape[d + 1:]))
    rows = torch.arange(rank, shape[d] * world, world, device=full.device)
    return full.index_select(d, rows)


def global_batch_mean(t: Tensor) -> Tensor:
    """The mean of ``t``'s entries over the global batch (a scalar).

    Alone, ``t.mean()``. Inside ``noise_shard(rank, world)`` with ``world`` > 1 and a process
    group initialised, the processes' sums and counts are all-reduced, so every process gets the
    mean one process would compute over the whole batch — for statistics a model keeps across
    steps (a running baseline), which DDP's gradient all-reduce does not reach. Every process
    of the group must call it at the same point of the step.
    """
    _rank, world = _NOISE_SHARD.get()
    if world == 1 or not (dist.is_available() and dist.is_initialized()):
        return t.mean()
    stats = torch.stack([t.sum().double(), torch.tensor(float(t.numel()), device=t.device,
                                                        dtype=torch.float64)])
    dist.all_reduce(stats)
    return (stats[0] / stats[1]).to(t.dtype)


@runtime_checkable
class LossModel(Protocol):
    """What the trainer needs: an ``nn.Module`` with a mean loss over a batch."""

    def loss(self, batch: Tensor, generator: torch.Generator | None = None) -> Tensor: ...

    def parameters(self, recurse: bool = True) -> Any: ...


@dataclass
class TrainResult:
    """What a training run did.

    history: per epoch, ``train_loss`` (mean minibatch loss) and, with validation data,
        ``val_metric``.
    best_epoch: the epoch (1-based) whose parameters were kept (the last one without early
        stopping).
    epochs_run: number of epochs completed, counting those before a resume.
    stopped_early: whether the patience ran out.
    """

    history: dict[str, list[float]] = field(default_factory=dict)
    best_epoch: int = 0
    epochs_run: int = 0
    stopped_early: bool = False


class _LossForward(nn.Module):
    """Routes ``forward`` to ``model.loss`` so ``DistributedDataParallel`` can wrap any model."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: Tensor, generator: torch.Generator | None) -> Tensor:
        return self.model.loss(batch, generator)  # type: ignore[operator]


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def sharded_batches(n: int, batch_size: int, *, epoch: int, seed: int, rank: int = 0,
                    world_size: int = 1, shuffle: bool = True) -> list[Tensor]:
    """This process's minibatch indices for one epoch.

    The order is exactly ``DistributedSampler(range(n), world_size, rank, shuffle, seed,
    drop_last=True)`` after ``set_epoch(epoch)`` (a permutation seeded by ``seed + epoch``, so
    resuming needs no saved state; the tail that does not divide evenly among the processes is
    dropped), computed on tensors rather than Python lists. Each global batch of
    ``batch_size`` consecutive permuted positions is split evenly among the processes: the
    union over processes of their j-th batches is the single-process j-th batch.
    """
    g = torch.Generator()
    g.manual_seed(seed + epoch)
    idx = torch.randperm(n, generator=g) if shuffle else torch.arange(n)
    total = (n // world_size) * world_size
    idx = idx[rank:total:world_size]
    per = max(batch_size // world_size, 1)
    return list(torch.split(idx, per))


def step_work(model: Any, batch_size: int, data: Any) -> float:
    """The flops of one typical operation of a training step, for the thread policy
    (``genmodels._threads``): the model's own ``flops_per_operation(batch_size, datum_shape)``
    when it has one (a loss whose cost is not in its parameters, e.g. InfoNCE's B × B
    scores), else the largest layer's product for one minibatch, 2 · B · (its weight's
    elements), times the positions of a datum for weights of three or more dimensions
    (convolution kernels slide over them). Small networks (a VAE on digits: 2 · 64 · 8,192
    ≈ 10⁶) train single-threaded; large layers get threads as they pay for them."""
    shape = tuple(getattr(data, "shape", ()))[1:]
    own = getattr(model, "flops_per_operation", None)
    if callable(own):
        return float(own(batch_size, shape))
    positions = 1
    for s in shape[1:]:  # (N, C, *spatial): the spatial positions
        positions *= int(s)
    largest = 0
    for p in model.parameters():
        largest = max(largest, p.numel() * (positions if p.dim() >= 3 else 1))
    return 2.0 * batch_size * largest


class Trainer:
    """Minibatch gradient training of a ``LossModel``.

    model: any ``nn.Module`` with ``loss(batch, generator) -> mean loss``.
    optimizer: a factory ``params -> torch.optim.Optimizer`` (default Adam with ``lr``,
        multi-tensor ``foreach`` kernels).
    scheduler: optional factory ``optimizer -> torch.optim.lr_scheduler.LRScheduler``, stepped
        once per epoch (its state is checkpointed).
    epochs: number of passes over the data.
    batch_size: the *global* batch size (split evenly across processes under torchrun).
    seed: seeds the data order (``seed + epoch``) and the loss's Monte Carlo generator (the
        same stream on every process; per-datum noise goes through ``per_sample_noise``).
    checkpoint: a file written atomically after every epoch; with ``resume=True`` and an
        existing file, training continues from it exactly (same batches, same noise).
    val_data, val_metric: with validation data, ``val_metric(model, val_data) -> float``
        (lower is better; default the mean loss) is computed each epoch; training stops after
        ``patience`` epochs without improvement by more than ``min_delta`` and the best
        parameters are restored.
    progress: show a tqdm bar (rank 0 only).
    callback: ``callback(epoch, step, loss)`` after every optimiser step (for logging or tests).
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        epochs: int = 10,
        batch_size: int = 128,
        lr: float = 1e-3,
        optimizer: Callable[[Any], torch.optim.Optimizer] | None = None,
        scheduler: Callable[[torch.optim.Optimizer], Any] | None = None,
        seed: int = 0,
        checkpoint: str | os.PathLike[str] | None = None,
        resume: bool = False,
        val_data: Tensor | None = None,
        val_metric: Callable[[nn.Module, Tensor], float] | None = None,
        patience: int | None = None,
        min_delta: float = 0.0,
        progress: bool = True,
        callback: Callable[[int, int, float], None] | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        if not callable(getattr(model, "loss", None)):
            raise ValueError(f"{type(model).__name__} has no loss(batch, generator) method; "
                             "the trainer minimises model.loss.")
        self.model = model
        self.epochs = check_positive_int(epochs, "epochs")
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self.lr = check_nonnegative_float(lr, "lr", strictly=True)
        # foreach: one multi-tensor kernel per update instead of a Python loop over parameters
        # (torch's default on GPUs; on CPUs it must be asked for)
        self.make_optimizer = optimizer or (
            lambda p: torch.optim.Adam(p, lr=self.lr, foreach=True))
        self.make_scheduler = scheduler
        self.seed = check_positive_int(seed, "seed", minimum=0)
        self.checkpoint = Path(checkpoint) if checkpoint is not None else None
        self.resume = check_bool(resume, "resume")
        self.val_data = val_data
        self.val_metric = val_metric or _mean_loss
        self.patience = None if patience is None else check_positive_int(patience, "patience")
        self.min_delta = check_nonnegative_float(min_delta, "min_delta")
        self.progress = check_bool(progress, "progress")
        self.callback = callback
        self.device = torch.device(device) if device is not None else _module_device(model)

    @work_sized(lambda self, data: step_work(self.model, self.batch_size // _world()[1], data))
    def fit(self, data: Tensor) -> TrainResult:
        """Train on ``data`` (N, ...) (rows are data) and return the ``TrainResult``.

        Threads: as ``genmodels._threads`` decides for ``step_work`` (within the user's
        ``torch.set_num_threads``)."""
        if not isinstance(data, Tensor) or data.is_floating_point() or data.is_complex():
            # NumPy arrays and lists converted; strings, objects, complex, NaN and ±inf refused
            # by name (magnitudes that overflow the loss are the loss guard's to report)
            data = as_tensor(data, name="data", allow_nan=True)
            check_finite(data, "data", overflow=False)
        if data.dim() == 0 or data.shape[0] == 0:
            raise ValueError(f"data must be a non-empty tensor with the data along dimension "
                             f"0, got shape {tuple(data.shape)}.")
        rank, world = _world()
        n = data.shape[0]
        if self.batch_size < world:
            raise ValueError(f"batch_size={self.batch_size} is smaller than the number of "
                             f"processes ({world}); every process needs at least one datum.")
        if self.batch_size % world:
            raise ValueError(f"batch_size={self.batch_size} must be divisible by the number of "
                             f"processes ({world}) so the shards average to the global batch.")
        if n < world:
            raise ValueError(f"{n} data cannot be sharded over {world} processes.")
        model = self.model
        step: Callable[[Tensor, torch.Generator], Tensor] = model.loss  # type: ignore[assignment]
        if world > 1:
            from torch.nn.parallel import DistributedDataParallel

            step = DistributedDataParallel(_LossForward(model))
        opt = self.make_optimizer(model.parameters())
        sched = self.make_scheduler(opt) if self.make_scheduler is not None else None
        gen = torch.Generator(device=self.device)
        gen.manual_seed(self.seed)  # one stream on every process: noise by global sample index
        result = TrainResult(history={"train_loss": []})
        if self.val_data is not None:
            result.history["val_metric"] = []
        best_metric, best_state, bad_epochs, start = math.inf, None, 0, 0

        if self.resume and self.checkpoint is not None and self.checkpoint.exists():
            ck = torch.load(self.checkpoint, map_location=self.device, weights_only=False)
            model.load_state_dict(ck["model"])
            opt.load_state_dict(ck["optimizer"])
            if sched is not None and ck["scheduler"] is not None:
                sched.load_state_dict(ck["scheduler"])
            gen.set_state(ck["generator"][rank].to(gen.get_state().device))
            result = ck["result"]
            best_metric, best_state, bad_epochs = ck["best_metric"], ck["best_state"], ck["bad"]
            start = ck["epoch"]

        bar = None
        if self.progress and rank == 0:
            from tqdm.auto import tqdm

            bar = tqdm(total=self.epochs, initial=start, desc=type(model).__name__, unit="epoch")
        try:
            for epoch in range(start, self.epochs):
                if result.stopped_early:
                    break
                model.train()
                batches = sharded_batches(n, self.batch_size, epoch=epoch, seed=self.seed,
                                          rank=rank, world_size=world)
                total = torch.zeros((), device=self.device)
                for i, idx in enumerate(batches):
                    batch = data[idx]
                    if batch.device != self.device:
                        batch = batch.to(self.device, non_blocking=True)
                    opt.zero_grad(set_to_none=True)
                    with noise_shard(rank, world):
                        loss = step(batch, gen)
                    loss.backward()
                    opt.step()
                    total += loss.detach()
                    if self.callback is not None:
                        self.callback(epoch, i, float(loss.detach()))
                if sched is not None:
                    sched.step()
                train_loss = float(total) / max(len(batches), 1)
                if world > 1:
                    train_loss = _all_mean(train_loss, self.device)
                if not math.isfinite(train_loss):
                    raise ValueError(
                        f"the training loss became {train_loss} in epoch {epoch + 1}; lower the "
                        "learning rate or check the data scale.")
                result.history["train_loss"].append(train_loss)
                result.epochs_run = epoch + 1
                postfix = {"loss": f"{train_loss:.4g}"}
                if self.val_data is not None:
                    model.eval()
                    metric = float(self.val_metric(model, self.val_data.to(self.device)))
                    result.history["val_metric"].append(metric)
                    postfix["val"] = f"{metric:.4g}"
                    if metric < best_metric - self.min_delta:
                        best_metric, bad_epochs, result.best_epoch = metric, 0, epoch + 1
                        best_state = {k: v.detach().clone()
                                      for k, v in model.state_dict().items()}
                    else:
                        bad_epochs += 1
                        if self.patience is not None and bad_epochs >= self.patience:
                            result.stopped_early = True
                else:
                    result.best_epoch = epoch + 1
                if self.checkpoint is not None:
                    self._save(epoch + 1, opt, sched, gen, result, best_metric, best_state,
                               bad_epochs)
                if bar is not None:
                    bar.set_postfix(postfix)
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()
        if best_state is not None and self.val_data is not None:
            model.load_state_dict(best_state)
        return result

    def _save(self, epoch: int, opt: torch.optim.Optimizer, sched: Any, gen: torch.Generator,
              result: TrainResult, best_metric: float, best_state: Any, bad: int) -> None:
        rank, world = _world()
        state = gen.get_state()
        states = [state]
        if world > 1:  # every process's generator, so each resumes its own noise stream
            states = [torch.empty_like(state) for _ in range(world)]
            dist.all_gather_object(states, state)
        if rank != 0 or self.checkpoint is None:
            return
        atomic_torch_save({
            "epoch": epoch,
            "model": self.model.state_dict(),
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict() if sched is not None else None,
            "generator": [s.cpu() for s in states],
            "result": result,
            "best_metric": best_metric,
            "best_state": best_state,
            "bad": bad,
        }, self.checkpoint)


def fit(model: nn.Module, data: Tensor, **kwargs: Any) -> TrainResult:
    """``Trainer(model, **kwargs).fit(data)``."""
    return Trainer(model, **kwargs).fit(data)


def _mean_loss(model: nn.Module, data: Tensor) -> float:
    gen = torch.Generator(device=data.device)
    gen.manual_seed(0)  # common random numbers across epochs: the metric's noise is fixed
    with torch.no_grad():
        return float(model.loss(data, gen))  # type: ignore[operator]


def _all_mean(value: float, device: torch.device) -> float:
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return float(t) / dist.get_world_size()


def _module_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def init_distributed(backend: str | None = None) -> tuple[int, int]:
    """Join the process group ``torchrun`` describes in the environment (RANK, WORLD_SIZE,
    MASTER_ADDR, MASTER_PORT); a no-op returning (0, 1) when not launched that way.

    backend: default ``nccl`` on CUDA machines and ``gloo`` otherwise. Returns (rank, world).
    """
    if dist.is_initialized():
        return _world()
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return 0, 1
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend=backend, init_method="env://")
    return _world()
