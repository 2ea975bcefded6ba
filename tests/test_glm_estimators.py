"""scikit-learn faces of the linear models: parity with scikit-learn and check_estimator."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import linear_model as sk
from sklearn.datasets import load_breast_cancer, load_iris
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from genmodels.estimators import linear_model as gm
from genmodels.learning.irls import SeparationWarning


def _bc():
    b = load_breast_cancer()
    return StandardScaler().fit_transform(b.data), b.target


@pytest.mark.parametrize("C", [0.1, 1.0, 10.0])
def test_logistic_matches_sklearn(C):
    X, y = _bc()
    ref = sk.LogisticRegression(C=C, solver="newton-cholesky", tol=1e-12, max_iter=1000).fit(X, y)
    ours = gm.LogisticRegression(C=C, tol=1e-14).fit(X, y)
    np.testing.assert_allclose(ours.coef_, ref.coef_, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(ours.intercept_, ref.intercept_, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(ours.predict_proba(X), ref.predict_proba(X), atol=1e-9)


def test_softmax_matches_sklearn_multinomial():
    i = load_iris()
    X = StandardScaler().fit_transform(i.data)
    w = np.random.default_rng(0).uniform(0.5, 2, len(X))
    ref = sk.LogisticRegression(C=2.0, solver="newton-cholesky", tol=1e-12, max_iter=1000)
    ref.fit(X, i.target, sample_weight=w)
    ours = gm.LogisticRegression(C=2.0, tol=1e-14).fit(X, i.target, sample_weight=w)
    np.testing.assert_allclose(ours.coef_, ref.coef_, atol=1e-8)
    np.testing.assert_allclose(ours.intercept_, ref.intercept_ - ref.intercept_.mean(), atol=1e-8)
    np.testing.assert_allclose(ours.predict_proba(X), ref.predict_proba(X), atol=1e-9)
    assert (ours.predict(X) == ref.predict(X)).all()


def test_unpenalised_logistic_on_separable_data_warns():
    b = load_breast_cancer()
    X = StandardScaler().fit_transform(b.data)
    with pytest.warns(SeparationWarning):
        gm.LogisticRegression(penalty=None).fit(X, b.target)


@pytest.mark.parametrize("alpha", [0.0, 0.01, 1.0])
@pytest.mark.parametrize("kind", ["poisson", "gamma"])
def test_glm_regressors_match_sklearn(kind, alpha):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(400, 5))
    mu = np.exp(X @ [0.3, -0.2, 0.1, 0.0, 0.25] + 0.5)
    y = rng.poisson(mu).astype(float) if kind == "poisson" else rng.gamma(2.0, mu / 2.0)
    w = rng.uniform(0.5, 2, 400)
    Ref = sk.PoissonRegressor if kind == "poisson" else sk.GammaRegressor
    Ours = gm.PoissonRegressor if kind == "poisson" else gm.GammaRegressor
    ref = Ref(alpha=alpha, solver="newton-cholesky", tol=1e-12, max_iter=1000).fit(
        X, y, sample_weight=w)
    ours = Ours(alpha=alpha, tol=1e-14).fit(X, y, sample_weight=w)
    np.testing.assert_allclose(ours.coef_, ref.coef_, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(ours.intercept_, ref.intercept_, rtol=1e-8, atol=1e-10)
    assert abs(ours.score(X, y, w) - ref.score(X, y, w)) < 1e-9


def test_linear_and_ridge_match_sklearn():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(100, 4))
    Y = X @ rng.normal(size=(4, 2)) + rng.normal(size=(100, 2))
    w = rng.uniform(0.5, 2, 100)
    for ours, ref in ((gm.LinearRegression(), sk.LinearRegression()),
                      (gm.Ridge(alpha=3.0), sk.Ridge(alpha=3.0))):
        ours.fit(X, Y[:, 0], sample_weight=w)
        ref.fit(X, Y[:, 0], sample_weight=w)
        np.testing.assert_allclose(ours.coef_, ref.coef_, rtol=1e-10)
        np.testing.assert_allclose(ours.intercept_, ref.intercept_, rtol=1e-10)
        ours.fit(X, Y)
        ref.fit(X, Y)
        np.testing.assert_allclose(ours.coef_, ref.coef_, rtol=1e-10)


def test_estimator_bad_input():
    X = np.random.default_rng(0).normal(size=(10, 2))
    with pytest.raises(ValueError, match="non-negative"):
        gm.PoissonRegressor().fit(X, -np.ones(10))
    with pytest.raises(ValueError, match="strictly positive"):
        gm.GammaRegressor().fit(X, np.zeros(10))
    with pytest.raises(ValueError, match="rank deficient"):
        gm.LinearRegression().fit(np.column_stack([X, X[:, 0] * 2]), np.ones(10))
    with pytest.raises(ValueError, match="penalty"):
        gm.LogisticRegression(penalty="l1").fit(X, np.arange(10) % 2)


# scikit-learn's estimator contract. Checks expected to fail, and why:
def _expected_failures(est):
    if type(est) is gm.LinearRegression:
        return {"check_sample_weight_equivalence_on_dense_data":
                "the check's design has more features than (weighted) samples; scikit-learn "
                "returns the minimum-norm solution, genmodels raises 'rank deficient' by design "
                "(use Ridge)"}
    return {}


@parametrize_with_checks(
    [gm.LinearRegression(), gm.Ridge(), gm.LogisticRegression(), gm.PoissonRegressor(),
     gm.GammaRegressor()],
    expected_failed_checks=_expected_failures,
)
@pytest.mark.slow
def test_sklearn_contract(estimator, check):
    check(estimator)
