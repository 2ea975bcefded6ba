"""What every scikit-learn-style estimator in genmodels shares.

The estimators are thin faces over the models (DESIGN.md "Faces for users"): they validate and
convert input (NumPy arrays, pandas frames, torch tensors), hold ``dtype``/``device``, call the
model and learning layers, and return NumPy arrays as scikit-learn does.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np
import sklearn.exceptions
import torch
from torch import Tensor

from genmodels._validation import check_bool, check_data_matrix, check_seed, resolve_dtype
from genmodels.exceptions import NotFittedError


def precheck_array(X: Any) -> Any:
    """Reject what scikit-learn estimators reject, in the words its ``check_estimator`` expects:
    sparse matrices (TypeError), complex data, 0-/1-D input and input with no features
    (ValueError). Numeric object arrays become float64 (non-numeric ones raise TypeError)."""
    if hasattr(X, "toarray") and hasattr(X, "nnz"):
        raise TypeError("sparse input is not supported; pass a dense array (X.toarray()).")
    if not (isinstance(X, (Tensor, np.ndarray)) or hasattr(X, "to_numpy")):
        X = np.asarray(X)
    kind = getattr(getattr(X, "dtype", None), "kind", None)
    if kind == "c" or (isinstance(X, Tensor) and X.is_complex()):
        raise ValueError("Complex data not supported.")
    if kind == "O" and isinstance(X, np.ndarray):
        X = X.astype(np.float64)
    ndim = len(getattr(X, "shape", ()))
    if ndim < 2:
        raise ValueError(
            f"Expected a 2-D array, got {ndim}-D input of shape {tuple(X.shape)}. Reshape your "
            "data with X.reshape(-1, 1) for a single feature or X.reshape(1, -1) for a single "
            "sample.")
    if ndim == 2 and X.shape[1] == 0:
        raise ValueError(f"Found array with 0 feature(s) (shape={tuple(X.shape)}) while a "
                         "minimum of 1 is required.")
    return X


def _string_columns(X: Any) -> np.ndarray | None:
    columns = getattr(X, "columns", None)
    if columns is not None and all(isinstance(c, str) for c in columns):
        return np.asarray(columns, dtype=object)
    return None


class TorchEstimatorMixin:
    """Input handling for estimators with ``dtype`` and ``device`` constructor arguments."""

    dtype: Any
    device: Any
    n_features_in_: int

    @property
    def _torch_dtype(self) -> torch.dtype:
        return resolve_dtype(self.dtype)

    def _validate_X(self, X: Any, *, reset: bool, min_samples: int = 1,
                    allow_nan: bool = False,
                    view: Callable[[Any], Any] | None = None) -> Tensor:
        """X as an (N, D) tensor of the estimator's dtype and device.

        reset=True (in ``fit``) records ``n_features_in_`` (and ``feature_names_in_`` for
        frames); otherwise the number of features must match the fitted one.
        allow_nan: leave out the finiteness pass, for a caller that reads it off a reduction
        of its own (PCA's Gram trace). view: a conversion applied after the pre-checks (PCA's
        no-copy ``_blas_view``).
        """
        name = type(self).__name__
        if reset:
            check_common_hyperparameters(self)
        else:
            check_fitted(self, "n_features_in_")
        X = precheck_array(X)
        columns = _string_columns(X)
        t = check_data_matrix(X if view is None else view(X), min_samples=min_samples,
                              dtype=self._torch_dtype, device=self.device, allow_nan=allow_nan)
        if reset:
            self.n_features_in_ = int(t.shape[1])
            if columns is not None:
                self.feature_names_in_ = columns
            elif hasattr(self, "feature_names_in_"):
                del self.feature_names_in_
            return t
        fitted = getattr(self, "feature_names_in_", None)
        if fitted is not None and columns is not None and (
                len(fitted) != len(columns) or not np.all(fitted == columns)):
            raise ValueError("The feature names should match those that were passed during fit.")
        if t.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {t.shape[1]} features, but {name} is expecting {self.n_features_in_} "
                "features as input."
            )
        return t


_BOOL_PARAMETERS: dict[type, tuple[str, ...]] = {}


def _bool_parameters(cls: type) -> tuple[str, ...]:
    """The constructor arguments of ``cls`` whose default is a bool (cached per class)."""
    if cls not in _BOOL_PARAMETERS:
        _BOOL_PARAMETERS[cls] = tuple(
            p.name for p in inspect.signature(cls).parameters.values()
            if isinstance(p.default, bool))
    return _BOOL_PARAMETERS[cls]


def check_common_hyperparameters(estimator: Any) -> None:
    """The checks every estimator shares, run at the start of each ``fit`` (by
    ``_validate_X(reset=True)``): ``random_state`` is a valid seed, and every argument whose
    default is a bool (``warm_start``, ``fit_intercept``, ``whiten``, ``copy_x``, ...) is a
    bool — not 0, 2 or 'a'. The estimator-specific ranges are checked by each ``fit``."""
    if hasattr(estimator, "random_state"):
        check_seed(estimator.random_state, "random_state")
    for name in _bool_parameters(type(estimator)):
        check_bool(getattr(estimator, name), name)


class EstimatorNotFittedError(NotFittedError, sklearn.exceptions.NotFittedError):
    """``predict``/``score``/... called before ``fit``: both genmodels' and scikit-learn's
    ``NotFittedError``, so either library's ``except`` clause catches it."""


def check_fitted(estimator: Any, attribute: str) -> None:
    """Raise ``EstimatorNotFittedError`` if ``fit`` has not set ``attribute``."""
    if not hasattr(estimator, attribute):
        raise EstimatorNotFittedError(
            f"This {type(estimator).__name__} instance is not fitted yet. Call 'fit' with "
            "appropriate arguments before using this estimator."
        )


def to_numpy(t: Tensor) -> np.ndarray:
    """A tensor as a NumPy array on the CPU (what scikit-learn users expect back)."""
    return t.detach().cpu().numpy()
