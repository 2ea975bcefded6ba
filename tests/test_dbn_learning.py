"""Greedy layer-wise learning (Eqs 10.24–10.27) and up–down fine-tuning on bars-and-stripes."""

import pytest
import torch

from genmodels.data import bars_and_stripes
from genmodels.learning.contrastive import CDNegative
from genmodels.learning.greedy import UpDown, aggregate_posterior_samples, fit_greedy
from genmodels.learning.trainer import Trainer
from genmodels.models.dbn import bernoulli_dbn
from genmodels.models.harmonium import BernoulliRBM

KW = {"epochs": 60, "batch_size": 28, "lr": 0.02, "progress": False}


@pytest.fixture(scope="module")
def greedy():
    Y = bars_and_stripes(3)
    data = Y.repeat(20, 1)
    dbn = bernoulli_dbn([9, 8, 9], seed=0)
    results = fit_greedy(dbn, data, init="unrolled", negative=lambda _: CDNegative(5), **KW)
    return Y, data, dbn, results


def test_greedy_second_layer_improves_on_the_rbm(greedy):
    Y, _, dbn, results = greedy
    assert len(results) == 2 and all(r.epochs_run == KW["epochs"] for r in results)
    with torch.no_grad():
        rbm_ll = float(dbn.rbms[0].log_prob(Y).mean())
        bound = float(dbn.lower_bound(Y, n_samples=None).value.mean())
        ll = float(dbn.log_marginal(Y).mean())
    # the bound starts tight at the RBM's log-likelihood (unrolled) and the second layer
    # raises it; the DBN's exact log-likelihood is above its bound
    assert bound > rbm_ll + 0.05
    assert ll >= bound


def test_up_down_fine_tuning_raises_the_log_likelihood(greedy):
    Y, data, dbn, _ = greedy
    with torch.no_grad():
        before = float(dbn.log_marginal(Y).mean())
    Trainer(UpDown(dbn, k=5), epochs=40, batch_size=28, lr=3e-3, progress=False).fit(data)
    with torch.no_grad():
        after = float(dbn.log_marginal(Y).mean())
        bound = float(dbn.lower_bound(Y, n_samples=None).value.mean())
    assert after > before + 0.1 and bound <= after


def test_aggregate_posterior_draws_match_the_posterior_means():
    rbm = BernoulliRBM(4, 3, init_scale=1.0, seed=0)
    y = torch.tensor([[1.0, 0, 1, 0], [0, 1, 1, 1]])
    draws = aggregate_posterior_samples(rbm, y, n_draws=20000,
                                        generator=torch.Generator().manual_seed(0))
    assert draws.shape == (40000, 3)
    means = aggregate_posterior_samples(rbm, y, mean=True).detach()
    emp = draws.reshape(20000, 2, 3).mean(0)
    assert ((emp - means).abs() < 6 * (means * (1 - means) / 20000).sqrt()).all()


def test_greedy_from_a_trained_first_layer_leaves_it_alone():
    dbn = bernoulli_dbn([4, 3, 4], seed=1)
    before = [p.detach().clone() for p in dbn.rbm(0).parameters()]
    data = torch.bernoulli(torch.full((40, 4), 0.3), generator=torch.Generator().manual_seed(0))
    res = fit_greedy(dbn, data, start_layer=1, epochs=2, batch_size=10, lr=0.01,
                     progress=False)
    assert len(res) == 1
    for p, q in zip(dbn.rbm(0).parameters(), before, strict=True):
        assert torch.equal(p, q)
    with pytest.raises(ValueError, match="start_layer"):
        fit_greedy(dbn, data, start_layer=2)


def test_greedy_errors():
    dbn = bernoulli_dbn([4, 3, 2])
    with pytest.raises(ValueError, match="init"):
        fit_greedy(dbn, torch.ones(4, 4), init="magic")
    with pytest.raises(ValueError, match="at least two"):
        UpDown(bernoulli_dbn([4, 3]))
    dbn.untie()
    with pytest.raises(ValueError, match="untie"):
        fit_greedy(dbn, torch.ones(4, 4))
