"""genmodels: generative models and their learning algorithms, on PyTorch.

Exact inference where the maths allows it (mixtures, jointly Gaussian models, hidden Markov
models, Kalman filters and smoothers), approximate inference elsewhere, and learning as
minimising relative entropy (EM, recognition models, Monte Carlo gradients).

The public names below are imported lazily, on first use, so ``import genmodels`` stays cheap:
``from genmodels import GaussianMixture`` imports only the mixture code.
"""

from __future__ import annotations

import importlib
from typing import Any

from genmodels.exceptions import ConvergenceWarning, DegenerateFitWarning, NotFittedError
from genmodels.io import load, save

__version__ = "0.1.0"

#: public name → the module that defines it.
_LAZY: dict[str, str] = {
    # exponential families and divergences
    **{name: "genmodels.families" for name in (
        "ExponentialFamily", "Bernoulli", "Categorical", "Poisson", "Gamma", "Normal",
        "DiagonalNormal", "FullNormal", "kl_divergence", "kl_gaussian")},
    # emissions
    **{name: "genmodels.models.family_emissions" for name in (
        "BernoulliEmission", "CategoricalEmission", "PoissonEmission")},
    # mixtures, K-means, discriminant analysis
    **{name: "genmodels.estimators.mixture" for name in ("GaussianMixture", "KMeans")},
    **{name: "genmodels.estimators.discriminant" for name in (
        "LinearDiscriminantAnalysis", "QuadraticDiscriminantAnalysis")},
    "MixtureModel": "genmodels.models.mixture",
    "GaussianEmission": "genmodels.models.covariance",
    "kmeans": "genmodels.learning.kmeans",
    # jointly Gaussian models, factor analysis, PCA
    **{name: "genmodels.models.linear_gaussian" for name in (
        "LinearGaussian", "GaussianPosterior")},
    **{name: "genmodels.models.factor_analysis" for name in (
        "FactorAnalyzer", "ProbabilisticPCA", "EMPCA", "fit_ppca", "pca")},
    **{name: "genmodels.estimators.decomposition" for name in ("FactorAnalysis", "PCA")},
    # hidden Markov models
    "HiddenMarkovModel": "genmodels.models.hmm",
    **{name: "genmodels.estimators.hmm" for name in (
        "GaussianHMM", "CategoricalHMM", "PoissonHMM", "GMMHMM")},
    **{name: "genmodels.inference.hmm" for name in (
        "forward_backward", "forward_filter", "viterbi", "HMMPosterior")},
    # state-space models
    "LinearGaussianSSM": "genmodels.models.lgssm",
    "KalmanFilter": "genmodels.estimators.kalman",
    **{name: "genmodels.inference.kalman" for name in (
        "kalman_filter", "rts_smoother", "kalman_smoother", "LGSSMParams")},
    **{name: "genmodels.inference.particle" for name in ("particle_filter", "particle_smoother")},
    # networks, ICA, gradient estimators, natural gradients
    **{name: "genmodels.models.networks" for name in ("MLP", "ElmanRNN")},
    **{name: "genmodels.models.ica" for name in ("ICAModel", "amari_distance")},
    "InfomaxICA": "genmodels.estimators.ica",
    **{name: "genmodels.learning.estimators" for name in (
        "ScoreFunction", "Pathwise", "GaussianBackprop", "GumbelSoftmax",
        "gradient_diagnostics")},
    "NaturalGradient": "genmodels.learning.natural_gradient",
    # regression and generalised linear models
    **{name: "genmodels.models.glm" for name in ("GLM", "GLMResults")},
    "SeparationWarning": "genmodels.learning.irls",
    **{name: "genmodels.estimators.linear_model" for name in (
        "LinearRegression", "Ridge", "LogisticRegression", "PoissonRegressor", "GammaRegressor")},
    **{name: "genmodels.learning.regression" for name in ("loo_residuals", "kfold_residuals")},
    # variational autoencoders and gradient training
    "VAE": "genmodels.models.vae",
    **{name: "genmodels.learning.trainer" for name in ("Trainer", "TrainResult")},
    **{name: "genmodels.inference.variational" for name in (
        "jre_decomposition", "gaussian_vi_local")},
    # learning
    **{name: "genmodels.learning.em" for name in ("fit_em", "run_em", "EMResult", "EStep")},
    # noise-contrastive objectives, word embeddings, contrastive predictive coding
    **{name: "genmodels.learning.nce" for name in (
        "NCE", "InfoNCE", "GaussianNoise", "ModelNoise", "UnigramNoise", "nce_loss",
        "info_nce_loss", "in_batch_info_nce_loss", "local_nce_loss", "negative_sampling_loss")},
    **{name: "genmodels.models.energy" for name in (
        "GaussianEnergy", "GaussianMixtureEnergy", "TableEnergy")},
    **{name: "genmodels.models.cpc" for name in ("CPC", "BilinearCritic")},
    **{name: "genmodels.models.embeddings" for name in ("SkipGram", "WordVectors")},
    "Word2Vec": "genmodels.estimators.word2vec",
    # diffusion models, score matching, Langevin dynamics, normalising flows
    **{name: "genmodels.models.diffusion" for name in (
        "GaussianDiffusion", "GaussianSchedule", "LinearLogSNR", "CosineLogSNR",
        "diffusion_loss", "continuous_diffusion_loss", "diffusion_elbo")},
    **{name: "genmodels.models.denoisers" for name in ("MLPDenoiser", "ConvDenoiser")},
    **{name: "genmodels.inference.samplers" for name in (
        "ancestral_sample", "ddim_sample", "langevin", "annealed_langevin")},
    **{name: "genmodels.learning.score_matching" for name in (
        "tweedie_score", "dsm_loss", "NoiseConditionalScoreModel", "energy_distance")},
    **{name: "genmodels.models.flows" for name in (
        "Flow", "AdditiveCoupling", "AffineCoupling", "DiagonalScaling", "nice", "realnvp")},
    # harmoniums (RBMs), partition functions, contrastive divergence (issue 10)
    "Harmonium": "genmodels.models.harmonium",
    "BernoulliRBM": "genmodels.estimators.rbm",
    **{name: "genmodels.inference.partition" for name in (
        "PartitionEstimate", "exact_log_partition", "ais_log_partition",
        "partition_function_bruteforce")},
    **{name: "genmodels.learning.contrastive" for name in (
        "BoltzmannLearner", "CDNegative", "PersistentNegative", "ExactNegative",
        "boltzmann_gradient")},
    # sparse coding, Laplace's method, natural-image statistics
    **{name: "genmodels.models.sparse_coding" for name in (
        "SparseCodingModel", "fit_sparse_coding_em", "fit_lewicki_olshausen",
        "fit_map_dictionary")},
    **{name: "genmodels.estimators.sparse_coding" for name in (
        "SparseCoder", "DictionaryLearning", "MiniBatchDictionaryLearning")},
    **{name: "genmodels.inference.lasso" for name in ("lasso", "LassoSolution")},
    **{name: "genmodels.inference.laplace" for name in (
        "laplace_approximation", "LaplaceApproximation")},
}

__all__ = [
    "ConvergenceWarning",
    "DegenerateFitWarning",
    "NotFittedError",
    "__version__",
    "load",
    "save",
    *sorted(_LAZY),
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'genmodels' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
