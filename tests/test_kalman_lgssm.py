"""LinearGaussianSSM EM (F6), the pykalman face, and the Nile local-level model."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from _kalman_oracle import condition, random_params, single_thread

from genmodels.data import load_dataset
from genmodels.estimators.kalman import KalmanFilter
from genmodels.inference.kalman import LGSSMParams, sample_lgssm
from genmodels.io import load, save
from genmodels.learning.em import run_em
from genmodels.models.lgssm import LinearGaussianSSM, pad_sequences


@pytest.fixture(autouse=True)
def _one_thread():
    yield from single_thread()

pykalman = pytest.importorskip("pykalman")


def _model_from(p, U=0):
    K, M = p["dynamics"].shape[0], p["emission"].shape[0]
    m = LinearGaussianSSM(K, M, U)
    m.set_params(**{k: v for k, v in p.items() if v is not None})
    return m


def test_expected_stats_equal_dense_smoothing():
    rng = np.random.default_rng(0)
    p = random_params(rng, 2, 2)
    y = rng.normal(size=(5, 2))
    y[2, 0] = np.nan
    m = _model_from(p)
    est = m.expected_stats(torch.tensor(y))
    means, covs, cross, ll = condition(p, y)
    Exx = covs + np.einsum("ti,tj->tij", means, means)
    np.testing.assert_allclose(est.stats["dyn_xx"].numpy(), Exx[1:].sum(0), rtol=1e-9)
    Ecross = cross + np.einsum("ti,tj->tij", means[1:], means[:-1])
    np.testing.assert_allclose(est.stats["dyn_xz"][:, :2].numpy(), Ecross.sum(0), rtol=1e-9)
    np.testing.assert_allclose(est.stats["init_xx"].numpy(), Exx[0], rtol=1e-9)
    np.testing.assert_allclose(float(est.log_likelihood), ll, rtol=1e-10)


def test_padded_batch_e_step_is_the_sum_of_its_sequences():
    """Ragged sequences of 30 and 20 steps (one with an interior missing row), NaN-padded: the
    E step of the batch equals the sum of the two sequences' E steps — n = 50, not 60 — and EM
    on the padded batch follows the trajectory of EM on the two sequences as separate batches.
    (Counting the padding, as before, gives n = 60 and dyn_n = 58.)"""
    rng = np.random.default_rng(7)
    p = random_params(rng, 2, 3)
    P = LGSSMParams(**{k: torch.tensor(v) for k, v in p.items() if v is not None})
    _, y = sample_lgssm(P, 30, batch_shape=(2,), generator=torch.Generator().manual_seed(3))
    a, b = y[0].clone(), y[1, :20].clone()
    b[7] = float("nan")  # a missing observation inside a sequence is a real step
    m = _model_from(p)
    padded = m.expected_stats(pad_sequences([a, b]))
    parts = m.expected_stats(a) + m.expected_stats(b)
    assert padded.n == parts.n == 50.0
    assert float(padded.stats["dyn_n"]) == 29 + 19 and float(padded.stats["init_n"]) == 2
    torch.testing.assert_close(padded.log_likelihood, parts.log_likelihood, rtol=1e-12, atol=0)
    for k in parts.stats:
        torch.testing.assert_close(padded.stats[k], parts.stats[k], rtol=1e-9, atol=1e-9)
    m1, m2 = _model_from(p), _model_from(p)
    r1 = m1.fit([a, b], max_iter=5, tol=0.0, warn=False)
    r2 = run_em(m2, [a, b], max_iter=5, tol=0.0, warn=False)
    np.testing.assert_allclose(r1.log_likelihood, r2.log_likelihood, rtol=1e-10)
    torch.testing.assert_close(m1.dynamics, m2.dynamics, rtol=1e-8, atol=1e-10)


def _lls_pykalman(pk, Y, n):
    out = []
    for _ in range(n):
        out.append(pk.loglikelihood(Y))
        pk = pk.em(Y, n_iter=1)
    return np.array(out), pk


@pytest.mark.parametrize("masked", [False, True])
def test_parity_with_pykalman_filter_smooth_and_em_trajectory(masked):
    rng = np.random.default_rng(1)
    K, M, T = 2, 3, 60
    p = random_params(rng, K, M)
    P = LGSSMParams(**{k: torch.tensor(v) for k, v in p.items() if v is not None})
    _, y = sample_lgssm(P, T, generator=torch.Generator().manual_seed(0))
    Y = np.ma.array(y.numpy())
    if masked:
        Y[[5, 17, 18]] = np.ma.masked  # whole rows (pykalman drops any row with a mask)
    kw = dict(transition_matrices=0.5 * np.eye(K), observation_matrices=rng.normal(size=(M, K)),
              transition_offsets=p["dynamics_offset"], observation_offsets=p["emission_offset"],
              initial_state_mean=np.zeros(K), initial_state_covariance=np.eye(K))
    ours, theirs = KalmanFilter(**kw), pykalman.KalmanFilter(**kw)
    for a, b in zip(ours.filter(Y), theirs.filter(Y)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9)
    for a, b in zip(ours.smooth(Y), theirs.smooth(Y)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(ours.loglikelihood(Y), theirs.loglikelihood(Y), rtol=1e-10)
    em_vars = ["transition_matrices", "observation_matrices", "transition_covariance",
               "observation_covariance", "initial_state_mean", "initial_state_covariance"]
    ref, pk = _lls_pykalman(pykalman.KalmanFilter(**kw, em_vars=em_vars), Y, 8)
    traj = []
    gm = KalmanFilter(**kw, em_vars=em_vars)
    for _ in range(8):
        traj.append(gm.loglikelihood(Y))
        gm.em(Y, n_iter=1)
    np.testing.assert_allclose(traj, ref, rtol=1e-6)
    np.testing.assert_allclose(gm.transition_matrices, pk.transition_matrices, rtol=1e-6,
                               atol=1e-9)
    np.testing.assert_allclose(gm.observation_covariance, pk.observation_covariance, rtol=1e-6)
    assert np.all(np.diff(traj) >= -1e-9)


def test_em_is_monotone_with_everything_free_inputs_and_partial_missing():
    rng = np.random.default_rng(2)
    K, M, U, T = 2, 3, 1, 80
    p = random_params(rng, K, M, U)
    P = LGSSMParams(**{k: torch.tensor(v) for k, v in p.items()})
    u = torch.tensor(rng.normal(size=(3, T, U)))
    gen = torch.Generator().manual_seed(3)
    _, y = sample_lgssm(P, T, batch_shape=(3,), inputs=u, generator=gen)
    y = y.clone()
    y[0, 10:14, 0] = float("nan")
    y[1, 30:33] = float("nan")
    m = LinearGaussianSSM(K, M, U)
    m.initialize(y, torch.Generator().manual_seed(0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = m.fit(y, u, max_iter=25, tol=0.0)
    ll = np.array(res.log_likelihood)
    assert np.all(np.diff(ll) >= -1e-9 * np.abs(ll[:-1])), np.diff(ll).min()
    assert ll[-1] > ll[0]


def test_em_recovers_markov_parameters():
    """C A^k B-free Markov parameters C A^k C-side are invariant to latent similarity
    transforms; with long data EM recovers C A^k Cᵀ-style products and the noise levels."""
    K, M, T = 1, 2, 3000
    P = LGSSMParams(torch.zeros(K), torch.eye(K), torch.tensor([[0.8]]), torch.tensor([[0.5]]),
                    torch.tensor([[1.0], [-0.5]]), torch.eye(M) * 0.3)
    _, y = sample_lgssm(P, T, generator=torch.Generator().manual_seed(0))
    m = LinearGaussianSSM(K, M)
    m.initialize(y, torch.Generator().manual_seed(1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m.fit(y, max_iter=200, tol=1e-8, frozen=["emission_offset", "dynamics_offset"])
    np.testing.assert_allclose(float(m.dynamics), 0.8, atol=0.05)
    # C Σ_stationary Cᵀ and C A Σ Cᵀ are invariant to rescaling the latent
    def markov(C, A, Q):
        S = Q / (1 - A**2)
        return C @ C.T * S, C @ C.T * A * S
    a = markov(m.emission, float(m.dynamics), float(m.dynamics_covariance))
    b = markov(P.emission, 0.8, 0.5)
    for x, z in zip(a, b):
        np.testing.assert_allclose(x.numpy(), z.numpy(), atol=0.15)
    np.testing.assert_allclose(m.emission_covariance.diagonal().numpy(), [0.3, 0.3], atol=0.06)


def test_fully_observed_m_step_is_least_squares():
    """With Σ_{y|x} tiny and C = I the states are observed: one M step for A is OLS."""
    K, T = 2, 400
    A = torch.tensor([[0.7, 0.2], [0.0, 0.5]])
    P = LGSSMParams(torch.zeros(K), torch.eye(K), A, torch.eye(K) * 0.2, torch.eye(K),
                    torch.eye(K) * 1e-10)
    x, y = sample_lgssm(P, T, generator=torch.Generator().manual_seed(0))
    m = LinearGaussianSSM(K, K)
    m.set_params(dynamics=A, dynamics_covariance=torch.eye(K) * 0.2,
                 emission_covariance=torch.eye(K) * 1e-10)
    m.maximize(m.expected_stats(y).stats, frozen=frozenset(
        {"emission", "emission_covariance", "emission_offset", "dynamics_offset"}))
    X0, X1 = x[:-1], x[1:]
    ols = torch.linalg.lstsq(X0, X1).solution.T
    torch.testing.assert_close(m.dynamics, ols, rtol=1e-5, atol=1e-5)


def test_save_load_and_sequences_of_different_length():
    m = LinearGaussianSSM(2, 2)
    m.set_params(dynamics=0.5 * torch.eye(2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m.fit([torch.randn(30, 2), torch.randn(20, 2)], max_iter=3)
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        save(m, d + "/m")
        m2 = load(d + "/m")
    torch.testing.assert_close(m2.dynamics, m.dynamics)
    with pytest.raises(ValueError, match="unknown"):
        m.fit(torch.randn(5, 2), frozen=["nope"])
    with pytest.raises(ValueError, match="shape"):
        m.set_params(dynamics=torch.eye(3))


def test_nile_local_level_matches_published_and_statsmodels():
    """Durbin & Koopman (2012, §2.10): σ²_ε ≈ 15099, σ²_η ≈ 1469.1 (diffuse local level)."""
    sm = pytest.importorskip("statsmodels.api")
    y = load_dataset("nile").X.clone()
    m = LinearGaussianSSM(1, 1, diffuse=True)
    m.set_params(dynamics=[[1.0]], emission=[[1.0]], dynamics_covariance=[[1469.1]],
                 emission_covariance=[[15099.0]])
    uc = sm.tsa.UnobservedComponents(y.numpy()[:, 0], "local level", use_exact_diffuse=True)
    np.testing.assert_allclose(float(m.log_marginal(y)), uc.loglike([15099.0, 1469.1]),
                               rtol=1e-12)
    r = uc.smooth([15099.0, 1469.1])
    s = m.smooth(y)
    np.testing.assert_allclose(s.means[:, 0].numpy(), r.smoothed_state[0], rtol=1e-10)
    np.testing.assert_allclose(s.covariances[:, 0, 0].numpy(), r.smoothed_state_cov[0, 0],
                               rtol=1e-10)
    # maximum likelihood from a poor start: a few EM steps, then L-BFGS on the exact gradient
    m.set_params(dynamics_covariance=[[100.0]], emission_covariance=[[100.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = m.fit(y, max_iter=20, tol=0.0, frozen=["dynamics", "emission", "dynamics_offset",
                                                     "emission_offset"])
    assert np.all(np.diff(res.log_likelihood) >= -1e-12)
    m.fit_gradient(y)
    np.testing.assert_allclose(float(m.emission_covariance), 15099.0, rtol=5e-3)
    np.testing.assert_allclose(float(m.dynamics_covariance), 1469.1, rtol=5e-3)


def test_estimator_filter_update_sample_and_errors():
    kf = KalmanFilter(transition_matrices=[[1.0]], observation_matrices=[[1.0]],
                      transition_covariance=[[0.1]], observation_covariance=[[1.0]])
    pk = pykalman.KalmanFilter(transition_matrices=[[1.0]], observation_matrices=[[1.0]],
                               transition_covariance=[[0.1]], observation_covariance=[[1.0]])
    for obs in (np.array([0.7]), None):
        a = kf.filter_update(np.array([0.2]), np.array([[0.5]]), obs)
        b = pk.filter_update(np.array([0.2]), np.array([[0.5]]), obs)
        np.testing.assert_allclose(a[0], b[0], rtol=1e-12)
        np.testing.assert_allclose(a[1], b[1], rtol=1e-12)
    states, obs = kf.sample(50, random_state=0)
    assert states.shape == (50, 1) and obs.shape == (50, 1)
    with pytest.raises(ValueError, match="empty"):
        kf.filter(np.zeros((0, 1)))
    with pytest.raises(ValueError, match="em_vars"):
        kf.em(np.zeros((5, 1)), em_vars=["bogus"])
