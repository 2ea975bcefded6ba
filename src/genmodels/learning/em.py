"""One EM engine for every model with an exact (or fixed-form) E step.

The book's "EM algorithm under exact inference" (§6.3, Ch. 7 intro; CATALOGUE D5–D6) is
coordinate descent on the joint relative entropy: the E step sets the recognition distribution
to the exact posterior p̂(x | y; θ_old), the M step minimises the joint relative entropy over θ.
Learning meets inference through *additive sufficient statistics*:

* ``model.expected_stats(batch) -> EStep``: the expected sufficient statistics of one batch
  under the posterior at the current parameters, and the batch's log-likelihood log p̂(y; θ_old)
  (or its bound). Statistics of disjoint batches add, which gives minibatch, streaming and
  distributed EM for free.
* ``model.maximize(stats, frozen)``: the M step, mapping summed statistics to parameters and
  leaving the parameters named in ``frozen`` as they are.
* ``model.initialize(data, generator)`` (only needed for ``n_init`` restarts or a cold start).

Under exact inference the log-likelihood never decreases (Eq. 6.6: the posterior relative
entropy is zero after the E step and the M step cannot increase the joint relative entropy).
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor

from genmodels._validation import (
    as_tensor,
    check_bool,
    check_nonnegative_float,
    check_positive_int,
    make_generator,
)
from genmodels.exceptions import ConvergenceWarning

Stats = dict[str, Tensor]


@dataclass
class EStep:
    """The E step of one batch.

    stats: expected sufficient statistics, summed over the batch (additive across batches).
    log_likelihood: Σ_n log p̂(y_n; θ) over the batch, a 0-d tensor (a lower bound for
        approximate E steps).
    n: number of data the batch counts (samples, or sequences, as the model defines).
    """

    stats: Stats
    log_likelihood: Tensor
    n: float

    def __add__(self, other: EStep) -> EStep:
        return EStep(add_stats(self.stats, other.stats),
                     self.log_likelihood + other.log_likelihood, self.n + other.n)


def add_stats(a: Mapping[str, Tensor], b: Mapping[str, Tensor]) -> Stats:
    """Key-wise sum of two statistics dictionaries with the same keys."""
    if a.keys() != b.keys():
        raise ValueError(f"cannot add statistics with keys {sorted(a)} and {sorted(b)}")
    return {k: a[k] + b[k] for k in a}


@runtime_checkable
class EMModel(Protocol):
    """What the EM engine needs from a model."""

    def expected_stats(self, batch: Any) -> EStep: ...

    def maximize(self, stats: Stats, frozen: frozenset[str] = frozenset()) -> None: ...


@dataclass
class EMResult:
    """What a run of EM did.

    log_likelihood: per iteration, the (per-datum, when ``per_datum``) log-likelihood at the
        parameters *before* that iteration's M step — the sequence EM guarantees non-decreasing.
    converged: whether the change fell below ``tol`` before ``max_iter``.
    n_iter: number of M steps taken.
    init: index of the restart that won (``n_init`` > 1).
    """

    log_likelihood: list[float] = field(default_factory=list)
    converged: bool = False
    n_iter: int = 0
    init: int = 0

    @property
    def final(self) -> float:
        return self.log_likelihood[-1] if self.log_likelihood else -math.inf


def minibatches(data: Tensor, batch_size: int | None) -> list[Tensor]:
    """Split along the first dimension into consecutive batches (all of it when None)."""
    if batch_size is None or batch_size >= data.shape[0]:
        return [data]
    check_positive_int(batch_size, "batch_size")
    return list(torch.split(data, batch_size, dim=0))


Batches = Iterable[Any] | Callable[[], Iterable[Any]]


def _iterate(batches: Batches) -> Iterable[Any]:
    return batches() if callable(batches) else batches


def e_step(model: EMModel, batches: Batches,
           reduce: Callable[[EStep], EStep] | None = None) -> EStep:
    """Accumulate the E step over all batches (and, with ``reduce``, over all processes)."""
    total: EStep | None = None
    for batch in _iterate(batches):
        part = model.expected_stats(batch)
        total = part if total is None else total + part
    if total is None:
        raise ValueError("EM received no data: the batch iterable was empty.")
    return reduce(total) if reduce is not None else total


def check_frozen(model: Any, frozen: Iterable[str]) -> frozenset[str]:
    """Validate the names of parameters to hold fixed."""
    names = frozenset(frozen)
    unknown = sorted(n for n in names if not hasattr(model, n))
    if unknown:
        raise ValueError(f"cannot freeze unknown parameter(s) {unknown} of {type(model).__name__}.")
    return names


def run_em(
    model: EMModel,
    batches: Batches,
    *,
    max_iter: int = 100,
    tol: float = 1e-3,
    per_datum: bool = True,
    frozen: Iterable[str] = (),
    reduce: Callable[[EStep], EStep] | None = None,
    progress: bool = False,
    callback: Callable[[int, float], None] | None = None,
    warn: bool = True,
) -> EMResult:
    """Run EM from the model's current parameters.

    Each iteration does one E step (over every batch) and one M step, and stops when the
    log-likelihood changes by less than ``tol`` (per datum when ``per_datum``, as scikit-learn
    does; in total otherwise, as hmmlearn does). Warns ``ConvergenceWarning`` if it did not
    converge within ``max_iter``.

    batches: a list of batches, or a callable returning a fresh iterator over them (streaming).
    reduce: combines the E step across processes (see ``genmodels.distributed``).
    """
    max_iter = check_positive_int(max_iter, "max_iter")
    tol = check_nonnegative_float(tol, "tol")
    per_datum = check_bool(per_datum, "per_datum")
    progress = check_bool(progress, "progress")
    warn = check_bool(warn, "warn")
    frozen_set = check_frozen(model, frozen)
    result = EMResult()
    prev = -math.inf
    change = math.inf  # |ℓ_it − ℓ_{it−1}|, kept for the non-convergence message
    bar = _progress(max_iter, progress)
    for it in range(1, max_iter + 1):
        est = e_step(model, batches, reduce)
        ll = float(est.log_likelihood) / (est.n if per_datum else 1.0)
        if not math.isfinite(ll):
            raise ValueError(
                f"the log-likelihood became {ll} at EM iteration {it}; the data or the "
                "initial parameters put zero probability on some observation."
            )
        model.maximize(est.stats, frozen_set)
        result.log_likelihood.append(ll)
        result.n_iter = it
        if callback is not None:
            callback(it, ll)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loglik=f"{ll:.6g}")
        change = abs(ll - prev)
        if change < tol:
            result.converged = True
            break
        prev = ll
    if bar is not None:
        bar.close()
    if warn and not result.converged:
        warnings.warn(
            f"EM did not converge in {max_iter} iterations (last change "
            f"{change:.3g} >= tol={tol}); increase max_iter or tol, "
            "or check the initialisation.",
            ConvergenceWarning,
            stacklevel=2,
        )
    return result


def fit_em(
    model: Any,
    data: Any,
    batches: Batches | None = None,
    *,
    n_init: int = 1,
    warm_start: bool = False,
    seed: int | torch.Generator | None = None,
    **kwargs: Any,
) -> EMResult:
    """EM with restarts: ``n_init`` times initialise with ``model.initialize(data, generator)``
    (skipped on the first run when ``warm_start``), run ``run_em``, keep the best final
    log-likelihood. ``batches`` defaults to ``[data]``. Other arguments go to ``run_em``.
    """
    n_init = check_positive_int(n_init, "n_init")
    warm_start = check_bool(warm_start, "warm_start")
    generator = make_generator(seed, name="seed")
    if isinstance(data, np.ndarray) or (hasattr(data, "to_numpy") and not isinstance(data,
                                                                                     Tensor)):
        # an array (not a model-specific container such as a list of sequences): the shared
        # conversion, which refuses strings, objects and complex numbers by name; NaN is left
        # to the model (missing entries are legal for some)
        data = as_tensor(data, name="data", allow_nan=True)
    batches = [data] if batches is None else batches
    best: tuple[float, dict[str, Any], EMResult] | None = None
    caught_per_run: list[list[warnings.WarningMessage]] = []
    for i in range(n_init):
        if not (warm_start and i == 0):
            model.initialize(data, generator)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = run_em(model, batches, **kwargs)
        caught_per_run.append(caught)
        result.init = i
        if best is None or result.final > best[0]:
            best = (result.final, copy.deepcopy(model.state_dict()), result)
    assert best is not None
    model.load_state_dict(best[1])
    _replay_warnings(caught_per_run, best[2].init)
    return best[2]


def _replay_warnings(caught_per_run: list[list[warnings.WarningMessage]], kept: int) -> None:
    """Re-issue the warnings recorded during every restart: the kept run's as they were, the
    discarded runs' prefixed with "restart i of n (discarded)" so none is lost."""
    n = len(caught_per_run)
    for i, caught in enumerate(caught_per_run):
        for w in caught:
            message: Warning | str = w.message
            if i != kept:
                try:
                    message = w.category(f"restart {i + 1} of {n} (discarded): {w.message}")
                except Exception:  # a warning class with another constructor: as it was
                    message = w.message
            warnings.warn_explicit(message, w.category, w.filename, w.lineno)


def _progress(total: int, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="EM", unit="it", leave=False)
