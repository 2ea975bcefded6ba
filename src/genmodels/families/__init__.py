"""Exponential families p(x | η) = h(x) exp{ηᵀ t(x) − A(η)} (CATALOGUE A4, A5, A6, D2)."""

from genmodels.families.base import ExponentialFamily, autograd_fisher, sample_with_generator
from genmodels.families.continuous import DiagonalNormal, FullNormal, Gamma, Normal
from genmodels.families.discrete import Bernoulli, Categorical, Poisson
from genmodels.families.kl import (
    bregman_kl,
    kl_diag_std_normal,
    kl_diagonal_gaussian,
    kl_divergence,
    kl_gaussian,
)

__all__ = [
    "Bernoulli",
    "Categorical",
    "DiagonalNormal",
    "ExponentialFamily",
    "FullNormal",
    "Gamma",
    "Normal",
    "Poisson",
    "autograd_fisher",
    "bregman_kl",
    "kl_diag_std_normal",
    "kl_diagonal_gaussian",
    "kl_divergence",
    "kl_gaussian",
    "sample_with_generator",
]
