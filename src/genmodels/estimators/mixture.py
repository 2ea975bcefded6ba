"""scikit-learn-compatible ``GaussianMixture`` and ``KMeans`` over genmodels' mixture models.

Same names, parameters and fitted attributes as ``sklearn.mixture.GaussianMixture`` and
``sklearn.cluster.KMeans`` (switching is an import change), plus ``device=`` and ``dtype=``
(float64 by default). Inputs may be NumPy arrays, pandas frames or torch tensors; outputs are
NumPy arrays. The work is done by ``genmodels.models.mixture.MixtureModel`` with a
``GaussianEmission``, EM by ``genmodels.learning.em`` and Lloyd's algorithm by
``genmodels.learning.kmeans``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClusterMixin, DensityMixin, TransformerMixin

from genmodels._threads import gemm_work, last_dim, work_sized
from genmodels._validation import (
    as_tensor,
    check_bool,
    check_choice,
    check_nonnegative_float,
    check_positive_int,
    make_generator,
)
from genmodels.estimators._base import TorchEstimatorMixin, check_fitted, to_numpy
from genmodels.learning.em import fit_em
from genmodels.learning.kmeans import kmeans, squared_distances
from genmodels.models.covariance import GaussianEmission, covariance_structure
from genmodels.models.mixture import INIT_METHODS, MixtureModel


def _gmm_work(self: Any, X: Any, *args: Any, **kwargs: Any) -> float:
    """One E step's log-density product: (N, D(D+1)/2) @ (D(D+1)/2, K) for full or tied
    covariances, (N, D) @ (D, K) for diagonal or spherical ones."""
    d = last_dim(X)
    width = d * (d + 1) / 2 if self.covariance_type in ("full", "tied") else d
    return gemm_work(X, self.n_components * width / max(d, 1))


def _kmeans_work(self: Any, X: Any, *args: Any, **kwargs: Any) -> float:
    """One distance product (N, D) @ (D, K)."""
    return gemm_work(X, self.n_clusters)


def _seed(random_state: Any) -> Any:
    """A torch seed from scikit-learn's random_state (None, int or RandomState)."""
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(0, 2**31 - 1))
    return random_state


