"""Iteratively reweighted least squares (IRLS) for generalised linear models (book §5.1.2).

Newton–Raphson on the conditional cross entropy of an exponential-family GLM (Eq. 5.7 applied to
Eq. 5.12) is a sequence of weighted least-squares problems (Eq. 5.14): with the current linear
predictor η, mean μ = g⁻¹(η), prior weights a_n and variance function V,

    W_n = a_n / (V(μ_n) g′(μ_n)²)                 working weights (Fisher information per datum)
    z_n = η_n − offset_n + (y_n − μ_n) g′(μ_n)     working response
    d⁽ⁱ⁺¹⁾ = (XᵀWX + λP)⁻¹ XᵀWz                    Eq. 5.14 (+ the ridge prior of Eq. 5.6)

Under the canonical link W_n = a_n A″(η_n) and this *is* Newton's method (CATALOGUE errata
E-14: the weights are the variance function, not the standard deviation); under other links it
is Fisher scoring (the expected Hessian), whose fixed point is the same maximum-likelihood
estimate. The code takes the step in increment form, ``Δ = (XᵀWX + λP)⁻¹(XᵀW(y − μ)g′ − λPd)``
(the first line of Eq. 5.14), so rounding in the solve shrinks with the step instead of
limiting the accuracy of d.

Each step is one weighted Gram matrix XᵀWX (one matrix product over the N rows), one XᵀWr
(a matrix–vector product) and a Cholesky solve of a D × D system, Jacobi-equilibrated so that
badly scaled columns do not lose precision. When the penalised deviance increases the step is
halved (up to ``max_halvings`` times). Rank-deficient designs raise ``ValueError`` naming the
columns; (quasi-)complete separation — fitted means driven to the boundary of the mean space
(probabilities 0 or 1, Poisson means 0 for zero counts) while the coefficients diverge — is
reported by ``SeparationWarning`` and ``converged=False`` rather than as a converged fit.

``multinomial_newton`` is the same Newton iteration for softmax (multinomial) regression
(CATALOGUE E6), whose Hessian couples the classes.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch
from torch import Tensor

from genmodels._threads import gemm_work, last_dim, numpy_blas_threads, work_sized
from genmodels.exceptions import ConvergenceWarning


class SeparationWarning(ConvergenceWarning):
    """The data are (quasi-)completely separated: some fitted means reached the boundary of the
    mean space (a probability 0 or 1, a Poisson mean 0) and the maximum-likelihood coefficients
    are infinite. Add an L2 penalty (``alpha``/``C``), drop the separating features, or collect
    more data; the reported coefficients are not estimates."""


class _Link(Protocol):
    def link(self, mu: Tensor) -> Tensor: ...
    def inverse(self, eta: Tensor) -> Tensor: ...
    def deriv(self, mu: Tensor) -> Tensor: ...
    def deriv2(self, mu: Tensor) -> Tensor: ...


class _Family(Protocol):
    name: str

    def variance(self, mu: Tensor) -> Tensor: ...
    def variance_deriv(self, mu: Tensor) -> Tensor: ...
    def deviance(self, y: Tensor, mu: Tensor, prior_weights: Tensor) -> Tensor: ...
    def valid_mean(self, mu: Tensor) -> bool: ...
    def starting_mean(self, y: Tensor) -> Tensor: ...
    def at_boundary(self, y: Tensor, mu: Tensor) -> Tensor: ...
    def separation_signs(self, y: Tensor) -> Tensor | None: ...


@dataclass(frozen=True)
class IRLSResult:
    """A fitted GLM by IRLS.

    params: (D,) coefficients d.
    eta: (N,) linear predictor Xd + offset at ``params``; mu: (N,) fitted means g⁻¹(η).
    working_weights: (N,) W_n = a_n / (V(μ_n) g′(μ_n)²) at ``params``: XᵀWX is the Fisher
        information of d for φ = 1.
    deviance: Σ a_n d(y_n, μ_n); penalized_deviance adds λ dᵀPd.
    n_iter: IRLS steps taken. converged: the Newton decrement met ``tol``.
    separated: (quasi-)complete separation was detected (see ``SeparationWarning``).
    history: penalised deviance after each step.
    """

    params: Tensor
    eta: Tensor
    mu: Tensor
    working_weights: Tensor
    deviance: float
    penalized_deviance: float
    n_iter: int
    converged: bool
    separated: bool
    history: list[float] = field(default_factory=list)


#: Rows per block of the CPU Gram product: 2¹⁶ rows × D columns of float64 stay in the last-level
#: cache for the D ≤ 100 of typical GLMs, so each block is read from memory once.
GRAM_BLOCK_ROWS = 65536


def weighted_gram(X: Tensor, w: Tensor) -> Tensor:
    """XᵀWX = Σ_n w_n x_n x_nᵀ = (√w ∘ X)ᵀ(√w ∘ X). X: (N, D), w: (N,) ≥ 0 → (D, D).

    On the CPU the product is accumulated over row blocks through NumPy, whose ``Zᵀ @ Z``
    recognises the symmetric product and calls BLAS ``syrk`` (half the flops of a general
    matrix product; torch has no syrk) — measured 1.5–2.5× faster than one torch matmul at
    N = 10⁶, D = 51 (benchmarks/bench_glm.py). Elsewhere (GPU, autograd) one torch matmul.
    """
    sw = w.sqrt()
    if X.device.type != "cpu" or X.requires_grad or w.requires_grad:
        Z = X * sw[:, None]
        return Z.mT @ Z
    G = np.zeros((X.shape[1], X.shape[1]), dtype=np.dtype(str(X.dtype).removeprefix("torch.")))
    with numpy_blas_threads(gemm_work(X, X.shape[1]) / 2):  # NumPy's BLAS: the policy's count
        for start in range(0, X.shape[0], GRAM_BLOCK_ROWS):
            block = (X[start: start + GRAM_BLOCK_ROWS] * sw[start: start + GRAM_BLOCK_ROWS, None])
            Zb = block.numpy()
            G += Zb.T @ Zb
    return torch.from_numpy(G)


def equilibrated_cholesky(G: Tensor) -> tuple[Tensor | None, Tensor]:
    """Cholesky factor of ``S G S`` with ``S = diag(G)^{-1/2}`` (Jacobi equilibration).

    Returns ``(L or None if G is not numerically positive definite, s)`` where ``s`` is the
    diagonal of S; then ``G⁻¹ = S (L Lᵀ)⁻¹ S``.
    """
    tiny = torch.finfo(G.dtype).tiny
    s = G.diagonal().clamp_min(tiny).rsqrt()
    L, info = torch.linalg.cholesky_ex(G * s[:, None] * s[None, :])
    return (None if int(info) > 0 else L), s


def _equilibrated_solve(L: Tensor, s: Tensor, r: Tensor) -> Tensor:
    return torch.cholesky_solve((r * s)[:, None], L)[:, 0] * s


#: Smallest admissible pivot² of the equilibrated XᵀWX Cholesky factor: 1 − R² of a column on
#: the columns before it. Below 1e-12 the column is (numerically) a linear combination of them
#: (exact collinearity leaves ~1e-15 after rounding in float64).
RANK_TOLERANCE = 1e-12


def check_full_rank(G: Tensor, names: list[str] | None = None) -> None:
    """Raise ``ValueError`` if the Gram matrix G = XᵀWX (W > 0) is (numerically) singular,
    naming the columns that are linear combinations of the columns before them."""
    L, _ = equilibrated_cholesky(G)
    d = G.shape[0]
    if L is not None:
        piv = L.diagonal().square()
        bad = [int(j) for j in torch.nonzero(piv < RANK_TOLERANCE).flatten()]
        if not bad:
            return
    else:
        # Find the dependent columns by growing the leading block until it fails.
        bad = []
        keep: list[int] = []
        for j in range(d):
            idx = [*keep, j]
            Lj, _ = equilibrated_cholesky(G[idx][:, idx])
            if Lj is None or float(Lj[-1, -1]) ** 2 < RANK_TOLERANCE:
                bad.append(j)
            else:
                keep.append(j)
    label = [names[j] if names else f"column {j}" for j in bad]
    raise ValueError(
        f"the design matrix is rank deficient: {', '.join(label)} "
        f"{'is' if len(bad) == 1 else 'are'} (numerically) a linear combination of the columns "
        "before it (collinear or constant features, or fewer samples than features). Drop "
        "those columns, or add an L2 penalty (alpha > 0) to regularise."
    )


def has_recession_direction(X: Tensor, signs: Tensor, *, tol: float = 1e-7) -> bool:
    """Whether the GLM likelihood has no finite maximiser because of (quasi-)complete
    separation: is there a direction b ≠ 0 with s_n x_nᵀb ≥ 0 for every observation whose
    fitted mean may run to a boundary (s_n = ±1: a 0/1 outcome, a zero count) and x_nᵀb = 0 for
    the others (s_n = 0), with at least one strict inequality? Along such a b the
    log-likelihood increases for ever (Albert & Anderson 1984; the linear-programming test of
    Konis 2007).

    Solved as the linear programme max Σ s_n x_nᵀb over the box −1 ≤ b ≤ 1 with scipy's HiGHS
    (columns scaled to unit max-abs first); separation when the optimum exceeds ``tol``.
    X: (N, D); signs: (N,) in {−1, 0, +1}.
    """
    from scipy.optimize import linprog

    Xn = X.detach().cpu().double().numpy()
    Xn = Xn / np.maximum(np.abs(Xn).max(0), np.finfo(np.float64).tiny)
    sn = signs.detach().cpu().double().numpy()
    free = sn != 0
    A_ub = -(sn[free, None] * Xn[free])  # −s xᵀb ≤ 0
    c = -(sn[free, None] * Xn[free]).sum(0)
    A_eq = Xn[~free] if (~free).any() else None
    b_eq = np.zeros(int((~free).sum())) if A_eq is not None else None
    res = linprog(c, A_ub=A_ub, b_ub=np.zeros(A_ub.shape[0]), A_eq=A_eq, b_eq=b_eq,
                  bounds=[(-1.0, 1.0)] * Xn.shape[1], method="highs")
    return bool(res.status == 0 and -res.fun > tol)


def _gram_work(X: Tensor, *args: object, **kwargs: object) -> float:
    """One Newton step's weighted Gram matrix XᵀWX (Eq. 5.14): 2 N D² flops."""
    return gemm_work(X, last_dim(X))


