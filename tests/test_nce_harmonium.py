"""NCE on a harmonium's free energy (the item left from issue 12): a small enumerable RBM
trained by ``genmodels.learning.nce.NCE`` through the trainer reaches the exact maximum-
likelihood fit, and its learned constant c is the model's exact log Z (self-normalisation)."""

from __future__ import annotations

import torch

from genmodels.families import Bernoulli
from genmodels.inference.partition import exact_log_partition
from genmodels.learning.contrastive import exact_negative_log_likelihood
from genmodels.learning.nce import NCE
from genmodels.models.harmonium import BernoulliRBM

DT = torch.float64


class IndependentBernoulliNoise(torch.nn.Module):
    """q(y) = Π_i Bernoulli(y_i; p_i), the data's pixel base rates."""

    def __init__(self, probs: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("logits", torch.logit(probs))

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.bernoulli(torch.sigmoid(self.logits).expand(n, -1), generator=generator)

    def log_prob(self, y: torch.Tensor) -> torch.Tensor:
        return Bernoulli(self.logits[:, None]).log_prob(y).sum(-1)


def _visible_probs(model: BernoulliRBM) -> tuple[torch.Tensor, torch.Tensor]:
    ys = model.visible.states(0, model.visible.num_states)
    with torch.no_grad():
        return ys, torch.softmax(-model.free_energy(ys), 0)


def _minimise(params, objective) -> None:
    opt = torch.optim.LBFGS(params, max_iter=200, tolerance_grad=1e-9, tolerance_change=1e-14,
                            line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = objective()
        loss.backward()
        return loss

    opt.step(closure)


def test_nce_on_the_free_energy_approaches_the_exact_likelihood_fit() -> None:
    """A V = 5, H = 2 RBM; 5,000 exact draws from a random "true" RBM. The maximum-likelihood
    fit minimises the exact NLL (log Z by enumeration); the NCE fit minimises
    ``NCE(model, noise).loss`` (noise = the pixel base rates, c = log Z learned) on fixed
    noise draws, so both are run to their optimum with L-BFGS from the same start (the NCE
    objective trained with SGD through the trainer is tested in test_nce_recovery.py). NCE's
    fit reaches ML's likelihood, gets closer to ML's distribution as ν grows (Gutmann &
    Hyvärinen 2012, Thm 3: NCE → ML as ν → ∞), and its c is its own exact log Z."""
    g = torch.Generator().manual_seed(0)
    truth = BernoulliRBM(5, 2).set_parameters(torch.randn(2, 5, generator=g, dtype=DT),
                                              torch.randn(2, generator=g, dtype=DT),
                                              0.5 * torch.randn(5, generator=g, dtype=DT))
    ys, p_true = _visible_probs(truth)
    idx = torch.multinomial(p_true, 5000, replacement=True, generator=g)
    train = ys[idx]
    p_emp = torch.bincount(idx, minlength=32).to(DT) / idx.numel()

    ml = BernoulliRBM(5, 2, seed=1, init_scale=0.5)
    _minimise(ml.parameters(),
              lambda: (p_emp * ml.free_energy(ys)).sum() + exact_log_partition(ml).log_z)
    _, p_ml = _visible_probs(ml)
    with torch.no_grad():
        nll_ml = float(exact_negative_log_likelihood(ml, train))
        nll_init = float(exact_negative_log_likelihood(
            BernoulliRBM(5, 2, seed=1, init_scale=0.5), train))
    assert nll_init - nll_ml > 0.2  # there is something to learn

    noise = IndependentBernoulliNoise((train.sum(0) + 0.5) / (train.shape[0] + 1))
    tvs = []
    for nu in (1.0, 4.0):
        model = BernoulliRBM(5, 2, seed=1, init_scale=0.5)
        nce = NCE(model, noise, noise_ratio=nu)
        _minimise(list(nce.parameters()), lambda nce=nce: nce.loss(
            train, torch.Generator().manual_seed(5)))
        _, p_nce = _visible_probs(model)
        tvs.append(0.5 * float((p_ml - p_nce).abs().sum()))
        with torch.no_grad():
            nll = float(exact_negative_log_likelihood(model, train))
            log_z = float(exact_log_partition(model).log_z)
        assert nll - nll_ml < 3e-3, (nu, nll, nll_ml)
        # self-normalised: the learned constant is the fitted model's exact log Z
        assert abs(float(nce.log_normaliser.detach()) - log_z) < 0.02, nu
    assert tvs[1] < tvs[0] < 0.05, tvs
