"""Recurrent harmoniums: the recurrent temporal RBM and the recurrent EFH (book §3.4, §3.4.1,
§3.4.2 and §10.2.4, headings only; CATALOGUE C7, I10 — filled from Sutskever, Hinton & Taylor
2008, "The recurrent temporal restricted Boltzmann machine", NeurIPS, and Makin, Dichter &
Sabes 2015, "Learning to estimate dynamical state with probabilistic population codes", PLoS
Comput Biol 11(11)). Both reuse one harmonium (``models.harmonium``) at every time step, and
both train through ``learning.trainer`` with the harmonium issue's Boltzmann surrogate and
CD-k negative phase (``learning.contrastive``).

**TRBM** (Sutskever & Hinton 2007) shifts the hidden biases by the previous *sampled* hidden
state and learns with the states drawn and held fixed (``TRBM``).

**RTRBM.** At step t a harmonium over (h_t, v_t) whose hidden natural parameters are shifted by
the previous step's *mean-field* hidden expectations r_{t−1}:

    p̂(v_t, h_t | r_{t−1}) ∝ exp{−E(h_t, v_t) + h_tᵀ W′ r_{t−1}},   (r_0's term: h_tᵀ u)
    r_t = E[h_t | v_t, r_{t−1}] = σ(W v_t + b_h + W′ r_{t−1})                (r_1: + u)

so p̂(v_{1:T}) = Π_t p̂(v_t | r_{t−1}) with r a deterministic function of the past frames. The
gradient of −log p̂(v_t | r_{t−1}) has a per-step Boltzmann part (estimated by CD-k, the
negatives drawn from the step-t harmonium) and a part through r_{t−1}, which depends on every
earlier frame and on the parameters: backpropagation through time. Both are the gradient of
one surrogate,

    L = (1/T) Σ_t [F_t(v_t) − F_t(ṽ_t)],      F_t(v) = F(v) with η shifted by W′ r_{t−1},

with the negatives ṽ_t held fixed and r left differentiable: ∂L/∂o_t = −(σ(η_t(v_t)) −
σ(η_t(ṽ_t))) is the CD estimate of the gradient with respect to the step's hidden bias shift
o_t = W′ r_{t−1}, and autograd carries it back through the recursion for r — Sutskever et al.'s
BPTT. With W′ = 0 and u = 0 the model is T independent copies of the harmonium.

**Recurrent EFH (rEFH).** Makin et al.'s alternative without BPTT: one harmonium whose visible
layer at step t is the observation *and* the previous hidden expectations, [y_t; r_{t−1}], the
recurrent part as Bernoulli-mean units (a ``StackedLayer``); r_t = E[x_t | y_t, r_{t−1}] is the
filter's state, and learning is CD on the vectors [y_t; r_{t−1}] that the current model's own
filter produces (no gradient through r).

Shapes: B sequences, T steps, D visible units, K hidden units; sequences are (B, T, D).
"""

from __future__ import annotations

from typing import Any, cast

import torch
from torch import Tensor, nn

from genmodels._validation import check_positive_int, resolve_dtype
from genmodels.families.base import ExponentialFamily
from genmodels.io import SavableModule
from genmodels.learning.contrastive import CDNegative, NegativeSamples, boltzmann_loss
from genmodels.models.harmonium import BernoulliLayer, Harmonium, Layer, make_layer

__all__ = ["RTRBM", "TRBM", "RecurrentEFH", "StackedLayer", "predict_next_frames"]


def _check_sequences(V: Tensor, D: int, name: str = "sequences") -> None:
    if V.dim() != 3 or V.shape[-1] != D:
        raise ValueError(f"{name} must be (B, T, {D}), got shape {tuple(V.shape)}.")
    if V.shape[1] < 1:
        raise ValueError(f"{name} must have at least one time step.")


