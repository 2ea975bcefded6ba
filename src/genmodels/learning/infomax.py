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
Both stop when ``max |G| < tol``. ``solver="newton"`` (full batch) preconditions the same
relative gradient with a block-diagonal Hessian approximation (:func:`relative_newton_direction`)
and converges in a handful of iterations. Everything is vectorised over samples.
"""

from __future__ import annotations

import functools
import math
import warnings
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from genmodels._threads import numpy_blas_threads
from genmodels.exceptions import ConvergenceWarning
from genmodels.inference._hmm_compiled import scratch
from genmodels.linalg import eps
from genmodels.models.ica import (
    AnyLatent,
    ICAModel,
    LatentTerms,
    LogisticLatent,
    SwitchingLatent,
    latent_terms,
)


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
    D = y.shape[1]
    K = D if n_components is None else n_components
    if not 1 <= K <= D:
        raise ValueError(f"n_components must be in [1, {D}], got {K}.")
    mean = y.mean(0) if center else y.new_zeros(D)
    return whiten_centred(y - mean, mean, K)


def whiten_centred(yc: Tensor, mean: Tensor, n_components: int) -> Whitening:
    """:func:`whiten` of data already centred, yc = y − mean (N, D), onto K components (for a
    caller that keeps yc: one (N, D) array fewer)."""
    N, D = yc.shape
    K = n_components
    cov = (yc.mT @ yc) / N
    if cov.device.type == "cpu":  # the (D, D) arithmetic in NumPy (a dozen torch operations
        return _whiten_from_cov_numpy(cov, mean, N, K)  # cost ~100 us inside a fit)
    lam, E = _small_eigh(0.5 * (cov + cov.mT))
    lam, E = lam.flip(-1)[:K], E.flip(-1)[:, :K]
    floor = max(N, D) * eps(yc.dtype) * float(lam[0].clamp_min(0))
    if float(lam[-1]) <= floor:
        _rank_error(int((lam > floor).sum()), K)
    V = E.mT / lam.sqrt()[:, None]
    return Whitening(mean, V, E * lam.sqrt(), lam)


def _whiten_from_cov_numpy(cov: Tensor, mean: Tensor, N: int, K: int) -> Whitening:
    """The rest of :func:`whiten_centred` from the covariance (D, D) on the CPU, in NumPy."""
    D = cov.shape[0]
    c = cov.detach().numpy()
    lam, E = np.linalg.eigh(0.5 * (c + c.T))
    lam, E = lam[::-1][:K].copy(), E[:, ::-1][:, :K]
    floor = max(N, D) * float(np.finfo(c.dtype).eps) * max(float(lam[0]), 0.0)
    if float(lam[-1]) <= floor:
        _rank_error(int((lam > floor).sum()), K)
    root = np.sqrt(lam)
    return Whitening(mean, torch.from_numpy(np.ascontiguousarray(E.T / root[:, None])),
                     torch.from_numpy(E * root), torch.from_numpy(lam))


def _rank_error(rank: int, K: int) -> None:
    raise ValueError(
        f"X has numerical rank {rank} < n_components = {K} (constant or linearly dependent "
        "features); reduce n_components or remove the redundant features."
    )


def _small_eigh(a: Tensor) -> tuple[Tensor, Tensor]:
    """``torch.linalg.eigh`` of a small symmetric matrix; by NumPy's LAPACK on the CPU (torch's
    call costs ~50 us on a 3 x 3 matrix inside a fit, NumPy's ~6 us)."""
    if a.device.type != "cpu":
        return torch.linalg.eigh(a)
    lam, E = np.linalg.eigh(a.numpy())
    return torch.from_numpy(lam), torch.from_numpy(E)


#: The relative Newton solver first fits every (N // this)-th sample when N ≥ 4 × this ...
WARM_START_SAMPLES = 4096
#: ... to this tolerance on max |G| (the subsample's own optimum is ~1/√4096 ≈ 0.016 away).
WARM_START_TOL = 1e-3


