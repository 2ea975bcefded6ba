"""scikit-learn-compatible ``BayesianGaussianMixture``: the variational Bayesian Gaussian
mixture fitted by coordinate-ascent mean field (book §8.4; Bishop 2006 §10.2).

Same names, parameters and fitted attributes as ``sklearn.mixture.BayesianGaussianMixture``;
the CAVI updates and the lower bound are ``genmodels.inference.mean_field``'s and follow
scikit-learn's number for number from the same initial responsibilities. Extras:
``responsibilities_init`` ((N, K) starting responsibilities, overriding ``init_params``),
``device=`` and ``dtype=`` (float64 by default).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.exceptions import ConvergenceWarning

from genmodels._validation import (
    as_tensor,
    check_choice,
    check_nonnegative_float,
    check_positive_int,
    make_generator,
)
from genmodels.estimators._base import TorchEstimatorMixin, check_fitted, to_numpy
from genmodels.estimators.mixture import _seed
from genmodels.inference.mean_field import (
    VBGMMPosterior,
    VBGMMPrior,
    check_vbgmm_prior,
    vbgmm_cavi,
    vbgmm_predict_log_resp,
    vbgmm_weights,
)
from genmodels.models.covariance import GaussianEmission, covariance_structure
from genmodels.models.mixture import INIT_METHODS, MixtureModel

__all__ = ["BayesianGaussianMixture"]

WEIGHT_TYPES = ("dirichlet_process", "dirichlet_distribution")

#: the estimator's names of the prior's fields, in the refusals of ``check_vbgmm_prior``
_PRIOR_NAMES = {"weight_type": "weight_concentration_prior_type",
                "weight_concentration": "weight_concentration_prior",
                "mean_precision": "mean_precision_prior", "mean": "mean_prior",
                "degrees_of_freedom": "degrees_of_freedom_prior",
                "covariance": "covariance_prior"}


class BayesianGaussianMixture(TorchEstimatorMixin, DensityMixin, BaseEstimator):
    """Variational Bayesian Gaussian mixture, mirroring scikit-learn's.

    Priors (defaults as scikit-learn's): weight concentration α₀ = 1/K; mean precision
    β₀ = 1; mean m₀ = the data mean; degrees of freedom ν₀ = D; covariance prior W₀⁻¹ = the
    data covariance (its diagonal, or the mean variance, for diag and spherical).

    Fitted attributes: ``weights_``, ``means_``, ``covariances_``, ``precisions_``,
    ``precisions_cholesky_``, ``weight_concentration_`` (a pair of arrays for the Dirichlet
    process), ``mean_precision_``, ``degrees_of_freedom_``, the ``*_prior_`` values used,
    ``converged_``, ``n_iter_``, ``lower_bound_``, ``lower_bounds_`` and ``n_features_in_``.
    """

    posterior_: VBGMMPosterior
    prior_: VBGMMPrior
    lower_bound_: float

    def __init__(self, n_components: int = 1, *, covariance_type: str = "full",
                 tol: float = 1e-3, reg_covar: float = 1e-6, max_iter: int = 100,
                 n_init: int = 1, init_params: str = "kmeans",
                 weight_concentration_prior_type: str = "dirichlet_process",
                 weight_concentration_prior: float | None = None,
                 mean_precision_prior: float | None = None, mean_prior: Any = None,
                 degrees_of_freedom_prior: float | None = None, covariance_prior: Any = None,
                 random_state: Any = None, warm_start: bool = False, verbose: int = 0,
                 verbose_interval: int = 10, responsibilities_init: Any = None,
                 device: Any = None, dtype: Any = "float64") -> None:
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weight_concentration_prior_type = weight_concentration_prior_type
        self.weight_concentration_prior = weight_concentration_prior
        self.mean_precision_prior = mean_precision_prior
        self.mean_prior = mean_prior
        self.degrees_of_freedom_prior = degrees_of_freedom_prior
        self.covariance_prior = covariance_prior
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.responsibilities_init = responsibilities_init
        self.device = device
        self.dtype = dtype

    # -- priors ---------------------------------------------------------------------------
    def _prior(self, t: torch.Tensor) -> VBGMMPrior:
        """The priors, scikit-learn's defaults where unset, through ``check_vbgmm_prior`` (the
        kernel's own check) under the estimator's parameter names."""
        k, d = self.n_components, t.shape[1]
        kind = self.covariance_type
        if self.covariance_prior is None:
            centred = t - t.mean(0)
            cov = centred.T @ centred / (t.shape[0] - 1)  # np.cov(X.T), ddof = 1
            w0: Any = cov if kind in ("full", "tied") else (
                cov.diagonal().clone() if kind == "diag" else cov.diagonal().mean())
        else:
            w0 = self.covariance_prior
        prior = VBGMMPrior(
            self.weight_concentration_prior_type,
            1.0 / k if self.weight_concentration_prior is None
            else self.weight_concentration_prior,
            1.0 if self.mean_precision_prior is None else self.mean_precision_prior,
            t.mean(0) if self.mean_prior is None else self.mean_prior,
            float(d) if self.degrees_of_freedom_prior is None else self.degrees_of_freedom_prior,
            w0)
        return check_vbgmm_prior(prior, d, kind, t, _PRIOR_NAMES, data="X")

    def _check_parameters(self) -> None:
        check_positive_int(self.n_components, "n_components")
        check_choice(self.covariance_type, "covariance_type",
                     ("full", "tied", "diag", "spherical"))
        check_nonnegative_float(self.tol, "tol")
        check_nonnegative_float(self.reg_covar, "reg_covar")
        check_positive_int(self.max_iter, "max_iter", minimum=0)
        check_positive_int(self.n_init, "n_init")
        check_choice(self.init_params, "init_params", INIT_METHODS)
        check_choice(self.weight_concentration_prior_type, "weight_concentration_prior_type",
                     WEIGHT_TYPES)
        check_positive_int(self.verbose, "verbose", minimum=0)
        check_positive_int(self.verbose_interval, "verbose_interval")

    def _initial_resp(self, t: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        k = self.n_components
        if self.responsibilities_init is not None:
            r = as_tensor(self.responsibilities_init, name="responsibilities_init",
                          dtype=t.dtype).to(t.device)
            if tuple(r.shape) != (t.shape[0], k):
                raise ValueError(f"responsibilities_init must have shape {(t.shape[0], k)}, "
                                 f"got {tuple(r.shape)}.")
            if bool((r < 0).any()) or not torch.allclose(r.sum(1), torch.ones_like(r[:, 0])):
                raise ValueError("responsibilities_init rows must be non-negative and sum "
                                 "to 1.")
            return r
        # the same initial responsibilities as GaussianMixture (one code path)
        helper = MixtureModel(torch.ones(k, dtype=t.dtype), GaussianEmission(
            k, t.shape[1], "diag", dtype=t.dtype, device=t.device), init=self.init_params)
        return helper.responsibilities_init(t, gen)

    # -- fitting --------------------------------------------------------------------------
    def fit(self, X: Any, y: Any = None) -> BayesianGaussianMixture:
        """Fit by CAVI (n_init restarts, keep the best lower bound)."""
        self.fit_predict(X, y)
        return self

    def fit_predict(self, X: Any, y: Any = None) -> np.ndarray:
        """Fit, then return the most probable component of each sample."""
        self._check_parameters()
        warm = bool(self.warm_start and hasattr(self, "posterior_"))
        t = self._validate_X(X, reset=not warm, min_samples=2)
        k = self.n_components
        if t.shape[0] < k:
            raise ValueError(f"Expected n_samples >= n_components but got n_components = {k}, "
                             f"n_samples = {t.shape[0]}")
        prior = self.prior_ if warm else self._prior(t)
        gen = make_generator(_seed(self.random_state))
        best = None
        for _ in range(1 if warm else self.n_init):
            if warm:
                fit = vbgmm_cavi(t, prior, self.covariance_type, posterior0=self.posterior_,
                                 reg_covar=self.reg_covar, max_iter=self.max_iter,
                                 tol=self.tol, previous_bound=self.lower_bound_)
            else:
                resp = self._initial_resp(t, gen)
                fit = vbgmm_cavi(t, prior, self.covariance_type, resp0=resp,
                                 reg_covar=self.reg_covar, max_iter=self.max_iter,
                                 tol=self.tol)
            bound = float(fit.lower_bounds[-1]) if len(fit.lower_bounds) else -math.inf
            if best is None or bound > best[0]:
                best = (bound, fit)
            if self.verbose:
                for i, lb in enumerate(fit.lower_bounds.tolist(), 1):
                    if i % self.verbose_interval == 0:
                        print(f"  Iteration {i}\t lower bound {lb:.6f}")
        assert best is not None
        bound, fit = best
        if not fit.converged and self.max_iter > 0:
            warnings.warn("Best performing initialization did not converge. Try different "
                          "init parameters, or increase max_iter, tol, or check for "
                          "degenerate data.", ConvergenceWarning, stacklevel=2)
        self.prior_ = prior
        self.posterior_ = fit.posterior
        self.converged_ = bool(fit.converged)
        self.n_iter_ = len(fit.lower_bounds)
        self.lower_bounds_ = fit.lower_bounds.tolist()
        self.lower_bound_ = bound
        self._store_attributes()
        return np.asarray(self.predict_proba(t).argmax(-1))

    def _store_attributes(self) -> None:
        p, pr = self.posterior_, self.prior_
        wc = to_numpy(p.weight_concentration)
        self.weight_concentration_ = (wc[0], wc[1]) if pr.weight_type == WEIGHT_TYPES[0] else wc
        self.weight_concentration_prior_ = pr.weight_concentration
        self.mean_precision_prior_ = pr.mean_precision
        self.mean_prior_ = to_numpy(pr.mean)
        self.degrees_of_freedom_prior_ = pr.degrees_of_freedom
        self.covariance_prior_ = to_numpy(pr.covariance)
        self.weights_ = to_numpy(vbgmm_weights(p, pr.weight_type))
        self.means_ = to_numpy(p.means)
        self.mean_precision_ = to_numpy(p.mean_precision)
        self.degrees_of_freedom_ = to_numpy(p.degrees_of_freedom)
        self.covariances_ = to_numpy(p.covariances)
        self.precisions_cholesky_ = to_numpy(p.precisions_cholesky)
        self.precisions_ = to_numpy(covariance_structure(self.covariance_type).precision(
            p.precisions_cholesky))

    # -- inference ------------------------------------------------------------------------
    def _log_resp(self, X: Any) -> tuple[torch.Tensor, torch.Tensor]:
        check_fitted(self, "posterior_")
        t = self._validate_X(X, reset=False)
        post: VBGMMPosterior = self.posterior_
        return vbgmm_predict_log_resp(t, post, self.prior_, self.covariance_type)

    def score_samples(self, X: Any) -> np.ndarray:
        """log Σ_k exp(E_q[log π_k] + E_q[log N(x_n; μ_k, Λ_k⁻¹)] + ...) per sample (the
        variational log-density scikit-learn reports), (N,)."""
        return to_numpy(self._log_resp(X)[0])

    def score(self, X: Any, y: Any = None) -> float:
        """Mean of ``score_samples``."""
        return float(self.score_samples(X).mean())

    def predict_proba(self, X: Any) -> np.ndarray:
        """Responsibilities r_nk (Bishop Eq. 10.49), (N, K)."""
        return to_numpy(self._log_resp(X)[1].exp())

    def predict(self, X: Any) -> np.ndarray:
        """Most probable component of each sample, (N,)."""
        return np.asarray(self.predict_proba(X).argmax(-1))

    def sample(self, n_samples: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Draw (X (n, D), labels (n,)) from the plug-in mixture (weights_, means_,
        covariances_), grouped by component as scikit-learn returns them."""
        check_fitted(self, "posterior_")
        n = check_positive_int(n_samples, "n_samples")
        p = self.posterior_
        k, d = p.means.shape
        em = GaussianEmission(k, d, self.covariance_type, dtype=p.means.dtype,
                              device=p.means.device)
        em.set_parameters(means=p.means, covariances=p.covariances)
        model = MixtureModel(vbgmm_weights(p, self.prior_.weight_type), em)
        states, ys = model.sample(n, generator=make_generator(_seed(self.random_state)))
        order = torch.argsort(states, stable=True)
        return to_numpy(ys[order]), to_numpy(states[order])
