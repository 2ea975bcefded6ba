"""Critics for InfoNCE and contrastive predictive coding (book §10.1.2; van den Oord, Li &
Vinyals 2018; CATALOGUE I4).

InfoNCE models the energy *difference* h(y, z) = log p̂(y | z) − log p(y) + const(z) directly
(§10.1.2 (2)); a critic returns the (B, B) matrix of h over all pairings of a batch, [i, j] =
h(y_j, z_i), so that the diagonal holds the positives and each row's other entries its in-batch
negatives (``learning.nce.in_batch_info_nce_loss``).

* ``BilinearCritic``: h(y, z) = f(y)ᵀ W g(z) with optional encoders f, g (identity by default);
  W = I gives the dot-product critic.
* ``CPC``: h_s(y_{t+s}, y_{≤t}) = f(y_{t+s})ᵀ W_s c_t with c_t = RNN(f(y_1), …, f(y_t)) — a
  static encoder, an autoregressive context and one bilinear critic per step ahead s = 1..S
  (the book's f_s, f_RNN and W).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor, nn

from genmodels._validation import check_positive_int
from genmodels.learning.nce import in_batch_info_nce_loss

__all__ = ["CPC", "BilinearCritic", "CPCBounds"]


class BilinearCritic(nn.Module):
    """h(y, z) = f(y)ᵀ W g(z).

    dim_y, dim_z: the sizes of f(y) and g(z) (of y and z without encoders).
    encoder_y, encoder_z: optional modules f, g. dot: W fixed at I (needs dim_y = dim_z).
    W starts at zero (h ≡ 0: the bound starts at 0).
    """

    def __init__(self, dim_y: int, dim_z: int, *, encoder_y: nn.Module | None = None,
                 encoder_z: nn.Module | None = None, dot: bool = False,
                 dtype: torch.dtype | None = None) -> None:
        super().__init__()
        dy, dz = check_positive_int(dim_y, "dim_y"), check_positive_int(dim_z, "dim_z")
        if dot and dy != dz:
            raise ValueError(f"a dot-product critic needs dim_y = dim_z, got {dy} and {dz}.")
        self.encoder_y = encoder_y
        self.encoder_z = encoder_z
        self.W = None if dot else nn.Parameter(torch.zeros(dy, dz, dtype=dtype))

    def scores(self, y: Tensor, z: Tensor) -> Tensor:
        """[i, j] = h(y_j, z_i). y: (*batch, B, Dy), z: (*batch, B, Dz) → (*batch, B, B)."""
        fy = y if self.encoder_y is None else self.encoder_y(y)
        gz = z if self.encoder_z is None else self.encoder_z(z)
        if self.W is not None:
            gz = gz @ self.W.mT  # (.., B, Dy): W g(z_i)
        return gz @ fy.mT


class CPCBounds(NamedTuple):
    """Per step ahead s = 1..S: ``lower_bound`` log B − L_s on I(y_{t+s}; y_{≤t}) (nats) and
    ``loss`` L_s, averaged over t; B the batch of sequences (the number of candidates)."""

    lower_bound: Tensor
    loss: Tensor


class CPC(nn.Module):
    """Contrastive predictive coding: an encoder f (D → Z, linear by default), a GRU context
    (Z → C) and bilinear critics W_s (Z × C) for s = 1..``steps`` (book §10.1.2 (4)).

    The candidates of a (sequence b, time t) are the encodings f(y_{t+s}) of all sequences in
    the batch at the same time: one positive (b's own) and B − 1 negatives from the marginal.
    Data: (N, T, D) sequences (rows for the trainer); ``loss`` is the InfoNCE loss averaged over
    steps and times.
    """

    def __init__(self, dim: int, code_dim: int, context_dim: int, steps: int = 1, *,
                 encoder: nn.Module | None = None, dtype: torch.dtype | None = None,
                 seed: int = 0) -> None:
        super().__init__()
        d = check_positive_int(dim, "dim")
        self.code_dim = check_positive_int(code_dim, "code_dim")
        self.context_dim = check_positive_int(context_dim, "context_dim")
        self.steps = check_positive_int(steps, "steps")
        dt = dtype or torch.get_default_dtype()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.encoder = encoder or nn.Linear(d, self.code_dim, dtype=dt)
            self.context = nn.GRU(self.code_dim, self.context_dim, batch_first=True, dtype=dt)
        self.W = nn.Parameter(torch.zeros(self.steps, self.code_dim, self.context_dim,
                                          dtype=dt))

    def encode(self, y: Tensor) -> tuple[Tensor, Tensor]:
        """(codes f(y_t) (B, T, Z), contexts c_t (B, T, C)). y: (B, T, D)."""
        if y.dim() != 3:
            raise ValueError(f"CPC takes sequences (B, T, D), got shape {tuple(y.shape)}.")
        z = self.encoder(y)
        c, _ = self.context(z)
        return z, c

    def step_losses(self, y: Tensor) -> Tensor:
        """L_s, the in-batch InfoNCE loss of each step ahead, (S,). y: (B, T, D), T > S."""
        B, T = y.shape[0], y.shape[1]
        if T <= self.steps:
            raise ValueError(f"sequences of length {T} are too short for {self.steps} steps "
                             "ahead (need T > steps).")
        if B < 2:
            raise ValueError("CPC needs at least 2 sequences per batch (the negatives).")
        z, c = self.encode(y)
        losses = []
        for s in range(1, self.steps + 1):
            pred = c[:, : T - s] @ self.W[s - 1].mT  # (B, T−s, Z): W_s c_t
            target = z[:, s:]  # (B, T−s, Z): f(y_{t+s})
            scores = torch.einsum("itz,jtz->tij", pred, target)  # (T−s, B, B), [t, i, j]
            losses.append(in_batch_info_nce_loss(scores))
        return torch.stack(losses)

    def loss(self, batch: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return self.step_losses(batch).mean()

    @torch.no_grad()
    def bounds(self, y: Tensor) -> CPCBounds:
        """log B − L_s per step on a batch of sequences y (B, T, D)."""
        losses = self.step_losses(y)
        return CPCBounds(math.log(y.shape[0]) - losses, losses)
