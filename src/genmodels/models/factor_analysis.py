"""Factor analysis, probabilistic PCA and PCA (book §2.1.2, §7.3, §7.3.1; CATALOGUE B5, F4, F5).

The factor analyzer (Eq. 2.20) is the jointly Gaussian model with a standard-normal prior and a
diagonal emission covariance Ψ (the book's Λ)::

    x ~ N(0, I_K),        y | x ~ N(C x + c, Ψ),        Ψ = diag(ψ_1 .. ψ_D)

so p̂(y) = N(c, C Cᵀ + Ψ) (Eq. 2.21) and p̂(x | y) = N(K (y − c), (Cᵀ Ψ⁻¹ C + I)⁻¹) with
K = (Cᵀ Ψ⁻¹ C + I)⁻¹ Cᵀ Ψ⁻¹ (Eqs. 2.22, 7.3). The diagonal Ψ (a placeholder in the book,
B:543) is the "unique" noise of each observed variable: independent across variables, so every
correlation between them must be carried by the shared factors C (Bishop PRML §12.2.4;
Ghahramani & Hinton 1996).

Variants (chosen once, as small objects):

* ``FactorAnalyzer(noise="diagonal")``: factor analysis, learned by EM (§7.3).
* ``ProbabilisticPCA`` = ``FactorAnalyzer`` with isotropic noise Ψ = σ² I (Tipping & Bishop
  1999, the book's reference [51]): EM, or the closed form ``fit_ppca``.
* ``EMPCA``: the zero-noise limit Ψ = εI, ε → 0 (§7.3.1, Roweis 1998): the E step becomes the
  pseudo-inverse projection X̄ = (CᵀC)⁻¹Cᵀ(Y − c), and EM converges to a basis of the principal
  subspace. ``pca`` is the closed form (SVD / eigendecomposition).

Every E step here depends on the data only through their first two moments
(``GaussianMoments``), so a fit computes them once and each EM iteration costs O(D² K),
whatever N. Raw (N, D) batches are accepted too (their moments are taken on the fly), which
gives minibatch/streaming EM through ``genmodels.learning.em``.

The bias c is kept explicit (erratum E-28: augmenting x with a constant 1 contradicts the N(0, I)
prior); the M step regresses y on the augmented regressor [E x; 1] instead.
"""

from __future__ import annotations

import math
import warnings
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from genmodels._validation import check_choice, check_finite, check_positive_int, resolve_dtype
from genmodels.exceptions import DegenerateFitWarning
from genmodels.io import SavableModule
from genmodels.learning.em import EStep, Stats
from genmodels.linalg import LOG_TAU, cholesky_logdet, eps, psd_solve, safe_cholesky, symmetrize
from genmodels.models.linear_gaussian import (
    DiagonalCovariance,
    GaussianMarginal,
    GaussianMoments,
    GaussianPosterior,
    LinearGaussian,
    as_moments,
    centred_scatter,
    linear_gaussian_log_marginal,
    linear_gaussian_posterior,
)

__all__ = [
    "EMPCA",
    "DiagonalNoise",
    "FactorAnalyzer",
    "IsotropicNoise",
    "PCAResult",
    "ProbabilisticPCA",
    "ScatterEM",
    "fit_ppca",
    "pca",
]


# ---------------------------------------------------------------------------------------------
# Noise structures
# ---------------------------------------------------------------------------------------------


class DiagonalNoise:
    """Ψ = diag(ψ): one variance per observed variable (factor analysis)."""

    name = "diagonal"

    def maximize(self, residual_variances: Tensor) -> Tensor:
        """M step for Ψ from the expected squared residuals per variable, (D,) → (D,).
        Each ψ_d has its own stationarity condition, so extracting the diagonal is the
        constrained optimum (B:2158)."""
        return residual_variances

    def num_parameters(self, d: int) -> int:
        return d


class IsotropicNoise:
    """Ψ = σ² I (probabilistic PCA)."""

    name = "isotropic"

    def maximize(self, residual_variances: Tensor) -> Tensor:
        """σ² = mean over variables of the expected squared residuals."""
        return residual_variances.mean().expand_as(residual_variances).clone()

    def num_parameters(self, d: int) -> int:
        return 1


NOISE_MODELS: dict[str, DiagonalNoise | IsotropicNoise] = {
    "diagonal": DiagonalNoise(),
    "isotropic": IsotropicNoise(),
}


# ---------------------------------------------------------------------------------------------
# The shared M step: linear regression of y on the expected latents (Eq. 7.2)
# ---------------------------------------------------------------------------------------------


