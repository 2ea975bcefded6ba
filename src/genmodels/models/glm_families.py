"""Link functions and response families of generalised linear models (book §5.1.2).

A GLM says ``E[x | y] = μ = g⁻¹(η)`` with linear predictor ``η = yᵀd + offset`` (the book writes
inputs ``y`` and outputs ``x``; the code follows the regression convention: design ``X`` (N, D),
response ``y`` (N,)). The response has an exponential-family density with dispersion φ
(Eq. 5.12), whose variance is ``Var[x | y] = φ V(μ)`` with ``V`` the *variance function*
(``V(μ) = A″(η)`` under the canonical link; CATALOGUE errata E-14).

Each variant is a small object chosen once (STYLE.md §7):

* a ``Link`` maps means to linear predictors: ``link(μ)``, ``inverse(η)``, ``deriv(μ) = dη/dμ``
  and ``inverse_deriv(η) = dμ/dη``;
* a ``Family`` gives the variance function, the unit deviance, the log-likelihood, valid
  responses and a starting mean.

The IRLS engine (``genmodels.learning.irls``) only calls these methods.

A family's maths lives in ``genmodels.families`` (its GLM view, ``genmodels.families.glm``);
``Family`` here is a thin adapter adding what IRLS needs beyond it. Links stay here and do not
share: a non-canonical link (probit, cloglog, the log link of a Gamma GLM, …) is a modelling
choice, not a property of any exponential family. The canonical link *is* the family's, and
``CanonicalLink(view)`` gives it for any family, so a family added to ``genmodels.families``
with a GLM view is a GLM response (``get_family(name)``) with no further code.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from genmodels.families.glm import GLM_VIEWS, ExponentialDispersion

_SQRT2 = math.sqrt(2.0)


def _clip_probability(mu: Tensor) -> Tensor:
    """Keep a probability inside [eps, 1 − eps]: the logit, probit and cloglog inverses round
    to exactly 0 or 1 for large |η| (|η| > 37, 8.3, 3.6 in float64), where V(μ) = μ(1 − μ)
    vanishes and the IRLS weights would be 0/0."""
    e = torch.finfo(mu.dtype).eps
    return mu.clamp(e, 1.0 - e)


# --------------------------------------------------------------------------------------------
# Links
# --------------------------------------------------------------------------------------------


class Link:
    """A monotone, differentiable map ``g`` from the mean μ to the linear predictor η."""

    name: str = "link"

    def __call__(self, mu: Tensor) -> Tensor:
        return self.link(mu)

    def link(self, mu: Tensor) -> Tensor:
        """η = g(μ)."""
        raise NotImplementedError

    def inverse(self, eta: Tensor) -> Tensor:
        """μ = g⁻¹(η)."""
        raise NotImplementedError

    def deriv(self, mu: Tensor) -> Tensor:
        """dη/dμ = g′(μ)."""
        raise NotImplementedError

    def deriv2(self, mu: Tensor) -> Tensor:
        """d²η/dμ² = g″(μ) (for Newton's method with the observed information)."""
        raise NotImplementedError

    def inverse_deriv(self, eta: Tensor) -> Tensor:
        """dμ/dη = 1 / g′(g⁻¹(η))."""
        return 1.0 / self.deriv(self.inverse(eta))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other)

    def __hash__(self) -> int:
        return hash(type(self))


class Identity(Link):
    name = "identity"

    def link(self, mu: Tensor) -> Tensor:
        return mu

    def inverse(self, eta: Tensor) -> Tensor:
        return eta

    def deriv(self, mu: Tensor) -> Tensor:
        return torch.ones_like(mu)

    def deriv2(self, mu: Tensor) -> Tensor:
        return torch.zeros_like(mu)

    def inverse_deriv(self, eta: Tensor) -> Tensor:
        return torch.ones_like(eta)


class Log(Link):
    name = "log"

    def link(self, mu: Tensor) -> Tensor:
        return torch.log(mu)

    def inverse(self, eta: Tensor) -> Tensor:
        return torch.exp(eta)

    def deriv(self, mu: Tensor) -> Tensor:
        return 1.0 / mu

    def deriv2(self, mu: Tensor) -> Tensor:
        return -1.0 / mu.square()

    def inverse_deriv(self, eta: Tensor) -> Tensor:
        return torch.exp(eta)


