"""genmodels: generative models and their learning algorithms, on PyTorch.

Exact inference where the maths allows it (mixtures, jointly Gaussian models, hidden Markov
models, Kalman filters and smoothers), approximate inference elsewhere, and learning as
minimising relative entropy (EM, recognition models, noise contrast, contrastive divergence).
"""

from __future__ import annotations

from genmodels.exceptions import ConvergenceWarning, DegenerateFitWarning, NotFittedError
from genmodels.io import load, save

__version__ = "0.1.0"

__all__ = [
    "ConvergenceWarning",
    "DegenerateFitWarning",
    "NotFittedError",
    "__version__",
    "load",
    "save",
]
