"""Mean-field variational inference by coordinate ascent (CAVI) for conjugate-exponential
models (book §8.4, empty there; CATALOGUE G22; filled from Bishop 2006 §10.1–10.2, Blei,
Kucukelbir & McAuliffe 2017 and Wainwright & Jordan 2008 §5).

With a factorised recognition distribution q(z) = Π_j q_j(z_j), the ELBO
L(q) = E_q[log p̂(y, z)] − E_q[log q(z)] is maximised in one factor at a time by

    log q_j*(z_j) = E_{q_{−j}}[log p̂(y, z)] + const,                          (CAVI)

each step raising L (or leaving it): the ELBO never decreases.

**The variational Bayesian Gaussian mixture** (Bishop §10.2). Priors π ~ Dir(α₀) (or the
stick-breaking Dirichlet process with concentration α₀), and for each component the
Normal–Wishart μ_k | Λ_k ~ N(m₀, (β₀Λ_k)⁻¹), Λ_k ~ W(W₀, ν₀). q factorises into
q(x̂) Π_k q(π) q(μ_k, Λ_k); with the statistics N_k = Σ_n r_nk, x̄_k = Σ_n r_nk y_n / N_k and
S_k = Σ_n r_nk (y_n − x̄_k)(y_n − x̄_k)ᵀ / N_k the updates are

    α_k = α₀ + N_k                                                       (Bishop 10.58)
    β_k = β₀ + N_k,  m_k = (β₀ m₀ + N_k x̄_k) / β_k                       (10.60, 10.61)
    W_k⁻¹ = W₀⁻¹ + N_k S_k + β₀N_k/(β₀ + N_k) (x̄_k − m₀)(x̄_k − m₀)ᵀ        (10.62)
    ν_k = ν₀ + N_k                                                       (10.63)
    log ρ_nk = E[log π_k] + ½E[log|Λ_k|] − ½D log τ
               − ½ (D/β_k + ν_k (y_n − m_k)ᵀ W_k (y_n − m_k))             (10.46, 10.64–10.66)
    r_nk = ρ_nk / Σ_j ρ_nj                                               (10.49)

with E[log|Λ_k|] = Σ_{i=1}^D ψ((ν_k + 1 − i)/2) + D log 2 + log|W_k| (10.65). The quantities
and the lower bound follow scikit-learn's ``BayesianGaussianMixture`` exactly (the bound up
to the same additive constant, Bishop 10.71 simplified at the M step's optimum), so that
the two can be compared number for number: ``covariances`` holds (ν_k W_k)⁻¹ and
``precisions_cholesky`` its inverse's Cholesky factor; ``reg_covar`` is added to S_k.

Notation: N data, D dims, K components.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from genmodels.linalg import eps
from genmodels.models.covariance import CovarianceStructure, covariance_structure

__all__ = [
    "VBGMMFit",
    "VBGMMPosterior",
    "VBGMMPrior",
    "vbgmm_cavi",
    "vbgmm_e_step",
    "vbgmm_lower_bound",
    "vbgmm_m_step",
    "vbgmm_predict_log_resp",
    "vbgmm_weights",
]


class VBGMMPrior(NamedTuple):
    """The conjugate priors of the variational Bayesian GMM.

    weight_type: "dirichlet_process" (stick-breaking, Beta(1, α₀) sticks) or
        "dirichlet_distribution" (Dir(α₀, ..., α₀)).
    weight_concentration: α₀.  mean_precision: β₀.  mean: m₀ (D,).
    degrees_of_freedom: ν₀ (> D − 1).  covariance: W₀⁻¹ in the covariance structure's shape
        ((D, D) for full and tied, (D,) diag, () spherical).
    """

    weight_type: str
    weight_concentration: float
    mean_precision: float
    mean: Tensor
    degrees_of_freedom: float
    covariance: Tensor


class VBGMMPosterior(NamedTuple):
    """The factors q(π) Π_k q(μ_k, Λ_k) (shapes for K components, D dims).

    weight_concentration: (2, K) the Beta sticks' (a_k, b_k) for the Dirichlet process, or
        (K,) α_k for the Dirichlet distribution (Eq. 10.58).
    mean_precision: (K,) β_k.  means: (K, D) m_k (Eq. 10.61).
    degrees_of_freedom: (K,) ν_k ((), one shared value, for tied).
    covariances: (ν_k W_k)⁻¹, the expected covariance's plug-in, shaped by the structure.
    precisions_cholesky: U_k with U_k U_kᵀ = ν_k W_k.
    """

    weight_concentration: Tensor
    mean_precision: Tensor
    means: Tensor
    degrees_of_freedom: Tensor
    covariances: Tensor
    precisions_cholesky: Tensor


def _wishart_scale(structure: CovarianceStructure, prior: VBGMMPrior, nk: Tensor, xk: Tensor,
                   sk: Tensor, beta: Tensor) -> tuple[Tensor, Tensor]:
    """ν_k and W_k⁻¹ (Eqs. 10.62–10.63) in the structure's shape; ``xk`` about m₀."""
    b0 = prior.mean_precision
    k = nk.shape[0]
    if structure.name == "tied":  # one Wishart shared by all components
        dof = prior.degrees_of_freedom + nk.sum() / k
        scatter = ((nk / beta)[:, None] * xk).T @ xk
        w_inv = prior.covariance + sk * nk.sum() / k + b0 / k * scatter
        return dof, w_inv
    dof = prior.degrees_of_freedom + nk
    shrink = nk * b0 / beta  # β₀N_k/(β₀ + N_k)
    if structure.name == "full":
        w_inv = prior.covariance + nk[:, None, None] * sk + shrink[:, None, None] * (
            xk[:, :, None] * xk[:, None, :])
    elif structure.name == "diag":
        w_inv = prior.covariance + nk[:, None] * (sk + (b0 / beta)[:, None] * xk.square())
    else:  # spherical: the average over dimensions
        w_inv = prior.covariance + nk * (sk + b0 / beta * xk.square().mean(1))
    return dof, w_inv