class InfomaxResult(NamedTuple):
    """Outcome of :func:`fit_infomax`.

    n_iter: iterations (full batch) or epochs (minibatch) run; a relative-Newton warm start on
        a subsample (N ≥ 4 · ``WARM_START_SAMPLES``) counts as one.
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


# The kernels below work on latents laid out as xT = W yᵀ, shape (K, N): with few components and
# many samples, (K, K) @ (K, N) products and reductions along the contiguous sample axis are
# several times faster than the row layout (N, K) — the fit's inner loop uses only these.


def _relative_gradient_T(latent: AnyLatent, xT: Tensor) -> Tensor:
    """G = I + ⟨φ(x) xᵀ⟩ (K, K) from xT (K, N)."""
    return _gradient_from_score(latent.score(xT), xT)


def _gradient_from_score(phi: Tensor, xT: Tensor) -> Tensor:
    """G = I + ⟨φ(x) xᵀ⟩ (K, K) from φ(x) and x, both (K, N)."""
    N = xT.shape[1]
    G = torch.mm(phi, xT.mT).div_(N)
    G.diagonal().add_(1.0)
    return G


def _evaluate_T(latent: AnyLatent, xT: Tensor, W: Tensor, *, derivative: bool,
                out: tuple[Tensor, Tensor, Tensor] | None = None) -> tuple[float, LatentTerms]:
    """The loss L (as ``_loss_T``) with the latent's φ (and φ′) at the same x, from one pass:
    an accepted step's evaluation serves the next iteration's gradient and Newton direction."""
    terms = latent_terms(latent, xT, derivative=derivative, out=out)
    loss = float(-terms.log_prob_sum.sum() / xT.shape[1] - torch.linalg.slogdet(W).logabsdet)
    return loss, terms


def _loss_T(latent: AnyLatent, xT: Tensor, W: Tensor) -> float:
    """L = −⟨Σ_k log ψ′_k(x_k)⟩ − log|det W| (Eq. 9.5, negated and averaged)."""
    return float(-latent.log_prob(xT).sum() / xT.shape[1] - torch.linalg.slogdet(W).logabsdet)


def _newton_direction_T(latent: AnyLatent, xT: Tensor, G: Tensor,
                        min_eigenvalue: float, score_derivative: Tensor | None = None
                        ) -> Tensor:
    m = _newton_moments_T(latent, xT, score_derivative)
    E = _newton_direction(_as_numpy(G), m[0], m[1], m[2], min_eigenvalue)
    return torch.from_numpy(E).to(G)


def _newton_moments_T(latent: AnyLatent, xT: Tensor, score_derivative: Tensor | None = None
                      ) -> np.ndarray:
    """(3, K) float64: ⟨φ′(x_i)⟩, ⟨x_i²⟩, ⟨φ′(x_i) x_i²⟩ from xT (K, N)."""
    phi_prime = latent.score_derivative(xT) if score_derivative is None else score_derivative
    x2 = xT * xT
    return _as_numpy(torch.stack([phi_prime.mean(1), x2.mean(1), (phi_prime * x2).mean(1)]))


def _as_numpy(t: Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float64).numpy()


def _newton_direction(G: np.ndarray, phi_prime: np.ndarray, x2: np.ndarray,
                      phi_prime_x2: np.ndarray, min_eigenvalue: float) -> np.ndarray:
    """E = −H̃⁻¹Γ (:func:`relative_newton_direction`) from G (K, K) and the moments
    ⟨φ′(x_i)⟩, ⟨x_i²⟩, ⟨φ′(x_i) x_i²⟩ (K,) each (ψ′ = −φ′). In NumPy, float64: (K, K)
    arithmetic, where torch's per-operation overhead was ~1/3 of a K = 3 fit."""
    gamma = -G  # Γ = ⟨ψ(x)xᵀ⟩ − I, the gradient of L in E
    a = (-phi_prime)[:, None] * x2[None, :]  # h_ij = ⟨ψ′(x_i)⟩⟨x_j²⟩
    b = a.T  # h_ji
    smallest = 0.5 * (a + b) - np.sqrt(0.25 * (a - b) ** 2 + 1.0)
    shift = np.maximum(min_eigenvalue - smallest, 0.0)
    a, b = a + shift, b + shift
    E = -(b * gamma - gamma.T) / (a * b - 1.0)  # [[a, 1], [1, b]] [E_ij, E_ji] = −[Γ_ij, Γ_ji]
    h_diag = np.maximum(1.0 - phi_prime_x2, min_eigenvalue)
    np.fill_diagonal(E, -np.diag(gamma) / h_diag)
    return E


