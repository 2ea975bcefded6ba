"""InfoNCE as a mutual-information lower bound (Eqs. 10.5–10.11; Poole et al. 2019) on
correlated Gaussians of known mutual information −(d/2) log(1 − ρ²), with the optimal critic
and with a bilinear critic trained through ``learning.trainer``; contrastive predictive coding
on a Gaussian AR(1) process, whose step-s mutual information is −(D/2) log(1 − a^{2s})."""

from __future__ import annotations

import math

import pytest
import torch

from genmodels.learning.nce import InfoNCE, in_batch_info_nce_loss
from genmodels.learning.trainer import Trainer
from genmodels.models.cpc import CPC, BilinearCritic


def _pairs(n: int, d: int, rho: float, seed: int) -> torch.Tensor:
    """Rows [y, z]: each coordinate pair standard bivariate normal with correlation ρ."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, d, generator=g)
    y = rho * z + math.sqrt(1 - rho**2) * torch.randn(n, d, generator=g)
    return torch.cat([y, z], 1)


def _optimal_critic(rho: float):
    """h(y, z) = log p(y | z) − log p(y), for all pairs: [i, j] = h(y_j, z_i)."""
    a = 1 - rho**2

    def scores(y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        cross = rho * (z @ y.T) / a
        return (cross - rho**2 * y.square().sum(1)[None, :] / (2 * a)
                - rho**2 * z.square().sum(1)[:, None] / (2 * a)
                - 0.5 * y.shape[1] * math.log(a))

    return scores


def test_the_optimal_critic_is_the_log_density_ratio():
    rho, d = 0.7, 3
    data = _pairs(5, d, rho, 0)
    y, z = data[:, :d], data[:, d:]
    cond = torch.distributions.Normal(rho * z[:, None, :], math.sqrt(1 - rho**2))
    ref = (cond.log_prob(y[None]) - torch.distributions.Normal(0.0, 1.0).log_prob(y[None])
           ).sum(-1)
    torch.testing.assert_close(_optimal_critic(rho)(y, z), ref)


def test_info_nce_bound_with_the_optimal_critic_approaches_the_mutual_information():
    """Never above log K (every batch) nor, beyond its standard error, above I(Y; Z); rising
    with K and reaching I(Y; Z) when log K ≫ I."""
    d, rho = 2, 0.5
    mi = -d / 2 * math.log(1 - rho**2)  # 0.2877 nats
    data = _pairs(2**14, d, rho, 1)
    info = InfoNCE(_optimal_critic(rho), d)
    est = {K: info.mutual_information(data, K) for K in (2, 8, 64, 256)}
    for K, e in est.items():
        assert e.lower_bound <= math.log(K)
        assert e.lower_bound <= mi + 3 * e.standard_error
    bounds = [est[K].lower_bound for K in (2, 8, 64, 256)]
    assert bounds == sorted(bounds)
    assert mi - est[256].lower_bound < 0.01 + 3 * est[256].standard_error
    assert mi - est[2].lower_bound > 0.1  # far from it at K = 2
    # per batch the bound is capped at log K (each log-softmax term is ≤ 0)
    y, z = data[:, :d], data[:, d:]
    for K in (2, 8):
        per = math.log(K) - torch.stack([in_batch_info_nce_loss(info.scores(a, b)) for a, b in
                                         zip(y.split(K), z.split(K))])
        assert float(per.max()) <= math.log(K)


def test_info_nce_saturates_at_log_k_when_the_information_is_larger():
    d, rho = 10, 0.9
    mi = -d / 2 * math.log(1 - rho**2)  # 8.3 nats, above log K
    info = InfoNCE(_optimal_critic(rho), d)
    data = _pairs(2**13, d, rho, 2)
    for K in (8, 64):
        e = info.mutual_information(data, K)
        assert e.lower_bound < math.log(K) < mi
        assert math.log(K) - e.lower_bound < 0.1


def test_a_bilinear_critic_trained_by_info_nce_stays_below_the_optimal_bound():
    """h(y, z) = yᵀ W z trained through the trainer: its held-out bound rises from 0 (W = 0)
    to within 20% of the optimal critic's, and not above it (the optimal critic maximises the
    bound; the bilinear family lacks its ‖y‖² term)."""
    d, rho, K = 2, 0.5, 128
    train, test = _pairs(8192, d, rho, 3), _pairs(2**14, d, rho, 4)
    model = InfoNCE(BilinearCritic(d, d), d)
    assert model.mutual_information(test, K).lower_bound == pytest.approx(0.0, abs=1e-12)
    Trainer(model, epochs=2, batch_size=K, lr=0.02, progress=False).fit(train)
    learned = model.mutual_information(test, K)
    best = InfoNCE(_optimal_critic(rho), d).mutual_information(test, K)
    assert learned.lower_bound <= best.lower_bound + 3 * best.standard_error
    assert learned.lower_bound > 0.8 * best.lower_bound
    # the coordinates are independent pairs: the learned W is (near) diagonal and positive
    W = model.critic.W.detach()
    assert float(W.diagonal().min()) > 5 * float((W - torch.diag(W.diagonal())).abs().max())


def _ar1(n: int, T: int, D: int, a: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    eps = torch.randn(n, T, D, generator=g)
    y = torch.empty(n, T, D)
    y[:, 0] = eps[:, 0]
    for t in range(1, T):  # a loop over time steps, each vectorised over sequences
        y[:, t] = a * y[:, t - 1] + math.sqrt(1 - a * a) * eps[:, t]
    return y


def test_cpc_bounds_the_predictive_information_of_an_ar1_process():
    """CPC (encoder, GRU context, one bilinear critic per step ahead) trained through the
    trainer: per step s the held-out bound stays below I(y_{t+s}; y_{≤t}) =
    −(D/2) log(1 − a^{2s}), captures a good part of it, and falls with s as the information
    does."""
    a, D, steps = 0.8, 2, 2
    mi = torch.tensor([-(D / 2) * math.log(1 - a ** (2 * s)) for s in (1, 2)])
    train, test = _ar1(2048, 10, D, a, 5), _ar1(2048, 10, D, a, 6)
    model = CPC(D, 2, 4, steps=steps, seed=0)
    Trainer(model, epochs=4, batch_size=64, lr=0.03, seed=0, progress=False).fit(train)
    bounds = torch.stack([model.bounds(b).lower_bound for b in test.split(64)])  # (32, S)
    mean, se = bounds.mean(0), bounds.std(0) / math.sqrt(bounds.shape[0])
    assert bool((mean <= mi + 3 * se).all())
    assert bool((mean > 0.4 * mi).all())
    assert float(mean[0]) > float(mean[1])
    with pytest.raises(ValueError, match="too short for 2 steps ahead"):
        model.bounds(test[:4, :2])
    with pytest.raises(ValueError, match=r"CPC takes sequences \(B, T, D\)"):
        model.encode(test[0])


def test_in_batch_loss_is_the_diagonal_cross_entropy_for_any_batch_size() -> None:
    """The positives' labels (made once per batch size) are the diagonal at every size, in
    any order of sizes; the batched form equals the mean over its score matrices."""
    g = torch.Generator().manual_seed(4)
    for B in (5, 3, 5, 8, 2):
        scores = torch.randn(B, B, generator=g, dtype=torch.float64)
        brute = torch.stack([torch.logsumexp(scores[i], 0) - scores[i, i] for i in range(B)])
        torch.testing.assert_close(in_batch_info_nce_loss(scores), brute.mean())
    stacked = torch.randn(3, 4, 4, generator=g, dtype=torch.float64)
    torch.testing.assert_close(in_batch_info_nce_loss(stacked),
                               torch.stack([in_batch_info_nce_loss(s) for s in stacked]).mean())
    model = InfoNCE(BilinearCritic(3, 3, dot=True), 3)
    batch = torch.randn(6, 6, generator=g)
    y, z = batch[:, :3], batch[:, 3:]
    torch.testing.assert_close(model.loss(batch), in_batch_info_nce_loss(z @ y.T))
    with pytest.raises(ValueError, match="a batch must be"):
        model.loss(batch[:, :3])
