"""Denoising networks for diffusion models: ``net(x_l, t) -> output`` with t = l/L ∈ (0, 1].

* ``MLPDenoiser``: vector data (N, D); the time enters through a sinusoidal embedding
  (Vaswani et al. 2017, as in Ho et al. 2020) added to every hidden layer.
* ``ConvDenoiser``: small images (N, H·W) such as digits' 8×8, a few 3×3 convolutions with
  residual connections and the same time embedding per channel.
* ``LinearDenoiser``: one affine map per level, out = W_l x + b_l — the form of the optimal
  denoiser of Gaussian data, under which the generative chain stays linear-Gaussian and its
  marginal p̂(x_0) is exact (the oracle of the bound contract).

Any ``nn.Module`` with this call signature works as a denoiser; these two are savable.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from genmodels._validation import check_positive_int
from genmodels.io import SavableModule

__all__ = ["ConvDenoiser", "LinearDenoiser", "MLPDenoiser", "sinusoidal_embedding"]


def sinusoidal_embedding(t: Tensor, dim: int, max_period: float = 10_000.0) -> Tensor:
    """(N,) times in [0, 1] → (N, dim) features [sin(1000 t ω_k), cos(1000 t ω_k)], ω_k
    geometric from 1 to 1/max_period (the 1000 puts t on DDPM's integer-timestep scale)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=t.dtype,
                                                           device=t.device) / max(half, 1))
    arg = 1000.0 * t[:, None] * freqs
    emb = torch.cat([arg.sin(), arg.cos()], 1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], 1)
    return emb


class MLPDenoiser(SavableModule):
    """h_0 = W_in x + τ(t); h_k = h_{k−1} + W_k SiLU(h_{k−1} + τ(t)); out = W_out SiLU(h_K),
    with τ(t) an MLP of the sinusoidal embedding of t.

    dim: D; hidden: width; n_layers: residual blocks; time_dim: embedding width.
    """

    def __init__(self, dim: int, hidden: int = 128, n_layers: int = 3, time_dim: int = 32, *,
                 dtype: Any = torch.float32, seed: int | None = None) -> None:
        super().__init__()
        dim, hidden = check_positive_int(dim, "dim"), check_positive_int(hidden, "hidden")
        n_layers, time_dim = check_positive_int(n_layers, "n_layers"), \
            check_positive_int(time_dim, "time_dim", minimum=2)
        dt = getattr(torch, dtype) if isinstance(dtype, str) else dtype
        with torch.random.fork_rng(devices=[], enabled=seed is not None):
            if seed is not None:
                torch.manual_seed(seed)
            self.time = nn.Sequential(nn.Linear(time_dim, hidden, dtype=dt), nn.SiLU(),
                                      nn.Linear(hidden, hidden, dtype=dt))
            self.inp = nn.Linear(dim, hidden, dtype=dt)
            self.blocks = nn.ModuleList(nn.Linear(hidden, hidden, dtype=dt)
                                        for _ in range(n_layers))
            self.out = nn.Linear(hidden, dim, dtype=dt)
        self.time_dim, self.hidden = time_dim, hidden
        self.config = {"dim": dim, "hidden": hidden, "n_layers": n_layers,
                       "time_dim": time_dim, "dtype": str(dt).removeprefix("torch."),
                       "seed": seed}

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        temb = self.time(sinusoidal_embedding(t.to(x.dtype), self.time_dim))  # (N, H)
        h = self.inp(x) + temb
        for block in self.blocks:
            h = h + block(nn.functional.silu(h + temb))
        return self.out(nn.functional.silu(h))


class ConvDenoiser(SavableModule):
    """A small residual conv net for (N, H·W) images (default 8×8): 3×3 convolutions with
    ``channels`` channels, GroupNorm and SiLU, the time embedding added per channel."""

    def __init__(self, image_shape: tuple[int, int] | list[int] = (8, 8), channels: int = 32,
                 n_blocks: int = 3, time_dim: int = 32, *, dtype: Any = torch.float32,
                 seed: int | None = None) -> None:
        super().__init__()
        h, w = (check_positive_int(v, "image_shape") for v in image_shape)
        channels = check_positive_int(channels, "channels")
        n_blocks = check_positive_int(n_blocks, "n_blocks")
        time_dim = check_positive_int(time_dim, "time_dim", minimum=2)
        dt = getattr(torch, dtype) if isinstance(dtype, str) else dtype
        groups = 8 if channels % 8 == 0 else 1
        with torch.random.fork_rng(devices=[], enabled=seed is not None):
            if seed is not None:
                torch.manual_seed(seed)
            self.time = nn.Sequential(nn.Linear(time_dim, channels, dtype=dt), nn.SiLU(),
                                      nn.Linear(channels, n_blocks * channels, dtype=dt))
            self.inp = nn.Conv2d(1, channels, 3, padding=1, dtype=dt)
            self.norms = nn.ModuleList(nn.GroupNorm(groups, channels, dtype=dt)
                                       for _ in range(n_blocks))
            self.convs = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1, dtype=dt)
                                       for _ in range(n_blocks))
            self.out = nn.Conv2d(channels, 1, 3, padding=1, dtype=dt)
        self.image_shape, self.channels, self.time_dim = (h, w), channels, time_dim
        self.config = {"image_shape": [h, w], "channels": channels, "n_blocks": n_blocks,
                       "time_dim": time_dim, "dtype": str(dt).removeprefix("torch."),
                       "seed": seed}

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        n = x.shape[0]
        img = x.reshape(n, 1, *self.image_shape)
        temb = self.time(sinusoidal_embedding(t.to(x.dtype), self.time_dim))
        temb = temb.view(n, -1, self.channels, 1, 1)
        h = self.inp(img)
        for k, (norm, conv) in enumerate(zip(self.norms, self.convs, strict=True)):
            h = h + conv(nn.functional.silu(norm(h) + temb[:, k]))
        return self.out(nn.functional.silu(h)).reshape(x.shape)


class LinearDenoiser(SavableModule):
    """out = W_l x + b_l at level l = round(t·L): one affine map per level of an L-level chain.

    dim: D; levels: L. weight (L, D, D), bias (L, D), drawn N(0, ``init_scale``²) (0: start at
    zero). For vector data (N, D); the level is read off t, which must be on the grid l/L.
    """

    def __init__(self, dim: int, levels: int, *, init_scale: float = 0.0,
                 dtype: Any = torch.float32, seed: int | None = None) -> None:
        super().__init__()
        dim, levels = check_positive_int(dim, "dim"), check_positive_int(levels, "levels")
        dt = getattr(torch, dtype) if isinstance(dtype, str) else dtype
        g = torch.Generator().manual_seed(seed) if seed is not None else None
        self.weight = nn.Parameter(init_scale * torch.randn(levels, dim, dim, generator=g,
                                                            dtype=dt))
        self.bias = nn.Parameter(init_scale * torch.randn(levels, dim, generator=g, dtype=dt))
        self.levels = levels
        self.config = {"dim": dim, "levels": levels, "init_scale": init_scale,
                       "dtype": str(dt).removeprefix("torch."), "seed": seed}

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        l = (t * self.levels).round().long().clamp(1, self.levels) - 1  # (N,) indices 0..L−1
        return torch.einsum("nij,nj->ni", self.weight[l], x) + self.bias[l]