def _latent_T(model: ICAModel) -> AnyLatent:
    """The model's latent density for the (K, N) layout (per-component signs as a column)."""
    if model.latent_name == "switching":
        return SwitchingLatent(model.signs[:, None])  # a view: sign updates stay visible
    return model.latent


@torch.no_grad()
def relative_newton_direction(model: ICAModel, y: Tensor, *, min_eigenvalue: float = 1e-2
                              ) -> Tensor:
    """Quasi-Newton step E (K, K) in relative coordinates, W → (I + E) W (Ablin, Cardoso &
    Gramfort 2018, "Faster ICA by preconditioning with Hessian approximations"). y: (N, D).

    With ψ = −φ, the relative gradient is ``Γ = ⟨ψ(x)xᵀ⟩ − I`` and the relative Hessian is
    ``H_ijkl = δ_il δ_jk + δ_ik ⟨ψ′(x_i) x_j x_l⟩``. Approximating ``⟨ψ′(x_i)x_j x_l⟩`` by
    ``δ_jl ⟨ψ′(x_i)⟩⟨x_j²⟩`` (exact when the sources are independent) makes H block diagonal:
    ``[[h_ij, 1], [1, h_ji]]`` for each pair i < j, with ``h_ij = ⟨ψ′(x_i)⟩⟨x_j²⟩``, and
    ``h_ii = 1 + ⟨ψ′(x_i)x_i²⟩`` on the diagonal. Each block is shifted so that its smallest
    eigenvalue is at least ``min_eigenvalue`` (so E is a descent direction), then
    ``E = −H̃⁻¹Γ`` is solved pair by pair in closed form — all pairs at once.
    """
    xT = model.to_latent(y).mT.contiguous()
    lat = _latent_T(model)
    return _newton_direction_T(lat, xT, _relative_gradient_T(lat, xT), min_eigenvalue)


class _TensorObjective:
    """The full-batch loss and its derivatives by tensor operations (any latent, dtype and
    device). Two slots of (x, φ, φ′) buffers, the current point's and a trial's, swapped when
    a step is accepted, and one temporary: the loop allocates no (K, N) array. (Fresh
    multi-megabyte temporaries cost page faults comparable to the arithmetic.)

    The (K, K) quantities (W, G, the direction) are NumPy float64 arrays, as the fit's loop
    keeps them; W is cast to the data's dtype and device for each evaluation."""

    def __init__(self, latent: AnyLatent, yT: Tensor, *, derivative: bool) -> None:
        self.latent, self.yT, self.derivative = latent, yT, derivative
        self.tmp = torch.empty_like(yT)
        self.slots = [(torch.empty_like(yT), torch.empty_like(yT), torch.empty_like(yT))
                      for _ in range(2)]
        self.cur = 0
        self.x = self.trial_x = yT
        self.terms: LatentTerms | None = None
        self.trial_terms: LatentTerms | None = None

    def evaluate(self, W: np.ndarray) -> float:
        """The loss L at W (a trial point, kept until :meth:`accept` or the next trial)."""
        x, score, deriv = self.slots[1 - self.cur]
        Wt = torch.from_numpy(W).to(self.yT)
        x = torch.mm(Wt, self.yT, out=x)
        loss, self.trial_terms = _evaluate_T(self.latent, x, Wt, derivative=self.derivative,
                                             out=(score, deriv, self.tmp))
        self.trial_x = x
        return loss

    def accept(self) -> None:
        """The last trial becomes the current point."""
        self.cur = 1 - self.cur
        self.x, self.terms = self.trial_x, self.trial_terms

    def refresh(self, W: np.ndarray) -> float:
        """The loss at the current point again (after the latent changed: extended signs)."""
        _, score, deriv = self.slots[self.cur]
        loss, self.terms = _evaluate_T(self.latent, self.x, torch.from_numpy(W).to(self.yT),
                                       derivative=self.derivative,
                                       out=(score, deriv, self.tmp))
        return loss

    def gradient(self) -> np.ndarray:
        """G = I + ⟨φ(x)xᵀ⟩ (K, K) at the current point."""
        assert self.terms is not None, "evaluate and accept a point first"
        return _as_numpy(_gradient_from_score(self.terms.score, self.x))

    def newton_direction(self, G: np.ndarray, min_eigenvalue: float) -> np.ndarray:
        assert self.terms is not None, "evaluate and accept a point first"
        m = _newton_moments_T(self.latent, self.x, self.terms.score_derivative)
        return _newton_direction(G, m[0], m[1], m[2], min_eigenvalue)


