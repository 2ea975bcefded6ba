"""The exponential-family harmonium against brute-force enumeration (CATALOGUE C1–C3)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from genmodels import io
from genmodels.models.harmonium import (
    BernoulliRBM,
    GaussianBernoulliRBM,
    Harmonium,
    PoissonBernoulliRBM,
    make_layer,
)

DT = torch.float64


def _rand_params(model: Harmonium, seed: int, scale: float = 1.0) -> Harmonium:
    g = torch.Generator().manual_seed(seed)
    return model.set_parameters(
        scale * torch.randn(model.weight.shape, generator=g, dtype=DT),
        scale * torch.randn(model.b_x.shape, generator=g, dtype=DT),
        scale * torch.randn(model.b_y.shape, generator=g, dtype=DT))


def _grid(model: Harmonium) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every (x, y) of two finite layers and −E on the grid: (Mx, Dx), (My, Dy), (Mx, My)."""
    xs = model.hidden.states(0, model.hidden.num_states)
    ys = model.visible.states(0, model.visible.num_states)
    with torch.no_grad():
        neg_e = -model.energy(xs[:, None, :], ys[None, :, :])
    return xs, ys, neg_e


FINITE = {
    "bernoulli-bernoulli": lambda: BernoulliRBM(4, 3),
    "bernoulli-softmax": lambda: Harmonium(("bernoulli", 3),
                                           {"kind": "softmax", "size": 2, "categories": 3}),
    "softmax-bernoulli": lambda: Harmonium({"kind": "softmax", "size": 2, "categories": 3},
                                           ("bernoulli", 4)),
}


@pytest.mark.parametrize("name", list(FINITE))
def test_conditionals_are_the_brute_force_normalisations_of_exp_minus_energy(name: str) -> None:
    model = _rand_params(FINITE[name](), seed=1)
    xs, ys, neg_e = _grid(model)
    with torch.no_grad():
        log_px_given_y = neg_e - torch.logsumexp(neg_e, 0, keepdim=True)  # (Mx, My)
        log_py_given_x = neg_e - torch.logsumexp(neg_e, 1, keepdim=True)
        post = model.posterior(ys).log_prob(xs[:, None, :]).sum(-1)  # families: (Mx, My)
        emis = model.emission(xs).log_prob(ys[:, None, :]).sum(-1).T  # (Mx, My)
    torch.testing.assert_close(post, log_px_given_y, atol=1e-12, rtol=0)
    torch.testing.assert_close(emis, log_py_given_x, atol=1e-12, rtol=0)


@pytest.mark.parametrize("name", list(FINITE))
def test_free_energies_sum_out_a_layer_and_normalise(name: str) -> None:
    model = _rand_params(FINITE[name](), seed=2)
    xs, ys, neg_e = _grid(model)
    with torch.no_grad():
        log_z = torch.logsumexp(neg_e.flatten(), 0)
        torch.testing.assert_close(model.free_energy(ys), -torch.logsumexp(neg_e, 0))
        torch.testing.assert_close(model.free_energy_hidden(xs), -torch.logsumexp(neg_e, 1))
        # Σ_y exp(−F(y)) / Z = 1 and Σ_x exp(−F(x)) / Z = 1
        total_y = torch.exp(-model.free_energy(ys) - log_z).sum()
        total_x = torch.exp(-model.free_energy_hidden(xs) - log_z).sum()
        torch.testing.assert_close(total_y, torch.ones((), dtype=DT))
        torch.testing.assert_close(total_x, torch.ones((), dtype=DT))
        torch.testing.assert_close(model.log_partition().log_z, log_z)


@pytest.mark.parametrize("name", list(FINITE))
def test_ratio_of_conditionals_is_ratio_of_marginals(name: str) -> None:
    """p̂(y|x) / p̂(x|y) = p̂(y) / p̂(x) (B:1044) for every pair."""
    model = _rand_params(FINITE[name](), seed=3)
    xs, ys, _ = _grid(model)
    with torch.no_grad():
        lz = model.log_partition().log_z
        lhs = (model.emission(xs[:, None, :]).log_prob(ys[None]).sum(-1)
               - model.posterior(ys[None]).log_prob(xs[:, None, :]).sum(-1))
        rhs = (-model.free_energy(ys) - lz)[None, :] - (-model.free_energy_hidden(xs) - lz)[:, None]
    torch.testing.assert_close(lhs, rhs, atol=1e-10, rtol=0)


