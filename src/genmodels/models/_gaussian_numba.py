"""A compiled (Numba) log-density of Gaussians with diagonal precision, for CPU tensors; imported
lazily by ``genmodels.models.covariance`` (so that importing genmodels does not import Numba).
Module-level, so that Numba's disk cache serves later processes."""

from __future__ import annotations

from typing import Any

import numba


@numba.njit(cache=True, nogil=True, error_model="numpy",
            fastmath={"reassoc", "contract", "nsz", "arcp"})
def diag_log_density(y: Any, means: Any, prec: Any, bias: Any, out: Any) -> None:
    """out[n, k] = bias[k] − ½ Σ_d prec[k, d] (y[n, d] − means[k, d])² (Eq. 2.8 with a
    diagonal Σ_k⁻¹; bias_k = log|U_k| − ½D log τ). y: (N, D); means, prec: (K, D); out: (N, K).

    One pass over the data, with no (N, 2D) features and no cancellation between the expanded
    terms of the square."""
    N, D = y.shape
    K = means.shape[0]
    for n in range(N):
        yn, o = y[n], out[n]
        for k in range(K):
            mk, pk = means[k], prec[k]
            acc = 0.0
            for d in range(D):
                z = yn[d] - mk[d]
                acc += pk[d] * z * z
            o[k] = bias[k] - 0.5 * acc
