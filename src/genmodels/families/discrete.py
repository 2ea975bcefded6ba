"""Discrete exponential families: Bernoulli, Categorical, Poisson."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F_
from torch import Tensor

from genmodels._validation import as_tensor
from genmodels.families.base import ExponentialFamily, check_open_interval, summed_stats


class Bernoulli(ExponentialFamily):
    """p(x) = p^x (1 − p)^(1−x), x ∈ {0, 1}.

    η = (logit p,) (P = 1); t(x) = x; A(η) = log(1 + e^η) (softplus); h(x) = 1.
    Mean parameter p = σ(η) (Eq. 10.2); Fisher information p(1 − p).
    """

    @classmethod
    def from_probs(cls, probs: Any) -> Bernoulli:
        """probs: (*batch,) in (0, 1)."""
        p = as_tensor(probs, name="probs")
        return cls.from_mean(p[..., None])

    @property
    def probs(self) -> Tensor:
        return torch.sigmoid(self.natural[..., 0])

    @classmethod
    def sufficient_stats(cls, x: Tensor) -> Tensor:
        return x[..., None].to(torch.get_default_dtype() if not x.is_floating_point()
                               else x.dtype)

    @classmethod
    def log_base_measure(cls, x: Tensor) -> Tensor:
        return torch.zeros_like(x, dtype=x.dtype if x.is_floating_point() else None)

    @classmethod
    def log_partition(cls, natural: Tensor) -> Tensor:
        return F_.softplus(natural[..., 0])

    @classmethod
    def mean_from_natural(cls, natural: Tensor) -> Tensor:
        return torch.sigmoid(natural)

    @classmethod
    def fisher_from_natural(cls, natural: Tensor) -> Tensor:
        p = torch.sigmoid(natural)
        return (p * (1 - p))[..., None]

    @classmethod
    def natural_from_mean(cls, mean: Tensor) -> Tensor:
        check_open_interval(mean, "Bernoulli mean parameter p", 0.0, 1.0)
        return torch.logit(mean)

    @classmethod
    def check_natural(cls, natural: Tensor) -> None:
        if natural.shape[-1] != 1:
            raise ValueError(f"Bernoulli natural parameters have P = 1, got {natural.shape[-1]}.")
        check_open_interval(natural, "Bernoulli logit")

    def to_torch(self) -> torch.distributions.Bernoulli:
        return torch.distributions.Bernoulli(logits=self.natural[..., 0])

    @classmethod
    def from_torch(cls, dist: torch.distributions.Distribution) -> Bernoulli:
        if not isinstance(dist, torch.distributions.Bernoulli):
            raise ValueError(f"expected torch.distributions.Bernoulli, got {type(dist).__name__}.")
        return cls(dist.logits[..., None])


class Categorical(ExponentialFamily):
    """p(x = k) = π_k, x ∈ {0, …, K−1}.

    η = log π up to an additive constant (P = K, the overcomplete "logits" layout that torch
    uses); t(x) = one_hot(x); A(η) = log Σ_k e^{η_k} (log-sum-exp); h(x) = 1.
    Mean parameters π = softmax(η) (Eq. 2.7); Fisher information diag(π) − ππᵀ, singular along
    the all-ones direction (adding a constant to η changes nothing).
    """

    @classmethod
    def from_probs(cls, probs: Any) -> Categorical:
        """probs: (*batch, K), each row positive and summing to 1."""
        return cls.from_mean(as_tensor(probs, name="probs"))

    @property
    def probs(self) -> Tensor:
        return torch.softmax(self.natural, -1)

    @property
    def num_categories(self) -> int:
        return self.num_natural

    @classmethod
    def sufficient_stats(cls, x: Tensor, num_categories: int | None = None) -> Tensor:
        """t(x) = one_hot(x, K). x: (*) integer-valued → (*, K); K defaults to max(x) + 1."""
        k = num_categories if num_categories is not None else int(x.max()) + 1
        return one_hot(x, k, torch.get_default_dtype())

    def stats(self, x: Tensor) -> Tensor:
        """t(x) = one_hot(x, K) with this member's K. x: (*) → (*, K)."""
        return one_hot(x, self.num_categories, self.natural.dtype)

    @classmethod
    def log_base_measure(cls, x: Tensor) -> Tensor:
        return torch.zeros(x.shape, dtype=torch.get_default_dtype(), device=x.device)

    @classmethod
    def log_partition(cls, natural: Tensor) -> Tensor:
        return torch.logsumexp(natural, -1)

    @classmethod
    def mean_from_natural(cls, natural: Tensor) -> Tensor:
        return torch.softmax(natural, -1)

    @classmethod
    def fisher_from_natural(cls, natural: Tensor) -> Tensor:
        p = torch.softmax(natural, -1)
        return torch.diag_embed(p) - p[..., :, None] * p[..., None, :]

    @classmethod
    def natural_from_mean(cls, mean: Tensor) -> Tensor:
        check_open_interval(mean, "Categorical probabilities", 0.0, 1.0)
        s = mean.sum(-1)
        if bool(((s - 1).abs() > 1e3 * torch.finfo(mean.dtype).eps * mean.shape[-1]).any()):
            raise ValueError("Categorical probabilities must sum to 1 along the last axis.")
        return torch.log(mean)

    @classmethod
    def check_natural(cls, natural: Tensor) -> None:
        check_open_interval(natural, "Categorical logits")

    def log_prob(self, x: Any) -> Tensor:
        xt = x if isinstance(x, Tensor) else torch.as_tensor(x)
        return ((self.stats(xt) * self.natural).sum(-1)
                - self.log_partition(self.natural))

    @classmethod
    def fit(cls, x: Any, weights: Any = None, *, num_categories: int | None = None
            ) -> Categorical:
        """Maximum likelihood: π_k = (weighted) frequency of k. x: (N, *batch) integers."""
        xt = x if isinstance(x, Tensor) else torch.as_tensor(x)
        if xt.dim() < 1 or xt.shape[0] == 0:
            raise ValueError(f"x must hold at least one datum along dim 0, got {tuple(xt.shape)}.")
        t_sum, n = summed_stats(cls.sufficient_stats(xt, num_categories), weights)
        return cls.from_mean(t_sum / n[..., None])

    def to_torch(self) -> torch.distributions.Categorical:
        return torch.distributions.Categorical(logits=self.natural)

    @classmethod
    def from_torch(cls, dist: torch.distributions.Distribution) -> Categorical:
        if not isinstance(dist, torch.distributions.Categorical):
            raise ValueError(
                f"expected torch.distributions.Categorical, got {type(dist).__name__}.")
        return cls(dist.logits)


