"""Gaussian mixtures: covariance structures, exact inference, EM, parity with scikit-learn."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal
from sklearn.mixture import GaussianMixture as SkGaussianMixture

from genmodels.data import load_dataset
from genmodels.io import load, save
from genmodels.learning.em import add_stats, run_em
from genmodels.models.covariance import GaussianEmission, covariance_structure, gaussian_mle
from genmodels.models.mixture import MixtureModel, fit_supervised, supervised_stats

TYPES = ("full", "diag", "spherical", "tied")


def random_params(k: int, d: int, seed: int = 0, offset: float = 0.0):
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(k, d, generator=g) * 3 + offset
    a = torch.randn(k, d, d, generator=g)
    full = a @ a.mT / d + 0.5 * torch.eye(d)
    covs = {"full": full, "tied": full[0], "diag": full.diagonal(dim1=-2, dim2=-1).clone(),
            "spherical": full[:, 0, 0].clone()}
    weights = torch.softmax(torch.randn(k, generator=g), 0)
    return weights, means, covs


@pytest.mark.parametrize("kind", TYPES)
def test_log_density_matches_scipy(kind):
    _, m, covs = random_params(4, 5, offset=50.0)  # far from the origin: tests the centering
    em = GaussianEmission.from_parameters(m, covs[kind], kind)
    y = torch.randn(200, 5, generator=torch.Generator().manual_seed(1)) * 4 + 50.0
    full = em.full_covariances()
    ref = np.stack([multivariate_normal(m[k].numpy(), full[k].numpy()).logpdf(y.numpy())
                    for k in range(4)], 1)
    np.testing.assert_allclose(em.log_likelihood(y).numpy(), ref, rtol=1e-10, atol=1e-9)


@pytest.mark.parametrize("kind", ["diag", "spherical"])
def test_compiled_density_equals_the_matrix_product_form(kind, monkeypatch):
    # diagonal and spherical Σ on the CPU take the compiled one-pass density; it equals the
    # features-and-one-matrix-product form (float64 and float32), and a gradient takes the
    # differentiable torch form
    _, m, covs = random_params(4, 3, offset=5.0)
    em = GaussianEmission.from_parameters(m, covs[kind], kind)
    y = torch.randn(300, 3, generator=torch.Generator().manual_seed(2)) * 3 + 5.0
    assert em._compiled_log_likelihood(y) is not None
    compiled = em.log_likelihood(y)
    monkeypatch.setattr(GaussianEmission, "compiled_max_dim", 0)
    assert em._compiled_log_likelihood(y) is None
    torch.testing.assert_close(compiled, em.log_likelihood(y), rtol=1e-12, atol=1e-10)
    monkeypatch.undo()
    em32 = GaussianEmission.from_parameters(m.float(), covs[kind].float(), kind)
    torch.testing.assert_close(em32.log_likelihood(y.float()), compiled.float(), rtol=1e-5,
                               atol=1e-4)
    yg = y.clone().requires_grad_()
    assert em._compiled_log_likelihood(yg) is None
    em.log_likelihood(yg).sum().backward()
    assert yg.grad is not None and bool(torch.isfinite(yg.grad).all())


@pytest.mark.parametrize("kind", TYPES)
def test_posterior_is_bayes_rule_and_normalised(kind):
    w, m, covs = random_params(3, 2, seed=2)
    model = MixtureModel(w, GaussianEmission.from_parameters(m, covs[kind], kind))
    y = torch.randn(300, 2, generator=torch.Generator().manual_seed(3)) * 4
    post = model.posterior(y)
    torch.testing.assert_close(post.responsibilities.sum(-1), torch.ones(300), rtol=0, atol=1e-12)
    full = model.emission.full_covariances()
    dens = np.stack([multivariate_normal(m[k].numpy(), full[k].numpy()).pdf(y.numpy())
                     for k in range(3)], 1) * w.numpy()
    np.testing.assert_allclose(post.responsibilities.numpy(), dens / dens.sum(1, keepdims=True),
                               rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(post.log_marginal.numpy(), np.log(dens.sum(1)), rtol=1e-10)
    # invert then recombine reproduces the joint: p(x|y) p(y) = p(x) p(y|x)
    joint = post.log_responsibilities + post.log_marginal[:, None]
    torch.testing.assert_close(joint, model.log_joint(y), rtol=1e-10, atol=1e-10)


def test_identical_components_give_the_prior_and_stable_far_away():
    m = torch.zeros(3, 2)
    model = MixtureModel(torch.tensor([0.2, 0.3, 0.5]),
                         GaussianEmission.from_parameters(m, torch.ones(3), "spherical"))
    y = torch.tensor([[0.0, 0.0], [1e3, -1e3]])  # log-likelihoods about -1e6
    post = model.posterior(y)
    torch.testing.assert_close(post.responsibilities, torch.tensor([[0.2, 0.3, 0.5]] * 2))
    assert torch.isfinite(post.log_marginal).all()


def test_marginal_integrates_to_one_1d_and_2d():
    w, m, covs = random_params(3, 1, seed=4)
    model = MixtureModel(w, GaussianEmission.from_parameters(m, covs["full"], "full"))
    grid = torch.linspace(-40, 40, 40001)[:, None]
    p = model.log_marginal(grid).exp()
    assert abs(float(torch.trapezoid(p, grid[:, 0])) - 1.0) < 1e-8
    w, m, covs = random_params(3, 2, seed=5)
    model = MixtureModel(w, GaussianEmission.from_parameters(m, covs["full"], "full"))
    t = torch.linspace(-30, 30, 1201)
    xx, yy = torch.meshgrid(t, t, indexing="ij")
    dens = model.log_marginal(torch.stack([xx.reshape(-1), yy.reshape(-1)], 1)).exp()
    total = torch.trapezoid(torch.trapezoid(dens.reshape(1201, 1201), t, dim=1), t)
    assert abs(float(total) - 1.0) < 1e-6


def test_sampling_frequencies_and_moments():
    w, m, covs = random_params(3, 2, seed=6)
    model = MixtureModel(w, GaussianEmission.from_parameters(m, covs["full"], "full"))
    n = 100_000
    states, y = model.sample(n, torch.Generator().manual_seed(0))
    freq = torch.bincount(states, minlength=3) / n
    se = torch.sqrt(w * (1 - w) / n)
    assert bool(((freq - w).abs() < 6 * se).all())
    for k in range(3):
        yk = y[states == k]
        mean, cov = gaussian_mle(yk)
        assert bool(((mean - m[k]).abs() < 6 * torch.sqrt(covs["full"][k].diagonal() / len(yk)))
                    .all())
        assert torch.allclose(cov, covs["full"][k], atol=0.1)


def test_gaussian_mle_closed_form():
    y = torch.randn(500, 3, generator=torch.Generator().manual_seed(0)) @ torch.randn(3, 3)
    mean, cov = gaussian_mle(y)
    np.testing.assert_allclose(mean.numpy(), y.numpy().mean(0), rtol=1e-12)
    np.testing.assert_allclose(cov.numpy(), np.cov(y.numpy().T, bias=True), rtol=1e-10)


@pytest.mark.parametrize("kind", TYPES)
def test_one_hot_m_step_equals_per_class_statistics(kind):
    y = torch.randn(300, 3, generator=torch.Generator().manual_seed(7)) + 10.0
    labels = torch.arange(300) % 3
    em = GaussianEmission(3, 3, kind, reg_covar=0.0)
    model = fit_supervised(em, y, labels, 3)
    torch.testing.assert_close(model.weights, torch.full((3,), 1 / 3))
    per_class = [gaussian_mle(y[labels == k]) for k in range(3)]
    torch.testing.assert_close(em.means, torch.stack([p[0] for p in per_class]))
    full = torch.stack([p[1] for p in per_class])
    expected = {"full": full, "tied": full.mean(0),
                "diag": full.diagonal(dim1=-2, dim2=-1),
                "spherical": full.diagonal(dim1=-2, dim2=-1).mean(-1)}[kind]
    torch.testing.assert_close(em.covariances, expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("kind", TYPES)
def test_fused_e_step_equals_the_table_plus_log_prior(kind, monkeypatch):
    # the E step folds log π into the emission's product and writes every chunk's ẑ into one
    # transposed buffer; it equals ẑ = log p̂(y | k) + log π computed afresh per chunk, over
    # several chunks and a partial last one, float64 and float32
    w, m, covs = random_params(5, 4, seed=11, offset=3.0)
    monkeypatch.setattr(MixtureModel, "_chunk_rows", lambda self, y: 700)
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 1e-5)):
        model = MixtureModel(w.to(dtype), GaussianEmission.from_parameters(
            m.to(dtype), covs[kind].to(dtype), kind))
        _, y = model.sample(2500, torch.Generator().manual_seed(3))
        fused = model.expected_stats(y)
        with monkeypatch.context() as mp:
            mp.setattr(GaussianEmission, "fuses_log_prior", False)
            plain = model.expected_stats(y)
        for key in plain.stats:
            torch.testing.assert_close(fused.stats[key], plain.stats[key], rtol=tol, atol=tol)
        torch.testing.assert_close(fused.log_likelihood, plain.log_likelihood, rtol=tol, atol=0)
        torch.testing.assert_close(fused.log_likelihood,
                                   model.log_marginal(y).sum().to(dtype), rtol=tol, atol=0)


def test_fit_equals_fit_predict_without_the_labels_pass():
    # fit skips fit_predict's final E step (its labels); the fitted parameters are the same
    from genmodels.estimators.mixture import GaussianMixture

    X = np.random.default_rng(4).normal(size=(600, 3)) + np.repeat(np.eye(3) * 6, 200, 0)
    a = GaussianMixture(3, random_state=0, max_iter=4, tol=0.0).fit(X)
    b = GaussianMixture(3, random_state=0, max_iter=4, tol=0.0)
    labels = b.fit_predict(X)
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.lower_bound_ == b.lower_bound_
    assert not a.model_.emission._cache  # the training data's features are released
    np.testing.assert_array_equal(labels, a.predict(X))


@pytest.mark.parametrize("kind", TYPES)
def test_statistics_of_two_halves_add_to_the_whole(kind):
    w, m, covs = random_params(4, 3, seed=8)
    model = MixtureModel(w, GaussianEmission.from_parameters(m, covs[kind], kind))
    _, y = model.sample(1000, torch.Generator().manual_seed(1))
    whole = model.expected_stats(y)
    halves = model.expected_stats(y[:400]) + model.expected_stats(y[400:])
    for key in whole.stats:
        torch.testing.assert_close(halves.stats[key], whole.stats[key], rtol=1e-10, atol=1e-9)
    torch.testing.assert_close(halves.log_likelihood, whole.log_likelihood)
    assert add_stats(whole.stats, whole.stats).keys() == whole.stats.keys()


@pytest.mark.parametrize("kind", TYPES)
def test_em_never_decreases_the_log_likelihood(kind):
    w, m, covs = random_params(3, 2, seed=9)
    truth = MixtureModel(w, GaussianEmission.from_parameters(m, covs[kind], kind))
    _, y = truth.sample(2000, torch.Generator().manual_seed(2))
    em = GaussianEmission(3, 2, kind, reg_covar=0.0)
    model = MixtureModel(torch.ones(3), em, init="random")
    model.initialize(y, torch.Generator().manual_seed(0))
    lls = [float(model.log_marginal(y).sum())]
    for _ in range(60):  # one iteration at a time
        model.maximize(model.expected_stats(y).stats)
        lls.append(float(model.log_marginal(y).sum()))
    diffs = np.diff(lls)
    assert (diffs >= -1e-12 * np.abs(lls[1:])).all(), diffs.min()
    assert lls[-1] > lls[0]


@pytest.mark.parametrize("kind", TYPES)
def test_em_recovers_known_parameters(kind):
    means = torch.tensor([[-6.0, 0.0], [6.0, 0.0], [0.0, 8.0]])
    a = torch.tensor([[[1.0, 0.3], [0.3, 0.5]], [[0.6, -0.2], [-0.2, 1.2]],
                      [[0.8, 0.0], [0.0, 0.8]]])
    covs = {"full": a, "tied": a[0], "diag": a.diagonal(dim1=-2, dim2=-1).clone(),
            "spherical": a[:, 0, 0].clone()}
    w = torch.tensor([0.5, 0.3, 0.2])
    truth = MixtureModel(w, GaussianEmission.from_parameters(means, covs[kind], kind))
    n = 20_000
    _, y = truth.sample(n, torch.Generator().manual_seed(3))
    model = MixtureModel(torch.ones(3), GaussianEmission(3, 2, kind))
    from genmodels.learning.em import fit_em

    res = fit_em(model, y, seed=0, max_iter=200, tol=1e-8)
    assert res.converged
    order = torch.cdist(means, model.emission.means).argmin(1)  # match components
    assert sorted(order.tolist()) == [0, 1, 2]
    em = model.emission
    # sampling error ~ sqrt(var / (n w_k)) < 0.02; allow 0.06
    torch.testing.assert_close(em.means[order], means, atol=0.06, rtol=0)
    torch.testing.assert_close(model.weights[order], w, atol=0.015, rtol=0)
    cov_fit = em.covariances if kind == "tied" else em.covariances[order]
    torch.testing.assert_close(cov_fit, covs[kind], atol=0.06, rtol=0)


def _sklearn_trajectory(X, k, kind, n_iter, reg_covar=1e-6):
    """scikit-learn's lower bound at every iteration from a shared initialisation."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = SkGaussianMixture(k, covariance_type=kind, random_state=0, max_iter=1,
                                  reg_covar=reg_covar).fit(X)
        sk = SkGaussianMixture(k, covariance_type=kind, weights_init=start.weights_,
                               means_init=start.means_, precisions_init=start.precisions_,
                               max_iter=1, warm_start=True, tol=0.0, reg_covar=reg_covar)
        traj = []
        for _ in range(n_iter):
            sk.fit(X)
            traj.append(sk.lower_bound_)
    return start, sk, np.array(traj)


