"""Small unnormalised models, u(y) = exp{−E(y)} (book Ch. 10 intro), whose normaliser is known
in closed form — so that what NCE learns about log Z can be checked exactly.

Each has ``log_unnormalised(y)`` = log u(y) (what ``learning.nce`` trains) and
``log_normaliser()`` = log Z = log ∫ u (the exact value, never used in training):

* ``GaussianEnergy``: E(y) = ½ (y − μ)ᵀ Λ (y − μ), Λ = L Lᵀ; log Z = (D/2) log τ − log|L|.
* ``GaussianMixtureEnergy``: u(y) = Σ_k exp{a_k − ½ Σ_d (y_d − μ_kd)²/σ²_kd} with free
  log-weights a_k (not normalised); log Z = logsumexp_k [a_k + Σ_d log σ_kd] + (D/2) log τ.
* ``TableEnergy``: one free score per symbol of a finite set, u(w) = exp s_w; log Z =
  logsumexp_w s_w.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from genmodels._validation import as_tensor, check_positive_int, resolve_dtype
from genmodels.io import SavableModule
from genmodels.linalg import LOG_TAU

__all__ = ["GaussianEnergy", "GaussianMixtureEnergy", "TableEnergy"]


class GaussianEnergy(SavableModule):
    """E(y) = ½ (y − μ)ᵀ Λ (y − μ) with Λ = L Lᵀ, L lower triangular with a positive diagonal
    (held as its logarithm): a Gaussian without its normaliser.

    dim: D. Parameters: ``loc`` μ (D,), ``tril`` (D, D) (strict lower part of L; its diagonal
    holds log L_ii). Initialised at μ = 0, Λ = I.
    """

    def __init__(self, dim: int, *, dtype: torch.dtype | str = torch.float64) -> None:
        super().__init__()
        d = check_positive_int(dim, "dim")
        dt = resolve_dtype(dtype)
        self.config = {"dim": d, "dtype": str(dt).removeprefix("torch.")}
        self.loc = nn.Parameter(torch.zeros(d, dtype=dt))
        self.tril = nn.Parameter(torch.zeros(d, d, dtype=dt))

    def precision_cholesky(self) -> Tensor:
        """L (D, D), with Λ = L Lᵀ."""
        T = torch.tril(self.tril, -1)
        return T + torch.diag_embed(self.tril.diagonal().exp())

    def precision(self) -> Tensor:
        L = self.precision_cholesky()
        return L @ L.mT

    def set_moments(self, loc: Any, covariance: Any) -> GaussianEnergy:
        """Set μ and Λ = Σ⁻¹ (for tests and warm starts). Returns self."""
        m = as_tensor(loc, name="loc", dtype=self.loc.dtype).reshape(-1)
        S = as_tensor(covariance, name="covariance", dtype=self.loc.dtype)
        S = S.reshape(m.numel(), m.numel())
        L = torch.linalg.cholesky(torch.linalg.inv(S))
        with torch.no_grad():
            self.loc.copy_(m)
            self.tril.copy_(torch.tril(L, -1) + torch.diag_embed(L.diagonal().log()))
        return self

    def log_unnormalised(self, y: Tensor) -> Tensor:
        """−E(y). y: (N, D) → (N,)."""
        z = (y - self.loc) @ self.precision_cholesky()  # (N, D): ‖(y − μ)ᵀ L‖² = quad form
        return -0.5 * z.square().sum(-1)

    def log_normaliser(self) -> Tensor:
        """log Z = (D/2) log τ − Σ_i log L_ii (exact)."""
        return 0.5 * self.loc.shape[0] * LOG_TAU - self.tril.diagonal().sum()


class GaussianMixtureEnergy(SavableModule):
    """u(y) = Σ_k exp{a_k − ½ Σ_d (y_d − μ_kd)² / σ²_kd}: a mixture of K diagonal Gaussians
    with free, unnormalised log-weights a_k and no normaliser.

    num_components: K; dim: D. Parameters: ``log_weights`` a (K,), ``means`` (K, D),
    ``log_scales`` log σ (K, D). ``seed`` draws the initial means from N(0, I).
    """

    def __init__(self, num_components: int, dim: int, *, seed: int = 0,
                 dtype: torch.dtype | str = torch.float64) -> None:
        super().__init__()
        k = check_positive_int(num_components, "num_components")
        d = check_positive_int(dim, "dim")
        dt = resolve_dtype(dtype)
        self.config = {"num_components": k, "dim": d, "seed": int(seed),
                       "dtype": str(dt).removeprefix("torch.")}
        g = torch.Generator().manual_seed(int(seed))
        self.log_weights = nn.Parameter(torch.zeros(k, dtype=dt))
        self.means = nn.Parameter(torch.randn(k, d, generator=g, dtype=dt))
        self.log_scales = nn.Parameter(torch.zeros(k, d, dtype=dt))

    def component_log_unnormalised(self, y: Tensor) -> Tensor:
        """a_k − ½ Σ_d ((y_d − μ_kd)/σ_kd)². y: (N, D) → (N, K)."""
        z = (y[:, None, :] - self.means) * torch.exp(-self.log_scales)  # (N, K, D)
        return self.log_weights - 0.5 * z.square().sum(-1)

    def log_unnormalised(self, y: Tensor) -> Tensor:
        """log u(y) = logsumexp_k (…). y: (N, D) → (N,)."""
        return torch.logsumexp(self.component_log_unnormalised(y), -1)

    def log_normaliser(self) -> Tensor:
        """log Z = logsumexp_k [a_k + Σ_d log σ_kd] + (D/2) log τ (exact)."""
        d = self.means.shape[1]
        return torch.logsumexp(self.log_weights + self.log_scales.sum(-1), 0) \
            + 0.5 * d * LOG_TAU

    def log_prob(self, y: Tensor) -> Tensor:
        """The normalised log p̂(y) = log u(y) − log Z, (N, D) → (N,)."""
        return self.log_unnormalised(y) - self.log_normaliser()


class TableEnergy(SavableModule):
    """One free score per symbol: log u(w) = s_w for w ∈ {0, …, V − 1}.

    num_symbols: V. Parameter ``scores`` s (V,), initialised at −log V (u uniform, Z = 1).
    """

    def __init__(self, num_symbols: int, *, dtype: torch.dtype | str = torch.float64) -> None:
        super().__init__()
        v = check_positive_int(num_symbols, "num_symbols")
        dt = resolve_dtype(dtype)
        self.config = {"num_symbols": v, "dtype": str(dt).removeprefix("torch.")}
        self.scores = nn.Parameter(torch.full((v,), -math.log(v), dtype=dt))

    def log_unnormalised(self, w: Tensor) -> Tensor:
        """s_w for indices w (any shape)."""
        return self.scores[w]

    def log_normaliser(self) -> Tensor:
        """log Σ_w exp s_w (exact)."""
        return torch.logsumexp(self.scores, 0)
