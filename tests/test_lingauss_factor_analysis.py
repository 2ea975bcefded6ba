"""Factor analysis, PPCA and PCA models (B5, F4, F5, D6): inference against the general
linear-Gaussian model and scipy, EM monotonicity, closed forms, recovery, freezing."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from scipy.linalg import subspace_angles
from scipy.stats import multivariate_normal

from genmodels.data import load_dataset
from genmodels.exceptions import DegenerateFitWarning
from genmodels.io import load, save
from genmodels.learning.em import fit_em, run_em
from genmodels.models.factor_analysis import (
    EMPCA,
    FactorAnalyzer,
    ProbabilisticPCA,
    fit_ppca,
    pca,
)
from genmodels.models.linear_gaussian import GaussianMoments, LinearGaussian


def known_fa(d: int = 8, k: int = 2, seed: int = 0, noise: str = "diagonal") -> FactorAnalyzer:
    g = torch.Generator().manual_seed(seed)
    m = FactorAnalyzer(d, k, noise=noise)
    m.loadings = torch.randn(d, k, generator=g) * 2.0
    m.mean = torch.randn(d, generator=g)
    psi = 0.2 + torch.rand(d, generator=g)
    m.noise_variance = psi if noise == "diagonal" else psi.mean().expand(d).clone()
    return m


def wine() -> torch.Tensor:
    X = load_dataset("wine").X
    return (X - X.mean(0)) / X.std(0)


def test_fa_inference_is_the_linear_gaussian_special_case():
    fa = known_fa()
    y = torch.randn(6, 8, generator=torch.Generator().manual_seed(1))
    lg = fa.as_linear_gaussian()
    a, b = fa.posterior(y), lg.posterior(y, form="covariance")
    torch.testing.assert_close(a.mean, b.mean)
    torch.testing.assert_close(a.covariance, b.covariance)
    ref = multivariate_normal(fa.mean.numpy(), fa.covariance().numpy()).logpdf(y.numpy())
    np.testing.assert_allclose(fa.log_marginal(y).numpy(), ref, rtol=1e-10)
    np.testing.assert_allclose(fa.precision().numpy(), np.linalg.inv(fa.covariance().numpy()),
                               rtol=1e-8, atol=1e-10)
    # the marginal is invariant under C → C R for orthogonal R (the rotation is unidentifiable)
    R, _ = torch.linalg.qr(torch.randn(2, 2, generator=torch.Generator().manual_seed(2)))
    rotated = known_fa()
    rotated.loadings = fa.loadings @ R
    torch.testing.assert_close(rotated.log_marginal(y), fa.log_marginal(y))
    # log p(x, y) = log p(y) + log p(x | y)
    x = torch.randn(6, 2, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(fa.log_joint(x, y), lg.log_joint(x, y))


def test_estep_from_moments_matches_per_datum_posteriors_and_is_additive():
    fa = known_fa()
    _, y = fa.sample(200, generator=torch.Generator().manual_seed(0))
    fa.noise_variance = fa.noise_variance * 1.5  # not at the generating parameters
    est = fa.expected_stats(y)
    post = fa.posterior(y)
    torch.testing.assert_close(est.stats["sum_ex"], post.mean.sum(0))
    torch.testing.assert_close(est.stats["sum_y_ex"], y.mT @ post.mean)
    torch.testing.assert_close(est.stats["sum_exx"],
                               200 * post.covariance + post.mean.mT @ post.mean)
    torch.testing.assert_close(est.log_likelihood, fa.log_marginal(y).sum())
    halves = fa.expected_stats(y[:70]) + fa.expected_stats(y[70:])
    for key, value in est.stats.items():
        torch.testing.assert_close(halves.stats[key], value)
    torch.testing.assert_close(halves.log_likelihood, est.log_likelihood)


@pytest.mark.parametrize("noise", ["diagonal", "isotropic"])
@pytest.mark.parametrize("init", ["pca", "random"])
def test_em_never_decreases_the_log_likelihood(noise, init):
    X = wine()
    model = FactorAnalyzer(13, 3, noise=noise, init=init)
    model.initialize(X, torch.Generator().manual_seed(0))
    ll = []
    for _ in range(60):  # one iteration at a time
        r = run_em(model, [X], max_iter=1, warn=False)
        ll.append(r.log_likelihood[0])
    diffs = np.diff(ll)
    assert (diffs >= -1e-9 * np.abs(ll[1:])).all(), diffs.min()
    if init == "pca" and noise == "isotropic":
        # The PCA start is PPCA's closed-form maximum (Tipping & Bishop): EM stays there.
        np.testing.assert_allclose(ll, ll[0], rtol=1e-12)
    else:
        assert ll[-1] > ll[0] + 1e-6 * abs(ll[0])


def test_empca_reconstruction_error_never_increases():
    X = wine()
    model = EMPCA(13, 3)
    model.initialize(X, torch.Generator().manual_seed(0))
    r = run_em(model, [X], max_iter=80, tol=0.0, warn=False)
    diffs = np.diff(r.log_likelihood)
    assert (diffs >= -1e-9 * np.abs(r.log_likelihood[1:])).all()


def test_ppca_closed_form_and_fa_with_isotropic_noise_agree():
    X = wine()
    n, d, k = X.shape[0], 13, 3
    closed = fit_ppca(X, k)
    # the closed-form log-likelihood (Tipping & Bishop 1999, Eq. 4 at the optimum)
    lam = np.sort(np.linalg.eigvalsh(np.cov(X.numpy().T, bias=True)))[::-1]
    sigma2 = lam[k:].mean()
    expected = -0.5 * n * (d * np.log(2 * np.pi) + np.log(lam[:k]).sum()
                           + (d - k) * np.log(sigma2) + d)
    np.testing.assert_allclose(float(closed.sigma2), sigma2, rtol=1e-10)
    np.testing.assert_allclose(float(closed.log_marginal(X).sum()), expected, rtol=1e-10)
    # FA with isotropic noise, fitted by EM from a random start, reaches the same model
    em = FactorAnalyzer(d, k, noise="isotropic", init="random")
    em.initialize(X, torch.Generator().manual_seed(1))
    run_em(em, [X], max_iter=5000, tol=1e-11)
    # EM converges linearly (slowly when eigenvalues are close): parameters to ~1e-5,
    # the log-likelihood (flat at the optimum) to 1e-9
    torch.testing.assert_close(em.covariance(), closed.covariance(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(float(em.log_marginal(X).sum()), expected, rtol=1e-9)
    # the PPCA optimum is a fixed point of its EM
    before = closed.covariance()
    run_em(closed, [X], max_iter=1, warn=False)
    torch.testing.assert_close(closed.covariance(), before, rtol=1e-9, atol=1e-10)


def test_pca_solvers_agree_and_empca_finds_the_principal_subspace():
    X = wine()
    svd, cov = pca(X, solver="svd"), pca(X, solver="covariance")
    torch.testing.assert_close(svd.explained_variance, cov.explained_variance)
    torch.testing.assert_close(svd.components, cov.components, rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(svd.explained_variance.numpy(),
                               np.sort(np.linalg.eigvalsh(np.cov(X.numpy().T)))[::-1], rtol=1e-9)
    model = EMPCA(13, 3)
    model.initialize(X, torch.Generator().manual_seed(0))
    run_em(model, [X], max_iter=2000, tol=1e-13)
    angles = subspace_angles(model.loadings.numpy(), svd.components[:3].T.numpy())
    assert angles.max() < 1e-6
    comps, var = model.principal_components(X)
    torch.testing.assert_close(var, svd.explained_variance[:3], rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(comps, svd.components[:3], rtol=1e-5, atol=1e-5)


def test_zero_noise_limit_of_the_posterior_mean_is_the_pseudo_inverse():
    fa = known_fa()
    y = torch.randn(4, 8, generator=torch.Generator().manual_seed(0))
    fa.noise_variance = torch.full((8,), 1e-9)
    pinv = torch.linalg.pinv(fa.loadings)
    torch.testing.assert_close(fa.posterior(y).mean, (y - fa.mean) @ pinv.mT,
                               rtol=1e-6, atol=1e-6)
    assert float(fa.posterior(y).covariance.abs().max()) < 1e-8


def test_fa_recovers_known_parameters():
    truth = known_fa(d=8, k=2, seed=3)
    _, y = truth.sample(20000, generator=torch.Generator().manual_seed(0))
    model = FactorAnalyzer(8, 2)
    model.initialize(y)
    run_em(model, [GaussianMoments.from_data(y)], max_iter=3000, tol=1e-9)
    CC_true = truth.loadings @ truth.loadings.mT
    CC_fit = model.loadings @ model.loadings.mT
    # sampling error of entries ~ ‖C‖² / √N ≈ 0.1; the noise variances ~ 0.02
    assert float((CC_fit - CC_true).abs().max()) < 0.3
    assert float((model.noise_variance - truth.noise_variance).abs().max()) < 0.1
    assert float((model.mean - truth.mean).abs().max()) < 0.1
    angles = subspace_angles(model.loadings.numpy(), truth.loadings.numpy())
    assert angles.max() < 0.05


def test_frozen_parameters_stay_put():
    truth = known_fa(seed=4)
    _, y = truth.sample(3000, generator=torch.Generator().manual_seed(1))
    model = FactorAnalyzer(8, 2)
    model.initialize(y)
    model.noise_variance = truth.noise_variance.clone()
    run_em(model, [y], max_iter=50, frozen={"noise_variance"}, warn=False)
    torch.testing.assert_close(model.noise_variance, truth.noise_variance, rtol=0, atol=0)
    C = model.loadings.clone()
    r = run_em(model, [y], max_iter=20, frozen={"loadings"}, warn=False)
    torch.testing.assert_close(model.loadings, C, rtol=0, atol=0)
    assert np.all(np.diff(r.log_likelihood) >= -1e-9)
    with pytest.raises(ValueError, match="unknown"):
        run_em(model, [y], frozen={"Psi"})


def test_fit_em_restarts_and_save_load_round_trip(tmp_path):
    X = wine()
    model = FactorAnalyzer(13, 2, init="random")
    result = fit_em(model, X, n_init=3, seed=0, max_iter=300, tol=1e-8)
    assert result.n_iter > 1
    y = X[:5]
    for obj in (model, fit_ppca(X, 2), known_fa(), FactorAnalyzer(13, 2, noise="isotropic")):
        back = load(save(obj, tmp_path / type(obj).__name__))
        assert type(back) is type(obj)
        if obj.n_features == 13:
            torch.testing.assert_close(back.log_marginal(y), obj.log_marginal(y))
        for k, v in obj.state_dict().items():
            torch.testing.assert_close(back.state_dict()[k], v)
    em = EMPCA(13, 2)
    em.initialize(X, torch.Generator().manual_seed(0))
    back = load(save(em, tmp_path / "empca"))
    torch.testing.assert_close(back.project(y), em.project(y))
    lg = known_fa().as_linear_gaussian()
    back = load(save(lg, tmp_path / "lg"))
    assert isinstance(back, LinearGaussian)
    torch.testing.assert_close(back.log_marginal(torch.zeros(8)), lg.log_marginal(torch.zeros(8)))


def test_bad_input_and_degenerate_data():
    with pytest.raises(ValueError, match="noise"):
        FactorAnalyzer(4, 2, noise="full")
    with pytest.raises(ValueError, match="n_components"):
        FactorAnalyzer(4, 0)
    with pytest.raises(ValueError, match="noise_variance_init"):
        FactorAnalyzer(4, 2, noise_variance_init=[1.0, -1.0, 1.0, 1.0])
    X = wine()
    with pytest.raises(ValueError, match="n_components < n_features"):
        fit_ppca(X, 13)
    with pytest.raises(ValueError, match="at least 2"):
        pca(X[:1])
    with pytest.raises(ValueError, match="features"):
        FactorAnalyzer(5, 2).initialize(X)
    # a constant feature: the likelihood is unbounded there, ψ is floored with a warning
    Xc = torch.cat([X, torch.zeros(X.shape[0], 1)], 1)
    model = FactorAnalyzer(14, 2)
    with pytest.warns(DegenerateFitWarning, match="floored"):
        model.initialize(Xc)
        run_em(model, [Xc], max_iter=30, warn=False)
    assert bool(torch.isfinite(model.log_marginal(Xc)).all())
    assert float(model.noise_variance[-1]) == float(model.noise_floor) > 0
    # data in a K-dimensional subspace: PPCA's σ² collapses and is floored with a warning
    low = X[:, :2] @ torch.randn(2, 6, generator=torch.Generator().manual_seed(0))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fitted = fit_ppca(low, 2)
    assert any(issubclass(w.category, DegenerateFitWarning) for w in caught)
    assert bool(torch.isfinite(fitted.log_marginal(low)).all())
    assert isinstance(fitted, ProbabilisticPCA)