def _multinomial_work(X: Tensor, Y: Tensor, *args: object, **kwargs: object) -> float:
    """The softmax Hessian's Gram matrix over rows (Qᵀp_n) ⊗ x_n: 2 N ((K − 1) D)² flops."""
    width = max(1, last_dim(Y) - 1) * last_dim(X)
    return gemm_work(X, width * width / max(1, last_dim(X)))


@work_sized(_gram_work)
def irls(
    X: Tensor,
    y: Tensor,
    family: _Family,
    link: _Link,
    *,
    prior_weights: Tensor | None = None,
    offset: Tensor | None = None,
    l2: float = 0.0,
    penalty_mask: Tensor | None = None,
    start: Tensor | None = None,
    max_iter: int = 100,
    tol: float = 1e-8,
    max_halvings: int = 30,
    hessian: str = "observed",
    column_names: list[str] | None = None,
    warn: bool = True,
) -> IRLSResult:
    """Fit a GLM by IRLS (Eq. 5.14) with step-halving, an optional ridge prior and separation
    detection.

    X: (N, D) design; y: (N,) response (proportions for binomial); prior_weights a: (N,) ≥ 0
    (variance/frequency weights × binomial trials); offset: (N,) added to the linear predictor.
    l2, penalty_mask: minimises ½ deviance + ½ λ Σ_j P_j d_j² (P: (D,) 0/1, default all 1) —
    the Gaussian prior of Eq. 5.4 with precision λ on the penalised coefficients (Eq. 5.6).
    start: (D,) initial coefficients; default: one weighted least-squares solve from the
    family's starting mean.
    hessian: "fisher" — the expected information XᵀWX (classical IRLS / Fisher scoring) — or
    "observed" — Newton's method with the observed information, whose weights are
    W_n [1 + (y_n − μ_n)(V′(μ_n)/V(μ_n) + g″(μ_n)/g′(μ_n))]; identical under a canonical link,
    quadratically convergent under others (falls back to Fisher in a step where the observed
    information is not positive definite; single observed weights may be negative). Both have
    the same fixed point; the returned ``working_weights`` are the Fisher weights (for
    standard errors).
    tol: stop when the Newton decrement ΔᵀHΔ/2 (the predicted decrease of the objective) is
    ≤ tol · (1 + |objective|); the final step is still taken, so the error in d is O(tol).
    """
    n, d = X.shape
    dtype = X.dtype
    a = torch.ones(n, dtype=dtype, device=X.device) if prior_weights is None else prior_weights
    off = torch.zeros(n, dtype=dtype, device=X.device) if offset is None else offset
    P = torch.ones(d, dtype=dtype, device=X.device) if penalty_mask is None else penalty_mask
    lam = float(l2)

    def objective(beta: Tensor, mu: Tensor) -> float:
        dev = float(family.deviance(y, mu, a))
        return dev + lam * float((P * beta.square()).sum())

    def working(mu: Tensor) -> tuple[Tensor, Tensor]:
        gp = link.deriv(mu)  # dη/dμ
        w = a / (family.variance(mu) * gp.square())  # W_n (errata E-14: the variance)
        return w, gp

    if hessian not in ("fisher", "observed"):
        raise ValueError(f"hessian must be 'fisher' or 'observed', got {hessian!r}.")

    def observed_weights(mu: Tensor, w: Tensor, gp: Tensor) -> Tensor | None:
        if hessian == "fisher":
            return None
        try:
            c = family.variance_deriv(mu) / family.variance(mu) + link.deriv2(mu) / gp
        except NotImplementedError:
            return None
        return w * (1.0 + (y - mu) * c)

    def penalised_gram(weights: Tensor) -> Tensor:
        G = weighted_gram(X, weights)
        return G + torch.diag(lam * P) if lam > 0 else G

    history: list[float] = []
    if start is None:
        mu = family.starting_mean(y)
        eta = link.link(mu)
        w, gp = working(mu)
        z = eta - off + (y - mu) * gp  # working response
        G = weighted_gram(X, w)
        if lam > 0:
            G = G + torch.diag(lam * P)
        check_full_rank(G, column_names)
        L, s = equilibrated_cholesky(G)
        assert L is not None
        beta = _equilibrated_solve(L, s, X.mT @ (w * z))  # Eq. 5.14, full solve
        eta = X @ beta + off
        mu = link.inverse(eta)
        if not family.valid_mean(mu):
            raise ValueError(
                f"the first IRLS step left the {family.name} mean space under this link; pass "
                "start params or use the canonical/log link."
            )
        n_iter = 1
        checked_rank = True
    else:
        beta = start.to(dtype).clone()
        eta = X @ beta + off
        mu = link.inverse(eta)
        if not family.valid_mean(mu):
            raise ValueError("start_params give fitted means outside the mean space.")
        n_iter = 0
        checked_rank = False
    obj = objective(beta, mu)
    history.append(obj)
    converged = False
    singular = False
    stalled = False
    while n_iter < max_iter:
        w, gp = working(mu)
        wo = observed_weights(mu, w, gp)  # Newton's Hessian where positive definite
        G = penalised_gram(w if wo is None else wo)
        if not checked_rank:
            check_full_rank(G if wo is None else penalised_gram(w), column_names)
            checked_rank = True
        score = X.mT @ (w * (y - mu) * gp) - lam * P * beta  # −½ ∂(penalised deviance)/∂d
        L, s = equilibrated_cholesky(G)
        if L is None and wo is not None:  # else Fisher's (one more Gram, rare)
            L, s = equilibrated_cholesky(penalised_gram(w))
        if L is None:
            singular = True  # weights underflowed: separation (checked below)
            break
        step = _equilibrated_solve(L, s, score)  # Eq. 5.14, first line
        decrement = float(step @ score)  # ΔᵀHΔ
        n_iter += 1
        t = 1.0
        for _ in range(max_halvings + 1):
            new_beta = beta + t * step
            new_eta = X @ new_beta + off
            new_mu = link.inverse(new_eta)
            if family.valid_mean(new_mu):
                new_obj = objective(new_beta, new_mu)
                # Accept any decrease, or an increase within rounding of the objective.
                if math.isfinite(new_obj) and new_obj <= obj + 1e-12 * (1.0 + abs(obj)):
                    break
            t *= 0.5
        else:
            stalled = True
            break
        beta, eta, mu, obj = new_beta, new_eta, new_mu, new_obj
        history.append(obj)
        if 0.5 * decrement <= tol * (1.0 + 0.5 * abs(obj)):
            converged = True
            break
    separated = False
    if lam == 0.0:
        boundary = family.at_boundary(y, mu) & (a > 0)
        if bool(boundary.any()) or singular:
            signs = family.separation_signs(y)
            separated = signs is not None and has_recession_direction(X[a > 0], signs[a > 0])
        if separated:
            converged = False
            if warn:
                warnings.warn(
                    f"{int(boundary.sum())} of {n} observations have fitted means at the "
                    f"boundary of the {family.name} mean space (fitted probability 0 or 1, or a "
                    "zero mean for a zero count): the data are (quasi-)completely separated and "
                    "the maximum-likelihood coefficients are infinite; the reported "
                    "coefficients are not estimates. Add an L2 penalty (alpha > 0 or finite C), "
                    "or drop the separating features.",
                    SeparationWarning,
                    stacklevel=3,
                )
    if singular and not separated:
        raise ValueError(
            "XᵀWX became singular during IRLS (working weights underflowed) without fitted "
            "means at the boundary; rescale the features or add an L2 penalty (alpha > 0)."
        )
    if not converged and not separated and warn:
        why = "step-halving could not decrease the deviance" if stalled else (
            f"max_iter={max_iter} reached")
        warnings.warn(
            f"IRLS did not converge ({why}; tol={tol:g}). Increase max_iter, scale the "
            "features, or add an L2 penalty.",
            ConvergenceWarning,
            stacklevel=3,
        )
    w, _ = working(mu)
    return IRLSResult(
        params=beta,
        eta=eta,
        mu=mu,
        working_weights=w,
        deviance=float(family.deviance(y, mu, a)),
        penalized_deviance=obj,
        n_iter=n_iter,
        converged=converged,
        separated=separated,
        history=history,
    )