def test_rbm_free_energy_is_the_catalogue_closed_form() -> None:
    """C2: F(y) = −b_yᵀy − Σ_j softplus((b_x + W y)_j)."""
    model = _rand_params(BernoulliRBM(5, 3), seed=4)
    y = model.visible.states(0, 32)
    with torch.no_grad():
        f = -(y @ model.b_y) - torch.nn.functional.softplus(model.b_x + y @ model.weight.T).sum(-1)
        torch.testing.assert_close(model.free_energy(y), f)
        torch.testing.assert_close(model.posterior(y).mean_params[..., 0],
                                   torch.sigmoid(model.b_x + y @ model.weight.T))
        torch.testing.assert_close(model.hidden_mean(y),
                                   torch.sigmoid(model.b_x + y @ model.weight.T))
        x = model.hidden.states(0, 8)
        torch.testing.assert_close(model.visible_mean(x),
                                   torch.sigmoid(model.b_y + x @ model.weight))


def test_poisson_bernoulli_conditionals_and_free_energy() -> None:
    """Counts: p̂(x | y) by enumerating x; p̂(y | x) per unit against a truncated normalisation
    of exp(−E) over y ∈ {0..60}; F(y) = −log Σ_x exp(−E)."""
    model = _rand_params(PoissonBernoulliRBM(2, 3), seed=5, scale=0.5)
    xs = model.hidden.states(0, 8)
    ys = torch.cartesian_prod(torch.arange(61.), torch.arange(61.)).to(DT)  # (3721, 2)
    with torch.no_grad():
        neg_e = -model.energy(xs[:, None, :], ys[None])  # (8, 3721)
        torch.testing.assert_close(model.free_energy(ys), -torch.logsumexp(neg_e, 0))
        emis = model.emission(xs).log_prob(ys[:, None, :]).sum(-1).T
        torch.testing.assert_close(emis, neg_e - torch.logsumexp(neg_e, 1, keepdim=True),
                                   atol=1e-9, rtol=0)
        post = model.posterior(ys[:50]).log_prob(xs[:, None, :]).sum(-1)
        ref = neg_e[:, :50] - torch.logsumexp(neg_e[:, :50], 0, keepdim=True)
        torch.testing.assert_close(post, ref, atol=1e-8, rtol=0)  # lgamma(61) ~ 190


def test_gaussian_bernoulli_free_energy_enumeration_and_s0_closed_form() -> None:
    """C3: F(v) = −log Σ_h exp(−E(v, h)) (H = 10), and S0's closed form
    Σ (v − b)²/(2σ²) − Σ_j softplus(c_j + Σ_i w_ji v_i/σ_i) up to the documented constant."""
    model = _rand_params(GaussianBernoulliRBM(3, 10), seed=6, scale=0.5)
    with torch.no_grad():
        model.visible.log_scale.copy_(torch.tensor([-0.3, 0.2, 0.5], dtype=DT))
        hs = model.hidden.states(0, 2**10)
        v = torch.randn(7, 3, generator=torch.Generator().manual_seed(0), dtype=DT)
        f = model.free_energy(v)
        torch.testing.assert_close(f, -torch.logsumexp(-model.energy(hs[:, None], v[None]), 0))
        sigma = model.visible.scale
        b = sigma * model.b_y  # S0's visible bias (the mean offset)
        c, w = model.b_x, model.weight
        s0 = ((v - b).square() / (2 * sigma**2)).sum(-1) \
            - torch.nn.functional.softplus(c + (v / sigma) @ w.T).sum(-1)
        const = (0.5 * math.log(2 * math.pi) - b.square() / (2 * sigma**2)).sum()
        torch.testing.assert_close(f, s0 + const)


