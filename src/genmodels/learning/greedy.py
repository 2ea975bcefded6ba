"""Learning deep belief nets: greedy layer-wise training (book §10.2.3, Eqs 10.24–10.27) and
up–down fine-tuning (Hinton, Osindero & Teh 2006, §5 and Appendix B). CATALOGUE I9.

**Greedy.** Layer l is a harmonium trained by the Boltzmann gradient (CD-k or PCD, the
harmonium issue's ``BoltzmannLearner`` through ``learning.trainer``) on draws from the
*aggregated posterior* of the layer below (Eq. 10.24),

    p̌(h_{l+1}; θ_l) = Σ_{h_l} p̌(h_{l+1} | h_l; θ_l) p̌(h_l),

one posterior draw per datum (``n_draws`` of them, or the posterior means). By Eq. 10.25 this
minimises KL{p̌(h_{l+1}) ‖ p̂(h_{l+1}; θ_{l+1})}, the only θ_{l+1}-dependent part of the joint
relative entropy. With ``init="unrolled"`` a layer whose sizes allow it starts at the layer
below turned upside down (Fig 10.2B), where the new bound is tight.

**Up–down.** After untying recognition from generation (``DBN.untie``), one update is a
contrastive form of wake–sleep: an *up* pass samples the lower layers from the recognition
weights and the wake phase raises log p̂(h_l | h_{l+1}) in the generative weights; the top
harmonium takes a CD-k step from the up pass's top-level state; a *down* pass from the CD
chain's final state generates the lower layers, and the sleep phase raises log p̌(h_{l+1} | h_l)
in the recognition weights. All three touch disjoint parameters, so their sum is one surrogate
loss through ``learning.trainer`` (as in ``learning.wake_sleep``); its value is not an
objective (the top term is the Boltzmann surrogate of ``learning.contrastive``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from genmodels._validation import check_choice, check_positive_int
from genmodels.learning.contrastive import (
    BoltzmannLearner,
    CDNegative,
    NegativePhase,
    boltzmann_loss,
)
from genmodels.learning.trainer import Trainer, TrainResult
from genmodels.models.dbn import DBN, layer_log_prob, unrolled
from genmodels.models.harmonium import Harmonium

__all__ = ["UpDown", "aggregate_posterior_samples", "fit_greedy"]


@torch.no_grad()
def aggregate_posterior_samples(rbm: Harmonium, data: Tensor, *, n_draws: int = 1,
                                mean: bool = False, generator: torch.Generator | None = None
                                ) -> Tensor:
    """Draws from the aggregated posterior p̌(h) = Σ_y p̌(h | y) p(y) (Eq. 10.24): ``n_draws``
    posterior draws per datum, (n_draws · N, K), or with ``mean`` the posterior means (N, S)."""
    if mean:
        return rbm.hidden_mean(data)
    k = check_positive_int(n_draws, "n_draws")
    eta = rbm.hidden_natural(data)
    return rbm.hidden.sample(eta.expand(k, *eta.shape), generator).reshape(-1, rbm.hidden.size)


def fit_greedy(dbn: DBN, data: Tensor, *, negative: Callable[[Harmonium], NegativePhase]
               | None = None, init: str = "random", n_draws: int = 1, mean: bool = False,
               seed: int = 0, start_layer: int = 0, **trainer_kwargs: Any
               ) -> list[TrainResult]:
    """Train ``dbn``'s harmoniums bottom up, each on the aggregated posterior of the one below.

    negative: a factory ``rbm -> NegativePhase`` (default CD-1: ``CDNegative(1)``; e.g.
        ``lambda r: PersistentNegative(r, 100)`` for PCD).
    init: "random" (each harmonium as constructed) or "unrolled" (a layer whose sizes match
        starts at the layer below upside down, Fig 10.2B).
    n_draws, mean: how the next layer's data are drawn (``aggregate_posterior_samples``).
    seed: seeds the trainer (seed + l for layer l) and the draws.
    start_layer: the harmoniums below it are already trained (e.g. by the harmonium
        issue's ``BernoulliRBM`` estimator) and only pass their aggregated posteriors up.
    trainer_kwargs: for each layer's ``Trainer`` (epochs, batch_size, lr, optimizer, ...).
    Returns the ``TrainResult`` of each layer trained.
    """
    check_choice(init, "init", ("random", "unrolled"))
    start = check_positive_int(start_layer, "start_layer", minimum=0)
    if start >= dbn.n_layers:
        raise ValueError(f"start_layer={start_layer} leaves nothing to train in a DBN of "
                         f"{dbn.n_layers} layers.")
    if dbn.untied:
        raise ValueError("fit_greedy trains the tied net; call it before dbn.untie().")
    make_negative = negative or (lambda _: CDNegative(1))
    g = torch.Generator(device=data.device).manual_seed(seed)
    results, h = [], data
    for l, rbm in enumerate(dbn.harmoniums):
        if l < start:
            h = aggregate_posterior_samples(rbm, h, n_draws=n_draws, mean=mean, generator=g)
            continue
        if init == "unrolled" and l > 0:
            below = dbn.rbm(l - 1)
            if (rbm.hidden.spec == below.visible.spec and rbm.visible.spec == below.hidden.spec):
                flip = unrolled(below)
                rbm.set_parameters(weight=flip.weight, b_x=flip.b_x, b_y=flip.b_y)
        learner = BoltzmannLearner(rbm, make_negative(rbm))
        results.append(Trainer(learner, seed=seed + l, **trainer_kwargs).fit(h))
        if l < dbn.n_layers - 1:
            h = aggregate_posterior_samples(rbm, h, n_draws=n_draws, mean=mean,
                                            generator=g)
    return results


class UpDown(nn.Module):
    """Up–down fine-tuning of an untied ``DBN`` (Hinton, Osindero & Teh 2006) as a
    ``LossModel``.

    k: Gibbs sweeps of the top harmonium's CD step.
    """

    def __init__(self, dbn: DBN, *, k: int = 1) -> None:
        super().__init__()
        if not isinstance(dbn, DBN) or dbn.n_layers < 2:
            raise ValueError("UpDown fine-tunes a DBN of at least two harmoniums.")
        self.dbn = dbn.untie()
        self.negative = CDNegative(check_positive_int(k, "k"))

    def loss(self, batch: Tensor, generator: torch.Generator | None = None) -> Tensor:
        d = self.dbn
        L = d.n_layers
        with torch.no_grad():  # the up pass: h_1 … h_{L−1} from the recognition weights
            up, h = [batch], batch
            for l in range(L - 1):
                h = d.rbm(l).hidden.sample(d.recognition_natural(l, h), generator)
                up.append(h)
        wake = torch.zeros((), dtype=batch.dtype, device=batch.device)
        for l in range(L - 1):  # raise log p̂(h_l | h_{l+1}) on the up pass (θ only)
            wake = wake - layer_log_prob(d.rbm(l).visible, d.generative_natural(l, up[l + 1]),
                                         up[l]).mean()
        neg = self.negative.negative(d.top, up[-1], generator)  # CD-k from the wake state
        top = boltzmann_loss(d.top, up[-1], neg)
        with torch.no_grad():  # the down pass from the negative phase's top-level states
            down, h = [neg.states], neg.states
            for l in range(L - 2, -1, -1):
                h = d.rbm(l).visible.sample(d.generative_natural(l, h), generator)
                down.insert(0, h)
        sleep = torch.zeros((), dtype=batch.dtype, device=batch.device)
        for l in range(L - 1):  # raise log p̌(h_{l+1} | h_l) on the down pass (φ only)
            sleep = sleep - layer_log_prob(d.rbm(l).hidden, d.recognition_natural(l, down[l]),
                                           down[l + 1]).mean()
        return wake + top + sleep
