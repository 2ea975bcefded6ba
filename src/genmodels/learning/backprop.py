"""Backpropagation (Eqs. 5.15–5.17) and backpropagation through time (Eqs. 5.18–5.21), explicitly.

These functions do by hand what ``loss.backward()`` does for :class:`~genmodels.models.networks.MLP`
and :class:`~genmodels.models.networks.ElmanRNN`: a forward pass that stores every layer's
pre-activation and activity, then the backward recursion of the error terms ``b`` (the book's
symbol; often written δ). They exist to make the algorithm readable and checkable — the tests
show they equal autograd to rounding — not to replace autograd in training.

Conventions. Samples are rows: a batch ``y`` of shape (N, D_0). The caller passes the gradient
of its (scalar) loss with respect to the network output, ``dS/dz_L`` of shape (N, D_L); for a loss
that averages over the batch, that gradient already carries the 1/N. The returned parameter
gradients are those of the same scalar loss, so they equal ``torch.autograd.grad``. In the book's
column notation the recursions read

* ``b_L = J_L dS/dz_L``;  ``b_l = J_l D_{l+1}ᵀ b_{l+1}``   (Eq. 5.16, with the transpose the
  book's line B:1607 omits — CATALOGUE erratum E-17)
* ``dS/dD_l = b_l z_{l−1}ᵀ``,  ``dS/dd_l = b_l``           (Eq. 5.17)

and, summed over the batch in row notation, ``dS/dD_l = B_lᵀ Z_{l−1}``, ``dS/dd_l = Σ_n b_{l,n}``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from genmodels.models.networks import MLP, ElmanRNN


class MLPForward(NamedTuple):
    """What the backward pass needs from the forward pass.

    activities: ``(z_0, ..., z_L)``, z_l of shape (N, D_l) (z_0 = y).
    preactivations: ``(a_1, ..., a_L)``, ``a_l = D_l z_{l−1} + d_l`` of shape (N, D_l).
    """

    activities: tuple[Tensor, ...]
    preactivations: tuple[Tensor, ...]


class MLPGradients(NamedTuple):
    """Gradients of a scalar loss S with respect to an MLP's parameters.

    weights: ``(dS/dD_1, ..., dS/dD_L)`` (Eq. 5.17), same shapes as the weights.
    biases: ``(dS/dd_1, ..., dS/dd_L)``, the batch sums of the error terms.
    errors: ``(b_1, ..., b_L)``, per-sample error terms b_l of shape (N, D_l) (Eq. 5.16).
    input: ``dS/dy`` (N, D_0), the error passed below the first layer.
    """

    weights: tuple[Tensor, ...]
    biases: tuple[Tensor, ...]
    errors: tuple[Tensor, ...]
    input: Tensor


def mlp_forward(mlp: MLP, y: Tensor) -> MLPForward:
    """The forward pass of Eq. 5.15, storing activities and pre-activations. y: (N, D_0)."""
    z = y
    activities = [z]
    preacts = []
    for D, d, psi in zip(mlp.weights, mlp.biases, mlp.activations):
        a = z @ D.T + d  # (N, D_l)
        z = psi(a)  # Eq. 5.15
        preacts.append(a)
        activities.append(z)
    return MLPForward(tuple(activities), tuple(preacts))


@torch.no_grad()
def backprop(mlp: MLP, cache: MLPForward, dS_dzL: Tensor) -> MLPGradients:
    """The backward recursion (Eqs. 5.16–5.17).

    Args:
        mlp: the network whose forward pass produced ``cache``.
        cache: from :func:`mlp_forward`.
        dS_dzL: (N, D_L), gradient of the scalar loss with respect to the output z_L.
    """
    L = len(mlp.layers)
    Ws = mlp.weights
    if dS_dzL.shape != cache.activities[-1].shape:
        raise ValueError(
            f"dS_dzL must have the output's shape {tuple(cache.activities[-1].shape)}, got "
            f"{tuple(dS_dzL.shape)}."
        )
    errors: list[Tensor] = [dS_dzL] * L
    # b_L = J_L dS/dz_L: J_L is diagonal, so the product is elementwise.  Eq. 5.16, l = L
    b = mlp.activations[L - 1].derivative(cache.preactivations[L - 1]) * dS_dzL
    errors[L - 1] = b
    for l in range(L - 2, -1, -1):  # layers L−1, ..., 1 (0-based index l ↔ book's l+1)
        # b_l = J_l D_{l+1}ᵀ b_{l+1}; with rows as samples, D_{l+1}ᵀ b ↔ b @ D_{l+1}. Eq. 5.16
        b = mlp.activations[l].derivative(cache.preactivations[l]) * (b @ Ws[l + 1])
        errors[l] = b
    # dS/dD_l = Σ_n b_{l,n} z_{l−1,n}ᵀ, dS/dd_l = Σ_n b_{l,n}.  Eq. 5.17
    dW = tuple(errors[l].mT @ cache.activities[l] for l in range(L))
    db = tuple(errors[l].sum(0) for l in range(L))
    return MLPGradients(dW, db, tuple(errors), errors[0] @ Ws[0])


class RNNGradients(NamedTuple):
    """Gradients of a scalar loss S(z_0, ..., z_T) through an Elman RNN (Eqs. 5.19–5.21).

    D_zz, D_yz, d_z: total derivatives dS/dθ, same shapes as the parameters (summed over batch).
    dS_dz: (*batch, T+1, H), the total derivatives dS/dz_t of Eq. 5.20 (index 0 is z_0).
    errors: (*batch, T, H), ``b_t = J_t dS/dz_t`` for t = 1..T (Eq. 5.21).
    """

    D_zz: Tensor
    D_yz: Tensor
    d_z: Tensor
    dS_dz: Tensor
    errors: Tensor


@torch.no_grad()
def bptt(
    rnn: ElmanRNN,
    y: Tensor,
    Z: Tensor,
    dS_dz_partial: Tensor,
    *,
    truncate: int | None = None,
) -> RNNGradients:
    """Backpropagation through time for ``z_t = ψ(D_zz z_{t−1} + D_yz y_t + d_z)``.

    Args:
        rnn: the network.
        y: (*batch, T, M), the inputs.
        Z: (*batch, T+1, H), the states from ``rnn(y, z0)`` (index 0 is z_0).
        dS_dz_partial: (*batch, T+1, H), the *direct* (partial) derivatives ∂S/∂z_t.
        truncate: if k is given, chunked truncated BPTT: the state is cut from the graph every
            k steps (at t = k, 2k, ...), as when ``z_t.detach()`` starts each chunk of a long
            sequence; ``truncate ≥ T`` (or None) is full BPTT.

    The recursion (Eq. 5.20), run backwards from ``dS/dz_T = ∂S/∂z_T``::

        dS/dz_tᵀ = ∂S/∂z_tᵀ + dS/dz_{t+1}ᵀ J_{t+1} D_zz,

    then ``b_t = J_t dS/dz_t`` (Eq. 5.21) and the parameter gradients (Eq. 5.19), summed over
    t = 1..T (not from t = 0 as printed: z_0 is the given initial state, erratum E-18)::

        dS/dD_zz = Σ_t b_t z_{t−1}ᵀ,  dS/dD_yz = Σ_t b_t y_tᵀ,  dS/dd_z = Σ_t b_t.

    The loss here has no direct dependence on θ (∂S/∂θ = 0); add it if yours has.
    """
    T = y.shape[-2]
    if Z.shape[-2] != T + 1 or dS_dz_partial.shape != Z.shape:
        raise ValueError(
            f"Z and dS_dz_partial must have shape (*batch, T+1={T + 1}, H), got {tuple(Z.shape)} "
            f"and {tuple(dS_dz_partial.shape)}."
        )
    if truncate is not None and truncate < 1:
        raise ValueError(f"truncate must be a positive integer or None, got {truncate!r}.")
    psi = rnn.activation
    # Pre-activations a_t = D_zz z_{t−1} + D_yz y_t + d_z, all t at once: (*batch, T, H).
    a = Z[..., :-1, :] @ rnn.D_zz.T + y @ rnn.D_yz.T + rnn.d_z
    J = psi.derivative(a)  # diagonal of J_t, t = 1..T
    dS_dz = dS_dz_partial.clone()
    b = torch.empty_like(a)
    b[..., T - 1, :] = J[..., T - 1, :] * dS_dz[..., T, :]
    for t in range(T - 1, -1, -1):  # z_t for t = T−1, ..., 0
        cut = truncate is not None and t > 0 and t % truncate == 0
        if not cut:
            dS_dz[..., t, :] += b[..., t, :] @ rnn.D_zz  # Eq. 5.20 (row form of (J D_zz)ᵀ)
        if t > 0:
            b[..., t - 1, :] = J[..., t - 1, :] * dS_dz[..., t, :]  # Eq. 5.21
    flat_b = b.reshape(-1, b.shape[-1])
    g_Dzz = flat_b.mT @ Z[..., :-1, :].reshape(-1, Z.shape[-1])  # Σ_t b_t z_{t−1}ᵀ
    g_Dyz = flat_b.mT @ y.reshape(-1, y.shape[-1])  # Σ_t b_t y_tᵀ
    g_dz = flat_b.sum(0)  # Σ_t b_t
    return RNNGradients(g_Dzz, g_Dyz, g_dz, dS_dz, b)
