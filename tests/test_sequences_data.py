"""Synthetic sequence data: bouncing balls (Sutskever et al. 2008) and the Poisson-observed
linear dynamical system (Makin et al. 2015)."""

import math

import pytest
import torch

from genmodels.data.sequences import (
    BOX,
    bouncing_balls,
    kalman_one_step,
    poisson_lds,
    population_decode,
)
from genmodels.inference.kalman import kalman_filter


def test_bouncing_balls_shapes_range_and_seeding():
    a = bouncing_balls(4, 12, res=10, n_balls=2, seed=3)
    b = bouncing_balls(4, 12, res=10, n_balls=2, seed=3)
    c = bouncing_balls(4, 12, res=10, n_balls=2, seed=4)
    assert a.frames.shape == (4, 12, 10, 10)
    assert a.positions.shape == (4, 12, 2, 2) and a.velocities.shape == (4, 12, 2, 2)
    assert torch.equal(a.frames, b.frames) and not torch.equal(a.frames, c.frames)
    assert a.frames.min() >= 0 and a.frames.max() <= 1


def test_bouncing_balls_physics():
    bb = bouncing_balls(30, 80, res=8, n_balls=3, speed=0.5, seed=0)
    # elastic walls and equal-mass collisions conserve the total kinetic energy exactly
    ke = (bb.velocities**2).sum((-1, -2))
    torch.testing.assert_close(ke, torch.full_like(ke, 3 * 0.25))
    # the balls stay in the box, up to one Euler sub-step (half a frame) at the largest speed
    over = 0.5 * float(bb.velocities.norm(dim=-1).max())
    assert bb.positions.min() > 1.2 - over and bb.positions.max() < BOX - 1.2 + over
    # positions follow the velocities: x_{t+1} − x_t is the mean of the sub-step velocities,
    # so away from any bounce it equals v_t
    step = bb.positions[:, 1:] - bb.positions[:, :-1]
    free = (bb.velocities[:, 1:] == bb.velocities[:, :-1]).all(-1)
    torch.testing.assert_close(step[free], bb.velocities[:, :-1][free])
    # collisions happen (some ball's speed changes) in a good share of sequences
    speed = bb.velocities.norm(dim=-1)
    assert ((speed.amax(1) - speed.amin(1)) > 0.05).any(-1).float().mean() > 0.5


def test_bouncing_balls_render_is_the_soft_disc():
    bb = bouncing_balls(1, 1, res=12, n_balls=1, seed=5)
    centres = (torch.arange(12) + 0.5) * BOX / 12
    p = bb.positions[0, 0, 0]
    d2 = (centres[:, None] - p[0]) ** 2 + (centres[None, :] - p[1]) ** 2
    torch.testing.assert_close(bb.frames[0, 0], torch.exp(-((d2 / 1.2**2) ** 4)))


def test_bouncing_balls_errors():
    with pytest.raises(ValueError, match="n_sequences"):
        bouncing_balls(0, 5)
    with pytest.raises(ValueError, match="radius"):
        bouncing_balls(1, 5, radius=6.0)
    with pytest.raises(ValueError, match="without overlap"):
        bouncing_balls(1, 5, n_balls=40, radius=2.0)


def test_poisson_lds_statistics():
    p = poisson_lds(400, 60, seed=1)
    B, T = 400, 60
    assert p.states.shape == (B, T, 2) and p.counts.shape == (B, T, 15)
    # started at the stationary distribution, every step has covariance Σ_∞: check the
    # variances within 6 standard errors (var of a sample variance ≈ 2σ⁴/n, n = B per step,
    # averaged over T correlated steps: bound with n = B)
    S = p.params.initial_covariance
    emp = p.states.var(dim=0).mean(0)
    se = S.diagonal() * math.sqrt(2 / B)
    assert ((emp - S.diagonal()).abs() < 6 * se).all()
    # one step of the dynamics: x_{t+1} − A x_t has covariance Q
    resid = p.states[:, 1:] - p.states[:, :-1] @ p.params.dynamics.T
    assert resid[..., 0].abs().max() < 1e-12
    q, w = float(p.params.dynamics_covariance[1, 1]), resid[..., 1]
    assert abs(float(w.var()) - q) < 6 * q * math.sqrt(2 / w.numel())
    # counts are Poisson(rates): mean residual within 6 s.e.
    d = (p.counts - p.rates).flatten()
    assert abs(float(d.mean())) < 6 * math.sqrt(float(p.rates.mean()) / d.numel())


def test_poisson_lds_seeding_and_errors():
    assert torch.equal(poisson_lds(2, 5, seed=7).counts, poisson_lds(2, 5, seed=7).counts)
    with pytest.raises(ValueError, match="unstable"):
        poisson_lds(2, 5, dt=2.0)
    with pytest.raises(ValueError, match="n_neurons"):
        poisson_lds(2, 5, n_neurons=1)


def test_population_decode_is_the_poisson_likelihood_mode():
    # dense tuning curves: the argmax of the exact Poisson log-likelihood on a fine grid agrees
    # with the Gaussian decode to well within the decoding standard deviation
    p = poisson_lds(1, 200, n_neurons=41, span=4.0, gain=2.0, seed=2)
    zhat, var = population_decode(p.counts, p.centres, p.width)
    grid = torch.linspace(-3, 3, 3001)
    f = p.gain * torch.exp(-((grid[:, None] - p.centres) ** 2) / (2 * p.width**2))  # (G, D)
    ll = p.counts[0] @ f.log().T - f.sum(-1)  # (T, G)
    mode = grid[ll.argmax(-1)]
    inside = (zhat[0].abs() < 2.5) & torch.isfinite(var[0])
    assert ((mode - zhat[0]).abs()[inside] < 0.2 * var[0][inside].sqrt()).all()
    z, v = population_decode(torch.zeros(3, 41), p.centres, p.width)
    assert torch.equal(z, torch.zeros(3)) and torch.isinf(v).all()


def test_kalman_on_decoded_positions_beats_the_decode():
    p = poisson_lds(100, 100, seed=3)
    z, v = population_decode(p.counts, p.centres, p.width)
    y = torch.where(torch.isfinite(v), z, torch.nan)[..., None]
    f = kalman_filter(p.params, y)
    pos = p.states[..., 0]
    decode_mse = float(((z - pos) ** 2)[torch.isfinite(v)].mean())
    assert float(((f.means[..., 0] - pos) ** 2).mean()) < 0.5 * decode_mse


def test_kalman_one_step_is_the_filters_prediction():
    p = poisson_lds(20, 30, seed=4)
    pred = kalman_one_step(p)
    assert pred.shape == (20, 29, 2)
    z, v = population_decode(p.counts, p.centres, p.width)
    y = torch.where(torch.isfinite(v), z, torch.nan)[..., None]
    f = kalman_filter(p.params, y, method="sequential")
    torch.testing.assert_close(pred, f.predicted_means[:, 1:])
    # it predicts better than the last decoded position does
    pos = p.states[:, 1:, 0]
    last = torch.where(torch.isfinite(v[:, :-1]), z[:, :-1], torch.zeros_like(z[:, :-1]))
    assert ((pred[..., 0] - pos) ** 2).mean() < ((last - pos) ** 2).mean()