def test_gaussian_bernoulli_1d_free_energy_integrates_to_z() -> None:
    """V = 1, H = 2: ∫ exp(−F(v)) dv by quadrature = Z from the hidden free energies (closed
    form Gaussian integrals), and p̂(v | h) is the numeric normalisation of exp(−E)."""
    model = _rand_params(GaussianBernoulliRBM(1, 2), seed=7)
    with torch.no_grad():
        model.visible.log_scale.fill_(0.4)
        grid = torch.linspace(-40, 40, 200_001, dtype=DT)[:, None]
        integral = torch.trapezoid(torch.exp(-model.free_energy(grid)), grid[:, 0])
        hs = model.hidden.states(0, 4)
        z = torch.exp(-model.free_energy_hidden(hs)).sum()
        torch.testing.assert_close(integral, z, rtol=1e-9, atol=0)
        torch.testing.assert_close(integral, torch.exp(model.log_partition().log_z),
                                   rtol=1e-9, atol=0)
        # p̂(v | h): the Normal family against exp(−E(v, h)) normalised on the grid
        neg_e = -model.energy(hs[:, None], grid[None])  # (4, G)
        log_norm = torch.log(torch.trapezoid(torch.exp(neg_e), grid[:, 0], dim=1))
        fam = model.emission(hs[:, None]).log_prob(grid[None]).sum(-1)
        torch.testing.assert_close(fam[:, ::1000], (neg_e - log_norm[:, None])[:, ::1000],
                                   atol=1e-8, rtol=0)


def test_block_gibbs_long_run_frequencies_match_enumerated_joint() -> None:
    """K = 3 hidden, M = 4 visible binary units: the final states of 40,000 independent chains
    after 40 sweeps against the enumerated joint, a chi-square test over all 128 cells."""
    model = _rand_params(BernoulliRBM(4, 3), seed=8)
    _xs, _ys, neg_e = _grid(model)
    p = torch.softmax(neg_e.flatten(), 0)  # cell = ix * 16 + iy
    g = torch.Generator().manual_seed(0)
    n = 40_000
    state = model.gibbs(torch.zeros(n, 4, dtype=DT), 40, g)
    ix = (state.x * 2 ** torch.arange(3, dtype=DT)).sum(-1).long()
    iy = (state.y * 2 ** torch.arange(4, dtype=DT)).sum(-1).long()
    counts = torch.bincount(ix * 16 + iy, minlength=128).to(DT)
    chi2 = float(((counts - n * p).square() / (n * p)).sum())
    p_value = stats.chi2.sf(chi2, df=127)
    assert p_value > 1e-3, (chi2, p_value)


def test_gibbs_leading_batch_dimensions_and_reproducibility() -> None:
    model = _rand_params(BernoulliRBM(4, 3), seed=9)
    y0 = torch.zeros(5, 7, 4, dtype=DT)
    a = model.gibbs(y0, 3, torch.Generator().manual_seed(1))
    b = model.gibbs(y0, 3, torch.Generator().manual_seed(1))
    assert a.x.shape == (5, 7, 3) and a.y.shape == (5, 7, 4)
    torch.testing.assert_close(a.y, b.y)
    assert model.free_energy(y0).shape == (5, 7)
    s = model.sample(11, 2, torch.Generator().manual_seed(2))
    assert s.y.shape == (11, 4)


@pytest.mark.parametrize("spec,natural", [
    ({"kind": "softmax", "size": 2, "categories": 4}, [0.3, -1.0, 2.0, 0.0, 1.0, 1.0, -2.0, 0.5]),
    ({"kind": "poisson", "size": 2}, [0.5, 1.5]),
    ({"kind": "gaussian", "size": 2, "learn_scale": True}, [0.5, -1.5]),
    ({"kind": "bernoulli", "size": 2}, [0.5, -1.5]),
])
def test_layer_samplers_agree_with_the_family_means(spec: dict, natural: list) -> None:
    """The fast samplers (generator-driven) have the family's mean statistics E[T] = ∇A."""
    layer = make_layer(spec)
    if spec["kind"] == "gaussian":
        with torch.no_grad():
            layer.log_scale.copy_(torch.tensor([0.3, -0.2], dtype=DT))
    eta = torch.tensor(natural, dtype=DT)
    with torch.no_grad():
        x = layer.sample(eta.expand(200_000, -1), torch.Generator().manual_seed(0))
        t = layer.stats(x)
        mean, emp = layer.mean(eta), t.mean(0)
        se = t.std(0) / math.sqrt(t.shape[0])
        assert bool(((emp - mean).abs() < 5 * se + 1e-12).all()), (emp, mean)
        # ∇A by autograd equals the closed-form mean
        e = eta.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(layer.log_partition(e), e)
    torch.testing.assert_close(grad, mean)