# --------------------------------------------------------------------------------------------
# Softmax (multinomial) regression by Newton's method
# --------------------------------------------------------------------------------------------


def sum_to_zero_basis(k: int, *, dtype: torch.dtype = torch.float64,
                      device: torch.device | str | None = None) -> Tensor:
    """An orthonormal basis Q (K, K−1) of {v ∈ R^K : Σ v = 0} (Helmert contrasts, normalised).

    Softmax logits are invariant to adding a constant to every class, so the K class weight
    vectors are identified only up to a common shift; writing ``W = V Qᵀ`` with free V (D, K−1)
    fixes W1 = 0 and keeps ‖W‖_F = ‖V‖_F, so an isotropic L2 prior on W is one on V.
    """
    Q = torch.zeros(k, k - 1, dtype=dtype, device=device)
    for j in range(1, k):
        Q[:j, j - 1] = 1.0 / math.sqrt(j * (j + 1))
        Q[j, j - 1] = -j / math.sqrt(j * (j + 1))
    return Q


@dataclass(frozen=True)
class MultinomialResult:
    """Softmax regression p(k | x) = softmax(Wᵀx)_k fitted by Newton's method.

    params: (D, K) class weights W with W1 = 0 (sum-to-zero over classes); probs: (N, K).
    neg_log_likelihood: −Σ_n a_n log p(y_n | x_n) (the cross-entropy loss, S2:45-53).
    """

    params: Tensor
    probs: Tensor
    neg_log_likelihood: float
    objective: float
    n_iter: int
    converged: bool
    history: list[float] = field(default_factory=list)