class _ShiftedHarmonium:
    """A harmonium whose hidden natural parameters are shifted by ``offset`` (*, S_x) — the
    per-step harmonium of a recurrent model. It offers what ``learning.contrastive`` needs
    (free energies, the two conditional samplers), so CD and the Boltzmann surrogate run on it
    unchanged. (The harmonium's API has no hidden-bias shift; this is that small addition.)"""

    def __init__(self, rbm: Harmonium, offset: Tensor) -> None:
        self.rbm, self.offset = rbm, offset
        self.hidden, self.visible = rbm.hidden, rbm.visible

    @property
    def weight(self) -> Tensor:
        return self.rbm.weight

    def hidden_natural(self, y: Tensor) -> Tensor:
        """η(y) + offset. States stacked along dim 0 in k blocks shaped like the offset (the
        [data; negatives] batch ``boltzmann_loss`` evaluates in one pass) take it tiled."""
        off = self.offset
        if off.dim() == y.dim() and y.shape[0] != off.shape[0] and off.shape[0] > 0 \
                and y.shape[0] % off.shape[0] == 0:
            off = off.repeat(y.shape[0] // off.shape[0], *([1] * (off.dim() - 1)))
        return self.rbm.hidden_natural(y) + off

    def visible_natural(self, x: Tensor) -> Tensor:
        return self.rbm.visible_natural(x)

    def free_energy(self, y: Tensor) -> Tensor:
        """F(y) = −b_yᵀU(y) − log k(y) − A(η(y) + offset) (B:1056 with the shifted bias)."""
        return self.rbm.visible.self_energy(y) - self.rbm.hidden.log_partition(
            self.hidden_natural(y))

    def layer_free_energy(self, layer: str, states: Tensor) -> Tensor:
        if layer != "visible":
            raise ValueError("a shifted harmonium's negative phase uses visible states.")
        return self.free_energy(states)

    def sample_hidden(self, y: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return self.rbm.hidden.sample(self.hidden_natural(y), generator)

    def sample_visible(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return self.rbm.sample_visible(x, generator)


@torch.no_grad()
def predict_next_frames(step: _ShiftedHarmonium | Harmonium, start: Tensor, *,
                        gibbs_steps: int = 10, n_samples: int = 10,
                        generator: torch.Generator | None = None) -> Tensor:
    """A prediction of each next frame: ``n_samples`` block-Gibbs chains per frame in the step
    harmonium, started at ``start`` (the current frames, (*, D)), run ``gibbs_steps`` sweeps;
    returns the average of E[v | h] over the chains' final hidden states, (*, D)."""
    k = check_positive_int(gibbs_steps, "gibbs_steps")
    S = check_positive_int(n_samples, "n_samples")
    v = start.expand(S, *start.shape)
    h = step.sample_hidden(v, generator)
    for _ in range(k - 1):
        v = step.sample_visible(h, generator)
        h = step.sample_hidden(v, generator)
    return step.visible.mean(step.visible_natural(h)).mean(0)


class RTRBM(SavableModule):
    """The recurrent temporal RBM (Sutskever, Hinton & Taylor 2008).

    n_visible: D.  n_hidden: K.  visible: the visible units' kind ("bernoulli" or "gaussian").
    k: CD-k's Gibbs sweeps in ``loss``.
    Parameters: the step harmonium ``rbm`` (W (K, D), b_h, b_v); ``recurrent`` W′ (K, K);
    ``initial_shift`` u (K,), the first step's hidden shift in place of W′ r_0.
    """

    def __init__(self, n_visible: int, n_hidden: int, *, visible: str = "bernoulli",
                 k: int = 1, seed: int = 0, init_scale: float = 0.01,
                 dtype: str | torch.dtype = "float64") -> None:
        super().__init__()
        D = check_positive_int(n_visible, "n_visible")
        K = check_positive_int(n_hidden, "n_hidden")
        dt = resolve_dtype(dtype)
        self.rbm = Harmonium(("bernoulli", K), (visible, D), seed=seed, init_scale=init_scale,
                             dtype=dt)
        g = torch.Generator().manual_seed(int(seed) + 1)
        self.recurrent = nn.Parameter(init_scale * torch.randn(K, K, generator=g, dtype=dt))
        self.initial_shift = nn.Parameter(torch.zeros(K, dtype=dt))
        self.negative = CDNegative(check_positive_int(k, "k"))
        self.config = {"n_visible": D, "n_hidden": K, "visible": visible, "k": int(k),
                       "seed": int(seed), "init_scale": float(init_scale),
                       "dtype": str(dt).removeprefix("torch.")}

    @property
    def n_visible(self) -> int:
        return int(self.rbm.visible.size)

    @property
    def n_hidden(self) -> int:
        return int(self.rbm.hidden.size)

    # ------------------------------------------------------------------ inference
    def mean_field_hidden(self, V: Tensor) -> Tensor:
        """r_t = σ(W v_t + b_h + W′ r_{t−1}) (r_1 with u for W′ r_0), differentiable.
        V: (B, T, D) → R: (B, T, K)."""
        _check_sequences(V, self.n_visible)
        eta = self.rbm.hidden_natural(V)  # (B, T, K): W v_t + b_h for every t at once
        r = self.rbm.hidden.mean(eta[:, 0] + self.initial_shift)
        rs = [r]
        for t in range(1, V.shape[1]):
            r = self.rbm.hidden.mean(eta[:, t] + r @ self.recurrent.mT)
            rs.append(r)
        return torch.stack(rs, dim=1)

    filter = mean_field_hidden

    def hidden_shifts(self, R: Tensor) -> Tensor:
        """o_t = W′ r_{t−1} (o_1 = u): each step's hidden shift. R: (B, T, K) → (B, T, K)."""
        first = self.initial_shift.expand(R.shape[0], 1, -1)
        return torch.cat([first, R[:, :-1] @ self.recurrent.mT], dim=1)

    def step_harmonium(self, shifts: Tensor) -> _ShiftedHarmonium:
        """The harmonium of the steps whose hidden shifts are ``shifts`` (*, K)."""
        return _ShiftedHarmonium(self.rbm, shifts)

    # ------------------------------------------------------------------ learning
    def cd_surrogate(self, V: Tensor, V_neg: Tensor) -> Tensor:
        """L = mean_{b,t} [F_t(v_t) − F_t(ṽ_t)] with the negatives ṽ (B, T, D) fixed and the
        shifts W′ r_{t−1} differentiable: its gradient is CD plus BPTT. 0-d."""
        step = self.step_harmonium(self.hidden_shifts(self.mean_field_hidden(V)))
        return boltzmann_loss(step, V, NegativeSamples("visible", V_neg.detach()))

    def negatives(self, V: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """CD-k negatives ṽ_t: k Gibbs sweeps from each v_t in the step-t harmonium. (B, T, D)."""
        with torch.no_grad():
            step = self.step_harmonium(self.hidden_shifts(self.mean_field_hidden(V)))
            return self.negative.negative(step, V, generator).states

    def cd_bptt_grad(self, V: Tensor, generator: torch.Generator | None = None
                     ) -> tuple[dict[str, Tensor], Tensor]:
        """The CD-k + BPTT gradient: (parameter name → gradient, the negatives it used)."""
        V_neg = self.negatives(V, generator)
        params = dict(self.named_parameters())
        grads = torch.autograd.grad(self.cd_surrogate(V, V_neg), list(params.values()),
                                    allow_unused=True)
        return ({k: torch.zeros_like(p) if g is None else g
                 for (k, p), g in zip(params.items(), grads, strict=True)}, V_neg)

    def hidden_states(self, V: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """The states r_t that shift the next step: the mean-field expectations (RTRBM).
        (B, T, D) → (B, T, K)."""
        return self.mean_field_hidden(V)

    def loss(self, batch: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """The trainer's loss: the CD surrogate on a batch of sequences (B, T, D) with fresh
        CD-k negatives, the states from ``hidden_states`` (its value is not a likelihood)."""
        shifts = self.hidden_shifts(self.hidden_states(batch, generator))
        step = self.step_harmonium(shifts)
        with torch.no_grad():
            neg = self.negative.negative(self.step_harmonium(shifts.detach()), batch, generator)
        return boltzmann_loss(step, batch, neg)

    # ------------------------------------------------------------------ generation
    @torch.no_grad()
    def sample_sequence(self, n: int, T: int, *, gibbs_steps: int = 100,
                        generator: torch.Generator | None = None) -> Tensor:
        """n sequences of T frames: at each step ``gibbs_steps`` block-Gibbs sweeps in the step
        harmonium (given r_{t−1}), then r_t from the frame drawn. Returns (n, T, D)."""
        n, T = check_positive_int(n, "n"), check_positive_int(T, "T")
        shift = self.initial_shift.expand(n, -1)
        frames = []
        for _ in range(T):
            step = self.step_harmonium(shift)
            v0 = self.rbm.visible.sample(self.rbm.b_y.expand(n, -1), generator)
            v = step.sample_visible(_gibbs(step, v0, gibbs_steps, generator), generator)
            frames.append(v)
            shift = self._next_state(step, v, generator) @ self.recurrent.mT
        return torch.stack(frames, dim=1)

    def _next_state(self, step: _ShiftedHarmonium, v: Tensor,
                    generator: torch.Generator | None) -> Tensor:
        return self.rbm.hidden.mean(step.hidden_natural(v))  # r_t, the RTRBM's mean field

    @torch.no_grad()
    def predict_next(self, V: Tensor, *, gibbs_steps: int = 10, n_samples: int = 10,
                     generator: torch.Generator | None = None) -> Tensor:
        """Predictions of frames 2 … T from the frames before each: the step-(t+1) harmonium
        (shift W′ r_t) sampled from v_t (``predict_next_frames``). (B, T, D) → (B, T − 1, D)."""
        R = self.hidden_states(V, generator)
        step = self.step_harmonium(R[:, :-1] @ self.recurrent.mT)
        return predict_next_frames(step, V[:, :-1], gibbs_steps=gibbs_steps,
                                   n_samples=n_samples, generator=generator)


class TRBM(RTRBM):
    """The temporal RBM (Sutskever & Hinton 2007): the same per-step harmonium, its hidden
    biases shifted by the previous step's *sampled* hidden states,

        p̂(v_t, h_t | h_{t−1}) ∝ exp{−E(h_t, v_t) + h_tᵀ W′ h_{t−1}},

    learned as that paper does: the states are drawn by the filtering approximation
    h_t ~ p̂(h_t | v_t, h_{t−1}) and held fixed, and each step's harmonium takes a CD-k step —
    no gradient flows through the states (that is what the RTRBM's mean field adds).
    """

    def hidden_states(self, V: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """h_t ~ p̂(h_t | v_t, h_{t−1}) in turn (h_1 with the shift u). (B, T, D) → (B, T, K)."""
        _check_sequences(V, self.n_visible)
        with torch.no_grad():
            eta = self.rbm.hidden_natural(V)
            h = self.rbm.hidden.sample(eta[:, 0] + self.initial_shift, generator)
            hs = [h]
            for t in range(1, V.shape[1]):
                h = self.rbm.hidden.sample(eta[:, t] + h @ self.recurrent.mT, generator)
                hs.append(h)
            return torch.stack(hs, dim=1)

    def _next_state(self, step: _ShiftedHarmonium, v: Tensor,
                    generator: torch.Generator | None) -> Tensor:
        return step.sample_hidden(v, generator)


def _gibbs(step: _ShiftedHarmonium, v: Tensor, n_steps: int,
           generator: torch.Generator | None) -> Tensor:
    """``n_steps`` block-Gibbs sweeps from v; returns the last hidden state."""
    h = step.sample_hidden(v, generator)
    for _ in range(n_steps):
        v = step.sample_visible(h, generator)
        h = step.sample_hidden(v, generator)
    return h


# ------------------------------------------------------------------ the recurrent EFH
class StackedLayer(Layer):
    """Several layers side by side as one visible layer (the rEFH's [y_t; r_{t−1}]): statistics,
    base measures, log-partitions and samples are the parts', concatenated or summed. The bias
    *is* the parts' biases (concatenated on read); train the parts. Not enumerable."""

    kind = "stacked"

    def __init__(self, parts: list[Layer]) -> None:
        nn.Module.__init__(self)
        if not parts:
            raise ValueError("a StackedLayer needs at least one part.")
        self.parts = nn.ModuleList(parts)
        self._layers: tuple[Layer, ...] = tuple(parts)  # the same modules, typed
        self.sizes = [int(p.size) for p in parts]
        self.stat_sizes = [int(p.num_stats) for p in parts]
        self.size = sum(self.sizes)
        self.num_stats = sum(self.stat_sizes)

    @property
    def bias(self) -> Tensor:  # type: ignore[override]
        return torch.cat([p.bias for p in self._layers])

    @property
    def spec(self) -> dict[str, Any]:
        return {"kind": self.kind, "size": self.size, "parts": [p.spec for p in self._layers]}

    def _split(self, x: Tensor) -> tuple[Tensor, ...]:
        return torch.split(x, self.sizes, dim=-1)

    def _split_stats(self, natural: Tensor) -> tuple[Tensor, ...]:
        return torch.split(natural, self.stat_sizes, dim=-1)

    def stats(self, x: Tensor) -> Tensor:
        return torch.cat([p.stats(xi) for p, xi in zip(self._layers, self._split(x), strict=True)],
                         -1)

    def log_base(self, x: Tensor) -> Tensor:
        return sum(p.log_base(xi) for p, xi in  # type: ignore[return-value]
                   zip(self._layers, self._split(x), strict=True))

    def log_partition(self, natural: Tensor) -> Tensor:
        return sum(p.log_partition(e) for p, e in  # type: ignore[return-value]
                   zip(self._layers, self._split_stats(natural), strict=True))

    def mean(self, natural: Tensor) -> Tensor:
        return torch.cat([p.mean(e) for p, e in
                          zip(self._layers, self._split_stats(natural), strict=True)], -1)

    def distribution(self, natural: Tensor) -> ExponentialFamily:
        raise ValueError("a StackedLayer mixes families; take each part's distribution from "
                         "its slice of the natural parameters.")

    def sample(self, natural: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return torch.cat([p.sample(e, generator) for p, e in
                          zip(self._layers, self._split_stats(natural), strict=True)], -1)

    def check(self, x: Tensor, name: str) -> None:
        for p, xi in zip(self._layers, self._split(x), strict=True):
            p.check(xi, name)

    def base_rate_bias(self, data: Tensor) -> Tensor:
        return torch.cat([p.base_rate_bias(xi) for p, xi in
                          zip(self._layers, self._split(data), strict=True)])


class RecurrentEFH(SavableModule):
    """The recurrent exponential-family harmonium (Makin, Dichter & Sabes 2015).

    n_visible: D observed units of kind ``visible`` ("poisson", "bernoulli" or "gaussian").
    n_hidden: K binary hidden units; the visible layer also holds K recurrent units fed with
    r_{t−1}. k: CD-k's sweeps.  Parameters: the harmonium ``efh`` over hidden x (K) and visible
    [y; r] (D + K).
    """

    def __init__(self, n_visible: int, n_hidden: int, *, visible: str = "poisson", k: int = 1,
                 seed: int = 0, init_scale: float = 0.01,
                 dtype: str | torch.dtype = "float64") -> None:
        super().__init__()
        D = check_positive_int(n_visible, "n_visible")
        K = check_positive_int(n_hidden, "n_hidden")
        dt = resolve_dtype(dtype)
        stacked = StackedLayer([make_layer((visible, D), dt), BernoulliLayer(K, dtype=dt)])
        self.efh = Harmonium(("bernoulli", K), stacked, seed=seed, init_scale=init_scale,
                             dtype=dt)
        self.negative = CDNegative(check_positive_int(k, "k"))
        self.config = {"n_visible": D, "n_hidden": K, "visible": visible, "k": int(k),
                       "seed": int(seed), "init_scale": float(init_scale),
                       "dtype": str(dt).removeprefix("torch.")}

    @property
    def n_visible(self) -> int:
        return self.config["n_visible"]

    @property
    def n_hidden(self) -> int:
        return self.config["n_hidden"]

    def filter(self, Y: Tensor) -> Tensor:
        """r_t = E[x_t | y_t, r_{t−1}] (r_0 = 0): the rEFH's state. (B, T, D) → (B, T, K)."""
        _check_sequences(Y, self.n_visible)
        r = Y.new_zeros(Y.shape[0], self.n_hidden)
        rs = []
        for t in range(Y.shape[1]):
            r = self.efh.hidden.mean(self.efh.hidden_natural(torch.cat([Y[:, t], r], -1)))
            rs.append(r)
        return torch.stack(rs, dim=1)

    @torch.no_grad()
    def sample_sequence(self, n: int, T: int, *, gibbs_steps: int = 100,
                        generator: torch.Generator | None = None) -> Tensor:
        """n sequences of T observations: at each step the recurrent units are clamped to
        r_{t−1} and ``gibbs_steps`` sweeps x ~ p̂(x | y, r_{t−1}), y ~ p̂(y | x) draw y_t; then
        r_t = E[x | y_t, r_{t−1}] (the filter). Returns (n, T, D)."""
        n, T = check_positive_int(n, "n"), check_positive_int(T, "T")
        k = check_positive_int(gibbs_steps, "gibbs_steps")
        obs = self.visible_part
        S = obs.num_stats
        r = self.efh.weight.new_zeros(n, self.n_hidden)
        ys = []
        for _ in range(T):
            y = obs.sample(obs.bias.expand(n, -1), generator)
            for _ in range(k):
                x = self.efh.hidden.sample(self.efh.hidden_natural(torch.cat([y, r], -1)),
                                           generator)
                y = obs.sample(self.efh.visible_natural(x)[:, :S], generator)
            r = self.efh.hidden.mean(self.efh.hidden_natural(torch.cat([y, r], -1)))
            ys.append(y)
        return torch.stack(ys, dim=1)

    @property
    def visible_part(self) -> Layer:
        """The observed units' layer (the first part of the stacked visible layer)."""
        return cast(StackedLayer, self.efh.visible)._layers[0]

    def inputs(self, Y: Tensor) -> Tensor:
        """The visible vectors [y_t; r_{t−1}] of the current filter, (B, T, D + K), no grad."""
        with torch.no_grad():
            R = self.filter(Y)
            prev = torch.cat([R.new_zeros(R.shape[0], 1, R.shape[2]), R[:, :-1]], dim=1)
            return torch.cat([Y, prev], dim=-1)

    def loss(self, batch: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """CD-k on the vectors [y_t; r_{t−1}] of a batch of sequences (B, T, D) (no BPTT)."""
        X = self.inputs(batch).flatten(0, 1)
        return boltzmann_loss(self.efh, X, self.negative.negative(self.efh, X, generator))
