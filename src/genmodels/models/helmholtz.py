"""The Helmholtz machine: a layered sigmoid belief net with a bottom-up recognition model
(book §3.3, heading only; CATALOGUE C6 — filled from Dayan, Hinton, Neal & Zemel 1995, "The
Helmholtz machine", Neural Computation 7, and Hinton, Dayan, Frey & Neal 1995, "The wake-sleep
algorithm for unsupervised neural networks", Science 268).

Layers ``layer_sizes = [D, K_1, ..., K_L]``: the data y = h_0 ∈ {0,1}^D at the bottom, binary
hidden layers h_1 … h_L above it. The *generative* model is a directed chain from the top down
(a sigmoid belief net, Neal 1992),

    p̂(h_L) = Π_k Bern(h_{L,k}; σ(b_L)),
    p̂(h_{l−1} | h_l) = Π_k Bern(h_{l−1,k}; σ(W_l h_l + b_{l−1})),      l = L, …, 1,

so log p̂(y, h) = log p̂(h_L) + Σ_l log p̂(h_{l−1} | h_l). The *recognition* model p̌ (the book's
check, B:1338) runs the other way, bottom up, with its own weights,

    p̌(h_l | h_{l−1}) = Π_k Bern(h_{l,k}; σ(R_l h_{l−1} + r_l)),           l = 1, …, L,

a factorial distribution per layer given the one below — the "recognition distribution" that
the book credits to this model (B:1835). Any p̌ gives the evidence lower bound
(the negative free energy; Eqs 6.5–6.6)

    ELBO(y) = E_{p̌(h|y)}[log p̂(y, h) − log p̌(h | y)] = log p̂(y) − KL{p̌(h|y) ‖ p̂(h|y)}.

Evaluation, three ways, each returned with what it is:

* ``log_marginal(y)`` — exact, by summing the layers out top down on enumerated
  configurations (cost Σ_l 2^{K_l + K_{l−1}}, so for layers of up to ~10 units);
* ``exact_elbo(y)`` and ``posterior_kl(y)`` — exact, by enumerating every hidden configuration
  (2^{ΣK} of them);
* ``importance_log_marginal(y, S)`` — log (1/S) Σ_s p̂(y, h_s)/p̌(h_s | y), h_s ~ p̌(h | y): the
  log of an unbiased estimate of p̂(y) (so a stochastic lower bound in expectation, Burda et
  al. 2016), with its delta-method standard error; ``elbo(y, S)`` likewise.

Learning (wake–sleep, reweighted wake–sleep) lives in ``genmodels.learning.wake_sleep``.
Shapes: N data, D visible units, K_l units in layer l, S samples; samples of the hidden layers
are lists ``hs = [h_1, …, h_L]`` with leading dims (S, N) or (N,).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genmodels._validation import check_positive_int, make_generator, resolve_dtype
from genmodels.io import SavableModule

__all__ = ["HelmholtzMachine", "MonteCarloEstimate", "bernoulli_log_prob", "binary_configurations"]

#: The largest table of configurations the exact methods will build (elements).
MAX_ENUMERATION = 2**24


class MonteCarloEstimate(NamedTuple):
    """A Monte Carlo estimate per datum with its standard error.

    value: (N,) the estimate.  stderr: (N,) its standard error (delta method for a log of a
    mean).  n_samples: S, the draws per datum.
    """

    value: Tensor
    stderr: Tensor
    n_samples: int

    def mean(self) -> tuple[float, float]:
        """The mean over data and its standard error (independent draws per datum)."""
        n = self.value.numel()
        return float(self.value.mean()), float(self.stderr.pow(2).sum().sqrt() / n)


def bernoulli_log_prob(x: Tensor, logits: Tensor) -> Tensor:
    """Σ_k log Bern(x_k; σ(η_k)) = Σ_k [x_k η_k − log(1 + e^{η_k})], summed over the last dim."""
    return (x * logits - F.softplus(logits)).sum(-1)  # broadcasts x against the logits


def binary_configurations(K: int, dtype: torch.dtype = torch.float64,
                          device: torch.device | str | None = None) -> Tensor:
    """All 2^K binary vectors, (2^K, K), bit k of row i = (i >> k) & 1."""
    codes = torch.arange(2**K, device=device)
    return ((codes[:, None] >> torch.arange(K, device=device)) & 1).to(dtype)


class HelmholtzMachine(SavableModule):
    """A sigmoid belief net p̂(y, h) with a bottom-up recognition model p̌(h | y).

    layer_sizes: [D, K_1, …, K_L], the data first (L ≥ 1).
    init_scale: standard deviation of the initial weights (biases start at zero).
    seed: seeds the initial weights.  dtype: parameter dtype (float64 by default).

    Parameters: ``top_bias`` b_L (K_L,); ``gen_weights[l-1]`` W_l (K_{l−1}, K_l) and
    ``gen_biases[l-1]`` b_{l−1} (K_{l−1},); ``rec_weights[l-1]`` R_l (K_l, K_{l−1}) and
    ``rec_biases[l-1]`` r_l (K_l,), for l = 1 … L.
    """

    def __init__(self, layer_sizes: list[int], *, init_scale: float = 0.01, seed: int = 0,
                 dtype: str | torch.dtype = "float64") -> None:
        super().__init__()
        if not isinstance(layer_sizes, (list, tuple)) or len(layer_sizes) < 2:
            raise ValueError("layer_sizes must list the visible size and at least one hidden "
                             f"layer size, e.g. [D, K1], got {layer_sizes!r}.")
        sizes = [check_positive_int(k, f"layer_sizes[{i}]") for i, k in enumerate(layer_sizes)]
        dt = resolve_dtype(dtype)
        self.config = {"layer_sizes": sizes, "init_scale": float(init_scale), "seed": int(seed),
                       "dtype": str(dt).removeprefix("torch.")}
        self.sizes = sizes
        g = make_generator(seed)

        def weight(rows: int, cols: int) -> nn.Parameter:
            return nn.Parameter(init_scale * torch.randn(rows, cols, generator=g, dtype=dt))

        L = len(sizes) - 1
        self.top_bias = nn.Parameter(torch.zeros(sizes[L], dtype=dt))
        self.gen_weights = nn.ParameterList([weight(sizes[l - 1], sizes[l])
                                             for l in range(1, L + 1)])
        self.gen_biases = nn.ParameterList([nn.Parameter(torch.zeros(sizes[l - 1], dtype=dt))
                                            for l in range(1, L + 1)])
        self.rec_weights = nn.ParameterList([weight(sizes[l], sizes[l - 1])
                                             for l in range(1, L + 1)])
        self.rec_biases = nn.ParameterList([nn.Parameter(torch.zeros(sizes[l], dtype=dt))
                                            for l in range(1, L + 1)])

    # ------------------------------------------------------------------ structure
    @property
    def n_layers(self) -> int:
        """L, the number of hidden layers."""
        return len(self.sizes) - 1

    def generative_parameters(self) -> list[nn.Parameter]:
        """θ: the top bias and the top-down weights and biases."""
        return [self.top_bias, *self.gen_weights, *self.gen_biases]

    def recognition_parameters(self) -> list[nn.Parameter]:
        """φ: the bottom-up weights and biases."""
        return [*self.rec_weights, *self.rec_biases]

    def generative_logits(self, l: int, h: Tensor) -> Tensor:
        """Logits of p̂(h_{l−1} | h_l): W_l h_l + b_{l−1}; h (*, K_l) → (*, K_{l−1})."""
        return h @ self.gen_weights[l - 1].T + self.gen_biases[l - 1]

    def recognition_logits(self, l: int, h_below: Tensor) -> Tensor:
        """Logits of p̌(h_l | h_{l−1}): R_l h_{l−1} + r_l; (*, K_{l−1}) → (*, K_l)."""
        return h_below @ self.rec_weights[l - 1].T + self.rec_biases[l - 1]

    def _check_layers(self, y: Tensor, hs: list[Tensor]) -> None:
        if y.shape[-1] != self.sizes[0]:
            raise ValueError(f"y has {y.shape[-1]} units in its last dimension but the model "
                             f"has D = {self.sizes[0]} visible units.")
        if len(hs) != self.n_layers:
            raise ValueError(f"hs must hold {self.n_layers} hidden layers, got {len(hs)}.")
        for l, h in enumerate(hs, start=1):
            if h.shape[-1] != self.sizes[l]:
                raise ValueError(f"hs[{l - 1}] has {h.shape[-1]} units but layer {l} has "
                                 f"{self.sizes[l]}.")

    @torch.no_grad()
    def set_base_rates(self, data: Tensor, *, floor: float = 0.01) -> HelmholtzMachine:
        """Set the visible biases b_0 to the logits of the data's pixel means (clamped to
        [floor, 1 − floor]), the usual start (Hinton 2010 §8.1): with small weights the model's
        visible marginal is then the independent-pixels fit. data: (N, D). Returns self."""
        if data.dim() != 2 or data.shape[1] != self.sizes[0]:
            raise ValueError(f"data must be (N, {self.sizes[0]}), got {tuple(data.shape)}.")
        p = data.to(self.top_bias.dtype).mean(0).clamp(floor, 1 - floor)
        self.gen_biases[0].copy_(torch.logit(p))
        return self

    # ------------------------------------------------------------------ densities
    def log_prior(self, h_top: Tensor) -> Tensor:
        """log p̂(h_L), (*, K_L) → (*)."""
        return bernoulli_log_prob(h_top, self.top_bias.expand_as(h_top))

    def log_joint(self, y: Tensor, hs: list[Tensor]) -> Tensor:
        """log p̂(y, h_1, …, h_L) = log p̂(h_L) + Σ_l log p̂(h_{l−1} | h_l); broadcasts → (*)."""
        self._check_layers(y, hs)
        below = [y, *hs[:-1]]
        out = self.log_prior(hs[-1])
        for l in range(1, self.n_layers + 1):
            out = out + bernoulli_log_prob(below[l - 1], self.generative_logits(l, hs[l - 1]))
        return out

    def log_recognition(self, y: Tensor, hs: list[Tensor]) -> Tensor:
        """log p̌(h_1, …, h_L | y) = Σ_l log p̌(h_l | h_{l−1}); broadcasts → (*)."""
        self._check_layers(y, hs)
        below = [y, *hs[:-1]]
        out = torch.zeros((), dtype=y.dtype, device=y.device)
        for l in range(1, self.n_layers + 1):
            out = out + bernoulli_log_prob(hs[l - 1], self.recognition_logits(l, below[l - 1]))
        return out

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def recognize(self, y: Tensor, n_samples: int | None = None,
                  generator: torch.Generator | None = None) -> list[Tensor]:
        """Draw h ~ p̌(h | y) by an upward pass. y (N, D) → [h_1, …, h_L], each (N, K_l), or
        (S, N, K_l) with ``n_samples = S``."""
        h = y if n_samples is None else y.expand(check_positive_int(n_samples, "n_samples"),
                                                 *y.shape)
        hs = []
        for l in range(1, self.n_layers + 1):
            h = torch.bernoulli(torch.sigmoid(self.recognition_logits(l, h)), generator=generator)
            hs.append(h)
        return hs

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None
               ) -> tuple[list[Tensor], Tensor]:
        """Ancestral samples ("dreams") from p̂: ([h_1, …, h_L] each (n, K_l), y (n, D))."""
        n = check_positive_int(n, "n")
        h = torch.bernoulli(torch.sigmoid(self.top_bias).expand(n, -1), generator=generator)
        hs = [h]
        for l in range(self.n_layers, 0, -1):
            h = torch.bernoulli(torch.sigmoid(self.generative_logits(l, h)), generator=generator)
            hs.insert(0, h)
        return hs[1:], hs[0]

    # ------------------------------------------------------------------ evaluation
    def _check_enumerable(self, cells: int, what: str) -> None:
        if cells > MAX_ENUMERATION:
            raise ValueError(f"{what} would enumerate {cells} configurations (more than "
                             f"{MAX_ENUMERATION}); use importance_log_marginal or elbo, which "
                             "sample, for a model this size.")

    def log_marginal(self, y: Tensor) -> Tensor:
        """The exact log p̂(y), (*, D) → (*), summing the layers out from the top down:
        log m_L(h_L) = log p̂(h_L); log m_{l−1}(h_{l−1}) = logsumexp_{h_l}[log m_l(h_l) +
        log p̂(h_{l−1} | h_l)]; log p̂(y) = logsumexp_{h_1}[log m_1(h_1) + log p̂(y | h_1)]."""
        L, dt, dev = self.n_layers, self.top_bias.dtype, self.top_bias.device
        for l in range(2, L + 1):
            self._check_enumerable(2 ** (self.sizes[l] + self.sizes[l - 1]), "log_marginal")
        self._check_enumerable((y.numel() // max(y.shape[-1], 1)) * 2 ** self.sizes[1],
                               "log_marginal")
        top = binary_configurations(self.sizes[L], dt, dev)
        log_m = self.log_prior(top)  # (2^{K_L},)
        upper = top
        for l in range(L, 1, -1):
            lower = binary_configurations(self.sizes[l - 1], dt, dev)
            logits = self.generative_logits(l, upper)  # (2^{K_l}, K_{l−1})
            cond = bernoulli_log_prob(lower[None], logits[:, None])  # (2^{K_l}, 2^{K_{l−1}})
            log_m = torch.logsumexp(log_m[:, None] + cond, dim=0)
            upper = lower
        emis = bernoulli_log_prob(y[..., None, :], self.generative_logits(1, upper))  # (*, 2^K1)
        return torch.logsumexp(log_m + emis, dim=-1)

    def _all_hidden(self) -> list[Tensor]:
        total = sum(self.sizes[1:])
        self._check_enumerable(2**total, "exact_elbo")
        allh = binary_configurations(total, self.top_bias.dtype, self.top_bias.device)
        return list(torch.split(allh, self.sizes[1:], dim=1))  # each (2^{ΣK}, K_l)

    def exact_elbo(self, y: Tensor) -> Tensor:
        """Σ_h p̌(h|y)[log p̂(y, h) − log p̌(h|y)] by enumerating all 2^{ΣK} h; (N, D) → (N,)."""
        hs = [h[None] for h in self._all_hidden()]
        self._check_enumerable(y.shape[0] * hs[0].shape[1], "exact_elbo")
        lp = self.log_joint(y[:, None], hs)  # (N, M)
        lq = self.log_recognition(y[:, None], hs)
        q = lq.exp()
        return (q * torch.where(q > 0, lp - lq, torch.zeros_like(lp))).sum(1)

    def posterior_kl(self, y: Tensor) -> Tensor:
        """KL{p̌(h|y) ‖ p̂(h|y)} = log p̂(y) − ELBO(y) ≥ 0, exactly; (N, D) → (N,)."""
        return self.log_marginal(y) - self.exact_elbo(y)

    @torch.no_grad()
    def _log_weights(self, y: Tensor, n_samples: int, generator: torch.Generator | None
                     ) -> Tensor:
        hs = self.recognize(y, n_samples, generator)
        return self.log_joint(y, hs) - self.log_recognition(y, hs)  # (S, N)

    def importance_log_marginal(self, y: Tensor, n_samples: int = 1000,
                                generator: torch.Generator | None = None) -> MonteCarloEstimate:
        """log (1/S) Σ_s w_s, w_s = p̂(y, h_s)/p̌(h_s|y), h_s ~ p̌(h|y), per datum (N,).

        Its standard error is the delta method's sd(w)/(√S · mean(w)), computed on the
        max-shifted weights. Unbiased for p̂(y), hence biased low for log p̂(y) by about
        stderr²/2 (Jensen), negligible once the standard error is small.
        """
        S = check_positive_int(n_samples, "n_samples", minimum=2)
        logw = self._log_weights(y, S, generator)
        m = logw.max(0).values
        w = (logw - m).exp()
        value = m + w.mean(0).log()
        stderr = w.std(0) / (math.sqrt(S) * w.mean(0))
        return MonteCarloEstimate(value, stderr, S)

    def elbo(self, y: Tensor, n_samples: int = 100,
             generator: torch.Generator | None = None) -> MonteCarloEstimate:
        """The Monte Carlo ELBO (1/S) Σ_s log w_s per datum, (N,), with its standard error."""
        S = check_positive_int(n_samples, "n_samples", minimum=2)
        logw = self._log_weights(y, S, generator)
        return MonteCarloEstimate(logw.mean(0), logw.std(0) / math.sqrt(S), S)
