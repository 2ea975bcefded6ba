"""What every scikit-learn-style estimator in genmodels shares.

The estimators are thin faces over the models (DESIGN.md "Faces for users"): they validate and
convert input (NumPy arrays, pandas frames, torch tensors), hold ``dtype``/``device``, call the
model and learning layers, and return NumPy arrays as scikit-learn does.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from genmodels._validation import check_data_matrix, resolve_dtype
from genmodels.exceptions import NotFittedError


class TorchEstimatorMixin:
    """Input handling for estimators with ``dtype`` and ``device`` constructor arguments."""

    dtype: Any
    device: Any
    n_features_in_: int

    @property
    def _torch_dtype(self) -> torch.dtype:
        return resolve_dtype(self.dtype)

    def _validate_X(self, X: Any, *, reset: bool, min_samples: int = 1) -> Tensor:
        """X as an (N, D) tensor of the estimator's dtype and device.

        reset=True (in ``fit``) records ``n_features_in_`` (and ``feature_names_in_`` for
        frames); otherwise the number of features must match the fitted one.
        """
        name = type(self).__name__
        if not reset:
            check_fitted(self, "n_features_in_")
        t = check_data_matrix(X, min_samples=min_samples, dtype=self._torch_dtype,
                              device=self.device)
        if reset:
            self.n_features_in_ = int(t.shape[1])
            columns = getattr(X, "columns", None)
            if columns is not None and all(isinstance(c, str) for c in columns):
                self.feature_names_in_ = np.asarray(columns, dtype=object)
        elif t.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {t.shape[1]} features, but {name} is expecting {self.n_features_in_} "
                "features as input."
            )
        return t


def check_fitted(estimator: Any, attribute: str) -> None:
    """Raise ``NotFittedError`` if ``fit`` has not set ``attribute``."""
    if not hasattr(estimator, attribute):
        raise NotFittedError(
            f"This {type(estimator).__name__} instance is not fitted yet. Call 'fit' with "
            "appropriate arguments before using this estimator."
        )


def to_numpy(t: Tensor) -> np.ndarray:
    """A tensor as a NumPy array on the CPU (what scikit-learn users expect back)."""
    return t.detach().cpu().numpy()