def _per_component(t: Tensor, structure: CovarianceStructure) -> Tensor:
    """Divide-by-ν broadcasting helper: (K,) → the covariances' trailing shape."""
    if structure.name == "full":
        return t[:, None, None]
    if structure.name == "diag":
        return t[:, None]
    return t


def vbgmm_m_step(y: Tensor, feats: Tensor, resp: Tensor, prior: VBGMMPrior,
                 structure: CovarianceStructure, reg_covar: float) -> VBGMMPosterior:
    """The variational M step: every global factor from the responsibilities (Eqs.
    10.58–10.63).

    y: (N, D) data about m₀ (y − m₀); feats: ``structure.features(y)``; resp: (N, K).
    Returns the factors with means about m₀ as well.
    """
    nk, sums, second = structure.moments(y, feats, resp)
    nk = nk + 10 * eps(y.dtype)  # scikit-learn's guard against empty components
    xk = sums / nk[:, None]  # x̄_k
    sk = structure.covariance(nk, xk, second, reg_covar)  # S_k + reg_covar·I
    if prior.weight_type == "dirichlet_process":  # Beta(1 + N_k, α₀ + Σ_{j>k} N_j)
        tail = torch.cat([nk.flip(0).cumsum(0).flip(0)[1:], nk.new_zeros(1)])
        alpha = torch.stack([1.0 + nk, prior.weight_concentration + tail])
    else:
        alpha = prior.weight_concentration + nk  # Eq. 10.58
    beta = prior.mean_precision + nk  # Eq. 10.60
    means = nk[:, None] * xk / beta[:, None]  # Eq. 10.61 (m₀ = 0 about m₀)
    dof, w_inv = _wishart_scale(structure, prior, nk, xk, sk, beta)
    cov = w_inv / (dof if structure.name == "tied" else _per_component(dof, structure))
    return VBGMMPosterior(alpha, beta, means, dof, cov, structure.precision_cholesky(cov))


def _expected_log_weights(post: VBGMMPosterior, weight_type: str) -> Tensor:
    """E_q[log π_k]: (K,). Dirichlet: ψ(α_k) − ψ(Σα) (Eq. 10.66); Dirichlet process:
    E log v_k + Σ_{j<k} E log(1 − v_j) for Beta sticks v_k (Blei & Jordan 2006)."""
    a = post.weight_concentration
    if weight_type == "dirichlet_process":
        dsum = torch.digamma(a[0] + a[1])
        da, db = torch.digamma(a[0]) - dsum, torch.digamma(a[1]) - dsum
        return da + torch.cat([da.new_zeros(1), db.cumsum(0)[:-1]])
    return torch.digamma(a) - torch.digamma(a.sum())


def vbgmm_e_step(y: Tensor, feats: Tensor, post: VBGMMPosterior, prior: VBGMMPrior,
                 structure: CovarianceStructure) -> tuple[Tensor, Tensor]:
    """The variational E step: log ρ_nk (Eqs. 10.46, 10.64–10.66) normalised (Eq. 10.49).

    Returns (log Σ_k ρ_nk (N,), log r_nk (N, K)).
    """
    d = y.shape[1]
    dof = post.degrees_of_freedom
    log_gauss = structure.log_density(y, feats, post.means, post.precisions_cholesky) \
        - 0.5 * d * torch.log(dof)  # ν_k W_k → W_k in the log-determinant
    i = torch.arange(d, dtype=y.dtype, device=y.device)
    log_lambda = d * math.log(2.0) + torch.digamma(
        0.5 * (dof.reshape(-1, 1) - i)).sum(-1)  # E log|Λ_k| − log|W_k| (Eq. 10.65)
    log_rho = log_gauss + 0.5 * (log_lambda.reshape(dof.shape) - d / post.mean_precision) \
        + _expected_log_weights(post, prior.weight_type)
    log_norm = torch.logsumexp(log_rho, 1)
    return log_norm, log_rho - log_norm[:, None]


