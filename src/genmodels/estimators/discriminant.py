"""LDA and QDA as Gaussian class-conditionals fitted from known labels (§2.1.1, B2–B3).

A labelled Gaussian mixture: the class is the source x̂ ~ Categ(π), the features its emission
N(μ_k, Σ_k). Fitting with labels is the mixture's M step with one-hot responsibilities
(``fit_supervised``: class frequencies, per-class means and 1/N_k covariances, B:431), and
prediction is the mixture's posterior (Eq. 2.6):

* QDA (Eq. 2.8): a ``Full`` covariance per class → quadratic boundaries.
* LDA (Eq. 2.9): a ``Tied`` covariance → the quadratic terms cancel and
  ẑ_k = μ_kᵀΣ⁻¹y − ½μ_kᵀΣ⁻¹μ_k + log π_k is linear in y (``coef_``, ``intercept_``).

The estimators mirror ``sklearn.discriminant_analysis`` (names, parameters, fitted attributes,
the covariance each solver uses), with ``device=`` and ``dtype=`` added.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from torch import Tensor

from genmodels._validation import as_tensor, check_choice, check_nonnegative_float
from genmodels.estimators._base import TorchEstimatorMixin, to_numpy
from genmodels.estimators._input import check_fitted, validate_X
from genmodels.exceptions import DegenerateFitWarning
from genmodels.linalg import LOG_TAU, symmetrize
from genmodels.models.covariance import GaussianEmission
from genmodels.models.mixture import MixtureModel, supervised_stats


def _labels(est: Any, X: Any, y: Any) -> tuple[Tensor, Tensor]:
    """Validate (X, y); set classes_; return X (N, D) and class indices (N,)."""
    from sklearn.utils.multiclass import check_classification_targets

    t = validate_X(est, X, reset=True)
    if y is None:
        raise ValueError(f"{type(est).__name__} requires y to be passed, but the target y is "
                         "None.")
    y_arr = np.asarray(y)
    if y_arr.ndim == 2 and y_arr.shape[1] == 1:
        from sklearn.utils import column_or_1d

        y_arr = column_or_1d(y_arr, warn=True)  # DataConversionWarning, as scikit-learn
    if y_arr.ndim != 1 or y_arr.shape[0] != t.shape[0]:
        raise ValueError(f"y must be 1-dimensional with {t.shape[0]} entries (one per row of "
                         f"X), got shape {y_arr.shape}.")
    check_classification_targets(y_arr)
    est.classes_, idx = np.unique(y_arr, return_inverse=True)
    if len(est.classes_) < 2:
        raise ValueError("The number of classes has to be greater than one. Got "
                         f"{len(est.classes_)} class.")
    return t, torch.as_tensor(idx.reshape(-1), device=t.device)


def _emission_stats(stats: dict[str, Tensor]) -> dict[str, Tensor]:
    return {k.removeprefix("emission."): v for k, v in stats.items() if k.startswith("emission.")}


def _priors(est: Any, model: MixtureModel) -> None:
    """Class frequencies (the M step's π) unless the user gave ``priors``."""
    k = len(est.classes_)
    if est.priors is not None:
        p = as_tensor(est.priors, name="priors", dtype=model.weights.dtype,
                      device=model.weights.device)
        if tuple(p.shape) != (k,):
            raise ValueError(f"priors must have shape ({k},), got {tuple(p.shape)}.")
        if bool((p < 0).any()):
            raise ValueError("priors must be non-negative.")
        if not math.isclose(float(p.sum()), 1.0, abs_tol=1e-8):
            warnings.warn("The priors do not sum to 1. Renormalizing", UserWarning,
                          stacklevel=3)
        model.weights = p / p.sum()
    est.priors_ = to_numpy(model.weights)


def _shrink(cov: Tensor, shrinkage: Any) -> Tensor:
    """(1 − s)·Σ + s·(tr Σ / D)·I: shrink towards a scaled identity (scikit-learn's float
    ``shrinkage``). cov: (*, D, D)."""
    if shrinkage is None:
        return cov
    if isinstance(shrinkage, str):
        raise ValueError("shrinkage='auto' (Ledoit–Wolf) is not supported by genmodels; give a "
                         "float in [0, 1].")
    s = check_nonnegative_float(shrinkage, "shrinkage")
    if s > 1:
        raise ValueError(f"shrinkage must be in [0, 1], got {shrinkage!r}.")
    d = cov.shape[-1]
    mu = cov.diagonal(dim1=-2, dim2=-1).sum(-1) / d
    eye = torch.eye(d, dtype=cov.dtype, device=cov.device)
    return (1 - s) * cov + s * mu[..., None, None] * eye


class _DiscriminantBase(TorchEstimatorMixin, ClassifierMixin, BaseEstimator):
    model_: MixtureModel
    classes_: np.ndarray

    def _log_joint(self, X: Any) -> Tensor:
        check_fitted(self, "model_")
        return self.model_.log_joint(validate_X(self, X, reset=False))

    def predict_proba(self, X: Any) -> np.ndarray:
        """Posterior class probabilities p̂(x̂ = k | y) (Eq. 2.6), (N, K)."""
        return to_numpy(torch.softmax(self._log_joint(X), dim=-1))

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """log p̂(x̂ = k | y), (N, K)."""
        return to_numpy(torch.log_softmax(self._log_joint(X), dim=-1))

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class (its label from ``classes_``), (N,)."""
        best = to_numpy(self._log_joint(X).argmax(-1))
        return np.asarray(self.classes_[best])


class QuadraticDiscriminantAnalysis(_DiscriminantBase):
    """QDA (Eq. 2.8): one Gaussian per class with its own covariance.

    Covariances, as scikit-learn ≥ 1.8 computes them: the per-class MLE (1/N_k); with
    ``solver="svd"`` regularised to (1 − reg_param)·Σ_k + reg_param·I; with
    ``solver="eigen"`` shrunk by a float ``shrinkage``. A class covariance with an eigenvalue
    ≤ ``tol`` raises ``ValueError`` naming the class (increase ``reg_param``/``shrinkage``).

    Fitted: ``classes_``, ``priors_``, ``means_`` (K, D), ``rotations_``/``scalings_``
    (eigenvectors/eigenvalues of each Σ_k, descending), ``covariance_`` (list of (D, D), when
    ``store_covariance``), ``n_features_in_``, ``model_`` (the torch ``MixtureModel``).
    """

    def __init__(self, *, solver: str = "svd", shrinkage: Any = None, priors: Any = None,
                 reg_param: float = 0.0, store_covariance: bool = False, tol: float = 1.0e-4,
                 covariance_estimator: Any = None, device: Any = None,
                 dtype: Any = "float64") -> None:
        self.solver = solver
        self.shrinkage = shrinkage
        self.priors = priors
        self.reg_param = reg_param
        self.store_covariance = store_covariance
        self.tol = tol
        self.covariance_estimator = covariance_estimator
        self.device = device
        self.dtype = dtype

    def fit(self, X: Any, y: Any) -> QuadraticDiscriminantAnalysis:
        """Per-class Gaussian MLE through the mixture M step with one-hot responsibilities."""
        check_choice(self.solver, "solver", ("svd", "eigen"))
        r = check_nonnegative_float(self.reg_param, "reg_param")
        if r > 1:
            raise ValueError(f"reg_param must be in [0, 1], got {self.reg_param!r}.")
        tol = check_nonnegative_float(self.tol, "tol")
        if self.covariance_estimator is not None:
            raise ValueError("covariance_estimator is not supported by genmodels' QDA.")
        if self.solver == "svd" and self.shrinkage is not None:
            raise NotImplementedError("shrinkage not supported with 'svd' solver.")
        t, idx = _labels(self, X, y)
        k, d = len(self.classes_), t.shape[1]
        counts = torch.bincount(idx, minlength=k)
        if bool((counts < 2).any()):
            c = self.classes_[int(torch.nonzero(counts < 2)[0])]
            raise ValueError(f"y has only 1 sample in class {c}, covariance is ill defined.")
        emission = GaussianEmission(k, d, "full", reg_covar=0.0, dtype=t.dtype, device=t.device)
        stats = supervised_stats(emission, t, idx, k)  # one-hot responsibilities (B:431)
        means, cov = emission.estimate(_emission_stats(stats))  # μ_k, Σ_k (1/N_k): §7.1
        model = MixtureModel(stats["weights"] / stats["weights"].sum(), emission)
        if self.solver == "svd":
            eye = torch.eye(d, dtype=cov.dtype, device=cov.device)
            cov = (1 - r) * cov + r * eye
        else:
            cov = _shrink(cov, self.shrinkage)
        scalings, rotations = torch.linalg.eigh(symmetrize(cov))
        scalings, rotations = scalings.flip(-1), rotations.flip(-1)  # descending
        for j in range(k):
            rank = int((scalings[j] > tol).sum())
            if rank < d:
                param = "shrinkage" if self.solver == "eigen" else "reg_param"
                raise ValueError(
                    f"The covariance matrix of class {self.classes_[j]} is not full rank "
                    f"(rank {rank} < {d} features at tol={tol:g}). Increase the value of "
                    f"`{param}` to reduce the collinearity."
                )
        emission.set_parameters(means=means, covariances=cov)
        _priors(self, model)
        self.model_ = model
        self.means_ = to_numpy(emission.means)
        self.scalings_ = [to_numpy(s) for s in scalings]
        self.rotations_ = [to_numpy(v) for v in rotations]
        if self.store_covariance:
            self.covariance_ = [to_numpy(c) for c in cov]
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        """Log posterior up to a per-sample constant (scikit-learn's convention: the joint
        without −½D log τ); for two classes the log-odds of ``classes_[1]``."""
        z = self._log_joint(X) + 0.5 * self.n_features_in_ * LOG_TAU
        out = to_numpy(z)
        return out[:, 1] - out[:, 0] if out.shape[1] == 2 else out


class LinearDiscriminantAnalysis(TransformerMixin, _DiscriminantBase):
    """LDA (Eq. 2.9): class Gaussians sharing one covariance (the ``Tied`` structure).

    The shared covariance follows scikit-learn's solvers: ``"svd"`` uses the pooled
    within-class scatter / N; ``"lsqr"`` and ``"eigen"`` use Σ_k π_k Σ̂_k (per-class
    MLEs weighted by the priors), optionally shrunk by a float ``shrinkage``. A singular
    shared covariance (e.g. a feature constant in every class) is regularised by adding the
    smallest sufficient multiple of its mean variance to the diagonal, with a
    ``DegenerateFitWarning``; directions of zero variance carry no class information, so the
    posterior is unaffected where the data are.

    Fitted: ``classes_``, ``priors_``, ``means_``, ``covariance_``, ``coef_``, ``intercept_``
    (ẑ_k = coef_k·y + intercept_k; for two classes one row, the log-odds), ``xbar_``,
    ``scalings_`` and ``explained_variance_ratio_`` (discriminant directions from the
    generalised eigenproblem S_b v = λ Σ v, for ``transform``), ``model_``.
    """

    def __init__(self, solver: str = "svd", shrinkage: Any = None, priors: Any = None,
                 n_components: int | None = None, store_covariance: bool = False,
                 tol: float = 1e-4, covariance_estimator: Any = None, device: Any = None,
                 dtype: Any = "float64") -> None:
        self.solver = solver
        self.shrinkage = shrinkage
        self.priors = priors
        self.n_components = n_components
        self.store_covariance = store_covariance
        self.tol = tol
        self.covariance_estimator = covariance_estimator
        self.device = device
        self.dtype = dtype

    def fit(self, X: Any, y: Any) -> LinearDiscriminantAnalysis:
        """Class means, priors and the shared covariance through the one-hot M step."""
        check_choice(self.solver, "solver", ("svd", "lsqr", "eigen"))
        check_nonnegative_float(self.tol, "tol")
        if self.covariance_estimator is not None:
            raise ValueError("covariance_estimator is not supported by genmodels' LDA.")
        if self.solver == "svd" and self.shrinkage is not None:
            raise NotImplementedError("shrinkage not supported with 'svd' solver.")
        t, idx = _labels(self, X, y)
        d = t.shape[1]
        k = len(self.classes_)
        max_comp = min(k - 1, d)
        if self.n_components is not None and not (1 <= self.n_components <= max_comp):
            raise ValueError(f"n_components cannot be larger than min(n_features, n_classes - 1)"
                             f" = {max_comp}, got {self.n_components}.")
        emission = GaussianEmission(k, d, "tied", reg_covar=0.0, dtype=t.dtype, device=t.device)
        stats = supervised_stats(emission, t, idx, k)  # one-hot responsibilities (B:431)
        means, mle = emission.estimate(_emission_stats(stats))  # μ_k and S_w / N (§7.1)
        counts = stats["weights"]
        model = MixtureModel(counts / counts.sum(), emission)
        _priors(self, model)
        pri = model.weights
        if self.solver == "svd":
            cov = mle  # pooled within-class scatter / N (scikit-learn >= 1.8)
        else:
            per_class = GaussianEmission(k, d, "full", reg_covar=0.0, dtype=t.dtype,
                                         device=t.device)
            _, class_cov = per_class.estimate(_emission_stats(
                supervised_stats(per_class, t, idx, k)))  # Σ̂_k (1/N_k)
            cov = (pri[:, None, None] * _shrink(class_cov, self.shrinkage)).sum(0)
        cov = self._regularised(symmetrize(cov))
        emission.set_parameters(means=means, covariances=cov)
        self.model_ = model
        self.means_ = to_numpy(means)
        if self.solver != "svd" or self.store_covariance:
            self.covariance_ = to_numpy(cov)
        # Eq. 2.9: linear scores.
        prec_means = torch.cholesky_solve(means.T, torch.linalg.cholesky(cov)).T  # Σ⁻¹μ_k
        coef = prec_means
        intercept = -0.5 * (means * prec_means).sum(-1) + torch.log(pri)
        if k == 2:
            coef, intercept = coef[1:] - coef[:1], intercept[1:] - intercept[:1]
        self.coef_ = to_numpy(coef)
        self.intercept_ = to_numpy(intercept)
        xbar = pri @ means
        self.xbar_ = to_numpy(xbar)
        # Discriminant directions: S_b v = λ Σ v, whitened by the Cholesky factor of Σ.
        diff = means - xbar
        s_b = (pri[:, None] * diff).T @ diff
        L = torch.linalg.cholesky(cov)
        a = torch.linalg.solve_triangular(L, torch.linalg.solve_triangular(
            L, s_b, upper=False).T, upper=False)
        evals, evecs = torch.linalg.eigh(symmetrize(a))
        evals, evecs = evals.flip(-1), evecs.flip(-1)
        scalings = torch.linalg.solve_triangular(L.T, evecs, upper=True)
        self.scalings_ = to_numpy(scalings)
        total = float(evals.clamp_min(0).sum()) or 1.0
        self.explained_variance_ratio_ = to_numpy(evals.clamp_min(0)[:max_comp] / total)
        self._max_components = max_comp
        return self

    def _regularised(self, cov: Tensor) -> Tensor:
        _, info = torch.linalg.cholesky_ex(cov)
        if int(info) == 0:
            return cov
        scale = float(cov.diagonal().mean()) or 1.0
        rel = 1e-10
        eye = torch.eye(cov.shape[0], dtype=cov.dtype, device=cov.device)
        while rel <= 1.0:
            out = cov + rel * scale * eye
            _, info = torch.linalg.cholesky_ex(out)
            if int(info) == 0:
                warnings.warn(
                    f"the shared covariance is singular (collinear or constant features); "
                    f"added {rel * scale:.3g} ({rel:g} × the mean variance) to its diagonal. "
                    "Use solver='lsqr' with shrinkage, or remove constant features, to choose "
                    "the regularisation yourself.", DegenerateFitWarning, stacklevel=3)
                return out
            rel *= 10.0
        raise ValueError("the shared covariance is not positive definite even after "
                         "regularisation; check the data for NaN-like scales.")

    def decision_function(self, X: Any) -> np.ndarray:
        """ẑ = X coef_ᵀ + intercept_ (Eq. 2.9); (N,) for two classes."""
        check_fitted(self, "model_")
        t = validate_X(self, X, reset=False)
        z = to_numpy(t) @ self.coef_.T + self.intercept_
        return np.asarray(z.ravel() if z.shape[1] == 1 else z)

    def transform(self, X: Any) -> np.ndarray:
        """Project onto the first ``n_components`` discriminant directions, (N, n_components).
        (Directions as the generalised eigenproblem gives them; scikit-learn's "svd" solver
        may scale or flip them differently.)"""
        check_fitted(self, "model_")
        t = validate_X(self, X, reset=False)
        m = self._max_components if self.n_components is None else self.n_components
        return np.asarray((to_numpy(t) - self.xbar_) @ self.scalings_[:, :m])


__all__ = ["LinearDiscriminantAnalysis", "QuadraticDiscriminantAnalysis"]