@pytest.mark.parametrize("data,k", [("iris", 3), ("wine", 3), ("digits", 10)])
@pytest.mark.parametrize("kind", TYPES)
def test_em_parity_with_sklearn_on_real_data(data, k, kind):
    X = load_dataset(data).X.numpy()
    n_iter = 25
    start, sk, traj = _sklearn_trajectory(X, k, kind, n_iter)
    em = GaussianEmission.from_parameters(torch.tensor(start.means_), covariance=kind,
                                          precisions=torch.tensor(start.precisions_))
    model = MixtureModel(torch.tensor(start.weights_), em)
    res = run_em(model, [torch.tensor(X)], max_iter=n_iter, tol=0.0, warn=False)
    ours = np.array(res.log_likelihood)
    np.testing.assert_allclose(ours, traj, rtol=1e-6)
    np.testing.assert_allclose(model.weights.numpy(), sk.weights_, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(em.means.numpy(), sk.means_, rtol=1e-6, atol=1e-6)
    scale = np.abs(sk.covariances_).max()
    np.testing.assert_allclose(em.covariances.numpy(), sk.covariances_, rtol=1e-6,
                               atol=1e-6 * scale)
    # monotone up to rounding (reg_covar makes the M step a slightly regularised one)
    assert (np.diff(ours) >= -1e-9 * np.abs(ours[1:])).all()


def test_save_load_round_trip(tmp_path):
    w, m, covs = random_params(3, 4, seed=10)
    model = MixtureModel(w, GaussianEmission.from_parameters(m, covs["diag"], "diag"))
    save(model, tmp_path / "m")
    back = load(tmp_path / "m")
    y = torch.randn(10, 4)
    torch.testing.assert_close(back.log_marginal(y), model.log_marginal(y))
    assert back.emission.structure == covariance_structure("diag")


def test_float32_runs_and_agrees_with_float64():
    X = torch.as_tensor(load_dataset("iris").X)
    start, _, _ = _sklearn_trajectory(X.numpy(), 3, "full", 1)
    out = {}
    for dt in (torch.float32, torch.float64):
        em = GaussianEmission.from_parameters(torch.tensor(start.means_, dtype=dt),
                                              precisions=torch.tensor(start.precisions_, dtype=dt))
        model = MixtureModel(torch.tensor(start.weights_, dtype=dt), em)
        out[dt] = run_em(model, [X.to(dt)], max_iter=20, tol=0.0, warn=False).log_likelihood
    np.testing.assert_allclose(out[torch.float32], out[torch.float64], rtol=1e-4)


# -- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ("full", "diag", "spherical"))  # tied pools cluster 0
@pytest.mark.parametrize("n_collapsed", [1, 10, 1000])
def test_collapsed_cluster_is_singular_whatever_the_center(kind, n_collapsed):
    """Whether a collapsed cluster's covariance comes out singular must not depend on where the
    rest of the data puts the center (the one-pass rounding grows with the cluster's size; the
    former D·eps level let 3% of random draws of 10 points, and most of 1000, through)."""
    for seed in range(25):
        g = torch.Generator().manual_seed(seed)
        y = torch.cat([torch.randn(50, 2, generator=g),
                       torch.zeros(n_collapsed, 2) + 5.0 + torch.randn(2, generator=g)])
        labels = torch.cat([torch.zeros(50), torch.ones(n_collapsed)]).long()
        em = GaussianEmission(2, 2, kind, reg_covar=0.0)
        stats = {k.split(".", 1)[1]: v for k, v in supervised_stats(em, y, labels, 2).items()
                 if k.startswith("emission.")}
        _, cov = em.estimate(stats, 0.0)
        full = em.structure.as_full(cov, 2, 2)
        assert bool((full[1] == 0).all()), (seed, full[1])


def test_singular_covariance_without_regularisation_names_the_component():
    g = torch.Generator().manual_seed(0)  # seeded: the center (the data mean) depends on y
    y = torch.cat([torch.randn(50, 2, generator=g), torch.zeros(10, 2) + 5.0])  # collapsed
    labels = torch.cat([torch.zeros(50), torch.ones(10)]).long()
    with pytest.raises(ValueError, match=r"component\(s\) \[1\].*reg_covar"):
        fit_supervised(GaussianEmission(2, 2, "full", reg_covar=0.0), y, labels, 2)
    # the documented regulariser makes it well defined
    model = fit_supervised(GaussianEmission(2, 2, "full", reg_covar=1e-3), y, labels, 2)
    torch.testing.assert_close(model.emission.covariances[1], 1e-3 * torch.eye(2))


def test_bad_parameters_raise():
    with pytest.raises(ValueError, match="covariance_type"):
        GaussianEmission(2, 2, "banana")
    with pytest.raises(ValueError, match="reg_covar"):
        GaussianEmission(2, 2, reg_covar=-1.0)
    with pytest.raises(ValueError, match="shape"):
        GaussianEmission.from_parameters(torch.zeros(2, 3), torch.ones(3, 3), "diag")
    with pytest.raises(ValueError, match="positive definite"):
        GaussianEmission.from_parameters(torch.zeros(2, 2), -torch.eye(2).expand(2, 2, 2))
    em = GaussianEmission(3, 2)
    with pytest.raises(ValueError, match="weights"):
        MixtureModel(torch.tensor([1.0, -1.0, 1.0]), em)
    with pytest.raises(ValueError, match="shape"):
        MixtureModel(torch.ones(2), em)
    with pytest.raises(ValueError, match="n_samples >= n_components"):
        MixtureModel(torch.ones(3), em).initialize(torch.randn(2, 2), torch.Generator())


def test_covariance_parameter_counts():
    k, d = 5, 4
    assert GaussianEmission(k, d, "full").num_parameters() == k * d + k * d * (d + 1) // 2
    assert GaussianEmission(k, d, "diag").num_parameters() == 2 * k * d
    assert GaussianEmission(k, d, "spherical").num_parameters() == k * d + k
    assert GaussianEmission(k, d, "tied").num_parameters() == k * d + d * (d + 1) // 2
    assert MixtureModel(torch.ones(k), GaussianEmission(k, d)).num_parameters() == (
        k - 1 + k * d + k * d * (d + 1) // 2)


def test_empty_component_keeps_finite_parameters():
    em = GaussianEmission(2, 2, "full")
    model = MixtureModel(torch.ones(2), em)
    y = torch.randn(20, 2)
    resp = torch.zeros(20, 2)
    resp[:, 0] = 1.0
    stats = {"weights": resp.sum(0),
             **{f"emission.{k}": v for k, v in em.expected_stats(y, resp).items()}}
    model.maximize(stats)
    assert torch.isfinite(em.means).all() and torch.isfinite(em.covariances).all()
    assert math.isclose(float(model.weights[1]), 0.0, abs_tol=1e-12)
