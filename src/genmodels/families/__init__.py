"""Exponential families p(x | η) = h(x) exp{ηᵀ t(x) − A(η)} (CATALOGUE A4, A5, A6, D2)."""

from genmodels.families.base import (
    FAMILIES,
    ExponentialFamily,
    autograd_fisher,
    sample_with_generator,
)
from genmodels.families.continuous import (
    DiagonalNormal,
    FullNormal,
    Gamma,
    Normal,
    gaussian_ml,
)
from genmodels.families.discrete import Bernoulli, Categorical, Geometric, Poisson
from genmodels.families.glm import GLM_VIEWS, ExponentialDispersion
from genmodels.families.kl import (
    bregman_kl,
    kl_diag_std_normal,
    kl_diagonal_gaussian,
    kl_divergence,
    kl_gaussian,
    kl_tril_std_normal,
)

__all__ = [
    "FAMILIES",
    "GLM_VIEWS",
    "Bernoulli",
    "Categorical",
    "DiagonalNormal",
    "ExponentialDispersion",
    "ExponentialFamily",
    "FullNormal",
    "Gamma",
    "Geometric",
    "Normal",
    "Poisson",
    "autograd_fisher",
    "bregman_kl",
    "gaussian_ml",
    "kl_diag_std_normal",
    "kl_diagonal_gaussian",
    "kl_divergence",
    "kl_gaussian",
    "kl_tril_std_normal",
    "sample_with_generator",
]
