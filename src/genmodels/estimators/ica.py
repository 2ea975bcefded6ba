"""``InfomaxICA``: scikit-learn's ``FastICA`` interface over natural-gradient InfoMax ICA.

Switching from scikit-learn is an import change::

    from genmodels.estimators.ica import InfomaxICA   # instead of sklearn.decomposition.FastICA
    S = InfomaxICA(n_components=3, random_state=0).fit_transform(X)

The fit whitens the data (PCA), then maximises the ICA log-likelihood (book Eq. 9.5) over the
unmixing matrix of the whitened data with the natural gradient (``genmodels.learning.infomax``).
Because InfoMax is maximum likelihood (§9.1), the fitted estimator also has a log-density:
``score_samples``/``score`` (when ``n_components == n_features``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils.metaestimators import available_if

from genmodels._threads import gemm_work, last_dim, work_sized
from genmodels._validation import (
    as_tensor,
    check_nonnegative_float,
    check_positive_int,
    make_generator,
)
from genmodels.estimators._base import TorchEstimatorMixin, check_fitted, to_numpy
from genmodels.learning.infomax import fit_infomax, whiten_centred
from genmodels.models.ica import ICAModel


def _is_density(est: Any) -> bool:
    """``score``/``score_samples`` exist unless the fit kept fewer components than features:
    then the ICA model is no density on the data space (scikit-learn's ``available_if``)."""
    return not hasattr(est, "components_") or hasattr(est, "model_")


class InfomaxICA(ClassNamePrefixFeaturesOutMixin, TransformerMixin, TorchEstimatorMixin,
                 BaseEstimator):
    """Independent-components analysis by InfoMax (Bell & Sejnowski 1995), ML view (§9.1).

    Parameters (FastICA's names where FastICA has them):
        n_components: number of sources K (default: n_features).
        whiten: ``"unit-variance"`` (default; sources rescaled to unit variance),
            ``"arbitrary-variance"`` (sources at their maximum-likelihood scale) or ``False``
            (the data are taken as already white: no centring, no whitening; K = D).
        max_iter: iterations (full batch) or epochs (minibatch).
        tol: stop when ``max |I + ⟨φ(x)xᵀ⟩| < tol`` (the relative gradient on the whitened data).
        random_state: seed of the random rotation that starts W, and of minibatch shuffling.
        extended: extended InfoMax (Lee, Girolami & Sejnowski 1999): each component switches
            between a super- and a sub-Gaussian density, so sub-Gaussian sources (uniform,
            sinusoids) separate too. Without it the latent density is logistic (super-Gaussian).
        learning_rate: initial natural-gradient step η.
        batch_size: None for full-batch steps with backtracking; an int for minibatch updates.
        solver: ``"natural"`` (the natural/relative gradient, Amari et al. 1996) or
            ``"newton"`` (relative quasi-Newton steps, Ablin et al. 2018; full batch only;
            same optimum, far fewer iterations).
        dtype, device: of the computation (default float64, CPU).

    Fitted attributes: ``components_`` (K, D) unmixing (``S = (X − mean_) components_ᵀ``),
    ``mixing_`` (D, K) its pseudo-inverse, ``mean_`` (D,), ``whitening_`` (K, D) (absent when
    ``whiten=False``), ``n_iter_``, ``converged_``, ``log_likelihood_curve_`` (mean
    log-likelihood per iteration, in data space when K = D, else of the whitened data),
    ``signs_`` (extended only), ``model_`` (the :class:`~genmodels.models.ica.ICAModel`
    in data space when K = D).
    """

    def __init__(
        self,
        n_components: int | None = None,
        *,
        whiten: str | bool = "unit-variance",
        max_iter: int = 200,
        tol: float = 1e-4,
        random_state: Any = None,
        extended: bool = False,
        learning_rate: float = 1.0,
        batch_size: int | None = None,
        solver: str = "natural",
        dtype: Any = "float64",
        device: Any = "cpu",
    ) -> None:
        self.n_components = n_components
        self.whiten = whiten
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state
        self.extended = extended
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.solver = solver
        self.dtype = dtype
        self.device = device

    def _check_params(self, D: int) -> int:
        if self.whiten not in ("unit-variance", "arbitrary-variance", False):
            raise ValueError(
                "whiten must be 'unit-variance', 'arbitrary-variance' or False, got "
                f"{self.whiten!r}."
            )
        K = D if self.n_components is None else check_positive_int(self.n_components,
                                                                      "n_components")
        if K > D:
            raise ValueError(f"n_components = {K} exceeds n_features = {D}.")
        if self.whiten is False and K != D:
            raise ValueError("with whiten=False, n_components must equal n_features.")
        check_positive_int(self.max_iter, "max_iter")
        check_nonnegative_float(self.tol, "tol")
        check_nonnegative_float(self.learning_rate, "learning_rate", strictly=True)
        if self.batch_size is not None:
            check_positive_int(self.batch_size, "batch_size")
        return K

    def fit(self, X: Any, y: Any = None) -> InfomaxICA:
        self._fit(X)
        return self

    def fit_transform(self, X: Any, y: Any = None) -> np.ndarray:
        return to_numpy(self._fit(X))

    @work_sized(lambda self, X: gemm_work(X, last_dim(X)))  # whitening and (N, K) @ (K, K)
    def _fit(self, X: Any) -> torch.Tensor:
        Xt = self._validate_X(X, reset=True, min_samples=2)
        D = Xt.shape[1]
        K = self._check_params(D)
        dt, dev = Xt.dtype, Xt.device
        gen = make_generator(self.random_state, device=dev)
        if self.whiten is False:
            mean = Xt.new_zeros(D)
            V = dewhiten = torch.eye(D, dtype=dt, device=dev)
            lam = Xt.new_ones(D)
            Xc = Z = Xt
        else:
            mean = Xt.mean(0)
            Xc = Xt - mean
            wh = whiten_centred(Xc, mean, K)
            V, dewhiten, lam = wh.matrix, wh.dewhitening, wh.variances
            Z = (V @ Xc.mT).mT  # (N, K), identity covariance; stored (K, N), the fit's layout
        latent = "switching" if self.extended else "logistic"
        model = ICAModel(K, latent, dtype=dt, device=dev)
        with torch.no_grad():  # a random rotation to start (the likelihood is rotation-sensitive)
            # (the (K, K) arithmetic here and below in NumPy: each torch operation costs
            # 10-40 us inside a fit, with the caches cold from the work between fits)
            q, r = np.linalg.qr(to_numpy(torch.randn(K, K, generator=gen, dtype=dt,
                                                     device=dev)))
            model.unmixing.copy_(torch.from_numpy(q * np.sign(np.diagonal(r))))
        result = fit_infomax(
            model, Z, max_iter=self.max_iter, tol=self.tol, learning_rate=self.learning_rate,
            batch_size=self.batch_size, extended=self.extended, generator=gen,
            solver=self.solver,
        )
        W = to_numpy(model.unmixing).copy()
        V_np = to_numpy(V)
        unmix = W @ V_np  # (K, D): the maximum-likelihood unmixing of the centred data
        S = Xc @ torch.as_tensor(unmix, device=dev).mT
        # pinv(unmix) in closed form: V = Λ^{-1/2} Eᵀ has full row rank, so
        # pinv(W V) = pinv(V) W⁻¹ = E Λ^{1/2} W⁻¹ (the dewhitening; no SVD)
        mixing = to_numpy(dewhiten) @ np.linalg.inv(W)
        if self.whiten == "unit-variance":
            # the centred data's sources have mean ~0 (to rounding), so std² = diag(SᵀS)/N:
            # torch's S.std(0) was 5x slower (and SᵀS needs no (N, K) temporary)
            std = np.sqrt(to_numpy((S.mT @ S).diagonal()) / S.shape[0])
            unmix = unmix / std[:, None]
            mixing = mixing * std
            S.div_(torch.as_tensor(std, device=dev))
        self.components_ = unmix
        self.mixing_ = mixing
        self.mean_ = to_numpy(mean)
        if self.whiten is not False:
            self.whitening_ = V_np
        self.n_iter_ = result.n_iter
        self.converged_ = result.converged
        curve = np.asarray(result.log_likelihood)
        if K == D:
            # back to data space: log|det V| = −½ Σ log λ (V = Λ^{-1/2} Eᵀ, E orthogonal)
            curve = curve - 0.5 * float(np.log(to_numpy(lam)).sum())
            with torch.no_grad():  # the fitted model, moved to data space
                model.unmixing.copy_(torch.from_numpy(W @ V_np))
                model.mean.copy_(mean)
            self.model_ = model
        self.log_likelihood_curve_ = curve
        if self.extended:
            self.signs_ = to_numpy(model.signs)
        self._n_features_out = K
        return S

    def transform(self, X: Any, copy: bool = True) -> np.ndarray:
        """Sources S = (X − mean_) components_ᵀ: (N, D) → (N, K)."""
        Xt = self._validate_X(X, reset=False)
        W = torch.as_tensor(self.components_, dtype=Xt.dtype, device=Xt.device)
        m = torch.as_tensor(self.mean_, dtype=Xt.dtype, device=Xt.device)
        return to_numpy((Xt - m) @ W.mT)

    def inverse_transform(self, X: Any, copy: bool = True) -> np.ndarray:
        """Data from sources: S mixing_ᵀ + mean_: (N, K) → (N, D)."""
        check_fitted(self, "components_")
        S = as_tensor(X, name="X", dtype=self._torch_dtype)
        if S.dim() != 2 or S.shape[1] != self.components_.shape[0]:
            raise ValueError(
                f"X must have shape (n_samples, {self.components_.shape[0]}), got "
                f"{tuple(S.shape)}."
            )
        A = torch.as_tensor(self.mixing_, dtype=S.dtype)
        return to_numpy(S @ A.mT + torch.as_tensor(self.mean_, dtype=S.dtype))

    @available_if(_is_density)
    def score_samples(self, X: Any) -> np.ndarray:
        """Log-likelihood of each sample under the fitted ICA model (Eq. 9.5): (N,).

        Present only when n_components == n_features (the model is then a density on data
        space); with fewer components the attribute does not exist (``available_if``).
        """
        Xt = self._validate_X(X, reset=False)
        with torch.no_grad():
            return to_numpy(self.model_.log_prob(Xt))

    @available_if(_is_density)
    def score(self, X: Any, y: Any = None) -> float:
        """Mean log-likelihood of X under the fitted model."""
        return float(np.mean(self.score_samples(X)))
