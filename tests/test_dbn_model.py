"""Deep belief nets: the unrolling identity (Fig 10.2B), Eq. 10.25 exactly, the bound."""

import pytest
import torch

from genmodels.io import load, save
from genmodels.models.dbn import DBN, bernoulli_dbn, jre_decomposition, unrolled
from genmodels.models.harmonium import BernoulliRBM
from genmodels.models.helmholtz import binary_configurations


def _random_rbm(n_visible, n_hidden, seed):
    g = torch.Generator().manual_seed(seed)
    rbm = BernoulliRBM(n_visible, n_hidden, seed=seed)
    return rbm.set_parameters(weight=torch.randn(n_hidden, n_visible, generator=g),
                              b_x=torch.randn(n_hidden, generator=g),
                              b_y=torch.randn(n_visible, generator=g))


def _data_distribution(D, seed=0):
    g = torch.Generator().manual_seed(seed)
    Y = binary_configurations(D)
    p = torch.rand(Y.shape[0], generator=g) ** 3  # far from any RBM's marginal
    return Y, p / p.sum()


def test_unrolling_identity_two_layer_dbn_equals_the_rbm():
    rbm = _random_rbm(5, 3, seed=0)
    dbn = DBN([rbm, unrolled(rbm)])
    Y = binary_configurations(5)
    torch.testing.assert_close(dbn.log_marginal(Y), rbm.log_prob(Y))
    # recognition of the unrolled net is the harmonium's posterior; the bound is tight
    torch.testing.assert_close(dbn.recognition_natural(0, Y), rbm.hidden_natural(Y))
    torch.testing.assert_close(dbn.lower_bound(Y, n_samples=None).value, rbm.log_prob(Y))
    # and a deeper unrolled stack (three layers) still has the RBM's visible marginal
    deep = DBN([rbm, unrolled(rbm), rbm_copy(rbm)])
    torch.testing.assert_close(deep.log_marginal(Y), rbm.log_prob(Y))


def rbm_copy(rbm):
    c = BernoulliRBM(rbm.visible.size, rbm.hidden.size)
    return c.set_parameters(weight=rbm.weight.detach(), b_x=rbm.b_x.detach(),
                            b_y=rbm.b_y.detach())


def test_log_marginal_matches_brute_force_on_a_random_net():
    dbn = DBN([_random_rbm(4, 3, 1), _random_rbm(3, 2, 2)])
    Y = binary_configurations(4)
    H1 = binary_configurations(3)
    lz = dbn.top_log_partition().log_z
    # oracle: log Σ_{h1} p̂_top(h1) p̂(y | h1), p̂_top by brute force over (h1, h2)
    h2 = binary_configurations(2)
    top = dbn.top
    e = -top.energy(h2[None, :, :], H1[:, None, :])  # (8, 4)
    log_top = torch.logsumexp(e, 1) - torch.logsumexp(e.flatten(), 0)
    torch.testing.assert_close(dbn.top_log_partition().log_z, torch.logsumexp(e.flatten(), 0))
    p_y = torch.sigmoid(dbn.rbms[0].visible_natural(H1))  # (8, 4)
    log_emis = (Y[:, None] * p_y.log() + (1 - Y[:, None]) * (1 - p_y).log()).sum(-1)
    torch.testing.assert_close(dbn.log_marginal(Y), torch.logsumexp(log_top + log_emis, 1))
    assert lz.shape == ()
    torch.testing.assert_close(torch.logsumexp(dbn.log_marginal(Y), 0), torch.zeros(()),
                               atol=1e-12, rtol=0)


def test_jre_equals_mre_plus_pre_and_prior_kl_plus_a_constant():
    Y, p = _data_distribution(4)
    rbm = _random_rbm(4, 3, seed=3)
    dbn = DBN([rbm, _random_rbm(3, 4, seed=4)])
    t = jre_decomposition(dbn, Y, p)
    torch.testing.assert_close(t.jre, t.mre + t.pre)
    assert t.pre > 1e-3 and t.mre > 0
    mre = (p * (p.log() - dbn.log_marginal(Y))).sum()  # independent MRE
    torch.testing.assert_close(t.mre, mre)
    # Eq. 10.25: the constant does not depend on θ_1 — change the top harmonium, it stays
    other = DBN([rbm, _random_rbm(3, 4, seed=5)])
    t2 = jre_decomposition(other, Y, p)
    torch.testing.assert_close(t2.constant, t.constant)
    assert abs(float((t2.prior_kl - t.prior_kl).detach())) > 1e-2
    torch.testing.assert_close(t2.jre - t.jre, t2.prior_kl - t.prior_kl)
    # at the unrolled start the bound is tight: PRE = 0, JRE = MRE = the RBM's own
    t0 = jre_decomposition(DBN([rbm, unrolled(rbm)]), Y, p)
    torch.testing.assert_close(t0.pre, torch.zeros(()), atol=1e-12, rtol=0)
    torch.testing.assert_close(t0.mre, (p * (p.log() - rbm.log_prob(Y))).sum())