class _CompiledObjective:
    """The same for the logistic latent on CPU float64 data, by the fused kernel of
    ``_infomax_numba`` (one pass over y per evaluation; only (K, K) and (3, K) sums kept)."""

    def __init__(self, kernels: Any, yT: Tensor) -> None:
        self.kernel = kernels.logistic_pass
        self.loop: Any = getattr(kernels, "newton_loop", None)  # (None: the loop in Python)
        self.yT = yT
        self.yT_np = yT.detach().numpy()
        K, self.N = yT.shape
        # the trial's latents, in reused memory (only the sums are kept; a fresh (K, N) array
        # per fit costs its page faults, ~1 ms at 50,000 x 8 on a busy machine). A nested
        # fit (the warm start) may share it: its contents never outlive one evaluation.
        self.x = scratch("infomax_latents", (K, self.N), yT.dtype)
        self.x_np = self.x.numpy()
        self.slots = [(np.empty((K, K)), np.empty((3, K))) for _ in range(2)]
        self.cur = 0

    def evaluate(self, W: np.ndarray) -> float:
        phi_x, moments = self.slots[1 - self.cur]
        torch.mm(torch.from_numpy(W), self.yT, out=self.x)  # BLAS, under the thread policy
        total = self.kernel(self.x_np, 0, self.N, phi_x, moments)
        return float(total / self.N - np.linalg.slogdet(W)[1])

    def accept(self) -> None:
        self.cur = 1 - self.cur

    def gradient(self) -> np.ndarray:
        G = self.slots[self.cur][0] / self.N
        G.flat[:: G.shape[0] + 1] += 1.0
        return G

    def newton_direction(self, G: np.ndarray, min_eigenvalue: float) -> np.ndarray:
        m = self.slots[self.cur][1] / self.N
        return _newton_direction(G, m[0], m[1], m[2], min_eigenvalue)

    def newton_loop(self, W: np.ndarray, loss: float, *, tol: float, start: int,
                    max_iter: int, slack: float, history: list[float]
                    ) -> tuple[np.ndarray, float, int, bool]:
        """``fit_infomax``'s relative-Newton iterations start + 1 .. max_iter from the current
        point (W at ``loss``) in one compiled call (``_infomax_numba.newton_loop``); appends
        to history; → (W, loss, n_iter, converged). The current point is the last accepted."""
        phi_x, moments = self.slots[self.cur]
        out = np.empty(max_iter - start)
        K = W.shape[0]
        # its x = W y by NumPy's BLAS (OpenBLAS's pool, not torch's), at the policy's count:
        # OpenBLAS splits a product of more than 2¹⁸ multiply-adds across all its threads
        # by itself (at K = 8 from N ≈ 4,100), which on a busy machine waits for a paused one
        blas_work = math.inf if K * K * self.N > 1 << 18 else 0.0
        with numpy_blas_threads(blas_work):
            W, loss, n_iter, converged, n_hist = self.loop(
                self.yT_np, np.ascontiguousarray(W), self.x_np, loss, phi_x, moments, tol,
                start, max_iter, NEWTON_MIN_EIGENVALUE, slack, out)
        history.extend(out[:n_hist].tolist())
        return W, float(loss), int(n_iter), bool(converged)


#: The floor on the eigenvalues of the Hessian approximation's blocks in the solver (Ablin et
#: al.'s λ_min; ``relative_newton_direction``'s default is 1e-2). Far from the optimum the
#: pair blocks are indefinite (h_ij h_ji < 1), and a floor of 1e-2 makes the rotation part of
#: the step ~100× the gradient, which the line search then cuts back; near it the blocks are
#: well above either floor. Full passes per fit over the benchmark data and the tests'
#: sources (3 starts each; N = 5,000, K = 3 / 8): 1e-2: 9–13 / 14–17, 0.05: 7–9 / 9–11,
#: 0.1: 8–10 / 10–12, 0.2: 9–12 / 18–21.
NEWTON_MIN_EIGENVALUE = 0.05
#: A relative-Newton trial whose loss exceeds the current one by less than this many units of
#: rounding (relative to |L|) counts as not worse: the loss is a mean of N terms, rounded to a
#: few ulps, while near the optimum a Newton step changes it by ~|G|² — far below that — so
#: that comparing the rounded values alone would reject (or accept) the last accurate steps by
#: chance. (Not for the natural gradient: its step length grows after each success, and
#: accepting rises within rounding would let it overshoot at |G| ~ √rounding.)
LOSS_ROUNDING = 16.0


