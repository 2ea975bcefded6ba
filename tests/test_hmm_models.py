"""HMM model, Baum–Welch and the hmmlearn-compatible estimators (F3): parity with hmmlearn on
the same parameters and data, recovery, monotonicity, frozen parameters, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genmodels.estimators.hmm import GMMHMM, CategoricalHMM, GaussianHMM, PoissonHMM
from genmodels.io import load, save
from genmodels.learning.em import run_em
from genmodels.models.covariance import GaussianEmission
from genmodels.models.family_emissions import CategoricalEmission
from genmodels.models.hmm import HiddenMarkovModel, pack_sequences

hmm = pytest.importorskip("hmmlearn.hmm")

START = np.array([0.6, 0.3, 0.1])
TRANS = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.2, 0.7]])
MEANS = np.array([[0.0, 0.0], [3.0, 3.0], [-3.0, 2.0]])
LENGTHS = [120, 80, 100]


def _close(a, b, rtol=1e-6):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=rtol, atol=1e-9)


def _covars(ctype):
    full = np.array([[[1.0, 0.3], [0.3, 1.5]], [[2.0, -0.4], [-0.4, 1.0]],
                     [[0.5, 0.1], [0.1, 0.7]]])
    return {"full": full, "diag": np.array([[1.0, 1.5], [2.0, 1.0], [0.5, 0.7]]),
            "spherical": np.array([1.0, 2.0, 0.5]), "tied": full[0]}[ctype]


@pytest.mark.parametrize("ctype", ["full", "diag", "spherical", "tied"])
def test_gaussian_parity_with_hmmlearn(ctype):
    ref = hmm.GaussianHMM(3, covariance_type=ctype, covars_prior=0.0, n_iter=6, tol=0.0,
                          init_params="", implementation="scaling")
    ref.startprob_, ref.transmat_, ref.means_ = START, TRANS, MEANS
    ref.covars_ = _covars(ctype)
    X, _ = ref.sample(sum(LENGTHS), random_state=1)
    ours = GaussianHMM(3, ctype, reg_covar=0.0, n_iter=6, tol=0.0, init_params="")
    ours.startprob_, ours.transmat_, ours.means_ = START, TRANS, MEANS
    ours.covars_ = _covars(ctype)
    _close(ours.score(X, LENGTHS), ref.score(X, LENGTHS))
    lp_o, post_o = ours.score_samples(X, LENGTHS)
    lp_r, post_r = ref.score_samples(X, LENGTHS)
    _close(lp_o, lp_r)
    _close(post_o, post_r)
    vo, vr = ours.decode(X, LENGTHS), ref.decode(X, LENGTHS)
    _close(vo[0], vr[0])
    assert np.array_equal(vo[1], vr[1])
    mo, mr = ours.decode(X, LENGTHS, algorithm="map"), ref.decode(X, LENGTHS, algorithm="map")
    _close(mo[0], mr[0])
    assert np.array_equal(mo[1], mr[1])
    ref.fit(X, LENGTHS)
    ours.fit(X, LENGTHS)
    _close(ours.monitor_.history, ref.monitor_.history)  # the Baum–Welch trajectory
    assert np.all(np.diff(ours.monitor_.history) >= -1e-8)
    _close(ours.transmat_, ref.transmat_)
    _close(ours.means_, ref.means_)
    if ctype == "spherical":  # hmmlearn keeps spherical variances tiled to (K, D) after fit
        _close(ours._covars_, ref._covars_[:, 0])
    else:
        _close(ours.covars_, ref.covars_)


@pytest.mark.parametrize(("name", "attr", "value", "seed"), [
    ("CategoricalHMM", "emissionprob_",
     np.array([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.3, 0.3, 0.4]]), 2),
    ("PoissonHMM", "lambdas_", np.array([[1.0, 5.0], [4.0, 0.5], [9.0, 9.0]]), 3),
])
def test_categorical_and_poisson_parity_with_hmmlearn(name, attr, value, seed):
    ref = getattr(hmm, name)(3, n_iter=5, tol=0.0, init_params="", implementation="scaling")
    ours = {"CategoricalHMM": CategoricalHMM, "PoissonHMM": PoissonHMM}[name](
        3, n_iter=5, tol=0.0, init_params="", pseudo_count=1e-12)
    for m in (ref, ours):
        m.startprob_, m.transmat_ = START, TRANS
        setattr(m, attr, value)
    X, _ = ref.sample(sum(LENGTHS), random_state=seed)
    _close(ours.score(X, LENGTHS), ref.score(X, LENGTHS))
    _close(ours.predict_proba(X, LENGTHS), ref.predict_proba(X, LENGTHS))
    assert np.array_equal(ours.predict(X, LENGTHS), ref.predict(X, LENGTHS))
    ref.fit(X, LENGTHS)
    ours.fit(X, LENGTHS)
    _close(ours.monitor_.history, ref.monitor_.history)
    _close(getattr(ours, attr), getattr(ref, attr))


@pytest.mark.parametrize("ctype", ["diag", "tied", "full", "spherical"])
def test_gmmhmm_parity_with_hmmlearn(ctype):
    rng = np.random.default_rng(0)
    w = np.array([[0.3, 0.7], [0.5, 0.5], [0.9, 0.1]])
    means = rng.normal(size=(3, 2, 2)) * 3
    if ctype == "diag":
        covars = rng.uniform(0.5, 1.5, size=(3, 2, 2))  # (K, M, D)
        # covars_prior=-1.5, covars_weight=0 make hmmlearn's diagonal M step the plain MLE
        prior = dict(covars_prior=-1.5, covars_weight=0.0)
        # 3 states · (1 weight + 2·2 means + 2·2 variances) + 2 + 3·2
        n_params = 3 * (1 + 4 + 4) + 2 + 6
    elif ctype == "tied":  # one full matrix per state, shared by its M components: (K, D, D)
        covars = np.stack([_covars("full")[i] for i in range(3)])
        prior = {}  # hmmlearn's defaults for "tied" are the plain MLE
        n_params = 3 * (1 + 4 + 3) + 2 + 6
    elif ctype == "full":  # one matrix per component: (K, M, D, D)
        covars = np.stack([_covars("full")[[i, (i + 1) % 3]] for i in range(3)])
        prior = {}  # hmmlearn's defaults (prior 0, weight −(D + 2)) are the plain MLE
        n_params = 3 * (1 + 4 + 2 * 3) + 2 + 6
    else:  # spherical: one variance per component, (K, M)
        covars = rng.uniform(0.5, 1.5, size=(3, 2))
        prior = {}  # hmmlearn's defaults (prior −(M + 2)/2, weight 0) are the plain MLE
        n_params = 3 * (1 + 4 + 2) + 2 + 6
    ref = hmm.GMMHMM(3, 2, covariance_type=ctype, init_params="", implementation="scaling",
                     n_iter=5, tol=0.0, **prior)
    ref.startprob_, ref.transmat_, ref.weights_ = START, TRANS, w
    ref.means_, ref.covars_ = means, covars
    X, _ = ref.sample(sum(LENGTHS), random_state=4)
    ours = GMMHMM(3, 2, covariance_type=ctype, init_params="", reg_covar=0.0, n_iter=5,
                  tol=0.0)
    ours.startprob_, ours.transmat_, ours.weights_ = START, TRANS, w
    ours.means_, ours.covars_ = means, covars
    _close(ours.score(X, LENGTHS), ref.score(X, LENGTHS))
    _close(ours.predict_proba(X, LENGTHS), ref.predict_proba(X, LENGTHS))
    assert np.array_equal(ours.predict(X, LENGTHS), ref.predict(X, LENGTHS))
    _check_gmmhmm_m_step(ctype, ref.predict_proba(X, LENGTHS), X, w, means, covars)
    ref.fit(X, LENGTHS)
    ours.fit(X, LENGTHS)
    assert ours.covars_.shape == covars.shape
    assert np.all(np.diff(ours.monitor_.history) >= -1e-8)
    # hmmlearn's GMMHMM takes the covariance statistics about the *old* means (E-step
    # means), so its M step is not the exact maximiser; ours is (the means are updated first,
    # §7.2). Same start, and (diag, tied, full) our log-likelihood is at least hmmlearn's at
    # every iteration; for spherical the two paths cross at the fourth (neither is a bound on
    # the other after the first step), so there the one-step oracle above is the check.
    _close(ours.monitor_.history[0], ref.monitor_.history[0])
    if ctype != "spherical":
        assert np.all(np.asarray(ours.monitor_.history)
                      >= np.asarray(ref.monitor_.history) - 1e-8)
    _close(ours.weights_.sum(-1), np.ones(3))
    assert ours.model_.num_parameters() == n_params


def _check_gmmhmm_m_step(ctype, state_post, X, w, means, covars):
    """One Baum–Welch step of our GMMHMM against the weighted maximum likelihood written out:
    r_tkm = γ_t(k) w_km N(y_t; μ_km, Σ_km) / Σ_m' (·), then w_km = Σ_t r / Σ_t γ, μ_km the
    r-weighted mean and Σ_km the r-weighted scatter about the *new* mean (Eqs. 7.7–7.9),
    reduced to the covariance structure."""
    from scipy.stats import multivariate_normal

    K, M, D = means.shape
    full = {"full": lambda: covars,
            "diag": lambda: np.einsum("kmd,de->kmde", covars, np.eye(D)),
            "spherical": lambda: covars[..., None, None] * np.eye(D),
            "tied": lambda: np.repeat(covars[:, None], M, 1)}[ctype]()  # (K, M, D, D)
    dens = np.array([[w[k, m] * multivariate_normal(means[k, m], full[k, m]).pdf(X)
                      for m in range(M)] for k in range(K)]).transpose(2, 0, 1)  # (T, K, M)
    r = state_post[..., None] * dens / dens.sum(-1, keepdims=True)  # (T, K, M)
    n_km = r.sum(0)
    mu = np.einsum("tkm,td->kmd", r, X) / n_km[..., None]
    diff = X[:, None, None, :] - mu  # (T, K, M, D)
    scatter = np.einsum("tkm,tkmd,tkme->kmde", r, diff, diff)
    expected = {"full": scatter / n_km[..., None, None],
                "diag": np.einsum("kmdd->kmd", scatter) / n_km[..., None],
                "spherical": np.einsum("kmdd->km", scatter) / (D * n_km),
                "tied": scatter.sum(1) / n_km.sum(1)[:, None, None]}[ctype]
    one = GMMHMM(K, M, covariance_type=ctype, init_params="", reg_covar=0.0, n_iter=1, tol=0.0,
                 params="wmc")
    one.startprob_, one.transmat_, one.weights_ = START, TRANS, w
    one.means_, one.covars_ = means, covars
    one.fit(X, LENGTHS)
    _close(one.weights_, n_km / n_km.sum(1, keepdims=True))
    _close(one.means_, mu)
    _close(one.covars_, expected)


def test_gmm_emission_tied_m_step_pools_the_scatter():
    from genmodels.models.hmm import GaussianMixtureEmission

    g = torch.Generator().manual_seed(3)
    K, M, D, N = 2, 3, 2, 400
    em = GaussianMixtureEmission(K, M, D, "tied", reg_covar=1e-3)
    em.components.set_parameters(means=torch.randn(K * M, D, generator=g) * 2)
    y = torch.randn(N, D, generator=g) * 2
    gamma = torch.softmax(torch.randn(N, K, generator=g), -1)
    r = gamma[..., None] * torch.softmax(em._component_log_lik(y), -1)  # (N, K, M)
    em.maximize(em.expected_stats(y, gamma))
    mu = torch.einsum("nkm,nd->kmd", r, y) / r.sum(0)[..., None]
    diff = y[:, None, None, :] - mu  # (N, K, M, D)
    scatter = torch.einsum("nkm,nkmd,nkme->kde", r, diff, diff)
    expect = scatter / r.sum((0, 2))[:, None, None] + 1e-3 * torch.eye(D)
    cov = em.components.covariances.reshape(K, M, D, D)
    for m in range(M):
        torch.testing.assert_close(cov[:, m], expect)
    torch.testing.assert_close(em.state_covariances(), expect)


def test_dirichlet_priors_parity_with_hmmlearn():
    # startprob_prior / transmat_prior: the MAP M step, max(counts + α − 1, 0), as hmmlearn's
    alpha_t = np.array([[3.0, 1.5, 0.7], [1.0, 4.0, 2.0], [0.8, 1.2, 5.0]])
    kw = dict(startprob_prior=np.array([2.0, 0.6, 1.5]), transmat_prior=alpha_t, n_iter=6,
              tol=0.0, init_params="")
    ref = hmm.GaussianHMM(3, covariance_type="diag", covars_prior=0.0,
                          implementation="scaling", **kw)
    ours = GaussianHMM(3, covariance_type="diag", reg_covar=0.0, **kw)
    for m in (ref, ours):
        m.startprob_, m.transmat_, m.means_ = START, TRANS, MEANS
        m.covars_ = _covars("diag")
    X, _ = ref.sample(sum(LENGTHS), random_state=7)
    ref.fit(X, LENGTHS)
    ours.fit(X, LENGTHS)
    _close(ours.monitor_.history, ref.monitor_.history)
    _close(ours.startprob_, ref.startprob_)
    _close(ours.transmat_, ref.transmat_)
    # α < 1 drives small counts to exactly 0, and a forbidden transition stays forbidden
    left_right = np.array([[0.5, 0.5, 0.0], [0.0, 0.5, 0.5], [0.0, 0.0, 1.0]])
    est = GaussianHMM(3, reg_covar=0.0, init_params="", startprob_prior=0.5,
                      transmat_prior=2.0, n_iter=3, tol=0.0)
    est.startprob_, est.transmat_, est.means_ = START, left_right, MEANS
    est.covars_ = _covars("diag")
    est.fit(X, LENGTHS)
    assert np.all(est.transmat_[left_right == 0] == 0)
    with pytest.raises(ValueError, match="transmat_prior"):
        GaussianHMM(3, transmat_prior=np.ones((2, 2))).fit(X, LENGTHS)
    with pytest.raises(ValueError, match="> 0"):
        GaussianHMM(3, startprob_prior=0.0).fit(X, LENGTHS)


def test_recovery_many_sequences():
    gen = hmm.GaussianHMM(3, covariance_type="diag", init_params="")
    gen.startprob_, gen.transmat_, gen.means_ = START, TRANS, MEANS
    gen.covars_ = np.full((3, 2), 0.3)
    rs = np.random.RandomState(0)
    seqs = [gen.sample(50, random_state=rs)[0] for _ in range(200)]
    X, lengths = np.concatenate(seqs), [50] * 200
    est = GaussianHMM(3, n_iter=100, tol=1e-6, random_state=0).fit(X, lengths)
    order = [int(np.argmin(((est.means_ - m) ** 2).sum(-1))) for m in MEANS]
    assert sorted(order) == [0, 1, 2]
    np.testing.assert_allclose(est.means_[order], MEANS, atol=0.05)
    np.testing.assert_allclose(est.transmat_[np.ix_(order, order)], TRANS, atol=0.03)
    np.testing.assert_allclose(est.startprob_[order], START, atol=0.08)
    np.testing.assert_allclose(est.transmat_.sum(1), 1.0)
    assert np.all(np.diff(est.monitor_.history) >= -1e-8)
    Xs, Zs = est.sample(30, random_state=1)
    assert Xs.shape == (30, 2) and Zs.shape == (30,)


def test_fully_observed_states_give_counts_mle():
    # Each state emits its own symbol: the posterior is the true path, one EM step = counts.
    K = 3
    g = torch.Generator().manual_seed(0)
    emission = CategoricalEmission(K, K, probs=torch.eye(K) * (1 - 2e-12) + 1e-12,
                                   pseudo_count=1e-300)
    model = HiddenMarkovModel(torch.tensor(START), torch.tensor(TRANS), emission)
    states, y = model.sample(400, num_sequences=5, generator=g)
    data = pack_sequences(y.reshape(-1, 1), [400] * 5, integer=True)
    model.maximize(model.expected_stats(data).stats)
    counts = torch.zeros(K, K, dtype=torch.float64)
    counts.index_put_((states[:, :-1].reshape(-1), states[:, 1:].reshape(-1)),
                      torch.ones(5 * 399, dtype=torch.float64), accumulate=True)
    torch.testing.assert_close(model.transition_matrix, counts / counts.sum(1, keepdim=True))
    start = torch.bincount(states[:, 0], minlength=K).double() / 5
    torch.testing.assert_close(model.initial_probs, start)


def test_frozen_params_and_minibatch_additivity():
    X = hmm.GaussianHMM(3, init_params="")
    X.startprob_, X.transmat_, X.means_, X.covars_ = START, TRANS, MEANS, np.ones((3, 2))
    Y, _ = X.sample(300, random_state=5)
    est = GaussianHMM(3, params="tm", n_iter=5, init_params="", tol=0)
    est.startprob_, est.transmat_, est.means_ = START, TRANS, MEANS
    est.covars_ = np.ones((3, 2))
    est.fit(Y, [100, 200])
    np.testing.assert_array_equal(est.startprob_, START)
    np.testing.assert_allclose(est._covars_, np.ones((3, 2)))
    assert not np.allclose(est.transmat_, TRANS)
    # E steps of two halves add up to the E step of the whole
    model = est.model_
    whole = model.expected_stats(pack_sequences(torch.as_tensor(Y), [100, 200]))
    a = model.expected_stats(pack_sequences(torch.as_tensor(Y[:100]), [100]))
    b = model.expected_stats(pack_sequences(torch.as_tensor(Y[100:]), [200]))
    both = a + b
    for key in whole.stats:
        torch.testing.assert_close(both.stats[key], whole.stats[key])
    torch.testing.assert_close(both.log_likelihood, whole.log_likelihood)


@pytest.mark.slow
def test_em_stable_long_large_scale():
    # T = 10,000, K = 100 well separated, tight Gaussians: log-likelihoods of scale ~1e4.
    K, T = 100, 10_000
    g = torch.Generator().manual_seed(0)
    means = torch.randn(K, 2, generator=g) * 30
    emission = GaussianEmission.from_parameters(means, torch.full((K, 2), 0.05), "diag",
                                                reg_covar=1e-6)
    P = torch.softmax(torch.randn(K, K, generator=g) * 2, -1)
    model = HiddenMarkovModel(torch.full((K,), 1.0 / K), P, emission)
    _, y = model.sample(T, generator=g)
    start = GaussianEmission.from_parameters(means + torch.randn(K, 2, generator=g),
                                             torch.full((K, 2), 0.1), "diag", reg_covar=1e-6)
    fit = HiddenMarkovModel(torch.full((K,), 1.0 / K), torch.full((K, K), 1.0 / K), start)
    data = pack_sequences(y)
    ll = fit.log_likelihood_table(data)
    assert float(ll.min()) < -1e4
    post = fit.posterior(data)
    assert bool(torch.isfinite(post.smoothed_probs).all())
    torch.testing.assert_close(post.smoothed_probs.sum(-1), torch.ones(1, T, dtype=torch.float64))
    result = run_em(fit, [data], max_iter=4, tol=0.0, per_datum=False, warn=False)
    assert all(b >= a - 1e-6 * abs(a) for a, b in zip(result.log_likelihood,
                                                       result.log_likelihood[1:]))


def test_save_load_roundtrip(tmp_path):
    est = GaussianHMM(2, "full", n_iter=3, random_state=0)
    X = np.random.default_rng(0).normal(size=(60, 2))
    est.fit(X)
    folder = save(est.model_, tmp_path / "m")
    model = load(folder)
    data = pack_sequences(torch.as_tensor(X))
    torch.testing.assert_close(model.log_marginal(data), est.model_.log_marginal(data))


def test_bad_input():
    est = GaussianHMM(2, init_params="")
    est.startprob_ = np.array([0.5, 0.5])
    est.transmat_ = np.array([[0.5, 0.6], [0.5, 0.5]])
    est.means_, est.covars_ = np.zeros((2, 1)), np.ones((2, 1))
    X = np.zeros((10, 1))
    with pytest.raises(ValueError, match="row-stochastic"):
        est.score(X)
    est.transmat_ = np.full((2, 2), 0.5)
    with pytest.raises(ValueError, match="lengths sum"):
        est.score(X, [3, 3])
    with pytest.raises(ValueError, match="length >= 1"):
        est.score(X, [10, 0])
    bad = X.copy()
    bad[3, 0] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        est.score(bad)
    with pytest.raises(ValueError, match="at least 1"):
        est.score(np.zeros((0, 1)))
    with pytest.raises(ValueError, match="features"):
        est.score(np.zeros((5, 2)))
    with pytest.raises(ValueError, match="init_params"):
        GaussianHMM(2, init_params="").fit(X)
    with pytest.raises(ValueError, match="letters"):
        GaussianHMM(2, params="stmz").fit(X)
    with pytest.raises(ValueError, match="tied covars_"):
        bad = GMMHMM(2, 2, covariance_type="tied", init_params="stmw")
        bad.covars_ = np.ones((2, 2, 2, 2))
        bad.fit(np.random.default_rng(0).normal(size=(20, 2)))
