"""Warnings and errors raised by genmodels."""

from __future__ import annotations


class ConvergenceWarning(UserWarning):
    """An iterative fit stopped at ``max_iter`` before meeting its tolerance."""


class DegenerateFitWarning(UserWarning):
    """A fit hit a degenerate solution (a collapsed component, a singular covariance) and was
    regularised as documented."""


class NotFittedError(ValueError, AttributeError):
    """A method that needs fitted parameters was called before ``fit``."""


class JitterWarning(UserWarning):
    """A matrix that should be positive definite failed its Cholesky factorisation and was
    factorised after adding a small (dtype-relative) jitter to its diagonal."""
