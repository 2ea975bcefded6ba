"""The samplers run end to end: with the exact denoiser of Gaussian data, ancestral (DDPM) and
DDIM sampling return draws from the data distribution; bad arguments raise."""

from __future__ import annotations

import math

import pytest
import torch

from genmodels.inference.samplers import (
    ancestral_sample,
    ddim_levels,
    ddim_sample,
    ddim_step,
    langevin,
)
from genmodels.models.diffusion import GaussianSchedule, LinearLogSNR

M, S2 = 0.7, 0.3


def exact_predict_x0(schedule: GaussianSchedule):
    def predict(x, l):
        a, s = float(schedule.alpha[l]), float(schedule.sigma[l])
        return M + a * S2 / (a**2 * S2 + s**2) * (x - a * M)
    return predict


@pytest.mark.parametrize("sampler", ["ancestral", "ddim0"])
def test_samplers_draw_the_data_distribution(sampler: str) -> None:
    s = LinearLogSNR(-10, 10).discretise(200)
    g = torch.Generator().manual_seed(0)
    n = 20_000
    xL = torch.randn(n, 1, generator=g)
    pred = exact_predict_x0(s)
    if sampler == "ancestral":
        x = ancestral_sample(pred, s, xL, reverse_variance="transition", generator=g)
    else:
        x = ddim_sample(pred, s, xL, steps=50, eta=float(sampler[-1]), generator=g)
    assert abs(float(x.mean()) - M) < 5 * math.sqrt(S2 / n) + 0.01
    assert abs(float(x.var()) / S2 - 1) < 5 * math.sqrt(2 / n) + 0.03


def test_ddim_with_eta_one_on_every_level_is_the_ancestral_sampler() -> None:
    """Song et al. 2021: η = 1 over all levels is DDPM with the posterior variance β̃."""
    s = GaussianSchedule.cosine(100)
    xL = torch.randn(500, 3, generator=torch.Generator().manual_seed(2))
    pred = exact_predict_x0(s)
    a = ancestral_sample(pred, s, xL, reverse_variance="posterior",
                         generator=torch.Generator().manual_seed(3))
    d = ddim_sample(pred, s, xL, steps=100, eta=1.0, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(d, a, rtol=1e-9, atol=1e-9)


def test_chain_is_returned() -> None:
    s = GaussianSchedule.linear(50)
    g = torch.Generator().manual_seed(1)
    x, levels, states = ancestral_sample(exact_predict_x0(s), s, torch.randn(3, 2, generator=g),
                                         generator=g, return_chain=True)
    assert levels[0] == 50 and levels[-1] == 0 and states.shape == (len(levels), 3, 2)
    torch.testing.assert_close(states[-1], x)
    assert ddim_levels(1000, 4) == [1000, 750, 500, 250, 0]


def test_bad_sampler_arguments_raise() -> None:
    s = GaussianSchedule.linear(10)
    x = torch.zeros(2, 1)
    with pytest.raises(ValueError, match=r"eta must lie in \[0, 1\]"):
        ddim_step(x, x, 5, 3, s, eta=1.5)
    with pytest.raises(ValueError, match="l_prev must be below l"):
        ddim_step(x, x, 5, 5, s)
    with pytest.raises(ValueError, match=r"l must lie in 1..10"):
        ddim_step(x, x, 11, 3, s)
    with pytest.raises(ValueError, match="steps must be at most L = 10"):
        ddim_levels(10, 11)
    with pytest.raises(ValueError, match="step_size must be a finite number > 0"):
        langevin(lambda z: -z, x, 0.0, 10)


def test_nan_starting_points_raise() -> None:
    """NaN where a chain starts is named (what and where) instead of sampling NaN."""
    from genmodels.inference.samplers import annealed_langevin
    from genmodels.learning.score_matching import energy_distance, energy_test

    s = GaussianSchedule.linear(10)
    bad = torch.tensor([[0.0], [float("nan")]])
    with pytest.raises(ValueError, match=r"xL contains 1 non-finite value\(s\); the first is NaN "
                                         r"at index \(1, 0\)"):
        ancestral_sample(lambda z, l: z, s, bad)
    with pytest.raises(ValueError, match="xL contains 1 non-finite"):
        ddim_sample(lambda z, l: z, s, bad, steps=5)
    start = r"x \(the chains' starting points\) contains 1 non-finite"
    with pytest.raises(ValueError, match=start):
        langevin(lambda z: -z, bad, 0.1, 3)
    with pytest.raises(ValueError, match=start):
        annealed_langevin(lambda z, sg: -z, bad, [1.0, 0.5], 0.1, 2)
    with pytest.raises(ValueError, match="y contains 1 non-finite"):
        energy_distance(torch.zeros(3, 1), bad)
    with pytest.raises(ValueError, match="x contains 1 non-finite"):
        energy_test(bad, torch.zeros(3, 1), n_permutations=5)
