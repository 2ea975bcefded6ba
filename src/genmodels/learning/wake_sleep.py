"""Wake–sleep and reweighted wake–sleep for the Helmholtz machine (CATALOGUE C6; Hinton, Dayan,
Frey & Neal 1995; Bornschein & Bengio 2015, "Reweighted wake-sleep", ICLR).

**Wake–sleep.** Two phases, each a maximum-likelihood step on samples the *other* model makes:

* wake: draw h ~ p̌(h | y) for each datum and raise log p̂(y, h) in the generative parameters
  θ — the M step of generalised EM with p̌ as the E step (the book's coordinate descent on the
  joint relative entropy, B:1867-1878);
* sleep: dream (h, y) ~ p̂(h, y) and raise log p̌(h | y) in the recognition parameters φ, i.e.
  minimise KL{p̂(h | y) ‖ p̌(h | y)} averaged over the model's own y — the *reverse* of the KL
  in the ELBO, which is why wake–sleep follows no single objective.

**Reweighted wake–sleep.** S samples h_s ~ p̌(h | y) with normalised importance weights
w̃_s ∝ p̂(y, h_s)/p̌(h_s | y) give the self-normalised estimates

    ∇_θ log p̂(y) ≈ Σ_s w̃_s ∇_θ log p̂(y, h_s),          (the wake phase for θ)
    ∇_φ KL{p̂(h|y) ‖ p̌(h|y)} ≈ −Σ_s w̃_s ∇_φ log p̌(h_s | y)   (the "wake phase" for φ),

the second on the *data's* y instead of dreams; the sleep phase for φ may be kept as well
(Bornschein & Bengio's best variant uses both). The estimates are biased for finite S and
consistent as S → ∞; with S = 1 the θ update is the wake phase.

**Through the trainer.** The two phases touch disjoint parameters, so their sum is one
surrogate loss whose gradient is exactly the pair of updates: each phase's samples carry no
gradient, θ appears only in log p̂ and φ only in log p̌. Both objectives are therefore
``LossModel``s and train through ``learning.trainer`` (the one loop) with any optimiser; the
loss they *report* (surrogate trick, STYLE §8) is a meaningful number — the negative
one-sample ELBO for wake–sleep, the negative S-sample importance-weighted bound for RWS — while
autograd differentiates the surrogate. The one thing the trainer cannot express is separate
learning rates for the two phases; give the optimiser factory parameter groups
(``model.generative_parameters()`` / ``model.recognition_parameters()``) for that.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from genmodels._validation import check_positive_int
from genmodels.learning.trainer import Trainer, TrainResult
from genmodels.models.helmholtz import HelmholtzMachine

__all__ = ["ReweightedWakeSleep", "WakeSleep", "fit_wake_sleep", "sleep_loss", "wake_loss"]


def _check_batch(model: HelmholtzMachine, batch: Tensor) -> None:
    if batch.dim() != 2 or batch.shape[1] != model.sizes[0]:
        raise ValueError(f"batch must be (B, {model.sizes[0]}) binary data, got shape "
                         f"{tuple(batch.shape)}.")


def wake_loss(model: HelmholtzMachine, y: Tensor, generator: torch.Generator | None = None
              ) -> tuple[Tensor, Tensor]:
    """The wake phase: (−⟨log p̂(y, h)⟩, −⟨log w⟩) over h ~ p̌(h | y), one sample per datum.

    The first is the surrogate (its gradient reaches θ only); the second, without gradient, is
    the negative one-sample ELBO.
    """
    hs = model.recognize(y, generator=generator)
    lp = model.log_joint(y, hs)
    with torch.no_grad():
        neg_elbo = -(lp - model.log_recognition(y, hs)).mean()
    return -lp.mean(), neg_elbo


def sleep_loss(model: HelmholtzMachine, n: int, generator: torch.Generator | None = None
               ) -> Tensor:
    """The sleep phase: −⟨log p̌(h | y)⟩ over n dreams (h, y) ~ p̂ (its gradient reaches φ)."""
    hs, y = model.sample(n, generator)
    return -model.log_recognition(y, hs).mean()


class WakeSleep(nn.Module):
    """Wake–sleep (Hinton et al. 1995) as a ``LossModel`` over a ``HelmholtzMachine``.

    dreams_per_datum: sleep-phase samples per datum of the batch (1: as many dreams as data).
    ``loss(batch)`` reports the negative one-sample ELBO; its gradient is the wake update for θ
    plus the sleep update for φ.
    """

    def __init__(self, model: HelmholtzMachine, *, dreams_per_datum: int = 1) -> None:
        super().__init__()
        self.model = model
        self.dreams_per_datum = check_positive_int(dreams_per_datum, "dreams_per_datum")

    def loss(self, batch: Tensor, generator: torch.Generator | None = None) -> Tensor:
        _check_batch(self.model, batch)
        wake, value = wake_loss(self.model, batch, generator)
        sleep = sleep_loss(self.model, self.dreams_per_datum * batch.shape[0], generator)
        surrogate = wake + sleep
        return value + (surrogate - surrogate.detach())


class ReweightedWakeSleep(nn.Module):
    """Reweighted wake–sleep (Bornschein & Bengio 2015) as a ``LossModel``.

    n_samples: S proposals from p̌ per datum.  sleep: also take the sleep-phase step for φ
    (the paper's "wake + sleep" q update).
    ``loss(batch)`` reports −log (1/S) Σ_s w_s, the negative importance-weighted bound.
    """

    def __init__(self, model: HelmholtzMachine, *, n_samples: int = 5, sleep: bool = True
                 ) -> None:
        super().__init__()
        self.model = model
        self.n_samples = check_positive_int(n_samples, "n_samples")
        self.sleep = bool(sleep)

    def loss(self, batch: Tensor, generator: torch.Generator | None = None) -> Tensor:
        _check_batch(self.model, batch)
        m = self.model
        hs = m.recognize(batch, self.n_samples, generator)  # each (S, B, K_l)
        lp = m.log_joint(batch, hs)  # (S, B)
        lq = m.log_recognition(batch, hs)
        log_w = (lp - lq).detach()
        w = torch.softmax(log_w, dim=0)  # w̃_s, normalised over the S samples
        value = -(torch.logsumexp(log_w, dim=0) - math.log(self.n_samples)).mean()
        surrogate = -(w * (lp + lq)).sum(0).mean()
        if self.sleep:
            surrogate = surrogate + sleep_loss(m, batch.shape[0], generator)
        return value + (surrogate - surrogate.detach())


def fit_wake_sleep(model: HelmholtzMachine, data: Tensor, *, reweighted: bool = False,
                   n_samples: int = 5, sleep: bool = True, **trainer_kwargs: Any) -> TrainResult:
    """Train ``model`` on binary ``data`` (N, D) by wake–sleep (or RWS with ``reweighted``)
    through ``learning.trainer``; ``trainer_kwargs`` go to ``Trainer`` (epochs, batch_size, lr,
    optimizer, seed, checkpoint, ...). The history's ``train_loss`` is the objective's reported
    loss per epoch (the negative ELBO or importance-weighted bound on each minibatch)."""
    if not isinstance(model, HelmholtzMachine):
        raise ValueError(f"model must be a HelmholtzMachine, got {type(model).__name__}.")
    objective: nn.Module = (ReweightedWakeSleep(model, n_samples=n_samples, sleep=sleep)
                            if reweighted else WakeSleep(model))
    return Trainer(objective, **trainer_kwargs).fit(data)
