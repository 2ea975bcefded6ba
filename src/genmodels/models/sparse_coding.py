"""The sparse-coding model (book §2.1.3, Eqs. 2.28–2.29 and 8.5–8.6; CATALOGUE B7, B9, G2–G4).

A factorial Boltzmann prior and an isotropic Gaussian emission,

    p̂(x) = Π_k exp{−E_k(x_k)} / Z_k,      p̂(y | x) = N(C x, λ⁻¹ I_M),             (Eq. 2.28)

with C: (M, K) over- (K > M) or under-complete, and one of three sparse energies (Eq. 2.29):

    Cauchy   E_k = log(β_k² + x_k²),              Z_k = π / β_k
    Laplace  E_k = α_k |x_k|,                     Z_k = 2 / α_k
    cosh     E_k = (α_k/β) log cosh(β x_k),       Z_k = B(a/2, ½) / β,  a = α_k/β

(the cosh normaliser, which the book leaves out, is ∫ sech(u)^a du = B(a/2, ½); the cosh energy
→ the Laplace energy as β → ∞ while staying differentiable at 0).

Inference is Laplace's method (``genmodels.inference.laplace``): the mode by the LASSO for the
Laplace prior (``genmodels.inference.lasso``, Eq. 8.10) or Newton's method for the smooth priors;
the Hessian in closed form, λCᵀC + diag(E″_k(x̂⁰_k)) — for the Laplace prior, whose curvature is
zero or undefined, the cosh energy's α_kβ sech²(βx̂⁰_k) (Lewicki & Olshausen 1999), Eq. 2.33.
The log-marginal is Eq. 2.32 with the model's normalised joint, i.e. for the Laplace prior the
*corrected* Eq. 2.34 (erratum E-5; the book prints +αᵀ|x̂⁰| and leaves Z_joint undefined):

    log p̂(y) ≈ (K/2) log τ − αᵀ|x̂⁰| − (λ/2)‖y − Cx̂⁰‖² + (M/2) log(λ/τ) + Σ_k log(α_k/2)
               − ½ log|λCᵀC + diag(α ∘ β sech²(βx̂⁰))|.

Learning (§8.1.1):

* EM with Gaussian recognition N(ν_y, P_y⁻¹) (Eqs. 8.8–8.11): E step ν_y = x̂⁰(y), P_y = the
  Hessian above (for the smooth priors, Laplace's method likewise); M step
  C = ⟨yνᵀ⟩⟨P⁻¹ + ννᵀ⟩⁻¹ (Eq. 8.9), through the library's EM engine (``expected_stats`` /
  ``maximize``). The E step is the Laplace-type approximation of Eqs. 8.10–8.11, not an exact
  minimiser of the JRE, so only the M step is guaranteed not to increase the JRE.
* Lewicki–Olshausen (G3): gradient ascent of the Laplace-approximated log-marginal (Eq. 2.34)
  with the mode held fixed, ∂/∂C = λ⟨(y − Cx̂⁰)x̂⁰ᵀ⟩ − λ⟨C P⁻¹⟩ — the negative of the EM M step's
  gradient (Eq. 8.9) at ν = x̂⁰, P = P(C, x̂⁰), since ∂/∂C ½log|P| = λCP⁻¹ = ∂/∂C (λ/2)tr(CP⁻¹Cᵀ)
  (B:2373); ``fit_lewicki_olshausen``, with Amari's natural gradient as they use it.
* ICA as the zero-noise limit (G4): with square C and λ → ∞ the mode is C⁻¹y, CP⁻¹ → C⁻ᵀ and
  λ(y − Cx̂⁰) → C⁻ᵀ∇E(x̂⁰), so the Lewicki–Olshausen gradient becomes the maximum-likelihood ICA
  gradient C⁻ᵀ(⟨∇E(x̂⁰) x̂⁰ᵀ⟩ − I) with the prior's score (Olshausen & Field 1997; Lewicki &
  Sejnowski 2000); compared with the library's InfoMax ICA in the tests.

Regularisation of C (G2 status note): with λ and the prior fixed, the likelihood pins the scale
of C, but MAP-style learning (reconstruction + sparsity at the mode, as scikit-learn does) lets
C grow while the codes shrink; the estimators therefore offer unit-norm atoms (Olshausen & Field
1997), and the EM and Lewicki–Olshausen learners here leave C unconstrained unless asked.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from genmodels._validation import (
    check_choice,
    check_nonnegative_float,
    check_positive_int,
    global_rng_from,
    make_generator,
    resolve_dtype,
)
from genmodels.inference.laplace import LaplaceApproximation, laplace_approximation, newton_mode
from genmodels.inference.lasso import check_dictionary, check_penalty, lasso
from genmodels.io import SavableModule
from genmodels.learning.em import EStep, Stats, run_em
from genmodels.linalg import LOG_TAU, cholesky_logdet, psd_solve, safe_cholesky

__all__ = [
    "PRIORS",
    "CauchyPrior",
    "CoshPrior",
    "LaplacePrior",
    "Recognition",
    "SparseCodingModel",
    "fit_lewicki_olshausen",
    "fit_sparse_coding_em",
    "gaussian_expected_abs",
]

PRIORS = ("laplace", "cauchy", "cosh")
_HERMITE_NODES = 32


def gaussian_expected_abs(mean: Tensor, var: Tensor) -> Tensor:
    """E|X| for X ~ N(m, v): √(2v/π) exp(−m²/2v) + m erf(m/√(2v)), elementwise."""
    s = var.sqrt()
    return (s * math.sqrt(2.0 / math.pi) * torch.exp(-0.5 * mean.square() / var)
            + mean * torch.erf(mean / (s * math.sqrt(2.0))))


def _gauss_hermite(dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Tensor]:
    x, w = np.polynomial.hermite.hermgauss(_HERMITE_NODES)
    return (torch.as_tensor(x, dtype=dtype, device=device),
            torch.as_tensor(w / math.sqrt(math.pi), dtype=dtype, device=device))


class _Prior:
    """A factorial sparse prior: energies E_k, their derivatives and normalisers (Eq. 2.29)."""

    name: str

    def energy(self, x: Tensor) -> Tensor:  # (*, K) → (*, K)
        raise NotImplementedError

    def gradient(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def curvature(self, x: Tensor) -> Tensor:
        """E″_k(x_k), the diagonal of the prior's Hessian used by Laplace's method."""
        raise NotImplementedError

    def log_normalizer(self) -> Tensor:  # (K,) log Z_k
        raise NotImplementedError

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        raise NotImplementedError

    def log_prob(self, x: Tensor) -> Tensor:
        """log p̂(x) = −Σ_k (E_k(x_k) + log Z_k). (*, K) → (*,)."""
        return -(self.energy(x) + self.log_normalizer()).sum(-1)

    def expected_energy(self, mean: Tensor, var: Tensor) -> Tensor:
        """E[E_k(X_k)] for X_k ~ N(mean, var), elementwise (Gauss–Hermite, 32 nodes)."""
        z, w = _gauss_hermite(mean.dtype, mean.device)
        pts = mean[..., None] + torch.sqrt(2.0 * var)[..., None] * z  # (*, K, Q)
        return (self.energy_at_nodes(pts) * w).sum(-1)

    def energy_at_nodes(self, pts: Tensor) -> Tensor:
        """``energy`` over an extra trailing dimension of evaluation points: (*, K, Q)."""
        return self.energy(pts.movedim(-1, 0)).movedim(0, -1)


class LaplacePrior(_Prior):
    """E_k = α_k|x_k|, Z_k = 2/α_k; curvature from the cosh energy with sharpness β (Eq. 2.33)."""

    name = "laplace"

    def __init__(self, alpha: Tensor, beta: float) -> None:
        self.alpha, self.beta = alpha, beta

    def energy(self, x: Tensor) -> Tensor:
        return self.alpha * x.abs()

    def gradient(self, x: Tensor) -> Tensor:
        return self.alpha * torch.sign(x)

    def curvature(self, x: Tensor) -> Tensor:
        return self.alpha * self.beta / torch.cosh(self.beta * x).square()  # α β sech²(βx)

    def log_normalizer(self) -> Tensor:
        return torch.log(2.0 / self.alpha)

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        K = self.alpha.shape[0]
        u = torch.rand(n, K, generator=generator, dtype=self.alpha.dtype) - 0.5
        return -torch.sign(u) * torch.log1p(-2.0 * u.abs()) / self.alpha

    def expected_energy(self, mean: Tensor, var: Tensor) -> Tensor:
        return self.alpha * gaussian_expected_abs(mean, var)

    def energy_at_nodes(self, pts: Tensor) -> Tensor:
        return self.alpha[..., None] * pts.abs()


class CauchyPrior(_Prior):
    """E_k = log(β_k² + x_k²), Z_k = π/β_k (a Cauchy density with scale β_k)."""

    name = "cauchy"

    def __init__(self, beta: Tensor) -> None:
        self.beta = beta

    def energy(self, x: Tensor) -> Tensor:
        return torch.log(self.beta.square() + x.square())

    def gradient(self, x: Tensor) -> Tensor:
        return 2.0 * x / (self.beta.square() + x.square())

    def curvature(self, x: Tensor) -> Tensor:
        b2, x2 = self.beta.square(), x.square()
        return 2.0 * (b2 - x2) / (b2 + x2).square()

    def log_normalizer(self) -> Tensor:
        return torch.log(math.pi / self.beta)

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        u = torch.rand(n, self.beta.shape[0], generator=generator, dtype=self.beta.dtype)
        return self.beta * torch.tan(math.pi * (u - 0.5))

    def energy_at_nodes(self, pts: Tensor) -> Tensor:
        return torch.log(self.beta[..., None].square() + pts.square())


class CoshPrior(_Prior):
    """E_k = (α_k/β) log cosh(βx_k): E′ = α tanh(βx), E″ = αβ sech²(βx);
    Z_k = B(a/2, ½)/β with a = α_k/β. Sampled exactly: βx = artanh(2B − 1), B ~ Beta(a/2, a/2)."""

    name = "cosh"

    def __init__(self, alpha: Tensor, beta: float) -> None:
        self.alpha, self.beta = alpha, beta

    def energy(self, x: Tensor) -> Tensor:
        bx = self.beta * x.abs()  # log cosh(u) = |u| + log1p(e^{−2|u|}) − log 2, overflow-free
        return self.alpha / self.beta * (bx + torch.log1p(torch.exp(-2.0 * bx)) - math.log(2.0))

    def gradient(self, x: Tensor) -> Tensor:
        return self.alpha * torch.tanh(self.beta * x)

    def curvature(self, x: Tensor) -> Tensor:
        return self.alpha * self.beta / torch.cosh(self.beta * x).square()

    def log_normalizer(self) -> Tensor:
        a = self.alpha / self.beta
        log_beta_fn = torch.lgamma(a / 2) + 0.5 * math.log(math.pi) - torch.lgamma((a + 1) / 2)
        return log_beta_fn - math.log(self.beta)

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        a = self.alpha / self.beta
        with global_rng_from(generator):
            b = torch.distributions.Beta(a / 2, a / 2).sample((n,))
        b = b.clamp(torch.finfo(b.dtype).tiny, 1 - torch.finfo(b.dtype).eps)
        return torch.atanh(2.0 * b - 1.0) / self.beta

    def energy_at_nodes(self, pts: Tensor) -> Tensor:
        bx = self.beta * pts.abs()
        return (self.alpha[..., None] / self.beta
                * (bx + torch.log1p(torch.exp(-2.0 * bx)) - math.log(2.0)))


class Recognition(NamedTuple):
    """Gaussian recognition distributions N(ν_y, P_y⁻¹), one per datum (the E step,
    Eqs. 8.10–8.11)."""

    mean: Tensor
    """ν: (N, K), the posterior modes"""
    precision: Tensor
    """P: (N, K, K), λCᵀC + diag(E″(ν)) (Eq. 8.11)"""
    covariance: Tensor
    """P⁻¹: (N, K, K)"""
    logdet_precision: Tensor
    """log|P|: (N,)"""


class SparseCodingModel(SavableModule):
    """The sparse-coding model of Eq. 2.28 with a Cauchy, Laplace or cosh prior (Eq. 2.29).

    n_features: M; n_components: K (over-complete when K > M); prior: "laplace", "cauchy" or
    "cosh"; alpha: α_k (Laplace, cosh), a scalar or K values; beta: β — the Cauchy scale(s), the
    cosh sharpness, or for the Laplace prior the sharpness of the cosh curvature used in its
    Hessian (Eq. 2.33); lam: λ, the emission precision.

    Buffers: ``dictionary`` C (M, K), ``alpha`` (K,), ``beta`` (K,) (one value for cosh/Laplace).
    """

    dictionary: Tensor
    alpha: Tensor
    beta: Tensor

    def __init__(self, n_features: int, n_components: int, *, prior: str = "laplace",
                 alpha: Any = 1.0, beta: Any = 10.0, lam: float = 1.0,
                 dtype: str = "float64") -> None:
        super().__init__()
        M = check_positive_int(n_features, "n_features")
        K = check_positive_int(n_components, "n_components")
        check_choice(prior, "prior", PRIORS)
        lam = check_nonnegative_float(lam, "lam", strictly=True)
        tdtype = resolve_dtype(dtype)
        a = check_penalty(alpha, K, name="alpha", dtype=tdtype, strictly=True)
        b = check_penalty(beta, K, name="beta", dtype=tdtype, strictly=True)
        if prior != "cauchy" and not bool((b == b[0]).all()):
            raise ValueError(f"beta must be one value for the {prior} prior (the cosh "
                             "sharpness), got several.")
        self.prior_name, self.lam = prior, lam
        self.register_buffer("dictionary", torch.zeros(M, K, dtype=tdtype))
        self.register_buffer("alpha", a.clone())
        self.register_buffer("beta", b.clone())
        self.config = {"n_features": M, "n_components": K, "prior": prior,
                       "alpha": [float(v) for v in a], "beta": [float(v) for v in b],
                       "lam": lam, "dtype": str(tdtype).removeprefix("torch.")}

    # -- structure ---------------------------------------------------------------------------

    @property
    def n_features(self) -> int:
        return int(self.dictionary.shape[0])

    @property
    def n_components(self) -> int:
        return int(self.dictionary.shape[1])

    @property
    def prior(self) -> _Prior:
        if self.prior_name == "laplace":
            return LaplacePrior(self.alpha, float(self.beta[0]))
        if self.prior_name == "cauchy":
            return CauchyPrior(self.beta)
        return CoshPrior(self.alpha, float(self.beta[0]))

    def set_dictionary(self, C: Any) -> SparseCodingModel:
        """Set C (M, K), checked (finite, no zero column)."""
        C = check_dictionary(C, dtype=self.dictionary.dtype)
        if C.shape != self.dictionary.shape:
            raise ValueError(f"C must have shape {tuple(self.dictionary.shape)}, got "
                             f"{tuple(C.shape)}.")
        self.dictionary.copy_(C)
        return self

    def initialize(self, data: Tensor, generator: torch.Generator | int | None = None) -> None:
        """C = K random data rows (unit norm), as scikit-learn's dictionary learners start."""
        g = make_generator(generator)
        Y = torch.as_tensor(data, dtype=self.dictionary.dtype)
        idx = torch.randint(0, Y.shape[0], (self.n_components,), generator=g)
        C = Y[idx].T + 1e-3 * torch.randn(self.n_features, self.n_components, generator=g,
                                          dtype=Y.dtype)
        self.set_dictionary(C / C.norm(dim=0))

    # -- the joint ---------------------------------------------------------------------------

    def _check_y(self, y: Any) -> Tensor:
        from genmodels._validation import as_tensor

        Y = as_tensor(y, name="Y", dtype=self.dictionary.dtype, device=self.dictionary.device)
        if Y.dim() == 0 or Y.shape[-1] != self.n_features:
            raise ValueError(f"Y must have shape (*batch, {self.n_features}), got "
                             f"{tuple(Y.shape)}.")
        return Y

    def log_joint(self, x: Tensor, y: Tensor) -> Tensor:
        """log p̂(x, y) = −Σ_k [E_k(x_k) + log Z_k] + (M/2) log(λ/τ) − (λ/2)‖y − Cx‖² (Eq. 2.28).
        x: (*, K); y: (*, M) → (*,)."""
        r = y - x @ self.dictionary.mT
        return (self.prior.log_prob(x) + 0.5 * self.n_features * (math.log(self.lam) - LOG_TAU)
                - 0.5 * self.lam * r.square().sum(-1))

    def joint_energy(self, x: Tensor, y: Tensor) -> Tensor:
        """E_joint = Σ_k E_k(x_k) + (λ/2)‖y − Cx‖² (no normalisers), (*,)."""
        r = y - x @ self.dictionary.mT
        return self.prior.energy(x).sum(-1) + 0.5 * self.lam * r.square().sum(-1)

    def sample(self, n: int, generator: torch.Generator | int | None = None
               ) -> tuple[Tensor, Tensor]:
        """(x (n, K), y (n, M)) from the prior and the emission."""
        g = make_generator(generator)
        x = self.prior.sample(check_positive_int(n, "n"), g)
        noise = torch.randn(n, self.n_features, generator=g, dtype=x.dtype)
        return x, x @ self.dictionary.mT + noise / math.sqrt(self.lam)

    # -- inference ---------------------------------------------------------------------------

    def map_codes(self, y: Any, **lasso_kwargs: Any) -> Tensor:
        """The posterior modes x̂⁰(y), (*, K): the LASSO (Eq. 8.10) for the Laplace prior, else
        Newton's method from the ridge solution (λCᵀC + I)⁻¹λCᵀy."""
        Y = self._check_y(y)
        C = self.dictionary
        if self.prior_name == "laplace":
            return lasso(Y, C, self.lam, self.alpha, **lasso_kwargs).codes
        K = self.n_components
        A = self.lam * C.mT @ C + torch.eye(K, dtype=C.dtype, device=C.device)
        x0 = psd_solve(A, (self.lam * Y @ C).reshape(-1, K).mT).mT.reshape(*Y.shape[:-1], K)
        return newton_mode(lambda x: self.joint_energy(x, Y), x0,
                           hessian=self.posterior_precision)

    def posterior_precision(self, x: Tensor) -> Tensor:
        """λCᵀC + diag(E″(x)) (Eq. 2.33; the cosh curvature for the Laplace prior). (*, K) →
        (*, K, K)."""
        C = self.dictionary
        return self.lam * C.mT @ C + torch.diag_embed(self.prior.curvature(x))

    def laplace(self, y: Any, *, mode: Tensor | None = None) -> LaplaceApproximation:
        """Laplace's method for every datum: mode, precision (Eq. 2.33) and log p̂(y) (Eq. 2.32;
        for the Laplace prior the corrected Eq. 2.34). y: (*, M)."""
        Y = self._check_y(y)
        xhat = self.map_codes(Y) if mode is None else mode
        return laplace_approximation(lambda x: -self.log_joint(x, Y), xhat, mode=xhat,
                                     hessian=self.posterior_precision)

    def log_marginal(self, y: Any) -> Tensor:
        """The Laplace approximation of log p̂(y), (*,)."""
        return self.laplace(y).log_marginal

    def recognition(self, y: Any) -> Recognition:
        """The E step (Eqs. 8.10–8.11): ν = x̂⁰(y), P = λCᵀC + diag(E″(ν)). y: (N, M)."""
        lap = self.laplace(y)
        return Recognition(lap.mode, lap.precision, lap.covariance,
                           cholesky_logdet(lap.precision_cholesky))

    # -- the EM objective and gradients -----------------------------------------------------

    def jre(self, y: Tensor, q: Recognition, C: Tensor | None = None) -> Tensor:
        """The joint relative entropy per datum, up to the data entropy (Eq. 8.8 with its
        constants; erratum on Eq. 8.7: −(M/2) log λ):

            E_q[−log p̂(x, y)] − H[q]
              = Σ_k E_q[E_k] + Σ_k log Z_k + (M/2) log(τ/λ)
                + (λ/2)(‖y − Cν‖² + tr(C P⁻¹ Cᵀ)) − ½(K log τ + K − log|P|).

        C defaults to the model's dictionary (pass another to evaluate an M step). (N,)."""
        C = self.dictionary if C is None else C
        M, K = C.shape
        var = q.covariance.diagonal(dim1=-2, dim2=-1)
        prior = self.prior.expected_energy(q.mean, var).sum(-1) + self.prior.log_normalizer().sum()
        r = y - q.mean @ C.mT
        trace = ((C @ q.covariance) * C).sum((-2, -1))  # tr(C P⁻¹ Cᵀ)
        emission = 0.5 * M * (LOG_TAU - math.log(self.lam)) + 0.5 * self.lam * (
            r.square().sum(-1) + trace)
        entropy = 0.5 * (K * LOG_TAU + K - q.logdet_precision)
        return prior + emission - entropy

    def em_gradient(self, y: Tensor, q: Recognition) -> Tensor:
        """∂⟨L_JRE⟩/∂C = λ⟨C P⁻¹ − (y − Cν)νᵀ⟩ (Eq. 8.9), averaged over the data. (M, K)."""
        C = self.dictionary
        r = y - q.mean @ C.mT
        N = y.shape[0]
        return self.lam * (C @ q.covariance.mean(0) - r.mT @ q.mean / N)

    def marginal_gradient(self, y: Tensor, mode: Tensor) -> Tensor:
        """∂⟨log p̂(y)⟩/∂C of the Laplace-approximated marginal (Eq. 2.34) with the mode held
        fixed (G3; the total-derivative terms through x̂⁰(C) dropped, as in Lewicki & Olshausen):
        λ⟨(y − Cx̂⁰)x̂⁰ᵀ⟩ − λ C⟨P⁻¹⟩. (M, K)."""
        C = self.dictionary
        P = self.posterior_precision(mode)
        cov = torch.cholesky_inverse(safe_cholesky(P))
        r = y - mode @ C.mT
        N = y.shape[0]
        return self.lam * (r.mT @ mode / N - C @ cov.mean(0))

    # -- EM through the engine ---------------------------------------------------------------

    def expected_stats(self, batch: Tensor) -> EStep:
        """E step of one batch: Σ yνᵀ (M, K), Σ (P⁻¹ + ννᵀ) (K, K); the "log-likelihood" is the
        negative JRE (the evidence lower bound, up to the data entropy), a bound on Σ log p̂(y)."""
        Y = self._check_y(batch)
        q = self.recognition(Y)
        stats: Stats = {
            "n": torch.tensor(float(Y.shape[0]), dtype=Y.dtype),
            "sum_y_nu": Y.mT @ q.mean,
            "sum_xx": q.covariance.sum(0) + q.mean.mT @ q.mean,
        }
        return EStep(stats, -self.jre(Y, q).sum(), float(Y.shape[0]))

    def maximize(self, stats: Stats, frozen: frozenset[str] = frozenset()) -> None:
        """M step (Eq. 8.9): C = ⟨yνᵀ⟩⟨P⁻¹ + ννᵀ⟩⁻¹ (a Cholesky solve)."""
        if "dictionary" in frozen:
            return
        C = psd_solve(stats["sum_xx"], stats["sum_y_nu"].mT).mT
        self.dictionary.copy_(C)


