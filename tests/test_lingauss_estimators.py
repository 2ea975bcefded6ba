"""FactorAnalysis and PCA estimators: parity with scikit-learn on real data, check_estimator,
input handling."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn import decomposition as skd
from sklearn.utils.estimator_checks import parametrize_with_checks

from genmodels.data import load_dataset
from genmodels.estimators.decomposition import PCA, FactorAnalysis
from genmodels.exceptions import DegenerateFitWarning


def data(name: str, drop_constant: bool = False) -> np.ndarray:
    X = load_dataset(name).X.numpy()
    if drop_constant:
        X = X[:, X.std(0) > 0]
    return X


@parametrize_with_checks([FactorAnalysis(), PCA(), PCA(n_components=2, whiten=True)])
def test_scikit_learn_check_estimator(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateFitWarning)
        check(estimator)


@pytest.mark.parametrize(("name", "k", "drop"), [("wine", 3, False), ("digits", 10, True),
                                                  ("digits", 10, False)])
def test_factor_analysis_log_likelihood_no_worse_than_scikit_learn(name, k, drop):
    X = data(name, drop)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateFitWarning)
        ours = FactorAnalysis(k).fit(X)
    theirs = skd.FactorAnalysis(k).fit(X)
    ll_ours, ll_theirs = ours.score(X), theirs.score(X)
    assert ll_ours >= ll_theirs - 1e-6 * abs(ll_theirs), (ll_ours, ll_theirs)
    assert np.all(np.diff(ours.loglike_) >= -1e-9 * np.abs(ours.loglike_[1:]))
    assert ours.components_.shape == (k, X.shape[1]) and ours.n_iter_ == len(ours.loglike_)
    np.testing.assert_allclose(ours.mean_, theirs.mean_)
    cov_ours, cov_theirs = ours.get_covariance(), theirs.get_covariance()
    rel = np.linalg.norm(cov_ours - cov_theirs) / np.linalg.norm(cov_theirs)
    if name == "wine":  # both converge to the same model (scikit-learn stalls on digits, at a
        assert rel < 1e-3  # lower likelihood: 3.6% away in covariance, -0.009 nats per datum)
    if drop:
        np.testing.assert_allclose(ours.get_precision() @ cov_ours, np.eye(X.shape[1]),
                                   atol=1e-8)
        np.testing.assert_allclose(ours.score_samples(X).mean(), ll_ours)


def test_factor_analysis_transform_matches_scikit_learn_formula():
    X = data("wine")
    fa = FactorAnalysis(2).fit(X)
    W, psi = fa.components_, fa.noise_variance_
    Wpsi = W / psi
    cov_z = np.linalg.inv(np.eye(2) + Wpsi @ W.T)
    np.testing.assert_allclose(fa.transform(X), (X - fa.mean_) @ Wpsi.T @ cov_z, rtol=1e-8)
    fa2 = FactorAnalysis(2, noise_variance_init=np.full(13, 2.0)).fit(X)
    assert np.isfinite(fa2.score(X))


@pytest.mark.parametrize("name", ["digits", "wine"])
@pytest.mark.parametrize("solver", ["auto", "full", "covariance_eigh"])
def test_pca_equals_scikit_learn(name, solver):
    X = data(name)
    k = 5
    ours = PCA(k, svd_solver=solver).fit(X)
    theirs = skd.PCA(k, svd_solver=solver).fit(X)
    signs = np.sign((ours.components_ * theirs.components_).sum(1))
    np.testing.assert_allclose(ours.components_ * signs[:, None], theirs.components_,
                               atol=1e-7)
    for attr in ("explained_variance_", "explained_variance_ratio_", "singular_values_",
                 "mean_", "noise_variance_"):
        np.testing.assert_allclose(getattr(ours, attr), getattr(theirs, attr), rtol=1e-9,
                                   err_msg=attr)
    np.testing.assert_allclose(ours.score_samples(X), theirs.score_samples(X), rtol=1e-8)
    np.testing.assert_allclose(ours.get_covariance(), theirs.get_covariance(), atol=1e-8)
    Z = ours.transform(X)
    np.testing.assert_allclose(np.abs(Z), np.abs(theirs.transform(X)), rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(ours.inverse_transform(Z), theirs.inverse_transform(
        theirs.transform(X)), atol=1e-8)


def test_pca_n_components_forms_and_whitening():
    X = data("digits")
    for nc in (None, 0.5, 0.9, 0.999):
        ours, theirs = PCA(nc).fit(X), skd.PCA(nc).fit(X)
        assert ours.n_components_ == theirs.n_components_, nc
    w = PCA(8, whiten=True)
    Z = w.fit_transform(X)
    np.testing.assert_allclose(np.cov(Z.T), np.eye(8), atol=1e-8)
    np.testing.assert_allclose(np.abs(Z), np.abs(skd.PCA(8, whiten=True).fit_transform(X)),
                               rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(w.inverse_transform(Z), PCA(8).fit(X).inverse_transform(
        PCA(8).fit_transform(X)), atol=1e-8)
    full = PCA().fit(X[:, :10])  # σ² = 0: the covariance form of the density
    assert full.noise_variance_ == 0.0
    assert np.isfinite(full.score(X[:, :10] + 0.01))


def test_dtype_device_and_input_types():
    X = data("wine")
    for Est in (FactorAnalysis, PCA):
        ref = Est(3).fit(X)
        f32 = Est(3, dtype="float32").fit(X)
        assert f32.transform(X).dtype == np.float32
        np.testing.assert_allclose(np.abs(f32.transform(X)), np.abs(ref.transform(X)),
                                   rtol=1e-2, atol=1e-2)
        frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(13)])
        est = Est(3, device="cpu").fit(frame)
        assert list(est.feature_names_in_) == list(frame.columns)
        np.testing.assert_allclose(est.transform(frame), ref.transform(X), rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(Est(3).fit(torch.as_tensor(X)).transform(torch.as_tensor(X)),
                                   ref.transform(X), rtol=1e-6, atol=1e-8)
        with pytest.raises(ValueError, match="feature names"):
            est.transform(frame.rename(columns={"f0": "other"}))


def test_bad_input():
    X = data("wine")
    bad = X.copy()
    bad[3, 2] = np.nan
    for Est in (FactorAnalysis, PCA):
        with pytest.raises(ValueError, match="NaN"):
            Est(2).fit(bad)
        with pytest.raises(ValueError, match="n_components"):
            Est(20).fit(X)
        with pytest.raises(ValueError, match="1 sample"):
            Est(1).fit(X[:1])
        fitted = Est(2).fit(X)
        with pytest.raises(ValueError, match="features"):
            fitted.transform(X[:, :5])
        with pytest.raises(ValueError, match="infinite"):
            fitted.score_samples(np.where(np.isnan(bad), np.inf, bad))
    with pytest.raises(ValueError, match="mle"):
        PCA("mle").fit(X)
    with pytest.raises(ValueError, match="svd_solver"):
        PCA(2, svd_solver="magic").fit(X)
    with pytest.raises(ValueError, match="tol"):
        FactorAnalysis(2, tol=-1.0).fit(X)
    with pytest.warns(DegenerateFitWarning):
        FactorAnalysis(2).fit(np.c_[X, np.ones(len(X))])
