"""Partition functions: the normaliser of an undirected model as an inference problem (book
§3.5, Fig 3.1; §10.2; CATALOGUE C4).

* ``partition_function_bruteforce(potentials, domains)`` — Z = Σ_x Π_c ψ_c(x_c) of any small
  table of potentials, by enumeration in log space. Fig 3.1's reading: the product of
  potentials is the slice p̌(x, ŷ) of a normalised model with one more node Ŷ joined to every
  clique, so Z = Σ_x p̌(x, ŷ) = p̌(ŷ) is the marginal of the auxiliary node — Bayes' rule's
  normaliser (B:1123-1147). A test oracle, and a public utility.
* ``exact_log_partition(model)`` — log Z of a harmonium by enumerating the smaller finite layer
  and summing out the other in closed form: log Z = log Σ_s exp{−F(s)} with F that layer's
  free energy (B:1056), in log space and in chunks, feasible to about 2²⁴ states.
  Differentiable: autograd of it is −E_model[∂E/∂θ] (Eq. 10.15).
* ``ais_log_partition(model)`` — annealed importance sampling (Neal 2001) from a base-rate model
  (Salakhutdinov & Murray 2008, §4.1), for models too large to enumerate.

Each returns a ``PartitionEstimate`` — log Z with its standard error — never a bare float.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol

import torch
from torch import Tensor

from genmodels._validation import as_tensor, check_positive_int, make_generator

__all__ = [
    "EnumerableHarmonium",
    "PartitionEstimate",
    "ais_log_partition",
    "enumerate_layer",
    "exact_log_partition",
    "log_partition_bruteforce",
    "partition_function_bruteforce",
    "unnormalised_joint",
]

#: the most joint states ``exact_log_partition`` will enumerate by default (2²⁴)
MAX_STATES = 2**24


class PartitionEstimate(NamedTuple):
    """An estimate of log Z.

    log_z: 0-d, the estimate of log Z (for AIS, log of the unbiased estimate of Z).
    stderr: 0-d, its standard error (0 for an exact value; for AIS the delta-method error
        sd(w) / (√M · mean(w)) of log Ẑ from M independent runs).
    log_weights: (M,) the AIS log importance weights log w_m (None when exact).
    ess: 0-d, the effective sample size (Σ w)² / Σ w² of the weights (None when exact).
    method: "exact" or "ais".
    """

    log_z: Tensor
    stderr: Tensor
    log_weights: Tensor | None = None
    ess: Tensor | None = None
    method: str = "exact"


class EnumerableHarmonium(Protocol):
    """What the partition functions need of a model: two layers with statistics, samplers and
    (for enumeration) states, natural parameters of each conditional, and free energies
    (``genmodels.models.harmonium.Harmonium`` is one)."""

    hidden: Any
    visible: Any

    @property
    def weight(self) -> Tensor: ...

    def hidden_natural(self, y: Tensor) -> Tensor: ...

    def visible_natural(self, x: Tensor) -> Tensor: ...

    def layer_free_energy(self, layer: str, states: Tensor) -> Tensor: ...


# ------------------------------------------------------------------- tables of potentials
def unnormalised_joint(potentials: Sequence[tuple[Sequence[int], Any]],
                       domains: Sequence[int], *, log: bool = False) -> Tensor:
    """Π_c ψ_c(x_c) on the full grid of states (or its log with ``log=True``).

    potentials: pairs (scope, table): scope a tuple of variable indices, table a nonnegative
        array of shape [domains[i] for i in scope] (ψ_c). domains: the number of values of each
        variable. Returns a tensor of shape ``domains``.
    """
    dims = [check_positive_int(d, f"domains[{i}]") for i, d in enumerate(domains)]
    if math.prod(dims) > MAX_STATES:
        raise ValueError(f"the grid has {math.prod(dims)} states, more than {MAX_STATES}; "
                         "brute force is for small models.")
    out: Tensor | None = None
    for c, (scope, table) in enumerate(potentials):
        t = as_tensor(table, name=f"potentials[{c}]")
        sc = tuple(int(i) for i in scope)
        if len(set(sc)) != len(sc) or any(not 0 <= i < len(dims) for i in sc):
            raise ValueError(f"potentials[{c}] has scope {sc}; it must name distinct variables "
                             f"in 0..{len(dims) - 1}.")
        if tuple(t.shape) != tuple(dims[i] for i in sc):
            raise ValueError(f"potentials[{c}] has shape {tuple(t.shape)}, but its scope {sc} "
                             f"needs {tuple(dims[i] for i in sc)}.")
        if bool((t < 0).any()):
            raise ValueError(f"potentials[{c}] has negative entries; potentials are >= 0.")
        order = sorted(range(len(sc)), key=lambda j: sc[j])
        lt = torch.log(t).permute(order)  # axes in increasing variable order
        shape = [1] * len(dims)
        for j in order:
            shape[sc[j]] = dims[sc[j]]
        lt = lt.reshape(shape)
        out = lt if out is None else out + lt
    if out is None:
        raise ValueError("potentials is empty.")
    out = out.expand(dims)
    return out if log else torch.exp(out)


def log_partition_bruteforce(potentials: Sequence[tuple[Sequence[int], Any]],
                             domains: Sequence[int]) -> Tensor:
    """log Z = log Σ_x Π_c ψ_c(x_c) by enumeration in log space (B §3.5). 0-d tensor."""
    return torch.logsumexp(unnormalised_joint(potentials, domains, log=True).flatten(), 0)


def partition_function_bruteforce(potentials: Sequence[tuple[Sequence[int], Any]],
                                  domains: Sequence[int]) -> Tensor:
    """Z = Σ_x Π_c ψ_c(x_c) (B §3.5, Fig 3.1: Z = p̌(ŷ)). 0-d tensor. See
    ``unnormalised_joint`` for the arguments."""
    return torch.exp(log_partition_bruteforce(potentials, domains))


# ------------------------------------------------------------------------- harmoniums
def _smaller_finite_layer(model: EnumerableHarmonium, layer: str | None) -> str:
    if layer is not None:
        if layer not in ("hidden", "visible"):
            raise ValueError(f"layer must be 'hidden', 'visible' or None, got {layer!r}.")
        if getattr(model, layer).num_states is None:
            raise ValueError(f"the {layer} layer has infinitely many states; enumerate the "
                             "other one.")
        return layer
    nh, nv = model.hidden.num_states, model.visible.num_states
    if nh is None and nv is None:
        raise ValueError("neither layer is finite, so log Z cannot be enumerated; use "
                         "ais_log_partition.")
    if nv is None or (nh is not None and nh <= nv):
        return "hidden"
    return "visible"


def exact_log_partition(model: EnumerableHarmonium, *, layer: str | None = None,
                        chunk_size: int = 2**14, max_states: int = MAX_STATES
                        ) -> PartitionEstimate:
    """The exact log Z = log Σ_s exp{−F(s)} over every state s of one layer, the other summed
    out in closed form by its free energy (B:1056). Log space, ``chunk_size`` states at a time.

    layer: "hidden", "visible" or None (the finite layer with fewer states).
    Differentiable in the model's parameters.
    """
    name = _smaller_finite_layer(model, layer)
    lay = getattr(model, name)
    n = int(lay.num_states)
    if n > max_states:
        raise ValueError(f"the {name} layer has {n} states, more than max_states={max_states}; "
                         "use ais_log_partition for a model this large.")
    step = check_positive_int(chunk_size, "chunk_size")
    parts = []
    for start in range(0, n, step):
        states = lay.states(start, min(start + step, n))
        parts.append(torch.logsumexp(-model.layer_free_energy(name, states), 0))
    log_z = torch.logsumexp(torch.stack(parts), 0)
    return PartitionEstimate(log_z, torch.zeros_like(log_z.detach()), None, None, "exact")


def enumerate_layer(model: EnumerableHarmonium, layer: str) -> tuple[Tensor, Tensor]:
    """Every state s of a finite layer and its exact marginal p̂(s) = exp{−F(s) − log Z}.
    Returns (states (M, size), probs (M,)). For small layers (all states in memory)."""
    lay = getattr(model, layer)
    if lay.num_states is None or lay.num_states > MAX_STATES:
        raise ValueError(f"the {layer} layer cannot be enumerated ({lay.num_states} states).")
    states = lay.states(0, int(lay.num_states))
    return states, torch.softmax(-model.layer_free_energy(layer, states), 0)


def ais_log_partition(model: EnumerableHarmonium, *, num_chains: int = 100,
                      num_temperatures: int = 10_000, betas: Any = None,
                      base_bias: Any = None, data: Any = None,
                      seed: int | torch.Generator | None = 0) -> PartitionEstimate:
    """Annealed importance sampling of log Z (Neal 2001; Salakhutdinov & Murray 2008, §4).

    The base model A has W = 0, hidden bias 0 and visible bias b_A (``base_bias``, or the base
    rates of ``data`` — the independent-unit fit of SM08 §4.1 — or 0), so Z_A = exp{B(b_A) +
    A(0)} in closed form and exact draws are independent units. The intermediate models anneal
    the energy, E_β = (1 − β) E_A + β E_B: a harmonium with coupling βW, hidden bias βb_x and
    visible bias (1 − β) b_A + β b_y, whose hidden layer sums out (B:1056):

        log p*_β(y) = [(1 − β) b_A + β b_y]ᵀ U(y) + log k(y) + A(β η(y)).

    Each of ``num_chains`` runs starts at y ~ p_A, and for k = 1 … K adds
    log p*_{β_k}(y) − log p*_{β_{k−1}}(y) to its log-weight and moves y by one block Gibbs
    sweep that leaves p_{β_k} invariant. Then E[w] = Z_B / Z_A, and log Ẑ_B = log Z_A +
    log mean(w).

    betas: an increasing schedule from 0 to 1 (default ``num_temperatures`` equally spaced).
    seed: an int or a ``torch.Generator`` for the draws.
    """
    m = check_positive_int(num_chains, "num_chains")
    w = model.weight
    dt, dev = w.dtype, w.device
    if betas is None:
        k = check_positive_int(num_temperatures, "num_temperatures", minimum=2)
        bs = torch.linspace(0.0, 1.0, k, dtype=dt, device=dev)
    else:
        bs = as_tensor(betas, name="betas", dtype=dt, device=dev).reshape(-1)
        if bs.numel() < 2 or float(bs[0]) != 0.0 or float(bs[-1]) != 1.0 or bool(
                (bs[1:] < bs[:-1]).any()):
            raise ValueError("betas must increase from 0 to 1 with at least two entries.")
    hid, vis = model.hidden, model.visible
    gen = make_generator(seed, dev) if not isinstance(seed, torch.Generator) else seed
    with torch.no_grad():
        if base_bias is not None:
            b_a = as_tensor(base_bias, name="base_bias", dtype=dt, device=dev).reshape(-1)
            if b_a.shape != vis.bias.shape:
                raise ValueError(f"base_bias must have shape {tuple(vis.bias.shape)}, got "
                                 f"{tuple(b_a.shape)}.")
        elif data is not None:
            d = as_tensor(data, name="data", dtype=dt, device=dev)
            vis.check(d, "data")
            b_a = vis.base_rate_bias(d.reshape(-1, vis.size))
        else:
            b_a = torch.zeros_like(vis.bias)
        log_z_a = vis.log_partition(b_a) + hid.log_partition(torch.zeros_like(hid.bias))
        db = vis.bias - b_a
        y = vis.sample(b_a.expand(m, -1), gen)
        log_w = torch.zeros(m, dtype=dt, device=dev)
        steps = bs.tolist()
        for i in range(1, len(steps)):
            b_prev, b_k = steps[i - 1], steps[i]
            eta = model.hidden_natural(y)  # (M, S_x)
            # log p*_{β_k}(y) − log p*_{β_{k−1}}(y); log k(y) cancels
            log_w += (b_k - b_prev) * (vis.stats(y) @ db) \
                + hid.log_partition(b_k * eta) - hid.log_partition(b_prev * eta)
            if i < len(steps) - 1:  # a Gibbs sweep at β_k: x ~ p_β(x | y), y ~ p_β(y | x)
                x = hid.sample(b_k * eta, gen)
                zeta = model.visible_natural(x)
                y = vis.sample((1 - b_k) * b_a + b_k * zeta, gen)
        log_mean_w = torch.logsumexp(log_w, 0) - math.log(m)
        r = torch.exp(log_w - log_w.max())
        rel_sd = r.std() / r.mean() if m > 1 else torch.tensor(math.inf, dtype=dt)
        stderr = rel_sd / math.sqrt(m)
        ess = r.sum().square() / r.square().sum()
    return PartitionEstimate(log_z_a + log_mean_w, stderr, log_w, ess, "ais")
