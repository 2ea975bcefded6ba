"""Time-varying parameters in the Kalman core and the KalmanFilter face, as pykalman accepts
them: transition_matrices (T−1, K, K), transition_offsets (T−1, K), observation_matrices
(T, M, K), observation_offsets (T, M). Parity with pykalman on random data and on the robot data
set pykalman ships (its reference filter, smoother and EM log-likelihoods)."""

from __future__ import annotations

import itertools

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


def test_time_varying_offsets_alone_keep_the_steady_state_form():
    """Offsets do not enter the covariance recursion: with A and C constant the steady-state
    filter and smoother apply and equal the sequential recursion and pykalman."""
    kw = _random_tv(T=120, seed=4)
    kw["transition_matrices"] = kw["transition_matrices"][0]
    kw["observation_matrices"] = kw["observation_matrices"][0]
    theirs = pykalman.KalmanFilter(**kw)
    y = torch.tensor(np.asarray(theirs.sample(120, random_state=5)[1]))
    P = _params(kw, frozenset({"dynamics_offset", "emission_offset"}))
    steady = kalman_filter(P, y, method="steady")
    assert steady.steady_from is not None  # the blocked form ran
    seq = kalman_filter(P, y, method="sequential")
    torch.testing.assert_close(steady.means, seq.means, rtol=1e-9, atol=1e-10)
    s_steady = kalman_smoother(P, y, method="steady")
    s_seq = kalman_smoother(P, y, method="sequential")
    torch.testing.assert_close(s_steady.means, s_seq.means, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(s_steady.means.numpy(), theirs.smooth(y.numpy())[0], rtol=1e-8,
                               atol=1e-9)
    assert float(steady.log_marginal) == pytest.approx(theirs.loglikelihood(y.numpy()),
                                                       rel=1e-11)


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


def test_posterior_paths_with_time_varying_dynamics_match_the_smoother():
    """Forward filtering, backward sampling with A_{t−1}: 20,000 paths have the smoothed means
    (within 5 standard errors) and the smoothed lag-one cross-covariance at one step."""
    from genmodels.inference.kalman import sample_posterior

    kw = _random_tv(T=15, seed=11)
    P = _params(kw)
    _, y = sample_lgssm(P, 15, generator=torch.Generator().manual_seed(1))
    s = kalman_smoother(P, y)
    x = sample_posterior(P, s, 20000, generator=torch.Generator().manual_seed(2))  # (S, T, K)
    se = x.std(0) / np.sqrt(20000)
    assert ((x.mean(0) - s.means).abs() < 5 * se).all()
    xc = x - x.mean(0)
    prod = xc[:, 8, :, None] * xc[:, 7, None, :]  # Cov[x_9, x_8 | y] (1-based)
    se_c = prod.std(0) / np.sqrt(20000)
    assert ((prod.mean(0) - s.cross_covariances[7]).abs() < 5 * se_c).all()


def test_a_time_axis_of_the_wrong_length_is_refused():
    kw = _random_tv()
    y = torch.zeros(39, 3)
    with pytest.raises(ValueError, match=r"time-varying dynamics must have 38 steps .* T=39"):
        kalman_filter(_params(kw), y)
    with pytest.raises(ValueError, match="time_varying may name only"):
        kalman_filter(_params(kw, frozenset({"dynamics_covariance"})), torch.zeros(40, 3))


def _robot_filter(KF, data, em=False):
    cov_x = data.initial_transition_covariance if em else data.transition_covariance
    cov_y = data.initial_observation_covariance if em else data.observation_covariance
    kw = dict(em_vars=["transition_covariance", "observation_covariance"]) if em else {}
    return KF(data.transition_matrix, data.observation_matrix, cov_x, cov_y,
              data.transition_offsets, data.observation_offset, data.initial_state_mean,
              data.initial_state_covariance, **kw)


def test_robot_data_set_shipped_with_pykalman():
    """pykalman's own reference data (datasets/data/robot.mat, from the installed package):
    501 observations, transition_offsets (500, 5). Filter and smoother against its stored
    means and covariances, and ten EM iterations against its stored log-likelihoods."""
    from pykalman.datasets import load_robot

    from genmodels.estimators.kalman import KalmanFilter

    data = load_robot()
    assert data.transition_offsets.shape == (500, 5) and data.observations.shape == (501, 2)
    kf = _robot_filter(KalmanFilter, data)
    fm, fc = kf.filter(data.observations)
    sm, sc = kf.smooth(data.observations)
    np.testing.assert_allclose(fm, data.filtered_state_means, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(fc, data.filtered_state_covariances, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(sm, data.smoothed_state_means, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(sc, data.smoothed_state_covariances, rtol=1e-9, atol=1e-9)
    kf = _robot_filter(KalmanFilter, data, em=True)
    lls = []
    for _ in range(10):
        lls.append(kf.loglikelihood(data.observations))
        kf.em(data.observations, n_iter=1)
    np.testing.assert_allclose(lls, data.loglikelihoods[:10], rtol=1e-12)
    assert np.ndim(kf.transition_offsets) == 2  # the known offsets are kept as given


def test_face_em_with_time_varying_matrices_follows_pykalman():
    """Time-varying A_t and C_t given; EM over pykalman's default em_vars (the covariances and
    the initial state): the same log-likelihood trajectory and parameters."""
    from genmodels.estimators.kalman import KalmanFilter

    kw = _random_tv(T=50, seed=7)
    _, Y = pykalman.KalmanFilter(**kw).sample(50, random_state=2)
    start = {**kw, "transition_covariance": np.eye(2), "observation_covariance": np.eye(3)}
    ours, theirs = KalmanFilter(**start), pykalman.KalmanFilter(**start)
    a, b = [], []
    for _ in range(6):
        a.append(ours.loglikelihood(Y))
        b.append(theirs.loglikelihood(Y))
        ours, theirs = ours.em(Y, n_iter=1), theirs.em(Y, n_iter=1)
    np.testing.assert_allclose(a, b, rtol=1e-10)
    assert all(y >= x - 1e-9 for x, y in itertools.pairwise(a))  # EM is monotone
    for name in ("transition_covariance", "observation_covariance", "initial_state_mean",
                 "initial_state_covariance"):
        np.testing.assert_allclose(getattr(ours, name), getattr(theirs, name), rtol=1e-7,
                                   atol=1e-10)
    fm, _ = ours.filter(Y)
    np.testing.assert_allclose(fm, theirs.filter(Y)[0], rtol=1e-7, atol=1e-9)
    states, obs = ours.sample(50, random_state=0)
    assert states.shape == (50, 2) and obs.shape == (50, 3)
    with pytest.raises(ValueError, match="n_timesteps must be 50, got 60"):
        ours.sample(60)
    with pytest.raises(ValueError, match="time-varying parameters"):
        ours.em(Y, em_vars=["transition_matrices", "observation_covariance"])
    # one online step: the time-varying ones must be given for the step, as in pykalman
    step = dict(transition_matrix=kw["transition_matrices"][3],
                transition_offset=kw["transition_offsets"][3],
                observation_matrix=kw["observation_matrices"][4],
                observation_offset=kw["observation_offsets"][4])
    for a, b in zip(ours.filter_update(fm[3], np.eye(2), Y[4], **step),
                    theirs.filter_update(fm[3], np.eye(2), Y[4], **step)):
        np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-9)
    with pytest.raises(ValueError, match="transition_matrix varies with time"):
        ours.filter_update(fm[3], np.eye(2), Y[4])


def test_model_em_with_time_varying_offsets_and_missing_entries_is_monotone():
    """LinearGaussianSSM with known time-varying offsets and matrices and partly observed rows
    (beyond what pykalman can take): the EM log-likelihood never decreases and improves; the
    fully observed case is pinned to pykalman by the test above."""
    from genmodels.models.lgssm import LinearGaussianSSM

    kw = _random_tv(T=30, seed=9)
    theirs = pykalman.KalmanFilter(**kw)
    Y = np.asarray(theirs.sample(30, random_state=3)[1])
    Y[[4, 11], 1] = np.nan
    Y[20] = np.nan
    m = LinearGaussianSSM(2, 3)
    m.set_params(initial_mean=kw["initial_state_mean"],
                 initial_covariance=kw["initial_state_covariance"])
    m.set_time_varying(dynamics=kw["transition_matrices"], emission=kw["observation_matrices"],
                       dynamics_offset=kw["transition_offsets"],
                       emission_offset=kw["observation_offsets"])
    res = m.fit(torch.tensor(Y), max_iter=15, tol=0.0, warn=False)
    assert all(b >= a - 1e-10 for a, b in itertools.pairwise(res.log_likelihood))
    assert res.log_likelihood[-1] > res.log_likelihood[0] + 0.1
    assert torch.equal(m.time_varying["dynamics"], torch.tensor(kw["transition_matrices"]))
    with pytest.raises(ValueError, match=r"only .* can vary with time"):
        m.set_time_varying(dynamics_covariance=np.zeros((30, 2, 2)))


def test_saved_model_keeps_its_time_varying_parameters(tmp_path):
    """save/load round-trips the known time-varying parameters (as ``time_varying.NAME``
    tensors) and the loaded model gives the same log-likelihood; a file saved without them
    loads as the time-invariant model."""
    from genmodels.io import load, save
    from genmodels.models.lgssm import LinearGaussianSSM

    kw = _random_tv(T=12, seed=4)
    Y = torch.tensor(np.asarray(pykalman.KalmanFilter(**kw).sample(12, random_state=1)[1]))
    m = LinearGaussianSSM(2, 3)
    m.set_time_varying(dynamics=kw["transition_matrices"],
                       emission_offset=kw["observation_offsets"])
    save(m, tmp_path / "tv")
    back = load(tmp_path / "tv")
    assert sorted(back.time_varying) == ["dynamics", "emission_offset"]
    assert torch.equal(back.time_varying["dynamics"], m.time_varying["dynamics"])
    assert float(back.log_marginal(Y)) == pytest.approx(float(m.log_marginal(Y)), abs=1e-12)
    plain = LinearGaussianSSM(2, 3)
    save(plain, tmp_path / "plain")
    assert load(tmp_path / "plain").time_varying == {}
