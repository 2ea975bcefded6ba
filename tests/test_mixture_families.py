"""Mixtures of Bernoullis and of Poissons: the same MixtureModel code with the families
helper's exponential-family emissions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import bernoulli, poisson

from genmodels.io import load, save
from genmodels.learning.em import fit_em, run_em
from genmodels.models.family_emissions import BernoulliEmission, PoissonEmission
from genmodels.models.mixture import MixtureModel


def bernoulli_truth() -> MixtureModel:
    g = torch.Generator().manual_seed(0)
    probs = torch.rand(3, 20, generator=g) * 0.8 + 0.1
    probs[0, :7] = 0.95
    probs[1, 7:14] = 0.95
    probs[2, 14:] = 0.95
    return MixtureModel(torch.tensor([0.5, 0.3, 0.2]), BernoulliEmission(3, 20, probs))


def poisson_truth() -> MixtureModel:
    rates = torch.tensor([[1.0, 8.0, 3.0], [10.0, 1.0, 0.5], [4.0, 4.0, 12.0]])
    return MixtureModel(torch.tensor([0.4, 0.35, 0.25]), PoissonEmission(3, 3, rates))


@pytest.mark.parametrize("make", [bernoulli_truth, poisson_truth])
def test_posterior_is_bayes_rule(make):
    model = make()
    _, y = model.sample(200, torch.Generator().manual_seed(1))
    em = model.emission
    if isinstance(em, BernoulliEmission):
        lik = np.stack([bernoulli(em.probs[k].numpy()).pmf(y.numpy()).prod(1) for k in range(3)],
                       1)
    else:
        lik = np.stack([poisson(em.rates[k].numpy()).pmf(y.numpy()).prod(1) for k in range(3)],
                       1)
    joint = lik * model.weights.numpy()
    post = model.posterior(y)
    np.testing.assert_allclose(post.responsibilities.numpy(), joint / joint.sum(1, keepdims=True),
                               rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(post.log_marginal.numpy(), np.log(joint.sum(1)), rtol=1e-10)


def test_bernoulli_marginal_sums_to_one_over_all_binary_vectors():
    probs = torch.tensor([[0.1, 0.7, 0.4, 0.9], [0.8, 0.2, 0.5, 0.3]])
    model = MixtureModel(torch.tensor([0.3, 0.7]), BernoulliEmission(2, 4, probs))
    grid = torch.tensor([[(i >> b) & 1 for b in range(4)] for i in range(16)], dtype=torch.float64)
    assert abs(float(model.log_marginal(grid).exp().sum()) - 1.0) < 1e-12


@pytest.mark.parametrize("make", [bernoulli_truth, poisson_truth])
def test_em_is_monotone_and_recovers_the_parameters(make):
    truth = make()
    _, y = truth.sample(6000, torch.Generator().manual_seed(2))
    em = type(truth.emission)(3, truth.emission.num_features)
    model = MixtureModel(torch.ones(3), em)
    model.initialize(y, torch.Generator().manual_seed(0))
    lls = [float(model.log_marginal(y).sum())]
    for _ in range(40):  # one EM iteration at a time
        model.maximize(model.expected_stats(y).stats)
        lls.append(float(model.log_marginal(y).sum()))
    # the pseudo-count (1e-6) makes the M step a MAP step; monotone to rounding
    assert (np.diff(lls) >= -1e-9 * np.abs(lls[1:])).all()
    res = run_em(model, [y], max_iter=300, tol=1e-10)
    assert res.converged
    true_params = truth.emission.probs if isinstance(em, BernoulliEmission) else \
        truth.emission.rates
    fit_params = em.probs if isinstance(em, BernoulliEmission) else em.rates
    order = torch.cdist(true_params, fit_params).argmin(1)
    assert sorted(order.tolist()) == [0, 1, 2]
    torch.testing.assert_close(model.weights[order], truth.weights, atol=0.025, rtol=0)
    # sampling error: Bernoulli sd ≤ 0.5/sqrt(6000·0.2) ≈ 0.015; Poisson sd ≤ sqrt(12/1200) = 0.1
    tol = 0.07 if isinstance(em, BernoulliEmission) else 0.45
    torch.testing.assert_close(fit_params[order], true_params, atol=tol, rtol=0)


def test_fit_em_restarts_and_save_load(tmp_path):
    truth = poisson_truth()
    _, y = truth.sample(2000, torch.Generator().manual_seed(3))
    model = MixtureModel(torch.ones(3), PoissonEmission(3, 3), init="k-means++")
    res = fit_em(model, y, n_init=3, seed=0, max_iter=200, tol=1e-8)
    assert res.converged
    save(model, tmp_path / "pm")
    back = load(tmp_path / "pm")
    torch.testing.assert_close(back.log_marginal(y), model.log_marginal(y))
    assert back.num_parameters() == 2 + 9
