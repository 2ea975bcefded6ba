"""The GLM view of a family: an exponential dispersion model (book §5.1.2, Eq. 5.12).

A GLM's response is a one-parameter slice of a family, indexed by the *canonical* parameter θ
with the others fixed by the dispersion φ:

    p(y; θ, φ) = exp{(y θ − b(θ)) / φ + c(y, φ)},      E[y] = μ = b′(θ),  Var[y] = φ b″(θ),

where b is the family's log-partition A along the slice (``natural(θ)``: θ ↦ the family's η
at unit dispersion). From it, once for every family:

* the canonical link g(μ) = (b′)⁻¹(μ) = θ (``canonical_link``; the family's mean → natural map);
* the variance function V(μ) = b″(θ(μ)) = ∇²A at the mean (``variance``: a closed form in μ,
  checked against ``fisher_from_natural`` in the tests; CATALOGUE errata E-14);
* the unit deviance, twice a Bregman divergence — of b* (the convex conjugate of b, the
  negative entropy b*(μ) = μθ(μ) − b(θ(μ))) between the datum and the mean, equivalently of
  b between their natural parameters, i.e. twice the KL divergence KL(p_y ‖ p_μ) (S0:33–45)
  (the four named families give it in closed form with the cancelling terms removed, checked
  against this generic form and 2·KL in the tests):

      d(y, μ) = 2 [b*(y) − b*(μ) − (y − μ) θ(μ)]  =  2 [A(θ(μ)) − A(θ(y)) − (θ(μ) − θ(y)) y];

  the conjugate form holds on the boundary of the mean space too (y = 0 counts, 0/1
  outcomes), where θ(y) = ±∞ but b*(y) is finite (0 log 0 = 0);
* the log-likelihood at dispersion φ / a_n, from the family's log-density at the natural
  parameters of that member (``log_likelihood``).

Each view is a small object; ``GLM_VIEWS`` maps names to them, so that a family added here is a
GLM response (``genmodels.models.glm_families.get_family``) with no code in the GLM.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import torch
from torch import Tensor

from genmodels.families.base import ExponentialFamily
from genmodels.families.continuous import Gamma, Normal
from genmodels.families.discrete import Bernoulli, Poisson


class ExponentialDispersion(ABC):
    """The GLM view of ``family``: b(θ) = A(natural(θ)), with y the ``family.mean_stat``-th
    sufficient statistic."""

    family: ClassVar[type[ExponentialFamily]]
    name: ClassVar[str]
    #: True when φ is fixed at 1 (binomial, Poisson); otherwise it is estimated.
    fixed_scale: ClassVar[bool] = False

    # ------------------------------------------------------------------ per family
    @abstractmethod
    def natural(self, theta: Tensor, shape: Tensor | float = 1.0) -> Tensor:
        """The family's η of the member with canonical parameter θ and precision 1/φ =
        ``shape`` (φ = 1 for the fixed-scale families). (*) → (*, P)."""

    @abstractmethod
    def canonical_link(self, mu: Tensor) -> Tensor:
        """θ = g(μ) = (b′)⁻¹(μ), the canonical link."""

    @abstractmethod
    def variance(self, mu: Tensor) -> Tensor:
        """V(μ) = b″(θ(μ)), the ∇²A of the slice at the mean, in closed form in μ."""

    @abstractmethod
    def variance_deriv(self, mu: Tensor) -> Tensor:
        """V′(μ)."""

    @abstractmethod
    def negentropy(self, mu: Tensor) -> Tensor:
        """b*(μ) = μ θ(μ) − b(θ(μ)), continuous up to the boundary of the mean space."""

    # ------------------------------------------------------------------ shared
    def cumulant(self, theta: Tensor) -> Tensor:
        """b(θ) = A(natural(θ)) (up to a constant in θ)."""
        return self.family.log_partition(self.natural(theta))

    def mean(self, theta: Tensor) -> Tensor:
        """μ = b′(θ) = ∇A(natural(θ))[mean_stat]."""
        return self.family.mean_value(self.natural(theta))

    def unit_deviance(self, y: Tensor, mu: Tensor) -> Tensor:
        """d(y, μ) = 2 [b*(y) − b*(μ) − (y − μ) θ(μ)], twice the Bregman divergence of b*."""
        return 2.0 * (self.negentropy(y) - self.negentropy(mu)
                      - (y - mu) * self.canonical_link(mu))

    def log_likelihood(self, y: Tensor, mu: Tensor, var_weights: Tensor, scale: float,
                       trials: Tensor | None = None) -> Tensor:
        """log p(y_n | μ_n, φ / a_n) per observation: the family's log-density at the member
        with mean μ_n and precision a_n / φ (Eq. 5.12)."""
        shape = var_weights / scale
        return self.family.log_prob_natural(y, self.natural(self.canonical_link(mu), shape))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _xlogy_ratio(y: Tensor, mu: Tensor) -> Tensor:
    """y log(y/μ) with 0 log 0 = 0."""
    return torch.special.xlogy(y, y) - torch.special.xlogy(y, mu)


def _with_shape(theta: Tensor, shape: Tensor | float) -> tuple[Tensor, Tensor]:
    """θ and the precision 1/φ broadcast together."""
    s = torch.as_tensor(shape, dtype=theta.dtype, device=theta.device)
    theta, s = torch.broadcast_tensors(theta, s)
    return theta, s


class NormalDispersion(ExponentialDispersion):
    """N(μ, φ): θ = μ, b(θ) = θ²/2, V = 1, b*(μ) = μ²/2, d = (y − μ)²."""

    family = Normal
    name = "gaussian"

    def natural(self, theta: Tensor, shape: Tensor | float = 1.0) -> Tensor:
        theta, s = _with_shape(theta, shape)
        return torch.stack([theta * s, -0.5 * s], -1)

    def canonical_link(self, mu: Tensor) -> Tensor:
        return mu

    def variance(self, mu: Tensor) -> Tensor:
        return torch.ones_like(mu)

    def variance_deriv(self, mu: Tensor) -> Tensor:
        return torch.zeros_like(mu)

    def negentropy(self, mu: Tensor) -> Tensor:
        return 0.5 * mu.square()

    def unit_deviance(self, y: Tensor, mu: Tensor) -> Tensor:
        """(y − μ)², the Bregman divergence of μ²/2 in its residual form."""
        return (y - mu).square()


class BinomialDispersion(ExponentialDispersion):
    """Bernoulli / binomial proportions: θ = logit μ, b(θ) = softplus θ, V = μ(1 − μ),
    b*(μ) = μ log μ + (1 − μ) log(1 − μ). With ``trials`` n the response is the proportion
    of n Bernoulli trials: n times the Bernoulli log-density plus log C(n, k)."""

    family = Bernoulli
    name = "binomial"
    fixed_scale = True

    def natural(self, theta: Tensor, shape: Tensor | float = 1.0) -> Tensor:
        return theta[..., None]

    def canonical_link(self, mu: Tensor) -> Tensor:
        return torch.logit(mu)

    def variance(self, mu: Tensor) -> Tensor:
        return mu * (1.0 - mu)

    def variance_deriv(self, mu: Tensor) -> Tensor:
        return 1.0 - 2.0 * mu

    def negentropy(self, mu: Tensor) -> Tensor:
        return torch.special.xlogy(mu, mu) + torch.special.xlogy(1.0 - mu, 1.0 - mu)

    def unit_deviance(self, y: Tensor, mu: Tensor) -> Tensor:
        """2[y log(y/μ) + (1 − y) log((1 − y)/(1 − μ))]: the Bregman divergence of b* with
        the μ log μ terms cancelled (four xlogy, no logit: IRLS evaluates it every step)."""
        return 2.0 * (_xlogy_ratio(y, mu) + _xlogy_ratio(1.0 - y, 1.0 - mu))

    def log_likelihood(self, y: Tensor, mu: Tensor, var_weights: Tensor, scale: float,
                       trials: Tensor | None = None) -> Tensor:
        """Σ over the n trials of the Bernoulli log-density in mean form (μ may sit at the
        clip eps), k log μ + (n − k) log(1 − μ), plus log C(n, k); times a_n / φ."""
        n = torch.ones_like(y) if trials is None else trials
        k = y * n
        log_comb = torch.lgamma(n + 1.0) - torch.lgamma(k + 1.0) - torch.lgamma(n - k + 1.0)
        ll = log_comb + torch.special.xlogy(k, mu) + torch.special.xlogy(n - k, 1.0 - mu)
        return var_weights * ll / scale


class PoissonDispersion(ExponentialDispersion):
    """θ = log μ, b(θ) = e^θ, V = μ, b*(μ) = μ log μ − μ."""

    family = Poisson
    name = "poisson"
    fixed_scale = True

    def natural(self, theta: Tensor, shape: Tensor | float = 1.0) -> Tensor:
        return theta[..., None]

    def canonical_link(self, mu: Tensor) -> Tensor:
        return torch.log(mu)

    def variance(self, mu: Tensor) -> Tensor:
        return mu

    def variance_deriv(self, mu: Tensor) -> Tensor:
        return torch.ones_like(mu)

    def negentropy(self, mu: Tensor) -> Tensor:
        return torch.special.xlogy(mu, mu) - mu

    def unit_deviance(self, y: Tensor, mu: Tensor) -> Tensor:
        """2[y log(y/μ) − (y − μ)]: the Bregman divergence of b* with μ log μ cancelled."""
        return 2.0 * (_xlogy_ratio(y, mu) - (y - mu))

    def log_likelihood(self, y: Tensor, mu: Tensor, var_weights: Tensor, scale: float,
                       trials: Tensor | None = None) -> Tensor:
        """(y log μ − μ − log y!) a_n / φ, with 0 log 0 = 0 (a zero mean at a zero count)."""
        return var_weights / scale * (torch.special.xlogy(y, mu) - mu
                                      - torch.lgamma(y + 1.0))


class GammaDispersion(ExponentialDispersion):
    """Gamma with mean μ and shape ν = a/φ: θ = −1/μ, b(θ) = −log(−θ), V = μ²,
    b*(μ) = −1 − log μ; the family's η = (ν − 1, νθ) (rate ν/μ)."""

    family = Gamma
    name = "gamma"

    def natural(self, theta: Tensor, shape: Tensor | float = 1.0) -> Tensor:
        theta, s = _with_shape(theta, shape)
        return torch.stack([s - 1.0, s * theta], -1)

    def canonical_link(self, mu: Tensor) -> Tensor:
        return -1.0 / mu

    def variance(self, mu: Tensor) -> Tensor:
        return mu.square()

    def variance_deriv(self, mu: Tensor) -> Tensor:
        return 2.0 * mu

    def negentropy(self, mu: Tensor) -> Tensor:
        return -1.0 - torch.log(mu)

    def unit_deviance(self, y: Tensor, mu: Tensor) -> Tensor:
        """2[(y − μ)/μ − log(y/μ)]: the Bregman divergence of −1 − log μ with the logs
        combined (one log of the ratio, not a difference of two)."""
        return 2.0 * ((y - mu) / mu - torch.log(y / mu))


GLM_VIEWS: dict[str, ExponentialDispersion] = {
    v.name: v for v in (NormalDispersion(), BinomialDispersion(), PoissonDispersion(),
                        GammaDispersion())
}
