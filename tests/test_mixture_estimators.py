"""scikit-learn faces: GaussianMixture, KMeans, LDA, QDA — parity, limits, check_estimator."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import multivariate_normal
from sklearn import discriminant_analysis as skda
from sklearn.cluster import KMeans as SkKMeans
from sklearn.mixture import GaussianMixture as SkGaussianMixture
from sklearn.utils.estimator_checks import parametrize_with_checks

from genmodels.data import load_dataset
from genmodels.estimators.discriminant import (
    LinearDiscriminantAnalysis,
    QuadraticDiscriminantAnalysis,
)
from genmodels.estimators.mixture import GaussianMixture, KMeans
from genmodels.learning.kmeans import kmeans, kmeans_plusplus, lloyd
from genmodels.models.covariance import GaussianEmission
from genmodels.models.mixture import MixtureModel

# scikit-learn marks the same check as an expected failure for its own KMeans: with random
# (k-means++) seeding, weighting a point is not the same random draw as repeating it.
EXPECTED_FAILED = {
    "check_sample_weight_equivalence_on_dense_data":
        "sample_weight is not equivalent to removing/repeating samples (as in scikit-learn).",
}


@pytest.mark.slow
@parametrize_with_checks(
    [GaussianMixture(), KMeans(n_clusters=3, n_init=2, max_iter=5),
     LinearDiscriminantAnalysis(), QuadraticDiscriminantAnalysis()],
    expected_failed_checks=lambda est: EXPECTED_FAILED if isinstance(est, KMeans) else {},
)
def test_sklearn_check_estimator(estimator, check):
    check(estimator)


# -- GaussianMixture --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["full", "diag", "spherical", "tied"])
def test_gaussian_mixture_matches_sklearn_from_the_same_initialisation(kind):
    X = load_dataset("wine").X.numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = SkGaussianMixture(3, covariance_type=kind, max_iter=1, random_state=0).fit(X)
    init = dict(weights_init=start.weights_, means_init=start.means_,
                precisions_init=start.precisions_, covariance_type=kind, max_iter=200, tol=1e-8)
    sk = SkGaussianMixture(3, **init).fit(X)
    ours = GaussianMixture(3, **init).fit(pd.DataFrame(X))
    assert ours.n_iter_ == sk.n_iter_ and ours.converged_ == sk.converged_
    np.testing.assert_allclose(ours.lower_bound_, sk.lower_bound_, rtol=1e-9)
    for attr in ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_"):
        ref = getattr(sk, attr)
        np.testing.assert_allclose(getattr(ours, attr), ref, rtol=1e-6,
                                   atol=1e-6 * np.abs(ref).max())
    np.testing.assert_allclose(ours.score_samples(X), sk.score_samples(X), rtol=1e-8)
    np.testing.assert_allclose(ours.predict_proba(X), sk.predict_proba(X), atol=1e-6)
    np.testing.assert_allclose(ours.bic(X), sk.bic(X), rtol=1e-8)
    np.testing.assert_allclose(ours.aic(X), sk.aic(X), rtol=1e-8)
    assert (ours.predict(torch.as_tensor(X)) == sk.predict(X)).mean() > 0.99


def test_gaussian_mixture_fit_sample_warm_start_and_dtypes():
    X = load_dataset("iris").X.numpy()
    gm = GaussianMixture(3, random_state=0, n_init=2).fit(X)
    assert gm.converged_ and gm.lower_bound_ > -1.5  # sklearn reaches about -1.20 on iris
    Xs, ys = gm.sample(500)
    assert Xs.shape == (500, 4) and ys.shape == (500,) and set(np.unique(ys)) <= {0, 1, 2}
    before = gm.lower_bound_
    gm.set_params(warm_start=True, max_iter=5).fit(X)
    assert gm.lower_bound_ >= before - 1e-9
    g32 = GaussianMixture(3, random_state=0, dtype="float32").fit(X)
    assert g32.means_.dtype == np.float32
    assert abs(g32.score(X) - gm.score(X)) < 0.2


def test_gaussian_mixture_bad_input():
    X = np.random.default_rng(0).normal(size=(20, 3))
    with pytest.raises(ValueError, match="n_samples >= n_components"):
        GaussianMixture(5).fit(X[:4])
    bad = X.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"NaN at index \(3, 1\)"):
        GaussianMixture(2).fit(bad)
    with pytest.raises(ValueError, match="covariance_type"):
        GaussianMixture(2, covariance_type="nope").fit(X)
    with pytest.raises(ValueError, match="reg_covar"):
        GaussianMixture(2, reg_covar=-1).fit(X)
    with pytest.raises(ValueError, match="weights_init must sum to 1"):
        GaussianMixture(2, weights_init=[0.2, 0.2]).fit(X)
    gm = GaussianMixture(2, random_state=0).fit(X)
    with pytest.raises(ValueError, match="3 features"):
        gm.predict(X[:, :2])
    with pytest.raises(ValueError, match="reg_covar"):  # collapsed data, no regulariser
        GaussianMixture(1, reg_covar=0.0).fit(np.ones((10, 2)))


# -- KMeans -----------------------------------------------------------------------------------


@pytest.mark.parametrize("data,k", [("iris", 3), ("digits", 10)])
def test_kmeans_inertia_no_worse_than_sklearn_from_the_same_centres(data, k):
    X = load_dataset(data).X.numpy()
    rng = np.random.default_rng(0)
    init = X[rng.choice(len(X), k, replace=False)]
    sk = SkKMeans(k, init=init, n_init=1, max_iter=300, tol=1e-4).fit(X)
    ours = KMeans(k, init=init, n_init=1, max_iter=300, tol=1e-4).fit(X)
    assert ours.inertia_ <= sk.inertia_ * (1 + 1e-9)
    # a fixed point: each centre is the mean of its cluster, each point is nearest its centre
    for j in range(k):
        np.testing.assert_allclose(ours.cluster_centers_[j], X[ours.labels_ == j].mean(0),
                                   rtol=1e-4, atol=1e-3)
    assert (ours.predict(X) == ours.labels_).all()
    np.testing.assert_allclose(-ours.score(X), ours.inertia_, rtol=1e-10)
    assert ours.transform(X).shape == (len(X), k)


def test_lloyd_inertia_never_increases():
    y = torch.as_tensor(load_dataset("digits").X)
    centres, _ = kmeans_plusplus(y, 10, torch.Generator().manual_seed(0))
    inertias = []
    for _ in range(20):  # one Lloyd step at a time
        res = lloyd(y, centres, max_iter=1)
        inertias.append(float(res.inertia))
        centres = res.centers
    assert (np.diff(inertias) <= 1e-9 * inertias[0]).all()


def test_kmeans_is_the_zero_variance_limit_of_the_gmm():
    y = torch.as_tensor(load_dataset("iris").X)
    res = kmeans(y, 3, seed=0)
    eps = 1e-8  # Σ = εI for every component (errata E-24: isotropic)
    model = MixtureModel(torch.tensor([0.7, 0.2, 0.1]),
                         GaussianEmission.from_parameters(res.centers, torch.full((3,), eps),
                                                          "spherical"))
    d2 = torch.cdist(y, res.centers).square()
    top2 = d2.topk(2, largest=False).values
    clear = (top2[:, 1] - top2[:, 0]) > 1e-6  # exclude (near-)ties
    resp = model.posterior(y).responsibilities
    assert bool((resp.argmax(-1)[clear] == res.labels[clear]).all())
    assert bool((resp.max(-1).values[clear] > 1 - 1e-12).all())


def test_kmeans_plusplus_spreads_the_seeds():
    y = torch.cat([torch.randn(200, 2) * 0.1 + c for c in
                   torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])])
    _, idx = kmeans_plusplus(y, 4, torch.Generator().manual_seed(1))
    assert len(set((idx // 200).tolist())) == 4  # one seed in each blob


# -- LDA / QDA --------------------------------------------------------------------------------


@pytest.mark.parametrize("data", ["iris", "wine"])
@pytest.mark.parametrize("kw", [{}, {"solver": "lsqr"}, {"solver": "eigen", "shrinkage": 0.3},
                                {"priors": [0.5, 0.3, 0.2]}])
def test_lda_predict_proba_matches_sklearn(data, kw):
    ds = load_dataset(data)
    X, y = ds.X.numpy(), ds.y.numpy()
    sk = skda.LinearDiscriminantAnalysis(**kw).fit(X, y)
    ours = LinearDiscriminantAnalysis(**kw).fit(X, y)
    np.testing.assert_allclose(ours.predict_proba(X), sk.predict_proba(X), rtol=0, atol=1e-8)
    np.testing.assert_allclose(ours.priors_, sk.priors_, rtol=1e-12)
    np.testing.assert_allclose(ours.means_, sk.means_, rtol=1e-10)
    assert ours.score(X, y) == sk.score(X, y)
    if kw.get("solver", "svd") == "svd":
        assert ours.transform(X).shape == sk.transform(X).shape
        np.testing.assert_allclose(ours.explained_variance_ratio_,
                                   sk.explained_variance_ratio_, atol=1e-8)


@pytest.mark.parametrize("data", ["iris", "wine", "breast_cancer"])
@pytest.mark.parametrize("kw", [{"reg_param": 0.1}, {"solver": "eigen", "shrinkage": 0.2},
                                {"reg_param": 0.05, "priors": None}])
def test_qda_predict_proba_matches_sklearn(data, kw):
    ds = load_dataset(data)
    X, y = ds.X.numpy(), ds.y.numpy()
    sk = skda.QuadraticDiscriminantAnalysis(**kw).fit(X, y)
    ours = QuadraticDiscriminantAnalysis(**kw).fit(X, y)
    np.testing.assert_allclose(ours.predict_proba(X), sk.predict_proba(X), rtol=0, atol=1e-8)
    np.testing.assert_allclose(ours.predict_log_proba(X)[sk.predict_proba(X) > 1e-6],
                               sk.predict_log_proba(X)[sk.predict_proba(X) > 1e-6], atol=1e-7)
    for a, b in zip(ours.scalings_, sk.scalings_, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-8)


def test_qda_is_explicit_bayes_and_rank_deficiency_raises():
    ds = load_dataset("iris")
    X, y = ds.X.numpy(), ds.y.numpy()
    qda = QuadraticDiscriminantAnalysis(store_covariance=True).fit(X, y)
    dens = np.stack([multivariate_normal(qda.means_[k], qda.covariance_[k]).pdf(X)
                     for k in range(3)], 1) * qda.priors_
    np.testing.assert_allclose(qda.predict_proba(X), dens / dens.sum(1, keepdims=True),
                               atol=1e-12)
    with pytest.raises(ValueError, match=r"class 0 is not full rank.*reg_param"):
        QuadraticDiscriminantAnalysis().fit(load_dataset("digits").X.numpy(),
                                            load_dataset("digits").y.numpy())


def test_lda_boundary_geometry():
    """Eq. 2.9: equal posteriors on the hyperplane; the midpoint for equal priors; a larger π_j
    moves the boundary towards μ_k."""
    ds = load_dataset("iris")
    X, y = ds.X.numpy(), ds.y.numpy()
    lda = LinearDiscriminantAnalysis(solver="lsqr", priors=[1 / 3] * 3).fit(X, y)
    m = lda.means_
    mid = 0.5 * (m[0] + m[1])
    p = lda.predict_proba(mid[None])[0]
    assert abs(p[0] - p[1]) < 1e-10 * max(p[0], p[1]) + 1e-300
    cov = lda.covariance_
    w = np.linalg.solve(cov, m[0] - m[1])
    rng = np.random.default_rng(0)
    for _ in range(5):  # random points on the hyperplane (y − mid)ᵀ Σ⁻¹(μ0 − μ1) = 0
        v = rng.normal(size=4)
        v -= (v @ w) / (w @ w) * w
        lp = lda.predict_log_proba((mid + v)[None])[0]
        assert abs(lp[0] - lp[1]) < 1e-10
    skew = LinearDiscriminantAnalysis(solver="lsqr", priors=[0.2, 0.6, 0.2]).fit(X, y)
    p = skew.predict_proba(mid[None])[0]
    assert p[1] > p[0]  # π_1 > π_0: the midpoint now belongs to class 1


def test_lda_posterior_equals_tied_gmm_posterior():
    ds = load_dataset("wine")
    X, y = ds.X.numpy(), ds.y.numpy()
    lda = LinearDiscriminantAnalysis(solver="lsqr").fit(X, y)
    em = GaussianEmission.from_parameters(torch.tensor(lda.means_),
                                          torch.tensor(lda.covariance_), "tied")
    gmm = MixtureModel(torch.tensor(lda.priors_), em)
    np.testing.assert_allclose(gmm.posterior(torch.tensor(X)).responsibilities.numpy(),
                               lda.predict_proba(X), atol=1e-10)
    # Eq. 2.9's linear scores reproduce the posterior
    z = X @ lda.coef_.T + lda.intercept_
    np.testing.assert_allclose(np.exp(z - np.logaddexp.reduce(z, 1, keepdims=True)),
                               lda.predict_proba(X), atol=1e-10)


def test_lda_on_digits_regularises_with_a_warning():
    ds = load_dataset("digits")
    X, y = ds.X.numpy(), ds.y.numpy()
    from genmodels.exceptions import DegenerateFitWarning

    with pytest.warns(DegenerateFitWarning, match="singular"):
        lda = LinearDiscriminantAnalysis().fit(X, y)
    sk = skda.LinearDiscriminantAnalysis().fit(X, y)
    # scikit-learn truncates the constant pixels' directions; we add a tiny ridge instead
    np.testing.assert_allclose(lda.predict_proba(X), sk.predict_proba(X), atol=1e-5)
    assert (lda.predict(X) == sk.predict(X)).all()