def _not_worse(new: float, loss: float, slack: float) -> bool:
    """Finite (not NaN) and not worse than ``loss`` beyond rounding (``LOSS_ROUNDING``)."""
    return new == new and new <= loss + slack * abs(loss)


@functools.cache
def _kernels() -> Any:
    """The compiled kernels (``_infomax_numba``), or None without Numba."""
    try:
        from genmodels.learning import _infomax_numba
    except ImportError:  # pragma: no cover - numba is a dependency; kept for odd installs
        return None
    return _infomax_numba


def _objective(latent: AnyLatent, yT: Tensor, *, derivative: bool
               ) -> _TensorObjective | _CompiledObjective:
    """The compiled objective where it applies (logistic latent, CPU, float64), else tensors."""
    if isinstance(latent, LogisticLatent) and yT.device.type == "cpu" \
            and yT.dtype == torch.float64:
        kernels = _kernels()
        if kernels is not None:
            return _CompiledObjective(kernels, yT)
    return _TensorObjective(latent, yT, derivative=derivative)


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
    solver: str = "natural",
) -> InfomaxResult:
    """Fit ``model.unmixing`` to y (N, K) by natural-gradient InfoMax (see the module docstring).

    ``solver="newton"`` (full batch only) replaces the natural-gradient direction by the
    relative quasi-Newton direction of :func:`relative_newton_direction` (same loss, same
    backtracking, each line search starting at η = 1); it converges in far fewer iterations.

    The model's current unmixing is the starting point (whitened data and W = I or a random
    rotation are the usual start). ``extended=True`` needs ``model.latent_name == "switching"``.
    Warns ``ConvergenceWarning`` if ``tol`` is not met within ``max_iter``.

    Full batch, the logistic latent on CPU float64 data goes through one compiled pass over
    the data per evaluation (``_infomax_numba``); the other cases through tensor operations.
    """
    if extended and model.latent_name != "switching":
        raise ValueError("extended InfoMax needs an ICAModel with latent='switching'.")
    if solver not in ("natural", "newton"):
        raise ValueError(f"solver must be 'natural' or 'newton', got {solver!r}.")
    if solver == "newton" and batch_size is not None:
        raise ValueError("solver='newton' works on the full batch only (batch_size=None).")
    newton = solver == "newton"
    lat = _latent_T(model)
    # (K, N); no copy when y is already the transpose of a (K, N) array and the mean is zero
    yT = (y - model.mean if bool(model.mean.any()) else y).mT.contiguous()
    N = yT.shape[1]
    if batch_size is not None:
        return _fit_minibatch(model, lat, model.unmixing, yT, max_iter=max_iter, tol=tol,
                              learning_rate=learning_rate, batch_size=batch_size,
                              extended=extended, generator=generator)
    obj = _objective(lat, yT, derivative=newton)
    slack = LOSS_ROUNDING * eps(yT.dtype) if newton else 0.0
    # The (K, K) arithmetic runs in NumPy float64 (torch's per-operation overhead on 3 x 3
    # matrices was a third of a small fit); the model's unmixing is written at the end.
    W = _as_numpy(model.unmixing).copy()
    if extended:
        model.signs.copy_(extended_signs(yT.mT @ model.unmixing.mT))
    loss = obj.evaluate(W)
    obj.accept()
    history = [-loss]
    eta = float(learning_rate)
    converged = False
    n_iter = 0
    if newton and not extended and N >= 4 * WARM_START_SAMPLES:
        # Warm start: the same solver on every (N // n)-th sample, to a tolerance that the
        # subsample can resolve; kept only if the full-data loss improved (so the recorded
        # log-likelihood still never decreases). It counts as one iteration.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            fit_infomax(model, y[:: N // WARM_START_SAMPLES], max_iter=max_iter,
                        tol=max(tol, WARM_START_TOL), solver="newton")
        W_warm = _as_numpy(model.unmixing).copy()
        new = obj.evaluate(W_warm)
        if _not_worse(new, loss, slack):
            W, loss = W_warm, new
            obj.accept()
        history.append(-loss)
        n_iter = 1
    start = n_iter
    if newton and isinstance(obj, _CompiledObjective) and obj.loop is not None \
            and start < max_iter:
        # the whole loop compiled (the same steps; Python's per-iteration overhead was about
        # half of a fit at N = 5,000, K = 3)
        W, loss, n_iter, converged = obj.newton_loop(W, loss, tol=tol, start=start,
                                                     max_iter=max_iter, slack=slack,
                                                     history=history)
        start = max_iter  # (the loop below is skipped)
    for it in range(start + 1, max_iter + 1):
        n_iter = it
        G = obj.gradient()
        if float(np.abs(G).max()) < tol:
            converged = True
            n_iter = it - 1
            break
        direction = obj.newton_direction(G, NEWTON_MIN_EIGENVALUE) if newton else G
        if newton:
            eta = 1.0  # a Newton step has its own scale
        accepted = False
        for _ in range(60):  # backtracking: at most 60 halvings (η·2⁻⁶⁰ is below rounding)
            W_try = W + eta * (direction @ W)  # ΔW = η (I + ⟨φ(x)xᵀ⟩) W (natural)
            new = obj.evaluate(W_try)
            if _not_worse(new, loss, slack):
                accepted = True
                W, loss = W_try, new
                obj.accept()
                eta *= 1.25
                break
            eta *= 0.5
        if not accepted:  # no descent step exists at rounding precision: a stationary point
            converged = True
            history.append(-loss)
            break
        if extended:
            assert isinstance(obj, _TensorObjective)
            model.signs.copy_(extended_signs(obj.x.mT))
            loss = obj.refresh(W)
        history.append(-loss)
    model.unmixing.copy_(torch.from_numpy(W))
    if not converged:
        _warn_not_converged(float(np.abs(obj.gradient()).max()), max_iter, tol, 3)
    return InfomaxResult(n_iter, converged, history, model.signs.clone() if extended else None)


