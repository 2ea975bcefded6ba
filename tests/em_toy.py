"""A deliberately small EM model used to test the engine itself (not a library model).

A 1-D mixture of K unit-variance Gaussians with unknown weights and means. Its E and M steps are
a few lines, so the engine's behaviour (monotonicity, batching, freezing, restarts, distributed
reduction) can be checked independently of any library model.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from genmodels.learning.em import EStep


class UnitVarianceMixture(nn.Module):
    def __init__(self, k: int = 2) -> None:
        super().__init__()
        self.register_buffer("weights", torch.full((k,), 1.0 / k))
        self.register_buffer("means", torch.linspace(-1.0, 1.0, k))

    def log_joint(self, y: Tensor) -> Tensor:  # (N,) -> (N, K)
        return (self.weights.log() - 0.5 * (y[:, None] - self.means) ** 2
                - 0.5 * math.log(2 * math.pi))

    def expected_stats(self, y: Tensor) -> EStep:
        lj = self.log_joint(y)
        ll = torch.logsumexp(lj, -1)
        r = (lj - ll[:, None]).exp()
        return EStep({"r": r.sum(0), "ry": r.T @ y}, ll.sum(), float(y.shape[0]))

    def maximize(self, stats: dict[str, Tensor], frozen: frozenset[str] = frozenset()) -> None:
        if "weights" not in frozen:
            self.weights = stats["r"] / stats["r"].sum()
        if "means" not in frozen:
            self.means = stats["ry"] / stats["r"]

    def initialize(self, y: Tensor, generator: torch.Generator) -> None:
        idx = torch.randperm(y.shape[0], generator=generator)[: self.means.shape[0]]
        self.means = y[idx].clone()
        self.weights = torch.full_like(self.weights, 1.0 / self.weights.shape[0])


def toy_data(n: int = 400, seed: int = 0) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    z = torch.rand(n, generator=g) < 0.3
    return torch.where(z, -2.0, 3.0) + torch.randn(n, generator=g)
