"""Normalising flows: NICE and RealNVP (book §9.2, Eqs 9.6–9.8).

The generative model is ŷ = d_1⁻¹ ∘ … ∘ d_L⁻¹(x̂) with independent latents x̂ of density
Π_k ψ′_k; by the change of variables (Eq. 9.7, erratum E-44: each Jacobian at its own input)

    log p̂(y) = Σ_k log ψ′_k(d(y)_k) + Σ_l log |det J_l(x_l)|,   x_1 = y, x_{l+1} = d_l(x_l),

and learning descends the relative entropy (Eq. 9.8) — the negative mean log-likelihood.

A ``Bijection`` is an ``nn.Module`` with ``forward(x) -> (d(x), log|det ∂d/∂xᵀ|)`` (data →
latent) and ``inverse(z)``; ``Composition`` chains them. NICE (Dinh, Krueger & Bengio 2015) is
additive coupling layers (|J| = 1; the Jacobian is block lower-triangular with identity
diagonal, erratum E-43) with alternating partitions, then a diagonal scaling layer, under a
logistic prior; RealNVP's affine coupling (Dinh, Sohl-Dickstein & Bengio 2017) is a second
coupling object on the same frame. ``Flow`` adds the prior and optional uniform dequantisation.

Shapes: x, z (N, D); log-determinants (N,).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise
from typing import Any

import torch
from torch import Tensor, nn

from genmodels._validation import check_choice, check_finite, check_positive_int

__all__ = [
    "AdditiveCoupling",
    "AffineCoupling",
    "Bijection",
    "Composition",
    "DiagonalScaling",
    "ElementwiseAffine",
    "Flow",
    "StandardLogistic",
    "StandardNormal",
    "UniformDequantisation",
    "alternating_masks",
    "coupling_net",
    "nice",
    "realnvp",
]


class Bijection(nn.Module):
    """An invertible map d: R^D → R^D. ``forward(x)`` returns (d(x), log|det ∂d/∂xᵀ|) with the
    log-determinant of shape (N,); ``inverse(z)`` returns d⁻¹(z)."""

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def inverse(self, z: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


class Composition(Bijection):
    """d = d_L ∘ … ∘ d_1: the log-determinants add, each at its own input (Eq. 9.7, E-44)."""

    def __init__(self, layers: Sequence[Bijection]) -> None:
        super().__init__()
        if len(layers) == 0:
            raise ValueError("a Composition needs at least one bijection.")
        for i, b in enumerate(layers):
            if not isinstance(b, Bijection):
                raise ValueError(f"layers[{i}] is a {type(b).__name__}, not a Bijection.")
        self.layers = nn.ModuleList(layers)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        logdet = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        for layer in self.layers:
            x, ld = layer(x)  # J_l evaluated at x_l = d_{l−1} ∘ … ∘ d_1(y)
            logdet = logdet + ld
        return x, logdet

    def inverse(self, z: Tensor) -> Tensor:
        for layer in reversed(self.layers):
            z = layer.inverse(z)  # type: ignore[operator]
        return z


def _check_mask(mask: Any, dim_name: str = "mask") -> Tensor:
    m = torch.as_tensor(mask)
    if m.dim() != 1 or m.dtype != torch.bool:
        raise ValueError(f"{dim_name} must be a 1-D boolean tensor (True: the conditioning "
                         f"half x^a), got dtype {m.dtype} and shape {tuple(m.shape)}.")
    n_a = int(m.sum())
    if n_a == 0 or n_a == m.numel():
        raise ValueError(
            f"{dim_name} must split the {m.numel()} dimensions into two non-empty parts, got "
            f"{n_a} conditioning dimension(s): a coupling with nothing to condition on or "
            "nothing to transform is not an invertible coupling layer.")
    return m


class _Coupling(Bijection):
    """The coupling frame: split x by ``mask`` into (x^a, x^b); x^a passes through, x^b is
    transformed elementwise by parameters computed from x^a by ``net``."""

    def __init__(self, mask: Any, net: nn.Module, out_per_dim: int) -> None:
        super().__init__()
        m = _check_mask(mask)
        self.mask: Tensor
        self.idx_a: Tensor
        self.idx_b: Tensor
        self.register_buffer("mask", m)
        self.register_buffer("idx_a", torch.nonzero(m).squeeze(1))
        self.register_buffer("idx_b", torch.nonzero(~m).squeeze(1))
        # position of each dimension in cat([x^a, x^b]): joining is one gather
        self.inv_perm: Tensor
        self.register_buffer("inv_perm", torch.argsort(torch.cat([self.idx_a, self.idx_b])))
        d = m.numel()
        # NICE's alternating partitions: views and one interleave instead of gathers
        self._parity: int | None = None
        if d % 2 == 0 and bool((m == (torch.arange(d) % 2 == 0)).all()):
            self._parity = 0
        elif d % 2 == 0 and bool((m == (torch.arange(d) % 2 == 1)).all()):
            self._parity = 1
        self.net = net
        self._out = out_per_dim

    def _params(self, xa: Tensor) -> Tensor:
        h = self.net(xa)
        nb = int(self.idx_b.numel())
        if h.shape != (xa.shape[0], self._out * nb):
            raise ValueError(f"the coupling network must map (N, {xa.shape[1]}) to (N, "
                             f"{self._out * nb}), got output shape {tuple(h.shape)}.")
        return h

    def _split(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if x.dim() != 2 or x.shape[1] != self.mask.numel():
            raise ValueError(f"expected x of shape (N, {self.mask.numel()}), got "
                             f"{tuple(x.shape)}.")
        if self._parity is not None:
            p = self._parity
            return x[:, p::2], x[:, 1 - p::2]
        return x[:, self.idx_a], x[:, self.idx_b]

    def _join(self, xa: Tensor, xb: Tensor) -> Tensor:
        if self._parity is not None:
            pair = (xa, xb) if self._parity == 0 else (xb, xa)
            return torch.stack(pair, 2).reshape(xa.shape[0], -1)
        return torch.cat([xa, xb], 1)[:, self.inv_perm]


class AdditiveCoupling(_Coupling):
    """NICE's additive coupling (Eq. 9.6): x^b ← x^b + m(x^a); log|det J| = 0.

    mask: (D,) bool, True on the conditioning half x^a; net: m, (N, |a|) → (N, |b|).
    """

    def __init__(self, mask: Any, net: nn.Module) -> None:
        super().__init__(mask, net, 1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        xa, xb = self._split(x)
        z = self._join(xa, xb + self._params(xa))
        return z, torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)

    def inverse(self, z: Tensor) -> Tensor:
        za, zb = self._split(z)
        return self._join(za, zb - self._params(za))


class AffineCoupling(_Coupling):
    """RealNVP's affine coupling: x^b ← x^b ⊙ exp(s(x^a)) + t(x^a); log|det J| = Σ s.

    net: (N, |a|) → (N, 2|b|), the raw scales then the shifts; s = ``scale_bound`` · tanh(raw /
    scale_bound) keeps the scales bounded (so exp(s) never under/overflows).
    """

    def __init__(self, mask: Any, net: nn.Module, scale_bound: float = 2.0) -> None:
        super().__init__(mask, net, 2)
        if not scale_bound > 0:
            raise ValueError(f"scale_bound must be > 0, got {scale_bound}.")
        self.scale_bound = float(scale_bound)

    def _st(self, xa: Tensor) -> tuple[Tensor, Tensor]:
        raw, t = self._params(xa).chunk(2, dim=1)
        return self.scale_bound * torch.tanh(raw / self.scale_bound), t

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        xa, xb = self._split(x)
        s, t = self._st(xa)
        return self._join(xa, xb * s.exp() + t), s.sum(1)

    def inverse(self, z: Tensor) -> Tensor:
        za, zb = self._split(z)
        s, t = self._st(za)
        return self._join(za, (zb - t) * (-s).exp())


class DiagonalScaling(Bijection):
    """NICE's diagonal scaling layer: z = x ⊙ exp(log_scale); log|det J| = Σ log_scale."""

    def __init__(self, dim: int, log_scale: Tensor | None = None, *,
                 dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        dim = check_positive_int(dim, "dim")
        init = torch.zeros(dim, dtype=dtype) if log_scale is None else \
            torch.as_tensor(log_scale, dtype=dtype).clone()
        if init.shape != (dim,):
            raise ValueError(f"log_scale must have shape ({dim},), got {tuple(init.shape)}.")
        check_finite(init, "log_scale")
        self.log_scale = nn.Parameter(init)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return x * self.log_scale.exp(), self.log_scale.sum().expand(x.shape[0])

    def inverse(self, z: Tensor) -> Tensor:
        return z * (-self.log_scale).exp()


class ElementwiseAffine(Bijection):
    """A fixed z = (x − shift)/scale (data preprocessing inside the flow, so densities stay in
    the data's units); log|det J| = −Σ log scale. A zero scale is not invertible."""

    def __init__(self, shift: Tensor | float, scale: Tensor | float) -> None:
        super().__init__()
        sc = torch.as_tensor(scale, dtype=torch.float64)
        if bool((sc <= 0).any()) or not bool(torch.isfinite(sc).all()):
            raise ValueError("scale must be finite and > 0 (a zero scale is not invertible).")
        self.shift: Tensor
        self.scale: Tensor
        self.register_buffer("shift", torch.as_tensor(shift, dtype=torch.float64))
        self.register_buffer("scale", sc)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        sc = self.scale.to(x.dtype).expand(x.shape[1])
        return (x - self.shift.to(x.dtype)) / sc, -sc.log().sum().expand(x.shape[0])

    def inverse(self, z: Tensor) -> Tensor:
        return z * self.scale.to(z.dtype) + self.shift.to(z.dtype)


# ---------------------------------------------------------------------------------- priors
class StandardLogistic(nn.Module):
    """Independent standard logistic latents (NICE's prior): log ψ′(z) = −softplus(z) −
    softplus(−z), summed over dimensions."""

    def log_prob(self, z: Tensor) -> Tensor:
        return -(nn.functional.softplus(z) + nn.functional.softplus(-z)).sum(1)

    def sample(self, n: int, dim: int, *, generator: torch.Generator | None = None,
               dtype: torch.dtype = torch.float32, device: Any = None) -> Tensor:
        u = torch.rand(n, dim, generator=generator, dtype=dtype, device=device)
        u = u.clamp(torch.finfo(dtype).tiny, 1 - torch.finfo(dtype).eps)
        return torch.log(u) - torch.log1p(-u)


class StandardNormal(nn.Module):
    """Independent standard normal latents: log ψ′(z) = −½ z² − ½ log 2π per dimension."""

    def log_prob(self, z: Tensor) -> Tensor:
        return -0.5 * (z**2).sum(1) - 0.5 * z.shape[1] * math.log(2 * math.pi)

    def sample(self, n: int, dim: int, *, generator: torch.Generator | None = None,
               dtype: torch.dtype = torch.float32, device: Any = None) -> Tensor:
        return torch.randn(n, dim, generator=generator, dtype=dtype, device=device)


PRIORS = {"logistic": StandardLogistic, "gaussian": StandardNormal}


class UniformDequantisation:
    """y = x + u, u ~ U[0, 1)^D for integer data x: a continuous density p̂ on the dequantised
    data bounds the discrete log-probability, E_u log p̂(x + u) ≤ log P̂(x) (Theis et al. 2016)."""

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return x + torch.rand(x.shape, generator=generator, dtype=x.dtype, device=x.device)


# ------------------------------------------------------------------------------------ flow
class Flow(nn.Module):
    """A flow density p̂(y) (Eq. 9.7): the bijection d (data → latent) and a factorial prior.

    bijection: a ``Bijection``; prior: ``"logistic"``, ``"gaussian"`` or a module with
    ``log_prob(z) -> (N,)`` and ``sample(n, dim, generator=...)``; dequantise: whether the
    training loss dequantises integer data (y + u).

    ``log_prob(y)`` (N,); ``loss(batch, generator)`` the negative mean log-likelihood (Eq. 9.8
    up to the data entropy); ``sample(n)``; ``bits_per_dim(y)``.
    """

    def __init__(self, bijection: Bijection, dim: int, prior: str | nn.Module = "logistic", *,
                 dequantise: bool = False) -> None:
        super().__init__()
        if not isinstance(bijection, Bijection):
            raise ValueError(f"bijection must be a Bijection, got {type(bijection).__name__}.")
        self.bijection = bijection
        self.dim = check_positive_int(dim, "dim")
        if isinstance(prior, str):
            prior = PRIORS[check_choice(prior, "prior", tuple(PRIORS))]()
        self.prior = prior
        self.dequantise = UniformDequantisation() if dequantise else None
        self.config: dict[str, Any] | None = None  # set by the builders: saving rebuilds

    # -- saving (genmodels.io), for flows made by ``nice`` / ``realnvp``
    def get_config(self) -> dict[str, Any]:
        if self.config is None:
            raise ValueError("only flows built by nice() or realnvp() can be saved by config; "
                             "save the state_dict of a hand-assembled flow yourself.")
        return dict(self.config)

    def state_tensors(self) -> dict[str, Tensor]:
        return {k: v.detach().contiguous() for k, v in self.state_dict().items()}

    @classmethod
    def from_saved(cls, config: dict[str, Any], tensors: dict[str, Tensor]) -> Flow:
        cfg = dict(config)
        builder = {"nice": nice, "realnvp": realnvp}[cfg.pop("builder")]
        pre = cfg.pop("preprocess")
        cfg["dtype"] = getattr(torch, cfg["dtype"])
        flow = builder(**cfg, preprocess=None if pre is None else ElementwiseAffine(*pre))
        flow.load_state_dict(tensors)
        return flow

    def log_prob(self, y: Tensor) -> Tensor:
        if y.dim() != 2 or y.shape[1] != self.dim:
            raise ValueError(f"y must have shape (N, {self.dim}), got {tuple(y.shape)}.")
        check_finite(y, "y")
        z, logdet = self.bijection(y)
        return self.prior.log_prob(z) + logdet  # type: ignore[operator]

    def loss(self, batch: Tensor, generator: torch.Generator | None = None) -> Tensor:
        y = self.dequantise(batch, generator) if self.dequantise is not None else batch
        return -self.log_prob(y).mean()

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None,
               dtype: torch.dtype | None = None) -> Tensor:
        p = next(self.parameters(), None)
        dt = dtype or (p.dtype if p is not None else torch.float32)
        dev = p.device if p is not None else None
        z = self.prior.sample(check_positive_int(n, "n"), self.dim,  # type: ignore[operator]
                              generator=generator, dtype=dt, device=dev)
        return self.bijection.inverse(z)

    @torch.no_grad()
    def bits_per_dim(self, y: Tensor, *, n_draws: int = 1,
                     generator: torch.Generator | None = None) -> Tensor:
        """−log₂ p̂(y)/D per datum (N,); with dequantisation, averaged over ``n_draws`` draws of
        u (an upper bound on the discrete model's bits/dim)."""
        if self.dequantise is None:
            return -self.log_prob(y) / (self.dim * math.log(2))
        lp = torch.stack([self.log_prob(self.dequantise(y, generator))
                          for _ in range(check_positive_int(n_draws, "n_draws"))]).mean(0)
        return -lp / (self.dim * math.log(2))


