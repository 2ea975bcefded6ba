"""Exponential-family emissions for models with a discrete latent state (mixtures, HMMs).

Each implements the ``Emission`` protocol of ``models/emissions.py`` for K states, as a thin
adapter over a family of ``genmodels.families`` — which holds all of the family's maths:

* ``FamilyEmission(family, K, D)``: D independent coordinates per state of any scalar family
  (``genmodels.families.FAMILIES``: "bernoulli", "poisson", "gamma", "normal", …);
* ``BernoulliEmission``: y ∈ {0, 1}^D, p̂(y | k) = Π_d p_kd^y_d (1 − p_kd)^(1 − y_d) (a mixture
  of Bernoullis; the emission of a Bernoulli HMM);
* ``PoissonEmission``: y ∈ N^D, D independent counts, p̂(y | k) = Π_d Pois(y_d; λ_kd);
* ``CategoricalEmission``: one symbol y ∈ {0, …, M−1} per datum, p̂(y | k) = B_k,y (the
  emission of hmmlearn's ``CategoricalHMM``; here B is row-stochastic, rows = states).

The state's natural parameters η_k (K, D·P) are the one stored parameter, and

    log p̂(y | k) = log h(y) + ηₖᵀ t(y) − A(ηₖ)     (S0:27)  ``ExponentialFamily.log_prob_table``:
                                                            one (N, D·P)×(D·P, K) matmul
    expected_stats = {t: weightsᵀ t(y) (K, D·P), n: Σ_n weights (K,)}  ``weighted_stat_sums``
    maximize: the conjugate-prior posterior mode, ∇A(η) = (t + τ)/(n + ν)   ``natural_from_stats``

Regulariser (so that no parameter is ever exactly 0 or 1 and every log-likelihood is finite):
``pseudo_count`` a > 0 pseudo-observations of the conjugate prior (the families' docstrings
give each prior; Bernoulli: Beta(1 + a, 1 + a), p = (Σ w y + a) / (Σ w + 2a); categorical:
Dirichlet(1 + a), B_k,m = (Σ w [y = m] + a) / (Σ w + M a); Poisson: Gamma(1 + a, a),
λ = (Σ w y + a) / (Σ w + a)). The default a = 1e-6 moves a maximum-likelihood estimate by at
most ~a/N (negligible against peer libraries' unregularised estimates) while keeping it off the
boundary; a state with no weight falls back to the prior's reference member (p = ½, uniform
B_k, λ = 1). The estimates are computed and stored as natural parameters straight from the
counts, so a probability that rounds to 1 in float32 still has a finite log(1 − p).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from genmodels._validation import (
    as_tensor,
    check_data_matrix,
    check_nonnegative_float,
    check_positive_int,
    resolve_dtype,
)
from genmodels.families import FAMILIES, Bernoulli, Categorical, ExponentialFamily, Poisson
from genmodels.families.base import weighted_stat_sums
from genmodels.io import SavableModule
from genmodels.models.emissions import Stats

__all__ = ["BernoulliEmission", "CategoricalEmission", "FamilyEmission", "PoissonEmission"]


class _FamilyEmission(SavableModule):
    """What every family emission shares: the natural parameters η (K, C·P) of K states
    (C coordinates of P natural parameters each), the log-likelihood table, the expected
    statistics, the M step, initialisation and sampling — all through ``family``.

    A subclass sets ``family`` and defines ``data`` (validation), and where it differs from
    the family's own, ``_t`` (t(y) as (N, C, P)) and ``log_base`` (Σ_c log h(y_nc), (N,), or
    None where h = 1)."""

    #: the name that ``maximize(frozen=...)`` recognises for this emission's parameters.
    param_name: str = "emission"
    family: type[ExponentialFamily]

    natural: Tensor

    def __init__(self, num_states: int, num_coords: int, num_per_coord: int, *,
                 pseudo_count: float, dtype: Any, device: Any) -> None:
        super().__init__()
        self._num_states = check_positive_int(num_states, "num_states")
        self.pseudo_count = check_nonnegative_float(pseudo_count, "pseudo_count", strictly=True)
        self._shape = (num_coords, num_per_coord)
        dt = resolve_dtype(dtype)
        eta = torch.zeros(self._num_states, num_coords, num_per_coord, dtype=dt, device=device)
        self.register_buffer("natural", self.family.reference_natural(eta).flatten(1))

    # the Emission protocol -------------------------------------------------------------
    @property
    def num_states(self) -> int:
        return self._num_states

    @property
    def natural_per_coord(self) -> Tensor:
        """η as (K, C, P)."""
        return self.natural.unflatten(1, self._shape)

    def log_likelihood(self, y: Any) -> Tensor:
        """log p̂(y_n | x = k). y: (N, D) → (N, K)."""
        x = self.data(y)
        return self.family.log_prob_table(self._t(x), self.natural_per_coord,
                                          self.log_base(x))

    def expected_stats(self, y: Any, weights: Any) -> Stats:
        """{"t": Σ_n w_nk t(y_n) (K, C·P), "n": Σ_n w_nk (K,)}. weights: (N, K) ≥ 0."""
        t = self.stats(y)
        w = as_tensor(weights, name="weights", dtype=t.dtype, device=t.device)
        if w.shape != (t.shape[0], self.num_states):
            raise ValueError(f"weights must have shape (N, K) = ({t.shape[0]}, "
                             f"{self.num_states}), got {tuple(w.shape)}.")
        if bool((w < 0).any()):
            raise ValueError("weights must be nonnegative (posterior probabilities).")
        t_sum, n = weighted_stat_sums(t, w)
        return {"t": t_sum, "n": n}

    def maximize(self, stats: Stats, frozen: frozenset[str] = frozenset()) -> None:
        """M step: η_k from the summed statistics with the pseudo-count regulariser."""
        if self.param_name in frozen:
            return
        t, n = stats["t"], stats["n"]
        if t.shape != self.natural.shape or n.shape != (self.num_states,):
            raise ValueError(f"statistics have shapes t {tuple(t.shape)}, n {tuple(n.shape)}; "
                             f"expected {tuple(self.natural.shape)} and ({self.num_states},).")
        self.natural = self._natural_from_counts(t.to(self.natural), n.to(self.natural))

    def initialize(self, y: Any, generator: torch.Generator | None = None) -> None:
        """Start state k halfway between the data average and a randomly chosen datum:
        statistics t_k = ½ t̄ + ½ t(y_{n_k}) with weight 1, through the regularised M step."""
        t = self.stats(y)
        n = t.shape[0]
        if n >= self.num_states:
            idx = torch.randperm(n, generator=generator, device=t.device)[: self.num_states]
        else:
            idx = torch.randint(n, (self.num_states,), generator=generator, device=t.device)
        t_init = 0.5 * t.mean(0, keepdim=True) + 0.5 * t[idx]
        self.natural = self._natural_from_counts(
            t_init, torch.ones(self.num_states, dtype=t.dtype, device=t.device))

    def _natural_from_counts(self, t: Tensor, n: Tensor) -> Tensor:
        """``family.natural_from_stats`` per state and coordinate. (K, C·P), (K,) → (K, C·P)."""
        t3 = t.unflatten(1, self._shape)
        eta = self.family.natural_from_stats(t3, n[:, None].expand(t3.shape[:2]),
                                             self.pseudo_count)
        return eta.flatten(1)

    def sample(self, states: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """y ~ p̂(y | x = states) through ``family.sample_natural``. states: (*,) long →
        (*, C) (categorical: (*, 1) long symbols)."""
        return self.family.sample_natural(self.natural_per_coord[states], generator)

    # to be defined by each emission ----------------------------------------------------
    def data(self, y: Any) -> Tensor:
        """The validated data."""
        raise NotImplementedError

    def stats(self, y: Any) -> Tensor:
        """t(y) of validated data, flat. y: (N, D) → (N, C·P)."""
        return self._t(self.data(y)).flatten(1)

    def _t(self, x: Tensor) -> Tensor:
        """t(y) of validated data as (N, C, P)."""
        return self.family.sufficient_stats(x)

    def log_base(self, x: Tensor) -> Tensor | None:
        """Σ_c log h(y_nc), or None where h = 1. (N, C) → (N,)."""
        return self.family.summed_log_base_measure(x)

    def _matrix(self, y: Any, d: int) -> Tensor:
        return check_data_matrix(y, name="y", n_features=d, dtype=self.natural.dtype,
                                 device=self.natural.device)


class _PerCoordinateEmission(_FamilyEmission):
    """K states × D independent coordinates of a scalar family: p̂(y | k) = Π_d p(y_d | η_kd).
    ``mean_params`` (K, D), if given, are the family's mean parameters (P = 1: p, λ), set
    through ``family.natural_from_mean`` (which names what is out of range)."""

    def __init__(self, num_states: int, num_features: int, mean_params: Any = None, *,
                 pseudo_count: float, dtype: Any, device: Any) -> None:
        d = check_positive_int(num_features, "num_features")
        super().__init__(num_states, d, self.family.natural_per_unit,
                         pseudo_count=pseudo_count, dtype=dtype, device=device)
        self.num_features = d
        self.config = {"num_states": num_states, "num_features": d,
                       "pseudo_count": self.pseudo_count, "dtype": str(self.natural.dtype)[6:]}
        if mean_params is not None:
            m = as_tensor(mean_params, name=self.param_name, dtype=self.natural.dtype,
                          device=device)
            if m.shape != self.natural.shape:
                raise ValueError(f"{self.param_name} must have shape "
                                 f"{tuple(self.natural.shape)}, got {tuple(m.shape)}.")
            self.natural = self.family.natural_from_mean(m[..., None])[..., 0]

    def data(self, y: Any) -> Tensor:
        x = self._matrix(y, self.num_features)
        why = self.family.support_error(x)
        if why is not None:
            raise ValueError(f"{type(self).__name__} data {why}.")
        return x

    def num_parameters(self) -> int:
        return self.num_states * self.natural.shape[1]


class FamilyEmission(_PerCoordinateEmission):
    """K states × D independent coordinates of one scalar family of ``genmodels.families``:
    p̂(y | k) = Π_d p(y_d | η_kd). Any family registered in ``genmodels.families.FAMILIES``
    with a fixed number P of natural parameters per coordinate serves (Bernoulli, Poisson,
    Gamma, Normal, and any added there): the family's maths is all this needs.

    family: a family class or its name. num_states: K. num_features: D. natural: optional
    (K, D·P) natural parameters (otherwise the prior's reference member until
    ``initialize``). pseudo_count: the conjugate-prior regulariser of the M step.
    """

    param_name = "natural"

    def __init__(self, family: str | type[ExponentialFamily], num_states: int,
                 num_features: int, natural: Any = None, *, pseudo_count: float = 1e-6,
                 dtype: Any = torch.float64, device: Any = None) -> None:
        fam = FAMILIES.get(family) if isinstance(family, str) else family
        if fam is None or not isinstance(fam, type) or not issubclass(fam, ExponentialFamily) \
                or fam.natural_per_unit == 0 or fam.event_dim != 0:
            raise ValueError("family must be a scalar family of genmodels.families, one of "
                             f"{sorted(k for k, v in FAMILIES.items() if v.natural_per_unit)}"
                             f", got {family!r}.")
        self.family = fam
        super().__init__(num_states, num_features, pseudo_count=pseudo_count, dtype=dtype,
                         device=device)
        self.config = {"family": fam.name, **self.config}
        if natural is not None:
            eta = as_tensor(natural, name="natural", dtype=self.natural.dtype, device=device)
            if eta.shape != self.natural.shape:
                raise ValueError(f"natural must have shape {tuple(self.natural.shape)}, got "
                                 f"{tuple(eta.shape)}.")
            fam.check_natural(eta.unflatten(1, self._shape))
            self.natural = eta


class BernoulliEmission(_PerCoordinateEmission):
    """K states × D independent bits: p̂(y | k) = Π_d p_kd^y_d (1 − p_kd)^(1−y_d).

    The family is ``genmodels.families.Bernoulli``: η_kd = logit p_kd; t(y) = y;
    A(η_k) = Σ_d softplus(η_kd); h = 1.

    num_states: K. num_features: D. probs: optional (K, D) in (0, 1) (otherwise ½ until
    ``initialize``). pseudo_count: the Beta(1 + a, 1 + a) regulariser of the M step.
    """

    param_name = "probs"
    family = Bernoulli

    def __init__(self, num_states: int, num_features: int, probs: Any = None, *,
                 pseudo_count: float = 1e-6, dtype: Any = torch.float64,
                 device: Any = None) -> None:
        super().__init__(num_states, num_features, probs, pseudo_count=pseudo_count,
                         dtype=dtype, device=device)

    @property
    def probs(self) -> Tensor:
        """p_kd = σ(η_kd). (K, D)."""
        return torch.sigmoid(self.natural)

    def log_base(self, x: Tensor) -> Tensor | None:
        return None  # h = 1


class CategoricalEmission(_FamilyEmission):
    """K states emitting one symbol each: p̂(y = m | k) = B_km, m ∈ {0, …, M−1}.

    The family is ``genmodels.families.Categorical``: η_km = log B_km (normalised);
    t(y) = one_hot(y); A(η_k) = logsumexp_m η_km (= 0 once normalised); h = 1. Data: (N,)
    or (N, 1) integer symbols.

    num_states: K. num_symbols: M. probs: optional (K, M) row-stochastic, entries > 0.
    pseudo_count: the Dirichlet(1 + a) regulariser of the M step.
    """

    param_name = "probs"
    family = Categorical

    def __init__(self, num_states: int, num_symbols: int, probs: Any = None, *,
                 pseudo_count: float = 1e-6, dtype: Any = torch.float64,
                 device: Any = None) -> None:
        m = check_positive_int(num_symbols, "num_symbols")
        super().__init__(num_states, 1, m, pseudo_count=pseudo_count, dtype=dtype,
                         device=device)
        self.num_symbols = m
        self.config = {"num_states": num_states, "num_symbols": m,
                       "pseudo_count": self.pseudo_count, "dtype": str(self.natural.dtype)[6:]}
        self.natural = self.natural - torch.logsumexp(self.natural, -1, keepdim=True)
        if probs is not None:
            p = as_tensor(probs, name="probs", dtype=self.natural.dtype, device=device)
            if (p.shape != self.natural.shape or bool((p <= 0).any())
                    or bool(((p.sum(-1) - 1).abs() > 1e-6).any())):
                raise ValueError(f"probs must have shape {tuple(self.natural.shape)}, positive "
                                 "entries and rows summing to 1.")
            self.natural = torch.log(p / p.sum(-1, keepdim=True))

    @property
    def probs(self) -> Tensor:
        """B_km. (K, M)."""
        return torch.softmax(self.natural, -1)

    def data(self, y: Any) -> Tensor:
        """The symbols as (N, 1) long."""
        s = y if isinstance(y, Tensor) else torch.as_tensor(y)
        if s.dim() == 2 and s.shape[1] == 1:
            s = s[:, 0]
        if s.dim() != 1 or s.shape[0] == 0:
            raise ValueError("CategoricalEmission data must have shape (N,) or (N, 1) with "
                             f"N >= 1, got {tuple(s.shape)}.")
        if s.is_floating_point() and not bool(torch.isfinite(s).all()):
            raise ValueError("CategoricalEmission data contain NaN or infinite values.")
        sl = s.long()
        if bool(((sl != s) | (sl < 0) | (sl >= self.num_symbols)).any()):
            raise ValueError(f"CategoricalEmission symbols must be integers in "
                             f"[0, {self.num_symbols}).")
        return sl.to(self.natural.device)[:, None]

    def _t(self, x: Tensor) -> Tensor:
        """one_hot(y) as (N, 1, M)."""
        return Categorical.one_hot(x, self.num_symbols, self.natural.dtype)

    def log_likelihood(self, y: Any) -> Tensor:
        """log B_{k, y_n}: a gather, no matmul needed. y: (N,) or (N, 1) → (N, K)."""
        return Categorical.log_prob_table_of_symbols(self.data(y)[:, 0], self.natural)

    def log_base(self, x: Tensor) -> Tensor | None:
        return None  # h = 1

    def num_parameters(self) -> int:
        return self.num_states * (self.num_symbols - 1)


class PoissonEmission(_PerCoordinateEmission):
    """K states × D independent counts: p̂(y | k) = Π_d λ_kd^y_d e^{−λ_kd} / y_d!.

    The family is ``genmodels.families.Poisson``: η_kd = log λ_kd; t(y) = y;
    A(η_k) = Σ_d e^{η_kd}; log h(y) = −Σ_d log y_d!.

    num_states: K. num_features: D. rates: optional (K, D) > 0 (otherwise 1 until
    ``initialize``). pseudo_count: the Gamma(1 + a, a) regulariser of the M step.
    """

    param_name = "rates"
    family = Poisson

    def __init__(self, num_states: int, num_features: int, rates: Any = None, *,
                 pseudo_count: float = 1e-6, dtype: Any = torch.float64,
                 device: Any = None) -> None:
        super().__init__(num_states, num_features, rates, pseudo_count=pseudo_count,
                         dtype=dtype, device=device)

    @property
    def rates(self) -> Tensor:
        """λ_kd = exp η_kd. (K, D)."""
        return torch.exp(self.natural)
