"""Partition functions: brute force of tables (Fig 3.1), exact enumeration of a layer, AIS
(CATALOGUE C4; Salakhutdinov & Murray 2008)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from genmodels.inference.partition import (
    PartitionEstimate,
    ais_log_partition,
    enumerate_layer,
    exact_log_partition,
    log_partition_bruteforce,
    partition_function_bruteforce,
    unnormalised_joint,
)
from genmodels.models.harmonium import BernoulliRBM, GaussianBernoulliRBM, Harmonium

DT = torch.float64


def _rbm(v: int, h: int, seed: int, scale: float = 0.3) -> BernoulliRBM:
    g = torch.Generator().manual_seed(seed)
    m = BernoulliRBM(v, h)
    return m.set_parameters(scale * torch.randn(h, v, generator=g, dtype=DT),
                            scale * torch.randn(h, generator=g, dtype=DT),
                            scale * torch.randn(v, generator=g, dtype=DT))


# ---------------------------------------------------------------------- Fig 3.1
def test_four_cycle_z_is_the_auxiliary_models_marginal_and_keeps_the_independences() -> None:
    """Fig 3.1: ψ_A(x1,x2) ψ_B(x1,x3) ψ_C(x2,x4) ψ_D(x3,x4) on binary variables. Build the
    normalised model p̌(x, y) with p̌(x, ŷ) = Π ψ (the potentials scaled so the slice has mass
    below 1; the rest of the mass on y ≠ ŷ); then Z = p̌(ŷ), p̌(x | ŷ) = p̂(x), and
    X1 ⊥ X4 | X2, X3 holds in p̂ but not in p̌(x) (the path through Ŷ)."""
    g = torch.Generator().manual_seed(0)
    pots = [((0, 1), torch.rand(2, 2, generator=g, dtype=DT) + 0.1),
            ((0, 2), torch.rand(2, 2, generator=g, dtype=DT) + 0.1),
            ((1, 3), torch.rand(2, 2, generator=g, dtype=DT) + 0.1),
            ((2, 3), torch.rand(2, 2, generator=g, dtype=DT) + 0.1)]
    table = unnormalised_joint(pots, [2, 2, 2, 2])
    # the oracle: a plain loop over the 16 states
    z_loop = sum(float(pots[0][1][a, b] * pots[1][1][a, c] * pots[2][1][b, d]
                       * pots[3][1][c, d]) for a, b, c, d in itertools.product(range(2), repeat=4))
    z = partition_function_bruteforce(pots, [2, 2, 2, 2])
    assert math.isclose(float(z), z_loop, rel_tol=1e-12)
    # the normalised auxiliary model over (x, y), y ∈ {ŷ = 0, 1}
    slice_ = table / (2 * table.sum())  # p̌(x, ŷ): total mass ½ (Π ψ up to a known constant)
    other = torch.rand(2, 2, 2, 2, generator=g, dtype=DT)
    other = other / other.sum() * (1 - slice_.sum())
    joint = torch.stack([slice_, other], -1)  # p̌(x1..x4, y)
    assert math.isclose(float(joint.sum()), 1.0, rel_tol=1e-12)
    p_hat = joint[..., 0].sum()  # p̌(ŷ)
    c = 1 / (2 * table.sum())  # the scaling of the potentials
    assert math.isclose(float(p_hat), float(c * z), rel_tol=1e-12)  # Z = p̌(ŷ) / c
    cond = joint[..., 0] / p_hat  # p̌(x | ŷ) = p̂(x)
    torch.testing.assert_close(cond, table / z)

    def cmi_gap(p: torch.Tensor) -> float:
        """max |p(x1, x4 | x2, x3) − p(x1 | x2, x3) p(x4 | x2, x3)|."""
        p23 = p.sum((0, 3), keepdim=True)
        p123 = p.sum(3, keepdim=True)
        p234 = p.sum(0, keepdim=True)
        return float((p / p23 - (p123 / p23) * (p234 / p23)).abs().max())

    assert cmi_gap(cond) < 1e-12
    assert cmi_gap(joint.sum(-1)) > 1e-3  # marginalising Ŷ couples X1 and X4


def test_bruteforce_bad_input() -> None:
    with pytest.raises(ValueError, match=r"shape \(2, 3\), but its scope \(0, 1\) needs"):
        partition_function_bruteforce([((0, 1), torch.ones(2, 3))], [2, 2])
    with pytest.raises(ValueError, match="negative entries"):
        partition_function_bruteforce([((0,), -torch.ones(2))], [2])
    with pytest.raises(ValueError, match="distinct variables"):
        partition_function_bruteforce([((0, 0), torch.ones(2, 2))], [2])
    with pytest.raises(ValueError, match="more than"):
        partition_function_bruteforce([((0,), torch.ones(2))], [2] * 25)


def test_bruteforce_of_an_rbm_table_equals_enumeration_of_a_layer() -> None:
    """The RBM as a table of pairwise and unary potentials (V = 4, H = 3): Z agrees with
    ``exact_log_partition`` over either layer, with any chunk size."""
    model = _rbm(4, 3, seed=1, scale=1.0)
    w, bx, by = (p.detach() for p in (model.weight, model.b_x, model.b_y))
    pots = [((j,), torch.exp(torch.stack([torch.zeros((), dtype=DT), bx[j]]))) for j in range(3)]
    pots += [((3 + i,), torch.exp(torch.stack([torch.zeros((), dtype=DT), by[i]])))
             for i in range(4)]
    pots += [((j, 3 + i), torch.exp(torch.tensor([[0, 0], [0, float(w[j, i])]], dtype=DT)))
             for j in range(3) for i in range(4)]
    ref = log_partition_bruteforce(pots, [2] * 7)
    for layer, chunk in (("hidden", 3), ("visible", 5), (None, 2**14)):
        est = exact_log_partition(model, layer=layer, chunk_size=chunk)
        assert isinstance(est, PartitionEstimate) and est.method == "exact"
        torch.testing.assert_close(est.log_z.detach(), ref)
        assert float(est.stderr) == 0.0
    _states, probs = enumerate_layer(model, "visible")
    torch.testing.assert_close(probs.sum().detach(), torch.ones((), dtype=DT))


def test_exact_log_partition_errors() -> None:
    gb = GaussianBernoulliRBM(2, 3)
    with pytest.raises(ValueError, match="infinitely many states"):
        exact_log_partition(gb, layer="visible")
    gg = Harmonium(("gaussian", 2), ("gaussian", 2))
    with pytest.raises(ValueError, match="neither layer is finite"):
        exact_log_partition(gg)
    with pytest.raises(ValueError, match="more than max_states=16"):
        exact_log_partition(_rbm(6, 5, 0), max_states=16)
    with pytest.raises(ValueError, match="betas must increase from 0 to 1"):
        ais_log_partition(_rbm(3, 2, 0), betas=[0.0, 0.5])


# --------------------------------------------------------------------------- AIS
@pytest.mark.parametrize("hidden,seed", [(16, 0), (18, 1), (20, 2)])
def test_ais_within_three_standard_errors_of_enumeration(hidden: int, seed: int) -> None:
    """RBMs with 16–20 hidden units (enumerated exactly over the hidden layer): AIS from the
    base-rate model of data drawn from the RBM lands within 3 s.e. of log Z."""
    model = _rbm(24, hidden, seed=seed, scale=0.25)
    exact = float(exact_log_partition(model).log_z.detach())
    data = model.sample(200, 50, torch.Generator().manual_seed(seed)).y
    est = ais_log_partition(model, num_chains=100, num_temperatures=1000, data=data,
                            seed=seed)
    assert est.method == "ais" and est.log_weights.shape == (100,)
    assert 1.0 <= float(est.ess) <= 100.0
    assert float(est.stderr) > 0
    assert abs(float(est.log_z) - exact) < 3 * float(est.stderr) + 1e-9, (
        float(est.log_z), exact, float(est.stderr))


def test_ais_error_shrinks_as_one_over_root_runs_and_works_for_gaussian_visibles() -> None:
    model = _rbm(12, 10, seed=3, scale=0.5)
    exact = float(exact_log_partition(model).log_z.detach())
    small = ais_log_partition(model, num_chains=100, num_temperatures=300, seed=1)
    big = ais_log_partition(model, num_chains=1600, num_temperatures=300, seed=2)
    ratio = float(small.stderr / big.stderr)
    assert 2.5 < ratio < 6.0, ratio  # √16 = 4
    assert abs(float(big.log_z) - exact) < 3 * float(big.stderr)
    gb = GaussianBernoulliRBM(3, 6, seed=0, init_scale=0.5)
    exact_gb = float(exact_log_partition(gb).log_z)
    est = ais_log_partition(gb, num_chains=400, num_temperatures=300, seed=0)
    assert abs(float(est.log_z) - exact_gb) < 3 * float(est.stderr) + 1e-9
