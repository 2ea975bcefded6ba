"""The compiled CD/PCD kernel (``models._rbm_numba``) computes the trainer path's update: its
SGD is torch's, its expected CD-1 step is the exact CD-1 gradient, its persistent chains
sample the model, and through the estimator it learns bars and stripes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from genmodels.data import bars_and_stripes
from genmodels.estimators.rbm import BernoulliRBM
from genmodels.learning.contrastive import (
    NegativeSamples,
    boltzmann_loss,
    model_statistics,
    visible_transition_matrix,
)
from genmodels.models import _rbm_numba as kernel
from genmodels.models.harmonium import BernoulliRBM as RBMModel

DT = torch.float64


def _model(seed: int) -> RBMModel:
    g = torch.Generator().manual_seed(seed)
    return RBMModel(4, 3).set_parameters(torch.randn(3, 4, generator=g, dtype=DT),
                                         torch.randn(3, generator=g, dtype=DT),
                                         torch.randn(4, generator=g, dtype=DT))


def _arrays(model: RBMModel) -> list[np.ndarray]:
    return [p.detach().numpy().copy() for p in (model.weight, model.b_x, model.b_y)]


def test_the_kernels_sgd_is_torchs_sgd_with_momentum_and_weight_decay() -> None:
    rng = np.random.default_rng(0)
    theta = rng.normal(size=(3, 4))
    grads = [rng.normal(size=(3, 4)) for _ in range(4)]
    p = torch.nn.Parameter(torch.tensor(theta))
    opt = torch.optim.SGD([p], lr=0.1, momentum=0.9, weight_decay=0.01)
    buf = np.zeros_like(theta)
    for i, g in enumerate(grads):
        opt.zero_grad()
        p.grad = torch.tensor(-g)  # the kernel takes the ascent direction
        opt.step()
        kernel._sgd(theta, g, buf, 0.1, 0.9, 0.01, i == 0)
    np.testing.assert_allclose(theta, p.detach().numpy(), rtol=0, atol=1e-14)


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_the_fused_step_is_the_reference_sgd_then_the_float32_copy(momentum: float) -> None:
    """``_step`` (the epoch loop's update) = ``_sgd`` (the reference, checked against torch
    above), then θ32 = float32(θ) and the statistics zeroed, over several steps."""
    rng = np.random.default_rng(1)
    theta = rng.normal(size=(5, 7))
    ref, buf, buf_ref = theta.copy(), np.zeros_like(theta), np.zeros_like(theta)
    theta32 = np.zeros(theta.shape, dtype=np.float32)
    for i in range(4):
        g = rng.normal(size=theta.shape).astype(np.float32)
        norm_ref = kernel._sgd(ref, g.astype(np.float64), buf_ref, 0.1, momentum, 0.01, i == 0)
        norm = kernel._step(theta, g, buf, theta32, 0.1, momentum, 0.01, i == 0)
        np.testing.assert_allclose(theta, ref, rtol=1e-15, atol=1e-15)
        np.testing.assert_array_equal(theta32, theta.astype(np.float32))
        np.testing.assert_array_equal(g, 0.0)
        assert norm == pytest.approx(norm_ref, rel=1e-12)


@pytest.mark.parametrize("persistent", [True, False])
def test_one_call_for_all_epochs_equals_one_call_per_epoch(persistent: bool) -> None:
    """The estimator's fast path (one kernel call for every epoch) and its progress-bar path
    (a call per epoch, seeds seed + e) give the same parameters, buffers and chains."""
    rng = np.random.default_rng(3)
    X = (rng.uniform(size=(200, 6)) < 0.4).astype(np.float64)
    orders = np.stack([rng.permutation(200) for _ in range(4)])
    init = [rng.normal(size=(20, 6)), rng.normal(size=20), rng.normal(size=6),
            np.zeros((20, 6)), np.zeros(20), np.zeros(6),
            (rng.uniform(size=(30, 6)) < 0.5).astype(np.float64)]
    one = [a.copy() for a in init]
    stat_one = kernel.cd_epochs(X, orders, 30, *one[:6], one[6], 2, persistent, 1.0, 0.5,
                                0.01, True, 11)
    many = [a.copy() for a in init]
    stat_many = [kernel.cd_epochs(X, orders[e:e + 1], 30, *many[:6], many[6], 2, persistent,
                                  1.0, 0.5, 0.01, e == 0, 11 + e)[0] for e in range(4)]
    for a, b in zip(one, many, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(stat_one, stat_many)


def test_the_compiled_epochs_visit_the_trainers_batches() -> None:
    from genmodels.estimators.rbm import _epoch_order
    from genmodels.learning.trainer import sharded_batches

    for n, b, seed, epoch in ((1437, 10, 3, 0), (14, 7, 0, 5), (100, 100, 9, 2)):
        ref = torch.cat(sharded_batches(n, b, epoch=epoch, seed=seed)).numpy()
        np.testing.assert_array_equal(_epoch_order(n, seed, epoch), ref)


def test_one_large_cd1_step_is_the_exact_cd1_gradient() -> None:
    """One minibatch of 40,000 rows (8 distinct), lr = 1, no momentum: the step is the CD-1
    ascent direction; it equals −∇ of boltzmann_loss under p¹ = p⁰T exactly, within 5 s.e.
    (each per-chain term lies in [0, 1], so s.e. ≤ 0.5/√n)."""
    model = _model(0)
    ys, trans = visible_transition_matrix(model)
    y = ys[[0, 3, 5, 6, 9, 10, 12, 15]]
    X = y.repeat(5000, 1)
    p0 = torch.bincount((y * 2 ** torch.arange(4, dtype=DT)).sum(-1).long(),
                        minlength=16).to(DT) / 8
    loss = boltzmann_loss(model, y, NegativeSamples("visible", ys, p0 @ trans))
    params = [model.weight, model.b_x, model.b_y]
    exact = torch.autograd.grad(loss, params)
    W, bx, by = _arrays(model)
    before = [W.copy(), bx.copy(), by.copy()]
    bufs = [np.zeros_like(a) for a in (W, bx, by)]
    order = np.arange(X.shape[0], dtype=np.int64)[None]
    kernel.cd_epochs(X.numpy(), order, X.shape[0], W, bx, by, *bufs, np.zeros((1, 4)), 1,
                     False, 1.0, 0.0, 0.0, True, 3)
    tol = 5 * 0.5 / math.sqrt(X.shape[0])
    for new, old, g in zip((W, bx, by), before, exact, strict=True):
        np.testing.assert_allclose(new - old, -g.numpy(), rtol=0, atol=tol)


def test_one_large_pcd1_step_from_the_model_is_the_exact_gradient() -> None:
    """PCD-1 with 40,000 persistent chains drawn from the enumerated model p̂(v) ∝ e^(−F(v))
    (a Gibbs sweep keeps them there), one minibatch of 40,000 rows (8 distinct), lr = 1: the
    step is the exact log-likelihood gradient, −∇ of boltzmann_loss under p̂, within 5 s.e."""
    model = _model(2)
    ys, _ = visible_transition_matrix(model)
    with torch.no_grad():
        p_model = torch.softmax(-model.free_energy(ys), 0)
    y = ys[[1, 2, 4, 7, 8, 11, 13, 14]]
    X = y.repeat(5000, 1)
    loss = boltzmann_loss(model, y, NegativeSamples("visible", ys, p_model))
    exact = torch.autograd.grad(loss, [model.weight, model.b_x, model.b_y])
    rng = np.random.default_rng(4)
    chains = ys.numpy()[rng.choice(16, size=40_000, p=p_model.numpy())]
    W, bx, by = _arrays(model)
    before = [W.copy(), bx.copy(), by.copy()]
    bufs = [np.zeros_like(a) for a in (W, bx, by)]
    order = np.arange(X.shape[0], dtype=np.int64)[None]
    kernel.cd_epochs(X.numpy(), order, X.shape[0], W, bx, by, *bufs, chains, 1, True, 1.0,
                     0.0, 0.0, True, 7)
    tol = 5 * 0.5 / math.sqrt(chains.shape[0])
    for new, old, g in zip((W, bx, by), before, exact, strict=True):
        np.testing.assert_allclose(new - old, -g.numpy(), rtol=0, atol=tol)


def test_persistent_chains_sample_the_model_at_fixed_parameters() -> None:
    model = _model(1)
    W, bx, by = _arrays(model)
    chains = np.zeros((20_000, 4))
    bufs = [np.zeros_like(a) for a in (W, bx, by)]
    X = np.zeros((1, 4))
    orders = np.zeros((30, 1), dtype=np.int64)  # 30 "epochs" of one step each, lr ≈ 0
    kernel.cd_epochs(X, orders, 1, W, bx, by, *bufs, chains, 1, True, 1e-300, 0.0, 0.0,
                     True, 5)
    with torch.no_grad():
        v = torch.tensor(chains)
        z = (model.hidden.mean(model.hidden_natural(v))[:, :, None] * v[:, None]).numpy()
    se = z.std(0) / math.sqrt(z.shape[0])
    assert np.all(np.abs(z.mean(0) - model_statistics(model)["weight"].numpy()) < 5 * se)


@pytest.mark.parametrize("method", ["cd", "pcd"])
def test_compiled_estimator_learns_bars_and_stripes_like_the_trainer_path(method: str) -> None:
    """3×3 bars and stripes (each image 4 times), H = 10: the compiled fit is reproducible,
    raises the exact log-likelihood by > 0.5 nat, and lands within 0.4 nat of the trainer
    path's fit with the same settings (the two draw different random numbers)."""
    X = np.tile(bars_and_stripes(3).numpy(), (4, 1))
    kw = dict(n_components=10, n_iter=100, batch_size=14, learning_rate=0.05, momentum=0.9,
              method=method, random_state=0)
    a = BernoulliRBM(solver="compiled", **kw).fit(X)
    b = BernoulliRBM(solver="compiled", **kw).fit(X)
    np.testing.assert_array_equal(a.components_, b.components_)
    ll = a.log_likelihood(X[:14])[0]
    assert ll > -9 * math.log(2) + 0.5
    ll_trainer = BernoulliRBM(solver="trainer", **kw).fit(X).log_likelihood(X[:14])[0]
    assert abs(ll - ll_trainer) < 0.4, (ll, ll_trainer)