def one_hot(x: Tensor, k: int, dtype: torch.dtype) -> Tensor:
    """one_hot(x, K) as floats, with a ``ValueError`` for symbols outside {0, …, K−1}.
    x: (*) → (*, K)."""
    xl = x.long()
    if bool(((xl != x) | (xl < 0) | (xl >= k)).any()):
        raise ValueError(f"categorical symbols must be integers in [0, {k}), got values "
                         f"in [{x.min().item()}, {x.max().item()}].")
    return F_.one_hot(xl, k).to(dtype)


class Poisson(ExponentialFamily):
    """p(x) = λ^x e^{−λ} / x!, x ∈ {0, 1, 2, …}.

    η = (log λ,) (P = 1); t(x) = x; A(η) = e^η; log h(x) = −log x!.
    Mean parameter λ = e^η; Fisher information λ.
    """

    @classmethod
    def from_rate(cls, rate: Any) -> Poisson:
        """rate: (*batch,) > 0."""
        return cls.from_mean(as_tensor(rate, name="rate")[..., None])

    @property
    def rate(self) -> Tensor:
        return torch.exp(self.natural[..., 0])

    @classmethod
    def sufficient_stats(cls, x: Tensor) -> Tensor:
        return x[..., None].to(x.dtype if x.is_floating_point() else torch.get_default_dtype())

    @classmethod
    def log_base_measure(cls, x: Tensor) -> Tensor:
        xf = x if x.is_floating_point() else x.to(torch.get_default_dtype())
        return -torch.lgamma(xf + 1)

    @classmethod
    def log_partition(cls, natural: Tensor) -> Tensor:
        return torch.exp(natural[..., 0])

    @classmethod
    def mean_from_natural(cls, natural: Tensor) -> Tensor:
        return torch.exp(natural)

    @classmethod
    def fisher_from_natural(cls, natural: Tensor) -> Tensor:
        return torch.exp(natural)[..., None]

    @classmethod
    def natural_from_mean(cls, mean: Tensor) -> Tensor:
        check_open_interval(mean, "Poisson rate", 0.0)
        return torch.log(mean)

    @classmethod
    def check_natural(cls, natural: Tensor) -> None:
        if natural.shape[-1] != 1:
            raise ValueError(f"Poisson natural parameters have P = 1, got {natural.shape[-1]}.")
        check_open_interval(natural, "Poisson log-rate")

    def to_torch(self) -> torch.distributions.Poisson:
        return torch.distributions.Poisson(self.rate)

    @classmethod
    def from_torch(cls, dist: torch.distributions.Distribution) -> Poisson:
        if not isinstance(dist, torch.distributions.Poisson):
            raise ValueError(f"expected torch.distributions.Poisson, got {type(dist).__name__}.")
        return cls(torch.log(dist.rate)[..., None])
