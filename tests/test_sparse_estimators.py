"""The scikit-learn faces: SparseCoder, DictionaryLearning, MiniBatchDictionaryLearning."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn import decomposition as skd

from genmodels.estimators.sparse_coding import (
    DictionaryLearning,
    MiniBatchDictionaryLearning,
    SparseCoder,
)
from genmodels.inference.lasso import lasso

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _data(N: int = 400, M: int = 10, K: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    D = rng.normal(size=(K, M))
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    U = rng.laplace(size=(N, K)) * (rng.random((N, K)) < 0.15)
    return U @ D + 0.05 * rng.normal(size=(N, M)), D


def _objective(X: np.ndarray, components: np.ndarray, alpha: float) -> float:
    """scikit-learn's per-sample objective at exact codes."""
    C = torch.from_numpy(components.T.copy())
    Y = torch.from_numpy(X)
    U = lasso(Y, C, 1.0, alpha).codes
    r = Y - U @ C.T
    return float((0.5 * r.square().sum(1) + alpha * U.abs().sum(1)).mean())


def test_sparse_coder_matches_sklearn() -> None:
    X, D = _data()
    ours = SparseCoder(D, transform_alpha=0.2).transform(X)
    theirs = skd.SparseCoder(D, transform_algorithm="lasso_cd", transform_alpha=0.2,
                             transform_max_iter=10_000).transform(X)
    assert np.allclose(ours, theirs, atol=1e-4)
    fista = SparseCoder(D, transform_alpha=0.2, transform_algorithm="fista").transform(X)
    assert np.allclose(ours, fista, atol=1e-7)


@pytest.mark.parametrize("cls", [DictionaryLearning, MiniBatchDictionaryLearning])
def test_learners_reach_sklearns_objective(cls: type) -> None:
    X, _ = _data(N=600)
    kw: dict = {"n_components": 20, "alpha": 0.3, "random_state": 0}
    if cls is MiniBatchDictionaryLearning:
        kw.update(batch_size=64, max_iter=20)
        sk = skd.MiniBatchDictionaryLearning(20, alpha=0.3, batch_size=64, max_iter=20,
                                             random_state=0)
    else:
        kw.update(max_iter=60)
        sk = skd.DictionaryLearning(20, alpha=0.3, max_iter=60, random_state=0,
                                    fit_algorithm="cd")
    ours = cls(**kw).fit(X)
    assert ours.components_.shape == (20, 10)
    assert bool((np.linalg.norm(ours.components_, axis=1) <= 1 + 1e-9).all())  # unit ball
    sk.fit(X)
    f_ours = _objective(X, ours.components_, 0.3)
    f_sk = _objective(X, sk.components_, 0.3)
    assert f_ours < f_sk * 1.02  # at least as good, within 2%
    codes = ours.transform(X)
    assert codes.shape == (600, 20)
    assert ours.error_[-1] <= ours.error_[0]


def test_em_fit_and_laplace_evidence() -> None:
    X, _ = _data(N=300, M=6, K=12)
    dl = DictionaryLearning(12, alpha=1.0, fit_algorithm="em", lam=100.0, beta=10.0,
                            max_iter=5, random_state=0).fit(X)
    assert dl.model_ is not None and len(dl.error_) == dl.n_iter_
    s = dl.score_samples(X)
    assert s.shape == (300,) and np.isfinite(s).all()
    assert np.isclose(dl.score(X), s.mean())
    lo = DictionaryLearning(12, alpha=1.0, fit_algorithm="lewicki_olshausen", lam=100.0,
                            max_iter=5, learning_rate=0.01, random_state=0).fit(X)
    assert lo.error_[-1] < lo.error_[0]


def test_bad_input() -> None:
    X, D = _data(N=20)
    D0 = D.copy()
    D0[3] = 0
    with pytest.raises(ValueError, match=r"all-zero column.*atom 3"):
        SparseCoder(D0).fit()
    with pytest.raises(ValueError, match="transform_algorithm must be one of"):
        SparseCoder(D, transform_algorithm="omp").transform(X)
    with pytest.raises(ValueError, match="positive_code=True is not supported"):
        SparseCoder(D, positive_code=True).transform(X)
    with pytest.raises(ValueError, match="alpha must be a finite number > 0"):
        DictionaryLearning(5, alpha=-1.0).fit(X)
    with pytest.raises(ValueError, match="fit_algorithm must be one of"):
        DictionaryLearning(5, fit_algorithm="lars").fit(X)
    Xn = X.copy()
    Xn[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"contains 1 non-finite.*\(2, 1\)"):
        MiniBatchDictionaryLearning(5).fit(Xn)
    with pytest.raises(ValueError, match=r"dict_init must have shape \(5, 10\)"):
        DictionaryLearning(5, dict_init=np.ones((4, 10))).fit(X)