def test_compiled_solver_refuses_what_it_does_not_cover() -> None:
    X = bars_and_stripes(2).numpy()
    with pytest.raises(ValueError, match="solver='compiled' needs visible='bernoulli'"):
        BernoulliRBM(visible="gaussian", solver="compiled").fit(X)
    with pytest.raises(ValueError, match="solver must be one of"):
        BernoulliRBM(solver="numba").fit(X)


def test_the_float32_sigmoid_is_within_float32_rounding_of_the_logistic() -> None:
    """The kernel's passes are float32 (scikit-learn's are float64): ``_sigmoid`` (2ᵏ e^r,
    Taylor to r⁷) is within 2e-7 absolute of 1 / (1 + e⁻ᵃ) on [−100, 100] and within 1e-6
    relative where σ(a) is a normal float32 far from the clip (a ≥ −80); its limits are 0 and
    1. (Measured: 9e-8 absolute, 3.1e-7 relative.)"""
    a32 = np.linspace(-100.0, 100.0, 200_001).astype(np.float32)
    out = a32[None].copy()
    bits = np.empty(out.shape[1], dtype=np.int32)
    kernel._sigmoid(out, 0, bits, bits.view(np.float32))
    ref = 1.0 / (1.0 + np.exp(-a32.astype(np.float64)))
    err = np.abs(out[0].astype(np.float64) - ref)
    assert err.max() <= 2e-7
    keep = a32 >= -80.0
    assert (err[keep] / ref[keep]).max() <= 1e-6
    assert out[0, -1] == 1.0 and 0.0 <= out[0, 0] < 1e-37


def test_the_counter_stream_is_uniform_and_counter_addressed() -> None:
    """``_uniforms``: 200,000 draws in [0, 1) pass a Kolmogorov–Smirnov test against U(0, 1)
    (p > 1e-3), neighbours are uncorrelated (|r| < 5 s.e.), and a block drawn at counter c
    equals the same positions of a longer block drawn from 0 (the kernel's counter
    bookkeeping)."""
    from scipy import stats

    key = kernel._stream_key(7)
    u = np.empty(200_000, dtype=np.float32)
    kernel._uniforms(key, np.uint64(0), u)
    assert u.min() >= 0.0 and u.max() < 1.0
    assert stats.kstest(u.astype(np.float64), "uniform").pvalue > 1e-3
    r = np.corrcoef(u[:-1], u[1:])[0, 1]
    assert abs(r) < 5.0 / math.sqrt(u.size)
    tail = np.empty(1000, dtype=np.float32)
    kernel._uniforms(key, np.uint64(5000), tail)
    np.testing.assert_array_equal(tail, u[5000:6000])