def _regress(stats: Stats, C: Tensor, c: Tensor, frozen: frozenset[str]) -> tuple[Tensor, Tensor]:
    """C = ⟨Y X̌ᵀ⟩⟨X̌ X̌ᵀ⟩⁻¹ (the normal equations of §7.3), with the offset c fitted jointly
    through the augmented regressor [x; 1] (erratum E-28), or held fixed when frozen.

    stats: n, sum_y (D,), sum_y_ex Σ y E[x]ᵀ (D, K), sum_ex Σ E[x] (K,), sum_exx Σ E[x xᵀ] (K, K).
    """
    n, sy, Syx, sx, Sxx = (stats[k] for k in ("n", "sum_y", "sum_y_ex", "sum_ex", "sum_exx"))
    fit_C, fit_c = "loadings" not in frozen, "mean" not in frozen
    if fit_C and fit_c:
        k = Sxx.shape[-1]
        aug_xx = torch.empty(k + 1, k + 1, dtype=Sxx.dtype, device=Sxx.device)
        aug_xx[:k, :k], aug_xx[:k, k], aug_xx[k, :k], aug_xx[k, k] = Sxx, sx, sx, n
        aug_yx = torch.cat([Syx, sy[:, None]], 1)  # (D, K + 1)
        coef = psd_solve(aug_xx, aug_yx.mT).mT  # [C c] = ⟨y x̃ᵀ⟩⟨x̃ x̃ᵀ⟩⁻¹
        return coef[:, :k].contiguous(), coef[:, k].contiguous()
    if fit_C:  # Σ E[xxᵀ] ⪰ n (CᵀΨ⁻¹C + I)⁻¹ ≻ 0: the plain factorisation, jitter on failure
        L, info = torch.linalg.cholesky_ex(Sxx)
        L = L if int(info) == 0 else safe_cholesky(Sxx)
        rhs = torch.addr(Syx, c, sx, alpha=-1.0)  # Σ (y − c) E[x]ᵀ
        return torch.cholesky_solve(rhs.mT, L).mT.contiguous(), c
    if fit_c:
        return C, (sy - C @ sx) / n
    return C, c


def _residual_variances(stats: Stats, C: Tensor, c: Tensor) -> Tensor:
    """diag ⟨(y − C x − c)(y − C x − c)ᵀ⟩ per datum, (D,) (§7.3, sign as in erratum E-27):
    Σ y² − 2 C_d·Σ y E[x] − 2 c Σ y + 2 c C_d·Σ E[x] + C_d Σ E[xxᵀ] C_dᵀ + n c², over n."""
    n, sy, Syx, sx, Sxx, syy = (stats[k] for k in ("n", "sum_y", "sum_y_ex", "sum_ex", "sum_exx",
                                                    "sum_yy_diag"))
    r = (syy - 2.0 * (C * Syx).sum(1) - 2.0 * c * sy + 2.0 * c * (C @ sx)
         + ((C @ Sxx) * C).sum(1) + n * c.square())
    return r / n


