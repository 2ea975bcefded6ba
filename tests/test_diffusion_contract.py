"""GaussianDiffusion through the bound-model contract (genmodels.testing.check_bound_model):
its latents are the chain x_{1:L}, its ELBO a bound (``DiffusionLatentModel``). With one
affine denoiser per level the generative chain is linear-Gaussian, so log p̂(x_0) is exact —
the oracle the bounds must stay below. The contract is seen to fail on broken models."""

from __future__ import annotations

import pytest
import torch
from torch.distributions import MultivariateNormal

from genmodels.inference.samplers import _step_coefficients
from genmodels.models.denoisers import LinearDenoiser, MLPDenoiser
from genmodels.models.diffusion import (
    DiffusionLatentModel,
    GaussianDiffusion,
    GaussianSchedule,
    reverse_variances,
)
from genmodels.testing import check_bound_model

D, L = 2, 4


def _linear(dtype: torch.dtype, parameterisation: str = "eps",
            reverse_variance: str = "posterior") -> DiffusionLatentModel:
    net = LinearDenoiser(D, L, init_scale=0.4, dtype=torch.float64, seed=0)
    sched = GaussianSchedule.linear(L, 0.05, 0.4)
    return DiffusionLatentModel(GaussianDiffusion(net, sched, parameterisation,
                                                  reverse_variance=reverse_variance),
                                D).to(dtype)


MU = torch.tensor([0.5, -1.0], dtype=torch.float64)
SIGMA = torch.tensor([[1.0, 0.6], [0.6, 0.8]], dtype=torch.float64)


def _near_optimal(dtype: torch.dtype) -> DiffusionLatentModel:
    """x₀-prediction with the optimal denoiser of N(MU, SIGMA) data at every level,
    m̂(x_l) = MU + α_l Σ(α_l² Σ + s_l² I)⁻¹(x_l − α_l MU) (the posterior mean), slightly
    perturbed: the forward process is then close to the model's posterior and the bounds are
    tight, so a wrong term shows."""
    sched = GaussianSchedule.linear(L, 0.02, 0.1)  # x_L far from N(0, I): a large prior KL
    net = LinearDenoiser(D, L, dtype=torch.float64)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for l in range(1, L + 1):
            a, s = float(sched.alpha[l]), float(sched.sigma[l])
            W = a * SIGMA @ torch.linalg.inv(a**2 * SIGMA + s**2 * torch.eye(D,
                                                                           dtype=torch.float64))
            net.weight[l - 1] = W + 0.02 * torch.randn(D, D, generator=g, dtype=torch.float64)
            net.bias[l - 1] = MU - a * W @ MU
    return DiffusionLatentModel(GaussianDiffusion(net, sched, "x0"), D).to(dtype)


def exact_marginal(m: DiffusionLatentModel) -> MultivariateNormal:
    """p̂(x_0) of a chain whose m̂(x, l) = P_l x + q_l is affine: push N(0, I) through
    x_{l−1} = A_l x_l + c0_l q_l + σ_l z with A_l = c0_l P_l + cm_l I (Eq. 8.33)."""
    c0, cm, sd = _step_coefficients(m.model.schedule, m.model.reverse_variance)
    dt = torch.float64
    mean, cov, eye = torch.zeros(D, dtype=dt), torch.eye(D, dtype=dt), torch.eye(D, dtype=dt)
    with torch.no_grad():
        for l in range(L, 0, -1):
            q = m.model.predict_x0(torch.zeros(1, D, dtype=dt), l)[0]
            P = (m.model.predict_x0(eye, l) - q).T  # column j: the image of e_j
            A = c0[l] * P + cm[l] * eye
            mean = A @ mean + c0[l] * q
            cov = A @ cov @ A.T + sd[l] ** 2 * eye
    return MultivariateNormal(mean, cov)


def test_reverse_variance_of_the_decoder_is_the_first_beta() -> None:
    """The adapter's decoder N(m̂(x_1), σ_1²) uses the ELBO's σ_1² = β_1 (erratum E-40)."""
    sched = GaussianSchedule.linear(L, 0.05, 0.4)
    for rv in ("posterior", "transition"):
        assert _step_coefficients(sched, rv)[2][1] ** 2 == pytest.approx(
            float(reverse_variances(sched, rv)[0]))
        assert float(reverse_variances(sched, rv)[0]) == pytest.approx(0.05)


@pytest.mark.parametrize(("parameterisation", "reverse_variance"),
                         [("eps", "posterior"), ("x0", "transition"), ("v", "posterior")])
