"""The exponential-family harmonium (EFH) and its named configurations, the RBMs (book §3.1,
Eqs. 3.1–3.4; §10.2; the stochastic-backpropagation slides S0:109-137; CATALOGUE C1–C3).

The book's notation: x̂ are the *hidden* ("source") units, ŷ the *visible* units (the data).
Both conditionals are exponential families (B:1040),

    p̂(x | y) = h(x) exp{η(y)ᵀ T(x) − A(η(y))},    η(y) = b_x + W U(y),
    p̂(y | x) = k(y) exp{ζ(x)ᵀ U(y) − B(ζ(x))},    ζ(x) = b_y + Wᵀ T(x),

with one shared W (Eqs. 3.3–3.4), so the joint is a Boltzmann distribution with energy (B:1068)

    E(x, y) = −b_yᵀ U(y) − b_xᵀ T(x) − U(y)ᵀ Wᵀ T(x) − log h(x) k(y),

and summing out either layer gives its *free energy*, log p̂(y) = −F(y) − log Z (B:1056):

    F(y) = −b_yᵀ U(y) − log k(y) − A(b_x + W U(y)),
    F(x) = −b_xᵀ T(x) − log h(x) − B(b_y + Wᵀ T(x)).

W has shape dim T × dim U (hidden statistics × visible statistics; CATALOGUE C1's note on the
book's subscript), the layout of scikit-learn's ``BernoulliRBM.components_``.

A layer of units is a small module (``BernoulliLayer``, ``GaussianLayer``, ``PoissonLayer``,
``SoftmaxLayer``) holding its bias and saying how its natural parameters are laid out as those
of a family in ``genmodels.families`` (``Layer.family_natural``, the families' conditional
view); the family gives its statistics, base measure, log-partition, mean, log-density,
sampler and the conjugate M step of AIS's base rates. Units within a layer are conditionally
independent given the other layer, so a layer's A(η) is the family's log-partition summed
over units. The named RBMs (``BernoulliRBM``, ``GaussianBernoulliRBM``,
``PoissonBernoulliRBM``) are harmoniums with a choice of layers, not copies.

Shapes: ``size`` units per layer; S = dim T (or dim U) statistics per layer (S = size except
for softmax groups, S = groups × categories). Data are (*batch, size): every leading
dimension is a batch dimension (many data, many chains, many chains of many data).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, NamedTuple

import torch
from torch import Tensor, nn

from genmodels._validation import as_tensor, check_positive_int, resolve_dtype
from genmodels.families import Bernoulli, Categorical, Normal, Poisson
from genmodels.families.base import ExponentialFamily
from genmodels.families.continuous import gaussian_log_base
from genmodels.families.discrete import one_hot
from genmodels.io import SavableModule

__all__ = [
    "BernoulliLayer",
    "BernoulliRBM",
    "GaussianBernoulliRBM",
    "GaussianLayer",
    "GibbsState",
    "Harmonium",
    "Layer",
    "PoissonBernoulliRBM",
    "PoissonLayer",
    "SoftmaxLayer",
    "make_layer",
]


# --------------------------------------------------------------------------------- layers
# A layer is the thin adapter between a family of genmodels.families and a harmonium: the
# family holds all of one unit's maths (t, log h, A, ∇A, log p, sampling through a
# torch.Generator, the conjugate M step), and the layer says only how its flat natural
# parameters η = bias + input (*, S) are laid out as the family's, one member per unit
# (``family_natural``: the conditional view of Eqs. 3.1–3.4), plus what is the harmonium's
# own (its bias, enumeration of joint states, data checks that name the first bad entry).
class Layer(nn.Module, ABC):
    """A layer of conditionally independent units from one exponential family.

    The layer's share of the energy is −biasᵀ T(x) − log h(x); given the natural parameters
    η = bias + input (*, S), its conditional is the family's product over units, so its
    log-partition is Σ_units A_unit, its mean ∇A, its sampler the family's — all read off
    ``family`` through ``family_natural``. Subclasses set ``family`` and, where the layout is
    not one natural parameter per unit (or P per unit, in order), ``family_natural``.
    """

    kind: ClassVar[str]
    #: the family of one unit (genmodels.families)
    family: ClassVar[type[ExponentialFamily]]
    bias: nn.Parameter

    def __init__(self, size: int, num_stats: int, *, dtype: torch.dtype) -> None:
        super().__init__()
        self.size = check_positive_int(size, "size")
        self.num_stats = num_stats
        self.bias = nn.Parameter(torch.zeros(num_stats, dtype=dtype))

    @property
    def spec(self) -> dict[str, Any]:
        """The JSON configuration that ``make_layer`` rebuilds this layer from."""
        return {"kind": self.kind, "size": self.size}

    # ---------------------------------------------------------------- the layer's maths
    def family_natural(self, natural: Tensor) -> Tensor:
        """The conditional's natural parameters in the family's layout, one member per unit:
        (*, S) → (*, size, P), here P = S/size consecutive entries per unit. With η = b + W u
        the affine map of the other layer this is the families' conditional view,
        ``family.conditional_natural(b, W, u)`` (Eqs. 3.1–3.4; the identity onto the domain
        for Bernoulli, Poisson and categorical units)."""
        return natural.unflatten(-1, (self.size, -1))

    def stats(self, x: Tensor) -> Tensor:
        """T(x), the family's statistics of every unit, flat. x: (*, size) → (*, S)."""
        return self.family.sufficient_stats(x).flatten(-2)

    def log_base(self, x: Tensor) -> Tensor:
        """log h(x) = Σ_units log h_unit. x: (*, size) → (*,)."""
        return self.family.summed_log_base_measure(x)

    def log_partition(self, natural: Tensor) -> Tensor:
        """A(η) = log Σ_x h(x) exp{ηᵀ T(x)}, the family's A summed over units.
        natural: (*, S) → (*,)."""
        return self.family.log_partition(self.family_natural(natural)).sum(-1)

    def mean(self, natural: Tensor) -> Tensor:
        """E[T(X)] = ∇A(η) under the conditional with natural parameters η. (*, S) → (*, S)."""
        return self.family.mean_from_natural(self.family_natural(natural)).flatten(-2)

    def log_prob(self, x: Tensor, natural: Tensor) -> Tensor:
        """log p(x | η) = ηᵀT(x) + log h(x) − A(η) (Eq. 3.1), the family's
        ``log_prob_natural`` summed over units. x: (*, size), natural: (*, S),
        broadcasting → (*)."""
        return self.family.log_prob_natural(x, self.family_natural(natural)).sum(-1)

    def distribution(self, natural: Tensor) -> ExponentialFamily:
        """The conditional as a member of ``genmodels.families``, one distribution per unit
        (batch shape (*, size)) — the exponential family of Eqs. 3.1 (B:1040)."""
        return self.family(self.family_natural(natural))

    def sample(self, natural: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """x ~ h(x) exp{ηᵀ T(x) − A(η)} through the family's sampler (which takes the
        generator directly). natural: (*, S) → (*, size), in η's dtype."""
        return self.family.sample_natural(self.family_natural(natural), generator) \
            .to(natural.dtype)

    @abstractmethod
    def check(self, x: Tensor, name: str) -> None:
        """Raise ``ValueError`` unless every entry of x (*, size) is a value of these units."""

    def self_energy(self, x: Tensor) -> Tensor:
        """The layer's own part of the energy, −biasᵀ T(x) − log h(x). x: (*, size) → (*,)."""
        return -(self.stats(x) @ self.bias) - self.log_base(x)

    # ------------------------------------------------------------------ enumeration
    @property
    def num_states(self) -> int | None:
        """Number of joint states of the layer (None: infinitely many)."""
        return None

    def states(self, start: int, stop: int) -> Tensor:
        """Joint states number start … stop − 1 in a fixed order, (stop − start, size)."""
        raise ValueError(f"a {self.kind} layer has infinitely many states; it cannot be "
                         "enumerated.")

    #: the pseudo-count of ``base_rate_bias``'s conjugate M step (half a count per outcome
    #: for binary and categorical units).
    base_rate_pseudo_count: ClassVar[float] = 0.5

    def base_rate_bias(self, data: Tensor) -> Tensor:
        """The bias of the independent-unit model whose mean statistics match the data's,
        smoothed away from the boundary by the family's conjugate M step with
        ``base_rate_pseudo_count``: the base model of AIS (Salakhutdinov & Murray 2008,
        §4.1). data: (N, size) → (S,)."""
        t = self.stats(data).sum(0).unflatten(-1, (self.size, -1))  # (size, P)
        n = torch.full((self.size,), float(data.shape[0]), dtype=t.dtype, device=t.device)
        return self.family.natural_from_stats(t, n, self.base_rate_pseudo_count).flatten()


def _first_bad(bad: Tensor, x: Tensor, name: str, what: str) -> None:
    if bool(bad.any()):
        idx = tuple(int(i) for i in torch.nonzero(bad)[0])
        raise ValueError(f"{name} must hold {what}; {int(bad.sum())} entr"
                         f"{'y does' if int(bad.sum()) == 1 else 'ies do'} not, the first "
                         f"{float(x[idx])!r} at index {idx}.")


def _check_finite_shape(layer: Layer, x: Tensor, name: str) -> None:
    if x.dim() < 1 or x.shape[-1] != layer.size:
        raise ValueError(f"{name} must have shape (*batch, {layer.size}) for a layer of "
                         f"{layer.size} {layer.kind} units, got {tuple(x.shape)}.")
    _first_bad(~torch.isfinite(x), x, name, "finite values (no NaN or infinity)")


def _bits(codes: Tensor, n: int, dtype: torch.dtype) -> Tensor:
    """The n binary digits of each code, least significant first. (M,) → (M, n)."""
    return ((codes[:, None] >> torch.arange(n, device=codes.device)) & 1).to(dtype)


class _ScalarLayer(Layer):
    """Units of a family with one natural parameter and T(x) = x (Bernoulli, Poisson): the
    layout and the statistics without the family's trailing unit axis (the training path's
    hot calls, a view fewer each)."""

    def __init__(self, size: int, *, dtype: torch.dtype = torch.float64) -> None:
        super().__init__(size, size, dtype=dtype)

    def family_natural(self, natural: Tensor) -> Tensor:
        return natural[..., None]

    def stats(self, x: Tensor) -> Tensor:
        return x  # the family's t(x) = x per unit

    def sample(self, natural: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return self.family.sample_natural(natural[..., None], generator)


class BernoulliLayer(_ScalarLayer):
    """Binary units, x ∈ {0, 1}: the family ``Bernoulli`` per unit (T(x) = x, h = 1,
    A(η) = Σ log(1 + e^η), E[T] = σ(η))."""

    kind = "bernoulli"
    family = Bernoulli

    def self_energy(self, x: Tensor) -> Tensor:
        return -(x @ self.bias)  # T(x) = x, log h = 0: one operation on the training path

    def check(self, x: Tensor, name: str) -> None:
        _check_finite_shape(self, x, name)
        _first_bad((x != 0) & (x != 1), x, name, "binary values (0 or 1) for Bernoulli units")

    @property
    def num_states(self) -> int:
        return 2**self.size

    def states(self, start: int, stop: int) -> Tensor:
        codes = torch.arange(start, stop, device=self.bias.device)
        return _bits(codes, self.size, self.bias.dtype)


class PoissonLayer(_ScalarLayer):
    """Count units, x ∈ {0, 1, 2, …}: the family ``Poisson`` per unit (T(x) = x,
    log h = −log x!, A(η) = Σ e^η, E[T] = e^η)."""

    kind = "poisson"
    family = Poisson

    def check(self, x: Tensor, name: str) -> None:
        _check_finite_shape(self, x, name)
        _first_bad((x < 0) | (x != torch.round(x)), x, name,
                   "nonnegative integer counts for Poisson units")


class GaussianLayer(Layer):
    """Real units with standard deviations σ (fixed at 1, or learned as log σ), in the
    parameterisation of S0:109-137: T(x) = x/σ, log h(x) = −Σ [x²/(2σ²) + ½ log 2π], so
    x | η ~ N(σ η, σ²) per unit: the family ``Normal`` with natural parameters
    (η/σ, −1/(2σ²)), and A(η) = Σ [η²/2 + log σ].

    With the bias b̃ = b/σ the layer's energy is Σ (x − b)²/(2σ²) + const — S0's
    Gaussian–Bernoulli energy with the constant Σ [½ log 2π − b²/(2σ²)] that makes the
    conditionals exactly the family's members (B:1068); it changes log Z, never p̂(y).
    """

    kind = "gaussian"
    family = Normal
    log_scale: Tensor

    def __init__(self, size: int, *, learn_scale: bool = False,
                 dtype: torch.dtype = torch.float64) -> None:
        super().__init__(size, size, dtype=dtype)
        self.learn_scale = bool(learn_scale)
        zeros = torch.zeros(size, dtype=dtype)
        if self.learn_scale:
            self.log_scale = nn.Parameter(zeros)
        else:
            self.register_buffer("log_scale", zeros)

    @property
    def spec(self) -> dict[str, Any]:
        return {"kind": self.kind, "size": self.size, "learn_scale": self.learn_scale}

    @property
    def scale(self) -> Tensor:
        """σ, (size,)."""
        return torch.exp(self.log_scale)

    def family_natural(self, natural: Tensor) -> Tensor:
        """The ``Normal`` natural parameters (η/σ, −1/(2σ²)) per unit: the layer's η enters
        only the first (its variance is the layer's σ², not an output of the other layer).
        (*, S) → (*, S, 2)."""
        inv_var = torch.exp(-2 * self.log_scale)
        return torch.stack([natural * torch.exp(-self.log_scale),
                            (-0.5 * inv_var).expand_as(natural)], -1)

    def stats(self, x: Tensor) -> Tensor:
        return x * torch.exp(-self.log_scale)

    def log_base(self, x: Tensor) -> Tensor:
        # the Normal's log h (−½ log 2π per unit) with the x²/(2σ²) that T(x) = x/σ leaves out
        return gaussian_log_base(self.size) - 0.5 * self.stats(x).square().sum(-1)

    def sample(self, natural: Tensor, generator: torch.Generator | None = None) -> Tensor:
        # the Normal's sampler in scale-family form, N(σ η, σ²) (the η/σ, −1/(2σ²) of
        # ``family_natural`` and back would cost three passes more)
        return Normal.sample_scaled(natural, self.scale, generator)

    def mean(self, natural: Tensor) -> Tensor:
        # E[x/σ] = E[x]/σ, E[x] the Normal's mean value
        return Normal.mean_value(self.family_natural(natural)) * torch.exp(-self.log_scale)

    def check(self, x: Tensor, name: str) -> None:
        _check_finite_shape(self, x, name)

    def base_rate_bias(self, data: Tensor) -> Tensor:
        # maximum likelihood of η at the fixed σ: E[x/σ] = η for the independent Gaussian
        return self.stats(data).mean(0)


class SoftmaxLayer(Layer):
    """G groups of K-way categorical units (softmax groups): the family ``Categorical`` per
    group. A state holds one category index per group, x ∈ {0, …, K − 1}^G; T(x) = one_hot(x)
    flattened to G·K statistics; h = 1; A(η) = Σ_g log Σ_k e^{η_gk}; E[T] = softmax within
    each group."""

    kind = "softmax"
    family = Categorical

    def __init__(self, size: int, categories: int, *,
                 dtype: torch.dtype = torch.float64) -> None:
        k = check_positive_int(categories, "categories", minimum=2)
        super().__init__(size, check_positive_int(size, "size") * k, dtype=dtype)
        self.categories = k

    @property
    def spec(self) -> dict[str, Any]:
        return {"kind": self.kind, "size": self.size, "categories": self.categories}

    def stats(self, x: Tensor) -> Tensor:
        return one_hot(x, self.categories, self.bias.dtype).flatten(-2)

    def log_base(self, x: Tensor) -> Tensor:
        return torch.zeros(x.shape[:-1], dtype=self.bias.dtype, device=x.device)  # h = 1

    def check(self, x: Tensor, name: str) -> None:
        _check_finite_shape(self, x, name)
        _first_bad((x < 0) | (x >= self.categories) | (x != torch.round(x)), x, name,
                   f"category indices in 0..{self.categories - 1} for softmax units")

    @property
    def num_states(self) -> int:
        return self.categories**self.size

    def states(self, start: int, stop: int) -> Tensor:
        codes = torch.arange(start, stop, device=self.bias.device)
        powers = self.categories ** torch.arange(self.size, device=codes.device)
        return ((codes[:, None] // powers) % self.categories).to(self.bias.dtype)

_LAYERS: dict[str, type[Layer]] = {
    "bernoulli": BernoulliLayer, "gaussian": GaussianLayer, "poisson": PoissonLayer,
    "softmax": SoftmaxLayer}


def make_layer(spec: Layer | dict[str, Any] | tuple[str, int],
               dtype: torch.dtype = torch.float64) -> Layer:
    """A layer from a ``Layer`` (returned as is), a spec dict ``{"kind": "bernoulli",
    "size": 6}`` (extra keys: ``learn_scale`` for Gaussian, ``categories`` for softmax) or a
    pair ``("bernoulli", 6)``."""
    if isinstance(spec, Layer):
        return spec
    if isinstance(spec, tuple):
        spec = {"kind": spec[0], "size": spec[1]}
    if not isinstance(spec, dict) or spec.get("kind") not in _LAYERS:
        raise ValueError(f"a layer is a Layer, a dict or a (kind, size) pair with kind one of "
                         f"{tuple(_LAYERS)}; got {spec!r}.")
    kw = {k: v for k, v in spec.items() if k not in ("kind", "size")}
    return _LAYERS[spec["kind"]](spec["size"], dtype=dtype, **kw)


# ------------------------------------------------------------------------------ harmonium
class GibbsState(NamedTuple):
    """The state of block Gibbs chains after the last sweep.

    x: (*batch, size_x), hidden units, x ~ p̂(x | y) given the y beside it;
    y: (*batch, size_y), visible units.
    """

    x: Tensor
    y: Tensor


class Harmonium(SavableModule):
    """The exponential-family harmonium over a hidden layer x̂ and a visible layer ŷ (Eq. 3.3).

    hidden, visible: ``Layer`` modules or their specs (``make_layer``).
    seed: draws W ~ N(0, init_scale²) (Hinton 2010's 0.01); the biases start at zero.
    Parameters: ``weight`` W (S_x, S_y); ``hidden.bias`` b_x (S_x,); ``visible.bias`` b_y
    (S_y,); a Gaussian layer's ``log_scale`` where learned.
    """

    def __init__(self, hidden: Layer | dict[str, Any] | tuple[str, int],
                 visible: Layer | dict[str, Any] | tuple[str, int], *, seed: int = 0,
                 init_scale: float = 0.01, dtype: torch.dtype | str = torch.float64) -> None:
        super().__init__()
        dt = resolve_dtype(dtype)
        self.hidden = make_layer(hidden, dt)
        self.visible = make_layer(visible, dt)
        g = torch.Generator().manual_seed(int(seed))
        self.weight = nn.Parameter(float(init_scale) * torch.randn(
            self.hidden.num_stats, self.visible.num_stats, generator=g, dtype=dt))
        self.config = {"hidden": self.hidden.spec, "visible": self.visible.spec,
                       "seed": int(seed), "init_scale": float(init_scale),
                       "dtype": str(dt).removeprefix("torch.")}

    # ------------------------------------------------------------------ parameters
    @property
    def b_x(self) -> Tensor:
        """The hidden bias b_x, (S_x,)."""
        return self.hidden.bias

    @property
    def b_y(self) -> Tensor:
        """The visible bias b_y, (S_y,)."""
        return self.visible.bias

    def set_parameters(self, weight: Any = None, b_x: Any = None, b_y: Any = None
                       ) -> Harmonium:
        """Overwrite W (S_x, S_y), b_x (S_x,), b_y (S_y,) (for tests and warm starts)."""
        with torch.no_grad():
            for p, v, name in ((self.weight, weight, "weight"), (self.b_x, b_x, "b_x"),
                               (self.b_y, b_y, "b_y")):
                if v is not None:
                    t = as_tensor(v, name=name, dtype=p.dtype, device=p.device)
                    if t.shape != p.shape:
                        raise ValueError(f"{name} must have shape {tuple(p.shape)}, got "
                                         f"{tuple(t.shape)}.")
                    p.copy_(t)
        return self

    # ------------------------------------------------------------------ the model
    def hidden_natural(self, y: Tensor) -> Tensor:
        """η(y) = b_x + W U(y) (B:1052). y: (*, size_y) → (*, S_x)."""
        u = self.visible.stats(y)
        if u.dim() == 2:  # one fused kernel on the training path
            return torch.addmm(self.b_x, u, self.weight.mT)
        return self.b_x + u @ self.weight.mT

    def visible_natural(self, x: Tensor) -> Tensor:
        """ζ(x) = b_y + Wᵀ T(x) (B:1052). x: (*, size_x) → (*, S_y)."""
        t = self.hidden.stats(x)
        if t.dim() == 2:
            return torch.addmm(self.b_y, t, self.weight)
        return self.b_y + t @ self.weight

    def posterior(self, y: Tensor) -> ExponentialFamily:
        """p̂(x | y), the hidden layer's family with natural parameters η(y) (B:1058)."""
        return self.hidden.distribution(self.hidden_natural(y))

    def emission(self, x: Tensor) -> ExponentialFamily:
        """p̂(y | x), the visible layer's family with natural parameters ζ(x) (B:1058)."""
        return self.visible.distribution(self.visible_natural(x))

    def hidden_mean(self, y: Tensor) -> Tensor:
        """E[T(x) | y] = ∇A(η(y)), the posterior mean statistics (for a binary hidden layer
        p̂(x_j = 1 | y); what a DBN's next layer trains on). y: (*, size_y) → (*, S_x)."""
        return self.hidden.mean(self.hidden_natural(y))

    def visible_mean(self, x: Tensor) -> Tensor:
        """E[U(y) | x] = ∇B(ζ(x)), the emission's mean statistics. x: (*, size_x) → (*, S_y)."""
        return self.visible.mean(self.visible_natural(x))

    def energy(self, x: Tensor, y: Tensor) -> Tensor:
        """E(x, y) = −b_yᵀU(y) − b_xᵀT(x) − U(y)ᵀWᵀT(x) − log h(x)k(y) (B:1068).
        x: (*, size_x), y: (*, size_y), broadcasting → (*,)."""
        t, u = self.hidden.stats(x), self.visible.stats(y)
        coupling = ((t @ self.weight) * u).sum(-1)
        return self.hidden.self_energy(x) + self.visible.self_energy(y) - coupling

    def free_energy(self, y: Tensor) -> Tensor:
        """F(y) = −b_yᵀU(y) − log k(y) − A(η(y)) = −log Σ_x exp{−E(x, y)}, so that
        log p̂(y) = −F(y) − log Z (B:1056). y: (*, size_y) → (*,)."""
        return self.visible.self_energy(y) - self.hidden.log_partition(self.hidden_natural(y))

    def free_energy_hidden(self, x: Tensor) -> Tensor:
        """F(x) = −b_xᵀT(x) − log h(x) − B(ζ(x)) = −log Σ_y exp{−E(x, y)}; log p̂(x) =
        −F(x) − log Z (B:1056). x: (*, size_x) → (*,)."""
        return self.hidden.self_energy(x) - self.visible.log_partition(self.visible_natural(x))

    def layer_free_energy(self, layer: str, states: Tensor) -> Tensor:
        """``free_energy`` (layer "visible") or ``free_energy_hidden`` (layer "hidden")."""
        if layer == "visible":
            return self.free_energy(states)
        if layer == "hidden":
            return self.free_energy_hidden(states)
        raise ValueError(f"layer must be 'visible' or 'hidden', got {layer!r}.")

    def log_unnormalised(self, y: Tensor) -> Tensor:
        """log p̂(y) + log Z = −F(y): what NCE and the other Z-free objectives train.
        y: (N, size_y) → (N,)."""
        return -self.free_energy(y)

    # ------------------------------------------------------------------ sampling
    def sample_hidden(self, y: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """x ~ p̂(x | y). y: (*, size_y) → (*, size_x)."""
        return self.hidden.sample(self.hidden_natural(y), generator)

    def sample_visible(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """y ~ p̂(y | x). x: (*, size_x) → (*, size_y)."""
        return self.visible.sample(self.visible_natural(x), generator)

    def gibbs(self, y: Tensor, n_steps: int = 1, generator: torch.Generator | None = None
              ) -> GibbsState:
        """Block Gibbs sampling from visible states y (*batch, size_y): every leading index
        is one chain. The order of B §10.2.2: x⁰ ~ p̂(x | y⁰), then ``n_steps`` times
        y ~ p̂(y | x), x ~ p̂(x | y). n_steps = 0 returns (x⁰, y⁰). No gradient flows."""
        n = check_positive_int(n_steps, "n_steps", minimum=0)
        with torch.no_grad():
            x = self.sample_hidden(y, generator)
            for _ in range(n):
                y = self.sample_visible(x, generator)
                x = self.sample_hidden(y, generator)
        return GibbsState(x, y)

    def sample(self, num_chains: int, n_steps: int = 1000,
               generator: torch.Generator | None = None, init: Tensor | None = None
               ) -> GibbsState:
        """Approximate draws from the joint: ``num_chains`` block Gibbs chains run for
        ``n_steps`` sweeps from ``init`` (num_chains, size_y) or from independent draws of the
        visible units given x = 0's natural parameters b_y."""
        m = check_positive_int(num_chains, "num_chains")
        if init is None:
            with torch.no_grad():
                init = self.visible.sample(self.b_y.expand(m, -1), generator)
        return self.gibbs(init, n_steps, generator)

    # ------------------------------------------------------------------ normalised
    def check_visible(self, y: Any, name: str = "y") -> Tensor:
        """y as a tensor of the model's dtype, with a ``ValueError`` saying what and where
        unless its shape and values suit the visible units."""
        t = as_tensor(y, name=name, dtype=self.weight.dtype, device=self.weight.device,
                      allow_nan=True)
        self.visible.check(t, name)
        return t

    def log_partition(self, **kwargs: Any) -> Any:
        """The exact log Z by enumerating the smaller layer (``inference.partition``); returns
        a ``PartitionEstimate``."""
        from genmodels.inference.partition import exact_log_partition

        return exact_log_partition(self, **kwargs)

    def log_prob(self, y: Tensor, log_z: Tensor | None = None) -> Tensor:
        """log p̂(y) = −F(y) − log Z, with the exact log Z unless ``log_z`` is given.
        y: (*, size_y) → (*,)."""
        lz = self.log_partition().log_z if log_z is None else log_z
        return -self.free_energy(y) - lz


class _BinaryHiddenRBM(Harmonium):
    """A named RBM with binary hiddens and ``visible_kind`` visibles, configured by
    (n_visible, n_hidden) (what ``BernoulliRBM`` and ``PoissonBernoulliRBM`` share)."""

    visible_kind: ClassVar[str]

    def __init__(self, n_visible: int, n_hidden: int, *, seed: int = 0,
                 init_scale: float = 0.01, dtype: torch.dtype | str = torch.float64) -> None:
        super().__init__(("bernoulli", n_hidden), (self.visible_kind, n_visible), seed=seed,
                         init_scale=init_scale, dtype=dtype)
        self.config = {"n_visible": int(n_visible), "n_hidden": int(n_hidden),
                       "seed": int(seed), "init_scale": float(init_scale),
                       "dtype": self.config["dtype"]}


class BernoulliRBM(_BinaryHiddenRBM):
    """The binary RBM (CATALOGUE C2): Bernoulli hidden and visible units,
    p̂(x_j = 1 | y) = σ(b_x + W y)_j, p̂(y_i = 1 | x) = σ(b_y + Wᵀ x)_i,
    F(y) = −b_yᵀ y − Σ_j softplus((b_x + W y)_j)."""

    visible_kind = "bernoulli"


class GaussianBernoulliRBM(Harmonium):
    """Real visibles with standard deviations σ_i (learned unless ``learn_scale=False``), binary
    hiddens (S0:109-137; CATALOGUE C3): p̂(x_j = 1 | v) = σ(c_j + Σ_i w_ji v_i/σ_i),
    v_i | x ~ N(b_i + σ_i Σ_j w_ji x_j, σ_i²) with b_i = σ_i (b_y)_i, and
    F(v) = Σ_i (v_i − b_i)²/(2σ_i²) − Σ_j softplus(c_j + Σ_i w_ji v_i/σ_i) + const
    (see ``GaussianLayer`` for the constant)."""

    def __init__(self, n_visible: int, n_hidden: int, *, learn_scale: bool = True,
                 seed: int = 0, init_scale: float = 0.01,
                 dtype: torch.dtype | str = torch.float64) -> None:
        super().__init__(("bernoulli", n_hidden),
                         {"kind": "gaussian", "size": n_visible, "learn_scale": learn_scale},
                         seed=seed, init_scale=init_scale, dtype=dtype)
        self.config = {"n_visible": int(n_visible), "n_hidden": int(n_hidden),
                       "learn_scale": bool(learn_scale), "seed": int(seed),
                       "init_scale": float(init_scale), "dtype": self.config["dtype"]}


class PoissonBernoulliRBM(_BinaryHiddenRBM):
    """Count visibles, binary hiddens: y_i | x ~ Poisson(exp((b_y + Wᵀx)_i)),
    F(y) = −b_yᵀ y + Σ_i log y_i! − Σ_j softplus((b_x + W y)_j). Normalisable for any W
    (the hidden layer is finite: Z = Σ_x exp{b_xᵀx + Σ_i exp ζ_i(x)})."""

    visible_kind = "poisson"
