"""Exponential-family emissions for models with a discrete latent state (mixtures, HMMs).

Each implements the ``Emission`` protocol of ``models/emissions.py`` for K states:

* ``BernoulliEmission``: y ∈ {0, 1}^D, D independent bits per state, p̂(y | k) = Π_d p_kd^y_d
  (1 − p_kd)^(1 − y_d) (a mixture of Bernoullis; the emission of a Bernoulli HMM).
* ``CategoricalEmission``: one symbol y ∈ {0, …, M−1} per datum, p̂(y | k) = B_k,y (the
  emission of hmmlearn's ``CategoricalHMM``; here B is row-stochastic, rows = states).
* ``PoissonEmission``: y ∈ N^D, D independent counts, p̂(y | k) = Π_d Pois(y_d; λ_kd).

All three are exponential families in their natural parameters η_k (``genmodels.families``),
so one implementation serves them:

    log p̂(y | k) = log h(y) + ηₖᵀ t(y) − A(ηₖ)               (S0:27)  → one (N, S)×(S, K) matmul
    expected_stats = {t: weightsᵀ t(y) (K, S), n: Σ_n weights (K,)}  → one (K, N)×(N, S) matmul
    maximize: moment matching, mean parameters = t / n (B:1487), regularised as below.

Regulariser (so that no parameter is ever exactly 0 or 1 and every log-likelihood is finite):
``pseudo_count`` a > 0 is added to every count, i.e. the M step returns the posterior mode
(MAP) under a conjugate prior —

* Bernoulli:  p = (Σ w y + a) / (Σ w + 2a)            (Beta(1 + a, 1 + a) prior),
* Categorical: B_k,m = (Σ w [y = m] + a) / (Σ w + M a) (Dirichlet(1 + a) prior),
* Poisson:    λ = (Σ w y + a) / (Σ w + a)             (Gamma(shape 1 + a, rate a) prior).

The default a = 1e-6 moves a maximum-likelihood estimate by at most ~a/N (negligible against
peer libraries' unregularised estimates) while keeping it off the boundary; a state with no
weight falls back to p = ½, uniform B_k, λ = 1. The estimates are computed and stored as
natural parameters (log-odds, log-probabilities, log-rates) straight from the counts, so a
probability that rounds to 1 in float32 still has a finite log(1 − p).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F_
from torch import Tensor

from genmodels._validation import (
    as_tensor,
    check_data_matrix,
    check_nonnegative_float,
    check_positive_int,
    resolve_dtype,
)
from genmodels.io import SavableModule
from genmodels.models.emissions import Stats

__all__ = ["BernoulliEmission", "CategoricalEmission", "PoissonEmission"]


class _FamilyEmission(SavableModule):
    """What the three emissions share: the natural parameters η (K, S) of K states, the
    log-likelihood table through one matmul and the expected statistics through another.

    A subclass defines ``stats`` (validated t(y), (N, S)), ``log_base`` (log h(y), (N,)),
    ``log_partition`` (A(η_k), (K,)), ``natural_from_counts`` (the regularised M step) and
    ``sample``."""

    #: the name that ``maximize(frozen=...)`` recognises for this emission's parameters.
    param_name: str = "emission"

    natural: Tensor

    def __init__(self, num_states: int, num_stats: int, *, pseudo_count: float,
                 dtype: Any, device: Any) -> None:
        super().__init__()
        self._num_states = check_positive_int(num_states, "num_states")
        self.pseudo_count = check_nonnegative_float(pseudo_count, "pseudo_count", strictly=True)
        dt = resolve_dtype(dtype)
        self.register_buffer("natural", torch.zeros(self._num_states, num_stats, dtype=dt,
                                                    device=device))

    # the Emission protocol -------------------------------------------------------------
    @property
    def num_states(self) -> int:
        return self._num_states

    def log_likelihood(self, y: Any) -> Tensor:
        """log p̂(y_n | x = k). y: (N, D) → (N, K)."""
        t = self.stats(y)
        return (self.log_base(t)[:, None] + t @ self.natural.T  # (N, K)
                - self.log_partition()[None, :])

    def expected_stats(self, y: Any, weights: Any) -> Stats:
        """{"t": Σ_n w_nk t(y_n) (K, S), "n": Σ_n w_nk (K,)}. weights: (N, K) ≥ 0."""
        t = self.stats(y)
        w = as_tensor(weights, name="weights", dtype=t.dtype, device=t.device)
        if w.shape != (t.shape[0], self.num_states):
            raise ValueError(f"weights must have shape (N, K) = ({t.shape[0]}, "
                             f"{self.num_states}), got {tuple(w.shape)}.")
        if bool((w < 0).any()):
            raise ValueError("weights must be nonnegative (posterior probabilities).")
        return {"t": w.T @ t, "n": w.sum(0)}

    def maximize(self, stats: Stats, frozen: frozenset[str] = frozenset()) -> None:
        """M step: η_k from the summed statistics with the pseudo-count regulariser."""
        if self.param_name in frozen:
            return
        t, n = stats["t"], stats["n"]
        if t.shape != self.natural.shape or n.shape != (self.num_states,):
            raise ValueError(f"statistics have shapes t {tuple(t.shape)}, n {tuple(n.shape)}; "
                             f"expected {tuple(self.natural.shape)} and ({self.num_states},).")
        self.natural = self.natural_from_counts(t.to(self.natural), n.to(self.natural))

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
        self.natural = self.natural_from_counts(
            t_init, torch.ones(self.num_states, dtype=t.dtype, device=t.device))

    # to be defined by each family ----------------------------------------------------
    def stats(self, y: Any) -> Tensor:
        raise NotImplementedError

    def log_base(self, t: Tensor) -> Tensor:
        """log h(y) from the validated statistics t = t(y). (N, S) → (N,)."""
        raise NotImplementedError

    def log_partition(self) -> Tensor:
        raise NotImplementedError

    def natural_from_counts(self, t: Tensor, n: Tensor) -> Tensor:
        raise NotImplementedError

    def _matrix(self, y: Any, d: int) -> Tensor:
        return check_data_matrix(y, name="y", n_features=d, dtype=self.natural.dtype,
                                 device=self.natural.device)


class BernoulliEmission(_FamilyEmission):
    """K states × D independent bits: p̂(y | k) = Π_d p_kd^y_d (1 − p_kd)^(1−y_d).

    Natural parameters η_kd = logit p_kd; t(y) = y; A(η_k) = Σ_d softplus(η_kd); h = 1.

    num_states: K. num_features: D. probs: optional (K, D) in (0, 1) (otherwise ½ until
    ``initialize``). pseudo_count: the Beta(1 + a, 1 + a) regulariser of the M step.
    """

    param_name = "probs"

    def __init__(self, num_states: int, num_features: int, probs: Any = None, *,
                 pseudo_count: float = 1e-6, dtype: Any = torch.float64,
                 device: Any = None) -> None:
        d = check_positive_int(num_features, "num_features")
        super().__init__(num_states, d, pseudo_count=pseudo_count, dtype=dtype, device=device)
        self.num_features = d
        self.config = {"num_states": num_states, "num_features": d,
                       "pseudo_count": self.pseudo_count, "dtype": str(self.natural.dtype)[6:]}
        if probs is not None:
            p = as_tensor(probs, name="probs", dtype=self.natural.dtype, device=device)
            if p.shape != self.natural.shape or bool(((p <= 0) | (p >= 1)).any()):
                raise ValueError(f"probs must have shape {tuple(self.natural.shape)} with "
                                 "entries in the open interval (0, 1).")
            self.natural = torch.logit(p)

    @property
    def probs(self) -> Tensor:
        """p_kd = σ(η_kd). (K, D)."""
        return torch.sigmoid(self.natural)

    def stats(self, y: Any) -> Tensor:
        t = self._matrix(y, self.num_features)
        if bool(((t != 0) & (t != 1)).any()):
            raise ValueError("BernoulliEmission data must be 0/1 valued.")
        return t

    def log_base(self, t: Tensor) -> Tensor:
        return torch.zeros_like(t[:, 0])

    def log_partition(self) -> Tensor:
        return F_.softplus(self.natural).sum(-1)

    def natural_from_counts(self, t: Tensor, n: Tensor) -> Tensor:
        a = self.pseudo_count
        ones = t.clamp_min(0)
        zeros = (n[:, None] - t).clamp_min(0)
        return torch.log(ones + a) - torch.log(zeros + a)  # logit of (Σwy + a)/(Σw + 2a)

    def sample(self, states: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """y ~ Bernoulli(p_{states}). states: (*,) long → (*, D) float."""
        return torch.bernoulli(self.probs[states], generator=generator)

    def num_parameters(self) -> int:
        return self.num_states * self.num_features


class CategoricalEmission(_FamilyEmission):
    """K states emitting one symbol each: p̂(y = m | k) = B_km, m ∈ {0, …, M−1}.

    Natural parameters η_km = log B_km (normalised); t(y) = one_hot(y); A(η_k) =
    logsumexp_m η_km (= 0 once normalised); h = 1. Data: (N,) or (N, 1) integer symbols.

    num_states: K. num_symbols: M. probs: optional (K, M) row-stochastic, entries > 0.
    pseudo_count: the Dirichlet(1 + a) regulariser of the M step.
    """

    param_name = "probs"

    def __init__(self, num_states: int, num_symbols: int, probs: Any = None, *,
                 pseudo_count: float = 1e-6, dtype: Any = torch.float64,
                 device: Any = None) -> None:
        m = check_positive_int(num_symbols, "num_symbols")
        super().__init__(num_states, m, pseudo_count=pseudo_count, dtype=dtype, device=device)
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

    def _symbols(self, y: Any) -> Tensor:
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
        return sl.to(self.natural.device)

    def stats(self, y: Any) -> Tensor:
        return F_.one_hot(self._symbols(y), self.num_symbols).to(self.natural.dtype)

    def log_likelihood(self, y: Any) -> Tensor:
        """log B_{k, y_n}: a gather, no matmul needed. y: (N,) or (N, 1) → (N, K)."""
        log_b = self.natural - torch.logsumexp(self.natural, -1, keepdim=True)
        return log_b.T[self._symbols(y)]

    def log_base(self, t: Tensor) -> Tensor:
        return torch.zeros_like(t[:, 0])

    def log_partition(self) -> Tensor:
        return torch.logsumexp(self.natural, -1)

    def natural_from_counts(self, t: Tensor, n: Tensor) -> Tensor:
        a = self.pseudo_count
        log_c = torch.log(t.clamp_min(0) + a)
        return log_c - torch.logsumexp(log_c, -1, keepdim=True)  # log (Σw[y=m] + a)/(Σw + Ma)

    def sample(self, states: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """y ~ Categorical(B_{states}). states: (*,) long → (*, 1) long."""
        p = self.probs[states.reshape(-1)]
        draws = torch.multinomial(p, 1, replacement=True, generator=generator)
        return draws.reshape(*states.shape, 1)

    def num_parameters(self) -> int:
        return self.num_states * (self.num_symbols - 1)


class PoissonEmission(_FamilyEmission):
    """K states × D independent counts: p̂(y | k) = Π_d λ_kd^y_d e^{−λ_kd} / y_d!.

    Natural parameters η_kd = log λ_kd; t(y) = y; A(η_k) = Σ_d e^{η_kd};
    log h(y) = −Σ_d log y_d!.

    num_states: K. num_features: D. rates: optional (K, D) > 0 (otherwise 1 until
    ``initialize``). pseudo_count: the Gamma(1 + a, a) regulariser of the M step.
    """

    param_name = "rates"

    def __init__(self, num_states: int, num_features: int, rates: Any = None, *,
                 pseudo_count: float = 1e-6, dtype: Any = torch.float64,
                 device: Any = None) -> None:
        d = check_positive_int(num_features, "num_features")
        super().__init__(num_states, d, pseudo_count=pseudo_count, dtype=dtype, device=device)
        self.num_features = d
        self.config = {"num_states": num_states, "num_features": d,
                       "pseudo_count": self.pseudo_count, "dtype": str(self.natural.dtype)[6:]}
        if rates is not None:
            r = as_tensor(rates, name="rates", dtype=self.natural.dtype, device=device)
            if r.shape != self.natural.shape or bool((r <= 0).any()):
                raise ValueError(f"rates must have shape {tuple(self.natural.shape)} with "
                                 "positive entries.")
            self.natural = torch.log(r)

    @property
    def rates(self) -> Tensor:
        """λ_kd = exp η_kd. (K, D)."""
        return torch.exp(self.natural)

    def stats(self, y: Any) -> Tensor:
        t = self._matrix(y, self.num_features)
        if bool(((t < 0) | (t != torch.round(t))).any()):
            raise ValueError("PoissonEmission data must be nonnegative integer counts.")
        return t

    def log_base(self, t: Tensor) -> Tensor:
        return -torch.lgamma(t + 1).sum(-1)

    def log_partition(self) -> Tensor:
        return torch.exp(self.natural).sum(-1)

    def natural_from_counts(self, t: Tensor, n: Tensor) -> Tensor:
        a = self.pseudo_count
        return torch.log(t.clamp_min(0) + a) - torch.log(n[:, None].clamp_min(0) + a)

    def sample(self, states: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """y ~ Poisson(λ_{states}). states: (*,) long → (*, D) float counts."""
        return torch.poisson(self.rates[states], generator=generator)

    def num_parameters(self) -> int:
        return self.num_states * self.num_features
