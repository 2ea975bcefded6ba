"""Covariance structures of K Gaussian components, and the Gaussian emission built on them.

A Gaussian emission p̂(y | x = k) = N(y; μ_k, Σ_k) (Eq. 2.4) comes with one of four structures
for its covariances, named as scikit-learn and hmmlearn name them:

=============  ===============================  ==================  ======================
structure      Σ_k                              stored covariances  free parameters
=============  ===============================  ==================  ======================
``Full``       any SPD matrix per component      (K, D, D)           K·D(D+1)/2
``Diagonal``   diag(σ²_k1 .. σ²_kD)              (K, D)              K·D
``Spherical``  σ²_k · I                          (K,)                K
``Tied``       one SPD matrix Σ shared by all    (D, D)              D(D+1)/2
=============  ===============================  ==================  ======================

A structure is chosen once (STYLE §7) and is a small stateless object: it turns covariances
into precision Cholesky factors, evaluates the (N, K) table of log-densities, forms the
weighted second-order statistics, runs the M step, samples, and counts parameters. The
log-density's constant, log-partition, natural parameters and the one-product table are
``genmodels.families``' (see ``GaussianEmission``); a structure says only how its natural
parameters are tied, which sets its statistics.

Precision Cholesky factors. As in scikit-learn, the log-density uses ``U_k`` with
``U_k U_kᵀ = Σ_k⁻¹`` (upper triangular for full/tied; 1/σ for diagonal/spherical), so
``log N(y; μ_k, Σ_k) = −½ D log τ + log|U_k| − ½ ‖U_kᵀ(y − μ_k)‖²`` needs no inverse (Eq. 2.8).

Speed. The E step of a full-covariance mixture is one matrix product per step, not a loop over
components: with the D(D+1)/2 distinct products ``f(y) = (y_i y_j)_{i≤j}`` (the quadratic
features, computed once per datum),

    (y − μ_k)ᵀ P_k (y − μ_k) = f(y) · vec(P_k) − 2 yᵀ P_k μ_k + μ_kᵀ P_k μ_k,   P_k = U_k U_kᵀ,

so the whole (N, K) Mahalanobis table is ``F @ vec(P)ᵀ`` plus a rank-D correction; the M step's
weighted scatter Σ_n r_nk y_n y_nᵀ is ``Rᵀ @ F`` from the *same* features. Exploiting symmetry
halves the flops of the naive ``(x − μ_k)ᵀ U_k`` formulation. The expansion subtracts large
numbers when the data sit far from the origin relative to their spread, so every statistic is
taken about a fixed reference point ``center`` (the data mean, set at initialisation), which
leaves the model unchanged and keeps the cancellation small; Mahalanobis distances are clamped
at 0 against rounding.

Regularisation. ``reg_covar ≥ 0`` is added to the diagonal of every covariance the M step
estimates (scikit-learn's meaning), which keeps Σ_k positive definite when a component owns
fewer than D + 1 points or a feature is constant. With ``reg_covar = 0`` a singular estimate
raises ``ValueError`` naming the component.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch
from torch import Tensor

from genmodels.families.base import affine_log_prob_table
from genmodels.families.continuous import (
    DiagonalNormal,
    FullNormal,
    gaussian_log_base,
    gaussian_log_partition,
    gaussian_ml,
)
from genmodels.io import SavableModule
from genmodels.linalg import eps, symmetrize

Stats = dict[str, Tensor]


def _ill_defined(which: list[int], what: str = "component") -> ValueError:
    return ValueError(
        f"Fitting the Gaussian model failed because the covariance of {what}(s) {which} is not "
        "positive definite (an ill-defined empirical covariance: too few points, a collapsed "
        "component, or constant/duplicated features). Try to decrease the number of "
        "components, increase reg_covar, or scale the input data."
    )


def _triu_features(y: Tensor) -> Tensor:
    """[the D(D+1)/2 distinct products y_i y_j (i ≤ j, row by row), y, 1].

    y: (N, D) → (N, D(D+1)/2 + D + 1). With the trailing y and 1, the whole Mahalanobis table
    is one matrix product with [vec P_k; −2 P_k μ_k; μ_kᵀP_kμ_k], and the M step's counts,
    weighted sums and weighted scatter are one product Rᵀ F.
    """
    n, d = y.shape
    t = d * (d + 1) // 2
    if y.requires_grad:  # differentiable in y (e.g. the score ∇_y log p̂): no out= writes
        i, j = torch.triu_indices(d, d, device=y.device)
        return torch.cat([y[:, i] * y[:, j], y, torch.ones_like(y[:, :1])], dim=1)
    out = torch.empty(n, t + d + 1, dtype=y.dtype, device=y.device)
    if y.device.type == "cpu" and y.dtype in (torch.float32, torch.float64) and n >= 256:
        from genmodels.inference import _hmm_compiled  # (where Numba's availability is known)

        if _hmm_compiled.available():
            from genmodels.models._gaussian_numba import triu_features

            triu_features(y.detach().contiguous().numpy(), out.numpy())
            return out
    o = 0
    for i in range(d):  # D slices of whole columns: vectorised over data
        torch.mul(y[:, i:], y[:, i : i + 1], out=out[:, o : o + d - i])
        o += d - i
    out[:, t : t + d] = y
    out[:, t + d] = 1.0
    return out


def _pack(a: Tensor, off_diagonal_factor: float) -> Tensor:
    """Upper triangle of symmetric matrices, row by row, off-diagonal entries scaled.

    a: (*, D, D) → (*, D(D+1)/2).
    """
    d = a.shape[-1]
    iu = torch.triu_indices(d, d, device=a.device)
    packed = a[..., iu[0], iu[1]]
    if off_diagonal_factor != 1.0:
        scale = torch.where(iu[0] == iu[1], 1.0, off_diagonal_factor).to(a.dtype)
        packed = packed * scale
    return packed


def _unpack(p: Tensor, d: int) -> Tensor:
    """Inverse of ``_pack(·, 1)``: (*, D(D+1)/2) → symmetric (*, D, D)."""
    iu = torch.triu_indices(d, d, device=p.device)
    out = torch.zeros(*p.shape[:-1], d, d, dtype=p.dtype, device=p.device)
    out[..., iu[0], iu[1]] = p
    out[..., iu[1], iu[0]] = p
    return out


def _cholesky_or_raise(cov: Tensor, what: str) -> Tensor:
    """Lower Cholesky factor; ``ValueError`` naming the matrices that are not numerically
    positive definite: the factorisation fails, or a pivot L_ii² is at most D·eps times the
    largest variance (a rank deficiency that rounding turned into a tiny positive pivot)."""
    L, info = torch.linalg.cholesky_ex(symmetrize(cov))
    d = cov.shape[-1]
    pivots = L.diagonal(dim1=-2, dim2=-1).square()
    floor = d * eps(cov.dtype) * cov.diagonal(dim1=-2, dim2=-1).amax(-1, keepdim=True)
    bad_mask = (info > 0) | (pivots <= floor).any(-1)
    if bool(bad_mask.any()):
        raise _ill_defined(torch.nonzero(bad_mask.reshape(-1)).reshape(-1).tolist(), what)
    return L


def _precision_cholesky_from_lower(L: Tensor) -> Tensor:
    """U with U Uᵀ = (L Lᵀ)⁻¹: U = L⁻ᵀ (upper triangular). L: (*, D, D)."""
    eye = torch.eye(L.shape[-1], dtype=L.dtype, device=L.device).expand_as(L)
    return torch.linalg.solve_triangular(L, eye, upper=False).mT


class CovarianceStructure(ABC):
    """How K Gaussian components parameterise and estimate their covariances.

    Conventions: N data, D dims, K components. ``y`` and ``means`` passed to the methods are
    already shifted by the emission's reference point (see the module docstring).
    """

    name: ClassVar[str]

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other)

    def __hash__(self) -> int:
        return hash(type(self))

    @abstractmethod
    def shape(self, k: int, d: int) -> tuple[int, ...]:
        """Shape of the stored covariances."""

    @abstractmethod
    def identity(self, k: int, d: int, dtype: torch.dtype, device: Any = None) -> Tensor:
        """Unit covariances in this structure."""

    @abstractmethod
    def precision_cholesky(self, cov: Tensor) -> Tensor:
        """U with U Uᵀ = Σ⁻¹ (same shape as ``cov``); ``ValueError`` naming any component
        whose covariance is not positive definite."""

    @abstractmethod
    def precision(self, prec_chol: Tensor) -> Tensor:
        """Σ⁻¹ = U Uᵀ from the precision Cholesky factors (same shape as the covariances)."""

    @abstractmethod
    def covariance_from_precision(self, precision: Tensor) -> Tensor:
        """Σ from Σ⁻¹ (for a user's ``precisions_init``)."""

    @abstractmethod
    def log_det_precision_cholesky(self, prec_chol: Tensor, k: int, d: int) -> Tensor:
        """log |U_k| = −½ log |Σ_k| for every component: (K,)."""

    @abstractmethod
    def features(self, y: Tensor) -> Tensor:
        """Second-order features of y shared by ``mahalanobis`` and ``second_moment``."""

    @abstractmethod
    def mahalanobis(self, y: Tensor, feats: Tensor, means: Tensor, prec_chol: Tensor) -> Tensor:
        """(y_n − μ_k)ᵀ Σ_k⁻¹ (y_n − μ_k): (N, K)."""

    @abstractmethod
    def second_moment(self, y: Tensor, feats: Tensor, weights: Tensor) -> Tensor:
        """Weighted second-order statistic Σ_n r_nk (·) — additive over data."""

    @abstractmethod
    def log_density(self, y: Tensor, feats: Tensor, means: Tensor, prec_chol: Tensor, *,
                    bias: Tensor | None = None, out: Tensor | None = None) -> Tensor:
        """log N(y_n; μ_k, Σ_k) = log h(y) + ηₖᵀ t(y) − A(ηₖ) (S0:27; Eq. 2.8), as one matrix
        product of the features against the components' natural parameters: (N, K).

        h and A are the families' (``gaussian_log_base``, ``DiagonalNormal`` /
        ``gaussian_log_partition``); what a structure adds is only how its natural parameters
        are tied, which sets its statistics (see each structure).

        bias: optional (K,) added to every row, folded into the normaliser (a mixture's log π_k,
        giving Eq. 2.6's ẑ without another pass over the table); out: an (N, K) tensor a
        structure may write into (use the returned tensor)."""

    def log_partition(self, means: Tensor, prec_chol: Tensor) -> Tensor:
        """A(η_k) = ½ ‖U_kᵀμ_k‖² − log|U_k| (``gaussian_log_partition``): (K,)."""
        k, d = means.shape
        return gaussian_log_partition(self.whiten(means, prec_chol),
                                      self.log_det_precision_cholesky(prec_chol, k, d))

    @abstractmethod
    def whiten(self, means: Tensor, prec_chol: Tensor) -> Tensor:
        """U_kᵀ μ_k for every component: (K, D)."""

    def normaliser(self, means: Tensor, prec_chol: Tensor, bias: Tensor | None) -> Tensor:
        """A(η_k) − bias_k, the (K,) term ``log_density`` subtracts from every row."""
        a = self.log_partition(means, prec_chol)
        return a if bias is None else a - bias

    def moments(self, y: Tensor, feats: Tensor, weights: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Σ_n r_nk, Σ_n r_nk y_n and ``second_moment``: the statistics of the M step."""
        return weights.sum(0), weights.T @ y, self.second_moment(y, feats, weights)

    @abstractmethod
    def covariance(self, counts: Tensor, means: Tensor, second: Tensor, reg_covar: float
                   ) -> Tensor:
        """M step: Σ_k = ⟨r_k y yᵀ⟩/⟨r_k⟩ − μ_k μ_kᵀ + reg_covar · I (§7.1).

        counts: (K,) Σ_n r_nk; means: (K, D) the new means; second: ``second_moment``'s sum.
        """

    @abstractmethod
    def noise(self, cov: Tensor, states: Tensor, eps_: Tensor) -> Tensor:
        """Σ_{states}^{1/2} ε for standard normal ε: (*, D)."""

    @abstractmethod
    def num_parameters(self, k: int, d: int) -> int:
        """Free covariance parameters."""

    @abstractmethod
    def as_full(self, cov: Tensor, k: int, d: int) -> Tensor:
        """The covariances as (K, D, D) matrices."""

    def check(self, cov: Any, k: int, d: int, *, name: str = "covariances",
              dtype: torch.dtype | None = None, device: Any = None) -> Tensor:
        """Validate user-given covariances (or precisions): shape, finiteness, symmetry and
        positive definiteness. Returns them as a tensor."""
        from genmodels._validation import as_tensor

        t = as_tensor(cov, name=name, dtype=dtype, device=device)
        want = self.shape(k, d)
        if tuple(t.shape) != want:
            raise ValueError(
                f"{name} for covariance_type={self.name!r} must have shape {want}, got "
                f"{tuple(t.shape)}."
            )
        self._check_values(t, name)
        return t

    def _check_values(self, t: Tensor, name: str) -> None:
        if bool((t <= 0).any()):
            raise ValueError(f"{name} must be positive, got a minimum of {float(t.min()):g}.")


class _MatrixStructure(CovarianceStructure):
    """Shared by Full and Tied: SPD matrices held through Cholesky factors."""

    def precision_cholesky(self, cov: Tensor) -> Tensor:
        return _precision_cholesky_from_lower(_cholesky_or_raise(cov, self._what))

    def precision(self, prec_chol: Tensor) -> Tensor:
        return prec_chol @ prec_chol.mT

    def covariance_from_precision(self, precision: Tensor) -> Tensor:
        L = _cholesky_or_raise(precision, "precision matrix")
        return symmetrize(torch.cholesky_inverse(L))

    def _check_values(self, t: Tensor, name: str) -> None:
        if not torch.allclose(t, t.mT, rtol=1e-6, atol=10 * eps(t.dtype) * float(t.abs().max())):
            raise ValueError(f"{name} must be symmetric.")
        _, info = torch.linalg.cholesky_ex(t)
        if bool((info > 0).any()):
            bad = torch.nonzero(info.reshape(-1) > 0).reshape(-1).tolist()
            raise ValueError(f"{name} must be positive definite; matrix/matrices {bad} are not.")

    _what: ClassVar[str] = "component"


class Full(_MatrixStructure):
    """Σ_k any symmetric positive definite matrix per component; covariances (K, D, D)."""

    name = "full"

    def shape(self, k: int, d: int) -> tuple[int, ...]:
        return (k, d, d)

    def identity(self, k: int, d: int, dtype: torch.dtype, device: Any = None) -> Tensor:
        return torch.eye(d, dtype=dtype, device=device).expand(k, d, d).clone()

    def log_det_precision_cholesky(self, prec_chol: Tensor, k: int, d: int) -> Tensor:
        return torch.log(prec_chol.diagonal(dim1=-2, dim2=-1)).sum(-1)

    def features(self, y: Tensor) -> Tensor:
        return _triu_features(y)  # (N, D(D+1)/2 + D + 1): [y_i y_j, y, 1]

    @staticmethod
    def _quadratic_weights(means: Tensor, prec_chol: Tensor) -> Tensor:
        """[vec P_k; −2 P_k μ_k; μ_kᵀ P_k μ_k] (K, T + D + 1): F @ thisᵀ = Mahalanobis table."""
        P = prec_chol @ prec_chol.mT  # (K, D, D) precisions
        b = (P @ means[..., None]).squeeze(-1)  # (K, D) P_k μ_k
        return torch.cat([_pack(P, 2.0), -2.0 * b, (means * b).sum(-1, keepdim=True)], 1)

    def mahalanobis(self, y: Tensor, feats: Tensor, means: Tensor, prec_chol: Tensor) -> Tensor:
        # yᵀP_k y − 2 yᵀP_k μ_k + μ_kᵀP_k μ_k as ONE product with the quadratic features
        return (feats @ self._quadratic_weights(means, prec_chol).T).clamp_min_(0.0)  # (N, K)

    def log_density(self, y: Tensor, feats: Tensor, means: Tensor, prec_chol: Tensor, *,
                    bias: Tensor | None = None, out: Tensor | None = None) -> Tensor:
        """log h(y) + ηₖᵀ t(y) − A(ηₖ) with ``FullNormal``'s η = (P_kμ_k, −½P_k) and
        t(y) = (y, y yᵀ) packed by symmetry: ⟨η₂, y yᵀ⟩ = Σ_{i≤j} c_ij η₂,ij y_i y_j (c = 1 on,
        2 off the diagonal), so the features [y_i y_j (i ≤ j), y, 1] meet
        [packed η₂; η₁; log h − A] in ONE product (the constant column carries the
        normaliser)."""
        memo = getattr(self, "_memo", None)  # the weights change only when the parameters do
        if memo is not None and memo[0] is means and memo[1] is prec_chol and memo[2] is bias:
            w = memo[3]
        else:
            d = means.shape[1]
            eta1, eta2 = FullNormal.natural_from_loc_precision(means, prec_chol @ prec_chol.mT)
            norm = gaussian_log_base(d) - self.normaliser(means, prec_chol, bias)  # (K,)
            w = torch.cat([_pack(eta2, 2.0), eta1, norm[:, None]], 1)
            w = w.T.contiguous()  # (T + D + 1, K)
            self._memo = (means, prec_chol, bias, w)
        # one product (rounding in the expansion is ~eps·‖f(y)‖·‖P‖ about the center, far below
        # the density's own scale; ``mahalanobis`` clamps at 0 for callers who need the sign)
        if out is not None and out.shape == (feats.shape[0], w.shape[1]) \
                and out.dtype == w.dtype and out.device == w.device and not feats.requires_grad \
                and not w.requires_grad:
            return torch.matmul(feats, w, out=out)  # (N, K) into the caller's buffer
        return feats @ w  # (N, K)

    def whiten(self, means: Tensor, prec_chol: Tensor) -> Tensor:
        return (means[:, None, :] @ prec_chol)[:, 0]  # (U_kᵀ μ_k)ᵀ = μ_kᵀ U_k

    def moments(self, y: Tensor, feats: Tensor, weights: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        d = y.shape[-1]
        t = d * (d + 1) // 2
        g = weights.T @ feats  # (K, T + D + 1): all three statistics in one product
        return g[:, t + d], g[:, t : t + d], g[:, :t]

    def second_moment(self, y: Tensor, feats: Tensor, weights: Tensor) -> Tensor:
        d = y.shape[-1]
        return weights.T @ feats[:, : d * (d + 1) // 2]  # (K, D(D+1)/2) Σ r y yᵀ, packed

    def covariance(self, counts: Tensor, means: Tensor, second: Tensor, reg_covar: float
                   ) -> Tensor:
        d = means.shape[-1]
        raw = _unpack(second, d) / counts[:, None, None]
        cov = _zero_rounding_noise(raw - means[:, :, None] * means[:, None, :], raw,
                                   counts[:, None])
        return _add_reg(symmetrize(cov), reg_covar)

    def noise(self, cov: Tensor, states: Tensor, eps_: Tensor) -> Tensor:
        L = _cholesky_or_raise(cov, "component")
        return (L[states] @ eps_[..., None]).squeeze(-1)

    def num_parameters(self, k: int, d: int) -> int:
        return k * d * (d + 1) // 2

    def as_full(self, cov: Tensor, k: int, d: int) -> Tensor:
        return cov


class Tied(_MatrixStructure):
    """One covariance Σ shared by every component; covariances (D, D). (LDA's assumption.)"""

    name = "tied"
    _what = "shared matrix"

    def shape(self, k: int, d: int) -> tuple[int, ...]:
        return (d, d)

    def identity(self, k: int, d: int, dtype: torch.dtype, device: Any = None) -> Tensor:
        return torch.eye(d, dtype=dtype, device=device)

    def log_det_precision_cholesky(self, prec_chol: Tensor, k: int, d: int) -> Tensor:
        return torch.log(prec_chol.diagonal()).sum().expand(k)

    def features(self, y: Tensor) -> Tensor:
        return y  # the tied scatter is a plain (D, D) product; no quadratic features needed

    def mahalanobis(self, y: Tensor, feats: Tensor, means: Tensor, prec_chol: Tensor) -> Tensor:
        z = y @ prec_chol  # (N, D) Uᵀ y
        m = means @ prec_chol  # (K, D) Uᵀ μ_k
        maha = z.square().sum(-1, keepdim=True) - 2.0 * (z @ m.T) + m.square().sum(-1)
        return maha.clamp_min(0.0)

    def whiten(self, means: Tensor, prec_chol: Tensor) -> Tensor:
        return means @ prec_chol  # (K, D) Uᵀ μ_k

    def log_density(self, y: Tensor, feats: Tensor, means: Tensor, prec_chol: Tensor, *,
                    bias: Tensor | None = None, out: Tensor | None = None) -> Tensor:
        """η₂ = −½P is tied across components, so its term ⟨η₂, y yᵀ⟩ = −½‖Uᵀy‖² is the same
        for every k and joins log h per datum; the product is of t(y) = y with η₁,k = P μ_k
        alone, taken in whitened coordinates: yᵀη₁,k = (Uᵀy)ᵀ(Uᵀμ_k)."""
        z = y @ prec_chol  # (N, D) Uᵀ y
        m = self.whiten(means, prec_chol)  # (K, D) Uᵀ μ_k
        log_h = gaussian_log_base(y.shape[-1]) - 0.5 * z.square().sum(-1)  # (N,)
        return affine_log_prob_table(z, m, self.normaliser(means, prec_chol, bias), log_h)

    def second_moment(self, y: Tensor, feats: Tensor, weights: Tensor) -> Tensor:
        w = weights.sum(-1)  # (N,) Σ_k r_nk
        return (y * w[:, None]).T @ y  # (D, D)

    def covariance(self, counts: Tensor, means: Tensor, second: Tensor, reg_covar: float
                   ) -> Tensor:
        between = (means * counts[:, None]).T @ means  # Σ_k N_k μ_k μ_kᵀ
        cov = _zero_rounding_noise((second - between) / counts.sum(), second / counts.sum(),
                                   counts.sum())
        return _add_reg(symmetrize(cov), reg_covar)

    def noise(self, cov: Tensor, states: Tensor, eps_: Tensor) -> Tensor:
        L = _cholesky_or_raise(cov, "shared matrix")
        return eps_ @ L.T

    def num_parameters(self, k: int, d: int) -> int:
        return d * (d + 1) // 2

    def as_full(self, cov: Tensor, k: int, d: int) -> Tensor:
        return cov.expand(k, d, d)


class _VarianceStructure(CovarianceStructure):
    """Shared by Diagonal and Spherical: the covariances hold variances σ², so U = 1/σ."""

    def precision_cholesky(self, cov: Tensor) -> Tensor:
        bad = cov <= 0
        if bad.dim() > 1:
            bad = bad.any(-1)  # a component with any non-positive variance
        if bool(bad.any()):
            raise _ill_defined(torch.nonzero(bad).reshape(-1).tolist())
        return torch.rsqrt(cov)

    def precision(self, prec_chol: Tensor) -> Tensor:
        return prec_chol.square()

    def covariance_from_precision(self, precision: Tensor) -> Tensor:
        return 1.0 / precision


class Diagonal(_VarianceStructure):
    """Σ_k = diag(σ²_k); covariances (K, D) hold the variances."""

    name = "diag"

    def shape(self, k: int, d: int) -> tuple[int, ...]:
        return (k, d)

    def identity(self, k: int, d: int, dtype: torch.dtype, device: Any = None) -> Tensor:
        return torch.ones(k, d, dtype=dtype, device=device)

    def log_det_precision_cholesky(self, prec_chol: Tensor, k: int, d: int) -> Tensor:
        return torch.log(prec_chol).sum(-1)

    def features(self, y: Tensor) -> Tensor:
        """t(y) = [y, y²] (N, 2D), ``DiagonalNormal``'s sufficient statistics, so that the
        log-density and the M-step statistics are one matrix product each."""
        return DiagonalNormal.sufficient_stats(y)

    def mahalanobis(self, y: Tensor, feats: Tensor, means: Tensor, prec_chol: Tensor) -> Tensor:
        prec = prec_chol.square()  # (K, D)
        sq = feats[:, y.shape[-1]:]
        maha = sq @ prec.T - 2.0 * (y @ (means * prec).T) + (means.square() * prec).sum(-1)
        return maha.clamp_min(0.0)

    def whiten(self, means: Tensor, prec_chol: Tensor) -> Tensor:
        return means * prec_chol

    def log_density(self, y: Tensor, feats: Tensor, means: Tensor, prec_chol: Tensor, *,
                    bias: Tensor | None = None, out: Tensor | None = None) -> Tensor:
        """Each component is a ``DiagonalNormal`` member, η_k = (λ_kμ_k, −½λ_k) with
        λ = 1/σ², and the (N, K) table is the family's ``log_prob_table``: ONE product of
        t(y) = [y, y²] with the η_k (``addmm``, the normaliser as its bias)."""
        eta = DiagonalNormal.natural_from_loc_precision(means, prec_chol.square())  # (K, 2D)
        if bias is None:
            return DiagonalNormal.log_prob_table(feats[:, None], eta[:, None],
                                                 gaussian_log_base(means.shape[1]))
        a = DiagonalNormal.log_partition(eta[:, None]).sum(-1) - bias  # (K,)
        return affine_log_prob_table(feats, eta, a, gaussian_log_base(means.shape[1]))

    def second_moment(self, y: Tensor, feats: Tensor, weights: Tensor) -> Tensor:
        return weights.T @ feats[:, y.shape[-1]:]  # (K, D)

    def moments(self, y: Tensor, feats: Tensor, weights: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Σ r, and Σ r y and Σ r y² from one product with the features [y, y²]."""
        d = y.shape[-1]
        m = weights.T @ feats  # (K, 2D)
        return weights.sum(0), m[:, :d], m[:, d:]

    def covariance(self, counts: Tensor, means: Tensor, second: Tensor, reg_covar: float
                   ) -> Tensor:
        raw = second / counts[:, None]
        var = raw - means.square()
        var = torch.where(var <= _rounding_level(raw, counts[:, None], means.shape[-1]), 0.0, var)
        return var + reg_covar

    def noise(self, cov: Tensor, states: Tensor, eps_: Tensor) -> Tensor:
        return cov.sqrt()[states] * eps_

    def num_parameters(self, k: int, d: int) -> int:
        return k * d

    def as_full(self, cov: Tensor, k: int, d: int) -> Tensor:
        return torch.diag_embed(cov)


class Spherical(_VarianceStructure):
    """Σ_k = σ²_k I; covariances (K,) hold the variances."""

    name = "spherical"

    def shape(self, k: int, d: int) -> tuple[int, ...]:
        return (k,)

    def identity(self, k: int, d: int, dtype: torch.dtype, device: Any = None) -> Tensor:
        return torch.ones(k, dtype=dtype, device=device)

    def log_det_precision_cholesky(self, prec_chol: Tensor, k: int, d: int) -> Tensor:
        return d * torch.log(prec_chol)

    def features(self, y: Tensor) -> Tensor:
        """t(y) = [y, ‖y‖²] (N, D + 1): ``DiagonalNormal``'s statistics with η₂ = −½λ tied
        across coordinates, so its D statistics y_d² sum to one."""
        return torch.cat([y, y.square().sum(-1, keepdim=True)], -1)

    def mahalanobis(self, y: Tensor, feats: Tensor, means: Tensor, prec_chol: Tensor) -> Tensor:
        sq = feats[:, -1:] - 2.0 * (y @ means.T) + means.square().sum(-1)  # ‖y − μ_k‖²
        return (sq * prec_chol.square()).clamp_min(0.0)

    def whiten(self, means: Tensor, prec_chol: Tensor) -> Tensor:
        return means * prec_chol[:, None]

    def log_density(self, y: Tensor, feats: Tensor, means: Tensor, prec_chol: Tensor, *,
                    bias: Tensor | None = None, out: Tensor | None = None) -> Tensor:
        """ONE product of [y, ‖y‖²] with the tied natural parameters (λ_kμ_k, −½λ_k)."""
        prec = prec_chol.square()  # (K,)
        eta = torch.cat([means * prec[:, None], -0.5 * prec[:, None]], -1)  # (K, D + 1)
        return affine_log_prob_table(feats, eta, self.normaliser(means, prec_chol, bias),
                                     gaussian_log_base(means.shape[1]))

    def second_moment(self, y: Tensor, feats: Tensor, weights: Tensor) -> Tensor:
        return weights.T @ feats[:, -1]  # (K,) Σ_n r_nk ‖y_n‖²

    def moments(self, y: Tensor, feats: Tensor, weights: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Σ r, Σ r y and Σ r ‖y‖² from one product with the features [y, ‖y‖²]."""
        d = y.shape[-1]
        m = weights.T @ feats  # (K, D + 1)
        return weights.sum(0), m[:, :d], m[:, d]

    def covariance(self, counts: Tensor, means: Tensor, second: Tensor, reg_covar: float
                   ) -> Tensor:
        d = means.shape[-1]
        raw = second / counts
        var = raw - means.square().sum(-1)
        var = torch.where(var <= _rounding_level(raw, counts, d), 0.0, var) / d
        return var + reg_covar

    def noise(self, cov: Tensor, states: Tensor, eps_: Tensor) -> Tensor:
        return cov.sqrt()[states][..., None] * eps_

    def num_parameters(self, k: int, d: int) -> int:
        return k

    def as_full(self, cov: Tensor, k: int, d: int) -> Tensor:
        eye = torch.eye(d, dtype=cov.dtype, device=cov.device)
        return cov[:, None, None] * eye


def _rounding_level(raw: Tensor, counts: Tensor, d: int) -> Tensor:
    """The rounding level of the one-pass variance ⟨y²⟩ − μ² about the center: (D + n + 10/n)·eps
    relative to ⟨y²⟩, for a component of (weighted) count n. A sum of n terms is exact to
    ~n·eps relative (and a collapsed component's equal terms round alike, so the bound is
    reached: ~N/8·eps measured at n = 1000), the D products add D·eps, and the counts' guard
    n + 10·eps biases the difference by 10·eps/n. Variances at or below it are rounding noise.
    raw: (*, D) or (*,) the raw second moments; counts: broadcastable to raw."""
    return (d + counts + 10.0 / counts) * eps(raw.dtype) * raw


def _zero_rounding_noise(cov: Tensor, raw: Tensor, counts: Tensor) -> Tensor:
    """Set to exactly 0 the variances (and their rows/columns) that the subtraction
    ⟨y yᵀ⟩ − μ μᵀ left at the rounding level of ⟨y yᵀ⟩ (``_rounding_level``): they are
    zero-variance directions, and must stay singular (→ ``ValueError`` without ``reg_covar``)
    rather than become tiny positives that depend on where the data put the center (a
    data-dependent outcome: 3% of random draws let a 10-point collapsed cluster through
    under the former D·eps level). cov, raw: (*, D, D); counts: broadcastable to (*, D)."""
    d = cov.shape[-1]
    var = cov.diagonal(dim1=-2, dim2=-1)
    dead = var <= _rounding_level(raw.diagonal(dim1=-2, dim2=-1), counts, d)  # (*, D)
    if not bool(dead.any()):
        return cov
    keep = (~dead).to(cov.dtype)
    return cov * keep[..., :, None] * keep[..., None, :]


def _add_reg(cov: Tensor, reg_covar: float) -> Tensor:
    if reg_covar == 0.0:
        return cov
    d = cov.shape[-1]
    return cov + reg_covar * torch.eye(d, dtype=cov.dtype, device=cov.device)


#: The structures by their scikit-learn / hmmlearn names.
COVARIANCE_STRUCTURES: dict[str, type[CovarianceStructure]] = {
    "full": Full, "diag": Diagonal, "spherical": Spherical, "tied": Tied,
}


def covariance_structure(kind: str | CovarianceStructure) -> CovarianceStructure:
    """The structure object for a name ("full", "diag", "spherical", "tied") or itself."""
    if isinstance(kind, CovarianceStructure):
        return kind
    if kind not in COVARIANCE_STRUCTURES:
        raise ValueError(
            f"covariance_type must be one of {tuple(COVARIANCE_STRUCTURES)}, got {kind!r}."
        )
    return COVARIANCE_STRUCTURES[kind]()


class GaussianEmission(SavableModule):
    """K Gaussian emissions p̂(y | x = k) = N(y; μ_k, Σ_k) (Eq. 2.4), implementing the
    ``Emission`` protocol for mixtures and HMMs.

    Buffers: ``means`` (K, D); ``covariances`` (shape by structure, see the module table);
    ``precisions_cholesky`` (same shape, U_k with U_k U_kᵀ = Σ_k⁻¹, kept in sync);
    ``center`` (D,) the reference point statistics are taken about (numerics only).

    Statistics (additive over data, about ``center`` c): ``counts`` (K,) Σ r_nk;
    ``sum`` (K, D) Σ r_nk (y_n − c); ``second`` Σ r_nk (y_n − c)(·)ᵀ in the structure's form.
    The M step (§7.1): μ_k = c + sum_k/counts_k, Σ_k = second_k/counts_k − (μ_k−c)(μ_k−c)ᵀ +
    reg_covar·I. ``counts`` get ``10·eps`` added (as scikit-learn does) so an empty component
    keeps finite parameters (mean c, covariance reg_covar·I) instead of NaN.

    The Gaussian maths is the families': log h = ``gaussian_log_base``, A(η) =
    ``gaussian_log_partition``, the diagonal table ``DiagonalNormal.log_prob_table`` over
    ``DiagonalNormal``'s t(y) = [y, y²], η from (μ, Σ⁻¹) by ``DiagonalNormal`` /
    ``FullNormal.natural_from_loc_precision``, the spherical and tied tables through
    ``affine_log_prob_table`` (full: the same product, its normaliser carried by the
    features' constant column), the ML fit ``gaussian_ml``. Not a ``FamilyEmission``
    over ``FullNormal`` all the same, because the covariance structures cannot share its
    free per-state η: spherical ties η₂ across coordinates and tied across components
    (so their statistics are summed, or leave the product), full packs t(y) by symmetry
    (D(D+1)/2 products, not D²) into compiled features cached about ``center``, and A is
    read off the precision factor U_k each structure holds rather than a fresh Cholesky of
    −2η₂; sampling stays the structure's ``μ + Σ^{1/2}ε`` from that factor (the family's
    sampler works from η and would factor the precision again).
    """

    def __init__(
        self,
        num_states: int,
        dim: int,
        covariance: str | CovarianceStructure = "full",
        *,
        reg_covar: float = 1e-6,
        dtype: torch.dtype | str = torch.float64,
        device: Any = None,
    ) -> None:
        super().__init__()
        from genmodels._validation import (
            check_nonnegative_float,
            check_positive_int,
            resolve_dtype,
        )

        k = check_positive_int(num_states, "num_states")
        d = check_positive_int(dim, "dim")
        self.structure = covariance_structure(covariance)
        self.reg_covar = check_nonnegative_float(reg_covar, "reg_covar")
        dt = resolve_dtype(dtype)
        self.config = {"num_states": k, "dim": d, "covariance": self.structure.name,
                       "reg_covar": self.reg_covar, "dtype": str(dt).removeprefix("torch.")}
        cov = self.structure.identity(k, d, dt, device)
        self.register_buffer("means", torch.zeros(k, d, dtype=dt, device=device))
        self.register_buffer("covariances", cov)
        self.register_buffer("precisions_cholesky", self.structure.precision_cholesky(cov))
        self.register_buffer("center", torch.zeros(d, dtype=dt, device=device))
        self._cache: dict[tuple[Any, ...], tuple[Tensor, int, Tensor, Tensor]] = {}
        self._cache_bytes = 0
        self._cache_base: int | None = None

    means: Tensor
    covariances: Tensor
    precisions_cholesky: Tensor
    center: Tensor

    @classmethod
    def from_parameters(
        cls,
        means: Tensor,
        covariances: Tensor | None = None,
        covariance: str | CovarianceStructure = "full",
        *,
        precisions: Tensor | None = None,
        reg_covar: float = 1e-6,
    ) -> GaussianEmission:
        """An emission with the given means (K, D) and covariances (or precisions)."""
        means = torch.as_tensor(means)
        if not means.is_floating_point():
            means = means.to(torch.float64)
        k, d = means.shape
        em = cls(k, d, covariance, reg_covar=reg_covar, dtype=means.dtype, device=means.device)
        em.set_parameters(means=means, covariances=covariances, precisions=precisions)
        em.set_center(means)
        return em

    # -- parameters ---------------------------------------------------------------------------
    @property
    def num_states(self) -> int:
        return int(self.means.shape[0])

    @property
    def dim(self) -> int:
        return int(self.means.shape[1])

    def set_parameters(self, *, means: Tensor | None = None, covariances: Tensor | None = None,
                       precisions: Tensor | None = None) -> None:
        """Replace means and/or covariances (or precisions Σ⁻¹), validated."""
        k, d = self.num_states, self.dim
        dt, dev = self.means.dtype, self.means.device
        if means is not None:
            from genmodels._validation import as_tensor

            m = as_tensor(means, name="means", dtype=dt, device=dev)
            if tuple(m.shape) != (k, d):
                raise ValueError(f"means must have shape {(k, d)}, got {tuple(m.shape)}.")
            self.means = m.clone()
        if precisions is not None:
            p = self.structure.check(precisions, k, d, name="precisions", dtype=dt, device=dev)
            covariances = self.structure.covariance_from_precision(p)
        if covariances is not None:
            c = self.structure.check(covariances, k, d, name="covariances", dtype=dt, device=dev)
            self.precisions_cholesky = self.structure.precision_cholesky(c)
            self.covariances = c.clone()
        self._cache_clear_if_center_changed()

    def set_center(self, y: Tensor) -> None:
        """Take statistics about the mean of ``y`` (N, D) from now on (numerics only)."""
        self.center = y.detach().to(self.center).mean(0)
        self.clear_cache()

    @property
    def precisions(self) -> Tensor:
        """Σ_k⁻¹ in the structure's shape."""
        return self.structure.precision(self.precisions_cholesky)

    def full_covariances(self) -> Tensor:
        """Σ_k as (K, D, D) matrices whatever the structure."""
        return self.structure.as_full(self.covariances, self.num_states, self.dim)

    def num_parameters(self) -> int:
        """K·D means plus the structure's covariance parameters."""
        k, d = self.num_states, self.dim
        return k * d + self.structure.num_parameters(k, d)

    # -- inference ----------------------------------------------------------------------------
    #: Upper bound on the memory the feature cache may hold (see ``_prepared``).
    feature_cache_bytes: int = 1 << 30

    def _prepared(self, y: Tensor) -> tuple[Tensor, Tensor]:
        """(y − center, the structure's features of it), cached per data tensor.

        The quadratic features depend on the data and the center only, not on the parameters,
        so EM computes them once per batch and reuses them in every iteration (and for both
        the log-likelihood and the statistics of an iteration). The cache is keyed on the
        tensor's memory and holds a reference to it (so the memory cannot be reused by other
        data), checks its version counter (so in-place edits invalidate it), holds chunks of
        one underlying data tensor at a time (data from another storage replaces them), is
        bounded by ``feature_cache_bytes`` and is emptied by ``clear_cache``, ``set_center``
        and pickling.
        """
        base = y.untyped_storage().data_ptr()
        if base != getattr(self, "_cache_base", None):
            self.clear_cache()
            self._cache_base = base
        key = (y.data_ptr(), tuple(y.shape), tuple(y.stride()), y.dtype, str(y.device))
        hit = self._cache.get(key)
        if hit is not None and hit[0] is not None and hit[1] == y._version:
            return hit[2], hit[3]
        yc = y - self.center
        feats = self.structure.features(yc)
        size = (yc.numel() + feats.numel()) * yc.element_size()
        if self._cache_bytes + size > self.feature_cache_bytes:
            self.clear_cache()  # keep at least the latest batch (log-likelihood → statistics)
        self._cache[key] = (y, y._version, yc, feats)
        self._cache_bytes += size
        return yc, feats

    def clear_cache(self) -> None:
        """Release the cached features (and the references to the data they came from)."""
        self._cache = {}
        self._cache_bytes = 0
        self._cache_base = None

    def _cache_clear_if_center_changed(self) -> None:
        pass  # features depend on the data and the center only; parameters may change freely

    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())
        state["_cache"], state["_cache_bytes"] = {}, 0
        return state

    def mahalanobis(self, y: Tensor) -> Tensor:
        """(y_n − μ_k)ᵀ Σ_k⁻¹ (y_n − μ_k). y: (N, D) → (N, K)."""
        yc, feats = self._prepared(y)
        return self.structure.mahalanobis(yc, feats, self.means - self.center,
                                          self.precisions_cholesky)

    #: ``log_likelihood`` takes ``bias`` and ``out`` (``MixtureModel``'s E step uses them).
    fuses_log_prior: bool = True

    def log_likelihood(self, y: Tensor, *, out: Tensor | None = None,
                       bias: Tensor | None = None) -> Tensor:
        """log N(y_n; μ_k, Σ_k) (Eq. 2.8 without the prior). y: (N, D) → (N, K). ``out``: an
        (N, K) tensor the compiled form or the full structure's product may write into (use
        the returned tensor, which is ``out`` only when it did). ``bias``: an optional (K,)
        added to every row, folded into the product where it can be (a mixture's log π_k, so
        that the table is Eq. 2.6's ẑ without another pass over it)."""
        direct = self._compiled_log_likelihood(y, out, bias)
        if direct is not None:
            return direct
        yc, feats = self._prepared(y)
        return self.structure.log_density(yc, feats, self._centered_means(),
                                          self.precisions_cholesky, bias=bias, out=out)

    #: The compiled density serves dimensions up to this (measured faster than the features
    #: and one matrix product up to D = 16 at least, 4× there; the product's BLAS takes over
    #: for wide data).
    compiled_max_dim: int = 16

    def _compiled_log_likelihood(self, y: Tensor, out: Tensor | None = None,
                                 extra: Tensor | None = None) -> Tensor | None:
        """Diagonal and spherical Σ on the CPU without gradients: the compiled one-pass
        density (``_gaussian_numba``), or None where it does not apply."""
        if self.structure.name not in ("diag", "spherical") or self.dim > self.compiled_max_dim:
            return None
        prec_chol = self.precisions_cholesky
        if (y.device.type != "cpu" or y.dtype != self.means.dtype or y.dim() != 2
                or y.dtype not in (torch.float32, torch.float64)
                or (torch.is_grad_enabled() and any(
                    t.requires_grad for t in (y, self.means, prec_chol)))):
            return None
        from genmodels.inference import _hmm_compiled  # (where Numba's availability is known)

        if not _hmm_compiled.available():
            return None
        from genmodels.models._gaussian_numba import diag_log_density

        k, d = self.num_states, self.dim
        prec = prec_chol.square()
        if prec.dim() == 1:  # spherical: one precision per component
            prec = prec[:, None].expand(k, d)
        bias = self.structure.log_det_precision_cholesky(prec_chol, k, d) + gaussian_log_base(d)
        if extra is not None:  # e.g. a mixture's log π_k
            bias = bias + extra
        if out is None or out.shape != (y.shape[0], k) or out.dtype != y.dtype \
                or not out.is_contiguous():
            out = y.new_empty(y.shape[0], k)
        diag_log_density(y.detach().contiguous().numpy(), self.means.detach().contiguous().numpy(),
                         prec.detach().contiguous().numpy(), bias.detach().contiguous().numpy(),
                         out.numpy())
        return out

    def _centered_means(self) -> Tensor:
        """μ_k − center, the same tensor object while the parameters are unchanged (so the
        structure can reuse what it derives from them across the chunks of one E step)."""
        key = (self.means, self.means._version, self.center, self.center._version)
        memo = getattr(self, "_means_memo", None)
        if memo is not None and all(a is b for a, b in zip(memo[0][::2], key[::2],
                                                           strict=True)) \
                and memo[0][1::2] == key[1::2]:
            return memo[1]
        out = self.means - self.center
        self._means_memo = (key, out)
        return out

    # -- learning -----------------------------------------------------------------------------
    def expected_stats(self, y: Tensor, weights: Tensor) -> Stats:
        """Σ_n r_nk, Σ_n r_nk (y_n − c), and the second-order statistic. y: (N, D);
        weights: (N, K)."""
        yc, feats = self._prepared(y)
        counts, sums, second = self.structure.moments(yc, feats, weights)
        return {"counts": counts, "sum": sums, "second": second}

    def estimate(self, stats: Stats, reg_covar: float | None = None) -> tuple[Tensor, Tensor]:
        """The M step's values without setting them (§7.1): (means (K, D), covariances).

        Used where the covariances are post-processed before use (LDA/QDA solvers)."""
        counts = stats["counts"] + 10.0 * eps(stats["counts"].dtype)
        means_c = stats["sum"] / counts[:, None]  # (K, D) about the center
        reg = self.reg_covar if reg_covar is None else reg_covar
        cov = self.structure.covariance(counts, means_c, stats["second"], reg)
        return means_c + self.center, cov

    def maximize(self, stats: Stats, frozen: frozenset[str] = frozenset()) -> None:
        """M step (§7.1); ``frozen`` may name ``means`` and/or ``covariances``."""
        counts = stats["counts"] + 10.0 * eps(stats["counts"].dtype)
        means_c = stats["sum"] / counts[:, None]  # (K, D) new means about the center
        if "means" in frozen:
            means_c = self.means - self.center
        if "covariances" not in frozen:
            cov = self.structure.covariance(counts, means_c, stats["second"], self.reg_covar)
            self.precisions_cholesky = self.structure.precision_cholesky(cov)
            self.covariances = cov
        self.means = means_c + self.center
        self._cache_clear_if_center_changed()

    def sample(self, states: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """y ~ N(μ_s, Σ_s) for each state s. states: (*,) long → (*, D)."""
        e = torch.randn(*states.shape, self.dim, generator=generator, dtype=self.means.dtype,
                        device=self.means.device)
        return self.means[states] + self.structure.noise(self.covariances, states, e)

    def extra_repr(self) -> str:
        return (f"num_states={self.num_states}, dim={self.dim}, "
                f"covariance={self.structure.name!r}, reg_covar={self.reg_covar:g}")


def gaussian_mle(y: Tensor) -> tuple[Tensor, Tensor]:
    """Closed-form Gaussian MLE (§6.1, D2): the sample mean and the 1/N sample covariance,
    ``genmodels.families.gaussian_ml`` (the one copy of the formula).

    y: (N, D) → (mean (D,), covariance (D, D)).
    """
    return gaussian_ml(y)


__all__ = [
    "COVARIANCE_STRUCTURES",
    "CovarianceStructure",
    "Diagonal",
    "Full",
    "GaussianEmission",
    "Spherical",
    "Tied",
    "covariance_structure",
    "gaussian_mle",
]

