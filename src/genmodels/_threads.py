"""How many threads genmodels' tensor code uses: one policy, decided by the size of the work.

PyTorch's default is one OpenMP thread per core for every operation. That pays for large
matrix products, but a recursion over small matrices (a Kalman filter's 8 × 8 steps, an EM
iteration on a D × D moment matrix) does a few microseconds of work per operation, and its
threads spend longer meeting at the end of each operation than computing. When other processes
compete for the cores it is far worse: a thread that the scheduler has paused holds up the
others at every operation (measured on this project's 2-core machine with two other processes
running: a Kalman smoother 30× slower with two threads than with one).

So each entry point that runs tensor code says how much work its typical operation does, in
floating-point operations, and ``work_threads`` runs it with

    n = min(ceiling, idle cores, max(1, ⌊flops / MIN_FLOPS_PER_THREAD⌋))

threads, restoring the previous setting afterwards (``choose_threads`` is the pure decision):

* ``ceiling`` is torch's thread count when the outermost region is entered (one per core by
  default; see below for the user's settings);
* ``idle cores`` = cores − (other processes' runnable tasks), read from ``/proc/loadavg`` at
  entry (its fourth field counts the threads running now) less this process's own running
  threads (``/proc/self/task``: its OpenMP workers spin for a while after each parallel
  operation and would count as competitors), so on a machine busy with other work an
  operation that would have split across cores runs on the free ones only;
* an extra thread is used only for every ``MIN_FLOPS_PER_THREAD`` flops of one operation
  (≈ 2 ms of one core's float64 matrix-multiply time here), so small recursions and small
  matrices run single-threaded.

The user's choice bounds it: torch's thread count when the outermost region is entered is the
ceiling, so ``torch.set_num_threads(n)`` (or ``OMP_NUM_THREADS=n``, which sets torch's count)
caps every region at n threads, and n = 1 makes everything single-threaded. To force exactly
n threads for every size of work (the policy off), set ``GENMODELS_NUM_THREADS=n``. Regions
nest: an inner region decides for itself within the outermost ceiling and restores the outer
one's setting on exit. torch's thread count is process-wide, so regions entered from several
Python threads at once share one setting.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import torch

__all__ = [
    "MIN_FLOPS_PER_THREAD",
    "choose_threads",
    "forced_threads",
    "gemm_work",
    "idle_cores",
    "last_dim",
    "numel",
    "numpy_blas_threads",
    "single_threaded",
    "thread_ceiling",
    "work_sized",
    "work_threads",
]

#: Flops one operation must do per thread it is split across (≈ 2 ms of float64 matmul on one
#: core of this project's machine; about where a second thread stops losing under load).
MIN_FLOPS_PER_THREAD = 1e8

F = TypeVar("F", bound=Callable[..., Any])


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def forced_threads() -> int | None:
    """``GENMODELS_NUM_THREADS`` as an int ≥ 1 (the policy off, that many threads), else None."""
    value = os.environ.get("GENMODELS_NUM_THREADS", "").strip()
    if not value:  # (the common case, without the cost of a caught exception)
        return None
    try:
        n = int(value)
    except ValueError:
        return None
    return n if n >= 1 else None


class _Region:
    """The state of the outermost ``work_threads`` region (depth 0: outside any)."""

    depth = 0
    ceiling = 1


def thread_ceiling() -> int:
    """The most threads a region may use: torch's count at the outermost region's entry (the
    user's ``torch.set_num_threads`` / ``OMP_NUM_THREADS``, else one per core)."""
    return _Region.ceiling if _Region.depth else torch.get_num_threads()


def own_running_threads() -> int:
    """This process's threads in state R (running or runnable) now, the caller included:
    ``/proc/self/task/*/stat``; 1 where that is unreadable. torch's OpenMP workers spin
    for a while after each parallel operation, and ``/proc/loadavg`` counts them as
    running tasks: they are not competitors."""
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return 1
    n = 0
    for tid in tasks:
        try:  # (os.open/os.read: a quarter of the cost of open())
            fd = os.open(f"/proc/self/task/{tid}/stat", os.O_RDONLY)
            try:
                stat = os.read(fd, 512)
            finally:
                os.close(fd)
        except OSError:  # the thread ended meanwhile
            continue
        close = stat.rfind(b")")  # the state follows the command name "(...)"
        n += stat[close + 2: close + 3] == b"R"
    return max(1, n)


def idle_cores(cores: int | None = None, loadavg: str | None = None,
               own: int | None = None) -> int:
    """Cores not taken by other processes' runnable tasks now: cores − (running − own),
    between 1 and cores.

    ``loadavg`` is the text of ``/proc/loadavg`` (read when None; its fourth field is
    ``running/total``, every runnable thread of the machine); ``own`` is how many of those
    are this process's (``own_running_threads()`` when None: the caller and any spinning
    OpenMP workers of its own, which would otherwise make an idle machine look busy).
    Without ``/proc`` every core counts as idle.
    """
    cores = _cores() if cores is None else cores
    if loadavg is None:
        try:
            with open("/proc/loadavg") as f:
                loadavg = f.read()
        except OSError:
            return cores
    try:
        running = int(loadavg.split()[3].split("/")[0])
    except (IndexError, ValueError):
        return cores
    if own is None:
        own = own_running_threads()
    return max(1, min(cores, cores - (running - own)))


def choose_threads(flops: float, *, ceiling: int, idle: int | None = None,
                   min_flops_per_thread: float = MIN_FLOPS_PER_THREAD) -> int:
    """The policy's decision (no side effects): min(ceiling, idle, ⌊flops / min⌋), ≥ 1.

    flops: the work of one typical operation of the region (not of the whole call: a
    recursion of ten thousand 8 × 8 steps is ten thousand small operations).
    """
    if min_flops_per_thread <= 0 or flops == math.inf:
        by_work = ceiling
    elif not math.isfinite(flops):  # NaN: no usable estimate, the safe choice
        by_work = 1
    else:
        by_work = int(flops // min_flops_per_thread) if flops > 0 else 0
    n = min(ceiling, by_work, ceiling if idle is None else idle)
    return max(1, n)


def _enter(flops: float) -> tuple[int, int]:
    """Enter a region: set the policy's count; → (the count before, the count set)."""
    previous = torch.get_num_threads()
    if _Region.depth == 0:
        _Region.ceiling = previous
    forced = forced_threads()
    if forced is not None:
        n = forced
    else:
        # (no reading of the machine's load where the answer cannot change it: one thread)
        big = flops >= 2 * MIN_FLOPS_PER_THREAD and _Region.ceiling > 1
        idle = idle_cores() if big else None
        n = choose_threads(flops, ceiling=_Region.ceiling, idle=idle)
    _Region.depth += 1
    if n != previous:
        try:
            torch.set_num_threads(n)
        except BaseException:
            _Region.depth -= 1
            raise
    return previous, n


def _exit(previous: int) -> None:
    _Region.depth -= 1
    if torch.get_num_threads() != previous:
        torch.set_num_threads(previous)


@contextmanager
def work_threads(flops: float) -> Iterator[int]:
    """Run the enclosed tensor code with the policy's thread count for operations of
    ``flops`` floating-point operations each; yields the count used."""
    previous, n = _enter(flops)
    try:
        yield n
    finally:
        _exit(previous)


def work_sized(flops: Callable[..., float]) -> Callable[[F], F]:
    """Decorator: run the function inside ``work_threads(flops(*args, **kwargs))``.

    ``flops`` receives the function's own arguments and returns the work of one typical
    operation (it must be cheap: shapes only). (The region is entered without a generator-
    based context manager: ≈ 1 µs per call, for entry points called per minibatch.)"""

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:  # the estimate sees unvalidated arguments: any failure is the function's to
                work = float(flops(*args, **kwargs))  # report, so count it as small work
            except Exception:
                work = 0.0
            previous, _ = _enter(work)
            try:
                return fn(*args, **kwargs)
            finally:
                _exit(previous)

        return wrapper  # type: ignore[return-value]

    return decorate


def single_threaded(fn: F) -> F:
    """Decorator for recursions over small matrices: one thread (unless forced)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        previous, _ = _enter(0.0)
        try:
            return fn(*args, **kwargs)
        finally:
            _exit(previous)

    return wrapper  # type: ignore[return-value]


def numel(x: Any) -> int:
    """Elements of an array-like (0 when it has no shape): for cheap work estimates."""
    shape = getattr(x, "shape", None)
    if shape is None:
        return 0
    n = 1
    for s in shape:
        n *= int(s)
    return n


def gemm_work(x: Any, k: float) -> float:
    """Flops of x @ (D × k) for an (N, D) array-like x: 2 N D k (0 when x has no shape)."""
    return 2.0 * numel(x) * float(k)


def last_dim(x: Any) -> int:
    """The trailing size of an array-like (1 when it has no shape)."""
    shape = getattr(x, "shape", None)
    return int(shape[-1]) if shape else 1


@functools.cache
def _blas_controller() -> Any:
    from threadpoolctl import ThreadpoolController  # (scikit-learn's dependency)

    return ThreadpoolController()


@contextmanager
def numpy_blas_threads(flops: float = math.inf) -> Iterator[None]:
    """Run NumPy's BLAS (OpenBLAS in NumPy's wheels, a thread pool of its own that neither
    ``torch.set_num_threads`` nor the policy reaches) at torch's current thread count: inside
    a region, the policy's decision; outside, the user's ceiling. ``flops``: the work of the
    enclosed products; below ``MIN_FLOPS_PER_THREAD / 100`` nothing is changed (about 10 µs
    saved; BLAS runs such products on one thread by itself)."""
    if flops < MIN_FLOPS_PER_THREAD / 100:
        yield
        return
    try:
        limiter = _blas_controller().limit(limits=torch.get_num_threads(), user_api="blas")
    except Exception:  # threadpoolctl missing or failing: leave NumPy as it is
        yield
        return
    with limiter:
        yield
