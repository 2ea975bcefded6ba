"""PCA and FactorAnalysis centre a private copy of the data in place, never the caller's array."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genmodels.estimators.decomposition import PCA, FactorAnalysis


def inputs() -> list[object]:
    g = np.random.default_rng(0)
    X = g.normal(size=(300, 6)) @ g.normal(size=(6, 6)) + 5.0
    wide = np.c_[X, np.zeros(300)]
    return [X, np.asfortranarray(X), wide[:, :6], X.astype(np.float32), torch.tensor(X),
            torch.tensor(X).T.contiguous().T, X.tolist()]


@pytest.mark.parametrize("make", [lambda: PCA(3), lambda: PCA(3, svd_solver="full"),
                                  lambda: FactorAnalysis(2)])
@pytest.mark.parametrize("index", range(7))
def test_fit_leaves_the_input_as_it_was(make: object, index: int) -> None:
    X = inputs()[index]
    before = np.array(X, dtype=np.float64, copy=True)
    est = make()  # type: ignore[operator]
    est.fit(X)
    np.testing.assert_array_equal(np.asarray(X, dtype=np.float64), before)
    ref = make().fit(before)  # type: ignore[operator]
    np.testing.assert_allclose(est.mean_, ref.mean_, rtol=1e-6)
    np.testing.assert_allclose(np.abs(est.components_), np.abs(ref.components_), rtol=1e-5,
                               atol=1e-6)