def _warn_not_converged(g_max: float, max_iter: int, tol: float, stacklevel: int) -> None:
    warnings.warn(
        f"InfoMax did not converge in {max_iter} iterations (max |I + <phi(x) x^T>| = "
        f"{g_max:.2e} > tol = {tol:g}); increase max_iter or tol.",
        ConvergenceWarning,
        stacklevel=stacklevel + 1,
    )


def _fit_minibatch(model: ICAModel, lat: AnyLatent, W: Tensor, yT: Tensor, *, max_iter: int,
                   tol: float, learning_rate: float, batch_size: int, extended: bool,
                   generator: torch.Generator | None) -> InfomaxResult:
    """Bell & Sejnowski's minibatch updates (``fit_infomax`` with ``batch_size``)."""
    N = yT.shape[1]
    xT = W @ yT

    def update_signs() -> None:
        if extended:
            model.signs.copy_(extended_signs(xT.mT))

    update_signs()
    loss = _loss_T(lat, xT, W)
    history = [-loss]
    eta = float(learning_rate)
    converged = False
    n_iter = 0
    for it in range(1, max_iter + 1):
        n_iter = it
        G = _relative_gradient_T(lat, xT)
        if float(G.abs().max()) < tol:
            converged = True
            n_iter = it - 1
            break
        W0 = W.detach().clone()
        perm = torch.randperm(N, generator=generator, device=yT.device)
        for start in range(0, N, batch_size):
            xb = W @ yT[:, perm[start:start + batch_size]]
            W.add_(eta * (_relative_gradient_T(lat, xb) @ W))  # minibatch natural gradient
        x_new = W @ yT
        new = _loss_T(lat, x_new, W)
        worse = not (new == new and new <= loss + 1e-3 * abs(loss))  # NaN-safe
        if worse or not bool(torch.isfinite(W).all()):
            W.copy_(W0)  # the epoch made things worse (or blew up): undo it, anneal harder
            eta *= 0.5
        else:
            xT, loss = x_new, new
            eta *= 0.95
        if extended:
            update_signs()
            loss = _loss_T(lat, xT, W)
        history.append(-loss)
    if not converged:
        _warn_not_converged(float(_relative_gradient_T(lat, xT).abs().max()), max_iter, tol,
                            4)
    return InfomaxResult(n_iter, converged, history, model.signs.clone() if extended else None)
