"""Flows (Eqs 9.6–9.8): log-determinants against autograd Jacobians, exact inverses, densities
that integrate to one, and the linear-Gaussian reduction."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from genmodels.models.flows import (
    AdditiveCoupling,
    AffineCoupling,
    Composition,
    DiagonalScaling,
    ElementwiseAffine,
    Flow,
    StandardLogistic,
    StandardNormal,
    coupling_net,
    nice,
    realnvp,
)

D = 5


def _randomise(module: nn.Module, seed: int, scale: float = 0.5) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return module


def flows() -> dict[str, nn.Module]:
    mask = torch.tensor([True, False, True, False, False])
    return {
        "additive": _randomise(AdditiveCoupling(mask, coupling_net(2, 3, 16, 2,
                                                                   dtype=torch.float64)), 0),
        "affine": _randomise(AffineCoupling(~mask, coupling_net(3, 4, 16, 2,
                                                                dtype=torch.float64)), 1),
        "scaling": _randomise(DiagonalScaling(D, dtype=torch.float64), 2),
        "elementwise": ElementwiseAffine(torch.arange(D) * 0.1, torch.linspace(0.5, 2, D)),
        "nice": _randomise(nice(D, n_couplings=4, hidden=16, n_hidden=2,
                                dtype=torch.float64).bijection, 3),
        "realnvp": _randomise(realnvp(D, n_couplings=3, hidden=16,
                                      dtype=torch.float64).bijection, 4),
    }


@pytest.mark.parametrize("name", list(flows()))
def test_log_det_equals_autograd_jacobian(name: str) -> None:
    f = flows()[name]
    x = torch.randn(6, D, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    _, logdet = f(x)
    for i in range(x.shape[0]):
        J = torch.autograd.functional.jacobian(lambda v: f(v[None])[0][0], x[i])
        torch.testing.assert_close(logdet[i], torch.linalg.slogdet(J).logabsdet,
                                   rtol=0, atol=1e-10)
    if name == "additive":  # volume preserving: |J| = 1 exactly, lower block-triangular
        assert bool((logdet == 0).all())


@pytest.mark.parametrize("name", list(flows()))
def test_inverse_of_forward_is_the_identity(name: str) -> None:
    f = flows()[name]
    x = 2 * torch.randn(100, D, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    z, _ = f(x)
    torch.testing.assert_close(f.inverse(z), x, rtol=0, atol=1e-10)
    torch.testing.assert_close(f(f.inverse(x))[0], x, rtol=0, atol=1e-10)


@pytest.mark.parametrize("prior,box", [("gaussian", 9.0), ("logistic", 22.0)])
@pytest.mark.parametrize("kind", ["nice", "realnvp"])
def test_two_dimensional_density_integrates_to_one(prior: str, box: float, kind: str) -> None:
    build = nice if kind == "nice" else realnvp
    flow = build(2, n_couplings=3, hidden=16, n_hidden=2, prior=prior, dtype=torch.float64)
    _randomise(flow, 7, 0.3)
    n = 801
    g = torch.linspace(-box, box, n, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    with torch.no_grad():
        dens = flow.log_prob(grid).exp().reshape(n, n)
    total = torch.trapezoid(torch.trapezoid(dens, g), g)
    assert abs(float(total) - 1) < 2e-3


def test_samples_follow_log_prob() -> None:
    """Samples (inverse of prior draws) have the mean that the density integrates to."""
    flow = _randomise(nice(2, n_couplings=2, hidden=8, n_hidden=1, prior="gaussian",
                           dtype=torch.float64), 8, 0.3)
    x = flow.sample(200_000, generator=torch.Generator().manual_seed(9))
    box, n = 9.0, 601
    g = torch.linspace(-box, box, n, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    dens = flow.log_prob(grid).exp()
    mean = (grid * dens[:, None]).reshape(n, n, 2)
    mean_q = torch.trapezoid(torch.trapezoid(mean, g, dim=1), g, dim=0)
    se = x.std(0) / math.sqrt(x.shape[0])
    assert bool(((x.mean(0) - mean_q).abs() < 6 * se + 1e-3).all())


def test_linear_couplings_with_a_gaussian_prior_are_a_gaussian() -> None:
    """With linear m and a Gaussian base the flow is N(0, (AᵀA)⁻¹), A the composed linear map
    (whitening only, §9.1); a nonlinear m is not Gaussian."""
    torch.manual_seed(10)
    m1 = torch.tensor([True, False, True])
    layers = [AdditiveCoupling(m1, nn.Linear(2, 1, bias=False, dtype=torch.float64)),
              AdditiveCoupling(~m1, nn.Linear(1, 2, bias=False, dtype=torch.float64)),
              DiagonalScaling(3, torch.tensor([0.3, -0.2, 0.5]), dtype=torch.float64)]
    flow = Flow(Composition(layers), 3, "gaussian")
    A = torch.autograd.functional.jacobian(lambda v: flow.bijection(v[None])[0][0],
                                           torch.zeros(3, dtype=torch.float64))
    cov = torch.linalg.inv(A.T @ A)
    y = torch.randn(50, 3, dtype=torch.float64)
    mvn = torch.distributions.MultivariateNormal(torch.zeros(3, dtype=torch.float64), cov)
    torch.testing.assert_close(flow.log_prob(y), mvn.log_prob(y))
    nonlin = nice(3, n_couplings=2, hidden=8, n_hidden=1, prior="gaussian", dtype=torch.float64)
    _randomise(nonlin, 11, 1.0)
    x = nonlin.sample(20_000, generator=torch.Generator().manual_seed(12))
    kurt = ((x - x.mean(0)) ** 4).mean(0) / x.var(0) ** 2
    assert float((kurt - 3).abs().max()) > 0.3


def test_priors() -> None:
    z = torch.linspace(-30, 30, 20001, dtype=torch.float64)[:, None]
    for prior in (StandardLogistic(), StandardNormal()):
        torch.testing.assert_close(torch.trapezoid(prior.log_prob(z).exp(), z[:, 0]),
                                   torch.tensor(1.0, dtype=torch.float64), rtol=0, atol=1e-6)
    torch.testing.assert_close(
        StandardLogistic().log_prob(z[:5]),
        torch.distributions.TransformedDistribution(
            torch.distributions.Uniform(0.0, 1.0),
            [torch.distributions.transforms.SigmoidTransform().inv]).log_prob(z[:5]).sum(1)
        .double(), rtol=1e-6, atol=1e-6)


def test_bad_configurations_raise() -> None:
    net = nn.Linear(2, 2)
    with pytest.raises(ValueError, match="two non-empty parts"):
        AdditiveCoupling(torch.ones(4, dtype=torch.bool), net)
    with pytest.raises(ValueError, match="two non-empty parts"):
        AffineCoupling(torch.zeros(4, dtype=torch.bool), net)
    with pytest.raises(ValueError, match="1-D boolean"):
        AdditiveCoupling(torch.tensor([1, 0, 1, 0]), net)
    with pytest.raises(ValueError, match="zero scale is not invertible"):
        ElementwiseAffine(0.0, torch.tensor([1.0, 0.0]))
    with pytest.raises(ValueError, match="n_couplings >= 2"):
        nice(4, n_couplings=1)
    c = AdditiveCoupling(torch.tensor([True, False, True, False]), nn.Linear(2, 3))
    with pytest.raises(ValueError, match=r"must map \(N, 2\) to \(N, 2\)"):
        c(torch.zeros(3, 4))
    flow = nice(4, hidden=8, n_hidden=1)
    with pytest.raises(ValueError, match="contains 1 non-finite"):
        flow.log_prob(torch.tensor([[0.0, float("nan"), 0.0, 0.0]]))
    with pytest.raises(ValueError, match=r"shape \(N, 4\)"):
        flow.log_prob(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="prior must be one of"):
        nice(4, prior="cauchy")
