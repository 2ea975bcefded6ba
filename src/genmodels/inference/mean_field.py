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

**Bayesian linear regression** (``bayesian_linear_regression``, Bishop §10.3): q(w) q(α) q(τ)
with Gamma priors on the weight and noise precisions.

**Naive mean field on a discrete factor graph** (``mean_field``): q(x) = Π_v q_v(x_v),
q_v ∝ exp Σ_{a∋v} E_{q_{−v}}[log ψ_a], whose ELBO bounds log Z from below.

Notation: N data, D dims, K components.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import torch
from torch import Tensor

from genmodels._validation import (
    as_tensor,
    check_choice,
    check_data_matrix,
    check_nonnegative_float,
    check_positive_int,
)
from genmodels.linalg import eps
from genmodels.models.covariance import CovarianceStructure, covariance_structure

__all__ = [
    "BayesianLinearRegressionFit",
    "MeanFieldResult",
    "VBGMMFit",
    "VBGMMPosterior",
    "VBGMMPrior",
    "bayesian_linear_regression",
    "check_vbgmm_prior",
    "mean_field",
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


def check_vbgmm_prior(prior: VBGMMPrior, D: int, structure: CovarianceStructure | str,
                      like: Tensor, names: Mapping[str, str] | None = None, *,
                      data: str = "y") -> VBGMMPrior:
    """The prior's fields through the shared validation, tensors in ``like``'s dtype/device:
    the one check of a VBGMM prior, used by ``vbgmm_cavi`` and ``BayesianGaussianMixture``.

    ``names`` maps a field of ``VBGMMPrior`` to the name the caller's user knows it by (the
    estimator's ``degrees_of_freedom_prior`` ...); a field not in it keeps its own name.
    ``data`` names the data whose D columns the shapes refer to.
    Refuses: an unknown weight type; α₀ or β₀ not finite and > 0; ν₀ not finite or ≤ D − 1
    (the Wishart's condition); m₀ not of shape (D,) or not finite; W₀⁻¹ not of the structure's
    shape, or not positive definite (full, tied) / positive (diag, spherical)."""
    def n(field: str) -> str:
        return (names or {}).get(field, field)

    structure = covariance_structure(structure)
    check_choice(prior.weight_type, n("weight_type"),
                 ("dirichlet_process", "dirichlet_distribution"))
    alpha0 = check_nonnegative_float(prior.weight_concentration, n("weight_concentration"),
                                     strictly=True)
    beta0 = check_nonnegative_float(prior.mean_precision, n("mean_precision"), strictly=True)
    nu0 = check_nonnegative_float(prior.degrees_of_freedom, n("degrees_of_freedom"))
    if not nu0 > D - 1:
        raise ValueError(f"{n('degrees_of_freedom')} must be greater than n_features - 1 "
                         f"= {D - 1} (n_features: the columns of {data}), got {nu0}.")
    m0 = as_tensor(prior.mean, name=n("mean"), dtype=like.dtype, device=like.device)
    if tuple(m0.shape) != (D,):
        raise ValueError(f"{n('mean')} must have shape ({D},), got {tuple(m0.shape)}.")
    cov = as_tensor(prior.covariance, name=n("covariance"), dtype=like.dtype,
                    device=like.device)
    kind = structure.name
    want = {"full": (D, D), "tied": (D, D), "diag": (D,), "spherical": ()}[kind]
    if tuple(cov.shape) != want:
        raise ValueError(f"{n('covariance')} for covariance_type={kind!r} must have shape "
                         f"{want}, got {tuple(cov.shape)}.")
    if kind in ("full", "tied"):
        covariance_structure("tied").check(cov, 1, D, name=n("covariance"))
    elif bool((cov <= 0).any()):
        raise ValueError(f"{n('covariance')} must be positive.")
    return prior._replace(weight_concentration=alpha0, mean_precision=beta0, mean=m0,
                          degrees_of_freedom=nu0, covariance=cov)


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
    y = check_data_matrix(y, name="y")
    prior = check_vbgmm_prior(prior, y.shape[1], structure, y)
    reg_covar = check_nonnegative_float(reg_covar, "reg_covar")
    max_iter = check_positive_int(max_iter, "max_iter")
    tol = check_nonnegative_float(tol, "tol")
    if resp0 is not None:
        resp0 = as_tensor(resp0, name="resp0", dtype=y.dtype, device=y.device)
        if resp0.dim() != 2 or resp0.shape[0] != y.shape[0] or resp0.shape[1] == 0:
            raise ValueError(f"resp0 must have shape (N, K) = ({y.shape[0]}, K >= 1), got "
                             f"{tuple(resp0.shape)}.")
        if bool((resp0 < 0).any()):
            raise ValueError("resp0 must be non-negative (responsibilities).")
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


# ----------------------------------------------------------------------------------------------
# Naive mean field on a discrete factor graph (Wainwright & Jordan 2008 §5.3)
# ----------------------------------------------------------------------------------------------


class MeanFieldResult(NamedTuple):
    """Naive mean field q(x) = Π_v q_v(x_v) on a factor graph.

    marginals: {v: q_v} (k_v,) each.  elbo: the final E_q[log Π ψ] + Σ_v H(q_v) ≤ log Z.
    elbo_history: (sweeps,) after every sweep (never decreasing).  converged: the ELBO rose by
    less than ``tol`` in the last sweep.  iterations: sweeps run.
    """

    marginals: dict[str, Tensor]
    elbo: Tensor
    elbo_history: Tensor
    converged: bool
    iterations: int


def _expect(table: Tensor, qs: list[Tensor | None]) -> Tensor:
    """E over the axes whose q is given of a stack of log-tables (F, k_1, ..., k_r), keeping
    the others: qs[i] is (F, k_i) or None. 0·(−∞) = 0: states with q = 0 do not count; a
    positive weight on a hard zero gives −∞."""
    t = table
    for i in reversed(range(len(qs))):  # highest axis first, so lower indices stay valid
        q = qs[i]
        if q is None:
            continue
        shape = [q.shape[0]] + [1] * (t.dim() - 1)
        shape[1 + i] = q.shape[1]
        w = q.reshape(shape)
        t = torch.where(w > 0, w * t, torch.zeros_like(t)).sum(1 + i)
    return t


def mean_field(graph: Any, *, max_iter: int = 500, tol: float = 1e-12,
               init: dict[str, Tensor] | None = None,
               generator: torch.Generator | int | None = None) -> MeanFieldResult:
    """Coordinate ascent on the naive mean-field ELBO of a ``FactorGraph`` (CAVI):
    q_v(x_v) ∝ exp Σ_{a ∋ v} E_{q_{−v}}[log ψ_a(x_a)].

    Chromatic blocks: variables of one colour of ``greedy_coloring`` share no factor, so the
    ELBO separates over them given the rest and updating a whole colour class at once is
    exact block coordinate ascent (still never decreasing). Vectorised over the variables of
    a class and over the factors, stacked by shape as in belief propagation.

    init: starting marginals {v: (k_v,)}; default uniform, or random (Dirichlet(1)) when a
    ``generator`` is given — uniform is a fixed point of symmetric models (zero fields).
    """
    from genmodels._validation import make_generator
    from genmodels.inference.graphs.bp import _groups
    from genmodels.inference.graphs.gibbs import greedy_coloring

    if int(max_iter) < 1:
        raise ValueError(f"max_iter must be at least 1, got {max_iter}.")
    names = graph.variables
    V = len(names)
    card = torch.tensor([graph.cardinalities[v] for v in names])
    K = int(card.max()) if V else 1
    valid = torch.arange(K)[None, :] < card[:, None]  # (V, K)
    gen = make_generator(generator) if generator is not None else None
    if gen is not None:
        e = -torch.log(torch.rand(V, K, generator=gen, dtype=torch.float64))
    else:
        e = torch.ones(V, K, dtype=torch.float64)
    q = torch.where(valid, e, 0.0)
    q = q / q.sum(-1, keepdim=True)  # (V, K)
    for i, v in enumerate(names):
        if init is not None and v in init:
            q[i] = 0.0
            q[i, : int(card[i])] = torch.as_tensor(init[v], dtype=torch.float64)
    groups, constant = _groups(graph)
    colours = torch.tensor(greedy_coloring(graph)) if V else torch.zeros(0, dtype=torch.long)
    classes = [torch.nonzero(colours == k).reshape(-1) for k in range(int(colours.max()) + 1)] \
        if V else []

    def slot_q(grp: Any, i: int) -> Tensor:
        return q[grp.var[:, i], : grp.table.shape[1 + i]]  # (F, k_i)

    def natural() -> Tensor:
        """Σ_{a ∋ v} E_{q_{−v}}[log ψ_a] for every variable: (V, K), −∞ off the domain."""
        out = torch.where(valid, 0.0, -math.inf).to(torch.float64)
        for grp in groups:
            r = grp.var.shape[1]
            for j in range(r):
                e_j = _expect(grp.table, [None if i == j else slot_q(grp, i) for i in range(r)])
                out[:, : e_j.shape[1]].index_add_(0, grp.var[:, j], e_j)
        return out

    def elbo() -> Tensor:
        energy = constant.clone()
        for grp in groups:
            r = grp.var.shape[1]
            energy = energy + _expect(grp.table, [slot_q(grp, i) for i in range(r)]).sum()
        ent = -torch.where(q > 0, q * q.log(), torch.zeros_like(q)).sum()
        return energy + ent

    history = []
    converged = False
    prev = -math.inf
    for _ in range(int(max_iter)):
        for members in classes:
            q[members] = torch.softmax(natural()[members], -1)
        value = elbo()
        history.append(value)
        if float(value) - prev < tol:
            converged = True
            break
        prev = float(value)
    marginals = {v: q[i, : int(card[i])].clone() for i, v in enumerate(names)}
    return MeanFieldResult(marginals, history[-1], torch.stack(history), converged, len(history))


# ----------------------------------------------------------------------------------------------
# Variational Bayesian linear regression (Bishop 2006 §10.3; Drugowitsch 2013)
# ----------------------------------------------------------------------------------------------


class BayesianLinearRegressionFit(NamedTuple):
    """q(w) q(α) q(τ) for y = X w + ε, ε ~ N(0, τ⁻¹), w ~ N(0, α⁻¹ I), α ~ Gamma(a₀, b₀),
    τ ~ Gamma(c₀, d₀) (rate parameterisation).

    mean: (D,) m;  covariance: (D, D) S of q(w) = N(m, S).
    alpha_shape, alpha_rate: q(α) = Gamma(a, b) (E α = a / b).
    noise_shape, noise_rate: q(τ) = Gamma(c, d) (E τ = c / d, the noise precision).
    elbo_history: (iterations,) the ELBO after each sweep (never decreasing).
    converged: the ELBO rose by less than ``tol``.
    """

    mean: Tensor
    covariance: Tensor
    alpha_shape: Tensor
    alpha_rate: Tensor
    noise_shape: Tensor
    noise_rate: Tensor
    elbo_history: Tensor
    converged: bool


def _gamma_entropy(a: Tensor, b: Tensor) -> Tensor:
    return a - torch.log(b) + torch.lgamma(a) + (1 - a) * torch.digamma(a)


def _expected_log_gamma_prior(a0: float, b0: float, e_log: Tensor, e: Tensor) -> Tensor:
    """E_q[log Gamma(x; a₀, b₀)] from E log x and E x."""
    return a0 * math.log(b0) - math.lgamma(a0) + (a0 - 1) * e_log - b0 * e


def _gamma_prior(value: Any, name: str) -> tuple[float, float]:
    """A Gamma prior's (shape, rate), both finite and > 0, or a refusal naming ``name``."""
    try:
        a, b = (check_nonnegative_float(v, name, strictly=True) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: the Gamma priors' shapes and rates must be positive finite "
                         f"numbers (shape, rate), got {value!r}.") from None
    return a, b


def bayesian_linear_regression(X: Tensor, y: Tensor, *, alpha_prior: tuple[float, float] = (
        1e-6, 1e-6), noise_prior: tuple[float, float] = (1e-6, 1e-6), max_iter: int = 200,
        tol: float = 1e-10) -> BayesianLinearRegressionFit:
    """CAVI for Bayesian linear regression with unknown weight and noise precisions.

    X: (N, D); y: (N,). alpha_prior = (a₀, b₀), noise_prior = (c₀, d₀). Updates, in turn:

        S = (E[τ] XᵀX + E[α] I)⁻¹,  m = E[τ] S Xᵀy                 (Bishop 10.99–10.101)
        a = a₀ + D/2,  b = b₀ + ½ (mᵀm + tr S)                      (Bishop 10.94–10.95)
        c = c₀ + N/2,  d = d₀ + ½ (‖y − X m‖² + tr(XᵀX S))
    """
    X = check_data_matrix(X, name="X")
    y = as_tensor(y, name="y", dtype=X.dtype, device=X.device)
    if y.shape != X.shape[:1]:
        raise ValueError(f"expected X (N, D) and y (N,); got {tuple(X.shape)} and "
                         f"{tuple(y.shape)}.")
    max_iter = check_positive_int(max_iter, "max_iter")
    tol = check_nonnegative_float(tol, "tol")
    n, d = X.shape
    a0, b0 = _gamma_prior(alpha_prior, "alpha_prior")
    c0, d0 = _gamma_prior(noise_prior, "noise_prior")
    xtx, xty = X.T @ X, X.T @ y
    eye = torch.eye(d, dtype=X.dtype, device=X.device)
    a = torch.tensor(a0 + d / 2, dtype=X.dtype)
    c = torch.tensor(c0 + n / 2, dtype=X.dtype)
    b, dd = a.clone(), c.clone()  # start at E α = E τ = 1
    history = []
    converged = False
    prev = -math.inf
    m = torch.zeros(d, dtype=X.dtype)
    S = eye
    for _ in range(int(max_iter)):
        e_alpha, e_tau = a / b, c / dd
        L, info = torch.linalg.cholesky_ex(e_tau * xtx + e_alpha * eye)
        if bool(info.any()):
            raise ValueError("the posterior precision E[τ] XᵀX + E[α] I is not positive definite "
                             "in floating point: X and y are too large or too small to compute "
                             "with; rescale (standardise) them first.")
        S = torch.cholesky_inverse(L)
        m = e_tau * (S @ xty)
        ww = m @ m + S.trace()  # E[wᵀw]
        resid = (y - X @ m).square().sum() + (xtx * S).sum()  # E‖y − Xw‖²
        b = b0 + 0.5 * ww
        dd = d0 + 0.5 * resid
        e_alpha, e_tau = a / b, c / dd
        e_log_alpha, e_log_tau = torch.digamma(a) - torch.log(b), torch.digamma(c) - torch.log(dd)
        elbo = (0.5 * n * (e_log_tau - math.log(2 * math.pi)) - 0.5 * e_tau * resid
                + 0.5 * d * (e_log_alpha - math.log(2 * math.pi)) - 0.5 * e_alpha * ww
                + _expected_log_gamma_prior(a0, b0, e_log_alpha, e_alpha)
                + _expected_log_gamma_prior(c0, d0, e_log_tau, e_tau)
                + 0.5 * d * (1 + math.log(2 * math.pi)) - torch.log(L.diagonal()).sum()  # H[q(w)]
                + _gamma_entropy(a, b) + _gamma_entropy(c, dd))
        if not bool(torch.isfinite(elbo)):  # legal but extreme data (1e150-scaled X or y)
            raise ValueError(f"the ELBO became {float(elbo)}: X and y are too large or too small "
                             "to compute with; rescale (standardise) them first.")
        history.append(elbo)
        if float(elbo) - prev < tol:
            converged = True
            break
        prev = float(elbo)
    return BayesianLinearRegressionFit(m, S, a, b, c, dd, torch.stack(history), converged)