def test_linear_diffusion_meets_the_bound_contract_against_its_exact_marginal(
        parameterisation: str, reverse_variance: str) -> None:
    def factory(dt: torch.dtype) -> DiffusionLatentModel:
        return _linear(dt, parameterisation, reverse_variance)

    model = factory(torch.float64)
    truth = exact_marginal(model)
    # the oracle is the sampler's law: moments of 40,000 draws within 5 standard errors
    y = model.sample(40_000, generator=torch.Generator().manual_seed(4))
    n, sd = y.shape[0], truth.covariance_matrix.diagonal().sqrt()
    assert ((y.mean(0) - truth.mean).abs() < 5 * sd / n**0.5).all()
    assert ((torch.cov(y.T) - truth.covariance_matrix).abs()
            < 5 * 2**0.5 * torch.outer(sd, sd) / n**0.5).all()
    data = model.sample(300, generator=torch.Generator().manual_seed(5))
    exact = truth.log_prob(data)
    report = check_bound_model(factory, data, exact=exact)
    assert {"bounds[exact]", "dtypes", "sample_log_prob", "save_load"} <= set(report.passed)


def test_mlp_diffusion_meets_the_bound_contract() -> None:
    def factory(dt: torch.dtype) -> DiffusionLatentModel:
        net = MLPDenoiser(D, 16, 1, 8, dtype=torch.float64, seed=0)
        with torch.no_grad():  # off its initial value, so the denoiser matters
            g = torch.Generator().manual_seed(1)
            for p in net.parameters():
                p.add_(0.3 * torch.randn(p.shape, generator=g, dtype=p.dtype))
        return DiffusionLatentModel(GaussianDiffusion(net, GaussianSchedule.linear(L, 0.05, 0.4)),
                                    D).to(dt)

    data = factory(torch.float64).sample(300, generator=torch.Generator().manual_seed(5))
    report = check_bound_model(factory, data)
    assert {"bounds", "dtypes", "sample_log_prob", "save_load"} <= set(report.passed)


class _NoDecoderNoise(DiffusionLatentModel):
    """Broken: x_0 is the decoder's mean, as the ancestral sampler returns it — not a draw
    from the p̂(x_0 | x_1) that the ELBO scores."""

    @torch.no_grad()
    def sample_joint(self, n, *, generator=None):
        x, _ = super().sample_joint(n, generator=generator)
        x1 = x[:, :D]
        return x, self.model.predict_x0(x1, 1)


class _NoPriorKL(DiffusionLatentModel):
    """Broken: the ELBO without its prior-matching term KL(p̌(x_L | x_0) ‖ N(0, I))."""

    def elbo(self, y, n_samples=1, generator=None):
        out = self.model.elbo(y, generator=generator)
        return out.elbo + out.prior


def _broken(cls: type[DiffusionLatentModel]):
    def factory(dt: torch.dtype) -> DiffusionLatentModel:
        return cls(_near_optimal(torch.float64).model, D).to(dt)
    return factory


def test_the_contract_fails_on_broken_diffusion_models() -> None:
    good = _near_optimal(torch.float64)
    data = good.sample(300, generator=torch.Generator().manual_seed(5))
    exact = exact_marginal(good).log_prob(data)
    report = check_bound_model(_near_optimal, data, exact=exact)  # the unbroken one passes
    assert {"bounds[exact]", "sample_log_prob"} <= set(report.passed)
    with pytest.raises(AssertionError, match="Stein's identity"):
        check_bound_model(_broken(_NoDecoderNoise), data, exact=exact)
    with pytest.raises(AssertionError, match="at k = 1 is not the ELBO"):
        check_bound_model(_broken(_NoPriorKL), data, exact=exact)


def test_bad_input() -> None:
    m = _linear(torch.float64)
    with pytest.raises(ValueError, match=r"latents must be \(S, N, L·D\) = \(S, N, 8\)"):
        m.log_joint(torch.zeros(1, 3, 5, dtype=torch.float64), torch.zeros(3, D))
    with pytest.raises(ValueError, match="model must be a GaussianDiffusion"):
        DiffusionLatentModel(torch.nn.Linear(2, 2), D)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="k must be"):
        m.iwae_bound(torch.zeros(3, D, dtype=torch.float64), 0)


def test_nan_data_raise() -> None:
    m = _linear(torch.float64)
    y = torch.tensor([[0.0, float("nan")]], dtype=torch.float64)
    with pytest.raises(ValueError, match=r"y contains 1 non-finite value\(s\); the first is NaN"):
        m.iwae_bound(y, 3)
    with pytest.raises(ValueError, match="y contains 1 non-finite"):
        m.log_joint(torch.zeros(1, 1, L * D, dtype=torch.float64), y)
