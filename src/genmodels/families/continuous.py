"""Continuous exponential families: Gamma, Normal, DiagonalNormal, FullNormal."""

from __future__ import annotations

import math
from typing import Any, TypeVar

import torch
import torch.nn.functional as F_
from torch import Tensor

from genmodels._validation import as_tensor
from genmodels.families.base import ExponentialFamily, check_open_interval, summed_stats
from genmodels.linalg import LOG_TAU, symmetrize


def _float(x: Tensor) -> Tensor:
    return x if x.is_floating_point() else x.to(torch.get_default_dtype())


def _second_entry(like: Tensor, value: float) -> Tensor:
    """η₀ = (0, value): the reference member of the two-parameter families' conjugate
    priors (Gamma: Exponential(1); Normal: N(0, 1)). like: (*, 2) → (*, 2)."""
    ref = torch.zeros_like(like)
    ref[..., 1] = value
    return ref


class Gamma(ExponentialFamily):
    """p(x) = β^α x^{α−1} e^{−βx} / Γ(α), x > 0 (shape α, rate β).

    η = (α − 1, −β) (P = 2); t(x) = (log x, x); h(x) = 1;
    A(η) = log Γ(η₁ + 1) − (η₁ + 1) log(−η₂).
    Mean parameters (ψ(α) − log β, α/β); Fisher information [[ψ′(α), 1/β], [1/β, α/β²]].
    The mean → natural map has no closed form: α solves log α − ψ(α) = log E[x] − E[log x],
    found by Newton's method (``natural_from_mean``).
    Conjugate prior: a pseudo-observations with the statistics of Exponential(1), η₀ = (0, −1).
    """

    event_dim = 0
    name = "gamma"
    mean_stat = 1
    natural_per_unit = 2

    @classmethod
    def support_error(cls, x: Tensor) -> str | None:
        if not bool((x > 0).all()) or not bool(torch.isfinite(x).all()):
            return "must be positive and finite"
        return None

    @classmethod
    def reference_natural(cls, like: Tensor) -> Tensor:
        return _second_entry(like, -1.0)

    @classmethod
    def natural_from_unconstrained(cls, h: Tensor) -> Tensor:
        """(α − 1, −β) = (softplus h₁ − 1, −softplus h₂): α, β > 0. (*, 2) → (*, 2)."""
        return torch.stack([F_.softplus(h[..., 0]) - 1, -F_.softplus(h[..., 1])], -1)

    @classmethod
    def from_shape_rate(cls, concentration: Any, rate: Any) -> Gamma:
        a = as_tensor(concentration, name="concentration")
        b = as_tensor(rate, name="rate")
        a, b = torch.broadcast_tensors(a, b)
        return cls(torch.stack([a - 1, -b], -1))

    @property
    def concentration(self) -> Tensor:
        return self.natural[..., 0] + 1

    @property
    def rate(self) -> Tensor:
        return -self.natural[..., 1]

    @classmethod
    def sufficient_stats(cls, x: Tensor) -> Tensor:
        xf = _float(x)
        return torch.stack([torch.log(xf), xf], -1)

    @classmethod
    def log_base_measure(cls, x: Tensor) -> Tensor:
        return torch.zeros_like(_float(x))

    @classmethod
    def log_partition(cls, natural: Tensor) -> Tensor:
        a = natural[..., 0] + 1
        return torch.lgamma(a) - a * torch.log(-natural[..., 1])

    @classmethod
    def mean_from_natural(cls, natural: Tensor) -> Tensor:
        a, b = natural[..., 0] + 1, -natural[..., 1]
        return torch.stack([torch.digamma(a) - torch.log(b), a / b], -1)

    @classmethod
    def fisher_from_natural(cls, natural: Tensor) -> Tensor:
        a, b = natural[..., 0] + 1, -natural[..., 1]
        row0 = torch.stack([torch.polygamma(1, a), 1 / b], -1)
        row1 = torch.stack([1 / b, a / b.square()], -1)
        return torch.stack([row0, row1], -2)

    @classmethod
    def natural_from_mean(cls, mean: Tensor, *, tol: float | None = None,
                          max_iter: int = 100) -> Tensor:
        """Solve ψ(α) − log α = E[log x] − log E[x] for α by Newton's method, then β = α/E[x].

        s = log E[x] − E[log x] > 0 by Jensen's inequality (= 0 only for a point mass, which
        no Gamma has: ``ValueError``). Newton on f(α) = log α − ψ(α) − s, f′ = 1/α − ψ′(α),
        from Minka's closed-form start α₀ = (3 − s + √((s − 3)² + 24 s)) / (12 s); f is
        convex and decreasing, so Newton from below converges monotonically. Iterates in log α
        to stay positive; stops when every |Δ log α| < tol (default 100 · eps)."""
        mean_log, mean_x = mean[..., 0], mean[..., 1]
        check_open_interval(mean_x, "Gamma mean E[x]", 0.0)
        s = torch.log(mean_x) - mean_log
        check_open_interval(s, "log E[x] − E[log x] (zero only for constant data)", 0.0)
        tol = 100 * torch.finfo(mean.dtype).eps if tol is None else tol
        alpha = (3 - s + torch.sqrt((s - 3).square() + 24 * s)) / (12 * s)
        for _ in range(max_iter):
            f = torch.log(alpha) - torch.digamma(alpha) - s
            fp = 1 / alpha - torch.polygamma(1, alpha)
            # Newton step in log α: Δ log α = −f / (α f′).
            step = -f / (alpha * fp)
            alpha = alpha * torch.exp(step)
            if bool((step.abs() < tol).all()):
                break
        return torch.stack([alpha - 1, -alpha / mean_x], -1)

    @classmethod
    def check_natural(cls, natural: Tensor) -> None:
        if natural.shape[-1] != 2:
            raise ValueError(f"Gamma natural parameters have P = 2, got {natural.shape[-1]}.")
        check_open_interval(natural[..., 0], "Gamma η₁ = α − 1", -1.0)
        check_open_interval(natural[..., 1], "Gamma η₂ = −β", high=0.0)

    def to_torch(self) -> torch.distributions.Gamma:
        return torch.distributions.Gamma(self.concentration, self.rate)

    @classmethod
    def from_torch(cls, dist: torch.distributions.Distribution) -> Gamma:
        if not isinstance(dist, torch.distributions.Gamma):
            raise ValueError(f"expected torch.distributions.Gamma, got {type(dist).__name__}.")
        return cls.from_shape_rate(dist.concentration, dist.rate)


