"""Learning algorithms: they take a model and data and fit the model's parameters."""

from genmodels.learning.em import EMResult, EStep, fit_em, run_em

__all__ = ["EMResult", "EStep", "fit_em", "run_em"]