@pytest.mark.parametrize("model,bad,match", [
    (BernoulliRBM(3, 2), [[0.0, 1.0, 0.5]], r"binary values .* first 0\.5 at index \(0, 2\)"),
    (PoissonBernoulliRBM(2, 2), [[1.0, -2.0]], r"nonnegative integer counts .* -2\.0"),
    (PoissonBernoulliRBM(2, 2), [[1.5, 2.0]], r"nonnegative integer counts .* 1\.5"),
    (GaussianBernoulliRBM(2, 2), [[1.0, float("nan")]], r"finite values .* index \(0, 1\)"),
    (BernoulliRBM(3, 2), [[0.0, 1.0]], r"shape \(\*batch, 3\) .* got \(1, 2\)"),
    (Harmonium(("bernoulli", 2), {"kind": "softmax", "size": 2, "categories": 3}),
     [[0.0, 3.0]], r"category indices in 0\.\.2"),
])
def test_bad_visible_data_is_a_value_error_saying_what_and_where(model, bad, match) -> None:
    with pytest.raises(ValueError, match=match):
        model.check_visible(np.asarray(bad))


def test_bad_layer_specs_and_parameters() -> None:
    with pytest.raises(ValueError, match="kind one of"):
        make_layer({"kind": "gamma", "size": 3})
    with pytest.raises(ValueError, match=r"weight must have shape \(2, 3\)"):
        BernoulliRBM(3, 2).set_parameters(weight=torch.zeros(3, 2))
    with pytest.raises(ValueError, match="n_steps must be an integer >= 0"):
        BernoulliRBM(3, 2).gibbs(torch.zeros(1, 3, dtype=DT), -1)


@pytest.mark.parametrize("model", [
    BernoulliRBM(4, 3, seed=3), GaussianBernoulliRBM(2, 3, seed=1),
    Harmonium({"kind": "softmax", "size": 2, "categories": 3}, ("poisson", 2), seed=2)])
def test_save_load_round_trip(tmp_path, model: Harmonium) -> None:
    _rand_params(model, seed=11)
    path = io.save(model, tmp_path / "m")
    loaded = io.load(path)
    assert type(loaded) is type(model)
    y = model.sample(4, 1, torch.Generator().manual_seed(0)).y
    torch.testing.assert_close(loaded.free_energy(y), model.free_energy(y))


def test_gaussian_bernoulli_free_energy_gradient_in_v_is_the_closed_form() -> None:
    """C3: ∂F/∂v_i = (v_i − b_i)/σ_i² − Σ_j σ(c_j + Σ_k w_jk v_k/σ_k) w_ji / σ_i (autograd)."""
    model = _rand_params(GaussianBernoulliRBM(3, 4), seed=12, scale=0.7)
    with torch.no_grad():
        model.visible.log_scale.copy_(torch.tensor([0.1, -0.4, 0.3], dtype=DT))
    v = torch.randn(5, 3, generator=torch.Generator().manual_seed(1), dtype=DT,
                    requires_grad=True)
    (grad,) = torch.autograd.grad(model.free_energy(v).sum(), v)
    with torch.no_grad():
        sigma = model.visible.scale
        b = sigma * model.b_y
        p = torch.sigmoid(model.b_x + (v / sigma) @ model.weight.T)
        closed = (v - b) / sigma**2 - (p @ model.weight) / sigma
    torch.testing.assert_close(grad, closed)