class Logit(Link):
    """η = log(μ / (1 − μ)); canonical for the Bernoulli/binomial (μ = σ(η), Eq. 10.2)."""

    name = "logit"

    def link(self, mu: Tensor) -> Tensor:
        return torch.logit(mu)

    def inverse(self, eta: Tensor) -> Tensor:
        return _clip_probability(torch.sigmoid(eta))

    def deriv(self, mu: Tensor) -> Tensor:
        return 1.0 / (mu * (1.0 - mu))

    def deriv2(self, mu: Tensor) -> Tensor:
        return (2.0 * mu - 1.0) / (mu * (1.0 - mu)).square()

    def inverse_deriv(self, eta: Tensor) -> Tensor:
        # σ(η)(1 − σ(η)) without cancellation for large |η|.
        return torch.sigmoid(eta) * torch.sigmoid(-eta)


class Probit(Link):
    """η = Φ⁻¹(μ) with Φ the standard normal CDF."""

    name = "probit"

    def link(self, mu: Tensor) -> Tensor:
        return torch.special.ndtri(mu)

    def inverse(self, eta: Tensor) -> Tensor:
        return _clip_probability(torch.special.ndtr(eta))

    def deriv(self, mu: Tensor) -> Tensor:
        return 1.0 / self.inverse_deriv(self.link(mu))

    def deriv2(self, mu: Tensor) -> Tensor:
        eta = self.link(mu)
        return eta / self.inverse_deriv(eta).square()

    def inverse_deriv(self, eta: Tensor) -> Tensor:
        return torch.exp(-0.5 * eta.square()) / math.sqrt(2.0 * math.pi)


class CLogLog(Link):
    """Complementary log-log: η = log(−log(1 − μ)), μ = 1 − exp(−exp(η))."""

    name = "cloglog"

    def link(self, mu: Tensor) -> Tensor:
        return torch.log(-torch.log1p(-mu))

    def inverse(self, eta: Tensor) -> Tensor:
        return _clip_probability(-torch.expm1(-torch.exp(eta)))

    def deriv(self, mu: Tensor) -> Tensor:
        return 1.0 / ((mu - 1.0) * torch.log1p(-mu))

    def deriv2(self, mu: Tensor) -> Tensor:
        lg = torch.log1p(-mu)
        return (-lg - 1.0) / ((1.0 - mu) * lg).square()

    def inverse_deriv(self, eta: Tensor) -> Tensor:
        return torch.exp(eta - torch.exp(eta))


class Inverse(Link):
    """η = 1/μ; canonical (up to sign) for the Gamma family."""

    name = "inverse"

    def link(self, mu: Tensor) -> Tensor:
        return 1.0 / mu

    def inverse(self, eta: Tensor) -> Tensor:
        return 1.0 / eta

    def deriv(self, mu: Tensor) -> Tensor:
        return -1.0 / mu.square()

    def deriv2(self, mu: Tensor) -> Tensor:
        return 2.0 / mu.pow(3.0)

    def inverse_deriv(self, eta: Tensor) -> Tensor:
        return -1.0 / eta.square()


class InverseSquared(Link):
    """η = 1/μ²; canonical for the inverse Gaussian."""

    name = "inverse_squared"

    def link(self, mu: Tensor) -> Tensor:
        return mu.pow(-2.0)

    def inverse(self, eta: Tensor) -> Tensor:
        return eta.pow(-0.5)

    def deriv(self, mu: Tensor) -> Tensor:
        return -2.0 * mu.pow(-3.0)

    def deriv2(self, mu: Tensor) -> Tensor:
        return 6.0 * mu.pow(-4.0)


class Sqrt(Link):
    name = "sqrt"

    def link(self, mu: Tensor) -> Tensor:
        return torch.sqrt(mu)

    def inverse(self, eta: Tensor) -> Tensor:
        return eta.square()

    def deriv(self, mu: Tensor) -> Tensor:
        return 0.5 / torch.sqrt(mu)

    def deriv2(self, mu: Tensor) -> Tensor:
        return -0.25 * mu.pow(-1.5)

    def inverse_deriv(self, eta: Tensor) -> Tensor:
        return 2.0 * eta


class CanonicalLink(Link):
    """The canonical link of any family's GLM view: η = θ(μ), μ = b′(θ), so that
    g′(μ) = 1/V(μ), g″(μ) = −V′(μ)/V(μ)² and dμ/dη = V(μ) (the variance function)."""

    def __init__(self, view: ExponentialDispersion) -> None:
        self.view = view
        self.name = f"canonical({view.name})"

    def link(self, mu: Tensor) -> Tensor:
        return self.view.canonical_link(mu)

    def inverse(self, eta: Tensor) -> Tensor:
        return self.view.mean(eta)

    def deriv(self, mu: Tensor) -> Tensor:
        return 1.0 / self.view.variance(mu)

    def deriv2(self, mu: Tensor) -> Tensor:
        return -self.view.variance_deriv(mu) / self.view.variance(mu).square()

    def inverse_deriv(self, eta: Tensor) -> Tensor:
        return self.view.variance(self.view.mean(eta))

    def __repr__(self) -> str:
        return f"CanonicalLink({self.view!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CanonicalLink) and type(other.view) is type(self.view)

    def __hash__(self) -> int:
        return hash((CanonicalLink, type(self.view)))


