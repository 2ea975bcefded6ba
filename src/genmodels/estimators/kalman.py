"""``KalmanFilter``: a pykalman-compatible face over the linear-Gaussian state-space model.

Same constructor arguments, methods and return values as ``pykalman.KalmanFilter``
(``filter``, ``smooth``, ``em``, ``loglikelihood``, ``sample``, ``filter_update``), so that
switching is a one-line import change; the work is done by ``genmodels.inference.kalman``
and ``genmodels.models.lgssm`` (float64 by default).

Differences, on purpose:

* Missing data: a masked (or NaN) *entry* is missing on its own; pykalman drops the whole
  observation vector when any entry is masked. The two agree when whole rows are masked.
* EM with offsets in ``em_vars``: genmodels solves the joint normal equations for
  [matrix, offset] (the exact M step); pykalman updates the matrix with the old offset and then
  the offset, so the trajectories differ (genmodels' increases the likelihood at least as much).
  Without offsets in ``em_vars`` (pykalman's default) the EM trajectories agree to rounding.
* Time-varying parameters as pykalman takes them — transition_matrices (T−1, K, K),
  transition_offsets (T−1, K), observation_matrices (T, M, K), observation_offsets (T, M) —
  in filter, smooth, loglikelihood, sample and em; EM learns only the time-invariant
  parameters (a time-varying matrix or offset fixes its whole conditional, so em_vars naming
  any part of it is refused). The covariances and the initial state are time-invariant, as in
  pykalman.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator

from genmodels._validation import (
    as_tensor,
    check_finite,
    check_positive_int,
    make_generator,
    resolve_dtype,
)
from genmodels.inference.kalman import LGSSMParams, check_params, kalman_filter, kalman_smoother
from genmodels.models.lgssm import LinearGaussianSSM

_PARAM_MAP = {  # pykalman name → genmodels name
    "transition_matrices": "dynamics",
    "observation_matrices": "emission",
    "transition_covariance": "dynamics_covariance",
    "observation_covariance": "emission_covariance",
    "transition_offsets": "dynamics_offset",
    "observation_offsets": "emission_offset",
    "initial_state_mean": "initial_mean",
    "initial_state_covariance": "initial_covariance",
}
#: pykalman names that may be time-varying → the ndim of their time-invariant form.
_TIME_VARYING = {"transition_matrices": 2, "transition_offsets": 1, "observation_matrices": 2,
                 "observation_offsets": 1}
#: The parameters of each conditional (a time-varying one fixes the whole conditional in EM).
_CONDITIONAL = {"transition_matrices": ("transition_matrices", "transition_offsets"),
                "transition_offsets": ("transition_matrices", "transition_offsets"),
                "observation_matrices": ("observation_matrices", "observation_offsets"),
                "observation_offsets": ("observation_matrices", "observation_offsets")}
_DEFAULT_EM_VARS = ["transition_covariance", "observation_covariance", "initial_state_mean",
                    "initial_state_covariance"]


class KalmanFilter(BaseEstimator):
    """Kalman filter, RTS smoother and EM with pykalman's interface.

    Parameters mirror pykalman: transition_matrices A (K, K), observation_matrices C (M, K),
    transition_covariance, observation_covariance, transition_offsets, observation_offsets,
    initial_state_mean, initial_state_covariance, random_state, em_vars ("all" or names),
    n_dim_state, n_dim_obs; plus dtype and device. Unset parameters take pykalman's defaults
    (identity matrices and covariances, zero offsets and mean).
    """

    def __init__(
        self,
        transition_matrices: Any = None,
        observation_matrices: Any = None,
        transition_covariance: Any = None,
        observation_covariance: Any = None,
        transition_offsets: Any = None,
        observation_offsets: Any = None,
        initial_state_mean: Any = None,
        initial_state_covariance: Any = None,
        random_state: Any = None,
        em_vars: Any = None,
        n_dim_state: int | None = None,
        n_dim_obs: int | None = None,
        dtype: Any = "float64",
        device: Any = "cpu",
    ) -> None:
        self.transition_matrices = transition_matrices
        self.observation_matrices = observation_matrices
        self.transition_covariance = transition_covariance
        self.observation_covariance = observation_covariance
        self.transition_offsets = transition_offsets
        self.observation_offsets = observation_offsets
        self.initial_state_mean = initial_state_mean
        self.initial_state_covariance = initial_state_covariance
        self.random_state = random_state
        self.em_vars = em_vars
        self.n_dim_state = n_dim_state
        self.n_dim_obs = n_dim_obs
        self.dtype = dtype
        self.device = device

    # ---------------------------------------------------------------- helpers

    def _dims(self, X: np.ndarray | None = None) -> tuple[int, int]:
        K = self.n_dim_state
        M = self.n_dim_obs
        for name in ("transition_matrices", "transition_covariance", "initial_state_covariance"):
            v = getattr(self, name)
            if K is None and v is not None:
                K = np.shape(v)[-1]
        for name in ("transition_offsets", "initial_state_mean"):
            v = getattr(self, name)
            if K is None and v is not None:
                K = np.shape(v)[-1]
        if self.observation_matrices is not None:
            om = np.shape(self.observation_matrices)
            if len(om) not in (2, 3) or 0 in om:
                raise ValueError("observation_matrices must have shape (n_dim_obs, n_dim_state) "
                                 f"or (T, n_dim_obs, n_dim_state), got {om}.")
            M = om[-2] if M is None else M
            K = om[-1] if K is None else K
        for name in ("observation_covariance", "observation_offsets"):
            v = getattr(self, name)
            if M is None and v is not None:
                M = np.shape(v)[-1]
        if M is None and X is not None:
            M = X.shape[-1]
        return int(K or 1), int(M or 1)

    def _model(self, X: np.ndarray | None = None) -> LinearGaussianSSM:
        K, M = self._dims(X)
        dt = resolve_dtype(self.dtype)
        model = LinearGaussianSSM(K, M, dtype=dt, device=self.device)
        values, varying = {}, {}
        for pk_name, gm_name in _PARAM_MAP.items():
            v = getattr(self, pk_name)
            if v is not None:  # the shared checks: numeric, real, finite, named
                arr = self._np(as_tensor(v, name=pk_name, dtype=dt))
                if pk_name in _TIME_VARYING and arr.ndim == _TIME_VARYING[pk_name] + 1:
                    varying[gm_name] = arr
                else:
                    values[gm_name] = arr
        pk_of = {g: p for p, g in _PARAM_MAP.items()}
        for gm_name, arr in values.items():  # one at a time: a refusal names the argument
            try:
                model.set_params(**{gm_name: arr})
            except ValueError as e:
                raise ValueError(f"{pk_of[gm_name]}: {e}") from None
        for gm_name, arr in varying.items():
            try:
                model.set_time_varying(**{gm_name: arr})
            except ValueError as e:
                raise ValueError(f"{pk_of[gm_name]}: {e}") from None
        return model

    def _time_varying(self) -> set[str]:
        """The pykalman names given per time step."""
        return {n for n, d in _TIME_VARYING.items()
                if getattr(self, n) is not None and np.ndim(getattr(self, n)) == d + 1}

    def _obs(self, X: Any, *, whole: bool = True) -> torch.Tensor:
        """Observations (T, M) as a tensor with NaN where masked; ``whole``: a whole series,
        whose T the time-varying parameters must match (not one step of ``filter_update``)."""
        if isinstance(X, np.ma.MaskedArray):
            if X.dtype.kind not in "biuf":
                raise ValueError(f"X must be numeric, got an array of dtype {X.dtype}.")
            X = np.ma.filled(X.astype(float), np.nan)
        # the shared checks (numeric, real; NaN allowed: missing observations)
        arr = self._np(as_tensor(X, name="X", dtype=torch.float64, allow_nan=True))
        if arr.ndim == 1:
            arr = arr[:, None]
        if arr.ndim != 2:
            raise ValueError(f"X must be (n_timesteps, n_dim_obs), got shape {arr.shape}.")
        if arr.shape[0] == 0:
            raise ValueError("X is empty: at least one time step is required.")
        if np.isinf(arr).any():
            raise ValueError("X contains infinite values; mask missing entries instead.")
        M = self._dims(arr)[1]
        if arr.shape[1] != M:
            given = [n for n in ("n_dim_obs", "observation_matrices", "observation_covariance",
                                 "observation_offsets") if getattr(self, n) is not None]
            raise ValueError(f"X has {arr.shape[1]} columns but n_dim_obs = {M} (from "
                             f"{', '.join(given)}).")
        if whole:
            self._check_steps(arr.shape[0])
        t = torch.as_tensor(arr, dtype=resolve_dtype(self.dtype), device=self.device)
        check_finite(torch.nan_to_num(t, nan=0.0), "X")  # magnitudes that overflow
        return t

    def _check_steps(self, T: int) -> None:
        """Time-varying parameters must have T − 1 (transition) or T (observation) steps."""
        for name in sorted(self._time_varying()):
            steps = np.shape(getattr(self, name))[0]
            need = T - 1 if name.startswith("transition") else T
            if steps != need:
                raise ValueError(f"{name} is time-varying with {steps} steps, so n_timesteps "
                                 f"must be {steps + 1 if need == T - 1 else steps}, got {T}.")

    @staticmethod
    def _np(t: torch.Tensor) -> np.ndarray:
        return t.detach().cpu().numpy()

    # ---------------------------------------------------------------- pykalman API

    def filter(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        """Filtered state means (T, K) and covariances (T, K, K)."""
        y = self._obs(X)
        f = kalman_filter(self._model(self._np(y)).params(), y)
        return self._np(f.means), self._np(f.covariances)

    def smooth(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        """Smoothed state means (T, K) and covariances (T, K, K)."""
        y = self._obs(X)
        s = kalman_smoother(self._model(self._np(y)).params(), y)
        return self._np(s.means), self._np(s.covariances)

    def loglikelihood(self, X: Any) -> float:
        """log p̂(y_{1:T}) under the current parameters."""
        y = self._obs(X)
        return float(kalman_filter(self._model(self._np(y)).params(), y).log_marginal)

    def em(self, X: Any, y: Any = None, n_iter: int = 10, em_vars: Any = None) -> KalmanFilter:
        """Run ``n_iter`` EM iterations over ``em_vars`` (default: the constructor's, else
        pykalman's default: covariances and initial state) and store the parameters."""
        obs = self._obs(X)
        model = self._model(self._np(obs))
        ev = em_vars if em_vars is not None else self.em_vars
        if ev is None:
            ev = _DEFAULT_EM_VARS
        if ev == "all":
            free: set[str] = set(_PARAM_MAP)
        else:
            free = set(ev)
            unknown = free - set(_PARAM_MAP)
            if unknown:
                raise ValueError(f"unknown em_vars {sorted(unknown)}; choose from "
                                 f"{sorted(_PARAM_MAP)}.")
        varying = self._time_varying()
        fixed = {n for v in varying for n in _CONDITIONAL[v]}
        if ev == "all":
            free -= fixed
        elif free & fixed:
            raise ValueError(f"em_vars {sorted(free & fixed)} belong to a conditional with "
                             f"time-varying parameters ({sorted(varying)}), which EM holds "
                             "fixed; leave them out of em_vars.")
        frozen = {g for p, g in _PARAM_MAP.items() if p not in free}
        model.fit(obs, max_iter=check_positive_int(n_iter, "n_iter"), tol=0.0, frozen=frozen,
                  warn=False)
        for pk_name, gm_name in _PARAM_MAP.items():
            try:  # data so large that EM's estimates cannot be computed with
                check_finite(getattr(model, gm_name), pk_name)
            except ValueError as e:
                raise ValueError(f"X is too large to learn from: {e}") from None
        for pk_name, gm_name in _PARAM_MAP.items():
            if pk_name not in varying:
                setattr(self, pk_name, self._np(getattr(model, gm_name)))
        self.n_dim_state, self.n_dim_obs = model.state_dim, model.obs_dim
        return self

    def fit(self, X: Any, y: Any = None, n_iter: int = 10) -> KalmanFilter:
        """scikit-learn-style alias of ``em``."""
        return self.em(X, n_iter=n_iter)

    def sample(self, n_timesteps: int, initial_state: Any = None, random_state: Any = None
               ) -> tuple[np.ndarray, np.ma.MaskedArray]:
        """Draw (states (T, K), observations (T, M) as a masked array) from the model."""
        T = check_positive_int(n_timesteps, "n_timesteps")
        self._check_steps(T)
        model = self._model()
        seed = random_state if random_state is not None else self.random_state
        gen = make_generator(seed if seed is not None else 0)
        params: LGSSMParams = model.params()
        if initial_state is not None:
            x0 = torch.as_tensor(np.asarray(initial_state, dtype=float),
                                 dtype=params.dynamics.dtype)
            params = params._replace(initial_mean=x0,
                                     initial_covariance=torch.zeros_like(params.dynamics))
        from genmodels.inference.kalman import sample_lgssm

        states, obs = sample_lgssm(params, T, generator=gen)  # T checked there
        return self._np(states), np.ma.array(self._np(obs))

    def filter_update(
        self,
        filtered_state_mean: Any,
        filtered_state_covariance: Any,
        observation: Any = None,
        transition_matrix: Any = None,
        transition_offset: Any = None,
        transition_covariance: Any = None,
        observation_matrix: Any = None,
        observation_offset: Any = None,
        observation_covariance: Any = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """One online step: time update (Eq. 2.48) from p̂(x_t | y_{1:t}), then the measurement
        update (Eq. 2.47) with ``observation`` (None or fully masked: no update)."""
        p = self._model().params()
        dt = p.dynamics.dtype
        given = {"dynamics": transition_matrix, "dynamics_offset": transition_offset,
                 "emission": observation_matrix, "emission_offset": observation_offset}
        singular = {"dynamics": "transition_matrix", "dynamics_offset": "transition_offset",
                    "emission": "observation_matrix", "emission_offset": "observation_offset"}
        for name in sorted(p.time_varying):
            if given[name] is None:  # as pykalman: a time-varying default has no single value
                raise ValueError(f"{singular[name]} varies with time here; pass this step's "
                                 f"{singular[name]} to filter_update.")
        p = p._replace(time_varying=frozenset())  # every time-varying one is replaced below

        def pick(v: Any, default: torch.Tensor | None) -> torch.Tensor:
            if v is None:
                assert default is not None
                return default
            return torch.as_tensor(np.asarray(v, dtype=float), dtype=dt)

        A = pick(transition_matrix, p.dynamics)
        p = p._replace(
            dynamics=A, dynamics_offset=pick(transition_offset, p.dynamics_offset),
            dynamics_covariance=pick(transition_covariance, p.dynamics_covariance),
            emission=pick(observation_matrix, p.emission),
            emission_offset=pick(observation_offset, p.emission_offset),
            emission_covariance=pick(observation_covariance, p.emission_covariance))
        check_params(p)
        m = torch.as_tensor(np.asarray(filtered_state_mean, dtype=float), dtype=dt)
        P = torch.as_tensor(np.asarray(filtered_state_covariance, dtype=float), dtype=dt)
        assert p.dynamics_offset is not None
        m_pred = A @ m + p.dynamics_offset
        P_pred = A @ P @ A.mT + p.dynamics_covariance
        M = p.emission.shape[0]
        if observation is None:
            y = torch.full((1, M), float("nan"), dtype=dt)
        else:
            y = self._obs(np.ma.atleast_1d(observation).reshape(1, -1), whole=False)
        step = kalman_filter(p._replace(initial_mean=m_pred, initial_covariance=P_pred), y)
        return self._np(step.means[0]), self._np(step.covariances[0])