# ------------------------------------------------------------------------------- builders
def alternating_masks(dim: int, n: int) -> list[Tensor]:
    """n masks over dim ≥ 2 dimensions alternating between the odd and even indices (NICE)."""
    dim = check_positive_int(dim, "dim", minimum=2)
    even = torch.arange(dim) % 2 == 0
    return [(even if i % 2 == 0 else ~even).clone() for i in range(check_positive_int(n, "n"))]


def coupling_net(d_in: int, d_out: int, hidden: int, n_hidden: int, *,
                 dtype: torch.dtype = torch.float32, zero_last: bool = True) -> nn.Sequential:
    """A ReLU MLP (NICE's coupling function m). ``zero_last`` starts the coupling at the
    identity, which keeps the initial flow well conditioned."""
    sizes = [d_in] + [hidden] * n_hidden
    layers: list[nn.Module] = []
    for a, b in pairwise(sizes):
        layers += [nn.Linear(a, b, dtype=dtype), nn.ReLU()]
    last = nn.Linear(sizes[-1], d_out, dtype=dtype)
    if zero_last:
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
    layers.append(last)
    return nn.Sequential(*layers)


def nice(dim: int, *, n_couplings: int = 4, hidden: int = 256, n_hidden: int = 3,
         prior: str = "logistic", preprocess: ElementwiseAffine | None = None,
         dequantise: bool = False, dtype: torch.dtype = torch.float32,
         seed: int | None = None) -> Flow:
    """NICE (Dinh, Krueger & Bengio 2015): ``n_couplings`` additive couplings on alternating
    halves (at least 2, so every dimension is transformed), then a diagonal scaling layer."""
    n_couplings = check_positive_int(n_couplings, "n_couplings")
    if n_couplings < 2:
        raise ValueError("NICE needs n_couplings >= 2: with one coupling half the dimensions "
                         "are never transformed.")
    with torch.random.fork_rng(devices=[], enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(seed)
        layers: list[Bijection] = [] if preprocess is None else [preprocess]
        for m in alternating_masks(dim, n_couplings):
            na = int(m.sum())
            layers.append(AdditiveCoupling(m, coupling_net(na, dim - na, hidden, n_hidden,
                                                           dtype=dtype)))
        layers.append(DiagonalScaling(dim, dtype=dtype))
    flow = Flow(Composition(layers), dim, prior, dequantise=dequantise)
    flow.config = _builder_config("nice", dim, n_couplings, hidden, n_hidden, prior, preprocess,
                                  dequantise, dtype, seed)
    return flow


def realnvp(dim: int, *, n_couplings: int = 4, hidden: int = 256, n_hidden: int = 2,
            prior: str = "gaussian", preprocess: ElementwiseAffine | None = None,
            dequantise: bool = False, dtype: torch.dtype = torch.float32,
            seed: int | None = None) -> Flow:
    """RealNVP-style flow: affine couplings on alternating halves under a Gaussian prior."""
    n_couplings = check_positive_int(n_couplings, "n_couplings")
    if n_couplings < 2:
        raise ValueError("realnvp needs n_couplings >= 2 so every dimension is transformed.")
    with torch.random.fork_rng(devices=[], enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(seed)
        layers: list[Bijection] = [] if preprocess is None else [preprocess]
        for m in alternating_masks(dim, n_couplings):
            na = int(m.sum())
            layers.append(AffineCoupling(m, coupling_net(na, 2 * (dim - na), hidden, n_hidden,
                                                         dtype=dtype)))
    flow = Flow(Composition(layers), dim, prior, dequantise=dequantise)
    flow.config = _builder_config("realnvp", dim, n_couplings, hidden, n_hidden, prior,
                                  preprocess, dequantise, dtype, seed)
    return flow


def _builder_config(builder: str, dim: int, n_couplings: int, hidden: int, n_hidden: int,
                    prior: str, preprocess: ElementwiseAffine | None, dequantise: bool,
                    dtype: torch.dtype, seed: int | None) -> dict[str, Any]:
    pre = None if preprocess is None else [preprocess.shift.tolist(), preprocess.scale.tolist()]
    return {"builder": builder, "dim": dim, "n_couplings": n_couplings, "hidden": hidden,
            "n_hidden": n_hidden, "prior": prior, "preprocess": pre, "dequantise": dequantise,
            "dtype": str(dtype).removeprefix("torch."), "seed": seed}
