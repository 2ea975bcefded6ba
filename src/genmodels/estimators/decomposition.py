"""scikit-learn-style ``FactorAnalysis`` and ``PCA`` over ``genmodels.models.factor_analysis``.

Names, parameters and fitted attributes mirror ``sklearn.decomposition`` so that switching is a
one-line import change::

    from genmodels.estimators.decomposition import FactorAnalysis   # was: sklearn.decomposition
    fa = FactorAnalysis(n_components=10).fit(X)
    Z = fa.transform(X); fa.score(X); fa.get_covariance()

Differences from scikit-learn, on purpose:

* ``FactorAnalysis`` is fitted by EM (book §7.3) on the data's second moments, not by
  scikit-learn's SVD iteration; both maximise the same likelihood. ``tol`` is on the total
  log-likelihood, as in scikit-learn, but its default is 1e-4 rather than 1e-2 because EM
  gains less per iteration than scikit-learn's SVD iteration near the optimum. The
  noise-variance floor is relative to the data scale (10·eps·mean variance) instead of
  scikit-learn's absolute 1e-12, and hitting it warns.
* ``PCA`` always computes an exact decomposition: ``svd_solver`` is accepted for
  compatibility and picks between a thin SVD (``"full"``, ``"arpack"``, ``"randomized"``) and
  the covariance eigendecomposition (``"covariance_eigh"``); ``"auto"`` takes the latter when
  N ≥ 10 D. ``n_components="mle"`` (Minka's choice) is not supported.
* ``PCA.score_samples`` is the PPCA log-likelihood of Tipping & Bishop (as scikit-learn defines
  it with ``whiten=False``). With ``whiten=True`` scikit-learn rescales the components inside
  ``get_covariance`` a second time; here the density does not depend on ``whiten`` (whitening
  only changes ``transform``).
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from torch import Tensor

from genmodels._threads import gemm_work, last_dim, work_sized, work_threads
from genmodels._validation import (
    check_choice,
    check_data_matrix,
    check_nonnegative_float,
    check_positive_int,
    make_generator,
)
from genmodels.estimators._base import (
    TorchEstimatorMixin,
    check_fitted,
    precheck_array,
    to_numpy,
)
from genmodels.learning.em import run_em
from genmodels.linalg import psd_inverse
from genmodels.models.factor_analysis import FactorAnalyzer, ScatterEM, pca
from genmodels.models.linear_gaussian import (
    DenseCovariance,
    DiagonalCovariance,
    centred_moments,
    linear_gaussian_log_marginal,
)

__all__ = ["PCA", "FactorAnalysis"]


def _private(t: Tensor, X: Any) -> bool:
    """Whether validation gave ``t`` memory of its own (X converted, moved or made contiguous),
    so that a fit may overwrite it; False when unsure."""
    if isinstance(X, Tensor):
        return t.untyped_storage().data_ptr() != X.untyped_storage().data_ptr()
    if isinstance(X, np.ndarray):
        return t.device.type != "cpu" or not np.may_share_memory(t.numpy(), X)
    return False


def _blas_view(X: Any) -> Any:
    """A floating 2-D array (or frame) whose layout BLAS reads as it is, rows or columns
    contiguous with a leading-dimension stride (a C- or Fortran-ordered array, a column slice
    of a wider one, a frame's values), as a tensor sharing its memory; anything else as it was.
    Saves the C-ordered copy ``as_tensor`` makes (for digits' 1797 × 64 column slice, 45 us of a
    0.7 ms PCA fit): the scatter's product and the column sums read the strided tensor alike."""
    if hasattr(X, "to_numpy") and not isinstance(X, (Tensor, np.ndarray)):
        X = X.to_numpy()
    if not (isinstance(X, np.ndarray) and X.ndim == 2 and X.dtype.kind == "f"
            and X.dtype.isnative and X.flags.writeable and X.flags.aligned):
        return X
    size = X.dtype.itemsize
    (rows, cols), (s0, s1) = X.shape, X.strides
    if (s1 == size and s0 >= cols * size and s0 % size == 0) or (
            s0 == size and s1 >= rows * size and s1 % size == 0):
        return torch.from_numpy(X)
    return X


class _DecompositionBase(ClassNamePrefixFeaturesOutMixin, TransformerMixin, TorchEstimatorMixin,
                         BaseEstimator):
    components_: np.ndarray

    @property
    def _n_features_out(self) -> int:
        return int(self.components_.shape[0])

    def _input(self, X: Any, *, reset: bool, min_samples: int = 1) -> Tensor:
        return self._validate_X(X, reset=reset, min_samples=min_samples)

    def score(self, X: Any, y: Any = None) -> float:
        """Average log-likelihood of the samples under the fitted model."""
        return float(np.mean(self.score_samples(X)))

    def score_samples(self, X: Any) -> np.ndarray:
        raise NotImplementedError


class FactorAnalysis(_DecompositionBase):
    """Factor analysis (book Eq. 2.20) fitted by EM, mirroring
    ``sklearn.decomposition.FactorAnalysis``.

    Parameters: n_components (K; None → n_features), tol (on the total log-likelihood),
    max_iter, noise_variance_init ((D,) initial Ψ; default: the PPCA solution),
    random_state (seeds the generator passed to the initialisation), dtype, device.

    Fitted: components_ (K, D) = Cᵀ; noise_variance_ (D,) = diag Ψ; mean_ (D,) = c;
    loglike_ (total log-likelihood per EM iteration); n_iter_; model_ (the ``FactorAnalyzer``).
    """

    def __init__(self, n_components: int | None = None, *, tol: float = 1e-4,
                 max_iter: int = 1000, noise_variance_init: Any = None,
                 random_state: Any = None, dtype: str = "float64", device: Any = None) -> None:
        self.n_components = n_components
        self.tol = tol
        self.max_iter = max_iter
        self.noise_variance_init = noise_variance_init
        self.random_state = random_state
        self.dtype = dtype
        self.device = device

    @work_sized(lambda self, X, y=None: gemm_work(X, last_dim(X)))  # the moments, N D²
    def fit(self, X: Any, y: Any = None) -> FactorAnalysis:
        """Fit by EM on the centred data's moments (the ML offset c is the sample mean)."""
        t = self._input(X, reset=True, min_samples=2)
        d = t.shape[1]
        k = d if self.n_components is None else check_positive_int(self.n_components,
                                                                    "n_components")
        if k > d:
            raise ValueError(f"n_components={k} must be <= n_features={d}.")
        tol = check_nonnegative_float(self.tol, "tol")
        max_iter = check_positive_int(self.max_iter, "max_iter")
        nvi = None
        if self.noise_variance_init is not None:
            nvi = np.asarray(self.noise_variance_init, dtype=np.float64).reshape(-1).tolist()
        model = FactorAnalyzer(d, k, noise_variance_init=nvi,
                               dtype=str(self._torch_dtype).removeprefix("torch."))
        model.to(t.device)
        mean, moments = centred_moments(t, overwrite=_private(t, X))
        model.initialize(moments, make_generator(self.random_state, t.device))
        # EM with c frozen at the sample mean, on the scatter alone (same iterates as
        # run_em(model, [moments], frozen={"mean"}), fewer tensor operations per iteration)
        with work_threads(2.0 * d * d * k):  # each EM iteration: D × D by D × K products
            result = run_em(ScatterEM(model, moments.outer, moments.n), [None],
                            max_iter=max_iter, tol=tol, per_datum=False)
        model.mean = mean
        self.model_ = model
        self.components_ = to_numpy(model.loadings.mT)
        self.noise_variance_ = to_numpy(model.noise_variance)
        self.mean_ = to_numpy(mean)
        self.loglike_ = list(result.log_likelihood)
        self.n_iter_ = result.n_iter
        return self

    @work_sized(lambda self, X: gemm_work(X, self.components_.shape[0]))
    def transform(self, X: Any) -> np.ndarray:
        """Posterior means E[x | y] = K (y − c) (Eq. 2.22). (N, D) → (N, K)."""
        check_fitted(self, "model_")
        return to_numpy(self.model_.posterior(self._input(X, reset=False)).mean)

    @work_sized(lambda self, X: gemm_work(X, self.components_.shape[0]))
    def score_samples(self, X: Any) -> np.ndarray:
        """log p̂(y_n) = log N(y_n; c, C Cᵀ + Ψ) (Eq. 2.21), (N,)."""
        check_fitted(self, "model_")
        return to_numpy(self.model_.log_marginal(self._input(X, reset=False)))

    def get_covariance(self) -> np.ndarray:
        """C Cᵀ + Ψ, (D, D)."""
        check_fitted(self, "model_")
        return to_numpy(self.model_.covariance())

    def get_precision(self) -> np.ndarray:
        """(C Cᵀ + Ψ)⁻¹ by Woodbury's identity, (D, D)."""
        check_fitted(self, "model_")
        return to_numpy(self.model_.precision())


_SOLVERS = {"auto": "auto", "full": "svd", "arpack": "svd", "randomized": "svd",
            "covariance_eigh": "covariance"}


class PCA(_DecompositionBase):
    """Principal components analysis, mirroring ``sklearn.decomposition.PCA``.

    Parameters: n_components (None → min(N, D); an int; or a float in (0, 1): the fewest
    components whose cumulative explained-variance ratio exceeds it), whiten, svd_solver
    (accepted; see the module docstring), dtype, device.

    Fitted: components_ (K, D), explained_variance_ (K,) (1/(N − 1) convention),
    explained_variance_ratio_, singular_values_, mean_, noise_variance_ (the PPCA σ²: the mean
    of the discarded variances), n_components_, n_samples_.
    """

    def __init__(self, n_components: int | float | None = None, *, whiten: bool = False,
                 svd_solver: str = "auto", dtype: str = "float64", device: Any = None) -> None:
        self.n_components = n_components
        self.whiten = whiten
        self.svd_solver = svd_solver
        self.dtype = dtype
        self.device = device

    def fit(self, X: Any, y: Any = None) -> PCA:
        self._fit(X)
        return self

    @work_sized(lambda self, X: gemm_work(X, last_dim(X)))  # the scatter (or SVD), N D²
    def _fit(self, X: Any) -> None:
        solver = _SOLVERS[check_choice(self.svd_solver, "svd_solver", tuple(_SOLVERS))]
        # no finiteness pass here: pca(..., check=True) reads it off the scatter's product
        # (its trace is Σ x²), one pass over X saved (~10% of a fit at N = 100,000, D = 64)
        t = self._validate_X(X, reset=True, min_samples=2, allow_nan=True, view=_blas_view)
        n, d = t.shape
        res = pca(t, solver=solver, overwrite=_private(t, X), check=True)
        r = min(n, d)
        # (r,)- and (r, D)-sized bookkeeping in NumPy: microseconds instead of a torch call each
        variance = to_numpy(res.explained_variance)
        ratio = variance / max(float(variance.sum()), float(np.finfo(variance.dtype).tiny))
        k = self._resolve_n_components(ratio, r)
        self.n_components_ = k
        self.n_samples_ = n
        self.mean_ = to_numpy(res.mean)
        self.components_ = np.ascontiguousarray(to_numpy(res.components)[:k])
        self.explained_variance_ = variance[:k].copy()
        self.explained_variance_ratio_ = ratio[:k]
        self.singular_values_ = to_numpy(res.singular_values)[:k].copy()
        self.noise_variance_ = float(variance[k:].mean()) if k < r else 0.0

    def _resolve_n_components(self, ratio: np.ndarray, r: int) -> int:
        nc = self.n_components
        if nc is None:
            return r
        if isinstance(nc, numbers.Integral) and not isinstance(nc, bool):
            if not 1 <= nc <= r:
                raise ValueError(
                    f"n_components={nc} must be between 1 and min(n_samples, n_features)={r}.")
            return int(nc)
        if isinstance(nc, numbers.Real) and 0.0 < float(nc) < 1.0:
            k = int(np.searchsorted(np.cumsum(ratio), float(nc), side="right")) + 1
            return min(k, r)
        raise ValueError(
            "n_components must be None, an integer >= 1 or a float in (0, 1); got "
            f"{nc!r} ('mle' is not supported).")

    def _tensors(self, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
        def tt(a: Any) -> Tensor:
            return torch.as_tensor(np.asarray(a), dtype=self._torch_dtype, device=device)

        return tt(self.components_), tt(self.explained_variance_), tt(self.mean_)

    @work_sized(lambda self, X: gemm_work(X, self.n_components_))
    def transform(self, X: Any) -> np.ndarray:
        """(X − mean_) componentsᵀ, divided by sqrt(explained_variance_) when whitening."""
        check_fitted(self, "components_")
        t = self._input(X, reset=False)
        comps, ev, mean = self._tensors(t.device)
        z = (t - mean) @ comps.mT
        if self.whiten:
            z = z / ev.sqrt().clamp_min(torch.finfo(t.dtype).tiny)
        return to_numpy(z)

    def fit_transform(self, X: Any, y: Any = None) -> np.ndarray:
        self._fit(X)
        return self.transform(X)

    def inverse_transform(self, X: Any) -> np.ndarray:
        """Back to data space: Z componentsᵀ⁺ + mean_ (undoing whitening)."""
        check_fitted(self, "components_")
        X = precheck_array(X)
        z = check_data_matrix(X, name="X", n_features=self.n_components_,
                              dtype=self._torch_dtype, device=self.device)
        comps, ev, mean = self._tensors(z.device)
        if self.whiten:
            z = z * ev.sqrt()
        return to_numpy(z @ comps + mean)

    def _ppca_log_marginal(self, t: Tensor) -> Tensor:
        """The PPCA density N(mean, Vᵀ diag(λ − σ²)₊ V + σ² I) (Tipping & Bishop 1999)."""
        comps, ev, mean = self._tensors(t.device)
        sigma2 = float(self.noise_variance_)
        k = comps.shape[0]
        C = comps.mT * (ev - sigma2).clamp_min(0.0).sqrt()  # (D, K)
        zeros = torch.zeros(k, dtype=t.dtype, device=t.device)
        eye = torch.eye(k, dtype=t.dtype, device=t.device)
        if sigma2 > 0.0:
            noise: DiagonalCovariance | DenseCovariance = DiagonalCovariance(
                torch.full_like(mean, sigma2))
            return linear_gaussian_log_marginal(t, zeros, eye, C, mean, noise,
                                                form="information")
        d = mean.shape[0]
        noise = DenseCovariance(torch.zeros(d, d, dtype=t.dtype, device=t.device))
        return linear_gaussian_log_marginal(t, zeros, eye, C, mean, noise, form="covariance")

    @work_sized(lambda self, X: gemm_work(X, self.n_components_))
    def score_samples(self, X: Any) -> np.ndarray:
        """The PPCA log-likelihood of each sample, (N,)."""
        check_fitted(self, "components_")
        return to_numpy(self._ppca_log_marginal(self._input(X, reset=False)))

    def get_covariance(self) -> np.ndarray:
        """Vᵀ diag(λ − σ²)₊ V + σ² I, (D, D)."""
        check_fitted(self, "components_")
        comps, ev, _ = self._tensors(torch.device("cpu"))
        sigma2 = float(self.noise_variance_)
        cov = (comps.mT * (ev - sigma2).clamp_min(0.0)) @ comps
        return to_numpy(cov + sigma2 * torch.eye(cov.shape[0], dtype=cov.dtype))

    def get_precision(self) -> np.ndarray:
        """The inverse of ``get_covariance()`` (via Cholesky)."""
        return to_numpy(psd_inverse(torch.as_tensor(self.get_covariance())))
