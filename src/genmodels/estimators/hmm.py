"""hmmlearn-compatible estimators: ``GaussianHMM``, ``CategoricalHMM``, ``PoissonHMM``,
``GMMHMM`` — a one-line import change from ``hmmlearn.hmm``.

Same constructor parameters (``n_components``, ``covariance_type``, ``n_iter``, ``tol``,
``params``, ``init_params``, ``random_state``, ...), fitted attributes (``startprob_``,
``transmat_``, ``means_``, ``covars_``, ``emissionprob_``, ``lambdas_``, ``weights_``,
``monitor_``) and methods (``fit(X, lengths)``, ``score``, ``score_samples``, ``decode``,
``predict``, ``predict_proba``, ``sample``). Data use hmmlearn's layout: all sequences stacked
in one (Σ T_i, D) array plus ``lengths``.

Underneath: ``genmodels.models.hmm.HiddenMarkovModel`` and the one EM engine. As in hmmlearn,
parameters not in ``init_params`` are taken from the attributes you set before ``fit``, and
parameters not in ``params`` are held fixed (the engine's frozen set).

The Dirichlet priors over the start and transition probabilities, ``startprob_prior`` and
``transmat_prior`` (scalars or arrays; 1, the default, is maximum likelihood), are hmmlearn's:
the M step takes the posterior mode. Differences from hmmlearn, on purpose: the emissions'
priors (``means_prior``, ``covars_prior``, ``*_weight``) are replaced by maximum likelihood
plus ``reg_covar`` added to every estimated covariance's diagonal (scikit-learn's meaning; 0
gives hmmlearn's estimates with ``covars_prior=0``); ``implementation`` is replaced by
``method`` (the inference form, see ``genmodels.inference.hmm``); a cold start uses uniform
``startprob_``/``transmat_``, k-means++ means and the data covariance (+ ``min_covar``) for
every state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from sklearn.base import BaseEstimator

from genmodels._threads import gemm_work, work_sized
from genmodels._validation import (
    check_choice,
    check_nonnegative_float,
    check_positive_int,
    make_generator,
)
from genmodels.estimators._base import (
    TorchEstimatorMixin,
    check_common_hyperparameters,
    check_fitted,
    to_numpy,
)
from genmodels.inference.hmm import METHODS as HMM_METHODS
from genmodels.learning.em import run_em
from genmodels.models.covariance import GaussianEmission
from genmodels.models.family_emissions import CategoricalEmission, PoissonEmission
from genmodels.models.hmm import (
    GaussianMixtureEmission,
    HiddenMarkovModel,
    HMMData,
    pack_sequences,
)

__all__ = ["GMMHMM", "CategoricalHMM", "ConvergenceMonitor", "GaussianHMM", "PoissonHMM"]

#: hmmlearn's parameter letters → the model's parameter names.
LETTERS = {"s": "initial_probs", "t": "transition_matrix", "m": "means", "c": "covariances",
           "e": "probs", "l": "rates", "w": "weights"}


def _hmm_work(self: Any, X: Any, *args: Any, **kwargs: Any) -> float:
    """The emission table's work, (Σ T_i, D) against K states (the recursions themselves split
    across sequences by their own rule, ``genmodels.inference._hmm_compiled``)."""
    return gemm_work(X, self.n_components)


@dataclass
class ConvergenceMonitor:
    """What EM did (hmmlearn's ``monitor_``): ``history`` holds the total log-likelihood
    log p̂(X) at each iteration's E step (non-decreasing), ``iter`` the iterations run."""

    tol: float
    n_iter: int
    verbose: bool = False
    history: list[float] = field(default_factory=list)
    iter: int = 0
    converged: bool = False


class _BaseHMM(TorchEstimatorMixin, BaseEstimator):
    """What the four estimators share. Subclasses define ``_letters``, ``_build_emission``,
    ``_emission_attributes`` (write fitted parameters back) and ``_check_emission``."""

    _letters: ClassVar[str] = "st"
    _integer_data: ClassVar[bool] = False

    n_components: int
    algorithm: str
    startprob_prior: Any
    transmat_prior: Any
    random_state: Any
    n_iter: int
    tol: float
    verbose: bool
    params: str
    init_params: str
    method: str

    # -- data ---------------------------------------------------------------------------------
    def _data(self, X: Any, lengths: Any, *, reset: bool) -> HMMData:
        if self._integer_data:
            data = pack_sequences(X, lengths, integer=True, device=self.device)
            if reset:
                self.n_features_in_ = int(data.y.shape[-1])
            return data
        t = self._validate_X(X, reset=reset)
        return pack_sequences(t, lengths)

    def _check_params(self) -> None:
        check_common_hyperparameters(self)
        check_positive_int(self.n_components, "n_components")
        check_positive_int(self.n_iter, "n_iter")
        check_nonnegative_float(self.tol, "tol")
        check_choice(self.algorithm, "algorithm", ("viterbi", "map"))
        check_choice(self.method, "method", HMM_METHODS)
        if hasattr(self, "min_covar"):
            check_nonnegative_float(self.min_covar, "min_covar")
        for name in ("params", "init_params"):
            value = getattr(self, name)
            if not isinstance(value, str):
                raise TypeError(f"{name} must be a string of parameter letters such as "
                                f"{self._letters!r}, got {value!r}.")
            bad = sorted(set(value) - set(self._letters))
            if bad:
                raise ValueError(f"{name}={value!r} has letters {bad} that {type(self).__name__} "
                                 f"does not know; use letters from {self._letters!r}.")

    # -- the torch model from the current attributes -------------------------------------------
    def _model(self, data: HMMData | None = None) -> HiddenMarkovModel:
        k = self.n_components
        dt = self._torch_dtype
        emission = self._build_emission(data)
        pi = getattr(self, "startprob_", None)
        P = getattr(self, "transmat_", None)
        pi_t = torch.full((k,), 1.0 / k, dtype=dt) if pi is None else torch.as_tensor(
            np.asarray(pi), dtype=dt)
        P_t = torch.full((k, k), 1.0 / k, dtype=dt) if P is None else torch.as_tensor(
            np.asarray(P), dtype=dt)
        return HiddenMarkovModel(pi_t, P_t, emission, initial_prior=self.startprob_prior,
                                 transition_prior=self.transmat_prior).to(self.device)

    def _fitted_model(self) -> HiddenMarkovModel:
        for attr in ("startprob_", "transmat_"):
            check_fitted(self, attr)
        if not hasattr(self, "n_features_in_"):  # parameters set by hand, hmmlearn-style
            self.n_features_in_ = self._infer_n_features()
        return self._model()

    def _infer_n_features(self) -> int:
        means = getattr(self, "means_", None)
        if means is not None:
            return int(np.asarray(means).shape[-1])
        lam = getattr(self, "lambdas_", None)
        if lam is not None:
            return int(np.atleast_2d(np.asarray(lam)).shape[1])
        if self._integer_data:
            return 1
        raise ValueError(f"{type(self).__name__} has no emission parameters: fit it or set them.")

    def _build_emission(self, data: HMMData | None) -> Any:
        raise NotImplementedError

    def _emission_attributes(self, model: HiddenMarkovModel) -> None:
        raise NotImplementedError

    # -- fitting ------------------------------------------------------------------------------
    @work_sized(_hmm_work)
    def fit(self, X: Any, lengths: Any = None) -> Any:
        """Baum–Welch (§7.2) from hmmlearn-style data: X (Σ T_i, D), lengths (n_sequences,)."""
        self._check_params()
        data = self._data(X, lengths, reset=True)
        generator = make_generator(self.random_state)
        init = frozenset(LETTERS[c] for c in self.init_params)
        for letter in set(self._letters) - set(self.init_params):
            self._require_attribute(letter)
        model = self._model(data)
        if init:
            model.initialize(data, generator, which=init,
                             min_covar=float(getattr(self, "min_covar", 1e-3)))
        frozen = frozenset(LETTERS[c] for c in set(self._letters) - set(self.params))
        self.monitor_ = ConvergenceMonitor(self.tol, self.n_iter, self.verbose)
        result = run_em(model, [data], max_iter=self.n_iter, tol=self.tol, per_datum=False,
                        frozen=frozen, progress=bool(self.verbose), warn=False)
        self.monitor_.history = list(result.log_likelihood)
        self.monitor_.iter = result.n_iter
        self.monitor_.converged = result.converged
        self.startprob_ = to_numpy(model.initial_probs)
        self.transmat_ = to_numpy(model.transition_matrix)
        self._emission_attributes(model)
        self.model_ = model
        return self

    def _require_attribute(self, letter: str) -> None:
        attr = {"s": "startprob_", "t": "transmat_", "m": "means_", "c": "covars_",
                "e": "emissionprob_", "l": "lambdas_", "w": "weights_"}[letter]
        if not hasattr(self, attr) and not hasattr(self, "_" + attr):
            raise ValueError(f"'{letter}' is not in init_params={self.init_params!r}, so set "
                             f"{attr} before calling fit.")

    # -- inference ----------------------------------------------------------------------------
    @work_sized(_hmm_work)
    def score(self, X: Any, lengths: Any = None) -> float:
        """log p̂(X) summed over the sequences (Eq. 2.40)."""
        model = self._fitted_model()
        data = self._data(X, lengths, reset=False)
        return float(model.log_marginal(data, method=self.method).sum())

    @work_sized(_hmm_work)
    def score_samples(self, X: Any, lengths: Any = None) -> tuple[float, np.ndarray]:
        """(log p̂(X), posteriors (Σ T_i, K)) — the smoothed marginals γ (Eq. 2.43)."""
        model = self._fitted_model()
        data = self._data(X, lengths, reset=False)
        post = model.posterior(data, transitions=False, filtered=False,
                               method=self.method)
        return float(post.log_marginal.sum()), to_numpy(_real_steps(post.smoothed_probs, data))

    def predict_proba(self, X: Any, lengths: Any = None) -> np.ndarray:
        """Posterior state probabilities p̂(x_t | all of the sequence): (Σ T_i, K)."""
        return self.score_samples(X, lengths)[1]

    @work_sized(_hmm_work)
    def decode(self, X: Any, lengths: Any = None, algorithm: str | None = None
               ) -> tuple[float, np.ndarray]:
        """(log-probability, states (Σ T_i,)): "viterbi" gives the most probable path and its
        log joint; "map" the most probable state at each step and Σ_t max_k γ_t(k), as
        hmmlearn reports it."""
        algo = check_choice(algorithm or self.algorithm, "algorithm", ("viterbi", "map"))
        model = self._fitted_model()
        data = self._data(X, lengths, reset=False)
        if algo == "viterbi":
            vp = model.most_probable_states(data, method=self.method)
            return float(vp.log_joint.sum()), to_numpy(_real_steps(vp.states, data))
        post = model.posterior(data, transitions=False, filtered=False,
                               method=self.method)
        g = _real_steps(post.smoothed_probs, data)
        best, states = g.max(-1)
        return float(best.sum()), to_numpy(states)

    def predict(self, X: Any, lengths: Any = None) -> np.ndarray:
        """The decoded states (Σ T_i,) by ``algorithm``."""
        return self.decode(X, lengths)[1]

    def sample(self, n_samples: int = 1, random_state: Any = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """One sequence of ``n_samples`` steps: (X (n_samples, D), states (n_samples,))."""
        model = self._fitted_model()
        g = make_generator(self.random_state if random_state is None else random_state)
        states, y = model.sample(n_samples, generator=g)
        return to_numpy(y), to_numpy(states)

    # -- information criteria (hmmlearn has aic/bic) --------------------------------------------
    def bic(self, X: Any, lengths: Any = None) -> float:
        """−2 log p̂(X) + p log N."""
        n = self._data(X, lengths, reset=False).lengths.sum()
        return -2 * self.score(X, lengths) + self._fitted_model().num_parameters() * math.log(n)

    def aic(self, X: Any, lengths: Any = None) -> float:
        """−2 log p̂(X) + 2p."""
        return -2 * self.score(X, lengths) + 2 * self._fitted_model().num_parameters()


def _real_steps(x: Any, data: HMMData) -> Any:
    """(B, T, ...) → (Σ lengths, ...): the real steps in sequence order."""
    if int(data.lengths.min()) == x.shape[1]:
        return x.reshape(-1, *x.shape[2:])
    return x[data.valid]


def _gaussian_emission(k: int, d: int, covariance_type: str, means: Any, covars: Any,
                       reg_covar: float, dt: torch.dtype) -> GaussianEmission:
    em = GaussianEmission(k, d, covariance_type, reg_covar=reg_covar, dtype=dt)
    if means is not None:
        em.set_parameters(means=torch.as_tensor(np.asarray(means), dtype=dt))
        em.set_center(em.means)
    if covars is not None:
        em.set_parameters(covariances=torch.as_tensor(np.asarray(covars), dtype=dt))
    return em


class GaussianHMM(_BaseHMM):
    """HMM with Gaussian emissions (hmmlearn.hmm.GaussianHMM).

    covars_ is returned as full (K, D, D) matrices whatever ``covariance_type`` (as hmmlearn);
    set it in the compact form (diag: (K, D), spherical: (K,), tied: (D, D), full: (K, D, D)).
    """

    _letters = "stmc"

    def __init__(self, n_components: int = 1, covariance_type: str = "diag", *,
                 min_covar: float = 1e-3, reg_covar: float = 1e-6, algorithm: str = "viterbi",
                 startprob_prior: Any = 1.0, transmat_prior: Any = 1.0,
                 random_state: Any = None, n_iter: int = 10, tol: float = 1e-2,
                 verbose: bool = False, params: str = "stmc", init_params: str = "stmc",
                 method: str = "auto", dtype: Any = "float64", device: Any = "cpu") -> None:
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.min_covar = min_covar
        self.reg_covar = reg_covar
        self.algorithm = algorithm
        self.startprob_prior = startprob_prior
        self.transmat_prior = transmat_prior
        self.random_state = random_state
        self.n_iter = n_iter
        self.tol = tol
        self.verbose = verbose
        self.params = params
        self.init_params = init_params
        self.method = method
        self.dtype = dtype
        self.device = device

    @property
    def covars_(self) -> np.ndarray:
        em = _gaussian_emission(self.n_components, self.means_.shape[-1], self.covariance_type,
                                self.means_, self._covars_, 0.0, self._torch_dtype)
        return to_numpy(em.full_covariances())

    @covars_.setter
    def covars_(self, value: Any) -> None:
        self._covars_ = np.asarray(value)

    def _build_emission(self, data: HMMData | None) -> Any:
        check_choice(self.covariance_type, "covariance_type", ("full", "diag", "spherical",
                                                               "tied"))
        d = data.y.shape[-1] if data is not None else self.n_features_in_
        means = getattr(self, "means_", None) if "m" not in self.init_params or data is None \
            else None
        covars = getattr(self, "_covars_", None) if "c" not in self.init_params or data is None \
            else None
        em = _gaussian_emission(self.n_components, d, self.covariance_type, means, covars,
                                self.reg_covar, self._torch_dtype)
        if data is not None:
            # the M step's statistics are taken about the data mean (numerics only)
            em.set_center(data.flat())
        return em

    def _emission_attributes(self, model: HiddenMarkovModel) -> None:
        em = model.emission
        self.means_ = to_numpy(em.means)
        self._covars_ = to_numpy(em.covariances)

class CategoricalHMM(_BaseHMM):
    """HMM with categorical emissions (hmmlearn.hmm.CategoricalHMM). X: (Σ T_i, 1) integer
    symbols in [0, n_features)."""

    _letters = "ste"
    _integer_data = True

    def __init__(self, n_components: int = 1, *, n_features: int | None = None,
                 pseudo_count: float = 1e-10, algorithm: str = "viterbi",
                 startprob_prior: Any = 1.0, transmat_prior: Any = 1.0,
                 random_state: Any = None, n_iter: int = 10, tol: float = 1e-2,
                 verbose: bool = False, params: str = "ste", init_params: str = "ste",
                 method: str = "auto", dtype: Any = "float64", device: Any = "cpu") -> None:
        self.n_components = n_components
        self.n_features = n_features
        self.pseudo_count = pseudo_count
        self.algorithm = algorithm
        self.startprob_prior = startprob_prior
        self.transmat_prior = transmat_prior
        self.random_state = random_state
        self.n_iter = n_iter
        self.tol = tol
        self.verbose = verbose
        self.params = params
        self.init_params = init_params
        self.method = method
        self.dtype = dtype
        self.device = device

    def _symbols(self, data: HMMData | None) -> int:
        if self.n_features is not None:
            return check_positive_int(self.n_features, "n_features")
        if hasattr(self, "emissionprob_"):
            return int(np.asarray(self.emissionprob_).shape[1])
        if data is None:
            raise ValueError("n_features (the number of symbols) is unknown: fit first.")
        return int(data.y.max()) + 1

    def _build_emission(self, data: HMMData | None) -> Any:
        m = self._symbols(data)
        em = CategoricalEmission(self.n_components, m, pseudo_count=self.pseudo_count,
                                 dtype=self._torch_dtype)
        B = getattr(self, "emissionprob_", None)
        if B is not None and ("e" not in self.init_params or data is None):
            b = torch.as_tensor(np.asarray(B), dtype=self._torch_dtype)
            if b.shape != (self.n_components, m) or bool((b < 0).any()) or bool(
                    ((b.sum(-1) - 1).abs() > 1e-6).any()):
                raise ValueError(f"emissionprob_ must be ({self.n_components}, {m}) with rows "
                                 "summing to 1.")
            em.natural = torch.log(b)
        return em

    def _emission_attributes(self, model: HiddenMarkovModel) -> None:
        self.emissionprob_ = to_numpy(model.emission.probs)


class PoissonHMM(_BaseHMM):
    """HMM with independent Poisson emissions (hmmlearn.hmm.PoissonHMM). X: (Σ T_i, D)
    nonnegative integer counts."""

    _letters = "stl"

    def __init__(self, n_components: int = 1, *, pseudo_count: float = 1e-10,
                 algorithm: str = "viterbi", startprob_prior: Any = 1.0,
                 transmat_prior: Any = 1.0, random_state: Any = None, n_iter: int = 10,
                 tol: float = 1e-2, verbose: bool = False, params: str = "stl",
                 init_params: str = "stl", method: str = "auto", dtype: Any = "float64",
                 device: Any = "cpu") -> None:
        self.n_components = n_components
        self.pseudo_count = pseudo_count
        self.algorithm = algorithm
        self.startprob_prior = startprob_prior
        self.transmat_prior = transmat_prior
        self.random_state = random_state
        self.n_iter = n_iter
        self.tol = tol
        self.verbose = verbose
        self.params = params
        self.init_params = init_params
        self.method = method
        self.dtype = dtype
        self.device = device

    def _build_emission(self, data: HMMData | None) -> Any:
        d = data.y.shape[-1] if data is not None else self.n_features_in_
        lam = getattr(self, "lambdas_", None)
        rates = None
        if lam is not None and ("l" not in self.init_params or data is None):
            rates = torch.as_tensor(np.asarray(lam), dtype=self._torch_dtype)
        return PoissonEmission(self.n_components, d, rates, pseudo_count=self.pseudo_count,
                               dtype=self._torch_dtype)

    def _emission_attributes(self, model: HiddenMarkovModel) -> None:
        self.lambdas_ = to_numpy(model.emission.rates)


class GMMHMM(_BaseHMM):
    """HMM with a Gaussian mixture per state (hmmlearn.hmm.GMMHMM).

    weights_ (K, M); means_ (K, M, D); covars_ compact per component: diag (K, M, D),
    spherical (K, M), full (K, M, D, D); or tied (K, D, D), one matrix per state shared by its
    M components (as in hmmlearn).
    """

    _letters = "stmcw"

    def __init__(self, n_components: int = 1, n_mix: int = 1, *, covariance_type: str = "diag",
                 min_covar: float = 1e-3, reg_covar: float = 1e-6, algorithm: str = "viterbi",
                 startprob_prior: Any = 1.0, transmat_prior: Any = 1.0,
                 random_state: Any = None, n_iter: int = 10, tol: float = 1e-2,
                 verbose: bool = False, params: str = "stmcw", init_params: str = "stmcw",
                 method: str = "auto", dtype: Any = "float64", device: Any = "cpu") -> None:
        self.n_components = n_components
        self.n_mix = n_mix
        self.covariance_type = covariance_type
        self.min_covar = min_covar
        self.reg_covar = reg_covar
        self.algorithm = algorithm
        self.startprob_prior = startprob_prior
        self.transmat_prior = transmat_prior
        self.random_state = random_state
        self.n_iter = n_iter
        self.tol = tol
        self.verbose = verbose
        self.params = params
        self.init_params = init_params
        self.method = method
        self.dtype = dtype
        self.device = device

    def _build_emission(self, data: HMMData | None) -> Any:
        check_choice(self.covariance_type, "covariance_type",
                     ("full", "diag", "spherical", "tied"))
        k, m = self.n_components, check_positive_int(self.n_mix, "n_mix")
        d = data.y.shape[-1] if data is not None else self.n_features_in_
        dt = self._torch_dtype
        em = GaussianMixtureEmission(k, m, d, self.covariance_type, reg_covar=self.reg_covar,
                                     dtype=dt)
        use = data is None
        if getattr(self, "weights_", None) is not None and (use or "w" not in self.init_params):
            em.weights = torch.as_tensor(np.asarray(self.weights_), dtype=dt)
        if getattr(self, "means_", None) is not None and (use or "m" not in self.init_params):
            em.components.set_parameters(
                means=torch.as_tensor(np.asarray(self.means_), dtype=dt).reshape(k * m, d))
            em.components.set_center(em.components.means)
        cov = getattr(self, "covars_", None)
        if cov is not None and (use or "c" not in self.init_params):
            c = torch.as_tensor(np.asarray(cov), dtype=dt)
            if self.covariance_type == "tied":  # (K, D, D): each state's matrix to its M
                if c.dim() != 3 or c.shape[0] != k:
                    raise ValueError(f"tied covars_ must have shape (n_components, n_features, "
                                     f"n_features) = ({k}, {d}, {d}), got {tuple(c.shape)}.")
                c = c.repeat_interleave(m, 0)
            else:
                c = c.reshape(k * m, *c.shape[2:])
            em.components.set_parameters(covariances=c)
        if data is not None:
            em.components.set_center(data.flat())
        return em

    def _emission_attributes(self, model: HiddenMarkovModel) -> None:
        em = model.emission
        k, m = self.n_components, self.n_mix
        self.weights_ = to_numpy(em.weights)
        self.means_ = to_numpy(em.components.means).reshape(k, m, -1)
        self.covars_ = to_numpy(em.state_covariances())
