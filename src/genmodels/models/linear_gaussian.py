"""The jointly Gaussian (linear-Gaussian) model, book §2.1.2 (CATALOGUE B4, A1, A7, A11).

Prior and emission (Eq. 2.11)::

    x ~ N(μ_x, Σ_x),        y | x ~ N(C x + c, Σ_{y|x})

with x ∈ R^K (source) and y ∈ R^D (emission). Inverting the arrow gives the posterior
p̂(x | y) = N(μ_{x|y}, Σ_{x|y}) (Eqs. 2.12–2.15, or the "Woodburied" Eqs. 2.23–2.27) and the
marginal p̂(y) = N(μ_y, Σ_y) (Eqs. 2.16–2.18); the cross-covariance is Σ_{x,y} = Σ_x Cᵀ
(Eq. 2.19).

The kernels here are pure functions on tensors (reused by factor analysis, PPCA and, through
``linear_gaussian_posterior``, by any measurement update). Two equivalent forms are provided:

* ``"information"`` (Eqs. 2.13–2.15): work in the K-dimensional source space. With the noise
  whitened, B = Σ_{y|x}^{-1/2} C L_x (L_x the Cholesky factor of Σ_x) and M = I_K + BᵀB, the
  posterior covariance is L_x M⁻¹ L_xᵀ, and the marginal's log-determinant and Mahalanobis
  term follow from the matrix determinant lemma and Woodbury's identity (Eq. B.14):
  log|Σ_y| = log|Σ_{y|x}| + log|M|, zᵀ(I + BBᵀ)⁻¹z = zᵀz − ‖L_M⁻¹ Bᵀ z‖². With a diagonal
  Σ_{y|x} this costs O(D K² + K³): the D × D marginal covariance is never formed.
* ``"covariance"`` (Eqs. 2.25–2.27): one Cholesky factorisation of the D × D marginal
  covariance Σ_y; cheaper when K > D, and valid when Σ_x is only positive semi-definite.

No explicit inverse is formed anywhere: every "inverse" is a Cholesky solve.

Shapes: N data, D observed dims, K latent dims, leading ``*batch`` dims on the parameters
broadcast against those of the data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor

from genmodels.families.continuous import gaussian_ml
from genmodels.io import SavableModule
from genmodels.linalg import (
    LOG_TAU,
    cholesky_logdet,
    gaussian_log_density_cholesky,
    safe_cholesky,
    symmetrize,
)

__all__ = [
    "DenseCovariance",
    "DiagonalCovariance",
    "GaussianMarginal",
    "GaussianMoments",
    "GaussianPosterior",
    "LinearGaussian",
    "expected_quadratic",
    "fit_gaussian",
    "linear_gaussian_cross_covariance",
    "linear_gaussian_joint",
    "linear_gaussian_log_marginal",
    "linear_gaussian_marginal",
    "linear_gaussian_posterior",
]


# ---------------------------------------------------------------------------------------------
# Typed results
# ---------------------------------------------------------------------------------------------


class GaussianPosterior(NamedTuple):
    """p̂(x | y) = N(mean, covariance) for each datum y.

    mean: μ_{x|y}, (*, N, K) (Eqs. 2.13 / 2.24).
    covariance: Σ_{x|y}, (*, K, K): the same for every y (Eqs. 2.14 / 2.27).
    gain: K = Σ_{x|y} Cᵀ Σ_{y|x}⁻¹ = Σ_x Cᵀ Σ_y⁻¹, (*, K, D), the normalised precision of the
        emission (Eqs. 2.15 / 2.25): μ_{x|y} = μ_x + K (y − μ_y).
    """

    mean: Tensor
    covariance: Tensor
    gain: Tensor


class GaussianMarginal(NamedTuple):
    """A Gaussian N(mean, covariance): the marginal p̂(y) (Eqs. 2.16–2.18) or the joint of
    [x; y]. mean: (*, D); covariance: (*, D, D)."""

    mean: Tensor
    covariance: Tensor


# ---------------------------------------------------------------------------------------------
# Covariance structures of the emission noise (variants chosen once, STYLE §7)
# ---------------------------------------------------------------------------------------------


class DenseCovariance:
    """A full positive definite covariance Σ, (*, D, D), held by its Cholesky factor."""

    def __init__(self, matrix: Tensor) -> None:
        self.matrix = symmetrize(matrix)
        self._scale_tril: Tensor | None = None

    @property
    def scale_tril(self) -> Tensor:
        """Lower Cholesky factor, computed on first use (the covariance form of the posterior
        only needs ``dense()``, so a singular Σ_{y|x} is allowed there)."""
        if self._scale_tril is None:
            self._scale_tril = safe_cholesky(self.matrix)
        return self._scale_tril

    def dense(self) -> Tensor:
        return self.matrix

    def solve(self, v: Tensor) -> Tensor:
        """Σ⁻¹ v for v: (*, D, M)."""
        return torch.cholesky_solve(v, self.scale_tril)

    def whiten(self, v: Tensor) -> Tensor:
        """L⁻¹ v (L Lᵀ = Σ) for v: (*, D, M)."""
        return torch.linalg.solve_triangular(self.scale_tril, v, upper=False)

    def logdet(self) -> Tensor:
        return cholesky_logdet(self.scale_tril)

    def sample(self, shape: tuple[int, ...], generator: torch.Generator | None) -> Tensor:
        """Draws from N(0, Σ): (*shape, D) for an unbatched Σ."""
        d = self.matrix.shape[-1]
        z = torch.randn(*shape, d, generator=generator, dtype=self.matrix.dtype,
                        device=self.matrix.device)
        return z @ self.scale_tril.mT


class DiagonalCovariance:
    """A diagonal covariance diag(variances), variances: (*, D) > 0. Solves are O(D)."""

    def __init__(self, variances: Tensor) -> None:
        if bool((variances <= 0).any()):
            raise ValueError("a diagonal covariance needs strictly positive variances.")
        self.variances = variances

    def dense(self) -> Tensor:
        return torch.diag_embed(self.variances)

    def solve(self, v: Tensor) -> Tensor:
        return v / self.variances[..., :, None]

    def whiten(self, v: Tensor) -> Tensor:
        return v / self.variances.sqrt()[..., :, None]

    def logdet(self) -> Tensor:
        return self.variances.log().sum(-1)

    def sample(self, shape: tuple[int, ...], generator: torch.Generator | None) -> Tensor:
        z = torch.randn(*shape, self.variances.shape[-1], generator=generator,
                        dtype=self.variances.dtype, device=self.variances.device)
        return z * self.variances.sqrt()


Covariance = DenseCovariance | DiagonalCovariance


def _as_covariance(cov: Tensor | Covariance) -> Covariance:
    if isinstance(cov, (DenseCovariance, DiagonalCovariance)):
        return cov
    return DenseCovariance(cov)


# ---------------------------------------------------------------------------------------------
# Kernels
# ---------------------------------------------------------------------------------------------


def linear_gaussian_marginal(prior_mean: Tensor, prior_covariance: Tensor, C: Tensor, c: Tensor,
                             noise: Tensor | Covariance) -> GaussianMarginal:
    """p̂(y) = N(C μ_x + c, C Σ_x Cᵀ + Σ_{y|x}) (Eqs. 2.16–2.18, 2.26; also CATALOGUE A7, the
    affine map of a Gaussian).

    prior_mean: (*, K); prior_covariance: (*, K, K); C: (*, D, K); c: (*, D);
    noise: Σ_{y|x} as a (*, D, D) tensor or a covariance structure.
    """
    noise = _as_covariance(noise)
    mean = (C @ prior_mean[..., None])[..., 0] + c  # Eq. 2.16
    cov = symmetrize(C @ prior_covariance @ C.mT + noise.dense())  # Eq. 2.17
    return GaussianMarginal(mean, cov)


def linear_gaussian_cross_covariance(prior_covariance: Tensor, C: Tensor) -> Tensor:
    """Σ_{x,y} = Cov[X, Y] = Σ_x Cᵀ (Eq. 2.19). → (*, K, D)."""
    return prior_covariance @ C.mT


def linear_gaussian_joint(prior_mean: Tensor, prior_covariance: Tensor, C: Tensor, c: Tensor,
                          noise: Tensor | Covariance) -> GaussianMarginal:
    """The joint of [x; y]: mean [μ_x; μ_y], covariance [[Σ_x, Σ_x Cᵀ], [C Σ_x, Σ_y]]
    (Eq. 2.19 and the text around it). → mean (*, K + D), covariance (*, K + D, K + D)."""
    marg = linear_gaussian_marginal(prior_mean, prior_covariance, C, c, noise)
    cross = linear_gaussian_cross_covariance(prior_covariance, C)
    batch = torch.broadcast_shapes(prior_mean.shape[:-1], marg.mean.shape[:-1])
    mean = torch.cat([prior_mean.expand(*batch, -1), marg.mean.expand(*batch, -1)], -1)
    top = torch.cat([prior_covariance.expand(*batch, -1, -1), cross.expand(*batch, -1, -1)], -1)
    bottom = torch.cat([cross.mT.expand(*batch, -1, -1),
                        marg.covariance.expand(*batch, -1, -1)], -1)
    return GaussianMarginal(mean, torch.cat([top, bottom], -2))


def _as_data(y: Tensor) -> tuple[Tensor, bool]:
    """y: (..., D); a single datum (D,) becomes (1, D) (squeezed again on the way out)."""
    if y.dim() == 1:
        return y[None, :], True
    return y, False


@dataclass(frozen=True)
class _SourceSpace:
    """The pieces of the information form that do not depend on y.

    B = Σ_{y|x}^{-1/2} C L_x (*, D, K); M = I + BᵀB with Cholesky factor L_M (*, K, K).
    """

    L_x: Tensor
    B: Tensor
    L_M: Tensor


def _source_space(prior_covariance: Tensor, C: Tensor, noise: Covariance) -> _SourceSpace:
    L_x = safe_cholesky(prior_covariance)
    B = noise.whiten(C @ L_x)  # (*, D, K)
    k = C.shape[-1]
    eye = torch.eye(k, dtype=C.dtype, device=C.device)
    L_M = safe_cholesky(eye + B.mT @ B)  # M = L_xᵀ (Σ_x⁻¹ + Cᵀ Σ_{y|x}⁻¹ C) L_x (Eq. 2.14)
    return _SourceSpace(L_x, B, L_M)


def _prepare(y: Any, prior_mean: Tensor, C: Tensor, c: Tensor, noise: Tensor | Covariance,
             form: str) -> tuple[Covariance, Tensor, bool, str, Tensor]:
    """What the posterior and the marginal both start from: the noise as a covariance object,
    y as (*, N, D) (and whether it was one datum), ``form`` resolved ("information" when
    K ≤ D), and the marginal mean μ_y = C μ_x + c (Eq. 2.16)."""
    noise = _as_covariance(noise)
    y, single = _as_data(y)
    k, d = C.shape[-1], C.shape[-2]
    if y.shape[-1] != d:
        raise ValueError(f"y has {y.shape[-1]} features but the emission matrix C has {d} rows.")
    if form == "auto":
        form = "information" if k <= d else "covariance"
    return noise, y, single, form, (C @ prior_mean[..., None])[..., 0] + c


def linear_gaussian_posterior(
    y: Tensor,
    prior_mean: Tensor,
    prior_covariance: Tensor,
    C: Tensor,
    c: Tensor,
    noise: Tensor | Covariance,
    *,
    form: str = "auto",
) -> GaussianPosterior:
    """Bayes inversion for the jointly Gaussian model (CATALOGUE A1 in its Gaussian form, B4).

    y: (*, N, D) or (D,); parameters as in ``linear_gaussian_marginal``.
    form: ``"information"`` (Eqs. 2.13–2.15, a K × K factorisation; needs Σ_x and Σ_{y|x}
        positive definite), ``"covariance"`` (Eqs. 2.25–2.27, a D × D factorisation of Σ_y;
        Σ_x may be singular) or ``"auto"`` (information when K ≤ D, else covariance).
    Returns a ``GaussianPosterior`` (mean (*, N, K) or (K,) for a single datum).
    """
    noise, y, single, form, mu_y = _prepare(y, prior_mean, C, c, noise, form)
    if form == "information":
        ss = _source_space(prior_covariance, C, noise)
        # Σ_{x|y} = (Σ_x⁻¹ + Cᵀ Σ_{y|x}⁻¹ C)⁻¹ = L_x M⁻¹ L_xᵀ  (Eq. 2.14)
        G = torch.linalg.solve_triangular(ss.L_M, ss.L_x.mT, upper=False)  # L_M⁻¹ L_xᵀ
        cov = symmetrize(G.mT @ G)
        # K = Σ_{x|y} Cᵀ Σ_{y|x}⁻¹  (Eq. 2.15)
        gain = cov @ noise.solve(C).mT
    elif form == "covariance":
        L_y = safe_cholesky(C @ prior_covariance @ C.mT + noise.dense())  # Σ_y, Eq. 2.26
        cross = prior_covariance @ C.mT  # Σ_x Cᵀ, Eq. 2.19
        gain = torch.cholesky_solve(cross.mT, L_y).mT  # K = Σ_x Cᵀ Σ_y⁻¹, Eq. 2.25
        cov = symmetrize(prior_covariance - gain @ cross.mT)  # Σ_x − K C Σ_x, Eq. 2.27
    else:
        raise ValueError(f"form must be 'information', 'covariance' or 'auto', got {form!r}.")
    mean = prior_mean[..., None, :] + (y - mu_y[..., None, :]) @ gain.mT  # Eq. 2.24
    if single:
        mean = mean[..., 0, :]
    return GaussianPosterior(mean, cov, gain)


def linear_gaussian_log_marginal(
    y: Tensor,
    prior_mean: Tensor,
    prior_covariance: Tensor,
    C: Tensor,
    c: Tensor,
    noise: Tensor | Covariance,
    *,
    form: str = "auto",
) -> Tensor:
    """log p̂(y) = log N(y; μ_y, Σ_y) (Eq. 2.18). y: (*, N, D) or (D,) → (*, N) or ().

    The information form uses the determinant lemma and Woodbury's identity (Eq. B.14) so a
    diagonal Σ_{y|x} never needs the D × D matrix Σ_y (see the module docstring).
    """
    noise, y, single, form, mu_y = _prepare(y, prior_mean, C, c, noise, form)
    if form == "information":
        ss = _source_space(prior_covariance, C, noise)
        z = noise.whiten((y - mu_y[..., None, :]).mT)  # (*, D, N)
        u = torch.linalg.solve_triangular(ss.L_M, ss.B.mT @ z, upper=False)  # (*, K, N)
        maha = z.square().sum(-2) - u.square().sum(-2)  # Woodbury, Eq. B.14
        logdet = noise.logdet() + cholesky_logdet(ss.L_M)  # determinant lemma
        out = -0.5 * (C.shape[-2] * LOG_TAU + logdet[..., None] + maha)
    elif form == "covariance":
        L_y = safe_cholesky(C @ prior_covariance @ C.mT + noise.dense())
        out = gaussian_log_density_cholesky(y, mu_y, L_y)
    else:
        raise ValueError(f"form must be 'information', 'covariance' or 'auto', got {form!r}.")
    return out[..., 0] if single else out


def expected_quadratic(A: Tensor, b: Tensor, C: Tensor, mean: Tensor, covariance: Tensor) -> Tensor:
    """E[(b − C X)ᵀ A (b − C X)] = tr[A C Σ Cᵀ] + (b − C μ)ᵀ A (b − C μ) for E[X] = μ,
    Cov[X] = Σ (Eq. B.13, CATALOGUE A8). A: (*, D, D); b: (*, D); C: (*, D, K); mean: (*, K);
    covariance: (*, K, K) → (*,)."""
    r = b - (C @ mean[..., None])[..., 0]
    trace = (A * (C @ covariance @ C.mT).mT).sum((-2, -1))
    return trace + (r[..., None, :] @ A @ r[..., :, None])[..., 0, 0]


# ---------------------------------------------------------------------------------------------
# Gaussian density estimation through the first two moments (CATALOGUE D2)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GaussianMoments:
    """The sufficient statistics of a Gaussian, additive over data.

    n: number of data; sum: Σ_n y_n (D,); outer: Σ_n y_n y_nᵀ (D, D).

    Every linear-Gaussian E step depends on the data only through these, so factor analysis,
    PPCA and EM-PCA can run on them (computed once, O(N D²)) instead of on the data.
    """

    n: float
    sum: Tensor
    outer: Tensor
    #: True when ``sum`` is exactly zero (``outer`` is then the scatter about the mean).
    centred: bool = False

    @classmethod
    def from_data(cls, y: Tensor) -> GaussianMoments:
        """y: (N, D)."""
        if y.dim() != 2:
            raise ValueError(f"data must be (N, D), got shape {tuple(y.shape)}.")
        return cls(float(y.shape[0]), y.sum(0), y.mT @ y)

    def __add__(self, other: GaussianMoments) -> GaussianMoments:
        return GaussianMoments(self.n + other.n, self.sum + other.sum, self.outer + other.outer)

    @property
    def mean(self) -> Tensor:
        return self.sum / self.n

    def scatter(self, center: Tensor | None = None) -> Tensor:
        """Σ_n (y_n − m)(y_n − m)ᵀ about ``center`` m (default: the sample mean). (D, D)."""
        if self.centred:  # Σ y = 0: Σ (y − m)(y − m)ᵀ = outer + n m mᵀ
            if center is None:
                return self.outer
            return symmetrize(torch.addr(self.outer, center, center, alpha=self.n))
        m = self.mean if center is None else center
        s = self.outer - torch.outer(self.sum, m) - torch.outer(m, self.sum)
        return symmetrize(s + self.n * torch.outer(m, m))


#: Rows centred at a time by ``centred_moments`` (2048 × 64 float64 = 1 MiB: stays in a 2 MiB
#: L2 cache beside the rows being read; 10% faster than 4096 at N = 100,000, D = 64).
CENTRING_BLOCK = 2048


def centred_moments(y: Tensor, *, block: int = CENTRING_BLOCK,
                    overwrite: bool = False) -> tuple[Tensor, GaussianMoments]:
    """The sample mean m (D,) and the moments of the centred data, y: (N, D): n = N, sum = 0,
    outer = Σ_n (y_n − m)(y_n − m)ᵀ (D, D) — the scatter matrix of PCA and factor analysis
    (``centred_scatter``, symmetrised). overwrite: as in ``centred_scatter``."""
    mean, scatter = centred_scatter(y, block=block, overwrite=overwrite)
    return mean, GaussianMoments(float(y.shape[0]), torch.zeros_like(mean), symmetrize(scatter),
                                 centred=True)


def centred_scatter(y: Tensor, *, block: int = CENTRING_BLOCK,
                    overwrite: bool = False) -> tuple[Tensor, Tensor]:
    """The sample mean m (D,) and the scatter Σ_n (y_n − m)(y_n − m)ᵀ (D, D) of y: (N, D),
    symmetric up to rounding (``centred_moments`` symmetrises it; an eigendecomposition,
    which reads one triangle, need not).

    overwrite: y may be centred in place (for a caller whose y is a private copy): up to
    ``block`` rows it is then left holding y − m, which saves allocating an (N, D) copy.

    One pass over y: on the CPU the rows are shifted by s (the mean of the first ``block``
    rows) ``block`` at a time into one cache-sized buffer, whose Gram matrix and column sums
    are added in place; then, with m − s = Σ(y − s)/N,

        Σ (y − m)(y − m)ᵀ = Σ (y − s)(y − s)ᵀ − N (m − s)(m − s)ᵀ.

    The shift keeps the correction small (s is near m), so there is no cancellation as in
    Σ y yᵀ − N m mᵀ when the mean is large against the spread; and neither a centred copy of
    y nor a separate pass for the mean is made (each costs about as much as the Gram product
    at N = 100,000, D = 64).
    """
    if y.dim() != 2:
        raise ValueError(f"data must be (N, D), got shape {tuple(y.shape)}.")
    n, d = y.shape
    if y.device.type != "cpu" or n <= block:
        mean = y.sum(0) / n
        c = y.sub_(mean) if overwrite else y - mean
        return mean, c.mT @ c
    shift = y[:block].sum(0) / block
    scatter = y.new_zeros(d, d)
    total = y.new_zeros(d)
    buffer = y.new_empty(block, d)
    for lo in range(0, n, block):
        rows = y[lo:lo + block]
        c = torch.sub(rows, shift, out=buffer[: rows.shape[0]])
        scatter.addmm_(c.mT, c)
        total += c.sum(0)
    offset = total / n  # m − s
    scatter.addr_(offset, offset, alpha=-n)
    return shift + offset, scatter


def as_moments(data: Tensor | GaussianMoments) -> GaussianMoments:
    """Data (N, D) or already-summed moments → ``GaussianMoments``."""
    return data if isinstance(data, GaussianMoments) else GaussianMoments.from_data(data)


def fit_gaussian(y: Tensor | GaussianMoments) -> GaussianMarginal:
    """Maximum-likelihood Gaussian (book §6.1, CATALOGUE D2): the sample mean and the biased
    (1/N) sample covariance. y: (N, D) or moments → mean (D,), covariance (D, D).

    Data go through ``genmodels.families.gaussian_ml`` (two passes about the mean); summed
    moments, which cannot be centred after the fact, give the scatter about their mean."""
    if isinstance(y, Tensor):
        return GaussianMarginal(*gaussian_ml(y))
    return GaussianMarginal(y.mean, y.scatter() / y.n)


# ---------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------


class LinearGaussian(SavableModule):
    """The jointly Gaussian model of Eq. 2.11 as a module holding its parameters.

    prior_mean μ_x: (*, K); prior_covariance Σ_x: (*, K, K); emission_matrix C: (*, D, K);
    emission_offset c: (*, D); emission_covariance Σ_{y|x}: (*, D, D).
    """

    prior_mean: Tensor
    prior_covariance: Tensor
    emission_matrix: Tensor
    emission_offset: Tensor
    emission_covariance: Tensor

    def __init__(self, prior_mean: Any, prior_covariance: Any, emission_matrix: Any,
                 emission_offset: Any, emission_covariance: Any) -> None:
        super().__init__()
        tensors = [torch.as_tensor(t) for t in (prior_mean, prior_covariance, emission_matrix,
                                                 emission_offset, emission_covariance)]
        dtype = tensors[2].dtype if tensors[2].is_floating_point() else torch.float64
        mu_x, S_x, C, c, S_yx = (t.to(dtype) for t in tensors)
        k, d = C.shape[-1], C.shape[-2]
        if (mu_x.shape[-1:] != (k,) or S_x.shape[-2:] != (k, k) or c.shape[-1:] != (d,)
                or S_yx.shape[-2:] != (d, d)):
            raise ValueError(
                "inconsistent shapes: with C of shape (*, D, K) = "
                f"{tuple(C.shape)}, need prior_mean (*, K), prior_covariance (*, K, K), "
                f"emission_offset (*, D), emission_covariance (*, D, D); got "
                f"{tuple(mu_x.shape)}, {tuple(S_x.shape)}, {tuple(c.shape)}, {tuple(S_yx.shape)}."
            )
        for name, t in (("prior_mean", mu_x), ("prior_covariance", S_x), ("emission_matrix", C),
                        ("emission_offset", c), ("emission_covariance", S_yx)):
            if not bool(torch.isfinite(t).all()):
                raise ValueError(f"{name} contains NaN or infinite values.")
            self.register_buffer(name, t.clone())
        self.config = {}

    @classmethod
    def from_saved(cls, config: dict[str, Any], tensors: dict[str, Tensor]) -> LinearGaussian:
        return cls(**tensors)

    @property
    def n_latent(self) -> int:
        """K."""
        return int(self.emission_matrix.shape[-1])

    @property
    def n_features(self) -> int:
        """D."""
        return int(self.emission_matrix.shape[-2])

    def _args(self) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        return (self.prior_mean, self.prior_covariance, self.emission_matrix,
                self.emission_offset, self.emission_covariance)

    def posterior(self, y: Tensor, *, form: str = "auto") -> GaussianPosterior:
        """p̂(x | y) (Eqs. 2.12–2.15 / 2.27). y: (*, N, D) or (D,)."""
        return linear_gaussian_posterior(y, *self._args(), form=form)

    def log_marginal(self, y: Tensor, *, form: str = "auto") -> Tensor:
        """log p̂(y) (Eq. 2.18). y: (*, N, D) or (D,) → (*, N) or ()."""
        return linear_gaussian_log_marginal(y, *self._args(), form=form)

    def marginal(self) -> GaussianMarginal:
        """p̂(y) = N(μ_y, Σ_y) (Eqs. 2.16–2.18)."""
        return linear_gaussian_marginal(*self._args())

    def cross_covariance(self) -> Tensor:
        """Σ_{x,y} = Σ_x Cᵀ (Eq. 2.19), (*, K, D)."""
        return linear_gaussian_cross_covariance(self.prior_covariance, self.emission_matrix)

    def joint(self) -> GaussianMarginal:
        """The Gaussian over [x; y] (Eq. 2.19)."""
        return linear_gaussian_joint(*self._args())

    def log_joint(self, x: Tensor, y: Tensor) -> Tensor:
        """log p̂(x) + log p̂(y | x). x: (*, N, K); y: (*, N, D) → (*, N)."""
        L_x = safe_cholesky(self.prior_covariance)
        L_y = safe_cholesky(self.emission_covariance)
        log_prior = gaussian_log_density_cholesky(x, self.prior_mean, L_x)
        resid = y - x @ self.emission_matrix.mT - self.emission_offset[..., None, :]
        log_emission = gaussian_log_density_cholesky(resid, torch.zeros_like(self.emission_offset),
                                                     L_y)
        return log_prior + log_emission

    def sample(self, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Draw n pairs (x, y) from the joint (unbatched parameters). → x (n, K), y (n, D)."""
        if self.prior_mean.dim() != 1:
            raise ValueError("sample() needs unbatched parameters.")
        x = self.prior_mean + DenseCovariance(self.prior_covariance).sample((n,), generator)
        noise = DenseCovariance(self.emission_covariance).sample((n,), generator)
        y = x @ self.emission_matrix.mT + self.emission_offset + noise
        return x, y

