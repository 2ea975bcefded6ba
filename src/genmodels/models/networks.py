"""Neural-network building blocks: the multilayer perceptron (Eq. 5.15), the Elman RNN (Eq. 5.18).

Both are ordinary ``torch.nn`` modules (autograd trains them); ``genmodels.learning.backprop``
writes the book's backpropagation (Eqs. 5.16–5.17) and backpropagation through time
(Eqs. 5.19–5.21) out once, explicitly, on the same parameters, and the tests check it against
autograd.

Notation (book §5.1.3): the layers are ``z_l = ψ_l(D_l z_{l−1} + d_l)``, l = 1..L, ``z_0 = y``.
``D_l`` is ``self.layers[l-1].weight`` (shape (D_l, D_{l−1})) and ``d_l`` its ``bias``.
Samples are rows here (the book's samples are columns), so ``D_l z`` is written ``z @ D_l.T``.

An activation is a small object (:class:`Activation`) holding ψ and its derivative ψ′ (the
diagonal of the Jacobian ``J_l``); choose one by name from :data:`ACTIVATIONS` or pass your own.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from genmodels._validation import check_positive_int, resolve_dtype
from genmodels.io import SavableModule


@dataclass(frozen=True)
class Activation:
    """An elementwise nonlinearity ψ and its derivative ψ′, both functions of the pre-activation.

    ``derivative(a)`` is the diagonal of the Jacobian ``J = ∂ψ/∂aᵀ`` (ψ acts elementwise, so
    ``J`` is diagonal and symmetric, B:1595).
    """

    name: str
    fn: Callable[[Tensor], Tensor]
    derivative: Callable[[Tensor], Tensor]

    def __call__(self, a: Tensor) -> Tensor:
        return self.fn(a)


def _sigmoid_prime(a: Tensor) -> Tensor:
    s = torch.sigmoid(a)
    return s * (1.0 - s)


ACTIVATIONS: dict[str, Activation] = {
    "identity": Activation("identity", lambda a: a, torch.ones_like),
    "tanh": Activation("tanh", torch.tanh, lambda a: 1.0 - torch.tanh(a) ** 2),
    "sigmoid": Activation("sigmoid", torch.sigmoid, _sigmoid_prime),
    "relu": Activation("relu", torch.relu, lambda a: (a > 0).to(a.dtype)),
    "softplus": Activation("softplus", nn.functional.softplus, torch.sigmoid),
    "elu": Activation("elu", nn.functional.elu,
                      lambda a: torch.where(a > 0, torch.ones_like(a), torch.exp(a))),
    # exp and log give the book's two-layer interaction example (B:1581): log → [1 1] → exp.
    "exp": Activation("exp", torch.exp, torch.exp),
    "log": Activation("log", torch.log, torch.reciprocal),
}


def get_activation(activation: str | Activation) -> Activation:
    """An :class:`Activation` from its name (one of ``ACTIVATIONS``) or itself."""
    if isinstance(activation, Activation):
        return activation
    if activation not in ACTIVATIONS:
        raise ValueError(
            f"unknown activation {activation!r}; choose one of {tuple(ACTIVATIONS)} or pass an "
            "Activation(name, fn, derivative)."
        )
    return ACTIVATIONS[activation]


def _activation_name(activation: str | Activation) -> str:
    return activation if isinstance(activation, str) else activation.name


class MLP(SavableModule):
    """Multilayer perceptron ``z_l = ψ_l(D_l z_{l−1} + d_l)``, ``z_0 = y`` (Eq. 5.15).

    Args:
        layer_sizes: ``(D_0, D_1, ..., D_L)``: input width, hidden widths, output width
            (at least two entries: one layer).
        activation: ψ of the hidden layers 1..L−1 (a name from ``ACTIVATIONS`` or an
            ``Activation``); or a sequence of L activations, one per layer (then
            ``output_activation`` must be left at its default).
        output_activation: ψ_L of the last layer (default identity: ``z_L`` are then unrestricted
            moment or natural parameters of ``p̌(x | y)``).
        dtype, device: of the parameters (default float64, CPU).

    ``forward(y)``: y (*batch, D_0) → z_L (*batch, D_L). ``weights``/``biases`` give
    ``(D_1..D_L)``/``(d_1..d_L)``. Initialisation: PyTorch's default for ``nn.Linear``
    (uniform in ±1/√fan_in), drawn from ``torch``'s global generator unless ``seed`` is given.
    """

    def __init__(
        self,
        layer_sizes: Sequence[int],
        activation: str | Activation | Sequence[str | Activation] = "tanh",
        output_activation: str | Activation = "identity",
        *,
        seed: int | None = None,
        dtype: Any = torch.float64,
        device: str | torch.device | None = None,
    ) -> None:
        super().__init__()
        sizes = [check_positive_int(s, f"layer_sizes[{i}]") for i, s in enumerate(layer_sizes)]
        if len(sizes) < 2:
            raise ValueError(
                f"layer_sizes must hold at least an input and an output width, got {sizes}."
            )
        L = len(sizes) - 1
        if isinstance(activation, (str, Activation)):
            acts = [get_activation(activation)] * (L - 1) + [get_activation(output_activation)]
        else:
            acts = [get_activation(a) for a in activation]
            if len(acts) != L:
                raise ValueError(
                    f"got {len(acts)} activations for {L} layers; give one per layer."
                )
        self.activations: tuple[Activation, ...] = tuple(acts)
        dt = resolve_dtype(dtype)
        gen_ctx: Any = contextlib.nullcontext()
        if seed is not None:
            gen_ctx = torch.random.fork_rng(devices=[])
        with gen_ctx:
            if seed is not None:
                torch.manual_seed(seed)
            self.layers = nn.ModuleList(
                nn.Linear(sizes[i], sizes[i + 1], dtype=dt, device=device) for i in range(L)
            )
        self.config = {
            "layer_sizes": sizes,
            "activation": [a.name for a in acts],
            "seed": seed,
            "dtype": str(dt).removeprefix("torch."),
        }
        if any(a.name not in ACTIVATIONS or ACTIVATIONS[a.name] is not a for a in acts):
            self.config["activation"] = None  # custom activations cannot be saved by name

    @property
    def linear_layers(self) -> list[nn.Linear]:
        return [lin for lin in self.layers if isinstance(lin, nn.Linear)]

    @property
    def layer_sizes(self) -> tuple[int, ...]:
        lins = self.linear_layers
        return (lins[0].in_features, *(lin.out_features for lin in lins))

    @property
    def weights(self) -> tuple[Tensor, ...]:
        """``(D_1, ..., D_L)``, D_l of shape (D_l, D_{l−1})."""
        return tuple(lin.weight for lin in self.linear_layers)

    @property
    def biases(self) -> tuple[Tensor, ...]:
        """``(d_1, ..., d_L)``, d_l of shape (D_l,)."""
        return tuple(lin.bias for lin in self.linear_layers)

    def forward(self, y: Tensor) -> Tensor:
        z = y
        for lin, psi in zip(self.layers, self.activations):
            # Eq. 5.15; F.linear rather than lin(z) skips the module-call (hook) overhead, which
            # is a measurable share of a small network's step (benchmarks/bench_vae.py)
            assert isinstance(lin, nn.Linear)
            z = nn.functional.linear(z, lin.weight, lin.bias)
            if psi.name != "identity":
                z = psi.fn(z)
        return z


class ElmanRNN(SavableModule):
    """Elman recurrent network ``z_t = ψ(D_zz z_{t−1} + D_yz y_t + d_z)``, t = 1..T (B:1671).

    The recurrent layer is also the output layer (as in the book, B:1651).

    Args:
        n_inputs: M, the width of y_t.
        n_hidden: H, the width of z_t.
        activation: ψ (name or ``Activation``; default tanh).
        dtype, device, seed: as for :class:`MLP`.

    Parameters: ``D_zz`` (H, H), ``D_yz`` (H, M), ``d_z`` (H,), initialised uniform in ±1/√H.

    ``forward(y, z0=None)``: y (*batch, T, M), z0 (*batch, H) (default zeros) →
    Z (*batch, T+1, H) with ``Z[..., 0, :] = z0`` and ``Z[..., t, :] = z_t``.
    """

    def __init__(
        self,
        n_inputs: int,
        n_hidden: int,
        activation: str | Activation = "tanh",
        *,
        seed: int | None = None,
        dtype: Any = torch.float64,
        device: str | torch.device | None = None,
    ) -> None:
        super().__init__()
        M = check_positive_int(n_inputs, "n_inputs")
        H = check_positive_int(n_hidden, "n_hidden")
        self.activation = get_activation(activation)
        dt = resolve_dtype(dtype)
        g = torch.Generator(device="cpu")
        if seed is None:
            g.seed()
        else:
            g.manual_seed(seed)
        bound = 1.0 / math.sqrt(H)

        def init(*shape: int) -> nn.Parameter:
            w = (torch.rand(*shape, generator=g, dtype=dt) * 2.0 - 1.0) * bound
            return nn.Parameter(w.to(device))

        self.D_zz = init(H, H)
        self.D_yz = init(H, M)
        self.d_z = init(H)
        self.config = {"n_inputs": M, "n_hidden": H,
                       "activation": _activation_name(self.activation), "seed": seed,
                       "dtype": str(dt).removeprefix("torch.")}

    @property
    def n_hidden(self) -> int:
        return int(self.D_zz.shape[0])

    def initial_state(self, y: Tensor, z0: Tensor | None) -> Tensor:
        """z0 broadcast to (*batch, H) (zeros when None)."""
        batch = y.shape[:-2]
        if z0 is None:
            return y.new_zeros(*batch, self.n_hidden)
        if z0.shape[-1] != self.n_hidden:
            raise ValueError(f"z0 must end in H = {self.n_hidden}, got shape {tuple(z0.shape)}.")
        return z0.expand(*batch, self.n_hidden)

    def forward(self, y: Tensor, z0: Tensor | None = None) -> Tensor:
        if y.dim() < 2 or y.shape[-1] != self.D_yz.shape[1]:
            raise ValueError(
                f"y must have shape (*batch, T, M={self.D_yz.shape[1]}), got {tuple(y.shape)}."
            )
        z = self.initial_state(y, z0)
        inputs = y @ self.D_yz.T + self.d_z  # (*batch, T, H): input drive for every t at once
        states = [z]
        for t in range(y.shape[-2]):  # the recursion is sequential in t
            z = self.activation(z @ self.D_zz.T + inputs[..., t, :])  # Eq. 5.18
            states.append(z)
        return torch.stack(states, dim=-2)

