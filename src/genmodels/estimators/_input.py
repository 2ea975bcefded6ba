"""scikit-learn's input conventions for the estimators of this package.

``validate_X`` runs ``sklearn.utils.check_array`` on array-likes (not on torch tensors) before
``TorchEstimatorMixin._validate_X``, so that sparse, complex, object, 1-D and empty inputs fail
with the messages scikit-learn users (and ``check_estimator``) expect; NaN/inf are still
reported by genmodels' check, which names the first offending index. ``check_fitted`` raises
an error that is both genmodels' and scikit-learn's ``NotFittedError``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import sklearn.exceptions
from torch import Tensor

from genmodels.estimators._base import TorchEstimatorMixin
from genmodels.exceptions import NotFittedError


class EstimatorNotFittedError(NotFittedError, sklearn.exceptions.NotFittedError):
    """``predict``/``score``/... called before ``fit`` (both libraries' exception types)."""


def check_fitted(estimator: Any, attribute: str) -> None:
    """Raise ``EstimatorNotFittedError`` if ``fit`` has not set ``attribute``."""
    if not hasattr(estimator, attribute):
        raise EstimatorNotFittedError(
            f"This {type(estimator).__name__} instance is not fitted yet. Call 'fit' with "
            "appropriate arguments before using this estimator."
        )


def validate_X(est: TorchEstimatorMixin, X: Any, *, reset: bool, min_samples: int = 1
               ) -> Tensor:
    """X as an (N, D) tensor of the estimator's dtype/device, scikit-learn's input rules."""
    if not reset:
        check_fitted(est, "n_features_in_")
    if isinstance(X, Tensor):
        return est._validate_X(X, reset=reset, min_samples=min_samples)
    from sklearn.utils import check_array

    arr = check_array(X, accept_sparse=False, dtype="numeric", ensure_all_finite=False,
                      ensure_min_samples=min_samples, input_name="X")
    t = est._validate_X(np.asarray(arr), reset=reset, min_samples=min_samples)
    columns = getattr(X, "columns", None)
    if reset and columns is not None and all(isinstance(c, str) for c in columns):
        est.feature_names_in_ = np.asarray(columns, dtype=object)
    return t


__all__ = ["EstimatorNotFittedError", "check_fitted", "validate_X"]