# ----------------------------------------------------------------------------- Gaussians
def gaussian_log_base(dim: int) -> float:
    """log h(x) = −(D/2) log 2π, the base measure of every Gaussian family (the constant of
    Eq. 2.8): Normal (D = 1), DiagonalNormal, FullNormal and the Gaussian emission."""
    return -0.5 * dim * LOG_TAU


def gaussian_log_partition(whitened: Tensor, log_det_factor: Tensor) -> Tensor:
    """A(η) = ½ η₁ᵀ Σ η₁ − ½ log|Σ⁻¹| of a Gaussian (η₁ = Σ⁻¹μ), from any factor U of its
    precision, U Uᵀ = Σ⁻¹: with z = U⁻¹η₁ = Uᵀμ, A = ½‖z‖² − log|U|.

    whitened: (*, D) z; log_det_factor: (*,) log|U| → (*,). ``FullNormal.log_partition``
    (U the Cholesky factor of −2η₂) and the Gaussian emission's covariance structures (U
    the precision Cholesky factor they hold) both evaluate A through it."""
    return 0.5 * whitened.square().sum(-1) - log_det_factor


def _normal_log_partition(eta1: Tensor, eta2: Tensor) -> Tensor:
    """Per coordinate: A = −η₁²/(4η₂) − ½ log(−2η₂)."""
    return -eta1.square() / (4 * eta2) - 0.5 * torch.log(-2 * eta2)


def _normal_mean(eta1: Tensor, eta2: Tensor) -> tuple[Tensor, Tensor]:
    """Per coordinate: (E[x], E[x²]) = (μ, μ² + σ²) with σ² = −1/(2η₂), μ = σ² η₁."""
    var = -0.5 / eta2
    mu = var * eta1
    return mu, mu.square() + var