@work_sized(_multinomial_work)
def multinomial_newton(
    X: Tensor,
    Y: Tensor,
    *,
    prior_weights: Tensor | None = None,
    l2: float = 0.0,
    penalty_mask: Tensor | None = None,
    max_iter: int = 100,
    tol: float = 1e-8,
    max_halvings: int = 30,
    warn: bool = True,
) -> MultinomialResult:
    """Softmax regression by Newton–Raphson (Eq. 5.7) on the cross entropy
    ``−Σ_n a_n Σ_k Y_nk log softmax(Wᵀx_n)_k + ½ λ Σ_j P_j ‖W_j‖²``.

    X: (N, D); Y: (N, K) one-hot (or class proportions); W = V Qᵀ with Q from
    ``sum_to_zero_basis``. The Hessian Σ_n a_n Qᵀ(diag p_n − p_n p_nᵀ)Q ⊗ x_n x_nᵀ is formed as
    K weighted Gram matrices (the diag p term) minus one Gram matrix of the rows
    (Qᵀp_n) ⊗ x_n — matrix products over N, no loop over data.
    """
    n, d = X.shape
    k = Y.shape[1]
    dtype = X.dtype
    a = torch.ones(n, dtype=dtype, device=X.device) if prior_weights is None else prior_weights
    P = torch.ones(d, dtype=dtype, device=X.device) if penalty_mask is None else penalty_mask
    lam = float(l2)
    Q = sum_to_zero_basis(k, dtype=dtype, device=X.device)  # (K, K−1)
    V = torch.zeros(d, k - 1, dtype=dtype, device=X.device)

    def nll(V: Tensor) -> tuple[float, Tensor]:
        logp = torch.log_softmax(X @ V @ Q.mT, dim=1)  # (N, K)
        return float(-(a[:, None] * Y * logp).sum()), logp

    def objective(V: Tensor, f: float) -> float:
        return f + 0.5 * lam * float((P[:, None] * V.square()).sum())

    f, logp = nll(V)
    obj = objective(V, f)
    history = [obj]
    converged = False
    n_iter = 0
    km = k - 1
    while n_iter < max_iter:
        p = logp.exp()  # (N, K)
        grad = X.mT @ (a[:, None] * (p - Y)) @ Q + lam * P[:, None] * V  # (D, K−1)
        # Hessian H[(i,a),(j,b)] = Σ_n a_n [Qᵀ(diag p − p pᵀ)Q]_ab x_ni x_nj, index (i, a) → i·km+a
        H = torch.zeros(d, km, d, km, dtype=dtype, device=X.device)
        for c in range(k):  # diag(p) term: one weighted Gram matrix per class
            Gc = weighted_gram(X, a * p[:, c])
            H += Gc[:, None, :, None] * (Q[c][:, None] * Q[c][None, :])[None, :, None, :]
        U = p @ Q  # (N, K−1): Qᵀp_n
        Z = (X[:, :, None] * U[:, None, :] * a.sqrt()[:, None, None]).reshape(n, d * km)
        Hm = H.reshape(d * km, d * km) - Z.mT @ Z
        Hm = Hm + torch.diag((lam * P[:, None]).expand(d, km).reshape(-1))
        g = grad.reshape(-1)
        L, s = equilibrated_cholesky(Hm)
        if L is None:
            check_full_rank(Hm)
            raise ValueError("the multinomial Hessian is singular: the classes may be "
                             "separable; use an L2 penalty (finite C).")
        step = -_equilibrated_solve(L, s, g).reshape(d, km)
        decrement = float(-(step.reshape(-1) @ g))
        n_iter += 1
        t = 1.0
        for _ in range(max_halvings + 1):
            Vn = V + t * step
            fn, logpn = nll(Vn)
            on = objective(Vn, fn)
            if math.isfinite(on) and on <= obj + 1e-12 * (1.0 + abs(obj)):
                break
            t *= 0.5
        else:
            break
        V, f, logp, obj = Vn, fn, logpn, on
        history.append(obj)
        if 0.5 * decrement <= tol * (1.0 + abs(obj)):
            converged = True
            break
    if not converged and warn:
        warnings.warn(
            f"multinomial Newton did not converge in {n_iter} iterations (tol={tol:g}); the "
            "classes may be separable: use an L2 penalty (finite C) or scale the features.",
            ConvergenceWarning,
            stacklevel=3,
        )
    return MultinomialResult(
        params=V @ Q.mT,
        probs=logp.exp(),
        neg_log_likelihood=f,
        objective=obj,
        n_iter=n_iter,
        converged=converged,
        history=history,
    )


