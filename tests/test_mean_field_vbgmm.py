"""The variational Bayesian GMM by CAVI: scikit-learn's BayesianGaussianMixture number for
number from the same initialisation, a never-decreasing ELBO, and check_estimator."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans as SkKMeans
from sklearn.mixture import BayesianGaussianMixture as SkBGM
from sklearn.utils.estimator_checks import parametrize_with_checks

from genmodels.data import load_dataset
from genmodels.estimators.bayesian_mixture import BayesianGaussianMixture
from genmodels.inference import mean_field


@pytest.mark.parametrize("kind", ["full", "diag", "spherical", "tied"])
@pytest.mark.parametrize("weights", ["dirichlet_process", "dirichlet_distribution"])
def test_matches_sklearn_from_the_same_initialisation(kind: str, weights: str) -> None:
    X = load_dataset("wine").X.numpy()
    kw = dict(covariance_type=kind, weight_concentration_prior_type=weights, max_iter=60,
              tol=1e-8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sk = SkBGM(n_components=4, random_state=0, **kw).fit(X)  # k-means init, seed 0
        labels = SkKMeans(4, n_init=1, random_state=0).fit(X).labels_  # the same labels
        ours = BayesianGaussianMixture(4, responsibilities_init=np.eye(4)[labels], **kw).fit(X)
    assert ours.n_iter_ == sk.n_iter_ and ours.converged_ == sk.converged_
    theirs = np.asarray(sk.lower_bounds_, dtype=float).reshape(-1)  # (tied: shape-(1,) items)
    np.testing.assert_allclose(ours.lower_bounds_, theirs, rtol=1e-6)
    for attr in ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_",
                 "mean_precision_", "degrees_of_freedom_", "covariance_prior_", "mean_prior_"):
        ref = np.asarray(getattr(sk, attr))
        np.testing.assert_allclose(getattr(ours, attr), ref, rtol=1e-6,
                                   atol=1e-6 * np.abs(ref).max(), err_msg=attr)
    np.testing.assert_allclose(np.asarray(ours.weight_concentration_),
                               np.asarray(sk.weight_concentration_), rtol=1e-6)
    np.testing.assert_allclose(ours.score_samples(X), sk.score_samples(X), rtol=1e-8)
    np.testing.assert_allclose(ours.predict_proba(X), sk.predict_proba(X), atol=1e-6)


@pytest.mark.parametrize("kind", ["full", "diag", "spherical", "tied"])
def test_the_elbo_never_decreases(kind: str) -> None:
    gen = torch.Generator().manual_seed(0)
    X = torch.cat([torch.randn(150, 3, generator=gen) + 4 * torch.randn(1, 3, generator=gen)
                   for _ in range(3)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = BayesianGaussianMixture(6, covariance_type=kind, max_iter=80, tol=0.0,
                                    init_params="random", random_state=1).fit(X)
    lb = np.asarray(m.lower_bounds_)
    assert len(lb) == 80
    assert np.all(np.diff(lb) >= -1e-9 * np.abs(lb[1:]))


def test_warm_start_continues_and_bad_priors_are_refused() -> None:
    X = load_dataset("iris").X.numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = BayesianGaussianMixture(3, max_iter=5, tol=0, random_state=0, warm_start=True).fit(X)
        first = a.lower_bound_
        a.fit(X)
    assert a.lower_bound_ >= first - 1e-9
    with pytest.raises(ValueError, match="degrees_of_freedom_prior must be greater"):
        BayesianGaussianMixture(2, degrees_of_freedom_prior=1.0).fit(X)
    with pytest.raises(ValueError, match=r"covariance_prior for covariance_type='diag' must "
                                         r"have shape \(4,\)"):
        BayesianGaussianMixture(2, covariance_type="diag", covariance_prior=np.eye(4)).fit(X)
    with pytest.raises(ValueError, match="weight_concentration_prior_type"):
        BayesianGaussianMixture(2, weight_concentration_prior_type="beta").fit(X)
    Xs, ys = a.sample(20)
    assert Xs.shape == (20, 4) and np.all(np.diff(ys) >= 0)


@parametrize_with_checks([BayesianGaussianMixture(2, max_iter=20)])
def test_sklearn_check_estimator(estimator, check):  # type: ignore[no-untyped-def]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check(estimator)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("degrees_of_freedom", 1.0, r"must be greater than n_features - 1 = 3 \(n_features: the "
                                r"columns of {data}\), got 1.0"),
    ("weight_concentration", 0.0, r"must be a finite number > 0, got 0.0"),
    ("mean_precision", -1.0, r"must be a finite number > 0, got -1.0"),
    ("mean", np.zeros(3), r"must have shape \(4,\), got \(3,\)"),
    ("covariance", np.eye(3), r"for covariance_type='full' must have shape \(4, 4\), got "
                              r"\(3, 3\)"),
])
def test_one_prior_check_for_the_kernel_and_the_estimator(field, value, message) -> None:
    """``vbgmm_cavi`` and ``BayesianGaussianMixture`` refuse a prior through the same
    ``check_vbgmm_prior``: the same words, each under its own names."""
    X = load_dataset("iris").X
    good = mean_field.VBGMMPrior("dirichlet_distribution", 1.0, 1.0, X.mean(0), 4.0,
                                 torch.eye(4, dtype=X.dtype))
    resp = torch.nn.functional.one_hot(torch.arange(X.shape[0]) % 2, 2).to(X.dtype)
    bad = good._replace(**{field: value})
    with pytest.raises(ValueError, match=f"^{field} " + message.format(data="y")):
        mean_field.vbgmm_cavi(X, bad, "full", resp0=resp, max_iter=2)
    with pytest.raises(ValueError, match=f"^{field}_prior " + message.format(data="X")):
        BayesianGaussianMixture(2, **{f"{field}_prior": value}).fit(X.numpy())
