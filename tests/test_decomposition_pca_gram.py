"""PCA's covariance route on the CPU: the scatter as Σ y yᵀ − N m mᵀ (one product over the raw
data) when the means are small against the spreads, ``centred_scatter`` otherwise; and the
finiteness check read off that product's trace, raising what the separate pass raised."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import genmodels.models.factor_analysis as fa
from genmodels.estimators.decomposition import PCA
from genmodels.models.factor_analysis import GRAM_CANCELLATION_LIMIT, _gram_scatter, pca
from genmodels.models.linear_gaussian import centred_scatter


def data(n: int = 5000, d: int = 8, seed: int = 0) -> np.ndarray:
    g = np.random.default_rng(seed)
    return g.normal(size=(n, d)) @ g.normal(size=(d, d)) * g.uniform(0.5, 2.0, d)


def reference(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Brute force: the SVD of the explicitly centred data → (variances, components)."""
    _, s, Vt = np.linalg.svd(X - X.mean(0), full_matrices=False)
    return s**2 / (X.shape[0] - 1), Vt


def assert_matches_reference(res: fa.PCAResult, X: np.ndarray, rtol: float) -> None:
    var, Vt = reference(X)
    np.testing.assert_allclose(res.mean.numpy(), X.mean(0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(res.explained_variance.numpy(), var, rtol=rtol)
    np.testing.assert_allclose(np.abs(res.components.numpy()), np.abs(Vt), rtol=0, atol=rtol)


@pytest.mark.parametrize("offset", [0.0, 3.0, 20.0])  # m²/var up to about 400 < 1e3
def test_gram_route_is_taken_and_matches_the_centred_route(offset: float) -> None:
    X = data() + offset
    y = torch.from_numpy(X)
    moments = _gram_scatter(y, check=True)
    assert moments is not None  # the one-product route
    mean, scatter = centred_scatter(y.clone())
    np.testing.assert_allclose(moments[0].numpy(), mean.numpy(), rtol=1e-12)
    scale = float(scatter.diagonal().max())
    np.testing.assert_allclose(moments[1].numpy(), scatter.numpy(), rtol=0, atol=1e-11 * scale)
    assert_matches_reference(pca(y, solver="covariance", check=True), X, rtol=1e-9)


def test_large_mean_takes_the_safe_route(monkeypatch: pytest.MonkeyPatch) -> None:
    X = data()
    X[:, 2] += 1e8  # m²/var ≈ 1e16: Σ y² − N m² would keep no correct digit
    y = torch.from_numpy(X)
    assert _gram_scatter(y, check=True) is None
    assert_matches_reference(pca(y, solver="covariance", check=True), X, rtol=1e-6)
    # the data tell the routes apart: without the guard the variances come out wrong
    monkeypatch.setattr(fa, "GRAM_CANCELLATION_LIMIT", math.inf)
    wrong = pca(y, solver="covariance", check=True).explained_variance.numpy()
    assert np.abs(wrong - reference(X)[0]).max() > 1e-3 * reference(X)[0].max()


def test_constant_column_with_a_mean_has_zero_variance() -> None:
    X = data()
    X[:, 0] = 7.0  # var 0: Σ y² − N m² is rounding only, so the guard sends it the safe way
    assert _gram_scatter(torch.from_numpy(X), check=True) is None
    est = PCA().fit(X)
    assert est.explained_variance_[-1] == pytest.approx(0.0, abs=1e-12)


def test_guard_limit_sits_between_the_routes() -> None:
    X = data(d=3)
    sd = X.std(0)
    below = X - X.mean(0) + 0.5 * math.sqrt(GRAM_CANCELLATION_LIMIT) * sd  # m²/var = 250
    above = X - X.mean(0) + 2.0 * math.sqrt(GRAM_CANCELLATION_LIMIT) * sd  # m²/var = 4000
    assert _gram_scatter(torch.from_numpy(below), check=False) is not None
    assert _gram_scatter(torch.from_numpy(above), check=False) is None


def test_estimator_matches_reference_on_both_routes() -> None:
    X = data(n=3000, d=10) + 4.0
    var, Vt = reference(X)
    for solver in ("covariance_eigh", "full"):
        est = PCA(4, svd_solver=solver).fit(X)
        np.testing.assert_allclose(est.explained_variance_, var[:4], rtol=1e-9)
        np.testing.assert_allclose(np.abs(est.components_), np.abs(Vt[:4]), atol=1e-9)
        assert est.noise_variance_ == pytest.approx(var[4:].mean(), rel=1e-9)


# --- non-finite input: the same ValueError as the separate finiteness pass gave ----------------


def bad_inputs() -> list[tuple[str, object, str, str]]:
    X = data(n=400, d=6)  # N ≥ 10 D: the covariance route
    wide = data(n=30, d=6)  # N < 10 D: the SVD route
    nan, inf, big = X.copy(), X.copy(), X.copy()
    nan[37, 4] = np.nan
    inf[5, 1] = -np.inf
    big[11, 3] = 1e200
    wnan = wide.copy()
    wnan[3, 2] = np.nan
    f32 = X.copy()
    f32[8, 0] = 1e39  # finite in float64, infinite once cast to float32
    return [
        ("nan", nan, "float64", r"X contains 1 non-finite value\(s\); the first is NaN at index "
                                r"\(37, 4\)"),
        ("inf", inf, "float64", r"the first is infinite at index \(5, 1\)"),
        ("overflow", big, "float64", r"X is too large to compute with in float64: the sum of its "
                                     r"squares overflows .*at index \(11, 3\)"),
        ("svd route", wnan, "float64", r"the first is NaN at index \(3, 2\)"),
        ("float32", f32, "float32", r"the first is infinite at index \(8, 0\)"),
        ("tensor", torch.from_numpy(nan), "float64", r"the first is NaN at index \(37, 4\)"),
        ("fortran", np.asfortranarray(nan), "float64", r"the first is NaN at index \(37, 4\)"),
    ]


@pytest.mark.parametrize("case", bad_inputs(), ids=lambda c: c[0])
@pytest.mark.parametrize("solver", ["auto", "covariance_eigh", "full"])
def test_non_finite_input_raises_the_validation_message(
        case: tuple[str, object, str, str], solver: str) -> None:
    _, X, dtype, pattern = case
    with pytest.raises(ValueError, match=pattern) as before:  # what the separate pass raises
        PCA(2, dtype=dtype)._validate_X(X, reset=True, min_samples=2)
    with pytest.raises(ValueError, match=pattern) as after:
        PCA(2, svd_solver=solver, dtype=dtype).fit(X)
    assert str(after.value) == str(before.value)


def test_pca_function_check_flag() -> None:
    X = data(n=400, d=6)
    X[9, 5] = np.inf
    with pytest.raises(ValueError, match=r"the first is infinite at index \(9, 5\)"):
        pca(torch.from_numpy(X), solver="covariance", check=True)
    with pytest.raises(ValueError, match=r"the first is infinite at index \(9, 5\)"):
        pca(torch.from_numpy(X), solver="svd", check=True)


# --- strided input read in place ---------------------------------------------------------------


def strided_inputs() -> list[tuple[str, np.ndarray]]:
    X = data(n=2000, d=7) + 3.0
    wide = np.c_[X, np.zeros((2000, 2))]
    return [("C", X), ("Fortran", np.asfortranarray(X)), ("column slice", wide[:, :7]),
            ("float32 slice", wide.astype(np.float32)[:, :7]),
            ("rows strided by 2", np.repeat(X, 2, axis=0)[::2]),
            ("reversed columns", X[:, ::-1])]


@pytest.mark.parametrize("case", strided_inputs(), ids=lambda c: c[0])
@pytest.mark.parametrize("solver", ["covariance_eigh", "full"])
def test_strided_input_fits_as_its_contiguous_copy(case: tuple[str, np.ndarray],
                                                   solver: str) -> None:
    _, X = case
    before = X.copy()
    est = PCA(3, svd_solver=solver).fit(X)
    ref = PCA(3, svd_solver=solver).fit(np.ascontiguousarray(X, dtype=np.float64))
    np.testing.assert_array_equal(X, before)
    np.testing.assert_allclose(est.mean_, ref.mean_, rtol=1e-6)
    np.testing.assert_allclose(est.explained_variance_, ref.explained_variance_, rtol=1e-6)
    np.testing.assert_allclose(est.components_, ref.components_, atol=1e-6)


def test_blas_view_shares_memory_only_for_blas_layouts() -> None:
    from genmodels.estimators.decomposition import _blas_view

    wide = data(n=50, d=9)
    for X in (wide, np.asfortranarray(wide), wide[:, :5], wide.astype(np.float32)[:, 2:6]):
        t = _blas_view(X)
        assert isinstance(t, torch.Tensor) and np.shares_memory(t.numpy(), X)
    for X in (wide[::2, ::2], wide[:, ::-1], wide.astype(np.int64), wide.tolist()):
        assert not isinstance(_blas_view(X), torch.Tensor)
    frozen = wide.copy()
    frozen.flags.writeable = False  # torch.from_numpy would warn; as_tensor copies instead
    assert _blas_view(frozen) is frozen


def test_frame_input_fits_as_its_array() -> None:
    pd = pytest.importorskip("pandas")
    X = data(n=500, d=5) + 2.0
    frame = pd.DataFrame(X, columns=list("abcde"))
    est = PCA(2).fit(frame)
    ref = PCA(2).fit(X)
    np.testing.assert_allclose(est.components_, ref.components_, atol=1e-12)
    np.testing.assert_array_equal(frame.to_numpy(), X)
    assert list(est.feature_names_in_) == list("abcde")