def vbgmm_lower_bound(log_resp: Tensor, post: VBGMMPosterior, prior: VBGMMPrior,
                      structure: CovarianceStructure) -> Tensor:
    """The ELBO (Bishop 10.71) after an M step, up to an additive constant, as scikit-learn
    computes it: −Σ r log r − Σ_k log B(W_k, ν_k) − log C(α) − ½D Σ_k log β_k."""
    k, d = post.means.shape
    dof = post.degrees_of_freedom
    log_det = structure.log_det_precision_cholesky(post.precisions_cholesky, k, d)
    if structure.name == "tied":  # one shared Wishart, counted once per component below
        log_det = log_det.reshape(-1)[0]
    log_det = log_det - 0.5 * d * torch.log(dof)  # ½ log|W_k|
    i = torch.arange(d, dtype=log_det.dtype, device=log_det.device)
    log_wishart_norm = -(dof * log_det + dof * d * 0.5 * math.log(2.0)
                         + torch.lgamma(0.5 * (dof.reshape(-1, 1) - i)).sum(-1).reshape(
                             dof.shape))  # log B(W, ν) (Bishop B.79)
    log_wishart = log_wishart_norm.sum() if structure.name != "tied" else k * log_wishart_norm
    a = post.weight_concentration
    if prior.weight_type == "dirichlet_process":
        log_norm_w = -(torch.lgamma(a[0]) + torch.lgamma(a[1]) - torch.lgamma(a[0] + a[1])).sum()
    else:
        log_norm_w = torch.lgamma(a.sum()) - torch.lgamma(a).sum()  # log C(α) (Bishop B.23)
    entropy = -(log_resp.exp() * log_resp).sum()
    return entropy - log_wishart - log_norm_w - 0.5 * d * torch.log(post.mean_precision).sum()


def vbgmm_weights(post: VBGMMPosterior, weight_type: str) -> Tensor:
    """E_q[π] (K,): α_k / Σα, or the expected stick-breaking weights, renormalised."""
    a = post.weight_concentration
    if weight_type == "dirichlet_process":
        s = a[0] + a[1]
        w = a[0] / s * torch.cat([a.new_ones(1), (a[1] / s).cumprod(0)[:-1]])
        return w / w.sum()
    return a / a.sum()


class VBGMMFit(NamedTuple):
    """CAVI's answer: the factors, the last responsibilities' log, and the report.

    lower_bounds: (iterations,) the ELBO (up to a constant) after each M step;
    converged: |ΔELBO| < tol before ``max_iter``.
    """

    posterior: VBGMMPosterior
    log_resp: Tensor
    lower_bounds: Tensor
    converged: bool


def vbgmm_cavi(y: Tensor, prior: VBGMMPrior, covariance_type: str = "full", *,
               resp0: Tensor | None = None, posterior0: VBGMMPosterior | None = None,
               reg_covar: float = 1e-6, max_iter: int = 100, tol: float = 1e-3,
               previous_bound: float = -math.inf) -> VBGMMFit:
    """Coordinate ascent for the variational Bayesian GMM.

    y: (N, D) data; start from resp0: (N, K) initial responsibilities (one M step makes the
    factors) or from posterior0 (factors from an earlier fit: a warm start, with its bound as
    ``previous_bound``). prior: ``VBGMMPrior`` (m₀ in data coordinates). Iterates E step, M
    step, bound until the bound changes by less than ``tol``. Returns the factors with means
    in data coordinates.
    """
    if (resp0 is None) == (posterior0 is None):
        raise ValueError("give exactly one of resp0 and posterior0.")
    structure = covariance_structure(covariance_type)
    yc = y - prior.mean  # statistics about m₀ (keeps the quadratic expansions small)
    centred = prior._replace(mean=torch.zeros_like(prior.mean))
    feats = structure.features(yc)
    if resp0 is not None:
        post = vbgmm_m_step(yc, feats, resp0, centred, structure, reg_covar)
    else:
        assert posterior0 is not None
        post = posterior0._replace(means=posterior0.means - prior.mean)
    bounds = []
    converged = False
    log_resp = yc.new_zeros(0)
    prev = previous_bound
    for _ in range(max_iter):
        _, log_resp = vbgmm_e_step(yc, feats, post, centred, structure)
        post = vbgmm_m_step(yc, feats, log_resp.exp(), centred, structure, reg_covar)
        lb = vbgmm_lower_bound(log_resp, post, centred, structure)
        bounds.append(lb)
        if abs(float(lb) - prev) < tol:
            converged = True
            break
        prev = float(lb)
    post = post._replace(means=post.means + prior.mean)
    return VBGMMFit(post, log_resp, torch.stack(bounds) if bounds else y.new_zeros(0),
                    converged)


def vbgmm_predict_log_resp(y: Tensor, post: VBGMMPosterior, prior: VBGMMPrior,
                           covariance_type: str = "full") -> tuple[Tensor, Tensor]:
    """The E step on new data: (log Σ_k ρ_nk (N,), log r_nk (N, K)), data coordinates."""
    structure = covariance_structure(covariance_type)
    yc = y - prior.mean
    centred = prior._replace(mean=torch.zeros_like(prior.mean))
    return vbgmm_e_step(yc, structure.features(yc), post._replace(means=post.means - prior.mean),
                        centred, structure)
