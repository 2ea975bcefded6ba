"""Time-varying parameters in the Kalman core and the KalmanFilter face, as pykalman accepts
them: transition_matrices (T−1, K, K), transition_offsets (T−1, K), observation_matrices
(T, M, K), observation_offsets (T, M). Parity with pykalman on random data and on the robot data
set pykalman ships (its reference filter, smoother and EM log-likelihoods)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _kalman_oracle import single_thread

from genmodels.inference.kalman import (
    LGSSMParams,
    kalman_filter,
    kalman_smoother,
    sample_lgssm,
)

pykalman = pytest.importorskip("pykalman")
ALL_TV = frozenset({"dynamics", "dynamics_offset", "emission", "emission_offset"})


@pytest.fixture(autouse=True)
def _one_thread():
    yield from single_thread()


def _random_tv(T=40, K=2, M=3, seed=0):
    rng = np.random.default_rng(seed)
    return dict(
        transition_matrices=0.9 * np.eye(K) + 0.1 * rng.normal(size=(T - 1, K, K)),
        observation_matrices=rng.normal(size=(T, M, K)),
        transition_covariance=0.3 * np.eye(K), observation_covariance=0.5 * np.eye(M),
        transition_offsets=rng.normal(size=(T - 1, K)), observation_offsets=rng.normal(size=(T, M)),
        initial_state_mean=np.zeros(K), initial_state_covariance=np.eye(K))


def _params(kw, tv=ALL_TV):
    t = {k: torch.tensor(np.asarray(v, dtype=float)) for k, v in kw.items()}
    return LGSSMParams(t["initial_state_mean"], t["initial_state_covariance"],
                       t["transition_matrices"], t["transition_covariance"],
                       t["observation_matrices"], t["observation_covariance"],
                       t["transition_offsets"], t["observation_offsets"], time_varying=tv)


@pytest.mark.parametrize("method", ["sequential", "parallel", "steady", "auto"])
@pytest.mark.parametrize("masked", [False, True])
def test_core_matches_pykalman_on_time_varying_parameters(method, masked):
    kw = _random_tv()
    theirs = pykalman.KalmanFilter(**kw)
    _, Y = theirs.sample(40, random_state=1)
    Y = np.ma.array(np.asarray(Y))
    if masked:
        Y[[3, 17, 18]] = np.ma.masked  # whole rows (pykalman drops any row with a mask)
    y = torch.tensor(np.ma.filled(Y, np.nan))
    P = _params(kw)
    f = kalman_filter(P, y, method=method)
    s = kalman_smoother(P, y, method=method)
    for a, b in zip((f.means, f.covariances), theirs.filter(Y)):
        np.testing.assert_allclose(a.numpy(), b, rtol=1e-9, atol=1e-11)
    for a, b in zip((s.means, s.covariances), theirs.smooth(Y)):
        np.testing.assert_allclose(a.numpy(), b, rtol=1e-9, atol=1e-11)
    assert float(f.log_marginal) == pytest.approx(theirs.loglikelihood(Y), rel=1e-12)


def test_time_varying_parameters_broadcast_over_a_batch_of_sequences():
    kw = _random_tv(seed=2)
    theirs = pykalman.KalmanFilter(**kw)
    ys = np.stack([np.asarray(theirs.sample(40, random_state=r)[1]) for r in (3, 4)])
    s = kalman_smoother(_params(kw), torch.tensor(ys))  # params (T−1, K, K) against (2, T, M)
    for i in range(2):
        np.testing.assert_allclose(s.means[i].numpy(), theirs.smooth(ys[i])[0], rtol=1e-9,
                                   atol=1e-11)
        assert float(s.log_marginal[i]) == pytest.approx(theirs.loglikelihood(ys[i]), rel=1e-12)


def test_sampling_with_time_varying_parameters_has_the_right_moments():
    """E[x_t] = A_{t−1} E[x_{t−1}] + a_{t−1}, E[y_t] = C_t E[x_t] + c_t: the sample means of
    20,000 paths lie within 5 standard errors."""
    kw = _random_tv(T=12, seed=5)
    P = _params(kw)
    x, y = sample_lgssm(P, 12, batch_shape=(20000,), generator=torch.Generator().manual_seed(0))
    m = np.asarray(kw["initial_state_mean"], dtype=float)
    ex, ey = [m], []
    for t in range(1, 12):
        ex.append(kw["transition_matrices"][t - 1] @ ex[-1] + kw["transition_offsets"][t - 1])
    ey = [kw["observation_matrices"][t] @ ex[t] + kw["observation_offsets"][t] for t in range(12)]
    for sample, expected in ((x, np.stack(ex)), (y, np.stack(ey))):
        se = sample.std(0).numpy() / np.sqrt(20000)
        assert (np.abs(sample.mean(0).numpy() - expected) < 5 * se).all()


def test_a_time_axis_of_the_wrong_length_is_refused():
    kw = _random_tv()
    y = torch.zeros(39, 3)
    with pytest.raises(ValueError, match=r"time-varying dynamics must have 38 steps .* T=39"):
        kalman_filter(_params(kw), y)
    with pytest.raises(ValueError, match="time_varying may name only"):
        kalman_filter(_params(kw, frozenset({"dynamics_covariance"})), torch.zeros(40, 3))
