"""Parity with diffusers (a test-only peer): the same schedule gives the same noised data, the
same ancestral (DDPM) step and the same DDIM step, for each prediction type, to 1e-6."""

from __future__ import annotations

import pytest
import torch

from genmodels.inference.samplers import ancestral_step, ddim_step
from genmodels.models.diffusion import GaussianSchedule, get_parameterisation

diffusers = pytest.importorskip("diffusers")

T = 1000
BETAS = {"linear": "linear", "cosine": "squaredcos_cap_v2"}
PREDICTIONS = {"epsilon": "eps", "sample": "x0", "v_prediction": "v"}


def _peer(cls, beta_schedule: str, prediction_type: str, **kw):
    sch = cls(num_train_timesteps=T, beta_schedule=beta_schedule, clip_sample=False,
              prediction_type=prediction_type, **kw)
    # hold the peer's cumulative products in float64 so the comparison is of formulas, not of
    # float32 rounding; both sides use the same β_l
    sch.alphas_cumprod = torch.cumprod(1 - sch.betas.double(), 0)
    return sch


def _ours(name: str) -> GaussianSchedule:
    return GaussianSchedule.linear(T) if name == "linear" else GaussianSchedule.cosine(T)


@pytest.mark.parametrize("name", list(BETAS))
def test_schedules_match_diffusers_betas(name: str) -> None:
    peer = diffusers.DDPMScheduler(num_train_timesteps=T, beta_schedule=BETAS[name])
    torch.testing.assert_close(_ours(name).betas, peer.betas.double(), rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", list(BETAS))
def test_add_noise_matches(name: str) -> None:
    peer = _peer(diffusers.DDPMScheduler, BETAS[name], "epsilon")
    ours = GaussianSchedule.from_betas(peer.betas.double())
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(6, 2, 4, 4, generator=g), torch.randn(6, 2, 4, 4, generator=g)
    t = torch.tensor([0, 1, 10, 500, 998, 999])
    torch.testing.assert_close(ours.q_sample(x0, t + 1, eps), peer.add_noise(x0, eps, t),
                               rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", list(BETAS))
@pytest.mark.parametrize("prediction", list(PREDICTIONS))
@pytest.mark.parametrize("t", [0, 1, 400, 999])
def test_ddpm_step_matches(name: str, prediction: str, t: int) -> None:
    peer = _peer(diffusers.DDPMScheduler, BETAS[name], prediction)
    ours = GaussianSchedule.from_betas(peer.betas.double())
    param = get_parameterisation(PREDICTIONS[prediction])
    g = torch.Generator().manual_seed(t)
    x, out = torch.randn(5, 3, 4, generator=g), torch.randn(5, 3, 4, generator=g)
    want = peer.step(out, t, x, generator=torch.Generator().manual_seed(7)).prev_sample
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(7))
    l = t + 1  # diffusers' timestep t is level t + 1 (level 0 is the data)
    a, s = ours.alpha[l], ours.sigma[l]
    got = ancestral_step(param.to_x0(out, x, a, s), x, l, ours, noise)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", list(BETAS))
@pytest.mark.parametrize("prediction", list(PREDICTIONS))
@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_ddim_step_matches(name: str, prediction: str, eta: float) -> None:
    peer = _peer(diffusers.DDIMScheduler, BETAS[name], prediction)
    peer.final_alpha_cumprod = torch.tensor(1.0, dtype=torch.float64)
    peer.set_timesteps(50)
    ours = GaussianSchedule.from_betas(peer.betas.double())
    param = get_parameterisation(PREDICTIONS[prediction])
    g = torch.Generator().manual_seed(int(10 * eta))
    for t in (int(peer.timesteps[0]), int(peer.timesteps[25]), int(peer.timesteps[-1])):
        x, out = torch.randn(5, 6, generator=g), torch.randn(5, 6, generator=g)
        noise = torch.randn(5, 6, generator=g)
        want = peer.step(out, t, x, eta=eta, variance_noise=noise).prev_sample
        l, lp = t + 1, t - T // 50 + 1
        a, s = ours.alpha[l], ours.sigma[l]
        got = ddim_step(param.to_x0(out, x, a, s), x, l, max(lp, 0), ours, eta, noise)
        torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
