"""The Numba kernel behind the full-batch InfoMax fit on CPU float64 data
(``genmodels.learning.infomax``), imported lazily (importing genmodels does not import Numba).

One call is one pass over the latents x = W y (K, N) of the (whitened) data at an unmixing W
(the product itself is BLAS's: a loop here, K² passes over a block, was half the kernel's time
at K = 8), block by block, accumulating for the logistic latent (ψ = σ,
``models.ica.LogisticLatent``) everything an iteration of the natural-gradient or
relative-Newton solver needs:

* Σ_n Σ_k −log ψ′(x_kn) = Σ |x| + 2 log(1 + e), e = exp(−|x|) — the loss of Eq. 9.5 up to the
  log-determinant; the logarithm is taken once per component and block, of the product of the
  (1 + e) ∈ (1, 2] (at most 2^BLOCK, far from overflow);
* Σ_n φ(x_n) x_nᵀ (K, K), φ = 1 − 2σ(x) = −sign(x)(1 − e)/(1 + e) — the relative gradient;
* Σ φ′(x_k), Σ x_k², Σ φ′(x_k) x_k² (K each), φ′ = −2e/(1 + e)² — the moments of the
  block-diagonal Hessian approximation (``relative_newton_direction``).

The same formulas as ``LogisticLatent.terms`` (one exponential per entry), fused: per sample
K² multiply–adds and one exponential per component, against the dozen full passes over
(K, N) arrays of the tensor form. The exponential is :func:`exp_neg`, a polynomial that the
compiler vectorises (libm's ``exp`` is a scalar call: measured 2× slower than this whole
kernel's remaining arithmetic at K = 3).

Module-level functions with ``cache=True`` (Numba's disk cache finds them again in the next
process) and ``nogil=True`` (blocks of samples can run on several threads).
"""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np
from llvmlite import ir
from numba.core.extending import intrinsic

#: Reassociation (so that the sums over a block vectorise), fused multiply–add, no signed
#: zeros, reciprocals; NaN and infinity keep their meaning (a diverging trial step must show).
_FASTMATH = {"reassoc", "contract", "nsz", "arcp"}
_jit = numba.njit(cache=True, nogil=True, error_model="numpy", fastmath=_FASTMATH)
#: exp_neg's range reduction and two_sum's error term must not be reassociated (it would
#: merge the two halves of ln 2, and cancel the error to zero); fused multiply–adds are fine.
_jit_exact = numba.njit(cache=True, nogil=True, error_model="numpy",
                        fastmath={"contract", "nsz", "arcp"})

#: Samples per block: the block's latents and scores (2 · K · BLOCK doubles) stay in L1/L2;
#: the product of 256 factors (1 + e) ≤ 2 is at most 2²⁵⁶.
BLOCK = 256

_LN2_HI = 6.93147180369123816490e-01  # ln 2 split so that k · _LN2_HI is exact for k < 2¹¹
_LN2_LO = 1.90821492927058770002e-10
_LOG2_E = 1.4426950408889634


def _i64_as_f64(typingctx: Any, v: Any) -> Any:
    """The float64 whose bits are the int64 v (a bit cast, vectorisable)."""

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.bitcast(args[0], ir.DoubleType())

    if v != numba.int64:
        return None
    return numba.float64(numba.int64), codegen


i64_as_f64: Any = intrinsic(_i64_as_f64)


@_jit_exact
def exp_neg(a: float) -> float:
    """exp(−a) for a ≥ 0, to 1 ulp (measured over [0, 700]); a > 708 gives exp(−708).

    exp(−a) = 2^−k exp(−r) with k = round(a / ln 2), |r| ≤ ln 2 / 2, exp(−r) by its Taylor
    polynomial of degree 13 (remainder r¹⁴/14! < 5·10⁻¹⁸), 2^−k from its exponent bits."""
    a = min(a, 708.0)
    k = np.int64(a * _LOG2_E + 0.5)
    kd = np.float64(k)
    r = (a - kd * _LN2_HI) - kd * _LN2_LO
    p = -1.0 / 6227020800.0
    p = p * r + 1.0 / 479001600.0
    p = p * r - 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r - 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r - 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r - 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r - 1.0 / 6.0
    p = p * r + 0.5
    p = p * r - 1.0
    p = p * r + 1.0
    return p * i64_as_f64((1023 - k) << 52)


@_jit_exact
def two_sum(a: float, b: float) -> tuple[float, float]:
    """s = fl(a + b) and its rounding error (Neumaier; needs the unreassociated flags)."""
    s = a + b
    if abs(a) >= abs(b):
        return s, (a - s) + b
    return s, (b - s) + a