class GaussianMixture(TorchEstimatorMixin, DensityMixin, BaseEstimator):
    """Gaussian mixture fitted by EM (§7.1), mirroring ``sklearn.mixture.GaussianMixture``.

    Parameters are scikit-learn's; ``reg_covar`` is added to the diagonal of every covariance
    estimate (documented regularisation). Extra: ``device`` (torch device) and ``dtype``.

    Fitted attributes: ``weights_`` (K,), ``means_`` (K, D), ``covariances_``,
    ``precisions_``, ``precisions_cholesky_`` (shapes by ``covariance_type``), ``converged_``,
    ``n_iter_``, ``lower_bound_`` (per-datum log-likelihood at the last E step),
    ``lower_bounds_`` (its trajectory), ``n_features_in_``, and ``model_`` (the torch
    ``MixtureModel``).
    """

    model_: MixtureModel

    def __init__(
        self,
        n_components: int = 1,
        *,
        covariance_type: str = "full",
        tol: float = 1e-3,
        reg_covar: float = 1e-6,
        max_iter: int = 100,
        n_init: int = 1,
        init_params: str = "kmeans",
        weights_init: Any = None,
        means_init: Any = None,
        precisions_init: Any = None,
        random_state: Any = None,
        warm_start: bool = False,
        verbose: int = 0,
        verbose_interval: int = 10,
        device: Any = None,
        dtype: Any = "float64",
    ) -> None:
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.device = device
        self.dtype = dtype

    # -- validation ---------------------------------------------------------------------------
    def _check_parameters(self) -> None:
        check_positive_int(self.n_components, "n_components")
        check_choice(self.covariance_type, "covariance_type",
                     ("full", "tied", "diag", "spherical"))
        check_nonnegative_float(self.tol, "tol")
        check_nonnegative_float(self.reg_covar, "reg_covar")
        check_positive_int(self.max_iter, "max_iter")
        check_bool(self.warm_start, "warm_start")
        check_positive_int(self.n_init, "n_init")
        check_choice(self.init_params, "init_params", INIT_METHODS)
        check_positive_int(self.verbose, "verbose", minimum=0)
        check_positive_int(self.verbose_interval, "verbose_interval")

    def _initializer(self, k: int, d: int) -> Any:
        dt = self._torch_dtype
        structure = covariance_structure(self.covariance_type)
        weights = means = precisions = None
        if self.weights_init is not None:
            weights = as_tensor(self.weights_init, name="weights_init", dtype=dt)
            if tuple(weights.shape) != (k,):
                raise ValueError(f"weights_init must have shape ({k},), got "
                                 f"{tuple(weights.shape)}.")
            if bool((weights < 0).any()) or bool((weights > 1).any()):
                raise ValueError("weights_init must be in [0, 1].")
            if not math.isclose(float(weights.sum()), 1.0, rel_tol=0, abs_tol=1e-6):
                raise ValueError(f"weights_init must sum to 1, got {float(weights.sum()):.5f}.")
        if self.means_init is not None:
            means = as_tensor(self.means_init, name="means_init", dtype=dt)
            if tuple(means.shape) != (k, d):
                raise ValueError(f"means_init must have shape {(k, d)}, got "
                                 f"{tuple(means.shape)}.")
        if self.precisions_init is not None:
            precisions = structure.check(self.precisions_init, k, d, name="precisions_init",
                                         dtype=dt)
        if weights is None and means is None and precisions is None:
            return None

        complete = weights is not None and means is not None and precisions is not None

        def apply(model: MixtureModel, data: torch.Tensor, generator: torch.Generator) -> None:
            # scikit-learn starts from responsibilities and then overrides what the user gave;
            # when all three are given the responsibilities do not matter, so skip them.
            em: Any = model.emission
            if complete:
                em.set_center(data)
            else:
                model.default_initialize(data, generator)
            dev = model.weights.device
            if weights is not None:
                model.weights = weights.to(dev) / weights.sum()
            em.set_parameters(means=None if means is None else means.to(dev),
                              precisions=None if precisions is None else precisions.to(dev))

        return apply

    # -- fitting ------------------------------------------------------------------------------
    @work_sized(_gmm_work)
    def fit(self, X: Any, y: Any = None) -> GaussianMixture:
        """Estimate the parameters by EM (n_init restarts, keep the best lower bound)."""
        self._fit(X)
        # (no labels: scikit-learn's fit runs fit_predict's final E step and discards its
        # labels; here that is one product over the data saved, 1/11 of the work of 5 EM
        # iterations)
        em: Any = self.model_.emission
        em.clear_cache()  # release the training data's cached features
        return self

    @work_sized(_gmm_work)
    def fit_predict(self, X: Any, y: Any = None) -> np.ndarray:
        """Fit, then return the most probable component of each sample."""
        model, t = self._fit(X)
        # the most probable component: argmax of the log joint (no softmax needed, Eq. 2.6),
        # in EM's chunks so that the cached features of each chunk serve
        labels = to_numpy(torch.cat([model.log_joint(c).argmax(-1)
                                     for c in torch.split(t, model._chunk_rows(t))]))
        em: Any = model.emission
        em.clear_cache()  # release the training data's cached features
        return labels

    def _fit(self, X: Any) -> tuple[MixtureModel, torch.Tensor]:
        """EM on X (validated here); sets the fitted attributes; → (model, X as a tensor)."""
        self._check_parameters()
        warm = bool(self.warm_start and hasattr(self, "model_"))
        t = self._validate_X(X, reset=not warm, min_samples=2)
        k, d = self.n_components, t.shape[1]
        if t.shape[0] < k:
            raise ValueError(f"Expected n_samples >= n_components but got n_components = {k}, "
                             f"n_samples = {t.shape[0]}")
        model: MixtureModel
        if warm:
            model = self.model_
        else:
            emission = GaussianEmission(k, d, self.covariance_type, reg_covar=self.reg_covar,
                                        dtype=t.dtype, device=t.device)
            model = MixtureModel(torch.ones(k, dtype=t.dtype, device=t.device), emission,
                                 init=self.init_params)
            model.initializer = self._initializer(k, d)
        em: Any = model.emission
        em.reg_covar = float(self.reg_covar)

        def report(it: int, ll: float) -> None:
            if self.verbose and it % self.verbose_interval == 0:
                print(f"  Iteration {it}\t lower bound {ll:.6f}")

        if self.max_iter == 0:  # scikit-learn allows initialising only
            model.initialize(t, make_generator(_seed(self.random_state)))
            self.converged_, self.n_iter_ = False, 0
            self.lower_bounds_ = []
            self.lower_bound_ = float(model.log_marginal(t).mean())
        else:
            result = fit_em(model, t, n_init=1 if warm else self.n_init, warm_start=warm,
                            seed=_seed(self.random_state), max_iter=self.max_iter, tol=self.tol,
                            per_datum=True, callback=report if self.verbose else None)
            self.converged_ = bool(result.converged)
            self.n_iter_ = int(result.n_iter)
            self.lower_bounds_ = list(result.log_likelihood)
            self.lower_bound_ = float(result.final)
        self.model_ = model
        self._store_attributes()
        return model, t

    def _store_attributes(self) -> None:
        em: Any = self.model_.emission
        self.weights_ = to_numpy(self.model_.weights)
        self.means_ = to_numpy(em.means)
        self.covariances_ = to_numpy(em.covariances)
        self.precisions_cholesky_ = to_numpy(em.precisions_cholesky)
        self.precisions_ = to_numpy(em.precisions)

    # -- inference ----------------------------------------------------------------------------
    @work_sized(_gmm_work)
    def score_samples(self, X: Any) -> np.ndarray:
        """log p̂(x_n) (Eq. 2.10), (N,)."""
        check_fitted(self, "model_")
        return to_numpy(self.model_.log_marginal(self._validate_X(X, reset=False)))

    def score(self, X: Any, y: Any = None) -> float:
        """Mean log-likelihood per sample."""
        return float(self.score_samples(X).mean())

    @work_sized(_gmm_work)
    def predict_proba(self, X: Any) -> np.ndarray:
        """Responsibilities p̂(x̂ = k | x_n) (Eq. 2.6), (N, K)."""
        check_fitted(self, "model_")
        t = self._validate_X(X, reset=False)
        return to_numpy(self.model_.posterior(t).responsibilities)

    def predict(self, X: Any) -> np.ndarray:
        """Most probable component of each sample, (N,)."""
        return np.asarray(self.predict_proba(X).argmax(-1))

    def sample(self, n_samples: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Draw (X (n, D), component labels (n,)) from the fitted model."""
        check_fitted(self, "model_")
        n = check_positive_int(n_samples, "n_samples")
        g = make_generator(_seed(self.random_state))
        states, ys = self.model_.sample(n, generator=g)
        order = torch.argsort(states, stable=True)  # scikit-learn returns them grouped
        return to_numpy(ys[order]), to_numpy(states[order])

    def _n_parameters(self) -> int:
        return self.model_.num_parameters()

    def bic(self, X: Any) -> float:
        """Bayesian information criterion on X (lower is better)."""
        n = self._validate_X(X, reset=False).shape[0]
        return float(-2 * self.score(X) * n + self._n_parameters() * np.log(n))

    def aic(self, X: Any) -> float:
        """Akaike information criterion on X (lower is better)."""
        n = self._validate_X(X, reset=False).shape[0]
        return float(-2 * self.score(X) * n + 2 * self._n_parameters())


class KMeans(TorchEstimatorMixin, ClusterMixin, TransformerMixin, BaseEstimator):
    """K-means (§7.1.1, Eq. 7.1), mirroring ``sklearn.cluster.KMeans`` (Lloyd's algorithm).

    Fitted attributes: ``cluster_centers_`` (K, D), ``labels_`` (N,), ``inertia_``,
    ``n_iter_``, ``n_features_in_``.
    """

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        init: Any = "k-means++",
        n_init: Any = "auto",
        max_iter: int = 300,
        tol: float = 1e-4,
        verbose: int = 0,
        random_state: Any = None,
        copy_x: bool = True,
        algorithm: str = "lloyd",
        device: Any = None,
        dtype: Any = "float64",
    ) -> None:
        self.n_clusters = n_clusters
        self.init = init
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.verbose = verbose
        self.random_state = random_state
        self.copy_x = copy_x
        self.algorithm = algorithm
        self.device = device
        self.dtype = dtype

    @work_sized(_kmeans_work)
    def fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> KMeans:
        """Cluster X (keeps the best of ``n_init`` runs by inertia)."""
        k = check_positive_int(self.n_clusters, "n_clusters")
        check_choice(self.algorithm, "algorithm", ("lloyd", "elkan"))
        t = self._validate_X(X, reset=True)
        weights = None
        if sample_weight is not None:
            weights = as_tensor(np.asarray(sample_weight, dtype=np.float64), name="sample_weight",
                                dtype=t.dtype, device=t.device)
            if weights.dim() == 0:
                weights = weights.expand(t.shape[0]).clone()
            if tuple(weights.shape) != (t.shape[0],):
                raise ValueError(f"sample_weight.shape == {tuple(weights.shape)}, expected "
                                 f"{(t.shape[0],)}!")
            if bool((weights < 0).any()) or float(weights.sum()) <= 0:
                raise ValueError("sample_weight must be non-negative and not all zero.")
        if t.shape[0] < k:
            raise ValueError(f"n_samples={t.shape[0]} should be >= n_clusters={k}.")
        init: Any = self.init
        if isinstance(init, str):
            check_choice(init, "init", ("k-means++", "random"))
        else:
            init = as_tensor(init, name="init", dtype=t.dtype, device=t.device)
        n_init = self.n_init
        if n_init == "auto":  # scikit-learn: 1 run for k-means++, 10 for random
            n_init = 1 if (isinstance(init, str) and init == "k-means++") or not isinstance(
                init, str) else 10
        res = kmeans(t, k, init=init, n_init=n_init, max_iter=self.max_iter, tol=self.tol,
                     seed=_seed(self.random_state), sample_weight=weights)
        self.cluster_centers_ = to_numpy(res.centers)
        self.labels_ = to_numpy(res.labels)
        self.inertia_ = float(res.inertia)
        self.n_iter_ = int(res.n_iter)
        return self

    @work_sized(_kmeans_work)
    def _distances(self, X: Any) -> torch.Tensor:
        check_fitted(self, "cluster_centers_")
        t = self._validate_X(X, reset=False)
        centers = as_tensor(self.cluster_centers_, name="cluster_centers_", dtype=t.dtype,
                            device=t.device)
        return squared_distances(t, centers)

    def predict(self, X: Any) -> np.ndarray:
        """Index of the nearest centre (Eq. 7.1), (N,)."""
        return to_numpy(self._distances(X).argmin(-1))

    def fit_predict(self, X: Any, y: Any = None, sample_weight: Any = None) -> np.ndarray:
        return np.asarray(self.fit(X, sample_weight=sample_weight).labels_)

    def transform(self, X: Any) -> np.ndarray:
        """Euclidean distances to every centre, (N, K)."""
        return to_numpy(self._distances(X).sqrt())

    def fit_transform(self, X: Any, y: Any = None, sample_weight: Any = None) -> np.ndarray:
        return np.asarray(self.fit(X, sample_weight=sample_weight).transform(X))

    def score(self, X: Any, y: Any = None, sample_weight: Any = None) -> float:
        """Negative inertia of X under the fitted centres."""
        return float(-self._distances(X).min(-1).values.sum())


__all__ = ["GaussianMixture", "KMeans"]