LINKS: dict[str, type[Link]] = {
    cls.name: cls for cls in (Identity, Log, Logit, Probit, CLogLog, Inverse, InverseSquared, Sqrt)
}


def get_link(link: str | Link) -> Link:
    """A ``Link`` from an instance or a name (identity, log, logit, probit, cloglog, inverse,
    inverse_squared, sqrt)."""
    if isinstance(link, Link):
        return link
    if link not in LINKS:
        raise ValueError(f"link must be a Link or one of {sorted(LINKS)}, got {link!r}.")
    return LINKS[link]()


# --------------------------------------------------------------------------------------------
# Families
# --------------------------------------------------------------------------------------------


class Family:
    """A response distribution of a GLM: exponential family with dispersion φ (Eq. 5.12).

    The family's maths — canonical link, variance function V(μ) = ∇²A at the mean, unit
    deviance (twice a Bregman divergence of A), log-likelihood — is ``view``, the family's
    GLM view in ``genmodels.families.glm``; what lives here is only what IRLS needs beyond
    it: the valid responses, a starting mean and the separation boundary.

    ``prior_weights`` a (N,) below are the per-observation weights that divide the variance
    (``Var[x_n] = φ V(μ_n) / a_n``): variance weights, frequency weights and, for binomial
    proportions, the number of trials.
    """

    #: the family's GLM view (set by each subclass, or given to the constructor).
    view: ExponentialDispersion
    #: makes the link used when none is given (subclasses: a named link class; a family known
    #: only by its view: its ``CanonicalLink``).
    default_link: Callable[[], Link]
    canonical_link: Callable[[], Link]
    variance: Callable[[Tensor], Tensor]
    variance_deriv: Callable[[Tensor], Tensor]
    unit_deviance: Callable[[Tensor, Tensor], Tensor]
    log_likelihood_obs: Callable[..., Tensor]

    def __init__(self, view: ExponentialDispersion | None = None) -> None:
        if view is not None:
            self.view = view
        if not hasattr(self, "view"):
            raise ValueError(f"{type(self).__name__} needs a GLM view of a family.")
        v = self.view
        self.name: str = v.name
        #: True when φ is fixed at 1 (binomial, Poisson); otherwise it is estimated.
        self.fixed_scale: bool = v.fixed_scale
        # the family's maths is its view's (genmodels.families.glm):
        self.variance = v.variance  # V(μ) = ∇²A at the mean (Var[x] = φ V(μ))
        self.variance_deriv = v.variance_deriv  # V′(μ)
        self.unit_deviance = v.unit_deviance  # d(y, μ) = 2 [log p(y; μ=y) − log p(y; μ)]
        self.log_likelihood_obs = v.log_likelihood  # log p(y_n | μ_n, φ/a_n), unweighted

        if not hasattr(type(self), "default_link"):  # a family known only by its view
            view = self.view
            self.default_link = lambda: CanonicalLink(view)
            self.canonical_link = self.default_link

    def deviance(self, y: Tensor, mu: Tensor, prior_weights: Tensor) -> Tensor:
        """Σ_n a_n d(y_n, μ_n): twice the log-likelihood ratio to the saturated model (φ = 1)."""
        return (prior_weights * self.unit_deviance(y, mu)).sum()

    def check_response(self, y: Tensor) -> None:
        """Raise ``ValueError`` if ``y`` lies outside the family's support."""

    def valid_mean(self, mu: Tensor) -> bool:
        """Whether every μ lies inside the family's mean space (used by step-halving)."""
        return bool(torch.isfinite(mu).all())

    def starting_mean(self, y: Tensor) -> Tensor:
        """A first μ inside the mean space, close to y."""
        return (y + y.mean()) / 2.0

    def at_boundary(self, y: Tensor, mu: Tensor) -> Tensor:
        """Observations whose fitted mean has reached the boundary of the mean space, where
        the likelihood has no finite maximiser (separation). Default: none."""
        return torch.zeros_like(y, dtype=torch.bool)

    def separation_signs(self, y: Tensor) -> Tensor | None:
        """For the separation test: +1 where η may run to +∞ with the likelihood still
        increasing, −1 where it may run to −∞, 0 where it must stay finite; None if the family
        cannot separate (Gaussian, Gamma)."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Gaussian(Family):
    view = GLM_VIEWS["gaussian"]
    default_link = Identity
    canonical_link = Identity

    def starting_mean(self, y: Tensor) -> Tensor:
        return y.clone()


class Binomial(Family):
    """Bernoulli / binomial proportions: y ∈ [0, 1], V(μ) = μ(1 − μ); with ``trials`` n_n the
    response is the proportion of successes and a_n includes n_n (Eq. 5.12 with φ = 1)."""

    view = GLM_VIEWS["binomial"]
    default_link = Logit
    canonical_link = Logit

    #: μ(1 − μ) below this makes a fit *suspect* of separation (|η| > 18.4 under the logit
    #: link); the linear-programming test in ``genmodels.learning.irls`` then decides.
    boundary = 1e-8

    def check_response(self, y: Tensor) -> None:
        if bool(((y < 0) | (y > 1)).any()):
            raise ValueError(
                "binomial response must be 0/1 outcomes or proportions in [0, 1]; give "
                "counts as a (successes, failures) pair of columns."
            )

    def valid_mean(self, mu: Tensor) -> bool:
        return bool(torch.isfinite(mu).all() and ((mu > 0) & (mu < 1)).all())

    def starting_mean(self, y: Tensor) -> Tensor:
        return (y + 0.5) / 2.0

    def at_boundary(self, y: Tensor, mu: Tensor) -> Tensor:
        return ((mu * (1.0 - mu)) < self.boundary) & ((y - mu).abs() < 0.5)

    def separation_signs(self, y: Tensor) -> Tensor | None:
        return (y == 1).to(y.dtype) - (y == 0).to(y.dtype)


class Poisson(Family):
    view = GLM_VIEWS["poisson"]
    default_link = Log
    canonical_link = Log

    #: μ below this for a zero count makes a fit suspect of separation (the LP test decides).
    boundary = 1e-8

    def check_response(self, y: Tensor) -> None:
        if bool((y < 0).any()):
            i = int(torch.nonzero(y < 0)[0])
            raise ValueError(
                f"Poisson response must be non-negative counts; y[{i}] = {float(y[i]):g} < 0."
            )

    def valid_mean(self, mu: Tensor) -> bool:
        return bool(torch.isfinite(mu).all() and (mu > 0).all())

    def at_boundary(self, y: Tensor, mu: Tensor) -> Tensor:
        return (mu < self.boundary) & (y == 0)

    def separation_signs(self, y: Tensor) -> Tensor | None:
        return -(y == 0).to(y.dtype)


class Gamma(Family):
    """Gamma with mean μ and shape ν = a_n/φ: V(μ) = μ², φ = 1/shape (estimated)."""

    view = GLM_VIEWS["gamma"]
    default_link = Inverse
    canonical_link = Inverse

    def check_response(self, y: Tensor) -> None:
        if bool((y <= 0).any()):
            i = int(torch.nonzero(y <= 0)[0])
            raise ValueError(
                f"Gamma response must be strictly positive; y[{i}] = {float(y[i]):g} <= 0."
            )

    def valid_mean(self, mu: Tensor) -> bool:
        return bool(torch.isfinite(mu).all() and (mu > 0).all())


FAMILIES: dict[str, type[Family]] = {
    "gaussian": Gaussian,
    "normal": Gaussian,
    "binomial": Binomial,
    "bernoulli": Binomial,
    "logistic": Binomial,
    "poisson": Poisson,
    "gamma": Gamma,
}


def get_family(family: str | Family) -> Family:
    """A ``Family`` from an instance or a name (gaussian, binomial, poisson, gamma, or any
    other family with a GLM view in ``genmodels.families.glm.GLM_VIEWS``, then with its
    canonical link by default)."""
    if isinstance(family, Family):
        return family
    if family in FAMILIES:
        return FAMILIES[family]()
    if family in GLM_VIEWS:
        return Family(GLM_VIEWS[family])
    raise ValueError(f"family must be a Family or one of {sorted(set(FAMILIES) | set(GLM_VIEWS))},"
                     f" got {family!r}.")


__all__ = [
    "FAMILIES",
    "LINKS",
    "Binomial",
    "CLogLog",
    "CanonicalLink",
    "Family",
    "Gamma",
    "Gaussian",
    "Identity",
    "Inverse",
    "InverseSquared",
    "Link",
    "Log",
    "Logit",
    "Poisson",
    "Probit",
    "Sqrt",
    "get_family",
    "get_link",
]
