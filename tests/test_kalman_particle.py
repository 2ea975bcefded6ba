"""Bootstrap particle filter and FFBSm smoother (B15, B16) against the Kalman filter."""

from __future__ import annotations

import math

import pytest
import torch
from _kalman_oracle import single_thread
from torch.distributions import MultivariateNormal, Normal

from genmodels.inference.kalman import LGSSMParams, kalman_smoother, sample_lgssm
from genmodels.inference.particle import (
    multinomial_resample,
    particle_filter,
    particle_smoother,
    stratified_resample,
    systematic_resample,
)


@pytest.fixture(autouse=True)
def _one_thread():
    yield from single_thread()

A = torch.tensor([[0.9, 0.1], [0.0, 0.8]])
Q = torch.eye(2) * 0.3
C = torch.tensor([[1.0, 0.5]])
R = torch.eye(1) * 0.5
P = LGSSMParams(torch.zeros(2), torch.eye(2), A, Q, C, R)
_, Y = sample_lgssm(P, 15, generator=torch.Generator().manual_seed(0))
KS = kalman_smoother(P, Y)


def transition(x, t):
    return MultivariateNormal(x @ A.T, covariance_matrix=Q)


def emission(x, t):
    return MultivariateNormal(x @ C.T, covariance_matrix=R)


INIT = MultivariateNormal(torch.zeros(2), torch.eye(2))


@pytest.mark.parametrize("scheme", ["multinomial", "stratified", "systematic"])
def test_filtered_moments_approach_kalman(scheme):
    I = 20000
    pf = particle_filter(Y, INIT, transition, emission, I, resampling=scheme,
                         generator=torch.Generator().manual_seed(1))
    sd = KS.filtered.covariances.diagonal(dim1=-2, dim2=-1).sqrt()
    err = (pf.mean() - KS.filtered.means).abs() / sd  # in posterior standard deviations
    # Monte Carlo error of a weighted mean ~ sd·sqrt(ISF/I); averaged over t and dims, 5 times
    # the I^{-1/2} rate with an inefficiency factor of 4 is a generous but failing-able bar.
    assert float(err.mean()) < 5 * math.sqrt(4.0 / I)
    assert abs(float(pf.log_marginal - KS.log_marginal)) < 0.1
    torch.testing.assert_close(pf.log_weights.exp().sum(-1), torch.ones(15))


def test_log_marginal_estimate_is_unbiased_in_exp():
    n_runs, I = 40, 500
    g = torch.Generator().manual_seed(2)
    r = torch.stack([(particle_filter(Y, INIT, transition, emission, I, generator=g).log_marginal
                      - KS.log_marginal).exp() for _ in range(n_runs)])
    assert abs(float(r.mean()) - 1.0) < 5 * float(r.std()) / math.sqrt(n_runs) + 1e-3


def test_adaptive_resampling_and_determinism():
    a = particle_filter(Y, INIT, transition, emission, 300, ess_threshold=0.5,
                        generator=torch.Generator().manual_seed(3))
    b = particle_filter(Y, INIT, transition, emission, 300, ess_threshold=0.5,
                        generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(a.particles, b.particles)
    assert 0 < int(a.resampled.sum()) < 14
    assert bool((a.ess[:-1][a.resampled[1:]] <= 150 + 1e-9).all())
    assert bool((a.ess[:-1][~a.resampled[1:]][1:] > 150).all())


def test_smoother_approaches_rts_and_invariants():
    I = 800
    pf = particle_filter(Y, INIT, transition, emission, I,
                         generator=torch.Generator().manual_seed(4))
    ps = particle_smoother(pf, transition)
    torch.testing.assert_close(ps.log_weights[-1], pf.log_weights[-1])  # β_T = α_T
    torch.testing.assert_close(ps.log_weights.exp().sum(-1), torch.ones(15))
    sd = KS.covariances.diagonal(dim1=-2, dim2=-1).sqrt()
    err = (ps.mean() - KS.means).abs() / sd
    assert float(err.mean()) < 5 * math.sqrt(8.0 / I)


def test_uninformative_transition_gives_beta_equal_alpha():
    def flat(x, t):
        return Normal(torch.zeros(x.shape[0]), torch.ones(x.shape[0]))

    y = torch.randn(6, generator=torch.Generator().manual_seed(0))
    pf = particle_filter(y, Normal(0.0, 1.0), flat, lambda x, t: Normal(x, 1.0), 200,
                         generator=torch.Generator().manual_seed(0))
    ps = particle_smoother(pf, flat)
    torch.testing.assert_close(ps.log_weights, pf.log_weights)


def test_resamplers_are_unbiased_counts():
    w = torch.tensor([0.1, 0.2, 0.3, 0.4]).log()
    g = torch.Generator().manual_seed(0)
    for fn in (multinomial_resample, stratified_resample, systematic_resample):
        counts = torch.bincount(fn(w, 100000, g), minlength=4).double() / 100000
        torch.testing.assert_close(counts, w.exp(), atol=0.01, rtol=0)
    # systematic: each count is floor or ceil of n·w
    c = torch.bincount(systematic_resample(w, 10, g), minlength=4)
    assert bool(((c - 10 * w.exp()).abs() < 1 + 1e-9).all())


def test_bad_input():
    with pytest.raises(ValueError, match="empty"):
        particle_filter(torch.zeros(0, 1), INIT, transition, emission, 10)
    with pytest.raises(ValueError, match="resampling"):
        particle_filter(Y, INIT, transition, emission, 10, resampling="magic")
    with pytest.raises(ValueError, match="num_particles"):
        particle_filter(Y, INIT, transition, emission, 0)