def fit_sparse_coding_em(model: SparseCodingModel, Y: Tensor, *, max_iter: int = 50,
                         tol: float = 1e-6, batch_size: int | None = None,
                         callback: Callable[[int, float], None] | None = None,
                         warn: bool = True) -> list[float]:
    """EM for sparse coding (the book's box "EM Algorithm for Laplace-Sparse Coding", §8.1.1)
    with the library's EM engine; batches only bound the memory of the (B, K, K) precisions.
    Returns the per-datum negative JRE before each M step."""
    from genmodels.learning.em import minibatches

    batches = minibatches(model._check_y(Y), batch_size)
    res = run_em(model, batches, max_iter=max_iter, tol=tol, callback=callback, warn=warn)
    return res.log_likelihood


def fit_lewicki_olshausen(model: SparseCodingModel, Y: Tensor, *, n_iter: int = 100,
                          learning_rate: float = 0.1, batch_size: int | None = None,
                          natural: bool = True, seed: Any = 0,
                          callback: Callable[[int, float], None] | None = None) -> list[float]:
    """Classical sparse coding (Lewicki & Olshausen 1999; G3): ascend the Laplace-approximated
    log-marginal (Eq. 2.34) in C with the mode held fixed at each step — no E step, no stored
    recognition parameters.

    Each step: x̂⁰ = the modes of a batch, G = ``marginal_gradient``; natural gradient (Amari
    1998, as Lewicki & Olshausen use) multiplies by CCᵀ on the left: ΔC = η C Cᵀ G (its
    stationary points are those of G for full-row-rank C); plain gradient ΔC = η G. Returns the
    mean approximate log-marginal of each step's batch (before its update)."""
    n_iter = check_positive_int(n_iter, "n_iter")
    lr = check_nonnegative_float(learning_rate, "learning_rate", strictly=True)
    Y = model._check_y(Y)
    g = make_generator(seed)
    history: list[float] = []
    N = Y.shape[0]
    for it in range(n_iter):
        if batch_size is None or batch_size >= N:
            batch = Y
        else:
            batch = Y[torch.randint(0, N, (batch_size,), generator=g)]
        lap = model.laplace(batch)
        history.append(float(lap.log_marginal.mean()))
        grad = model.marginal_gradient(batch, lap.mode)
        C = model.dictionary
        step = C @ (C.mT @ grad) if natural else grad
        model.dictionary.add_(lr * step)
        if callback is not None:
            callback(it, history[-1])
    return history