# --------------------------------------------------------------------------------------------
# Gamma regression on the shape with known scale (book "IRLS for the Gamma distribution")
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GammaShapeResult:
    """x_n ~ Gamma(shape k_n = exp(θᵀy_n), scale θ_s known). params: (D,) θ; shape: (N,) k_n;
    log_likelihood: Σ_n log p(x_n | y_n)."""

    params: Tensor
    shape: Tensor
    log_likelihood: float
    n_iter: int
    converged: bool


@work_sized(_gram_work)
def gamma_shape_regression(
    X: Tensor,
    x: Tensor,
    scale: float,
    *,
    method: str = "newton",
    max_iter: int = 100,
    tol: float = 1e-10,
) -> GammaShapeResult:
    """The book's Gamma GLM with unknown *shape* k_n = exp(θᵀy_n) and known scale (B:1533-1563).

    Natural parameter η_k = k − 1 with statistic log x; μ_n = ψ(k_n) + log(scale) = E[log x_n],
    σ_n² = ψ′(k_n) = Var[log x_n]. Gradient Σ_n (log x_n − μ_n) k_n y_n and Hessian
    Σ_n y_n Λ_nn y_nᵀ with Λ_nn = −k_n²σ_n² + k_n(log x_n − μ_n) (errata E-16). ``method``:
    "newton" uses that Hessian, "fisher" its expectation −Σ k_n²σ_n² y_n y_nᵀ (Fisher scoring
    — the log link is not canonical for the shape, so the two differ; same fixed point).

    X: (N, D) inputs (the book's y_n as rows); x: (N,) positive outputs.
    """
    if method not in ("newton", "fisher"):
        raise ValueError(f"method must be 'newton' or 'fisher', got {method!r}.")
    if bool((x <= 0).any()):
        raise ValueError("Gamma outputs must be strictly positive.")
    logx = torch.log(x)
    log_scale = math.log(scale)

    def loglik(theta: Tensor) -> float:
        k = torch.exp(X @ theta)
        return float(((k - 1) * logx - x / scale - torch.lgamma(k) - k * log_scale).sum())

    theta = torch.zeros(X.shape[1], dtype=X.dtype, device=X.device)
    ll = loglik(theta)
    converged = False
    n_iter = 0
    for n_iter in range(1, max_iter + 1):  # noqa: B007 (n_iter is reported)
        k = torch.exp(X @ theta)
        mu = torch.special.digamma(k) + log_scale  # dA/dk
        var = torch.special.polygamma(1, k)  # d²A/dk²
        r = logx - mu
        grad = X.mT @ (r * k)
        lam = -k.square() * var  # Fisher-scoring Λ_nn
        if method == "newton":
            lam = lam + k * r
        H = (X * lam[:, None]).mT @ X  # Σ y Λ yᵀ (negative definite near the optimum)
        L, s = equilibrated_cholesky(-H)
        if L is None:  # Newton Hessian indefinite far from the optimum: use Fisher scoring
            H = (X * (-k.square() * var)[:, None]).mT @ X
            L, s = equilibrated_cholesky(-H)
            if L is None:
                raise ValueError("the Gamma-shape Fisher information is singular: check X.")
        step = _equilibrated_solve(L, s, grad)
        t = 1.0
        for _ in range(31):
            new_ll = loglik(theta + t * step)
            if math.isfinite(new_ll) and new_ll >= ll - 1e-12 * (1.0 + abs(ll)):
                break
            t *= 0.5
        theta = theta + t * step
        dec = float(step @ grad)
        ll = new_ll
        if 0.5 * dec <= tol * (1.0 + abs(ll)):
            converged = True
            break
    return GammaShapeResult(params=theta, shape=torch.exp(X @ theta), log_likelihood=ll,
                            n_iter=n_iter, converged=converged)


__all__ = [
    "GammaShapeResult",
    "IRLSResult",
    "MultinomialResult",
    "SeparationWarning",
    "check_full_rank",
    "equilibrated_cholesky",
    "gamma_shape_regression",
    "has_recession_direction",
    "irls",
    "multinomial_newton",
    "sum_to_zero_basis",
    "weighted_gram",
]
