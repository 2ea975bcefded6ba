"""scikit-learn-style ``SparseCoder``, ``DictionaryLearning`` and ``MiniBatchDictionaryLearning``
over ``genmodels.models.sparse_coding`` and ``genmodels.inference.lasso``.

Names, parameters and fitted attributes mirror ``sklearn.decomposition``::

    from genmodels.estimators.sparse_coding import MiniBatchDictionaryLearning
    dl = MiniBatchDictionaryLearning(n_components=256, alpha=1.0).fit(X)
    codes = dl.transform(X); dl.components_          # (n_components, n_features)

The objective is scikit-learn's, ½‖y − Dᵀu‖² + alpha‖u‖₁ per sample with unit-norm atoms
(rows of ``components_``), which is the sparse-coding energy (Eq. 8.10) with λ = 1 and α =
alpha. Differences, on purpose:

* ``transform_algorithm``: "lasso_cd" (an active-set method finished by coordinate descent,
  exact to the KKT conditions; the default), "lasso_lars" (the homotopy) or "fista";
  scikit-learn's "omp", "lars" and "threshold" are not offered. ``fit_algorithm``: "cd"
  (alternating exact LASSO codes and block-coordinate atom updates, as scikit-learn does with
  its "cd"/"lars" codes), and the genmodels extras "em" (the book's EM with Gaussian
  recognition, Eqs. 8.8–8.11) and "lewicki_olshausen" (ascent of the Laplace-approximated
  marginal, G3) — those two learn an unconstrained C with the chosen ``prior``, ``lam`` and
  ``beta``.
* ``positive_code``, ``positive_dict`` and ``split_sign`` are not supported (ValueError).
* Extras: ``prior`` ("laplace", "cauchy", "cosh"), ``lam`` (λ, the emission precision),
  ``beta``; ``score_samples(X)`` is the Laplace approximation of log p̂(y) per datum (the
  corrected Eq. 2.34), ``score`` its mean; ``model_`` is the fitted ``SparseCodingModel``.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from torch import Tensor

from genmodels._validation import (
    as_tensor,
    check_bool,
    check_choice,
    check_nonnegative_float,
    check_positive_int,
    make_generator,
)
from genmodels.estimators._base import TorchEstimatorMixin, check_fitted, to_numpy
from genmodels.inference.lasso import check_dictionary, lasso
from genmodels.models.sparse_coding import (
    PRIORS,
    SparseCodingModel,
    fit_lewicki_olshausen,
    fit_map_dictionary,
    fit_sparse_coding_em,
)

__all__ = ["DictionaryLearning", "MiniBatchDictionaryLearning", "SparseCoder"]

TRANSFORM_ALGORITHMS = ("lasso_cd", "lasso_lars", "fista")
FIT_ALGORITHMS = ("cd", "em", "lewicki_olshausen")


def _reject_unsupported(est: Any) -> None:
    for name in ("positive_code", "positive_dict", "split_sign"):
        if check_bool(getattr(est, name, False), name):
            raise ValueError(f"{name}=True is not supported by genmodels' sparse coding.")


def _check_transform(est: Any) -> None:
    """The transform's settings, checked when fitting (not only at the first transform):
    transform_algorithm, transform_alpha (None or ≥ 0), transform_max_iter, n_jobs."""
    check_choice(est.transform_algorithm, "transform_algorithm", TRANSFORM_ALGORITHMS)
    if est.transform_alpha is not None:
        check_nonnegative_float(est.transform_alpha, "transform_alpha")
    check_positive_int(est.transform_max_iter, "transform_max_iter")
    _threads(est)


def _threads(est: Any) -> int | None:
    """n_jobs as a thread count: None (torch's), a positive count, or −1 (every core)."""
    if est.n_jobs is None:
        return None
    if est.n_jobs == -1 and not isinstance(est.n_jobs, bool):
        return os.cpu_count() or 1
    return check_positive_int(est.n_jobs, "n_jobs")


class _SparseCodingBase(ClassNamePrefixFeaturesOutMixin, TransformerMixin, TorchEstimatorMixin,
                        BaseEstimator):
    components_: np.ndarray

    @property
    def _n_features_out(self) -> int:
        return int(self.components_.shape[0])

    def _encode(self, X: Any, components: np.ndarray | Tensor) -> np.ndarray:
        t = self._validate_X(X, reset=False)
        algorithm = check_choice(self.transform_algorithm, "transform_algorithm",
                                 TRANSFORM_ALGORITHMS)
        alpha = self.alpha if getattr(self, "transform_alpha", None) is None \
            else self.transform_alpha
        alpha = check_nonnegative_float(alpha, "transform_alpha")
        C = torch.as_tensor(components, dtype=t.dtype, device=t.device).mT
        method = {"lasso_cd": "cd", "lasso_lars": "lars", "fista": "fista"}[algorithm]
        max_iter = check_positive_int(self.transform_max_iter, "transform_max_iter")
        return to_numpy(lasso(t, C, 1.0, alpha, method=method, max_iter=max_iter,
                              n_threads=_threads(self)).codes)

    def transform(self, X: Any) -> np.ndarray:
        """Sparse codes of X against ``components_``: argmin ½‖x − Dᵀu‖² + transform_alpha‖u‖₁.
        (N, D) → (N, n_components)."""
        check_fitted(self, "components_")
        _reject_unsupported(self)
        return self._encode(X, self.components_)

    def inverse_transform(self, X: Any) -> np.ndarray:
        """codes (N, K) → reconstructions codes @ components_ (N, D)."""
        check_fitted(self, "components_")
        U = np.asarray(X, dtype=np.float64)
        return U @ self.components_

    # -- genmodels extras ---------------------------------------------------------------------

    def _model(self) -> SparseCodingModel:
        check_fitted(self, "components_")
        model: SparseCodingModel | None = getattr(self, "model_", None)
        if model is None:
            K, D = self.components_.shape
            name = "alpha" if getattr(self, "transform_alpha", None) is None \
                else "transform_alpha"
            # the Laplace prior's rate: positive (a zero penalty has no density)
            alpha = check_nonnegative_float(getattr(self, name), name, strictly=True)
            model = SparseCodingModel(D, K, prior=getattr(self, "prior", "laplace"),
                                      alpha=alpha, beta=getattr(self, "beta", 10.0),
                                      lam=getattr(self, "lam", 1.0))
            model.set_dictionary(torch.as_tensor(self.components_.T.copy()))
        return model

    def score_samples(self, X: Any) -> np.ndarray:
        """The Laplace approximation of log p̂(y) per sample (Eqs. 2.32/2.34) under the model with
        the fitted dictionary, ``prior``, ``lam`` and ``beta``."""
        model = self._model()
        t = self._validate_X(X, reset=False)
        return to_numpy(model.log_marginal(t.to(model.dictionary.dtype)))

    def score(self, X: Any, y: Any = None) -> float:
        """Mean approximate log-likelihood per sample."""
        return float(np.mean(self.score_samples(X)))


class SparseCoder(_SparseCodingBase):
    """Sparse coding against a fixed dictionary, mirroring ``sklearn.decomposition.SparseCoder``.

    dictionary: (n_components, n_features), rows are atoms (no all-zero row).
    transform_algorithm: "lasso_cd", "lasso_lars" or "fista"; transform_alpha: the L1 penalty
    (default 1.0); transform_max_iter; n_jobs: threads for "lasso_cd" and "lasso_lars".
    """

    def __init__(self, dictionary: Any, *, transform_algorithm: str = "lasso_cd",
                 transform_n_nonzero_coefs: Any = None, transform_alpha: float | None = None,
                 split_sign: bool = False, n_jobs: int | None = None,
                 positive_code: bool = False, transform_max_iter: int = 1000,
                 dtype: str = "float64", device: Any = None) -> None:
        self.dictionary = dictionary
        self.transform_algorithm = transform_algorithm
        self.transform_n_nonzero_coefs = transform_n_nonzero_coefs
        self.transform_alpha = transform_alpha
        self.split_sign = split_sign
        self.n_jobs = n_jobs
        self.positive_code = positive_code
        self.transform_max_iter = transform_max_iter
        self.dtype = dtype
        self.device = device

    @property
    def alpha(self) -> float:
        return 1.0

    def fit(self, X: Any = None, y: Any = None) -> SparseCoder:
        """Only checks the dictionary, the settings (and X's width when given); nothing is
        learned."""
        _reject_unsupported(self)
        _check_transform(self)
        D = check_dictionary(as_tensor(self.dictionary, name="dictionary").mT,
                             name="dictionary.T")
        self.components_ = to_numpy(D.mT)
        self.n_components_ = int(D.shape[1])
        self.n_features_in_ = int(D.shape[0])
        if X is not None:
            self._validate_X(X, reset=False)
        return self

    def transform(self, X: Any, y: Any = None) -> np.ndarray:
        if not hasattr(self, "components_"):
            self.fit()
        return super().transform(X)


class _LearnerBase(_SparseCodingBase):
    def _check_common(self, t: Tensor) -> tuple[int, float]:
        _reject_unsupported(self)
        K = t.shape[1] if self.n_components is None else check_positive_int(self.n_components,
                                                                             "n_components")
        alpha = check_nonnegative_float(self.alpha, "alpha", strictly=True)
        check_choice(self.fit_algorithm, "fit_algorithm", FIT_ALGORITHMS)
        _check_transform(self)
        check_choice(self.prior, "prior", PRIORS)
        return K, alpha

    def _init_dictionary(self, t: Tensor, K: int) -> Tensor:
        if self.dict_init is not None:
            D = as_tensor(self.dict_init, name="dict_init", dtype=t.dtype, device=t.device)
            if D.shape != (K, t.shape[1]):
                raise ValueError(f"dict_init must have shape {(K, t.shape[1])}, got "
                                 f"{tuple(D.shape)}.")
            C = check_dictionary(D.mT, name="dict_init.T")
        else:  # K random data rows (jittered), unit norm
            g = make_generator(self.random_state)
            idx = torch.randint(0, t.shape[0], (K,), generator=g)
            C = t[idx].mT + 1e-3 * torch.randn(t.shape[1], K, generator=g, dtype=t.dtype)
        return C / C.norm(dim=0).clamp_min(torch.finfo(t.dtype).tiny)

    def _fit(self, X: Any, batch_size: int | None, max_iter: int, tol: float,
             max_no_improvement: int) -> None:
        t = self._validate_X(X, reset=True)
        K, alpha = self._check_common(t)
        C0 = self._init_dictionary(t, K)
        if self.fit_algorithm == "cd":
            res = fit_map_dictionary(t, C0, alpha, batch_size=batch_size, max_iter=max_iter,
                                     tol=tol, max_no_improvement=max_no_improvement,
                                     seed=self.random_state, n_threads=_threads(self))
            C, self.error_, self.n_iter_, self.n_steps_ = (res.dictionary, res.objective,
                                                          res.n_iter, res.n_steps)
            self.model_ = None
        else:
            model = SparseCodingModel(t.shape[1], K, prior=self.prior, alpha=alpha,
                                      beta=self.beta, lam=self.lam,
                                      dtype=str(t.dtype).removeprefix("torch."))
            model.set_dictionary(C0)
            if self.fit_algorithm == "em":
                hist = fit_sparse_coding_em(model, t, max_iter=max_iter, tol=tol,
                                            batch_size=batch_size or 1024, warn=False)
            else:
                hist = fit_lewicki_olshausen(model, t, n_iter=max_iter,
                                             learning_rate=self.learning_rate,
                                             batch_size=batch_size, seed=self.random_state)
            C = model.dictionary
            self.error_ = [-h for h in hist]
            self.n_iter_ = len(hist)
            self.n_steps_ = len(hist)
            self.model_ = model
        self.components_ = to_numpy(C.mT)
        self.n_components_ = K


class DictionaryLearning(_LearnerBase):
    """Dictionary learning, mirroring ``sklearn.decomposition.DictionaryLearning``.

    Parameters as scikit-learn's (n_components, alpha, max_iter, tol, fit_algorithm,
    transform_algorithm, transform_alpha, transform_max_iter, dict_init, random_state, n_jobs)
    plus prior, lam, beta, learning_rate (for "lewicki_olshausen"), dtype, device.
    ``code_init`` is accepted and ignored (the exact LASSO does not depend on a start).

    Fitted: components_ (n_components, n_features), error_ (the objective per iteration: for
    "cd" scikit-learn's per-sample mean of ½‖x − Dᵀu‖² + alpha‖u‖₁, for "em" the JRE per datum,
    for "lewicki_olshausen" the negative approximate log-marginal), n_iter_, model_ (the
    ``SparseCodingModel`` for "em"/"lewicki_olshausen").
    """

    def __init__(self, n_components: int | None = None, *, alpha: float = 1.0,
                 max_iter: int = 1000, tol: float = 1e-8, fit_algorithm: str = "cd",
                 transform_algorithm: str = "lasso_cd", transform_n_nonzero_coefs: Any = None,
                 transform_alpha: float | None = None, n_jobs: int | None = None,
                 code_init: Any = None, dict_init: Any = None, callback: Any = None,
                 verbose: bool = False, split_sign: bool = False, random_state: Any = None,
                 positive_code: bool = False, positive_dict: bool = False,
                 transform_max_iter: int = 1000, prior: str = "laplace", lam: float = 1.0,
                 beta: float = 10.0, learning_rate: float = 0.05, dtype: str = "float64",
                 device: Any = None) -> None:
        self.n_components = n_components
        self.alpha = alpha
        self.max_iter = max_iter
        self.tol = tol
        self.fit_algorithm = fit_algorithm
        self.transform_algorithm = transform_algorithm
        self.transform_n_nonzero_coefs = transform_n_nonzero_coefs
        self.transform_alpha = transform_alpha
        self.n_jobs = n_jobs
        self.code_init = code_init
        self.dict_init = dict_init
        self.callback = callback
        self.verbose = verbose
        self.split_sign = split_sign
        self.random_state = random_state
        self.positive_code = positive_code
        self.positive_dict = positive_dict
        self.transform_max_iter = transform_max_iter
        self.prior = prior
        self.lam = lam
        self.beta = beta
        self.learning_rate = learning_rate
        self.dtype = dtype
        self.device = device

    def fit(self, X: Any, y: Any = None) -> DictionaryLearning:
        self._fit(X, None, check_positive_int(self.max_iter, "max_iter"),
                  check_nonnegative_float(self.tol, "tol"), 1)
        return self

    def fit_transform(self, X: Any, y: Any = None) -> np.ndarray:
        return self.fit(X).transform(X)


class MiniBatchDictionaryLearning(_LearnerBase):
    """Online dictionary learning, mirroring ``sklearn.decomposition.MiniBatchDictionaryLearning``
    (Mairal et al. 2009/2010): minibatches of ``batch_size``, ``max_iter`` passes, stopping
    early when the pass objective improves by less than ``tol`` (relative) ``max_no_improvement``
    times in a row. Same extras as ``DictionaryLearning``. Fitted: components_, error_ (per
    pass), n_iter_ (passes), n_steps_ (minibatch updates)."""

    def __init__(self, n_components: int | None = None, *, alpha: float = 1.0,
                 max_iter: int = 1000, fit_algorithm: str = "cd", n_jobs: int | None = None,
                 batch_size: int = 256, shuffle: bool = True, dict_init: Any = None,
                 transform_algorithm: str = "lasso_cd", transform_n_nonzero_coefs: Any = None,
                 transform_alpha: float | None = None, verbose: bool = False,
                 split_sign: bool = False, random_state: Any = None,
                 positive_code: bool = False, positive_dict: bool = False,
                 transform_max_iter: int = 1000, callback: Any = None, tol: float = 1e-3,
                 max_no_improvement: int | None = 10, prior: str = "laplace",
                 lam: float = 1.0, beta: float = 10.0, learning_rate: float = 0.05,
                 dtype: str = "float64", device: Any = None) -> None:
        self.n_components = n_components
        self.alpha = alpha
        self.max_iter = max_iter
        self.fit_algorithm = fit_algorithm
        self.n_jobs = n_jobs
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.dict_init = dict_init
        self.transform_algorithm = transform_algorithm
        self.transform_n_nonzero_coefs = transform_n_nonzero_coefs
        self.transform_alpha = transform_alpha
        self.verbose = verbose
        self.split_sign = split_sign
        self.random_state = random_state
        self.positive_code = positive_code
        self.positive_dict = positive_dict
        self.transform_max_iter = transform_max_iter
        self.callback = callback
        self.tol = tol
        self.max_no_improvement = max_no_improvement
        self.prior = prior
        self.lam = lam
        self.beta = beta
        self.learning_rate = learning_rate
        self.dtype = dtype
        self.device = device

    def fit(self, X: Any, y: Any = None) -> MiniBatchDictionaryLearning:
        mni = self.max_no_improvement
        self._fit(X, check_positive_int(self.batch_size, "batch_size"),
                  check_positive_int(self.max_iter, "max_iter"),
                  check_nonnegative_float(self.tol, "tol"),
                  10**9 if mni is None else check_positive_int(mni, "max_no_improvement"))
        return self
