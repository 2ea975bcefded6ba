"""The diffusion JRE on a one-dimensional linear-Gaussian case (book §8.3): the optimal
denoiser is linear and every term is exact, so the ELBO can be computed in closed form; the
discretised decoder (Ho et al. 2020); training through the trainer; the denoisers."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from genmodels.io import load, save
from genmodels.learning.trainer import Trainer
from genmodels.models.denoisers import ConvDenoiser, MLPDenoiser
from genmodels.models.diffusion import (
    GaussianDiffusion,
    GaussianSchedule,
    LinearLogSNR,
    diffusion_elbo,
    diffusion_loss,
    discretised_gaussian_log_likelihood,
    level_weights,
    reverse_variances,
)

M, S2 = 0.4, 0.5  # x_0 ~ N(M, S2)


def optimal_x0(x, alpha, sigma):
    return M + alpha * S2 / (alpha**2 * S2 + sigma**2) * (x - alpha * M)


def optimal(schedule: GaussianSchedule):
    def net(x, t):
        l = (t * schedule.L).round().long()
        return optimal_x0(x, schedule.alpha[l][:, None], schedule.sigma[l][:, None])
    return net


def exact_elbo(s: GaussianSchedule, reverse_variance: str = "posterior") -> float:
    """E_{x_0}[ELBO] for the optimal denoiser, in closed form: each KL's mean term is w_l times
    the posterior variance of x_0 | x_l, S2 σ_l²/(α_l² S2 + σ_l²)."""
    L = s.L
    l = torch.arange(1, L + 1)
    pv = S2 * s.sigma[l] ** 2 / (s.alpha[l] ** 2 * S2 + s.sigma[l] ** 2)  # E‖x_0 − m̂_l‖²
    var_p = reverse_variances(s, reverse_variance)
    w = level_weights(s, "elbo", reverse_variance)
    var_q = s.sigma[l - 1] ** 2 * (1 - s._snr_ratio(l, l - 1))
    kl = 0.5 * (torch.log(var_p / var_q) + var_q / var_p - 1) + w * pv
    decoder = 0.5 * math.log(2 * math.pi * var_p[0]) + pv[0] / (2 * var_p[0])
    aL, sL = s.alpha[L], s.sigma[L]
    prior = 0.5 * (aL**2 * (M**2 + S2) + sL**2 - 1 - torch.log(sL**2))
    return -float(prior + kl[1:].sum() + decoder)


EXACT_LL = -0.5 * math.log(2 * math.pi * S2) - 0.5  # E log N(x_0; M, S2)


def test_monte_carlo_elbo_equals_the_closed_form() -> None:
    s = GaussianSchedule.linear(200, 1e-4, 0.1)
    g = torch.Generator().manual_seed(0)
    x0 = M + math.sqrt(S2) * torch.randn(4000, 1, generator=g)
    for rv in ("posterior", "transition"):
        e = diffusion_elbo(optimal(s), x0, s, "x0", reverse_variance=rv, generator=g).elbo
        se = float(e.std()) / math.sqrt(e.numel())
        assert abs(float(e.mean()) - exact_elbo(s, rv)) < 5 * se


def test_elbo_approaches_the_exact_log_likelihood() -> None:
    """With a linear log-SNR schedule (every step loses the same fraction of SNR), the optimal
    model's ELBO → E log p(x_0) as L grows, from below, at rate O(1/L), for both reverse
    variances. (A linear β schedule halves the SNR in its first steps at every L, so its gap
    does not vanish with fixed variances — the reason Nichol & Dhariwal learn them.)"""
    for rv, tol in (("posterior", 0.02), ("transition", 2e-4)):
        gaps = []
        for L in (10, 100, 1000, 4000):
            e = exact_elbo(LinearLogSNR(-12, 12).discretise(L), rv)
            assert e < EXACT_LL
            gaps.append(EXACT_LL - e)
        assert gaps == sorted(gaps, reverse=True)
        assert gaps[-1] < tol
        assert 3 < gaps[-2] / gaps[-1] < 5  # first order in 1/L


def test_optimal_eps_predictor_loss_equals_its_closed_form() -> None:
    """E‖ε − E[ε|x_l]‖² = Var(ε | x_l) = α_l² S2/(α_l² S2 + σ_l²), averaged over l."""
    s = GaussianSchedule.cosine(100)
    g = torch.Generator().manual_seed(1)
    x0 = M + math.sqrt(S2) * torch.randn(100_000, 1, generator=g)

    def eps_opt(x, t):
        l = (t * s.L).round().long()
        a, sd = s.alpha[l][:, None], s.sigma[l][:, None]
        return (x - a * optimal_x0(x, a, sd)) / sd

    loss = diffusion_loss(eps_opt, x0, s, "eps", weighting="simple", generator=g)
    a2 = s.alpha[1:] ** 2
    closed = float((a2 * S2 / (a2 * S2 + s.sigma[1:] ** 2)).mean())
    se = float(loss.std()) / math.sqrt(loss.numel())
    assert abs(float(loss.mean()) - closed) < 5 * se
    # and a perturbed predictor is worse
    worse = diffusion_loss(lambda x, t: 1.1 * eps_opt(x, t), x0, s, "eps", weighting="simple",
                           generator=g)
    assert float(worse.mean()) > float(loss.mean())


class TabularLinear(nn.Module):
    """m̂(x_l, l) = a_l x_l + b_l: the family that contains the optimal denoiser."""

    def __init__(self, L: int) -> None:
        super().__init__()
        self.L = L
        self.a = nn.Parameter(torch.zeros(L + 1))
        self.b = nn.Parameter(torch.zeros(L + 1))

    def forward(self, x, t):
        l = (t * self.L).round().long()
        return self.a[l][:, None] * x + self.b[l][:, None]


def test_trained_model_elbo_approaches_the_exact_log_likelihood() -> None:
    s = LinearLogSNR(-10, 10).discretise(50)
    g = torch.Generator().manual_seed(2)
    x0 = M + math.sqrt(S2) * torch.randn(20_000, 1, generator=g)
    model = GaussianDiffusion(TabularLinear(s.L), s, "x0", weighting="elbo",
                              reverse_variance="transition")
    Trainer(model, epochs=30, batch_size=500, lr=5e-2, progress=False, seed=0,
            scheduler=lambda opt: torch.optim.lr_scheduler.ExponentialLR(opt, 0.85)).fit(x0)
    test = M + math.sqrt(S2) * torch.randn(20_000, 1, generator=g)
    trained = model.elbo(test, generator=torch.Generator().manual_seed(3)).elbo
    best = diffusion_elbo(optimal(s), test, s, "x0", reverse_variance="transition",
                          generator=torch.Generator().manual_seed(3)).elbo
    diff = trained - best  # common random numbers: the same data and noise
    assert abs(float(diff.mean())) < 0.005 + 5 * float(diff.std()) / math.sqrt(diff.numel())
    # the optimum itself is within O(1/L) of the exact log-likelihood, from below
    assert 0 < EXACT_LL - exact_elbo(s, "transition") < 0.01


def test_discretised_decoder_is_a_distribution() -> None:
    K = 17
    grid = torch.linspace(-1, 1, K)[:, None].expand(K, 5)
    for mean, std in [(0.1, 0.05), (0.9, 0.001), (-3.0, 0.2), (0.0, 5.0), (0.3, 1e-4)]:
        lp = discretised_gaussian_log_likelihood(grid, torch.full((K, 5), mean), std, K)
        torch.testing.assert_close(lp.exp().sum(0), torch.ones(5), rtol=0, atol=1e-9)
        assert bool(torch.isfinite(lp).all()) or std < 1e-3
    # interior bins are Φ differences
    x, mu, sd = torch.tensor([[0.25]]), torch.tensor([[0.2]]), 0.1
    n = torch.distributions.Normal(0.2, 0.1)
    want = (n.cdf(torch.tensor(0.25 + 1 / 16)) - n.cdf(torch.tensor(0.25 - 1 / 16))).log()
    torch.testing.assert_close(discretised_gaussian_log_likelihood(x, mu, sd, K)[0, 0], want)


def test_discretised_elbo_bounds_the_discrete_probability() -> None:
    """On data on a K-level grid, −ELBO ≥ −log P(x) ≥ 0, so bits/dim are positive and finite."""
    s = GaussianSchedule.linear(100, 1e-4, 0.2)
    g = torch.Generator().manual_seed(3)
    x = (torch.randint(0, 17, (200, 4), generator=g) / 8.0 - 1).to(torch.float64)
    res = diffusion_elbo(lambda x, t: torch.zeros_like(x), x, s, "eps", levels_of_data=17,
                         generator=g)
    assert bool((res.bits_per_dim > 0).all()) and bool(torch.isfinite(res.elbo).all())
    torch.testing.assert_close(res.elbo, -(res.prior + res.diffusion + res.decoder))


@pytest.mark.parametrize("net", [MLPDenoiser(64, 32, 2, seed=0, dtype=torch.float64),
                                 ConvDenoiser((8, 8), 16, 2, seed=0, dtype=torch.float64)])
def test_denoisers_train_and_save(net, tmp_path) -> None:
    s = GaussianSchedule.linear(100)
    g = torch.Generator().manual_seed(4)
    x = torch.rand(256, 64, generator=g) * 2 - 1
    model = GaussianDiffusion(net, s, "eps")
    with torch.no_grad():
        before = float(model.loss(x, torch.Generator().manual_seed(0)))
    Trainer(model, epochs=15, batch_size=64, lr=3e-3, progress=False).fit(x)
    with torch.no_grad():
        after = float(model.loss(x, torch.Generator().manual_seed(0)))
    assert after < before
    save(model, tmp_path / "m")
    back = load(tmp_path / "m")
    y = torch.randn(3, 64, dtype=torch.float64)
    t = torch.tensor([0.1, 0.5, 1.0], dtype=torch.float64)
    torch.testing.assert_close(back.denoiser(y, t), model.denoiser(y, t))
    torch.testing.assert_close(back.schedule.alpha, model.schedule.alpha)
    out = model.sample(4, (64,), generator=g, sampler="ddim", steps=10, dtype=torch.float64)
    assert out.shape == (4, 64) and bool(torch.isfinite(out).all())