@pytest.mark.parametrize("direction", [1.0])
def test_exact_gradient_step_from_the_unrolled_start_does_not_raise_the_mre(direction):
    Y, p = _data_distribution(4, seed=1)
    rbm = _random_rbm(4, 3, seed=6)
    top = unrolled(rbm)
    dbn = DBN([rbm, top])
    before = jre_decomposition(dbn, Y, p)
    params = list(top.parameters())
    grads = torch.autograd.grad(before.jre, params)
    with torch.no_grad():
        for q, g in zip(params, grads, strict=True):
            q.sub_(direction * 0.05 * g)
    after = jre_decomposition(dbn, Y, p)
    assert after.jre < before.jre - 1e-5
    assert after.mre <= before.mre  # MRE_new ≤ JRE_new < JRE_old = MRE_old
    # the opposite step raises it: the check can fail
    with torch.no_grad():
        for q, g in zip(params, grads, strict=True):
            q.add_(2 * 0.05 * g)
    assert jre_decomposition(dbn, Y, p).mre > before.mre


def test_lower_bound_below_log_marginal_and_monte_carlo_and_ais_agree():
    dbn = DBN([_random_rbm(5, 4, 7), _random_rbm(4, 3, 8)])
    Y = binary_configurations(5)
    exact = dbn.lower_bound(Y, n_samples=None)
    lm = dbn.log_marginal(Y)
    assert (exact.value <= lm + 1e-12).all() and (lm - exact.value).max() > 1e-3
    mc = dbn.lower_bound(Y, n_samples=2000, generator=torch.Generator().manual_seed(0))
    assert ((mc.value - exact.value).abs() < 6 * mc.stderr).all()
    ais = dbn.top_log_partition("ais", num_chains=200, num_temperatures=500, seed=1)
    b = dbn.lower_bound(Y, log_z=ais, n_samples=None)
    m, se = b.mean()
    assert abs(m - float(exact.value.mean())) < 6 * se


def test_samples_follow_the_marginal():
    dbn = DBN([_random_rbm(3, 2, 9), _random_rbm(2, 3, 10)])
    hs, y = dbn.sample(20000, 30, torch.Generator().manual_seed(1))
    assert y.shape == (20000, 3) and [h.shape for h in hs] == [(20000, 2), (20000, 3)]
    codes = (y * 2 ** torch.arange(3)).sum(1).long()
    freq = torch.bincount(codes, minlength=8) / 20000
    p = dbn.log_marginal(binary_configurations(3)).exp().detach()
    assert ((freq - p).abs() < 6 * (p * (1 - p) / 20000).sqrt()).all()


def test_recognize_shapes_errors_and_save_load(tmp_path):
    dbn = bernoulli_dbn([6, 4, 3])
    hs = dbn.recognize(torch.ones(5, 6), torch.Generator().manual_seed(0))
    assert [h.shape for h in hs] == [(5, 4), (5, 3)]
    assert dbn.layer_sizes == [6, 4, 3]
    with pytest.raises(ValueError, match=r"rbms\[1\]'s visible layer"):
        DBN([BernoulliRBM(6, 4), BernoulliRBM(5, 3)])
    with pytest.raises(ValueError, match="non-empty"):
        DBN([])
    with pytest.raises(ValueError, match="method"):
        dbn.top_log_partition("magic")
    dbn.untie()
    with torch.no_grad():
        dbn.rec_weights[0].add_(1.0)
    save(dbn, tmp_path / "dbn")
    back = load(tmp_path / "dbn")
    assert back.untied
    Y = binary_configurations(6)
    torch.testing.assert_close(back.lower_bound(Y, n_samples=None).value,
                               dbn.lower_bound(Y, n_samples=None).value)


def test_dbn_passes_the_contract_suite():
    from genmodels.testing import check_model

    def factory(dtype):
        return DBN([_random_rbm(3, 2, 11), _random_rbm(2, 3, 12)]).to(dtype)

    report = check_model(factory, binary_configurations(3), discrete=True, n_samples=20000)
    assert "sample_log_prob" in report.passed and "save_load" in report.passed
