"""The noise-contrastive losses as formulas: NCE's posterior (Eq. 10.2, S2:138-147), negative
sampling as NCE with k q ≡ 1 and its closed-form gradient (S2:160-175), InfoNCE as the cross
entropy of Eq. 10.7, local NCE (Eq. 10.13), the pointwise optimum of the population objective
(S2:197-292, A12), and the errors for bad input."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from genmodels.learning.nce import (
    NCE,
    GaussianNoise,
    InfoNCE,
    ModelNoise,
    UnigramNoise,
    conditional_nce_loss,
    in_batch_info_nce_loss,
    info_nce_bound,
    info_nce_loss,
    local_nce_loss,
    nce_logits,
    nce_loss,
    negative_sampling_loss,
    skipgram_negative_sampling_loss,
)
from genmodels.models.energy import GaussianEnergy, GaussianMixtureEnergy, TableEnergy


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_posterior_is_u_over_u_plus_nu_q():
    g = _gen()
    log_u, log_q = torch.randn(50, generator=g), torch.randn(50, generator=g) - 1.0
    for nu in (1.0, 5.0, 0.3):
        post = torch.sigmoid(nce_logits(log_u, log_q, nu))
        u, q = log_u.exp(), log_q.exp()
        torch.testing.assert_close(post, u / (u + nu * q), rtol=1e-13, atol=0)


def test_nce_loss_is_the_posterior_cross_entropy_with_prior_one_over_one_plus_nu():
    """Written out by hand: labels 1 for the data, 0 for the noise, each example its
    −log posterior, averaged over all N + M examples (ν = M/N); at ν = 1 Eq. 10.4."""
    g = _gen(1)
    dp, dn = torch.randn(7, generator=g), torch.randn(21, generator=g)
    logits = torch.cat([dp, dn])
    labels = torch.cat([torch.ones(7), torch.zeros(21)])
    ref = F.binary_cross_entropy_with_logits(logits, labels)
    torch.testing.assert_close(nce_loss(dp, dn), ref)
    dn1 = torch.randn(7, generator=g)
    eq_10_4 = 0.5 * (-F.logsigmoid(dp)).mean() + 0.5 * (-F.logsigmoid(-dn1)).mean()
    torch.testing.assert_close(nce_loss(dp, dn1), eq_10_4)
    # k per datum (the slides' conditional form) is the same loss with ν = k
    torch.testing.assert_close(nce_loss(dp, dn.view(7, 3)), ref)


def _grid_population_loss(log_u, log_p, log_q, nu, w, log_nu=True):
    """The population NCE loss on a quadrature grid with cell width w."""
    delta = nce_logits(log_u, log_q, nu) if log_nu else log_u - log_q
    return nce_loss(delta, delta, nu, pos_weights=log_p.exp() * w, neg_weights=log_q.exp() * w)


def test_population_optimum_is_pointwise_g_equals_nu_q_over_p():
    """A12 / S2:197-292: maximising C over G pointwise on a discrete grid gives G = ν q/p,
    i.e. u = p (the minimiser of the NCE loss is the normalised density)."""
    g = _gen(2)
    V = 12
    p = torch.softmax(torch.randn(V, generator=g), 0)
    q = torch.softmax(torch.randn(V, generator=g), 0)
    for nu in (1.0, 3.0, 0.5):
        log_u = torch.zeros(V, requires_grad=True)
        opt = torch.optim.LBFGS([log_u], lr=1, max_iter=200, tolerance_grad=1e-13,
                                tolerance_change=1e-15, line_search_fn="strong_wolfe")

        def closure(nu=nu, log_u=log_u, opt=opt):
            opt.zero_grad()
            loss = _grid_population_loss(log_u, p.log(), q.log(), nu, 1.0)
            loss.backward()
            return loss

        opt.step(closure)
        G = nu * q / log_u.detach().exp()
        torch.testing.assert_close(G, nu * q / p, rtol=1e-6, atol=0)


def test_population_loss_is_lowest_at_the_normalised_gaussian_energy():
    """I1: the loss at the true normalised energy is below the loss at E + δ, δ = ±0.5, for
    ν = 1 and ν = 4 (exact expectations on a fine grid)."""
    y = torch.linspace(-20, 20, 40001)
    w = float(y[1] - y[0])
    mu0, s0 = 0.5, 1.5
    log_p = -0.5 * ((y - mu0) / s0) ** 2 - 0.5 * math.log(2 * math.pi * s0**2)
    log_q = -0.5 * (y / 3.0) ** 2 - 0.5 * math.log(2 * math.pi * 9.0)
    for nu in (1.0, 4.0):
        best = _grid_population_loss(log_p, log_p, log_q, nu, w)
        for delta in (-0.5, 0.5, -0.05, 0.05):
            assert float(_grid_population_loss(log_p - delta, log_p, log_q, nu, w)) > \
                float(best)


def test_without_log_nu_the_optimum_is_off_by_log_nu():
    """With ν ≠ 1 the log ν in Δ is needed: dropping it moves the optimal constant by log ν
    (u = p/ν), far outside NCE's tolerance."""
    y = torch.linspace(-20, 20, 40001)
    w = float(y[1] - y[0])
    log_p = -0.5 * y**2 - 0.5 * math.log(2 * math.pi)
    log_q = -0.5 * (y / 3.0) ** 2 - 0.5 * math.log(2 * math.pi * 9.0)
    nu = 4.0

    def best_constant(log_nu: bool) -> float:
        c = torch.zeros((), requires_grad=True)
        opt = torch.optim.LBFGS([c], lr=1, max_iter=100, tolerance_grad=1e-12,
                                line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = _grid_population_loss(log_p - c, log_p, log_q, nu, w, log_nu=log_nu)
            loss.backward()
            return loss

        opt.step(closure)
        return float(c.detach())

    assert abs(best_constant(True)) < 1e-4
    assert abs(best_constant(False) - math.log(nu)) < 1e-4


def test_negative_sampling_gradient_has_its_closed_form():
    """I3: ∂ℓ/∂u_w = (σ(u_wᵀv_c) − 1) v_c for the positive, σ(u_w̄ᵀv_c) v_c for each negative;
    ∂ℓ/∂v_c = (σ(s⁺) − 1) u_w + Σ_j σ(s⁻_j) u_w̄ⱼ."""
    g = _gen(3)
    V, D = 10, 4
    U = torch.randn(V, D, generator=g, requires_grad=True)
    Vc = torch.randn(V, D, generator=g, requires_grad=True)
    c, w, neg = torch.tensor([2]), torch.tensor([5]), torch.tensor([[1, 7, 9]])
    skipgram_negative_sampling_loss(U, Vc, c, w, neg).backward()
    v, u = Vc[2].detach(), U.detach()
    gu = torch.zeros(V, D)
    gu[5] = (torch.sigmoid(u[5] @ v) - 1) * v
    for j in (1, 7, 9):
        gu[j] = torch.sigmoid(u[j] @ v) * v
    gv = (torch.sigmoid(u[5] @ v) - 1) * u[5] + sum(torch.sigmoid(u[j] @ v) * u[j]
                                                  for j in (1, 7, 9))
    torch.testing.assert_close(U.grad, gu)
    torch.testing.assert_close(Vc.grad[2], gv)
    assert float(Vc.grad[[0, 1, 3, 4, 5, 6, 7, 8, 9]].abs().max()) == 0.0


def test_negative_sampling_is_nce_with_k_q_equal_one():
    """With q uniform on V words and k = V (the slides' case, k q ≡ 1): Δs = s, and the
    negative-sampling loss is (1 + k) times NCE's (and conditional NCE's) loss."""
    g = _gen(4)
    V = k = 8
    s_pos, s_neg = torch.randn(16, generator=g), torch.randn(16, k, generator=g)
    q = UnigramNoise(torch.ones(V), power=1.0)
    w, w_neg = torch.randint(0, V, (16,), generator=g), torch.randint(0, V, (16, k), generator=g)
    log_q_pos, log_q_neg = q.log_prob(w), q.log_prob(w_neg)
    torch.testing.assert_close(nce_logits(s_pos, log_q_pos, k), s_pos)
    ns = negative_sampling_loss(s_pos, s_neg)
    torch.testing.assert_close(ns, (1 + k) * nce_loss(s_pos, s_neg))
    torch.testing.assert_close(ns, (1 + k) * conditional_nce_loss(s_pos, s_neg, log_q_pos,
                                                                 log_q_neg))
    # with any other noise, conditional NCE is not negative sampling
    q2 = UnigramNoise(torch.arange(1.0, V + 1), power=1.0)
    other = conditional_nce_loss(s_pos, s_neg, q2.log_prob(w), q2.log_prob(w_neg))
    assert abs(float(other - ns / (1 + k))) > 1e-3


def test_info_nce_is_cross_entropy_with_the_positive_index():
    g = _gen(5)
    B, K = 32, 6
    h_pos, h_neg = torch.randn(B, generator=g), torch.randn(B, K - 1, generator=g)
    ref = F.cross_entropy(torch.cat([h_pos[:, None], h_neg], 1), torch.zeros(B, dtype=torch.long))
    torch.testing.assert_close(info_nce_loss(h_pos, h_neg), ref)
    scores = torch.randn(B, B, generator=g)
    torch.testing.assert_close(in_batch_info_nce_loss(scores),
                               F.cross_entropy(scores, torch.arange(B)))
    # h is defined up to a function of z only: adding a per-row constant changes nothing
    torch.testing.assert_close(in_batch_info_nce_loss(scores + torch.randn(B, 1, generator=g)),
                               in_batch_info_nce_loss(scores))
    # the bound never exceeds log K
    assert float(info_nce_bound(in_batch_info_nce_loss(scores * 50), B)) <= math.log(B)


def test_local_nce_is_a_sum_of_binary_logistic_losses_and_not_info_nce():
    g = _gen(6)
    B, K = 64, 5
    h_pos = torch.randn(B, generator=g, requires_grad=True)
    h_neg = torch.randn(B, K - 1, generator=g, requires_grad=True)
    loss = local_nce_loss(h_pos, h_neg)
    bce = F.binary_cross_entropy_with_logits
    ref = (bce(h_pos, torch.ones(B), reduction="sum")
           + bce(h_neg, torch.zeros(B, K - 1), reduction="sum")) / B
    torch.testing.assert_close(loss, ref)
    assert abs(float((loss - info_nce_loss(h_pos, h_neg)).detach())) > 0.1  # Eq. 10.13 ≠ Eq. 10.7
    loss.backward()  # the gradient: σ(h) − 1 at the positive, σ(h) at each negative
    torch.testing.assert_close(h_pos.grad, (torch.sigmoid(h_pos) - 1).detach() / B)
    torch.testing.assert_close(h_neg.grad, torch.sigmoid(h_neg).detach() / B)
    # with one negative it is binary NCE (ν = 1, Eq. 10.4) summed over the pair
    one = h_neg[:, :1].detach().reshape(-1)
    torch.testing.assert_close(local_nce_loss(h_pos.detach(), one[:, None]),
                               2 * nce_loss(h_pos.detach(), one))


def test_noise_distributions_sample_what_they_evaluate():
    g = _gen(7)
    noise = GaussianNoise(torch.tensor([1.0, -2.0]), torch.tensor([[2.0, 0.6], [0.6, 1.0]]))
    y = noise.sample(200_000, g)
    torch.testing.assert_close(y.mean(0), noise.loc, atol=0.02, rtol=0)
    torch.testing.assert_close(torch.cov(y.T), noise.scale_tril @ noise.scale_tril.T,
                               atol=0.03, rtol=0)
    ref = torch.distributions.MultivariateNormal(noise.loc, noise.scale_tril @ noise.scale_tril.T)
    torch.testing.assert_close(noise.log_prob(y[:10]), ref.log_prob(y[:10]))
    fitted = GaussianNoise.fit(y, scale=2.0)
    torch.testing.assert_close(fitted.scale_tril @ fitted.scale_tril.T,
                               4 * torch.cov(y.T), rtol=1e-4, atol=0)
    uni = UnigramNoise(torch.tensor([1.0, 0.0, 4.0, 16.0]), power=0.5)
    w = uni.sample(400_000, g)
    freq = torch.bincount(w, minlength=4) / w.numel()
    torch.testing.assert_close(freq, torch.tensor([1.0, 0.0, 2.0, 4.0]) / 7, atol=3e-3, rtol=0)
    assert float(uni.log_prob(torch.tensor(1))) == -math.inf


def test_model_noise_wraps_a_genmodels_model():
    from genmodels import GaussianMixture

    g = _gen(8)
    X = torch.randn(500, 2, generator=g)
    gm = GaussianMixture(2, random_state=0).fit(X.numpy())
    noise = ModelNoise(gm.model_)
    y = noise.sample(5, g)
    assert y.shape == (5, 2)
    torch.testing.assert_close(noise.log_prob(y), torch.as_tensor(gm.score_samples(y.numpy())))
    with pytest.raises(ValueError, match="cannot be the noise"):
        ModelNoise(object())


def test_the_noise_is_not_trained():
    """A noise model with parameters of its own stays fixed while NCE trains the model."""
    from genmodels.learning.trainer import Trainer

    class LearnableNoise(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.loc = torch.nn.Parameter(torch.zeros(1))

        def sample(self, n, generator=None):
            return self.loc + torch.randn(n, 1, generator=generator)

        def log_marginal(self, y):
            return torch.distributions.Normal(self.loc, 1.0).log_prob(y).sum(-1)

    noise = ModelNoise(LearnableNoise())
    model = NCE(GaussianEnergy(1), noise)
    Trainer(model, epochs=3, batch_size=50, lr=0.1, progress=False).fit(
        torch.randn(200, 1, generator=_gen(11)) + 1.0)
    assert float(noise.model.loc.detach()) == 0.0
    assert float(model.model.loc.detach()) != 0.0


def test_nce_wrapper_accepts_energy_free_energy_and_callables():
    e = GaussianEnergy(2)
    noise = GaussianNoise(torch.zeros(2), torch.eye(2))
    y = torch.randn(4, 2, generator=_gen(9))

    class FreeEnergy(torch.nn.Module):  # a harmonium-like model: log u = −F
        def free_energy(self, y):
            return 0.5 * y.square().sum(-1)

    for model in (e, FreeEnergy(), lambda y: -0.5 * y.square().sum(-1)):
        nce = NCE(model, noise)
        torch.testing.assert_close(nce.log_density(y), -0.5 * y.square().sum(-1))
    with pytest.raises(ValueError, match="no unnormalised log-density"):
        NCE(object(), noise)
    with pytest.raises(ValueError, match="must have sample"):
        NCE(e, object())  # type: ignore[arg-type]


def test_bad_input_says_what_and_where():
    g = _gen(10)
    with pytest.raises(ValueError, match="noise sample is empty"):
        nce_loss(torch.randn(3), torch.empty(0))
    with pytest.raises(ValueError, match="data sample is empty"):
        nce_loss(torch.empty(0), torch.randn(3))
    with pytest.raises(ValueError, match="one row per datum: 3 data but 4 rows"):
        nce_loss(torch.randn(3), torch.randn(4, 2))
    with pytest.raises(ValueError, match="same shape"):
        nce_logits(torch.randn(3), torch.randn(4))
    with pytest.raises(ValueError, match="noise sample is empty"):
        conditional_nce_loss(torch.randn(3), torch.randn(3, 0), torch.randn(3),
                             torch.randn(3, 0))
    # a noise density that is zero where the data are
    model = NCE(TableEnergy(3), UnigramNoise(torch.tensor([1.0, 0.0, 1.0])))
    with pytest.raises(ValueError, match=r"noise density is zero at data \(batch\) index 2"):
        model.loss(torch.tensor([0, 2, 1, 0]), g)
    with pytest.raises(ValueError, match=r"zero at data \(pair\) index 1"):
        conditional_nce_loss(torch.randn(2), torch.randn(2, 1),
                             torch.tensor([0.0, -math.inf]), torch.zeros(2, 1))
    # mismatched shapes between the data and the noise
    m = NCE(GaussianMixtureEnergy(2, 3), GaussianNoise(torch.zeros(2), torch.eye(2)))
    with pytest.raises(ValueError, match=r"noise draws have shape \(2,\) per sample but the "
                                         r"data \(3,\)"):
        m.loss(torch.randn(5, 3, generator=g), g)
    with pytest.raises(ValueError, match="gives no noise sample"):
        NCE(TableEnergy(3), UnigramNoise(torch.ones(3)), noise_ratio=0.1).loss(
            torch.tensor([0, 1]), g)
    with pytest.raises(ValueError, match="noise_ratio must be a finite number > 0"):
        NCE(TableEnergy(3), UnigramNoise(torch.ones(3)), noise_ratio=0)
    with pytest.raises(ValueError, match=r"h_pos must be \(B,\) and h_neg \(B, K - 1\)"):
        info_nce_loss(torch.randn(3), torch.randn(4, 2))
    with pytest.raises(ValueError, match="at least one negative"):
        info_nce_loss(torch.randn(3), torch.randn(3, 0))
    with pytest.raises(ValueError, match="must be square"):
        in_batch_info_nce_loss(torch.randn(3, 4))
    with pytest.raises(ValueError, match=r"h_pos must be \(B,\)"):
        local_nce_loss(torch.randn(3), torch.randn(3))
    with pytest.raises(ValueError, match=r"s_pos must be \(B,\) and s_neg \(B, k\)"):
        negative_sampling_loss(torch.randn(3), torch.randn(2, 5))
    with pytest.raises(ValueError, match="covariance must be symmetric positive definite"):
        GaussianNoise(torch.zeros(2), -torch.eye(2))
    with pytest.raises(ValueError, match="counts must be non-negative"):
        UnigramNoise(torch.tensor([1.0, -1.0]))
    info = InfoNCE(lambda y, z: z @ y.T, dim_y=2)
    with pytest.raises(ValueError, match=r"a batch must be \(B, dim_y \+ dim_z\) with dim_y = 2"):
        info.loss(torch.randn(4, 2))
    with pytest.raises(ValueError, match="y and z must pair up: 4 rows of y, 3 of z"):
        info.scores(torch.randn(4, 2), torch.randn(3, 2))
