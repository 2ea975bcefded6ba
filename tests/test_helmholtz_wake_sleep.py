"""Wake–sleep and reweighted wake–sleep on bars-and-stripes, through the trainer."""

import math

import pytest
import torch

from genmodels.data import bars_and_stripes
from genmodels.learning.wake_sleep import ReweightedWakeSleep, WakeSleep, fit_wake_sleep
from genmodels.models.helmholtz import HelmholtzMachine, binary_configurations

BUDGET = {"epochs": 60, "batch_size": 28, "lr": 0.03, "progress": False, "seed": 0}


@pytest.fixture(scope="module")
def trained():
    Y = bars_and_stripes(3)
    data = Y.repeat(20, 1)
    out = {}
    for name, rw in [("ws", False), ("rws", True)]:
        hm = HelmholtzMachine([9, 8, 4], init_scale=0.1, seed=0)
        before = float(hm.log_marginal(Y).mean())
        res = fit_wake_sleep(hm, data, reweighted=rw, n_samples=10, **BUDGET)
        out[name] = (hm, before, float(hm.log_marginal(Y).mean()), res)
    return Y, out


def test_wake_sleep_raises_the_exact_log_likelihood(trained):
    _, out = trained
    _, before, after, res = out["ws"]
    # from near-uniform pixels (−9 log 2) most of the way to the uniform over the 14 images
    assert before < -6.0 and after > before + 1.5
    assert len(res.history["train_loss"]) == BUDGET["epochs"]


def test_reweighted_ends_at_least_as_high_as_wake_sleep(trained):
    _, out = trained
    assert out["rws"][2] >= out["ws"][2]
    assert out["rws"][2] > -math.log(14) - 1.0


def test_trained_recognition_is_closer_to_the_posterior(trained):
    Y, out = trained
    hm = out["ws"][0]
    kl_trained = float(hm.posterior_kl(Y).mean())
    fresh = HelmholtzMachine([9, 8, 4], init_scale=0.1, seed=0)
    with torch.no_grad():
        for p, q in zip(hm.recognition_parameters(), fresh.recognition_parameters(),
                        strict=True):
            p.copy_(q)
    assert kl_trained < float(hm.posterior_kl(Y).mean())


def test_wake_sleep_phases_touch_disjoint_parameters():
    hm = HelmholtzMachine([4, 3, 2], init_scale=0.5, seed=1)
    y = binary_configurations(4)
    WakeSleep(hm).loss(y, torch.Generator().manual_seed(0)).backward()
    g1 = [p.grad.clone() for p in hm.parameters()]
    hm.zero_grad()
    # the wake phase alone gives the generative gradients, the sleep phase the recognition ones
    from genmodels.learning.wake_sleep import sleep_loss, wake_loss

    g = torch.Generator().manual_seed(0)
    wake, _ = wake_loss(hm, y, g)
    sleep = sleep_loss(hm, y.shape[0], g)
    gen = torch.autograd.grad(wake, hm.generative_parameters())
    rec = torch.autograd.grad(sleep, hm.recognition_parameters())
    names = [n for n, _ in hm.named_parameters()]
    by_name = dict(zip(names, g1, strict=True))
    ids = {id(p): n for n, p in hm.named_parameters()}
    for p, gp in zip(hm.generative_parameters(), gen, strict=True):
        torch.testing.assert_close(by_name[ids[id(p)]], gp)
    for p, gp in zip(hm.recognition_parameters(), rec, strict=True):
        torch.testing.assert_close(by_name[ids[id(p)]], gp)


def test_rws_generative_gradient_approaches_the_exact_gradient():
    hm = HelmholtzMachine([5, 3, 2], init_scale=1.0, seed=2)
    y = binary_configurations(5)[::4]
    exact = torch.autograd.grad(-hm.log_marginal(y).mean(), hm.generative_parameters())
    loss = ReweightedWakeSleep(hm, n_samples=20000, sleep=False).loss(
        y, torch.Generator().manual_seed(3))
    est = torch.autograd.grad(loss, hm.generative_parameters())
    e, x = torch.cat([t.flatten() for t in exact]), torch.cat([t.flatten() for t in est])
    assert (e - x).norm() < 0.05 * e.norm()
    # and the reported loss is the negative importance-weighted bound, close to −log p̂(y)
    assert abs(float(loss) + float(hm.log_marginal(y).mean())) < 0.02


def test_objective_errors():
    hm = HelmholtzMachine([4, 2])
    with pytest.raises(ValueError, match=r"\(B, 4\)"):
        WakeSleep(hm).loss(torch.ones(3, 5))
    with pytest.raises(ValueError, match="n_samples"):
        ReweightedWakeSleep(hm, n_samples=0)
    with pytest.raises(ValueError, match="HelmholtzMachine"):
        fit_wake_sleep(torch.nn.Linear(2, 2), torch.ones(3, 2))
