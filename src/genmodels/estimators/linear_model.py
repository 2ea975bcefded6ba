"""scikit-learn-style linear models over genmodels' regression and IRLS code.

``LinearRegression``, ``Ridge``, ``LogisticRegression``, ``PoissonRegressor`` and
``GammaRegressor`` mirror the scikit-learn classes of the same names (parameters, fitted
attributes ``coef_``/``intercept_``/``n_iter_``, objectives), so switching is an import change.
They solve the same penalised likelihood problems as scikit-learn:

* ``Ridge``: Σ_n s_n (y_n − xᵀw − b)² + α‖w‖² (the ridge/MAP estimate, Eq. 5.6);
* ``LogisticRegression``: C Σ_n s_n ℓ(y_n, xᵀw + b) + ½‖w‖² (``penalty=None``: C = ∞),
  binomial IRLS for two classes, softmax Newton (sum-to-zero classes) for more;
* ``PoissonRegressor``/``GammaRegressor``: (1/(2Σs)) Σ_n s_n d(y_n, μ_n) + ½α‖w‖² with the
  log link (d the unit deviance);

by IRLS/Newton with a Cholesky solve per step (no lbfgs), so ``tol`` is the Newton-decrement
tolerance of ``genmodels.learning.irls``, not scikit-learn's gradient tolerance. Intercepts are
never penalised.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import column_or_1d
from torch import Tensor

from genmodels._validation import as_tensor, check_nonnegative_float, check_positive_int
from genmodels.estimators._base import TorchEstimatorMixin, to_numpy
from genmodels.learning.irls import irls, multinomial_newton
from genmodels.learning.regression import least_squares
from genmodels.models.glm_families import Binomial, Family, Gamma, Log, Logit, Poisson


def _check_y(y: Any, n: int, dtype: torch.dtype, *, allow_2d: bool = False) -> Tensor:
    if y is None:
        raise ValueError("requires y to be passed, but the target y is None.")
    t = as_tensor(y, name="y", dtype=dtype)
    if t.dim() == 2 and t.shape[1] == 1 and not allow_2d:
        t = t[:, 0]
    if t.dim() not in ((1, 2) if allow_2d else (1,)):
        raise ValueError(f"y must be 1-dimensional, got shape {tuple(t.shape)}.")
    if t.shape[0] != n:
        raise ValueError(f"X has {n} samples but y has {t.shape[0]}.")
    return t


def _sample_weight(sample_weight: Any, n: int, dtype: torch.dtype) -> Tensor:
    if sample_weight is None:
        return torch.ones(n, dtype=dtype)
    s = as_tensor(sample_weight, name="sample_weight", dtype=dtype).reshape(-1)
    if s.shape[0] != n:
        raise ValueError(f"sample_weight has {s.shape[0]} entries but X has {n} samples.")
    if bool((s < 0).any()):
        raise ValueError("sample_weight must be non-negative.")
    if float(s.sum()) <= 0:
        raise ValueError("Sample weights must contain at least one non-zero number.")
    return s


def _with_intercept(X: Tensor, fit_intercept: bool) -> tuple[Tensor, Tensor]:
    """[X, 1] and the penalty mask (1 for coefficients, 0 for the intercept)."""
    mask = torch.ones(X.shape[1] + int(fit_intercept), dtype=X.dtype)
    if not fit_intercept:
        return X, mask
    mask[-1] = 0.0
    return torch.cat([X, torch.ones(X.shape[0], 1, dtype=X.dtype)], dim=1), mask


class _LinearBase(TorchEstimatorMixin, BaseEstimator):
    coef_: np.ndarray
    intercept_: Any

    def _validate_Xy(self, X: Any, y: Any, *, multi_output: bool = False,
                     y_numeric: bool = True, min_samples: int = 1) -> tuple[Tensor, Any]:
        """X through genmodels' validation (``_validate_X``); y as an array of one entry per
        row — a column vector is flattened with scikit-learn's DataConversionWarning unless
        ``multi_output``; numeric targets are checked by ``_check_y`` in ``fit``, labels here
        for NaN."""
        Xt = self._validate_X(X, reset=True, min_samples=min_samples)
        yv = np.asarray(y.to_numpy() if hasattr(y, "to_numpy") else y)
        if yv.ndim == 2 and yv.shape[1] == 1 and not multi_output:
            yv = column_or_1d(yv, warn=True)
        if yv.ndim == 0 or yv.shape[0] != Xt.shape[0]:
            raise ValueError(f"y must have one entry per row of X ({Xt.shape[0]}), got shape "
                             f"{yv.shape}.")
        if y_numeric and yv.dtype.kind in "OUS":
            try:
                yv = yv.astype(np.float64)
            except (TypeError, ValueError):
                raise ValueError("Unknown label type: y must be numeric for a regressor, got "
                                 f"values of dtype {yv.dtype}.") from None
        if not y_numeric and yv.dtype.kind == "f" and not bool(np.isfinite(yv).all()):
            raise ValueError(f"y contains a NaN or infinite label at index "
                             f"{int(np.flatnonzero(~np.isfinite(yv))[0])}.")
        return Xt, yv

    def _decision(self, X: Any) -> Tensor:
        Xt = self._validate_X(X, reset=False)
        coef = torch.as_tensor(np.asarray(self.coef_), dtype=Xt.dtype)
        b = torch.as_tensor(np.asarray(self.intercept_), dtype=Xt.dtype)
        return (Xt @ coef if coef.dim() == 1 else Xt @ coef.mT) + b


class LinearRegression(RegressorMixin, _LinearBase):
    """Ordinary (weighted) least squares by QR (Eq. 5.2; Eq. 5.10 with sample weights).

    Rank-deficient designs raise ``ValueError`` (use ``Ridge``)."""

    def __init__(self, *, fit_intercept: bool = True, dtype: Any = "float64",
                 device: Any = "cpu") -> None:
        self.fit_intercept = fit_intercept
        self.dtype = dtype
        self.device = device

    def _alpha(self) -> float:
        return 0.0

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> Any:
        if y is None:
            raise ValueError("requires y to be passed, but the target y is None.")
        Xt, yv = self._validate_Xy(X, y, multi_output=True, min_samples=2)
        yt = _check_y(yv, Xt.shape[0], Xt.dtype, allow_2d=True)
        s = _sample_weight(sample_weight, Xt.shape[0], Xt.dtype)
        Y = yt[:, None] if yt.dim() == 1 else yt
        if self.fit_intercept:  # centre (weighted): the intercept is then unpenalised
            xm = (s[:, None] * Xt).sum(0) / s.sum()
            ym = (s[:, None] * Y).sum(0) / s.sum()
        else:
            xm = torch.zeros(Xt.shape[1], dtype=Xt.dtype)
            ym = torch.zeros(Y.shape[1], dtype=Xt.dtype)
        w = least_squares(Xt - xm, Y - ym, weights=s, alpha=self._alpha(), method="qr")
        b = ym - xm @ w
        if yt.dim() == 1:
            self.coef_ = to_numpy(w[:, 0])
            self.intercept_ = float(b[0]) if self.fit_intercept else 0.0
        else:
            self.coef_ = to_numpy(w.mT)
            self.intercept_ = to_numpy(b)
        return self

    def predict(self, X: Any) -> np.ndarray:
        return to_numpy(self._decision(X))

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags


class Ridge(LinearRegression):
    """Ridge regression = MAP under a Gaussian prior (Eqs 5.3–5.6):
    minimises Σ s_n (y_n − xᵀw − b)² + alpha ‖w‖², by QR of the augmented design."""

    def __init__(self, alpha: float = 1.0, *, fit_intercept: bool = True,
                 dtype: Any = "float64", device: Any = "cpu") -> None:
        self.alpha = alpha
        self.fit_intercept = fit_intercept
        self.dtype = dtype
        self.device = device

    def _alpha(self) -> float:
        return check_nonnegative_float(self.alpha, "alpha")


class _GLMRegressor(RegressorMixin, _LinearBase):
    """Shared fit for the log-link GLM regressors."""

    _family: type[Family] = Poisson

    def __init__(self, *, alpha: float = 1.0, fit_intercept: bool = True, max_iter: int = 100,
                 tol: float = 1e-10, warm_start: bool = False, verbose: int = 0,
                 dtype: Any = "float64", device: Any = "cpu") -> None:
        self.alpha = alpha
        self.fit_intercept = fit_intercept
        self.max_iter = max_iter
        self.tol = tol
        self.warm_start = warm_start
        self.verbose = verbose
        self.dtype = dtype
        self.device = device

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> Any:
        alpha = check_nonnegative_float(self.alpha, "alpha")
        max_iter = check_positive_int(self.max_iter, "max_iter")
        tol = check_nonnegative_float(self.tol, "tol", strictly=True)
        if y is None:
            raise ValueError("requires y to be passed, but the target y is None.")
        Xt, yv = self._validate_Xy(X, y)
        yt = _check_y(yv, Xt.shape[0], Xt.dtype)
        family = self._family()
        family.check_response(yt)
        s = _sample_weight(sample_weight, Xt.shape[0], Xt.dtype)
        Z, mask = _with_intercept(Xt, self.fit_intercept)
        start = None
        if self.warm_start and hasattr(self, "coef_"):
            start = torch.cat([torch.as_tensor(self.coef_, dtype=Xt.dtype),
                               torch.tensor([self.intercept_], dtype=Xt.dtype)[:int(
                                   self.fit_intercept)]])
        elif self.fit_intercept:
            # Start at the intercept-only MLE (log of the weighted mean): always a valid mean.
            start = torch.zeros(Z.shape[1], dtype=Xt.dtype)
            start[-1] = torch.log((s * yt).sum() / s.sum()).clamp_min(-30.0)
        lam = alpha * float(s.sum())  # (1/(2Σs))Σ s d + ½α‖w‖² ⇔ ½Σ s d + ½(αΣs)‖w‖²
        r = irls(Z, yt, family, Log(), prior_weights=s, l2=lam, penalty_mask=mask, start=start,
                 max_iter=max_iter, tol=tol)
        w = r.params
        self.coef_ = to_numpy(w[: Xt.shape[1]])
        self.intercept_ = float(w[-1]) if self.fit_intercept else 0.0
        self.n_iter_ = r.n_iter
        return self

    def predict(self, X: Any) -> np.ndarray:
        return to_numpy(torch.exp(self._decision(X)))

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """D², the fraction of deviance explained (scikit-learn's score for these models)."""
        mu = torch.as_tensor(self.predict(X), dtype=torch.float64)
        yt = _check_y(y, mu.shape[0], torch.float64)
        s = _sample_weight(sample_weight, mu.shape[0], torch.float64)
        fam = self._family()
        dev = float(fam.deviance(yt, mu, s))
        null = float(fam.deviance(yt, torch.full_like(yt, float((s * yt).sum() / s.sum())), s))
        return 1.0 - dev / null if null > 0 else float("nan")

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.positive_only = True
        return tags


class PoissonRegressor(_GLMRegressor):
    """Poisson regression with the log link (CATALOGUE E7) by IRLS."""

    _family = Poisson


class GammaRegressor(_GLMRegressor):
    """Gamma regression with the log link by IRLS (Fisher scoring: the log link is not
    canonical for the Gamma)."""

    _family = Gamma


class LogisticRegression(ClassifierMixin, _LinearBase):
    """Logistic (two classes) or softmax (more classes) regression by IRLS/Newton (CATALOGUE E6).

    Minimises C Σ_n s_n (−log p(y_n | x_n)) + ½‖W‖² (penalty="l2") or the plain negative
    log-likelihood (penalty=None; separable classes then give a ``SeparationWarning``).
    """

    def __init__(self, penalty: str | None = "l2", *, C: float = 1.0, fit_intercept: bool = True,
                 max_iter: int = 100, tol: float = 1e-10, dtype: Any = "float64",
                 device: Any = "cpu") -> None:
        self.penalty = penalty
        self.C = C
        self.fit_intercept = fit_intercept
        self.max_iter = max_iter
        self.tol = tol
        self.dtype = dtype
        self.device = device

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> Any:
        if self.penalty not in ("l2", None):
            raise ValueError(f"penalty must be 'l2' or None, got {self.penalty!r}.")
        C = check_nonnegative_float(self.C, "C", strictly=True)
        max_iter = check_positive_int(self.max_iter, "max_iter")
        tol = check_nonnegative_float(self.tol, "tol", strictly=True)
        lam = 1.0 / C if self.penalty == "l2" else 0.0
        if y is None:
            raise ValueError("requires y to be passed, but the target y is None.")
        Xt, y_arr = self._validate_Xy(X, y, y_numeric=False)
        check_classification_targets(y_arr)
        self.classes_, codes = np.unique(y_arr, return_inverse=True)
        k = len(self.classes_)
        if k < 2:
            raise ValueError(f"This solver needs samples of at least 2 classes in the data, but "
                             f"the data contain only one class: {self.classes_[0]!r}.")
        s = _sample_weight(sample_weight, Xt.shape[0], Xt.dtype)
        Z, mask = _with_intercept(Xt, self.fit_intercept)
        d = Xt.shape[1]
        if k == 2:
            yt = torch.as_tensor(codes, dtype=Xt.dtype)
            r = irls(Z, yt, Binomial(), Logit(), prior_weights=s, l2=lam, penalty_mask=mask,
                     max_iter=max_iter, tol=tol)
            self.coef_ = to_numpy(r.params[:d])[None, :]
            self.intercept_ = np.array([float(r.params[-1]) if self.fit_intercept else 0.0])
            self.n_iter_ = np.array([r.n_iter])
        else:
            Y = torch.nn.functional.one_hot(torch.as_tensor(codes), k).to(Xt.dtype)
            m = multinomial_newton(Z, Y, prior_weights=s, l2=lam, penalty_mask=mask,
                                   max_iter=max_iter, tol=tol)
            W = m.params  # (D(+1), K)
            self.coef_ = to_numpy(W[:d].mT)
            self.intercept_ = to_numpy(W[-1]) if self.fit_intercept else np.zeros(k)
            self.n_iter_ = np.array([m.n_iter])
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        a = self._decision(X)
        return to_numpy(a[:, 0] if a.shape[1] == 1 else a)

    def predict_proba(self, X: Any) -> np.ndarray:
        a = self._decision(X)
        if a.shape[1] == 1:
            p1 = torch.sigmoid(a[:, 0])
            return to_numpy(torch.stack([1.0 - p1, p1], dim=1))
        return to_numpy(torch.softmax(a, dim=1))

    def predict_log_proba(self, X: Any) -> np.ndarray:
        a = self._decision(X)
        if a.shape[1] == 1:
            return to_numpy(torch.stack([-torch.nn.functional.softplus(a[:, 0]),
                                         -torch.nn.functional.softplus(-a[:, 0])], dim=1))
        return to_numpy(torch.log_softmax(a, dim=1))

    def predict(self, X: Any) -> np.ndarray:
        a = self._decision(X)
        idx = (a[:, 0] > 0).long() if a.shape[1] == 1 else a.argmax(1)
        return np.asarray(self.classes_)[to_numpy(idx)]


__all__ = [
    "GammaRegressor",
    "LinearRegression",
    "LogisticRegression",
    "PoissonRegressor",
    "Ridge",
]
