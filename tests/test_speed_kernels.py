"""The compiled and fused kernels behind the speed work equal their plain formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from genmodels.models.covariance import _triu_features
from genmodels.models.mixture import _exp_shifted_


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shifted_exp_is_exp_above_the_floor_and_the_floor_below(dtype: torch.dtype) -> None:
    floor = math.log(torch.finfo(dtype).tiny) + 8.0
    z = torch.tensor([0.0, -1.0, -50.0, floor + 1e-3, floor - 1e-3, -1e4, -math.inf],
                     dtype=dtype)
    out = _exp_shifted_(z.clone())
    torch.testing.assert_close(out[:4], z[:4].exp(), rtol=0, atol=0)
    low = torch.tensor(floor, dtype=dtype).exp()
    assert bool((out[4:] == low).all()) and float(low) < 3e3 * float(torch.finfo(dtype).tiny)


@pytest.mark.parametrize("n", [5, 300])  # the torch form, and the compiled one (n ≥ 256)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_quadratic_features(n: int, dtype: torch.dtype) -> None:
    d = 6
    y = torch.randn(n, d, generator=torch.Generator().manual_seed(n), dtype=dtype)
    i, j = torch.triu_indices(d, d)
    ref = torch.cat([y[:, i] * y[:, j], y, torch.ones(n, 1, dtype=dtype)], 1)
    torch.testing.assert_close(_triu_features(y), ref, rtol=0, atol=0)
    torch.testing.assert_close(_triu_features(y[::2]), ref[::2], rtol=0, atol=0)  # strided


def test_fit_predict_labels_are_the_most_probable_components() -> None:
    from genmodels.estimators.mixture import GaussianMixture

    g = np.random.default_rng(0)
    X = np.concatenate([g.normal(size=(400, 3)) + 6 * k for k in range(3)])
    gm = GaussianMixture(3, random_state=0)
    labels = gm.fit_predict(X)
    np.testing.assert_array_equal(labels, gm.predict_proba(X).argmax(-1))
