"""GLMs by IRLS (E5–E8): statsmodels parity, Newton equivalence, separation, bad input."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import statsmodels.api as sm
import torch

import genmodels
from genmodels.data import load_dataset
from genmodels.exceptions import ConvergenceWarning
from genmodels.learning.irls import (
    SeparationWarning,
    gamma_shape_regression,
    irls,
    multinomial_newton,
)
from genmodels.models.glm import GLM
from genmodels.models.glm_families import Binomial, Log, Logit, Poisson

# statsmodels stops when the deviance change is below an absolute tol (1e-8 by default); its
# Fisher scoring converges only linearly under non-canonical links, so for parity we let it run
# until the deviance stops changing at all (its params then have a smaller score than at 1e-13).
SM_TOL = dict(tol=1e-300, maxiter=100)


def _rel(a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300)))


def _check_parity(ours, theirs, rtol=1e-8, params_scale=None):
    """params_scale: measure coefficient errors relative to max(|θ_j|, params_scale_j) instead
    of |θ_j| (for a coefficient that is ~0 relative to its standard error)."""
    assert ours.converged and not ours.separated
    if params_scale is None:
        assert _rel(ours.params, theirs.params) < rtol
    else:
        err = np.abs(np.asarray(ours.params) - theirs.params)
        assert np.max(err / np.maximum(np.abs(theirs.params), params_scale)) < rtol
    assert _rel(ours.bse, theirs.bse) < rtol
    assert _rel(ours.deviance, theirs.deviance) < rtol
    assert _rel(ours.null_deviance, theirs.null_deviance) < rtol
    assert _rel(ours.scale, theirs.scale) < rtol
    assert _rel(ours.llf, theirs.llf) < rtol
    assert _rel(ours.aic, theirs.aic) < rtol
    assert _rel(ours.bic, theirs.bic_llf) < rtol
    assert _rel(ours.pvalues, theirs.pvalues) < 1e-6 or np.allclose(
        ours.pvalues, theirs.pvalues, atol=1e-12)


def _breast_cancer_mean():
    ds = load_dataset("breast_cancer")
    cols = [j for j, n in enumerate(ds.feature_names) if n.startswith("mean")]
    assert len(cols) == 10
    return ds.y.double().numpy(), sm.add_constant(ds.X[:, cols].numpy())


@pytest.mark.parametrize("link", ["logit", "probit", "cloglog"])
def test_binomial_breast_cancer_parity(link):
    y, X = _breast_cancer_mean()
    sm_link = {"logit": sm.families.links.Logit(), "probit": sm.families.links.Probit(),
               "cloglog": sm.families.links.CLogLog()}[link]
    ours = GLM(y, X, family="binomial", link=link).fit(tol=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = sm.GLM(y, X, family=sm.families.Binomial(sm_link)).fit(**SM_TOL)
    # Under the probit and cloglog links both libraries clip μ to [eps, 1 − eps] slightly
    # differently; their fixed points then differ by ~1e-10 standard errors, which is 6e-7
    # relative for the cloglog coefficient of "mean texture" (−1.7e-4 ± 0.5): measure errors
    # relative to max(|θ|, se) there. The canonical logit is held to plain relative 1e-8.
    _check_parity(ours, theirs, params_scale=None if link == "logit" else theirs.bse)


def test_binomial_all_thirty_features_is_separated():
    ds = load_dataset("breast_cancer")
    X = sm.add_constant(ds.X.numpy())
    with pytest.warns(SeparationWarning, match="separated"):
        res = GLM(ds.y.double().numpy(), X, family="binomial").fit()
    assert res.separated and not res.converged
    assert "separation" in res.summary()


@pytest.mark.parametrize("link", ["inverse", "log", "identity"])
def test_gamma_scotland_parity(link):
    ds = load_dataset("scotland")
    X = sm.add_constant(ds.X.numpy())
    y = ds.y.numpy()
    sm_link = {"inverse": sm.families.links.InversePower(), "log": sm.families.links.Log(),
               "identity": sm.families.links.Identity()}[link]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # statsmodels' DomainWarning for the identity link
        theirs = sm.GLM(y, X, family=sm.families.Gamma(sm_link)).fit(**SM_TOL)
    ours = GLM(y, X, family="gamma", link=link).fit(tol=1e-12)
    _check_parity(ours, theirs)


def test_poisson_randhie_parity():
    ds = load_dataset("randhie")
    X = sm.add_constant(ds.X.numpy())
    ours = GLM(ds.y.numpy(), X, family="poisson").fit(tol=1e-12)
    theirs = sm.GLM(ds.y.numpy(), X, family=sm.families.Poisson()).fit(**SM_TOL)
    _check_parity(ours, theirs)


def test_poisson_cpunish_exposure_offset_weights_parity():
    ds = load_dataset("cpunish")
    X = sm.add_constant(ds.X.numpy())
    X[:, 1] = np.log(X[:, 1])  # log income, as in the statsmodels example
    y = ds.y.numpy()
    rng = np.random.default_rng(0)
    exposure = rng.uniform(0.5, 2.0, len(y))
    fw = rng.integers(1, 4, len(y)).astype(float)
    ours = GLM(y, X, family="poisson", exposure=exposure, freq_weights=fw).fit(tol=1e-12)
    theirs = sm.GLM(y, X, family=sm.families.Poisson(), exposure=exposure,
                    freq_weights=fw).fit(**SM_TOL)
    _check_parity(ours, theirs)
    off = rng.normal(0, 0.2, len(y))
    ours = GLM(y, X, family="poisson", offset=off).fit(tol=1e-12)
    theirs = sm.GLM(y, X, family=sm.families.Poisson(), offset=off).fit(**SM_TOL)
    _check_parity(ours, theirs)


def test_binomial_counts_and_var_weights_parity():
    rng = np.random.default_rng(1)
    X = sm.add_constant(rng.normal(size=(60, 3)))
    n = rng.integers(1, 20, 60)
    k = rng.binomial(n, 1 / (1 + np.exp(-(X @ [0.2, 1.0, -0.5, 0.3]))))
    counts = np.column_stack([k, n - k]).astype(float)
    ours = GLM(counts, X, family="binomial").fit(tol=1e-12)
    theirs = sm.GLM(counts, X, family=sm.families.Binomial()).fit(**SM_TOL)
    _check_parity(ours, theirs)
    yg = X @ [1.0, 2.0, 0.0, -1.0] + rng.normal(size=60)
    vw = rng.uniform(0.5, 3, 60)
    ours = GLM(yg, X, family="gaussian", var_weights=vw).fit(tol=1e-12)
    theirs = sm.GLM(yg, X, family=sm.families.Gaussian(), var_weights=vw).fit(**SM_TOL)
    _check_parity(ours, theirs)
    # Gaussian + identity: one IRLS step is weighted least squares
    one = GLM(yg, X, family="gaussian", var_weights=vw).fit(max_iter=1, warn=False)
    np.testing.assert_allclose(one.params.numpy(), theirs.params, rtol=1e-10)


def test_irls_step_is_newton_step_and_score_vanishes():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(200, 3, generator=g, dtype=torch.float64)
    y = torch.poisson(torch.exp(X @ torch.tensor([0.5, -0.3, 0.2], dtype=torch.float64)),
                      generator=g)
    b0 = torch.tensor([0.1, 0.1, 0.1], dtype=torch.float64)
    one = irls(X, y, Poisson(), Log(), start=b0, max_iter=1, warn=False)

    def nll(b):
        eta = X @ b
        return (torch.exp(eta) - y * eta).sum()

    gr = torch.func.grad(nll)(b0)
    H = torch.func.hessian(nll)(b0)
    newton = b0 - torch.linalg.solve(H, gr)  # Eq. 5.7
    np.testing.assert_allclose(one.params.numpy(), newton.numpy(), rtol=1e-12)
    full = irls(X, y, Poisson(), Log(), tol=1e-14)
    score = X.mT @ (y - full.mu)  # Σ (x − μ) y = 0: moment matching (Eq. 5.13)
    assert float(score.abs().max()) < 1e-8
    assert all(b <= a + 1e-9 for a, b in zip(full.history, full.history[1:]))  # monotone


def test_step_halving_rescues_an_overshooting_newton_step():
    """From η = −8 the Poisson Newton step is ≈ ȳ/e⁻⁸ ≈ 9000 (the curvature Σμ is tiny), which
    overflows the mean; halving shortens it until the deviance decreases. Without halvings the
    same start stalls at once."""
    g = torch.Generator().manual_seed(5)
    y = torch.poisson(torch.full((300,), 3.0, dtype=torch.float64), generator=g)
    X = torch.ones(300, 1, dtype=torch.float64)
    start = torch.tensor([-8.0], dtype=torch.float64)
    res = irls(X, y, Poisson(), Log(), start=start, tol=1e-14)
    assert res.converged
    assert abs(float(res.params[0]) - float(y.mean().log())) < 1e-10  # the intercept-only MLE
    assert all(b <= a + 1e-9 for a, b in zip(res.history, res.history[1:]))  # monotone
    one = irls(X, y, Poisson(), Log(), start=start, max_iter=1, warn=False)
    full_step = float(y.mean() / torch.exp(start[0]) - 1)  # Σ(y − μ) / Σμ at the start
    taken = float(one.params[0] - start[0])
    assert 0 < taken < full_step / 2  # at least one halving happened
    halvings = math.log2(full_step / taken)
    assert abs(halvings - round(halvings)) < 1e-9  # the step is the Newton step over 2^k
    with pytest.warns(ConvergenceWarning, match="step-halving could not decrease the deviance"):
        stuck = irls(X, y, Poisson(), Log(), start=start, max_halvings=0)
    assert stuck.n_iter == 1 and torch.equal(stuck.params, start)


def test_poisson_recovers_parameters():
    g = torch.Generator().manual_seed(2)
    X = torch.cat([torch.ones(100_000, 1, dtype=torch.float64),
                   torch.randn(100_000, 2, generator=g, dtype=torch.float64)], 1)
    d = torch.tensor([0.3, 0.5, -0.4], dtype=torch.float64)
    y = torch.poisson(torch.exp(X @ d), generator=g)
    res = GLM(y, X, family="poisson").fit()
    assert float((res.params - d).abs().max()) < 0.02
    # the true values lie within 5 standard errors
    assert float(((res.params - d).abs() / res.bse).max()) < 5


def test_multinomial_two_classes_equals_logistic():
    g = torch.Generator().manual_seed(3)
    X = torch.cat([torch.ones(300, 1, dtype=torch.float64),
                   torch.randn(300, 2, generator=g, dtype=torch.float64)], 1)
    t = (torch.rand(300, generator=g, dtype=torch.float64)
         < torch.sigmoid(X @ torch.tensor([0.3, 1.0, -2.0], dtype=torch.float64))).double()
    logit = irls(X, t, Binomial(), Logit(), tol=1e-14)
    soft = multinomial_newton(X, torch.stack([1 - t, t], 1), tol=1e-14)
    W = soft.params
    np.testing.assert_allclose((W[:, 1] - W[:, 0]).numpy(), logit.params.numpy(), rtol=1e-9)


def test_gamma_shape_regression_book_variant():
    g = torch.Generator().manual_seed(4)
    X = torch.cat([torch.ones(20_000, 1, dtype=torch.float64),
                   torch.randn(20_000, 2, generator=g, dtype=torch.float64) * 0.5], 1)
    theta = torch.tensor([0.7, 0.4, -0.3], dtype=torch.float64)
    k = torch.exp(X @ theta)
    scale = 1.5
    x = torch.distributions.Gamma(k, 1.0 / scale).sample()
    newton = gamma_shape_regression(X, x, scale, method="newton", tol=1e-14)
    fisher = gamma_shape_regression(X, x, scale, method="fisher", tol=1e-14)
    assert newton.converged and fisher.converged
    np.testing.assert_allclose(newton.params.numpy(), fisher.params.numpy(), rtol=1e-6)
    assert float((newton.params - theta).abs().max()) < 0.03
    # the book's gradient Σ (log x − μ) k y (errata E-16) is the autograd gradient

    def ll(th):
        kk = torch.exp(X @ th)
        return ((kk - 1) * x.log() - x / scale - torch.lgamma(kk) - kk * np.log(scale)).sum()

    th = torch.tensor([0.2, 0.1, 0.0], dtype=torch.float64)
    kk = torch.exp(X @ th)
    book = X.mT @ ((x.log() - torch.special.digamma(kk) - np.log(scale)) * kk)
    np.testing.assert_allclose(book.numpy(), torch.func.grad(ll)(th).numpy(), rtol=1e-10)


def test_bad_input():
    X = sm.add_constant(np.random.default_rng(0).normal(size=(20, 2)))
    with pytest.raises(ValueError, match="non-negative"):
        GLM(np.r_[-1.0, np.ones(19)], X, family="poisson")
    with pytest.raises(ValueError, match="strictly positive"):
        GLM(np.r_[0.0, np.ones(19)], X, family="gamma")
    with pytest.raises(ValueError, match="NaN"):
        GLM(np.r_[np.nan, np.ones(19)], X, family="gaussian")
    Xn = X.copy()
    Xn[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        GLM(np.ones(20), Xn, family="poisson")
    with pytest.raises(ValueError, match="binomial response"):
        GLM(np.full(20, 2.0), X, family="binomial")
    Xr = np.column_stack([X, X[:, 1] - X[:, 2]])
    with pytest.raises(ValueError, match="rank deficient: x4"):
        GLM(np.ones(20), Xr, family="poisson").fit()
    with pytest.raises(ValueError, match="log link"):
        GLM(np.ones(20), X, family="gaussian", exposure=np.ones(20))
    with pytest.raises(ValueError, match="family"):
        GLM(np.ones(20), X, family="tweedie")
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        GLM(np.arange(20.0), X, family="poisson").fit(max_iter=1)


def test_poisson_separation_zero_counts():
    X = np.column_stack([np.ones(10), np.r_[np.zeros(5), np.ones(5)]])
    y = np.r_[np.zeros(5), np.arange(1.0, 6.0)]  # x=0 ⇒ always 0: μ → 0, coefficient → −∞
    X[:, 1] = 1 - X[:, 1]
    with pytest.warns(SeparationWarning):
        res = GLM(y, X, family="poisson").fit()
    assert res.separated
    # an L2 penalty gives a finite estimate without warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert GLM(y, X, family="poisson").fit(alpha=1.0).converged


def test_save_load_fitted_glm(tmp_path):
    y, X = _breast_cancer_mean()
    res = GLM(y, X, family="binomial").fit()
    genmodels.save(res.to_model(), tmp_path / "m")
    back = genmodels.load(tmp_path / "m")
    np.testing.assert_array_equal(back.params.numpy(), res.params.numpy())
    np.testing.assert_allclose(back.bse.numpy(), res.bse.numpy(), rtol=1e-14)
    np.testing.assert_allclose(back.predict(X).numpy(), res.predict(X).numpy(), rtol=1e-14)
    assert back.config["family"] == "binomial" and back.config["aic"] == res.aic