def _top_eigen(S: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """The k largest eigenvalues (descending, (k,)) and eigenvectors ((D, k)) of symmetric S."""
    evals, evecs = torch.linalg.eigh(symmetrize(S))
    return evals.flip(-1)[:k], evecs.flip(-1)[:, :k]


# ---------------------------------------------------------------------------------------------
# Factor analysis
# ---------------------------------------------------------------------------------------------


class FactorAnalyzer(SavableModule):
    """Factor analysis (Eq. 2.20): x ~ N(0, I_K), y | x ~ N(C x + c, Ψ), Ψ diagonal.

    Parameters (buffers): ``loadings`` C (D, K); ``mean`` c (D,); ``noise_variance`` ψ (D,).
    Any of these names can be frozen in EM (``run_em(..., frozen={"noise_variance"})``).

    n_features: D. n_components: K.
    noise: ``"diagonal"`` (factor analysis) or ``"isotropic"`` (probabilistic PCA).
    init: ``"pca"`` (default: the PPCA closed form, then Ψ = diag(S − C Cᵀ)) or ``"random"``
        (loadings drawn from the generator). If ``noise_variance_init`` is given, C starts at
        its maximum-likelihood value for that Ψ (the first step of scikit-learn's algorithm).
    min_noise_variance: floor on every ψ_d. The likelihood is unbounded when a variable is
        constant or exactly explained (ψ_d → 0), so ψ_d is floored; the default is
        10 · eps(dtype) · (mean data variance), set at ``initialize``. Hitting the floor warns
        ``DegenerateFitWarning``.
    """

    loadings: Tensor
    mean: Tensor
    noise_variance: Tensor
    noise_floor: Tensor

    def __init__(self, n_features: int, n_components: int, *, noise: str = "diagonal",
                 init: str = "pca", noise_variance_init: list[float] | None = None,
                 min_noise_variance: float | None = None, dtype: str = "float64") -> None:
        super().__init__()
        d = check_positive_int(n_features, "n_features")
        k = check_positive_int(n_components, "n_components")
        self.noise_model = NOISE_MODELS[check_choice(noise, "noise", tuple(NOISE_MODELS))]
        self.init = check_choice(init, "init", ("pca", "random"))
        tdtype = resolve_dtype(dtype)
        if noise_variance_init is not None:
            nvi = torch.as_tensor(noise_variance_init, dtype=tdtype).reshape(-1)
            if nvi.shape != (d,) or not bool((nvi > 0).all()) or not bool(nvi.isfinite().all()):
                raise ValueError(f"noise_variance_init must hold {d} positive finite values.")
        self.noise_variance_init = noise_variance_init
        self.min_noise_variance = min_noise_variance
        self.register_buffer("loadings", torch.zeros(d, k, dtype=tdtype))
        self.register_buffer("mean", torch.zeros(d, dtype=tdtype))
        self.register_buffer("noise_variance", torch.ones(d, dtype=tdtype))
        self.register_buffer("noise_floor", torch.tensor(
            0.0 if min_noise_variance is None else float(min_noise_variance), dtype=tdtype))
        self.config = {"n_features": d, "n_components": k, "noise": noise, "init": init,
                       "noise_variance_init": (None if noise_variance_init is None
                                               else [float(v) for v in noise_variance_init]),
                       "min_noise_variance": min_noise_variance,
                       "dtype": str(tdtype).removeprefix("torch.")}

    # -- sizes -----------------------------------------------------------------------------

    @property
    def n_features(self) -> int:
        return int(self.loadings.shape[0])

    @property
    def n_components(self) -> int:
        return int(self.loadings.shape[1])

    def num_parameters(self) -> int:
        """Free parameters: D K − K(K − 1)/2 (C up to rotation) + D (c) + noise."""
        d, k = self.n_features, self.n_components
        return d * k - k * (k - 1) // 2 + d + self.noise_model.num_parameters(d)

    # -- inference ---------------------------------------------------------------------------

    def _prior(self) -> tuple[Tensor, Tensor]:
        k = self.n_components
        return (torch.zeros(k, dtype=self.mean.dtype, device=self.mean.device),
                torch.eye(k, dtype=self.mean.dtype, device=self.mean.device))

    def as_linear_gaussian(self) -> LinearGaussian:
        """The same model as a general ``LinearGaussian`` (μ_x = 0, Σ_x = I, Σ_{y|x} = Ψ)."""
        mu_x, S_x = self._prior()
        return LinearGaussian(mu_x, S_x, self.loadings, self.mean,
                              torch.diag(self.noise_variance))

    def posterior(self, y: Tensor) -> GaussianPosterior:
        """p̂(x | y) = N(K (y − c), (Cᵀ Ψ⁻¹ C + I)⁻¹) (Eq. 2.22): a K × K factorisation only.
        y: (N, D) or (D,)."""
        mu_x, S_x = self._prior()
        return linear_gaussian_posterior(y, mu_x, S_x, self.loadings, self.mean,
                                         DiagonalCovariance(self.noise_variance),
                                         form="information")

    def log_marginal(self, y: Tensor) -> Tensor:
        """log N(y; c, C Cᵀ + Ψ) (Eq. 2.21) by Woodbury and the determinant lemma, O(N D K).
        y: (N, D) or (D,) → (N,) or ()."""
        mu_x, S_x = self._prior()
        return linear_gaussian_log_marginal(y, mu_x, S_x, self.loadings, self.mean,
                                            DiagonalCovariance(self.noise_variance),
                                            form="information")

    def marginal(self) -> GaussianMarginal:
        """p̂(y) = N(c, C Cᵀ + Ψ) (Eq. 2.21)."""
        return GaussianMarginal(self.mean, self.covariance())

    def covariance(self) -> Tensor:
        """Σ_y = C Cᵀ + Ψ, (D, D)."""
        return symmetrize(self.loadings @ self.loadings.mT + torch.diag(self.noise_variance))

    def precision(self) -> Tensor:
        """Σ_y⁻¹ = Ψ⁻¹ − Ψ⁻¹C (I + CᵀΨ⁻¹C)⁻¹ CᵀΨ⁻¹ (Woodbury, Eq. B.14), (D, D)."""
        W = self.loadings / self.noise_variance[:, None]  # Ψ⁻¹ C
        L_M = self._posterior_precision_cholesky()
        return symmetrize(torch.diag(1.0 / self.noise_variance)
                          - W @ torch.cholesky_solve(W.mT, L_M))

    def _posterior_precision_cholesky(self, W: Tensor | None = None) -> Tensor:
        """Cholesky factor of M = I + Cᵀ Ψ⁻¹ C, the posterior precision (Eq. 7.3).
        W: Ψ⁻¹ C when the caller has it."""
        if W is None:
            W = self.loadings / self.noise_variance[:, None]
        M = self.loadings.mT @ W
        M.diagonal().add_(1.0)
        L, info = torch.linalg.cholesky_ex(M)  # M ⪰ I: fails only on non-finite input
        return L if int(info) == 0 else safe_cholesky(M)

    def log_joint(self, x: Tensor, y: Tensor) -> Tensor:
        """log N(x; 0, I) + log N(y; C x + c, Ψ). x: (N, K); y: (N, D) → (N,)."""
        log_prior = -0.5 * (x.shape[-1] * LOG_TAU + x.square().sum(-1))
        r = y - x @ self.loadings.mT - self.mean
        log_emission = -0.5 * (self.n_features * LOG_TAU + self.noise_variance.log().sum()
                               + (r.square() / self.noise_variance).sum(-1))
        return log_prior + log_emission

    def sample(self, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Draw (x, y) pairs: x (n, K), y (n, D)."""
        x = torch.randn(n, self.n_components, generator=generator, dtype=self.mean.dtype,
                        device=self.mean.device)
        noise = DiagonalCovariance(self.noise_variance).sample((n,), generator)
        return x, x @ self.loadings.mT + self.mean + noise

    # -- learning (the EM contract of genmodels.learning.em) ---------------------------------

    def expected_stats(self, batch: Tensor | GaussianMoments) -> EStep:
        """E step (Eq. 7.3) from a batch's moments: with S_c = Σ_n (y_n − c)(y_n − c)ᵀ,
        Σ E[x] = K Σ (y − c), Σ y E[x]ᵀ = Σ y (y − c)ᵀ Kᵀ, Σ E[x xᵀ] = n (CᵀΨ⁻¹C + I)⁻¹ + K S_c Kᵀ.

        The log-likelihood −n/2 (D log τ + log|Σ_y|) − ½ tr(Σ_y⁻¹ S_c) uses the determinant
        lemma and Woodbury's identity, so no D × D factorisation is needed.
        """
        m = as_moments(batch)
        c = self.mean
        n = m.n
        Sc = m.scatter(c)  # (D, D)
        sy_c = m.sum - n * c
        gain, post_cov, Sc_gT, ll = self._posterior_terms(Sc, n)
        # Σ y (y − c)ᵀ Kᵀ = S_c Kᵀ + c (Σ (y − c))ᵀ Kᵀ: one D × D product per iteration
        sum_y_ex = torch.addr(Sc_gT, c, gain @ sy_c) if m.centred else (
            (m.outer - torch.outer(m.sum, c)) @ gain.mT)
        sum_ex = gain @ sy_c
        stats = {
            "n": torch.as_tensor(n, dtype=c.dtype, device=c.device),
            "sum_y": m.sum,
            "sum_yy_diag": m.outer.diagonal(),
            "sum_ex": sum_ex,
            "sum_y_ex": sum_y_ex,
            "sum_exx": symmetrize(torch.addmm(post_cov, gain, Sc_gT, beta=n)),
        }
        return EStep(stats, ll, n)

    def _posterior_terms(self, Sc: Tensor, n: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The parts of the E step (Eq. 7.3) that depend on the data only through the scatter
        S_c = Σ (y − c)(y − c)ᵀ about the offset, (D, D), of n data: the gain
        K = M⁻¹ CᵀΨ⁻¹ (K, D), the posterior covariance M⁻¹ (K, K), S_c Kᵀ (D, K) and the
        log-likelihood −n/2 (D log τ + log|Σ_y|) − ½ tr(Σ_y⁻¹ S_c) (0-d), with
        log|Σ_y| = log|Ψ| + log|M| (determinant lemma) and, by Woodbury,
        tr(Σ_y⁻¹ S_c) = tr(Ψ⁻¹ S_c) − tr(K S_c Ψ⁻¹ C), the last as Σ (S_c Kᵀ) ∘ (Ψ⁻¹ C)."""
        psi = self.noise_variance
        W = self.loadings / psi[:, None]  # Ψ⁻¹ C, (D, K)
        L_M = self._posterior_precision_cholesky(W)
        gain = torch.cholesky_solve(W.mT, L_M)  # K = M⁻¹ CᵀΨ⁻¹, (K, D), Eq. 7.3
        post_cov = torch.cholesky_inverse(L_M)  # (CᵀΨ⁻¹C + I)⁻¹, Eq. 7.3
        Sc_gT = Sc @ gain.mT  # (D, K)
        trace = (Sc.diagonal() / psi).sum() - (Sc_gT * W).sum()
        logdet = psi.log().sum() + cholesky_logdet(L_M)  # log|Σ_y|
        ll = -0.5 * (n * (self.n_features * LOG_TAU + logdet) + trace)
        return gain, post_cov, Sc_gT, ll

    def maximize(self, stats: Stats, frozen: frozenset[str] = frozenset()) -> None:
        """M step (§7.3): regression for C and c, then Ψ = diag⟨(y − Cx − c)(y − Cx − c)ᵀ⟩
        (isotropic: its mean), floored at ``noise_floor``."""
        C, c = _regress(stats, self.loadings, self.mean, frozen)
        # straight into the buffer table: nn.Module.__setattr__'s checks cost more than the
        # rest of an M step at D = 64 (the names are registered buffers already)
        self._buffers["loadings"], self._buffers["mean"] = C, c
        if "noise_variance" not in frozen:
            self._set_noise(_residual_variances(stats, C, c))

    def _set_noise(self, residual_variances: Tensor) -> None:
        """Ψ from the expected squared residuals per variable (the noise model's M step),
        floored at ``noise_floor``."""
        psi = self.noise_model.maximize(residual_variances)
        self._buffers["noise_variance"] = self._apply_floor(psi)

    def _apply_floor(self, psi: Tensor) -> Tensor:
        floor = self.noise_floor
        floored = psi.clamp_min(floor)
        low = psi < floor
        if bool(low.any()):
            last = getattr(self, "_floored_mask", None)  # the features floored last iteration
            if last is not None and torch.equal(low, last):  # warned about already
                return floored
            self._floored_mask: Tensor | None = low
            idx = torch.nonzero(low).flatten().tolist()
            if idx == getattr(self, "_floored", None):  # as last warned: warned already
                return floored
            self._floored: list[int] = idx
            shown = idx[:10] + (["..."] if len(idx) > 10 else [])
            warnings.warn(
                f"the noise variance of feature(s) {shown} fell below {float(floor):.3g} "
                "(constant or exactly explained features: the likelihood is unbounded there); "
                "it was floored at that value. Remove constant features or set "
                "min_noise_variance.",
                DegenerateFitWarning,
                stacklevel=4,  # _apply_floor, _set_noise, maximize, its caller
            )
        return floored

    def initialize(self, data: Tensor | GaussianMoments,
                   generator: torch.Generator | None = None) -> None:
        """Start EM: c = sample mean; C and Ψ as chosen by ``init`` (see the class docstring)."""
        m = as_moments(data)
        d, k = self.n_features, self.n_components
        self._floored = []  # the features whose floor was last warned about
        self._floored_mask = None
        if m.sum.shape != (d,):
            raise ValueError(f"data have {m.sum.shape[-1]} features, the model {d}.")
        S = m.scatter() / m.n
        variances = S.diagonal()
        if self.min_noise_variance is None:
            scale = variances.mean().clamp_min(torch.finfo(S.dtype).tiny)
            self.noise_floor = (10.0 * eps(S.dtype) * scale).to(S.dtype)
        self.mean = m.mean.clone()
        if self.noise_variance_init is not None:
            psi = torch.as_tensor(self.noise_variance_init, dtype=S.dtype, device=S.device)
            self.loadings = _loadings_given_noise(S, psi, k)
            self.noise_variance = psi.clone()
            return
        if self.init == "random":
            scale = variances.mean().clamp_min(torch.finfo(S.dtype).tiny).sqrt()
            self.loadings = scale * torch.randn(d, k, generator=generator, dtype=S.dtype,
                                                device=S.device) / k**0.5
            psi = self.noise_model.maximize(variances.clone())
        else:
            C, sigma2 = _ppca_solution(S, k)
            self.loadings = C
            psi = self.noise_model.maximize((variances - C.square().sum(1)).clamp_min(0.0))
            if self.noise_model.name == "isotropic":
                psi = torch.full_like(variances, float(sigma2))
        self.noise_variance = psi.clamp_min(self.noise_floor).clone()


class ScatterEM:
    """EM for a ``FactorAnalyzer`` (or ``ProbabilisticPCA``) whose offset c is held at the
    sample mean, run on the scatter S = Σ_n (y_n − c)(y_n − c)ᵀ (D, D) of n data alone — what
    ``FactorAnalysis.fit`` does. The model's ``mean`` is not used (c is implicit).

    With c the sample mean, Σ (y − c) = 0, so every offset term of ``expected_stats`` and of
    ``maximize(frozen={"mean"})`` vanishes and one iteration is (Eq. 7.3, §7.3)

        E:  K = M⁻¹ CᵀΨ⁻¹,   Σ (y − c) E[x]ᵀ = S Kᵀ,   Σ E[xxᵀ] = n M⁻¹ + K S Kᵀ
        M:  C ← S Kᵀ (Σ E[xxᵀ])⁻¹,   Ψ ← diag(S − C (S Kᵀ)ᵀ) / n

    (the M step's residual variances, ``_residual_variances``, with C Σ E[xxᵀ] = S Kᵀ). These
    are the iterates of the general steps, in about a third of the tensor operations: at
    D = 64, K = 10 an iteration costs per-operation overhead, not arithmetic.

    Use: ``run_em(ScatterEM(model, S, n), [None], per_datum=False, tol=...)``. The batch
    passed to ``expected_stats`` is ignored; nothing can be frozen (``frozen`` must be empty).
    """

    def __init__(self, model: FactorAnalyzer, scatter: Tensor, n: float) -> None:
        self.model = model
        self.scatter = scatter
        self.n = float(n)
        self.scatter_diag = scatter.diagonal()

    def expected_stats(self, batch: object = None) -> EStep:
        n = self.n
        gain, post_cov, Sc_gT, ll = self.model._posterior_terms(self.scatter, n)
        # Σ E[xxᵀ] is only factorised (its lower triangle), so it is not symmetrised
        stats = {"sum_y_ex": Sc_gT, "sum_exx": torch.addmm(post_cov, gain, Sc_gT, beta=n)}
        return EStep(stats, ll, n)

    def maximize(self, stats: Stats, frozen: frozenset[str] = frozenset()) -> None:
        if frozen:
            raise ValueError(f"ScatterEM updates every parameter; cannot freeze {sorted(frozen)}.")
        model = self.model
        Syx, Sxx = stats["sum_y_ex"], stats["sum_exx"]
        # Σ E[xxᵀ] ⪰ n M⁻¹ ≻ 0: the plain factorisation, jitter on failure (as ``_regress``)
        L, info = torch.linalg.cholesky_ex(Sxx)
        L = L if int(info) == 0 else safe_cholesky(Sxx)
        C = torch.cholesky_solve(Syx.mT, L).mT.contiguous()
        model._buffers["loadings"] = C
        model._set_noise((self.scatter_diag - (C * Syx).sum(1)) / self.n)


def _loadings_given_noise(S: Tensor, psi: Tensor, k: int) -> Tensor:
    """The maximum-likelihood C for a fixed Ψ: with Ψ^{-1/2} S Ψ^{-1/2} = U Λ Uᵀ,
    C = Ψ^{1/2} U_K (Λ_K − I)_+^{1/2} (the step scikit-learn's FactorAnalysis iterates)."""
    r = psi.sqrt()
    evals, evecs = _top_eigen(S / torch.outer(r, r), k)
    return r[:, None] * evecs * (evals - 1.0).clamp_min(0.0).sqrt()


def _ppca_solution(S: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Tipping & Bishop (1999), Eqs. 7–8: σ² = mean of the D − K smallest eigenvalues of the
    (1/N) sample covariance S, C = U_K (Λ_K − σ² I)^{1/2} (taking the rotation R = I).
    With K ≥ D there are no discarded eigenvalues; σ² is then a tenth of the smallest."""
    evals, evecs = torch.linalg.eigh(symmetrize(S))
    evals, evecs = evals.flip(-1).clamp_min(0.0), evecs.flip(-1)
    d = S.shape[-1]
    sigma2 = evals[k:].mean() if k < d else 0.1 * evals[-1]
    C = evecs[:, :k] * (evals[:k] - sigma2).clamp_min(0.0).sqrt()
    return C, sigma2


class ProbabilisticPCA(FactorAnalyzer):
    """Probabilistic PCA (Tipping & Bishop 1999): factor analysis with Ψ = σ² I.

    ``noise_variance`` is kept as a (D,) vector whose entries are all σ², so every method of
    ``FactorAnalyzer`` applies unchanged. Fit by EM (``run_em``) or in closed form
    (``fit_ppca``).
    """

    def __init__(self, n_features: int, n_components: int, *, init: str = "pca",
                 min_noise_variance: float | None = None, dtype: str = "float64") -> None:
        super().__init__(n_features, n_components, noise="isotropic", init=init,
                         min_noise_variance=min_noise_variance, dtype=dtype)
        self.config = {"n_features": n_features, "n_components": n_components, "init": init,
                       "min_noise_variance": min_noise_variance,
                       "dtype": self.config["dtype"]}

    @property
    def sigma2(self) -> Tensor:
        """σ², the isotropic noise variance (0-d)."""
        return self.noise_variance[0]


def fit_ppca(data: Tensor | GaussianMoments, n_components: int) -> ProbabilisticPCA:
    """Maximum-likelihood PPCA in closed form (Tipping & Bishop 1999; CATALOGUE F5).

    data: (N, D) or its moments. Needs K < D (the noise variance is the mean of the D − K
    discarded eigenvalues of the (1/N) sample covariance).
    """
    m = as_moments(data)
    d = int(m.sum.shape[-1])
    k = check_positive_int(n_components, "n_components")
    if k >= d:
        raise ValueError(f"PPCA needs n_components < n_features; got {k} >= {d}.")
    if m.n < 2:
        raise ValueError("PPCA needs at least 2 samples.")
    model = ProbabilisticPCA(d, k, dtype=str(m.sum.dtype).removeprefix("torch."))
    model.to(m.sum.device)
    model.initialize(m)  # init="pca" is the closed-form solution for isotropic noise
    if float(model.sigma2) <= float(model.noise_floor):
        warnings.warn("the discarded eigenvalues are (numerically) zero: the data lie in a "
                      f"{k}-dimensional subspace, so σ² was floored.", DegenerateFitWarning,
                      stacklevel=2)
    return model


# ---------------------------------------------------------------------------------------------
# PCA: closed form and EM (the zero-noise limit)
# ---------------------------------------------------------------------------------------------


class PCAResult(NamedTuple):
    """Principal components of centred data X_c = U diag(s) Vᵀ, the whole spectrum.

    mean: (D,); components: Vᵀ, (R, D), R = min(N, D), orthonormal rows, by decreasing
    variance, each signed so its largest-magnitude entry is positive; explained_variance:
    s² / (N − 1), (R,); singular_values: s, (R,); n_samples: N.
    """

    mean: Tensor
    components: Tensor
    explained_variance: Tensor
    singular_values: Tensor
    n_samples: int


def _flip_signs(components: Tensor) -> Tensor:
    """Make the largest-|·| entry of each row positive (a deterministic sign). (*, R, D)."""
    if components.dim() == 2 and components.device.type == "cpu" and not (
            components.requires_grad):  # in NumPy: a few us instead of six tensor calls
        return torch.from_numpy(_flip_signs_array(components.numpy()))
    idx = components.abs().argmax(-1, keepdim=True)
    return components * torch.where(components.gather(-1, idx) < 0, -1.0, 1.0)


def _flip_signs_array(a: np.ndarray) -> np.ndarray:
    """``_flip_signs`` of an (R, D) array, as a new C-contiguous array."""
    rows = np.arange(a.shape[0])
    sign = np.where(a[rows, np.abs(a).argmax(-1)] < 0, a.dtype.type(-1), a.dtype.type(1))
    return np.multiply(a, sign[:, None], out=np.empty(a.shape, a.dtype))  # C-ordered


#: How large the squared mean of a column may be against its variance for ``pca`` to take the
#: scatter as Σ y yᵀ − N m mᵀ (one matrix product over the raw data): that difference loses
#: about log10 of the ratio in digits to cancellation (3 at most here), beyond which the
#: scatter is summed about a shift instead (``centred_scatter``, one more pass).
GRAM_CANCELLATION_LIMIT = 1e3


def _gram_scatter(y: Tensor, *, check: bool) -> tuple[Tensor, Tensor] | None:
    """The mean m (D,) and scatter Σ (y − m)(y − m)ᵀ (D, D) of y (N, D) on the CPU, as
    s = Σ y (one matrix-vector product) and Σ y yᵀ − s sᵀ / N (one matrix product, no copy of
    y), or None when a column's mean is too large against its spread for that difference
    (``GRAM_CANCELLATION_LIMIT``). check: raise as ``check_finite(y)`` when y has a
    non-finite entry or its squares overflow, read off the trace of yᵀy (Σ y², non-finite
    exactly then) instead of a pass of its own."""
    n = y.shape[0]
    gram = y.mT @ y
    g = gram.numpy()  # (D, D) bookkeeping in NumPy: a few us each instead of a torch call
    diag = g.diagonal()  # Σ_n y_nd²
    if check and not math.isfinite(float(diag.sum())):
        check_finite(y, "X")  # the message naming the entry; then the overflow of the product
        raise ValueError("X is too large to compute with: the sum of its squares overflows. "
                         "Rescale it (e.g. standardise the columns) first.")
    s = torch.mv(y.mT, y.new_ones(n)).numpy()  # Σ_n y_n
    mean = s / n
    mean_sq = s * mean  # N m²; the guard is N m² ≤ L (Σ y² − N m²)
    limit = GRAM_CANCELLATION_LIMIT
    if not (mean_sq * (1.0 + limit) <= limit * diag).all():
        return None
    g -= np.multiply.outer(s, mean)  # Σ y yᵀ − N m mᵀ, in gram's memory
    return torch.from_numpy(mean), gram


def pca(y: Tensor, *, solver: str = "auto", overwrite: bool = False,
        check: bool = False) -> PCAResult:
    """Principal components analysis in closed form.

    y: (N, D), N ≥ 2. solver: ``"svd"`` (thin SVD of the centred data, O(N D min(N, D))),
    ``"covariance"`` (eigendecomposition of the D × D scatter matrix, O(N D² + D³); used by
    ``"auto"`` when N ≥ 10 D). overwrite: y may be centred in place (for a caller whose y is
    a private copy; it may then be left holding y − mean), saving an (N, D) copy.
    check: raise ``ValueError`` as ``genmodels._validation.check_finite(y, "X")`` does when y
    has a non-finite entry or its squares overflow (for a caller that validated y without
    that check: the covariance route reads it off the scatter's product, without a pass of
    its own).

    On the CPU the covariance route takes the scatter from one product over the raw data,
    Σ y yᵀ − N m mᵀ, when no column's squared mean exceeds ``GRAM_CANCELLATION_LIMIT`` times its
    variance (so at most three digits go to cancellation), else from ``centred_scatter``.
    """
    solver = check_choice(solver, "solver", ("auto", "svd", "covariance"))
    n, d = y.shape
    if n < 2:
        raise ValueError(f"PCA needs at least 2 samples, got {n}.")
    if solver == "auto":
        solver = "covariance" if n >= 10 * d else "svd"
    fast = (y.device.type == "cpu" and not y.requires_grad
            and y.dtype in (torch.float32, torch.float64))
    if check and not (fast and solver == "covariance"):
        check_finite(y, "X")
    if solver == "svd":
        mean = y.mean(0)
        _, s, Vt = torch.linalg.svd(y.sub_(mean) if overwrite else y - mean,
                                    full_matrices=False)
        components = Vt
    else:  # eigh reads the scatter's lower triangle only
        moments = _gram_scatter(y, check=check) if fast else None
        mean, scatter = centred_scatter(y, overwrite=overwrite) if moments is None else moments
        evals, evecs = torch.linalg.eigh(scatter)
        r = min(n, d)
        if evals.device.type == "cpu" and not evals.requires_grad:  # (R,) and (R, D) in NumPy
            w = np.maximum(evals.numpy()[::-1][:r], 0.0)
            V = _flip_signs_array(evecs.numpy()[:, ::-1].T[:r])
            return PCAResult(mean, torch.from_numpy(V), torch.from_numpy(w / (n - 1)),
                             torch.from_numpy(np.sqrt(w)), n)
        evals = evals.flip(-1)[:r].clamp_min_(0.0)
        s, components = evals.sqrt(), evecs.mT.flip(0)[:r]
        return PCAResult(mean, _flip_signs(components), evals / (n - 1), s, n)
    return PCAResult(mean, _flip_signs(components).contiguous(), s.square() / (n - 1), s, n)


class EMPCA(SavableModule):
    """PCA by EM, the zero-noise limit of factor analysis (§7.3.1; Roweis 1998).

    With Ψ = εI and ε → 0 the posterior collapses onto X̄ = (CᵀC)⁻¹Cᵀ(Y − c):

    * E step: X̄ ← (CᵀC)⁻¹ Cᵀ (Y − c)
    * M step: [C c] ← ⟨Y [X̄; 1]ᵀ⟩ ⟨[X̄; 1][X̄; 1]ᵀ⟩⁻¹

    This is coordinate descent on the squared reconstruction error Σ_n ‖y_n − C x̄_n − c‖²,
    which the E step reports (times −½) as its ``log_likelihood`` (the ε-free part of the
    limiting log-likelihood), so the EM engine's monotonicity and tolerance apply. C converges
    to a (non-orthogonal) basis of the principal subspace; ``principal_components``
    orthonormalises it.

    Buffers: ``loadings`` C (D, K), ``mean`` c (D,).
    """

    loadings: Tensor
    mean: Tensor

    def __init__(self, n_features: int, n_components: int, *, dtype: str = "float64") -> None:
        super().__init__()
        d = check_positive_int(n_features, "n_features")
        k = check_positive_int(n_components, "n_components")
        tdtype = resolve_dtype(dtype)
        self.register_buffer("loadings", torch.zeros(d, k, dtype=tdtype))
        self.register_buffer("mean", torch.zeros(d, dtype=tdtype))
        self.config = {"n_features": d, "n_components": k,
                       "dtype": str(tdtype).removeprefix("torch.")}

    def project(self, y: Tensor) -> Tensor:
        """X̄ = (CᵀC)⁻¹Cᵀ(y − c), the pseudo-inverse projection. y: (N, D) → (N, K)."""
        C = self.loadings
        return psd_solve(C.mT @ C, C.mT @ (y - self.mean).mT).mT

    def expected_stats(self, batch: Tensor | GaussianMoments) -> EStep:
        m = as_moments(batch)
        C, c = self.loadings, self.mean
        P = psd_solve(C.mT @ C, C.mT)  # (CᵀC)⁻¹Cᵀ, (K, D)
        Sc = m.scatter(c)
        ScPT = Sc @ P.mT  # (D, K)
        stats = {
            "n": torch.as_tensor(m.n, dtype=c.dtype, device=c.device),
            "sum_y": m.sum,
            "sum_ex": P @ (m.sum - m.n * c),
            "sum_y_ex": (m.outer - torch.outer(m.sum, c)) @ P.mT,
            "sum_exx": symmetrize(P @ ScPT),
        }
        # ‖(I − C P)(y − c)‖² summed = tr(S_c) − tr(C P S_c)  (C P is an orthogonal projector)
        error = Sc.diagonal().sum() - (C * ScPT).sum()
        return EStep(stats, -0.5 * error, m.n)

    def maximize(self, stats: Stats, frozen: frozenset[str] = frozenset()) -> None:
        self.loadings, self.mean = _regress(stats, self.loadings, self.mean, frozen)

    def initialize(self, data: Tensor | GaussianMoments,
                   generator: torch.Generator | None = None) -> None:
        """c = sample mean; C with standard-normal entries from ``generator``."""
        m = as_moments(data)
        self.mean = m.mean.clone()
        self.loadings = torch.randn(*self.loadings.shape, generator=generator,
                                    dtype=self.mean.dtype, device=self.mean.device)

    def principal_components(self, data: Tensor | GaussianMoments) -> tuple[Tensor, Tensor]:
        """Orthonormalise and order the learned basis: Q = qr(C), eigendecompose Qᵀ S Q.

        Returns components (K, D) (orthonormal rows, decreasing variance, signs as ``pca``)
        and their variances (K,) with the 1/(N − 1) convention of ``pca``.
        """
        m = as_moments(data)
        Q, _ = torch.linalg.qr(self.loadings)
        S = Q.mT @ m.scatter() @ Q / (m.n - 1)
        evals, evecs = torch.linalg.eigh(symmetrize(S))
        comps = (Q @ evecs.flip(-1)).mT
        return _flip_signs(comps).contiguous(), evals.flip(-1)