@_jit
def logistic_pass(x: Any, lo: int, hi: int, phi_x: Any, moments: Any) -> float:
    """One pass over the latents lo:hi of x = W y (K, N), logistic latent.

    Writes phi_x (K, K) = Σ_n φ(x_n) x_nᵀ and moments (3, K) = [Σ φ′(x), Σ x², Σ φ′(x) x²];
    returns Σ_n Σ_k −log ψ′(x_kn). (Sums, not means: the caller divides by N.)"""
    K = x.shape[0]
    phi = np.empty((K, BLOCK))
    for i in range(K):
        for j in range(K):
            phi_x[i, j] = 0.0
        for s in range(3):
            moments[s, i] = 0.0
    total = 0.0
    carry = 0.0  # Neumaier's compensation of total: the loss's rounding stays at ~1 ulp
    for start in range(lo, hi, BLOCK):
        m = min(BLOCK, hi - start)
        for i in range(K):
            xi = x[i, start:start + m]
            ph = phi[i]
            abs_sum = 0.0
            prod = 1.0
            d_sum = 0.0
            x2_sum = 0.0
            dx2_sum = 0.0
            for b in range(m):
                v = xi[b]
                a = abs(v)
                e = exp_neg(a)
                r = 1.0 / (1.0 + e)
                abs_sum += a
                prod *= 1.0 + e
                ph[b] = math.copysign((1.0 - e) * r, -v)  # φ = −sign(x)(1 − e)/(1 + e)
                d = -2.0 * e * r * r  # φ′ = −2σ(x)σ(−x)
                v2 = v * v
                d_sum += d
                x2_sum += v2
                dx2_sum += d * v2
            total, err = two_sum(total, abs_sum + 2.0 * math.log(prod))
            carry += err
            moments[0, i] += d_sum
            moments[1, i] += x2_sum
            moments[2, i] += dx2_sum
        for i in range(K):  # Σ φ(x) xᵀ on the block
            ph = phi[i]
            for j in range(K):
                xj = x[j, start:start + m]
                acc = 0.0
                for b in range(m):
                    acc += ph[b] * xj[b]
                phi_x[i, j] += acc
    return total + carry


@_jit
def newton_direction(G: Any, moments: Any, n: float, min_eigenvalue: float, E: Any) -> None:
    """E = −H̃⁻¹Γ into E (K, K), from G (K, K) and the moment sums (3, K) of ``logistic_pass``
    over n samples: the formulas of ``infomax._newton_direction`` (Γ = −G; the pair blocks
    [[h_ij, 1], [1, h_ji]], h_ij = ⟨ψ′(x_i)⟩⟨x_j²⟩, shifted to the eigenvalue floor; the
    diagonal h_ii = 1 + ⟨ψ′(x_i)x_i²⟩ floored), without NumPy's per-operation overhead."""
    K = G.shape[0]
    for i in range(K):
        for j in range(K):
            if i == j:
                h = max(1.0 - moments[2, i] / n, min_eigenvalue)
                E[i, i] = G[i, i] / h  # −Γ_ii / h_ii
                continue
            a = -(moments[0, i] / n) * (moments[1, j] / n)  # h_ij (ψ′ = −φ′)
            b = -(moments[0, j] / n) * (moments[1, i] / n)  # h_ji
            smallest = 0.5 * (a + b) - math.sqrt(0.25 * (a - b) ** 2 + 1.0)
            shift = max(min_eigenvalue - smallest, 0.0)
            a += shift
            b += shift
            E[i, j] = -(b * -G[i, j] + G[j, i]) / (a * b - 1.0)  # −(h_ji Γ_ij − Γ_ji)/det


@_jit
def logistic_loss(yT: Any, W: Any, x: Any, phi_x: Any, moments: Any) -> float:
    """The loss L = −⟨Σ_k log ψ′(x_k)⟩ − log|det W| at W (K, K) for the whitened data yT
    (K, N): x = W yT into x (BLAS), then ``logistic_pass`` (writing phi_x and moments).
    A W with an infinity or NaN gives NaN (a diverged trial step)."""
    for i in range(W.shape[0]):
        for j in range(W.shape[1]):
            if not math.isfinite(W[i, j]):
                return math.nan
    N = yT.shape[1]
    np.dot(W, yT, x)
    total = logistic_pass(x, 0, N, phi_x, moments)
    return total / N - np.linalg.slogdet(W)[1]


@_jit
def newton_loop(yT: Any, W: Any, x: Any, loss: float, phi_x: Any, moments: Any, tol: float,
                start: int, max_iter: int, min_eigenvalue: float, slack: float,
                history: Any) -> tuple[Any, float, int, bool, int]:
    """The relative-Newton iterations of ``infomax.fit_infomax`` (logistic latent, full batch)
    from W at its loss and sums (phi_x, moments, updated in place to the last accepted point),
    iterations start + 1 .. max_iter. Line search as there: η = 1, halved (at most 60 times)
    until the loss is not worse than the current one beyond ``slack`` · |L|.

    Writes −L after each iteration into history; returns (W, L, n_iter, converged, the
    number of history entries written)."""
    K, N = yT.shape
    G = np.empty((K, K))
    E = np.empty((K, K))
    phi_t = np.empty((K, K))
    mom_t = np.empty((3, K))
    n_iter = start
    converged = False
    n_hist = 0
    for it in range(start + 1, max_iter + 1):
        n_iter = it
        g_max = 0.0
        for i in range(K):
            for j in range(K):
                G[i, j] = phi_x[i, j] / N + (1.0 if i == j else 0.0)  # I + ⟨φ(x)xᵀ⟩
                g_max = max(g_max, abs(G[i, j]))
        if g_max < tol:
            converged = True
            n_iter = it - 1
            break
        newton_direction(G, moments, float(N), min_eigenvalue, E)
        EW = E @ W
        eta = 1.0
        accepted = False
        for _ in range(60):
            W_try = W + eta * EW
            new = logistic_loss(yT, W_try, x, phi_t, mom_t)
            if new == new and new <= loss + slack * abs(loss):
                accepted = True
                W, loss = W_try, new
                phi_x[:] = phi_t
                moments[:] = mom_t
                break
            eta *= 0.5
        history[n_hist] = -loss
        n_hist += 1
        if not accepted:  # no descent step at rounding precision: a stationary point
            converged = True
            break
    return W, loss, n_iter, converged, n_hist
