"""Learning Boltzmann distributions without their normaliser: the maximum-likelihood gradient
(book §10.2.1, Eqs. 10.14–10.16), the EFH learning rule (Eqs. 10.17–10.19), contrastive
divergence (§10.2.2, Eqs. 10.20–10.23; Hinton 2002) and persistent contrastive divergence
(Tieleman 2008). CATALOGUE I6–I8.

For p̂(x, y) = exp{−E(x, y; θ)} / Z the gradient of the relative entropy KL{p(Y) ‖ p̂(Y)} is

    d/dθ KL = E_{p̂(x|y) p(y)}[∂E/∂θ] − E_{p̂(x, y)}[∂E/∂θ]          (Eq. 10.16)

a *positive phase* under the hybrid distribution (data y, the exact conditional of x) minus a
*negative phase* under the model. When a layer sums out in closed form, its free energy F
carries the positive phase exactly: ∂F(y)/∂θ = E_{p̂(x|y)}[∂E/∂θ]. So the gradient is that of
the surrogate

    L(θ) = ⟨F(y)⟩_data − Σ_m w_m F(s_m)        (s_m, w_m held fixed)

whose negative phase comes from weighted states s_m of either layer: ∂F(s)/∂θ = E[∂E/∂θ | s],
so Σ_m w_m ∂F(s_m)/∂θ estimates E_model[∂E/∂θ] (Rao–Blackwellised over the other layer).
Where those states come from is a pluggable ``NegativePhase``:

* ``ExactNegative`` — every state of the smaller finite layer, w = its exact marginal p̂(s):
  the exact gradient (Eq. 10.19), for small models;
* ``CDNegative(k)`` — k block Gibbs sweeps from the data, w uniform: CD-k (Eq. 10.20; for the
  binary RBM the Hebbian-minus-anti-Hebbian rules of Eq. 10.23);
* ``PersistentNegative(chains, k)`` — chains that carry over between updates: PCD.

``BoltzmannLearner`` wraps a model and a negative phase as the trainer's ``LossModel``, so CD,
PCD and the exact gradient all train through ``learning/trainer.py`` (mini-batches,
momentum and weight decay through the optimiser, a learning-rate schedule, checkpoints,
early stopping on a held-out log-likelihood). The persistent chains are a buffer of the
learner, so checkpoints carry them and a resumed run continues them exactly.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from genmodels._validation import check_positive_int, make_generator
from genmodels.inference.partition import enumerate_layer, exact_log_partition

__all__ = [
    "BoltzmannLearner",
    "CDNegative",
    "ExactNegative",
    "NegativePhase",
    "NegativeSamples",
    "PersistentNegative",
    "boltzmann_gradient",
    "boltzmann_loss",
    "cd_objective_exact",
    "exact_negative_log_likelihood",
    "hybrid_statistics",
    "model_statistics",
    "visible_transition_matrix",
]


class NegativeSamples(NamedTuple):
    """The negative phase: states of one layer with their weights.

    layer: "visible" or "hidden" (which free energy the states enter).
    states: (M, size) states of that layer.
    weights: (M,) nonnegative, summing to 1, or None for equal weights 1/M.
    """

    layer: str
    states: Tensor
    weights: Tensor | None = None


@runtime_checkable
class NegativePhase(Protocol):
    """A source of negative-phase states: ``negative(model, y, generator)`` with y the data
    batch (B, size_y). No gradient flows through the states or weights."""

    def negative(self, model: Any, y: Tensor, generator: torch.Generator | None
                 ) -> NegativeSamples: ...


class ExactNegative(nn.Module):
    """Every state of the smaller finite layer, weighted by its exact marginal p̂(s) =
    exp{−F(s) − log Z}: the exact model expectation (small models only)."""

    def __init__(self, layer: str | None = None) -> None:
        super().__init__()
        self.layer = layer

    def negative(self, model: Any, y: Tensor, generator: torch.Generator | None = None
                 ) -> NegativeSamples:
        from genmodels.inference.partition import _smaller_finite_layer

        name = _smaller_finite_layer(model, self.layer)
        with torch.no_grad():
            states, probs = enumerate_layer(model, name)
        return NegativeSamples(name, states, probs)


class CDNegative(nn.Module):
    """CD-k: the visible states after k block Gibbs sweeps from the data, y⁰ → x⁰ → y¹ → … → yᵏ
    (B §10.2.2's order). k = 0 gives a zero gradient (p⁰ against itself)."""

    def __init__(self, k: int = 1) -> None:
        super().__init__()
        self.k = check_positive_int(k, "k", minimum=0)

    def negative(self, model: Any, y: Tensor, generator: torch.Generator | None = None
                 ) -> NegativeSamples:
        with torch.no_grad():
            for _ in range(self.k):
                y = model.sample_visible(model.sample_hidden(y, generator), generator)
        return NegativeSamples("visible", y)


class PersistentNegative(nn.Module):
    """Persistent CD (Tieleman 2008): ``num_chains`` visible chains, each update advancing them
    by k block Gibbs sweeps and returning their states. The chains are a buffer (so they
    checkpoint); they start at independent draws of the visible layer from its bias (seeded by
    ``seed``), or at ``init`` (num_chains, size_y)."""

    chains: Tensor

    def __init__(self, model: Any, num_chains: int, k: int = 1, *, seed: int = 0,
                 init: Tensor | None = None) -> None:
        super().__init__()
        m = check_positive_int(num_chains, "num_chains")
        self.k = check_positive_int(k, "k")
        with torch.no_grad():
            if init is None:
                g = make_generator(seed, model.weight.device)
                init = model.visible.sample(model.b_y.expand(m, -1), g)
            elif tuple(init.shape) != (m, model.visible.size):
                raise ValueError(f"init must have shape ({m}, {model.visible.size}), got "
                                 f"{tuple(init.shape)}.")
        self.register_buffer("chains", init.detach().clone().to(model.weight.dtype))

    def negative(self, model: Any, y: Tensor, generator: torch.Generator | None = None
                 ) -> NegativeSamples:
        with torch.no_grad():
            state = self.chains
            for _ in range(self.k):
                state = model.sample_visible(model.sample_hidden(state, generator), generator)
            self.chains.copy_(state)
        return NegativeSamples("visible", state)  # a fresh tensor, not the buffer


def boltzmann_loss(model: Any, y: Tensor, negative: NegativeSamples) -> Tensor:
    """The surrogate ⟨F(y)⟩_data − Σ_m w_m F(s_m) whose gradient is Eq. 10.16's
    E_hybrid[∂E/∂θ] − E_model[∂E/∂θ] (states and weights held fixed). 0-d.

    Its value is not a likelihood (for that, ``exact_negative_log_likelihood`` or AIS); with
    ``ExactNegative`` it differs from the exact mean NLL by a constant in θ-gradient terms."""
    w = negative.weights
    if negative.layer == "visible" and w is None and negative.states.shape[1:] == y.shape[1:]:
        # data and negative states in one pass (half the operations on the training path)
        f = model.free_energy(torch.cat([y, negative.states]))
        return f[: y.shape[0]].mean() - f[y.shape[0]:].mean()
    pos = model.free_energy(y).mean()
    f_neg = model.layer_free_energy(negative.layer, negative.states)
    neg = f_neg.mean() if w is None else (w.detach() * f_neg).sum()
    return pos - neg


def boltzmann_gradient(model: nn.Module, y: Tensor, negative: NegativePhase,
                       generator: torch.Generator | None = None) -> dict[str, Tensor]:
    """Eq. 10.16's gradient of the mean negative log-likelihood, d/dθ KL{p(Y) ‖ p̂(Y)}, with the
    negative phase from ``negative``: a dict parameter name → gradient (same shapes)."""
    params = dict(model.named_parameters())
    loss = boltzmann_loss(model, y, negative.negative(model, y, generator))
    grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
    return {k: (torch.zeros_like(p) if g is None else g)
            for (k, p), g in zip(params.items(), grads, strict=True)}


def exact_negative_log_likelihood(model: Any, y: Tensor) -> Tensor:
    """The exact mean −log p̂(y) = ⟨F(y)⟩ + log Z (log Z by enumeration). 0-d, differentiable."""
    return model.free_energy(y).mean() + exact_log_partition(model).log_z


def _outer_mean(a: Tensor, b: Tensor, w: Tensor | None) -> Tensor:
    """Σ_m w_m a_m b_mᵀ (or the mean). a: (M, P), b: (M, Q) → (P, Q)."""
    if w is None:
        return a.mT @ b / a.shape[0]
    return (a * w[:, None]).mT @ b


def _wmean(a: Tensor, w: Tensor | None) -> Tensor:
    return a.mean(0) if w is None else w @ a


def hybrid_statistics(model: Any, y: Tensor, weights: Tensor | None = None
                      ) -> dict[str, Tensor]:
    """The positive phase of Eq. 10.19 in closed form: under p̂(x | y) p(y),
    ⟨T(x) U(y)ᵀ⟩ (weight, (S_x, S_y)), ⟨T(x)⟩ (b_x), ⟨U(y)⟩ (b_y), with E[T(x) | y] exact.
    y: (N, size_y); weights: optional (N,) summing to 1."""
    with torch.no_grad():
        u = model.visible.stats(y)
        t = model.hidden.mean(model.hidden_natural(y))
        return {"weight": _outer_mean(t, u, weights), "b_x": _wmean(t, weights),
                "b_y": _wmean(u, weights)}


def model_statistics(model: Any, layer: str | None = None) -> dict[str, Tensor]:
    """The negative phase of Eq. 10.19, exactly, by enumerating a finite layer: E_model of
    T(x) U(y)ᵀ, T(x), U(y) (the other layer's conditional mean in closed form)."""
    from genmodels.inference.partition import _smaller_finite_layer

    name = _smaller_finite_layer(model, layer)
    with torch.no_grad():
        states, p = enumerate_layer(model, name)
        if name == "visible":
            return hybrid_statistics(model, states, p)
        t = model.hidden.stats(states)
        u = model.visible.mean(model.visible_natural(states))
        return {"weight": _outer_mean(t, u, p), "b_x": _wmean(t, p), "b_y": _wmean(u, p)}


def visible_transition_matrix(model: Any) -> tuple[Tensor, Tensor]:
    """One block Gibbs sweep as a matrix over the visible states (both layers finite and
    small): T[y, y'] = Σ_x p̂(x | y) p̂(y' | x). Returns (states (M_y, size_y), T (M_y, M_y)),
    the states in ``visible.states`` order. p^{k+1} = p^k T (B §10.2.2)."""
    with torch.no_grad():
        ys = model.visible.states(0, model.visible.num_states)
        xs = model.hidden.states(0, model.hidden.num_states)
        neg_e = -model.energy(xs[:, None, :], ys[None])  # (Mx, My)
        px_given_y = torch.softmax(neg_e, 0)  # columns: p̂(x | y)
        py_given_x = torch.softmax(neg_e, 1)  # rows: p̂(y | x)
        return ys, px_given_y.mT @ py_given_x


def cd_objective_exact(model: Any, data_probs: Tensor, k: int = 1) -> Tensor:
    """Hinton's CD objective KL{p⁰ ‖ p^∞} − KL{pᵏ ‖ p^∞} (Eq. 10.21), computed exactly with
    ``visible_transition_matrix``. data_probs: (M_y,) the data distribution p⁰ over the
    visible states in ``visible.states`` order. ≥ 0, and 0 when p⁰ is stationary."""
    kk = check_positive_int(k, "k")
    with torch.no_grad():
        ys, trans = visible_transition_matrix(model)
        p_inf = torch.softmax(-model.free_energy(ys), 0)
        pk = data_probs
        for _ in range(kk):
            pk = pk @ trans

        def kl(p: Tensor, q: Tensor) -> Tensor:
            m = p > 0
            return (p[m] * (p[m].log() - q[m].log())).sum()

        return kl(data_probs, p_inf) - kl(pk, p_inf)


class BoltzmannLearner(nn.Module):
    """A harmonium trained by the Boltzmann gradient through ``learning.trainer`` (a
    ``LossModel``): ``loss(batch, generator)`` is ``boltzmann_loss`` with the negative phase
    drawn from ``negative`` (an ``ExactNegative``, ``CDNegative`` or ``PersistentNegative``).

    model: a harmonium; its parameters are trained. ``val_nll`` is a validation metric for
    the trainer's early stopping: the exact held-out mean negative log-likelihood.
    """

    def __init__(self, model: nn.Module, negative: NegativePhase) -> None:
        super().__init__()
        if not isinstance(negative, NegativePhase):
            raise ValueError(f"negative must have negative(model, y, generator), got "
                             f"{type(negative).__name__}.")
        self.model = model
        self.negative = negative

    def loss(self, batch: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return boltzmann_loss(self.model, batch,
                              self.negative.negative(self.model, batch, generator))

    @staticmethod
    def val_nll(learner: nn.Module, data: Tensor) -> float:
        """The exact held-out mean −log p̂(y) (for ``Trainer(val_metric=...)``)."""
        with torch.no_grad():
            return float(exact_negative_log_likelihood(learner.model, data))
