"""Exponential families p(x | η) = h(x) exp{ηᵀ t(x) − A(η)} (CATALOGUE A4, A5, A6, D2)."""

from genmodels.families.base import ExponentialFamily, autograd_fisher, sample_with_generator
from genmodels.families.continuous import (
    DiagonalNormal,
    FullNormal,
    Gamma,
    Normal,
    gaussian_ml,
)
from genmodels.families.discrete import Bernoulli, Categorical, Poisson
from genmodels.families.glm import GLM_VIEWS, ExponentialDispersion
from genmodels.families.kl import (
    bregman_kl,
    kl_diag_std_normal,
    kl_diagonal_gaussian,
    kl_divergence,
    kl_gaussian,
    kl_tril_std_normal,
)

#: every family by its ``name``: emissions (``FamilyEmission``), GLM responses (through
#: ``GLM_VIEWS``) and VAE likelihoods (``FamilyLikelihood``) choose a family from here.
FAMILIES: dict[str, type[ExponentialFamily]] = {
    f.name: f for f in (Bernoulli, Categorical, Poisson, Gamma, Normal, DiagonalNormal,
                        FullNormal)
}

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