def _normal_fisher_blocks(eta1: Tensor, eta2: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per coordinate: Var[x] = σ², Cov[x, x²] = 2μσ², Var[x²] = 4μ²σ² + 2σ⁴."""
    var = -0.5 / eta2
    mu = var * eta1
    return var, 2 * mu * var, 4 * mu.square() * var + 2 * var.square()


def _normal_natural(m1: Tensor, m2: Tensor, what: str) -> tuple[Tensor, Tensor]:
    var = m2 - m1.square()
    check_open_interval(var, f"{what} variance E[x²] − E[x]²", 0.0)
    return m1 / var, -0.5 / var


class _IndependentNormals(ExponentialFamily):
    """What ``Normal`` and ``DiagonalNormal`` share, written once: independent Gaussian
    coordinates with η = (μ/σ², −1/(2σ²)) and t(x) = (x, x²) per coordinate. A subclass says
    how the two halves sit in the flat vector (``_split`` and its inverse ``_join``) and how
    the coordinates' log-partitions combine (``_total``)."""

    @staticmethod
    def _split(natural: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    @staticmethod
    def _join(first: Tensor, second: Tensor) -> Tensor:
        raise NotImplementedError

    @staticmethod
    def _total(per_coordinate: Tensor) -> Tensor:
        return per_coordinate

    @classmethod
    def from_mean_var(cls: type[N], loc: Any, variance: Any) -> N:
        """loc, variance: (*batch) for Normal, (*batch, D) for DiagonalNormal."""
        m = as_tensor(loc, name="loc")
        v = as_tensor(variance, name="variance")
        m, v = torch.broadcast_tensors(m, v)
        check_open_interval(v, f"{cls.__name__} variance", 0.0)
        return cls(cls._join(m / v, -0.5 / v))

    @property
    def loc(self) -> Tensor:
        return self.variance * self._split(self.natural)[0]

    @property
    def variance(self) -> Tensor:
        return -0.5 / self._split(self.natural)[1]

    @classmethod
    def sufficient_stats(cls, x: Tensor) -> Tensor:
        xf = _float(x)
        return cls._join(xf, xf.square())

    @classmethod
    def log_partition(cls, natural: Tensor) -> Tensor:
        return cls._total(_normal_log_partition(*cls._split(natural)))

    @classmethod
    def mean_from_natural(cls, natural: Tensor) -> Tensor:
        return cls._join(*_normal_mean(*cls._split(natural)))

    @classmethod
    def natural_from_mean(cls, mean: Tensor) -> Tensor:
        return cls._join(*_normal_natural(*cls._split(mean), cls.__name__))

    @classmethod
    def _check_halves(cls, natural: Tensor) -> None:
        e1, e2 = cls._split(natural)
        check_open_interval(e1, f"{cls.__name__} η₁ = μ/σ²")
        check_open_interval(e2, f"{cls.__name__} η₂ = −1/(2σ²)", high=0.0)


N = TypeVar("N", bound=_IndependentNormals)


class Normal(_IndependentNormals):
    """N(x; μ, σ²), x ∈ R.

    η = (μ/σ², −1/(2σ²)) (P = 2); t(x) = (x, x²); log h(x) = −½ log 2π;
    A(η) = −η₁²/(4η₂) − ½ log(−2η₂) = μ²/(2σ²) + log σ.
    Conjugate prior: a pseudo-observations with the statistics of N(0, 1), η₀ = (0, −½).
    """

    name = "normal"
    natural_per_unit = 2

    @staticmethod
    def log_prob_mean_var(x: Tensor, loc: Tensor, variance: Tensor) -> Tensor:
        """log N(x; μ, σ²) = −½[log τσ² + (x − μ)²/σ²] (Eq. 2.8 in one dimension), in the
        residual form (no cancellation of x² against μ²). All broadcasting → (*)."""
        return -0.5 * (LOG_TAU + torch.log(variance) + (x - loc).square() / variance)

    @classmethod
    def log_prob_natural(cls, x: Tensor, natural: Tensor) -> Tensor:
        var = -0.5 / natural[..., 1]
        return cls.log_prob_mean_var(_float(x), var * natural[..., 0], var)

    @classmethod
    def reference_natural(cls, like: Tensor) -> Tensor:
        return _second_entry(like, -0.5)

    @classmethod
    def natural_from_unconstrained(cls, h: Tensor) -> Tensor:
        """(μ/σ², −1/(2σ²)) = (h₁, −softplus h₂). (*, 2) → (*, 2)."""
        return torch.stack([h[..., 0], -F_.softplus(h[..., 1])], -1)

    @classmethod
    def sample_natural(cls, natural: Tensor, generator: torch.Generator | None = None
                       ) -> Tensor:
        sd = torch.rsqrt(-2 * natural[..., 1])  # σ
        return cls.sample_scaled(sd * natural[..., 0], sd, generator)  # μ/σ = σ η₁

    @staticmethod
    def sample_scaled(center: Tensor, scale: Tensor, generator: torch.Generator | None = None
                      ) -> Tensor:
        """x = σ (c + ε) ~ N(σc, σ²), ε ~ N(0, 1) drawn through ``generator``: the Normal's
        sampler in scale-family form (``sample_natural``, c = μ/σ; the harmonium's Gaussian
        units, c = η and σ the layer's). center (*), scale broadcasting → (*)."""
        z = torch.randn(center.shape, generator=generator, dtype=center.dtype,
                        device=center.device)
        return scale * (center + z)

    @staticmethod
    def _split(natural: Tensor) -> tuple[Tensor, Tensor]:
        return natural[..., 0], natural[..., 1]

    @staticmethod
    def _join(first: Tensor, second: Tensor) -> Tensor:
        return torch.stack([first, second], -1)

    @classmethod
    def log_base_measure(cls, x: Tensor) -> Tensor:
        return torch.full_like(_float(x), gaussian_log_base(1))

    @classmethod
    def fisher_from_natural(cls, natural: Tensor) -> Tensor:
        v11, v12, v22 = _normal_fisher_blocks(natural[..., 0], natural[..., 1])
        return torch.stack([torch.stack([v11, v12], -1), torch.stack([v12, v22], -1)], -2)

    @classmethod
    def check_natural(cls, natural: Tensor) -> None:
        if natural.shape[-1] != 2:
            raise ValueError(f"Normal natural parameters have P = 2, got {natural.shape[-1]}.")
        cls._check_halves(natural)

    def to_torch(self) -> torch.distributions.Normal:
        return torch.distributions.Normal(self.loc, self.variance.sqrt())

    @classmethod
    def from_torch(cls, dist: torch.distributions.Distribution) -> Normal:
        if not isinstance(dist, torch.distributions.Normal):
            raise ValueError(f"expected torch.distributions.Normal, got {type(dist).__name__}.")
        return cls.from_mean_var(dist.loc, dist.scale.square())


class _VectorGaussian(ExponentialFamily):
    """What the vector Gaussians (DiagonalNormal, FullNormal) share: log h(x) = −(D/2) log 2π
    and a log_prob that checks x's last dimension against the member's D."""

    event_dim = 1

    @property
    def dim(self) -> int:
        raise NotImplementedError

    @classmethod
    def log_base_measure(cls, x: Tensor) -> Tensor:
        xf = _float(x)
        return torch.full_like(xf[..., 0], gaussian_log_base(xf.shape[-1]))

    def log_prob(self, x: Any) -> Tensor:
        xt = x if isinstance(x, Tensor) else as_tensor(x, name="x")
        if xt.shape[-1] != self.dim:
            raise ValueError(f"x must have last dimension D = {self.dim}, got {xt.shape[-1]}.")
        return super().log_prob(xt)


class DiagonalNormal(_VectorGaussian, _IndependentNormals):
    """N(x; μ, diag σ²), x ∈ R^D: D independent ``Normal`` coordinates.

    Flat layout (P = 2D): η = (μ/σ² [D entries], −1/(2σ²) [D entries]);
    t(x) = (x, x²) (element-wise square); log h(x) = −(D/2) log 2π; A is the sum of the
    coordinates' log-partitions. The Fisher information is block-diagonal per coordinate,
    laid out as [[diag Var x, diag Cov(x, x²)], [diag Cov(x, x²), diag Var x²]].
    """

    event_dim = 1
    name = "diagonal_normal"

    @staticmethod
    def natural_from_loc_precision(loc: Tensor, precision: Tensor) -> Tensor:
        """η = (λμ, −½λ) in the flat layout from means and precisions λ = 1/σ² (no
        validation: the caller's precisions are positive). (*, D), (*, D) → (*, 2D)."""
        return torch.cat([loc * precision, -0.5 * precision], -1)

    @property
    def dim(self) -> int:
        return self.num_natural // 2

    @staticmethod
    def _split(natural: Tensor) -> tuple[Tensor, Tensor]:
        d = natural.shape[-1] // 2
        return natural[..., :d], natural[..., d:]

    @staticmethod
    def _join(first: Tensor, second: Tensor) -> Tensor:
        return torch.cat([first, second], -1)

    @staticmethod
    def _total(per_coordinate: Tensor) -> Tensor:
        return per_coordinate.sum(-1)

    @classmethod
    def fisher_from_natural(cls, natural: Tensor) -> Tensor:
        v11, v12, v22 = (torch.diag_embed(v) for v in _normal_fisher_blocks(*cls._split(natural)))
        return torch.cat([torch.cat([v11, v12], -1), torch.cat([v12, v22], -1)], -2)

    @classmethod
    def check_natural(cls, natural: Tensor) -> None:
        if natural.shape[-1] % 2:
            raise ValueError(
                f"DiagonalNormal natural parameters have P = 2D, got {natural.shape[-1]}.")
        cls._check_halves(natural)

    def to_torch(self) -> torch.distributions.Independent:
        return torch.distributions.Independent(
            torch.distributions.Normal(self.loc, self.variance.sqrt()), 1)

    @classmethod
    def from_torch(cls, dist: torch.distributions.Distribution) -> DiagonalNormal:
        base = dist.base_dist if isinstance(dist, torch.distributions.Independent) else None
        if not isinstance(base, torch.distributions.Normal) or dist.event_shape.numel() != \
                base.batch_shape[-1]:
            raise ValueError("expected torch.distributions.Independent(Normal(loc, scale), 1).")
        return cls.from_mean_var(base.loc, base.scale.square())


class FullNormal(_VectorGaussian):
    """N(x; μ, Σ), x ∈ R^D, full covariance.

    η = (Σ⁻¹μ, −½Σ⁻¹), t(x) = (x, x xᵀ), log h(x) = −(D/2) log 2π,
    A(η) = −¼ η₁ᵀ Λ⁻¹ η₁ − ½ log|−2Λ| with Λ = η₂ = −½Σ⁻¹.

    Flattening (P = D + D²): the flat vector is (η₁, vec η₂) with η₂ row-major over all D²
    entries, and t(x) = (x, vec x xᵀ) likewise, so ηᵀt = η₁ᵀx + tr(η₂ x xᵀ). Since x xᵀ is
    symmetric, only sym(η₂) matters: A is defined through sym(η₂), mean parameters are
    (μ, vec(Σ + μμᵀ)), and the Fisher information ∇²A = Cov[(x, vec x xᵀ)] is a (P, P) matrix
    of rank D + D(D+1)/2 — singular along the antisymmetric directions of η₂, which do not
    change the distribution (damp it before solving with it).
    """

    event_dim = 1
    name = "full_normal"

    @classmethod
    def from_mean_cov(cls, loc: Any, covariance: Any) -> FullNormal:
        """loc: (*batch, D); covariance: (*batch, D, D) symmetric positive definite."""
        m = as_tensor(loc, name="loc")
        c = as_tensor(covariance, name="covariance")
        prec = _checked_precision(c, "covariance")
        eta1, eta2 = cls.natural_from_loc_precision(m, prec)
        eta2 = eta2.expand(*eta1.shape[:-1], *prec.shape[-2:])
        return cls(torch.cat([eta1, eta2.flatten(-2)], -1))

    @staticmethod
    def natural_from_loc_precision(loc: Tensor, precision: Tensor) -> tuple[Tensor, Tensor]:
        """(η₁, η₂) = (Σ⁻¹μ, −½Σ⁻¹) from means and precision matrices (no validation: the
        caller's precisions are positive definite). (*, D), (*, D, D) → ((*, D), (*, D, D))."""
        return (precision @ loc[..., None])[..., 0], -0.5 * precision

    @staticmethod
    def dim_from_num_natural(p: int) -> int:
        d = round((math.sqrt(1 + 4 * p) - 1) / 2)
        if d * (d + 1) != p:
            raise ValueError(f"FullNormal natural parameters have P = D + D², got P = {p}.")
        return d

    @classmethod
    def _split(cls, natural: Tensor) -> tuple[Tensor, Tensor]:
        d = cls.dim_from_num_natural(natural.shape[-1])
        eta2 = natural[..., d:].unflatten(-1, (d, d))
        return natural[..., :d], symmetrize(eta2)

    @property
    def dim(self) -> int:
        return self.dim_from_num_natural(self.num_natural)

    @property
    def precision(self) -> Tensor:
        return -2 * self._split(self.natural)[1]

    @property
    def covariance(self) -> Tensor:
        return symmetrize(torch.cholesky_inverse(torch.linalg.cholesky(self.precision)))

    @property
    def loc(self) -> Tensor:
        eta1, _ = self._split(self.natural)
        return torch.cholesky_solve(eta1[..., None], torch.linalg.cholesky(self.precision))[..., 0]

    @classmethod
    def sufficient_stats(cls, x: Tensor) -> Tensor:
        xf = _float(x)
        return torch.cat([xf, (xf[..., :, None] * xf[..., None, :]).flatten(-2)], -1)

    @classmethod
    def log_partition(cls, natural: Tensor) -> Tensor:
        eta1, eta2 = cls._split(natural)
        L = torch.linalg.cholesky(-2 * eta2)  # precision = L Lᵀ
        z = torch.linalg.solve_triangular(L, eta1[..., None], upper=False)[..., 0]
        return gaussian_log_partition(z, torch.log(L.diagonal(dim1=-2, dim2=-1)).sum(-1))

    @classmethod
    def _moments(cls, natural: Tensor) -> tuple[Tensor, Tensor]:
        eta1, eta2 = cls._split(natural)
        L = torch.linalg.cholesky(-2 * eta2)
        cov = symmetrize(torch.cholesky_inverse(L))
        mu = (cov @ eta1[..., None])[..., 0]
        return mu, cov

    @classmethod
    def mean_from_natural(cls, natural: Tensor) -> Tensor:
        mu, cov = cls._moments(natural)
        second = cov + mu[..., :, None] * mu[..., None, :]
        return torch.cat([mu, second.flatten(-2)], -1)

    @classmethod
    def fisher_from_natural(cls, natural: Tensor) -> Tensor:
        """Cov[(x, vec x xᵀ)] for x ~ N(μ, Σ) (Isserlis' theorem):
        Cov[x_i, x_k x_l] = μ_k Σ_il + μ_l Σ_ik;
        Cov[x_i x_j, x_k x_l] = Σ_ik Σ_jl + Σ_il Σ_jk
                               + μ_i μ_k Σ_jl + μ_i μ_l Σ_jk + μ_j μ_k Σ_il + μ_j μ_l Σ_ik."""
        mu, S = cls._moments(natural)
        d = mu.shape[-1]
        # (*, i, k, l)
        c12 = (mu[..., None, :, None] * S[..., :, None, :]
               + mu[..., None, None, :] * S[..., :, :, None])
        m = mu[..., :, None] * mu[..., None, :]  # μ_a μ_b
        # (*, i, j, k, l)
        Sik_Sjl = S[..., :, None, :, None] * S[..., None, :, None, :]
        Sil_Sjk = S[..., :, None, None, :] * S[..., None, :, :, None]
        c22 = (Sik_Sjl + Sil_Sjk
               + m[..., :, None, :, None] * S[..., None, :, None, :]   # μ_i μ_k Σ_jl
               + m[..., :, None, None, :] * S[..., None, :, :, None]   # μ_i μ_l Σ_jk
               + m[..., None, :, :, None] * S[..., :, None, None, :]   # μ_j μ_k Σ_il
               + m[..., None, :, None, :] * S[..., :, None, :, None])  # μ_j μ_l Σ_ik
        top = torch.cat([S, c12.reshape(*c12.shape[:-3], d, d * d)], -1)
        bottom = torch.cat([c12.reshape(*c12.shape[:-3], d, d * d).mT,
                            c22.reshape(*c22.shape[:-4], d * d, d * d)], -1)
        return torch.cat([top, bottom], -2)

    @classmethod
    def natural_from_mean(cls, mean: Tensor) -> Tensor:
        d = cls.dim_from_num_natural(mean.shape[-1])
        mu = mean[..., :d]
        cov = symmetrize(mean[..., d:].unflatten(-1, (d, d))) - mu[..., :, None] * mu[..., None, :]
        prec = _checked_precision(cov, "covariance E[x xᵀ] − μμᵀ")
        eta1, eta2 = cls.natural_from_loc_precision(mu, prec)
        return torch.cat([eta1, eta2.flatten(-2)], -1)

    @classmethod
    def check_natural(cls, natural: Tensor) -> None:
        check_open_interval(natural, "FullNormal natural parameters")
        _, eta2 = cls._split(natural)
        _, info = torch.linalg.cholesky_ex(-2 * eta2)
        if bool((info > 0).any()):
            raise ValueError("FullNormal η₂ = −½Σ⁻¹ must be negative definite (Σ positive "
                             "definite); it is not for some batch member.")

    @classmethod
    def fit(cls, x: Any, weights: Any = None) -> FullNormal:
        """Maximum likelihood (§6.1, CATALOGUE D2) through ``gaussian_ml``: the (weighted)
        mean and the 1/N covariance about it. x: (N, *batch, D)."""
        xt = _float(x if isinstance(x, Tensor) else as_tensor(x, name="x"))
        if xt.dim() < 2 or xt.shape[0] == 0:
            raise ValueError(f"x must hold at least one datum along dim 0, got {tuple(xt.shape)}.")
        return cls.from_mean_cov(*gaussian_ml(xt, weights))

    def to_torch(self) -> torch.distributions.MultivariateNormal:
        return torch.distributions.MultivariateNormal(self.loc, precision_matrix=self.precision)

    @classmethod
    def from_torch(cls, dist: torch.distributions.Distribution) -> FullNormal:
        if not isinstance(dist, torch.distributions.MultivariateNormal):
            raise ValueError(
                f"expected torch.distributions.MultivariateNormal, got {type(dist).__name__}.")
        return cls.from_mean_cov(dist.loc, dist.covariance_matrix)


def gaussian_ml(x: Tensor, weights: Any = None) -> tuple[Tensor, Tensor]:
    """The maximum-likelihood Gaussian (book §6.1, CATALOGUE D2), the one copy of it:

        μ = Σ_n w_n x_n / Σ_n w_n,   Σ = Σ_n w_n (x_n − μ)(x_n − μ)ᵀ / Σ_n w_n

    (the biased 1/N covariance; w = 1 by default), in two passes about μ so that data far
    from the origin lose no precision to cancellation. x: (N, *batch, D); weights: None, (N,)
    or (N, *batch) → (mean (*batch, D), covariance (*batch, D, D))."""
    if weights is None:
        mean = x.mean(0)
        xc = x - mean
        if xc.dim() == 2:
            return mean, symmetrize(xc.T @ xc / x.shape[0])
        return mean, symmetrize(torch.einsum("n...i,n...j->...ij", xc, xc) / x.shape[0])
    w_sum, n = summed_stats(x, weights)
    mean = w_sum / n[..., None]
    xc = x - mean
    w = as_tensor(weights, name="weights", dtype=x.dtype, device=x.device)
    while w.dim() < x.dim() - 1:
        w = w[..., None]
    wc = torch.einsum("n...,n...i,n...j->...ij", w.expand(x.shape[:-1]), xc, xc)
    return mean, symmetrize(wc / n[..., None, None])


def _checked_precision(cov: Tensor, name: str) -> Tensor:
    """Σ⁻¹ of a symmetric positive definite Σ, or ``ValueError``. cov: (*, D, D)."""
    if cov.dim() < 2 or cov.shape[-1] != cov.shape[-2]:
        raise ValueError(f"{name} must have shape (*, D, D), got {tuple(cov.shape)}.")
    L, info = torch.linalg.cholesky_ex(symmetrize(cov))
    if bool((info > 0).any()):
        raise ValueError(f"{name} must be symmetric positive definite; it is not for some "
                         "batch member (too few or collinear data for a full covariance?).")
    return symmetrize(torch.cholesky_inverse(L))
