"""The exponential family, p(x | η) = h(x) exp{ηᵀ t(x) − A(η)} (S0:27; B Eq. 5.11).

One small base class holds what every family shares; a family subclass supplies the maths that
differs: its sufficient statistics t(x), log base measure log h(x), log-partition A(η), the
closed-form mean parameters ∇A(η) = E[t(X)] and Fisher information ∇²A(η) = Cov[t(X)]
(CATALOGUE A4, A5), the map back from mean to natural parameters, and the conversion to the
``torch.distributions`` object whose sampler it reuses.

Natural parameters are held *flat*: ``natural`` has shape (*batch, P), P the number of natural
parameters of one distribution, so that ∇A is (*batch, P) and ∇²A is (*batch, P, P) for every
family alike (the Fisher information is a matrix over this flat vector). Each subclass says how
its natural parameters are laid out in that vector.

The functions of η (``log_partition``, ``mean_from_natural``, ``fisher_from_natural``) are
classmethods on a plain tensor, with no data-dependent Python branching, so ``torch.func``
(grad, hessian, vmap) can differentiate them; validation happens once, in the constructor.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, TypeVar

import torch
from torch import Tensor

from genmodels._validation import as_tensor

F = TypeVar("F", bound="ExponentialFamily")


class ExponentialFamily(ABC):
    """A batch of distributions from one exponential family.

    natural: (*batch, P), the natural parameters η in the family's flat layout.

    Subclasses implement the classmethods marked abstract; everything else (log_prob, mean
    parameters, Fisher information, maximum likelihood, sampling) follows from them.
    """

    #: number of event dimensions of one draw x (0: scalar, 1: vector).
    event_dim: int = 0

    def __init__(self, natural: Any) -> None:
        eta = as_tensor(natural, name="natural")
        if eta.dim() < 1 or eta.shape[-1] == 0:
            raise ValueError(
                f"natural must have shape (*batch, P) with P >= 1, got {tuple(eta.shape)}."
            )
        self.check_natural(eta)
        self.natural = eta

    # ----------------------------------------------------------------- the family's maths
    @classmethod
    @abstractmethod
    def sufficient_stats(cls, x: Tensor) -> Tensor:
        """t(x). x: (*, *event) → (*, P)."""

    @classmethod
    @abstractmethod
    def log_base_measure(cls, x: Tensor) -> Tensor:
        """log h(x). x: (*, *event) → (*)."""

    @classmethod
    @abstractmethod
    def log_partition(cls, natural: Tensor) -> Tensor:
        """A(η) = log ∫ h(x) exp{ηᵀ t(x)} dx. natural: (*, P) → (*)."""

    @classmethod
    @abstractmethod
    def mean_from_natural(cls, natural: Tensor) -> Tensor:
        """Mean parameters μ = ∇A(η) = E[t(X)] in closed form. (*, P) → (*, P)."""

    @classmethod
    @abstractmethod
    def natural_from_mean(cls, mean: Tensor) -> Tensor:
        """Inverse of ``mean_from_natural``: the η with ∇A(η) = μ. (*, P) → (*, P).

        Raises ``ValueError`` when μ is outside the interior of the mean-parameter space
        (e.g. a Bernoulli mean of exactly 0 or 1: no finite η has it)."""

    @classmethod
    @abstractmethod
    def check_natural(cls, natural: Tensor) -> None:
        """Raise ``ValueError`` unless every η lies in the open domain {A(η) < ∞}."""

    @abstractmethod
    def to_torch(self) -> torch.distributions.Distribution:
        """The equivalent ``torch.distributions`` object (same batch shape)."""

    @classmethod
    @abstractmethod
    def from_torch(cls: type[F], dist: torch.distributions.Distribution) -> F:
        """The family member equal to a ``torch.distributions`` object."""

    @classmethod
    def fisher_from_natural(cls, natural: Tensor) -> Tensor:
        """Fisher information in the natural parameters, ∇²A(η) = Cov[t(X)] (B:3664).

        (*, P) → (*, P, P). Subclasses give the closed form; this default differentiates
        ``log_partition`` twice with ``torch.func`` (exact up to rounding, slower)."""
        return autograd_fisher(cls, natural)

    # --------------------------------------------------------------- derived quantities
    @classmethod
    def from_mean(cls: type[F], mean: Any) -> F:
        """The member with mean parameters μ = E[t(X)]. mean: (*batch, P)."""
        return cls(cls.natural_from_mean(as_tensor(mean, name="mean")))

    @property
    def batch_shape(self) -> torch.Size:
        return self.natural.shape[:-1]

    @property
    def num_natural(self) -> int:
        """P, the length of the flat natural-parameter vector."""
        return int(self.natural.shape[-1])

    @property
    def mean_params(self) -> Tensor:
        """μ = ∇A(η) = E[t(X)]. (*batch, P)."""
        return self.mean_from_natural(self.natural)

    def fisher_information(self) -> Tensor:
        """∇²A(η) = Cov[t(X)], the Fisher information of η. (*batch, P, P)."""
        return self.fisher_from_natural(self.natural)

    def log_normalizer(self) -> Tensor:
        """A(η). (*batch,)."""
        return self.log_partition(self.natural)

    def log_prob(self, x: Any) -> Tensor:
        """log p(x | η) = log h(x) + ηᵀ t(x) − A(η) (S0:27).

        x: (*sample, *batch, *event), broadcasting against the batch → (*sample, *batch)."""
        xt = x if isinstance(x, Tensor) else as_tensor(x, name="x")
        t = self.sufficient_stats(xt)
        return (self.log_base_measure(xt) + (t * self.natural).sum(-1)
                - self.log_partition(self.natural))

    def sample(self, sample_shape: tuple[int, ...] | torch.Size = (),
               generator: torch.Generator | None = None) -> Tensor:
        """Draw x ~ p(x | η) with torch's own sampler. → (*sample_shape, *batch, *event).

        torch.distributions samplers draw from the global generator; when ``generator`` is
        given, a seed drawn from it seeds a forked global generator, so the draw is
        reproducible and the caller's global random state is left untouched."""
        return sample_with_generator(self.to_torch(), sample_shape, generator)

    @classmethod
    def fit(cls: type[F], x: Any, weights: Any = None) -> F:
        """Maximum likelihood: the member whose mean parameters equal the (weighted) average
        sufficient statistics, E_data[t(X)] = E_model[t(X)] (moment matching, B:1487).

        x: (N, *batch, *event) (data along dim 0); weights: None, (N,) or (N, *batch),
        nonnegative. The log-likelihood is concave in η (S0:55), so this stationary point is
        the maximum."""
        xt = x if isinstance(x, Tensor) else as_tensor(x, name="x")
        if xt.dim() < 1 + cls.event_dim or xt.shape[0] == 0:
            raise ValueError(f"x must hold at least one datum along dim 0, got {tuple(xt.shape)}.")
        t = cls.sufficient_stats(xt)  # (N, *batch, P)
        t_sum, n = summed_stats(t, weights)
        return cls.from_mean(t_sum / n[..., None])


