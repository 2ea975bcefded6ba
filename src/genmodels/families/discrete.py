"""Discrete exponential families: Bernoulli, Categorical, Poisson, Geometric."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F_
from torch import Tensor

from genmodels._validation import as_tensor
from genmodels.families.base import ExponentialFamily, check_open_interval, summed_stats


def _count_support_error(x: Tensor) -> str | None:
    """The support check of the count families (Poisson, Geometric): y ∈ {0, 1, 2, ...}."""
    if bool(((x < 0) | (x != torch.round(x))).any()):
        return "must be nonnegative integer counts"
    return None


class Bernoulli(ExponentialFamily):
    """p(x) = p^x (1 − p)^(1−x), x ∈ {0, 1}.

    η = (logit p,) (P = 1); t(x) = x; A(η) = log(1 + e^η) (softplus); h(x) = 1.
    Mean parameter p = σ(η) (Eq. 10.2); Fisher information p(1 − p).
    Conjugate prior Beta(1 + a, 1 + a): a pseudo-count per outcome (τ = a, ν = 2a).
    """

    name = "bernoulli"
    natural_per_unit = 1

    @classmethod
    def log_prob_natural(cls, x: Tensor, natural: Tensor) -> Tensor:
        """x: (*) in [0, 1]; natural: (*, 1) → (*) (``log_prob_unconstrained``)."""
        return cls.log_prob_unconstrained(x, natural[..., 0])

    @classmethod
    def log_prob_unconstrained(cls, x: Tensor, h: Tensor) -> Tensor:
        """η x − softplus(η) with η = h, as torch's fused cross entropy with logits (no
        log σ(η) that rounds to 0). x: (*) in [0, 1]; h: (*) → (*)."""
        xf = x.to(h.dtype) if x.dtype != h.dtype else x
        if h.shape != xf.shape:  # (no broadcast nodes in the common equal-shape case)
            h, xf = torch.broadcast_tensors(h, xf)
        return -F_.binary_cross_entropy_with_logits(h, xf, reduction="none")

    @classmethod
    def support_error(cls, x: Tensor) -> str | None:
        if bool(((x != 0) & (x != 1)).any()):
            return "must be 0/1 valued"
        return None

    @classmethod
    def conjugate_prior(cls, pseudo_count: float, like: Tensor) -> tuple[Tensor, Tensor]:
        a = torch.as_tensor(pseudo_count, dtype=like.dtype, device=like.device)
        return torch.full_like(like, pseudo_count), 2 * a

    @classmethod
    def natural_from_stats(cls, t_sum: Tensor, n: Tensor, pseudo_count: float = 0.0) -> Tensor:
        """logit p with p = (Σwx + a)/(Σw + 2a), as log(ones + a) − log(zeros + a): a p that
        rounds to 1 in float32 still has a finite log(1 − p)."""
        if pseudo_count == 0:
            return super().natural_from_stats(t_sum, n)
        ones = t_sum.clamp_min(0)
        zeros = (n[..., None] - t_sum).clamp_min(0)
        return torch.log(ones + pseudo_count) - torch.log(zeros + pseudo_count)

    @classmethod
    def sample_natural(cls, natural: Tensor, generator: torch.Generator | None = None
                       ) -> Tensor:
        return torch.bernoulli(torch.sigmoid(natural[..., 0]), generator=generator)

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
    Conjugate prior Dirichlet(1 + a): a pseudo-count per category (τ = a, ν = K a).
    """

    name = "categorical"

    @classmethod
    def log_prob_natural(cls, x: Tensor, natural: Tensor) -> Tensor:
        """η_x − logsumexp η, a gather from log_softmax η. x: (*) symbols; natural: (*, K)
        (broadcasting) → (*)."""
        logp = torch.log_softmax(natural, -1)
        shape = torch.broadcast_shapes(x.shape, logp.shape[:-1])
        idx = x.long().expand(shape).unsqueeze(-1)
        return logp.expand(*shape, logp.shape[-1]).gather(-1, idx).squeeze(-1)

    @staticmethod
    def one_hot(x: Tensor, k: int, dtype: torch.dtype) -> Tensor:
        """t(x) = one_hot(x, K) of validated integer symbols as floats. (*) → (*, K)."""
        return F_.one_hot(x.long(), k).to(dtype)

    @classmethod
    def log_prob_table_of_symbols(cls, x: Tensor, natural: Tensor) -> Tensor:
        """log π_k(x_n) for every symbol and member: ``log_prob_table`` with t(x) one-hot,
        done as a gather of log_softmax η (no matmul needed). x: (N,) long; natural: (K, M)
        → (N, K)."""
        return torch.log_softmax(natural, -1).T[x]

    @classmethod
    def conjugate_prior(cls, pseudo_count: float, like: Tensor) -> tuple[Tensor, Tensor]:
        k = like.shape[-1]
        a = torch.as_tensor(pseudo_count, dtype=like.dtype, device=like.device)
        return torch.full_like(like, pseudo_count), k * a

    @classmethod
    def natural_from_stats(cls, t_sum: Tensor, n: Tensor, pseudo_count: float = 0.0) -> Tensor:
        """log π with π_k = (Σw[x = k] + a)/(Σw + Ka), normalised in log space."""
        if pseudo_count == 0:
            return super().natural_from_stats(t_sum, n)
        log_c = torch.log(t_sum.clamp_min(0) + pseudo_count)
        return log_c - torch.logsumexp(log_c, -1, keepdim=True)

    @classmethod
    def mean_value(cls, natural: Tensor) -> Tensor:
        """E[X] = Σ_k k π_k (categories read as the numbers 0..K−1). (*, K) → (*)."""
        p = torch.softmax(natural, -1)
        return p @ torch.arange(p.shape[-1], dtype=p.dtype, device=p.device)

    @classmethod
    def sample_natural(cls, natural: Tensor, generator: torch.Generator | None = None
                       ) -> Tensor:
        """x ~ Categorical(softmax η), one symbol per member, by inverting the CDF at one
        uniform draw per member (vectorised: 2–3× faster than ``torch.multinomial`` on many
        small rows). (*, K) → (*) long."""
        p = torch.softmax(natural, -1)
        u = torch.rand((*p.shape[:-1], 1), generator=generator, dtype=p.dtype,
                       device=p.device)
        return (p.cumsum(-1) < u).sum(-1).clamp_(max=p.shape[-1] - 1)

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
    Conjugate prior Gamma(shape 1 + a, rate a) (τ = a, ν = a: a pseudo-counts of rate 1).
    """

    name = "poisson"
    natural_per_unit = 1

    @classmethod
    def support_error(cls, x: Tensor) -> str | None:
        return _count_support_error(x)

    @classmethod
    def natural_from_stats(cls, t_sum: Tensor, n: Tensor, pseudo_count: float = 0.0) -> Tensor:
        """log λ with λ = (Σwx + a)/(Σw + a), as a difference of logs."""
        if pseudo_count == 0:
            return super().natural_from_stats(t_sum, n)
        return (torch.log(t_sum.clamp_min(0) + pseudo_count)
                - torch.log(n[..., None].clamp_min(0) + pseudo_count))

    @classmethod
    def sample_natural(cls, natural: Tensor, generator: torch.Generator | None = None
                       ) -> Tensor:
        return torch.poisson(torch.exp(natural[..., 0]), generator=generator)

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
    def summed_log_base_measure(cls, x: Tensor) -> Tensor:
        """−Σ_c log x_c!, negated after the sum (one pass over the data fewer)."""
        xf = x if x.is_floating_point() else x.to(torch.get_default_dtype())
        return -torch.lgamma(xf + 1).sum(-1)

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


class Geometric(ExponentialFamily):
    """p(x) = (1 − q) q^x, x ∈ {0, 1, 2, …} (failures before the first success; the negative
    binomial with r = 1).

    η = (log q,) (P = 1, η < 0); t(x) = x; h(x) = 1; A(η) = −log(1 − e^η).
    Mean parameter m = e^η/(1 − e^η) = 1/(e^{−η} − 1); Fisher information m(1 + m); the
    mean → natural map η = log(m/(1 + m)). Conjugate prior: a pseudo-counts of mean 1
    (η₀ = log ½). Added in issue 18 with no code outside ``genmodels.families``: it is a
    mixture/HMM emission (``FamilyEmission("geometric", …)``), a GLM response
    (``get_family("geometric")``, canonical link log(μ/(1 + μ)), V(μ) = μ + μ²) and a VAE
    likelihood (``likelihood="geometric"``) through the families' views alone.
    """

    name = "geometric"
    natural_per_unit = 1

    @property
    def mean(self) -> Tensor:
        """E[X] = q/(1 − q). (*batch,)."""
        return self.mean_value(self.natural)

    @classmethod
    def sufficient_stats(cls, x: Tensor) -> Tensor:
        return x[..., None].to(x.dtype if x.is_floating_point() else torch.get_default_dtype())

    @classmethod
    def log_base_measure(cls, x: Tensor) -> Tensor:
        return torch.zeros(x.shape, dtype=x.dtype if x.is_floating_point()
                           else torch.get_default_dtype(), device=x.device)

    @classmethod
    def log_partition(cls, natural: Tensor) -> Tensor:
        return -torch.log(-torch.expm1(natural[..., 0]))

    @classmethod
    def mean_from_natural(cls, natural: Tensor) -> Tensor:
        return 1.0 / torch.expm1(-natural)

    @classmethod
    def fisher_from_natural(cls, natural: Tensor) -> Tensor:
        m = 1.0 / torch.expm1(-natural)
        return (m * (1.0 + m))[..., None]

    @classmethod
    def natural_from_mean(cls, mean: Tensor) -> Tensor:
        check_open_interval(mean, "Geometric mean", 0.0)
        return torch.log(mean) - torch.log1p(mean)

    @classmethod
    def check_natural(cls, natural: Tensor) -> None:
        if natural.shape[-1] != 1:
            raise ValueError(f"Geometric natural parameters have P = 1, got {natural.shape[-1]}.")
        check_open_interval(natural, "Geometric η = log q", high=0.0)

    @classmethod
    def support_error(cls, x: Tensor) -> str | None:
        return _count_support_error(x)

    @classmethod
    def reference_natural(cls, like: Tensor) -> Tensor:
        return torch.full_like(like, -math.log(2.0))

    @classmethod
    def natural_from_unconstrained(cls, h: Tensor) -> Tensor:
        """η = −softplus(h) < 0. (*, 1) → (*, 1)."""
        return -F_.softplus(h)

    def to_torch(self) -> torch.distributions.Geometric:
        return torch.distributions.Geometric(probs=-torch.expm1(self.natural[..., 0]))

    @classmethod
    def from_torch(cls, dist: torch.distributions.Distribution) -> Geometric:
        if not isinstance(dist, torch.distributions.Geometric):
            raise ValueError(f"expected torch.distributions.Geometric, got {type(dist).__name__}.")
        return cls(torch.log1p(-dist.probs)[..., None])
