"""Kalman filter / RTS smoother kernels against the dense joint Gaussian (B13, B14)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _kalman_oracle import condition, filtered, random_params, single_thread

from genmodels.inference.kalman import (
    LGSSMParams,
    kalman_filter,
    kalman_smoother,
    linear_recurrence,
    log_marginal,
    rts_smoother,
    sample_lgssm,
    sample_posterior,
)


@pytest.fixture(autouse=True)
def _one_thread():
    yield from single_thread()


def to_params(p):
    return LGSSMParams(**{k: (torch.tensor(v) if v is not None else None) for k, v in p.items()})


@pytest.mark.parametrize("method", ["sequential", "parallel"])
@pytest.mark.parametrize("T", [1, 2, 5, 6])
@pytest.mark.parametrize("missing", [False, True])
def test_filter_and_smoother_equal_dense_conditioning(method, T, missing):
    rng = np.random.default_rng(T + 10 * missing)
    K, M, U = 2, 3, 2
    p = random_params(rng, K, M, U)
    u = rng.normal(size=(T, U))
    y = rng.normal(size=(T, M)) * 2
    if missing and T > 1:
        y[0, 1] = np.nan  # one entry of a row
        y[T - 1, :] = np.nan  # a whole row
    s = kalman_smoother(to_params(p), torch.tensor(y), inputs=torch.tensor(u), method=method)
    m, c, x, ll = condition(p, y, u)
    fm, fc = filtered(p, y, u)
    np.testing.assert_allclose(s.means.numpy(), m, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(s.covariances.numpy(), c, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(s.cross_covariances.numpy(), x, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(float(s.log_marginal), ll, rtol=1e-10)
    np.testing.assert_allclose(s.filtered.means.numpy(), fm, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(s.filtered.covariances.numpy(), fc, rtol=1e-9, atol=1e-10)
    # smoother at T equals filter at T; smoothing never increases the covariance
    torch.testing.assert_close(s.means[-1], s.filtered.means[-1])
    ev = torch.linalg.eigvalsh(s.filtered.covariances - s.covariances)
    assert bool((ev > -1e-10).all())


def test_mask_equals_nan_and_missing_everything_is_prior_propagation():
    rng = np.random.default_rng(3)
    p = random_params(rng, 2, 2)
    y = rng.normal(size=(4, 2))
    mask = np.ones_like(y, dtype=bool)
    mask[1, 0] = False
    y_nan = y.copy()
    y_nan[1, 0] = np.nan
    P = to_params(p)
    a = kalman_filter(P, torch.tensor(y), mask=torch.tensor(mask))
    b = kalman_filter(P, torch.tensor(y_nan))
    torch.testing.assert_close(a.means, b.means)
    torch.testing.assert_close(a.log_marginal, b.log_marginal)
    allnan = kalman_filter(P, torch.full((3, 2), float("nan")))
    assert float(allnan.log_marginal) == 0.0
    torch.testing.assert_close(allnan.means[1], P.dynamics @ P.initial_mean + P.dynamics_offset)


@pytest.mark.parametrize("T", [97, 300])
def test_parallel_and_steady_forms_equal_sequential(T):
    rng = np.random.default_rng(T)
    K, M = 3, 2
    P = to_params(random_params(rng, K, M))
    _, y = sample_lgssm(P, T, batch_shape=(2,), generator=torch.Generator().manual_seed(1))
    ref = kalman_smoother(P, y, method="sequential")
    for method in ("parallel", "steady", "auto"):
        s = kalman_smoother(P, y, method=method)
        for a, b in [(s.means, ref.means), (s.covariances, ref.covariances),
                     (s.cross_covariances, ref.cross_covariances),
                     (s.filtered.means, ref.filtered.means),
                     (s.filtered.predicted_covariances, ref.filtered.predicted_covariances)]:
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(s.log_marginal, ref.log_marginal, rtol=1e-12, atol=1e-9)
    steady = kalman_filter(P, y, method="steady")
    assert steady.steady_from is not None and steady.steady_from < T


def test_parallel_with_missing_data_and_batch_of_masks_equals_sequential():
    rng = np.random.default_rng(7)
    P = to_params(random_params(rng, 2, 3))
    _, y = sample_lgssm(P, 80, batch_shape=(3,), generator=torch.Generator().manual_seed(2))
    y = y.clone()
    y[0, 5:9, 1] = float("nan")
    y[2, 40:50] = float("nan")
    a = kalman_smoother(P, y, method="sequential")
    for method in ("parallel", "steady"):
        b = kalman_smoother(P, y, method=method)
        torch.testing.assert_close(a.means, b.means, rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(a.covariances, b.covariances, rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(a.log_marginal, b.log_marginal, rtol=1e-12, atol=1e-9)


def test_batched_sequences_equal_one_at_a_time():
    rng = np.random.default_rng(5)
    P = to_params(random_params(rng, 2, 2))
    _, y = sample_lgssm(P, 7, batch_shape=(2, 3), generator=torch.Generator().manual_seed(0))
    s = kalman_smoother(P, y)
    one = kalman_smoother(P, y[1, 2])
    torch.testing.assert_close(s.means[1, 2], one.means)
    torch.testing.assert_close(s.log_marginal[1, 2], one.log_marginal)
    assert s.cross_covariances.shape == (2, 3, 6, 2, 2)


def test_linear_recurrence_blocks_equal_loop():
    g = torch.Generator().manual_seed(0)
    F = 0.3 * torch.randn(3, 3, generator=g)
    gs = torch.randn(100, 2, 3, generator=g)
    x0 = torch.randn(2, 3, generator=g)
    out = linear_recurrence(F, gs, x0, block=8)
    x, ref = x0, []
    for t in range(100):
        x = x @ F.T + gs[t]
        ref.append(x)
    torch.testing.assert_close(out, torch.stack(ref))


def test_sampling_matches_model_and_posterior_moments():
    """Sample means/covariances of the model and of FFBS posterior draws (5σ error bars)."""
    rng = np.random.default_rng(11)
    p = random_params(rng, 2, 2)
    P = to_params(p)
    gen = torch.Generator().manual_seed(0)
    n = 4000
    x, y = sample_lgssm(P, 4, batch_shape=(n,), generator=gen)
    from _kalman_oracle import joint

    mean, cov = joint(p, 4)
    z = torch.cat([x.reshape(n, -1), y.reshape(n, -1)], 1)
    se = np.sqrt(np.diag(cov) / n)
    assert np.all(np.abs(z.mean(0).numpy() - mean) < 5 * se)
    s = kalman_smoother(P, y[0])
    draws = sample_posterior(P, s, n, generator=gen)  # (n, T, K)
    se = s.covariances.diagonal(dim1=-2, dim2=-1).sqrt() / np.sqrt(n)
    assert bool(((draws.mean(0) - s.means).abs() < 5 * se).all())
    emp_cross = ((draws[:, 1:] - s.means[1:]).unsqueeze(-1)
                 * (draws[:, :-1] - s.means[:-1]).unsqueeze(-2)).mean(0)
    scale = (s.covariances[1:].diagonal(dim1=-2, dim2=-1)[..., :, None]
             * s.covariances[:-1].diagonal(dim1=-2, dim2=-1)[..., None, :]).sqrt()
    assert bool(((emp_cross - s.cross_covariances).abs() < 6 * scale / np.sqrt(n)).all())


def test_riccati_steady_state_of_a_random_walk():
    """Scalar random walk: the predicted variance converges to the Riccati fixed point
    P = (q + sqrt(q² + 4qr)) / 2."""
    q, r = 0.5, 2.0
    P = LGSSMParams(torch.zeros(1), torch.eye(1), torch.eye(1), torch.eye(1) * q, torch.eye(1),
                    torch.eye(1) * r)
    f = kalman_filter(P, torch.randn(200, 1, generator=torch.Generator().manual_seed(0)))
    expected = (q + np.sqrt(q * q + 4 * q * r)) / 2
    np.testing.assert_allclose(float(f.predicted_covariances[-1, 0, 0]), expected, rtol=1e-12)


def test_log_marginal_is_differentiable():
    rng = np.random.default_rng(2)
    P = to_params(random_params(rng, 2, 2))
    _, y = sample_lgssm(P, 10, generator=torch.Generator().manual_seed(0))
    Q = P.dynamics_covariance.clone().requires_grad_(True)
    log_marginal(P._replace(dynamics_covariance=Q), y).backward()
    assert Q.grad is not None and torch.isfinite(Q.grad).all()


def test_smoother_does_not_see_data():
    rng = np.random.default_rng(4)
    P = to_params(random_params(rng, 2, 2))
    y = torch.tensor(rng.normal(size=(5, 2)))
    f = kalman_filter(P, y)
    s = rts_smoother(P, f)
    torch.testing.assert_close(s.means, kalman_smoother(P, y).means)


class TestBadInput:
    P = LGSSMParams(torch.zeros(2), torch.eye(2), torch.eye(2), torch.eye(2), torch.ones(3, 2),
                    torch.eye(3))

    def test_wrong_observation_dim(self):
        with pytest.raises(ValueError, match="M=3"):
            kalman_filter(self.P, torch.zeros(5, 2))

    def test_empty_sequence(self):
        with pytest.raises(ValueError, match="empty"):
            kalman_filter(self.P, torch.zeros(0, 3))

    def test_nan_outside_mask(self):
        y = torch.zeros(4, 3)
        y[1, 1] = float("nan")
        with pytest.raises(ValueError, match="mask"):
            kalman_filter(self.P, y, mask=torch.ones(4, 3, dtype=torch.bool))

    def test_infinite_observation(self):
        y = torch.zeros(4, 3)
        y[2, 0] = float("inf")
        with pytest.raises(ValueError, match="infinite"):
            kalman_filter(self.P, y)

    def test_non_psd_covariance(self):
        bad = self.P._replace(dynamics_covariance=torch.tensor([[1.0, 2.0], [2.0, 1.0]]))
        with pytest.raises(ValueError, match="positive semi-definite"):
            kalman_filter(bad, torch.zeros(4, 3))

    def test_asymmetric_covariance_and_wrong_shapes(self):
        with pytest.raises(ValueError, match="symmetric"):
            kalman_filter(self.P._replace(emission_covariance=torch.tensor(
                [[1.0, 0.5, 0], [0, 1, 0], [0, 0, 1]])), torch.zeros(4, 3))
        with pytest.raises(ValueError, match="dynamics A"):
            kalman_filter(self.P._replace(dynamics=torch.eye(3)[:2]), torch.zeros(4, 3))
        with pytest.raises(ValueError, match="method"):
            kalman_filter(self.P, torch.zeros(4, 3), method="fast")

    def test_diffuse_needs_full_rank_and_observed_first_step(self):
        with pytest.raises(ValueError, match="full column rank"):
            kalman_filter(self.P, torch.zeros(4, 3), diffuse=True)
        P1 = LGSSMParams(torch.zeros(1), torch.eye(1), torch.eye(1), torch.eye(1),
                         torch.eye(1), torch.eye(1))
        with pytest.raises(ValueError, match="fully observed"):
            kalman_filter(P1, torch.tensor([[float("nan")], [1.0]]), diffuse=True)
