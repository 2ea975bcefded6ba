"""The emission interface shared by every model with a discrete latent state.

A mixture (§2.1.1) and a hidden Markov model (§2.2.1) differ only in the prior over the
discrete source X̂ ∈ {1..K}: i.i.d. categorical versus a Markov chain. Both need the same thing
from the emission p̂(y | x = k; θ_k): its log-density under every state, and an M step from
posterior-weighted sufficient statistics. So that one implementation of each emission family
serves both, an emission implements this protocol; the inference kernels only ever see the
(N, K) table of log-likelihoods (STYLE.md §1).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

Stats = dict[str, Tensor]


@runtime_checkable
class Emission(Protocol):
    """K conditional distributions p̂(y | x = k; θ_k), k = 1..K, over observations y ∈ R^D
    (or a discrete space)."""

    @property
    def num_states(self) -> int:
        """K."""
        ...

    def log_likelihood(self, y: Tensor) -> Tensor:
        """log p̂(y_n | x = k) for every datum and state. y: (N, D) → (N, K)."""
        ...

    def expected_stats(self, y: Tensor, weights: Tensor) -> Stats:
        """Posterior-weighted sufficient statistics, additive over data.

        y: (N, D); weights: (N, K) with weights[n, k] = p̂(x_n = k | y; θ_old) (the
        responsibilities, Eq. 2.6; or the smoothed marginals γ of an HMM).
        """
        ...

    def maximize(self, stats: Stats, frozen: frozenset[str] = frozenset()) -> None:
        """M step: set θ_k from summed statistics, leaving ``frozen`` parameters unchanged."""
        ...

    def sample(self, states: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Draw y ~ p̂(y | x = states). states: (*,) long → (*, D)."""
        ...

    def num_parameters(self) -> int:
        """Free parameters (for BIC/AIC)."""
        ...
