"""Explicit backprop (Eqs. 5.16–5.17) and BPTT (Eqs. 5.19–5.21) against autograd and finite
differences; the MLP and Elman RNN modules."""

from __future__ import annotations

import pytest
import torch

from genmodels.io import load, save
from genmodels.learning.backprop import backprop, bptt, mlp_forward
from genmodels.models.networks import ACTIVATIONS, MLP, Activation, ElmanRNN


def _gaussian_surprisal(zL: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """S = mean_n ½‖x_n − z_L,n‖² (Gaussian p̌(x|y) with unit variance, up to a constant)."""
    return 0.5 * ((x - zL) ** 2).sum(-1).mean()


@pytest.mark.parametrize("act", ["tanh", "sigmoid", "softplus", "elu", "relu"])
def test_backprop_equals_autograd(act: str) -> None:
    g = torch.Generator().manual_seed(0)
    mlp = MLP([4, 7, 5, 3], activation=act, output_activation="sigmoid", seed=1)
    y = torch.randn(11, 4, generator=g)
    x = torch.randn(11, 3, generator=g)
    zL = mlp(y)
    S = _gaussian_surprisal(zL, x)
    auto = torch.autograd.grad(S, list(mlp.parameters()))
    cache = mlp_forward(mlp, y)
    torch.testing.assert_close(cache.activities[-1], zL)
    grads = backprop(mlp, cache, (zL - x).detach() / y.shape[0])  # dS/dz_L of the mean loss
    for l in range(3):
        torch.testing.assert_close(grads.weights[l], auto[2 * l], rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(grads.biases[l], auto[2 * l + 1], rtol=1e-10, atol=1e-12)
    # The bias gradient is the batch sum of the error terms b_l (Eq. 5.16 defines b_l as it).
    for l in range(3):
        torch.testing.assert_close(grads.biases[l], grads.errors[l].sum(0))


def test_backprop_input_gradient_and_finite_differences() -> None:
    g = torch.Generator().manual_seed(2)
    mlp = MLP([3, 6, 2], activation="tanh", seed=3)
    y = torch.randn(5, 3, generator=g, requires_grad=True)
    x = torch.randn(5, 2, generator=g)
    S = _gaussian_surprisal(mlp(y), x)
    (dy,) = torch.autograd.grad(S, y)
    cache = mlp_forward(mlp, y.detach())
    grads = backprop(mlp, cache, (cache.activities[-1] - x) / 5)
    torch.testing.assert_close(grads.input, dy)
    # Central finite differences on one weight entry of the first layer (float64, h = 1e-6).
    h = 1e-6
    W = mlp.layers[0].weight
    with torch.no_grad():
        W[2, 1] += h
        up = _gaussian_surprisal(mlp(y), x)
        W[2, 1] -= 2 * h
        down = _gaussian_surprisal(mlp(y), x)
        W[2, 1] += h
    fd = (up - down) / (2 * h)
    assert abs(float(fd) - float(grads.weights[0][2, 1])) < 1e-8


def test_batch_gradient_is_mean_of_per_sample_gradients() -> None:
    g = torch.Generator().manual_seed(4)
    mlp = MLP([3, 4, 2], seed=5)
    y = torch.randn(6, 3, generator=g)
    x = torch.randn(6, 2, generator=g)
    cache = mlp_forward(mlp, y)
    full = backprop(mlp, cache, (cache.activities[-1] - x) / 6)
    per = [backprop(mlp, mlp_forward(mlp, y[n:n + 1]),
                    mlp(y[n:n + 1]).detach() - x[n:n + 1]).weights[0] for n in range(6)]
    torch.testing.assert_close(full.weights[0], torch.stack(per).mean(0))


def test_interaction_example_multiplies_inputs() -> None:
    """The book's example (B:1581): z_1 = log y, z_2 = exp([1 1] z_1) = y_1 y_2 exactly."""
    mlp = MLP([2, 2, 1], activation=["log", "exp"])
    with torch.no_grad():
        mlp.layers[0].weight.copy_(torch.eye(2))
        mlp.layers[0].bias.zero_()
        mlp.layers[1].weight.copy_(torch.tensor([[1.0, 1.0]]))
        mlp.layers[1].bias.zero_()
    y = torch.tensor([[2.0, 3.0], [0.5, 7.0]])
    torch.testing.assert_close(mlp(y)[:, 0], y[:, 0] * y[:, 1])


def test_mlp_validation_and_save(tmp_path) -> None:
    with pytest.raises(ValueError, match="at least an input"):
        MLP([3])
    with pytest.raises(ValueError, match="layer_sizes"):
        MLP([3, 0, 2])
    with pytest.raises(ValueError, match="unknown activation"):
        MLP([3, 2], activation="swishy")
    with pytest.raises(ValueError, match="one per layer"):
        MLP([3, 2, 2], activation=["tanh"])
    mlp = MLP([3, 5, 2], activation="relu", seed=0)
    path = save(mlp, tmp_path / "mlp")
    back = load(path)
    y = torch.randn(4, 3)
    torch.testing.assert_close(back(y), mlp(y))
    assert isinstance(ACTIVATIONS["tanh"], Activation)


def _rnn_loss(Z: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """S(z_0..z_T) = Σ_t ½‖z_t − target_t‖² (a direct dependence on every state)."""
    return 0.5 * ((Z[..., 1:, :] - target) ** 2).sum()


@pytest.mark.parametrize("batch", [(), (3,), (2, 2)])
def test_bptt_equals_autograd(batch: tuple[int, ...]) -> None:
    g = torch.Generator().manual_seed(6)
    rnn = ElmanRNN(3, 4, seed=7)
    T = 7
    y = torch.randn(*batch, T, 3, generator=g)
    z0 = torch.randn(4, generator=g)
    target = torch.randn(*batch, T, 4, generator=g)
    Z = rnn(y, z0)
    S = _rnn_loss(Z, target)
    auto = torch.autograd.grad(S, [rnn.D_zz, rnn.D_yz, rnn.d_z])
    partial = torch.zeros_like(Z)
    partial[..., 1:, :] = (Z[..., 1:, :] - target).detach()
    grads = bptt(rnn, y, Z.detach(), partial)
    torch.testing.assert_close(grads.D_zz, auto[0], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(grads.D_yz, auto[1], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(grads.d_z, auto[2], rtol=1e-10, atol=1e-12)


def test_bptt_total_state_derivative_matches_autograd() -> None:
    g = torch.Generator().manual_seed(8)
    rnn = ElmanRNN(2, 3, activation="sigmoid", seed=9)
    y = torch.randn(5, 2, generator=g)
    target = torch.randn(5, 3, generator=g)
    z0 = torch.randn(3, generator=g, requires_grad=True)
    Z = rnn(y, z0)
    (dz0,) = torch.autograd.grad(_rnn_loss(Z, target), z0)
    partial = torch.zeros_like(Z)
    partial[1:] = (Z[1:] - target).detach()
    grads = bptt(rnn, y, Z.detach(), partial)
    torch.testing.assert_close(grads.dS_dz[0], dz0)


def test_bptt_without_recurrence_is_sum_of_feedforward_gradients() -> None:
    """D_zz = 0: every time step is an independent one-layer network (CATALOGUE E10)."""
    g = torch.Generator().manual_seed(10)
    rnn = ElmanRNN(3, 2, seed=11)
    with torch.no_grad():
        rnn.D_zz.zero_()
    y = torch.randn(6, 3, generator=g)
    target = torch.randn(6, 2, generator=g)
    Z = rnn(y)
    partial = torch.zeros_like(Z)
    partial[1:] = (Z[1:] - target).detach()
    grads = bptt(rnn, y, Z.detach(), partial)
    mlp = MLP([3, 2], activation=["tanh"])
    with torch.no_grad():
        mlp.layers[0].weight.copy_(rnn.D_yz)
        mlp.layers[0].bias.copy_(rnn.d_z)
    ff = backprop(mlp, mlp_forward(mlp, y), (mlp(y) - target).detach())
    torch.testing.assert_close(grads.D_yz, ff.weights[0])
    torch.testing.assert_close(grads.d_z, ff.biases[0])


def test_truncated_bptt_equals_autograd_with_detached_chunks() -> None:
    g = torch.Generator().manual_seed(12)
    rnn = ElmanRNN(2, 3, seed=13)
    T, k = 9, 4
    y = torch.randn(T, 2, generator=g)
    target = torch.randn(T, 3, generator=g)
    # Autograd oracle: run the recursion, detaching the state at t = k, 2k, ...
    z = torch.zeros(3)
    states = [z]
    for t in range(1, T + 1):
        prev = states[-1].detach() if (t - 1) > 0 and (t - 1) % k == 0 else states[-1]
        states.append(torch.tanh(rnn.D_zz @ prev + rnn.D_yz @ y[t - 1] + rnn.d_z))
    Z = torch.stack(states)
    auto = torch.autograd.grad(_rnn_loss(Z, target), [rnn.D_zz, rnn.D_yz, rnn.d_z])
    partial = torch.zeros_like(Z)
    partial[1:] = (Z[1:] - target).detach()
    grads = bptt(rnn, y, Z.detach(), partial, truncate=k)
    for a, b in zip((grads.D_zz, grads.D_yz, grads.d_z), auto):
        torch.testing.assert_close(a, b)
    # A window at least T long is full BPTT.
    full = bptt(rnn, y, Z.detach(), partial)
    long = bptt(rnn, y, Z.detach(), partial, truncate=T)
    torch.testing.assert_close(full.D_zz, long.D_zz)
    with pytest.raises(ValueError, match="truncate"):
        bptt(rnn, y, Z.detach(), partial, truncate=0)


def test_rnn_validation() -> None:
    rnn = ElmanRNN(3, 2)
    with pytest.raises(ValueError, match="y must have shape"):
        rnn(torch.randn(5, 4))
    with pytest.raises(ValueError, match="z0"):
        rnn(torch.randn(5, 3), torch.zeros(3))
    with pytest.raises(ValueError, match="n_hidden"):
        ElmanRNN(3, 0)
