"""Learning InfoMax ICA: whitening and the natural (relative) gradient (Eqs. 5.27–5.28, 9.5).

The loss (the book's relative entropy up to the data entropy, Eq. 5.25, for the linear model
Eq. 5.27 — equivalently the negative log-likelihood of the generative model, Eq. 9.5) is::

    L(W) = −⟨Σ_k log ψ′_k(w_kᵀ y)⟩ − log |det W|.

**Euclidean gradient** (Eq. 5.28 with the corrected transposes, errata E-19/E-20): with
``x = W y`` and ``φ_k = (log ψ′_k)′`` (``φ = 1 − 2σ`` for the logistic ψ)::

    dL/dW = −⟨φ(x) yᵀ⟩ − W⁻ᵀ.

**Natural (relative) gradient** (Amari, Cichocki & Yang 1996; Cardoso & Laheld 1996). Perturb
W multiplicatively, ``W → (I + E) W``. To first order ``L((I+E)W) − L(W) = tr[(dL/dW)ᵀ E W]
= ⟨dL/dW · Wᵀ, E⟩_F``, so the steepest descent direction in E (Frobenius norm, the metric that
is invariant to the current W) is ``E = −η (dL/dW) Wᵀ``, i.e. ``ΔW = E W = −η (dL/dW) WᵀW``::

    ΔW = −η (−⟨φ(x) yᵀ⟩ − W⁻ᵀ) WᵀW = η (I + ⟨φ(x) xᵀ⟩) W,

using ``yᵀWᵀ = xᵀ``. No matrix inverse is needed, the update is equivariant (its effect on the
sources x does not depend on the mixing) and ``G = I + ⟨φ(x)xᵀ⟩`` vanishes at a stationary point
of L. For the logistic ψ this is ``ΔW ∝ (I + (1 − 2σ(x)) xᵀ) W``; for the extended-InfoMax
densities (:class:`~genmodels.models.ica.SwitchingLatent`) it is Lee et al.'s
``(I − K tanh(x)xᵀ − xxᵀ) W``, with the switching signs re-estimated as
``k_i = sign(E[sech² x_i] E[x_i²] − E[tanh(x_i) x_i])`` (Lee, Girolami & Sejnowski 1999, Eq. 3.9).

**Optimiser.** ``batch_size=None``: full-batch natural-gradient ascent of the log-likelihood
with a backtracking step (halve η until L decreases, grow it by 1.25 after a success), so the
log-likelihood never decreases (while the extended signs are unchanged). ``batch_size=b``:
Bell & Sejnowski's minibatch (stochastic) updates on shuffled blocks, η multiplied by 0.95 per
epoch and halved (with the epoch undone) whenever the full-data loss rises or blows up.
Both stop when ``max |G| < tol``. Everything is vectorised over samples.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import torch
from torch import Tensor

from genmodels.exceptions import ConvergenceWarning
from genmodels.linalg import eps
from genmodels.models.ica import ICAModel


class Whitening(NamedTuple):
    """PCA whitening ``z = V (y − mean)`` with ``Cov[z] = I``.

    mean: (D,) data mean.  matrix: V (K, D) = Λ^{-1/2} Eᵀ (the top K eigenpairs of the
    covariance, largest first).  dewhitening: (D, K) = E Λ^{1/2}, so that
    ``y ≈ mean + z @ dewhitening.T``.  variances: (K,) the eigenvalues Λ.
    """

    mean: Tensor
    matrix: Tensor
    dewhitening: Tensor
    variances: Tensor


def whiten(y: Tensor, n_components: int | None = None, *, center: bool = True) -> Whitening:
    """PCA whitening of y (N, D) onto K ≤ D components (covariance with the 1/N convention).

    Raises ``ValueError`` if the covariance has fewer than K eigenvalues above
    ``max(N, D) · eps · λ_max`` (the size of the rounding error of a covariance accumulated
    over N samples): the data are rank deficient in the kept subspace.
    """
    N, D = y.shape
    K = D if n_components is None else n_components
    if not 1 <= K <= D:
        raise ValueError(f"n_components must be in [1, {D}], got {K}.")
    mean = y.mean(0) if center else y.new_zeros(D)
    yc = y - mean
    cov = (yc.mT @ yc) / N
    lam, E = torch.linalg.eigh(0.5 * (cov + cov.mT))
    lam, E = lam.flip(-1)[:K], E.flip(-1)[:, :K]
    floor = max(N, D) * eps(y.dtype) * float(lam[0].clamp_min(0))
    if float(lam[-1]) <= floor:
        rank = int((lam > floor).sum())
        raise ValueError(
            f"X has numerical rank {rank} < n_components = {K} (constant or linearly dependent "
            "features); reduce n_components or remove the redundant features."
        )
    V = E.mT / lam.sqrt()[:, None]
    return Whitening(mean, V, E * lam.sqrt(), lam)


class InfomaxResult(NamedTuple):
    """Outcome of :func:`fit_infomax`.

    n_iter: iterations (full batch) or epochs (minibatch) run.
    converged: whether ``max |I + ⟨φ(x)xᵀ⟩| < tol`` was reached.
    log_likelihood: mean log-likelihood ⟨log p̂(y)⟩ after each iteration (first entry: start).
    signs: (K,) the extended-InfoMax signs at the end (+1 super-, −1 sub-Gaussian), or None.
    """

    n_iter: int
    converged: bool
    log_likelihood: list[float]
    signs: Tensor | None


def extended_signs(x: Tensor) -> Tensor:
    """k_i = sign(E[sech² x_i]E[x_i²] − E[tanh(x_i) x_i]) (Lee et al. 1999): +1 super-Gaussian,
    −1 sub-Gaussian. x: (N, K) → (K,)."""
    t = torch.tanh(x)
    crit = (1.0 - t * t).mean(0) * (x * x).mean(0) - (t * x).mean(0)
    return torch.where(crit >= 0, torch.ones_like(crit), -torch.ones_like(crit))


@torch.no_grad()
def fit_infomax(
    model: ICAModel,
    y: Tensor,
    *,
    max_iter: int = 200,
    tol: float = 1e-4,
    learning_rate: float = 1.0,
    batch_size: int | None = None,
    extended: bool = False,
    generator: torch.Generator | None = None,
) -> InfomaxResult:
    """Fit ``model.unmixing`` to y (N, K) by natural-gradient InfoMax (see the module docstring).

    The model's current unmixing is the starting point (whitened data and W = I or a random
    rotation are the usual start). ``extended=True`` needs ``model.latent_name == "switching"``.
    Warns ``ConvergenceWarning`` if ``tol`` is not met within ``max_iter``.
    """
    if extended and model.latent_name != "switching":
        raise ValueError("extended InfoMax needs an ICAModel with latent='switching'.")
    W = model.unmixing

    def update_signs() -> None:
        if extended:
            model.signs.copy_(extended_signs(model.to_latent(y)))

    update_signs()
    loss = float(model.loss(y))
    history = [-loss]
    eta = float(learning_rate)
    converged = False
    n_iter = 0
    N = y.shape[0]
    for it in range(1, max_iter + 1):
        n_iter = it
        G = model.relative_gradient(y)
        if float(G.abs().max()) < tol:
            converged = True
            n_iter = it - 1
            break
        if batch_size is None:
            W0 = W.detach().clone()
            accepted = False
            for _ in range(60):  # backtracking: at most 60 halvings (η·2⁻⁶⁰ is below rounding)
                W.copy_(W0 + eta * (G @ W0))  # ΔW = η (I + ⟨φ(x)xᵀ⟩) W
                new = float(model.loss(y))
                if new == new and new <= loss:  # finite (not NaN) and not worse
                    accepted = True
                    eta *= 1.25
                    loss = new
                    break
                eta *= 0.5
            if not accepted:  # no descent step exists at rounding precision: a stationary point
                W.copy_(W0)
                converged = True
                history.append(-loss)
                break
        else:
            W0 = W.detach().clone()
            perm = torch.randperm(N, generator=generator, device=y.device)
            for start in range(0, N, batch_size):
                yb = y[perm[start:start + batch_size]]
                W.add_(eta * (model.relative_gradient(yb) @ W))  # minibatch natural gradient
            new = float(model.loss(y))
            if not (new == new and new <= loss + 1e-3 * abs(loss)) or not bool(torch.isfinite(W).all()):
                W.copy_(W0)  # the epoch made things worse (or blew up): undo it, anneal harder
                eta *= 0.5
            else:
                loss = new
                eta *= 0.95
        update_signs()
        if extended:
            loss = float(model.loss(y))
        history.append(-loss)
    if not converged:
        warnings.warn(
            f"InfoMax did not converge in {max_iter} iterations (max |I + <phi(x) x^T>| = "
            f"{float(model.relative_gradient(y).abs().max()):.2e} > tol = {tol:g}); increase "
            "max_iter or tol.",
            ConvergenceWarning,
            stacklevel=2,
        )
    return InfomaxResult(n_iter, converged, history, model.signs.clone() if extended else None)