def summed_stats(t: Tensor, weights: Any = None) -> tuple[Tensor, Tensor]:
    """Σ_n w_n t(x_n) and Σ_n w_n over dim 0. t: (N, *batch, P); weights: None, (N,) or
    (N, *batch) → ((*batch, P), (*batch,))."""
    if weights is None:
        return t.sum(0), torch.full(t.shape[1:-1], float(t.shape[0]), dtype=t.dtype,
                                    device=t.device)
    w = as_tensor(weights, name="weights", dtype=t.dtype, device=t.device)
    if w.shape[0] != t.shape[0] or bool((w < 0).any()):
        raise ValueError(
            f"weights must be nonnegative with {t.shape[0]} rows, got shape {tuple(w.shape)}."
        )
    while w.dim() < t.dim() - 1:
        w = w[..., None]
    n = w.expand(t.shape[:-1]).sum(0)
    if bool((n <= 0).any()):
        raise ValueError("weights sum to zero for some distribution; nothing to fit.")
    return (w[..., None] * t).sum(0), n


def autograd_fisher(family: type[ExponentialFamily], natural: Tensor) -> Tensor:
    """∇²A(η) by ``torch.func.hessian`` of the log-partition, vmapped over the batch.
    natural: (*batch, P) → (*batch, P, P)."""
    flat = natural.reshape(-1, natural.shape[-1])

    def a_single(eta: Tensor) -> Tensor:
        return family.log_partition(eta)

    h = torch.func.vmap(torch.func.hessian(a_single))(flat)
    return h.reshape(*natural.shape, natural.shape[-1])


def sample_with_generator(dist: torch.distributions.Distribution,
                          sample_shape: tuple[int, ...] | torch.Size,
                          generator: torch.Generator | None) -> Tensor:
    """``dist.sample(sample_shape)`` drawn reproducibly from ``generator`` (see
    ``ExponentialFamily.sample``)."""
    shape = torch.Size(sample_shape)
    if generator is None:
        return dist.sample(shape)
    seed = int(torch.randint(0, 2**62, (), generator=generator, device=generator.device))
    device = dist.mean.device if hasattr(dist, "mean") else torch.device("cpu")
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        return dist.sample(shape)


def check_open_interval(value: Tensor, name: str, low: float = -math.inf,
                        high: float = math.inf) -> None:
    """Raise ``ValueError`` unless low < value < high everywhere (and finite)."""
    bad = ~torch.isfinite(value) | (value <= low) | (value >= high)
    if bool(bad.any()):
        idx = tuple(int(i) for i in torch.nonzero(bad)[0])
        raise ValueError(
            f"{name} must lie in ({low:g}, {high:g}) and be finite; {int(bad.sum())} entr"
            f"{'y does' if int(bad.sum()) == 1 else 'ies do'} not, the first {float(value[idx])!r}"
            f" at index {idx}."
        )
