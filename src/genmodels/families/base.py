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

This is the one place a family's maths lives; every model is an adapter over these views
(issue 18): ``log_prob_table`` (mixture/HMM emissions: all states × all data as one matrix
product of t(y) against η), ``weighted_stat_sums`` and ``natural_from_stats`` (the E-step
statistics and the conjugate-prior M step with pseudo-counts), ``log_prob_natural`` /
``mean_value`` / ``sample_natural`` / ``natural_from_unconstrained`` (a network's output as
η: VAE likelihoods), ``conditional_natural`` (η of one harmonium layer as an affine map of the
other, Eqs 3.1–3.4), ``support_error`` (data validation); the GLM view (canonical link,
variance function, deviance, dispersion) is ``genmodels.families.glm``, the KL and Bregman
divergences ``genmodels.families.kl``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, TypeVar

import torch
from torch import Tensor

from genmodels._validation import as_tensor, global_rng_from

F = TypeVar("F", bound="ExponentialFamily")


#: every family by its ``name`` (filled as each family class is defined): emissions
#: (``FamilyEmission``), GLM responses (through ``GLM_VIEWS``) and VAE likelihoods
#: (``FamilyLikelihood``) choose a family from here.
FAMILIES: dict[str, type[ExponentialFamily]] = {}


class ExponentialFamily(ABC):
    """A batch of distributions from one exponential family.

    natural: (*batch, P), the natural parameters η in the family's flat layout.

    Subclasses implement the classmethods marked abstract; everything else (log_prob, mean
    parameters, Fisher information, maximum likelihood, sampling) follows from them.
    """

    #: number of event dimensions of one draw x (0: scalar, 1: vector).
    event_dim: int = 0
    #: the name the family is registered under (``genmodels.families.FAMILIES``), by which
    #: emissions, GLM responses and VAE likelihoods are chosen.
    name: str = ""
    #: which entry of t(x) is x itself, so that E[X] = ∇A(η)[mean_stat] (scalar families).
    mean_stat: int = 0
    #: P of one scalar unit (1: Bernoulli, Poisson; 2: Gamma, Normal); 0 where P is not fixed
    #: by the family (Categorical: the number of categories; the vector Gaussians).
    natural_per_unit: int = 0

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A family class with a ``name`` registers itself in ``FAMILIES``: defining it is all
        it takes to make it an emission, a VAE likelihood (and, with a GLM view, a GLM
        response)."""
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("name"):
            FAMILIES[cls.name] = cls

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

    # ------------------------------------------------ the views the models use (issue 18)
    @classmethod
    def log_prob_natural(cls, x: Tensor, natural: Tensor) -> Tensor:
        """log p(x | η) = log h(x) + ηᵀ t(x) − A(η) (S0:27) on raw tensors.

        x: (*, *event); natural: (*, P), broadcasting → (*). Families with a better-conditioned
        closed form (Bernoulli: the fused cross entropy) override it."""
        return (cls.log_base_measure(x) + (cls.sufficient_stats(x) * natural).sum(-1)
                - cls.log_partition(natural))

    @classmethod
    def log_prob_table(cls, t: Tensor, natural: Tensor,
                       log_h: Tensor | float | None = None) -> Tensor:
        """log p(x_n | η_k) for every datum n and every member k, as one matrix product:

            log h(x_n) + t(x_n) · η_k − A(η_k)                               (S0:27)

        t: (N, C, P) the statistics of N data, each with C independent coordinates of this
        family (a state's density is the product over coordinates); natural: (K, C, P);
        log_h: (N,) the data's Σ_c log h(x_nc), a number (a constant h: the Gaussians), or
        None for h = 1 → (N, K). The (N, C·P) × (C·P, K) product is the emissions' E-step
        fast path (one GEMM, no loop over k): ``affine_log_prob_table``."""
        a = cls.log_partition(natural).sum(-1)  # Σ_c A(η_kc): (K,)
        return affine_log_prob_table(t.flatten(1), natural.flatten(1), a, log_h)

    @classmethod
    def summed_log_base_measure(cls, x: Tensor) -> Tensor:
        """Σ_c log h(x_c) over the last axis (independent coordinates), the ``log_h`` of
        ``log_prob_table``. x: (*, C) → (*)."""
        return cls.log_base_measure(x).sum(-1)

    @classmethod
    def support_error(cls, x: Tensor) -> str | None:
        """Why some x lies outside the family's support ("must be …"), or None. Default: x
        must be finite. x: (*, *event)."""
        if x.is_floating_point() and not bool(torch.isfinite(x).all()):
            return "must be finite (no NaN or infinite values)"
        return None

    @classmethod
    def reference_natural(cls, like: Tensor) -> Tensor:
        """η₀, the member the conjugate prior's pseudo-data are drawn from (η = 0 by default;
        families where 0 is outside the domain override it). like: (*, P) → (*, P)."""
        return torch.zeros_like(like)

    @classmethod
    def conjugate_prior(cls, pseudo_count: float, like: Tensor) -> tuple[Tensor, Tensor]:
        """(τ, ν) of the conjugate prior p(η) ∝ exp{ηᵀτ − ν A(η)} (S0:27 applied to η): ν = a
        pseudo-observations whose statistics average ∇A(η₀). like: (*, P) → ((*, P), ())."""
        nu = torch.as_tensor(pseudo_count, dtype=like.dtype, device=like.device)
        return nu * cls.mean_from_natural(cls.reference_natural(like)), nu

    @classmethod
    def natural_from_stats(cls, t_sum: Tensor, n: Tensor, pseudo_count: float = 0.0) -> Tensor:
        """The M step: η from summed statistics, the posterior mode under the conjugate prior,

            ∇A(η) = (Σ_n w_n t(x_n) + τ) / (Σ_n w_n + ν)      (moment matching, B:1487)

        which is maximum likelihood at ``pseudo_count`` = 0 and keeps η finite (off the
        boundary of the mean space, also for a member with no weight: it gets ∇A(η₀)) for
        a > 0. t_sum: (*, P); n: (*,) → (*, P)."""
        if pseudo_count == 0:
            return cls.natural_from_mean(t_sum / n[..., None])
        tau, nu = cls.conjugate_prior(pseudo_count, t_sum)
        return cls.natural_from_mean((t_sum + tau) / (n[..., None] + nu))

    @classmethod
    def mean_value(cls, natural: Tensor) -> Tensor:
        """E[X] = ∇A(η)[mean_stat] for a scalar family. (*, P) → (*)."""
        return cls.mean_from_natural(natural)[..., cls.mean_stat]

    @classmethod
    def natural_from_unconstrained(cls, h: Tensor) -> Tensor:
        """A smooth map from R^P onto the natural domain (what a network outputs: a VAE
        decoder, an affine map of a harmonium's other layer). Identity where the domain is
        all of R^P (Bernoulli, Poisson, Categorical). (*, P) → (*, P)."""
        return h

    @classmethod
    def log_prob_unconstrained(cls, x: Tensor, h: Tensor) -> Tensor:
        """log p(x | η) with η = ``natural_from_unconstrained(h)`` for a family with one
        natural parameter per unit, from one network output per unit (a VAE decoder's):
        x: (*), h: (*) → (*). Families whose map is the identity override it with their
        closed form on h itself (Bernoulli), which saves a training step the view nodes."""
        return cls.log_prob_natural(x, cls.natural_from_unconstrained(h.unsqueeze(-1)))

    @classmethod
    def sample_natural(cls, natural: Tensor, generator: torch.Generator | None = None
                       ) -> Tensor:
        """One draw x ~ p(x | η) per member, through ``generator``. natural: (*, P) →
        (*, *event). Default: torch's sampler under a generator-seeded fork of the global
        state (``sample_with_generator``); families with a generator-taking torch sampler
        (Bernoulli, Poisson, Categorical, Gaussians) override it."""
        return sample_with_generator(cls(natural).to_torch(), (), generator)

    @classmethod
    def conditional_natural(cls, bias: Tensor, weight: Tensor, other: Tensor,
                            per_unit: int | None = None) -> Tensor:
        """The natural parameters of one layer given the other, an affine map (Eqs 3.1–3.4):

            η(z) = b + W z,   flat bias b: (C·P,), weight W: (C·P, M), other z: (*, M)

        → (*, C, P) (C units of this family with P natural parameters each), mapped onto the
        natural domain by ``natural_from_unconstrained`` where it is not all of R^P. P is
        ``per_unit`` if given (categorical groups: the number of categories), else the
        family's ``natural_per_unit``, else all of b (one unit)."""
        p = per_unit or cls.natural_per_unit or int(bias.shape[-1])
        flat = torch.nn.functional.linear(other, weight, bias)
        return cls.natural_from_unconstrained(flat.unflatten(-1, (-1, p)))

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


def affine_log_prob_table(t: Tensor, natural: Tensor, log_partition: Tensor,
                          log_h: Tensor | float | None = None) -> Tensor:
    """log h(x_n) + t(x_n) · η_k − A(η_k) (S0:27) for N data and K members as ONE matrix
    product (``addmm``: the normaliser rides in as the product's bias).

    t: (N, S) the data's statistics; natural: (K, S) the natural parameters they are
    contracted with; log_partition: (K,) A(η_k); log_h: (N,) log h(x_n), a number (a constant
    h, folded into the bias) or None (h = 1) → (N, K). The layout of t and η is the caller's:
    a family's own (``ExponentialFamily.log_prob_table``) or one with tied natural parameters
    whose statistics are summed or packed (the Gaussian emission's covariance structures)."""
    bias = -log_partition
    per_datum = isinstance(log_h, Tensor) and log_h.dim() > 0
    if log_h is not None and not per_datum:
        bias = bias + log_h
    tab = torch.addmm(bias, t, natural.T)
    if per_datum:
        assert isinstance(log_h, Tensor)
        tab = tab + log_h[:, None]
    return tab


def weighted_stat_sums(t: Tensor, weights: Tensor) -> tuple[Tensor, Tensor]:
    """The additive E-step statistics of K weighted members, two matrix products:
    (Σ_n w_nk t(x_n), Σ_n w_nk). t: (N, S) flat statistics; weights: (N, K) → ((K, S), (K,))."""
    return weights.T @ t, weights.sum(0)


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
    with global_rng_from(generator):
        return dist.sample(torch.Size(sample_shape))


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
