"""Regression, ridge as MAP, WLS, Newton, one-step CV (E1–E4, E13); losses (E14, D1)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats
from sklearn.linear_model import Ridge as SkRidge

from genmodels.learning import losses
from genmodels.learning.regression import (
    hat_matrix,
    kfold_residuals,
    least_squares,
    loo_residuals,
    newton_raphson,
    ridge_regression,
    weighted_least_squares,
)


def _data(n=30, d=4, k=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g, dtype=torch.float64)
    X[:, 0] = 1.0
    w = torch.randn(d if k is None else (d, k), generator=g, dtype=torch.float64)
    noise = torch.randn(n if k is None else (n, k), generator=g, dtype=torch.float64)
    return X, X @ w + 0.3 * noise


@pytest.mark.parametrize("method", ["qr", "cholesky"])
def test_least_squares_equals_lstsq(method):
    X, y = _data(k=3)
    w = least_squares(X, y, method=method)
    ref = np.linalg.lstsq(X.numpy(), y.numpy(), rcond=None)[0]
    np.testing.assert_allclose(w.numpy(), ref, rtol=1e-10, atol=1e-12)


def test_square_invertible_design_interpolates():
    X, y = _data(n=5, d=5)
    w = least_squares(X, y)
    np.testing.assert_allclose((X @ w).numpy(), y.numpy(), atol=1e-10)


@pytest.mark.parametrize("method", ["qr", "cholesky"])
def test_rank_deficient_raises(method):
    X, y = _data()
    X = torch.cat([X, X[:, 1:2] + 2 * X[:, 2:3]], dim=1)
    with pytest.raises(ValueError, match="rank deficient"):
        least_squares(X, y, method=method)
    # ... and ridge makes it solvable (Eq. 5.6)
    assert torch.isfinite(least_squares(X, y, alpha=1e-3, method=method)).all()


def test_ridge_is_sklearn_ridge_and_map():
    X, y = _data(n=40, d=6)
    lam, s2 = 2.5, 0.7
    w = ridge_regression(X, y, prior_precision=lam, noise_variance=s2)
    ref = SkRidge(alpha=s2 * lam, fit_intercept=False, solver="cholesky", tol=1e-14).fit(X, y)
    np.testing.assert_allclose(w.numpy(), ref.coef_, rtol=1e-10)
    # MAP: gradient of the log posterior −(1/σ²)‖y − Xw‖²/2 − λ‖w‖²/2 vanishes (Eq. 5.6)
    grad = X.mT @ (y - X @ w) / s2 - lam * w
    assert float(grad.abs().max()) < 1e-10
    # full prior precision matrix = same answer as the scalar one
    w2 = ridge_regression(X, y, prior_precision=lam * torch.eye(6), noise_variance=s2)
    np.testing.assert_allclose(w2.numpy(), w.numpy(), rtol=1e-10)


def test_ridge_shrinks_monotonically_and_tends_to_pinv():
    X, y = _data(n=5, d=8)  # underdetermined: X X^T invertible, X^T X singular
    norms = [float(ridge_regression(X, y, prior_precision=a).norm()) for a in (10, 1, 0.1)]
    assert norms[0] < norms[1] < norms[2]
    w = ridge_regression(X, y, prior_precision=1e-9)
    np.testing.assert_allclose(w.numpy(), np.linalg.pinv(X.numpy()) @ y.numpy(), atol=1e-6)


def test_weighted_least_squares():
    X, y = _data(n=50)
    v = torch.rand(50, dtype=torch.float64) + 0.1
    w = weighted_least_squares(X, y, weights=v)
    s = v.sqrt().numpy()
    ref = np.linalg.lstsq(X.numpy() * s[:, None], y.numpy() * s, rcond=None)[0]
    np.testing.assert_allclose(w.numpy(), ref, rtol=1e-10)
    # full covariance: Eq. 5.10 solved densely as the oracle; identity reduces to OLS (E1)
    A = torch.randn(50, 50, dtype=torch.float64)
    U = A @ A.mT / 50 + torch.eye(50)
    wg = weighted_least_squares(X, y, covariance=U)
    Ui = np.linalg.inv(U.numpy())
    ref = np.linalg.solve(X.numpy().T @ Ui @ X.numpy(), X.numpy().T @ Ui @ y.numpy())
    np.testing.assert_allclose(wg.numpy(), ref, rtol=1e-9)
    np.testing.assert_allclose(weighted_least_squares(X, y, covariance=torch.eye(50)).numpy(),
                               least_squares(X, y).numpy(), rtol=1e-10)


def test_newton_one_step_on_least_squares_and_logistic():
    X, y = _data(n=40)

    def quad(w):
        r = y - X @ w
        return 0.5 * float(r @ r), -(X.mT @ r), X.mT @ X

    res = newton_raphson(quad, torch.randn(4, dtype=torch.float64) * 10, max_iter=1)
    assert res.n_iter == 1  # one step from anywhere reaches the normal equations (B:1410)
    np.testing.assert_allclose(res.theta.numpy(), least_squares(X, y).numpy(), rtol=1e-10)
    # logistic: Newton's errors shrink quadratically
    g = torch.Generator().manual_seed(1)
    t = (torch.rand(40, generator=g, dtype=torch.float64) < torch.sigmoid(X @ torch.tensor(
        [0.2, 1.0, -1.0, 0.5], dtype=torch.float64))).double()

    def nll(w):
        a = X @ w
        p = torch.sigmoid(a)
        f = float(losses.bce_with_logits(a, t))
        return f, X.mT @ (p - t), (X * (p * (1 - p))[:, None]).mT @ X

    ref = newton_raphson(nll, torch.zeros(4, dtype=torch.float64), tol=1e-15).theta
    errs, w = [], torch.zeros(4, dtype=torch.float64)
    for _ in range(6):
        w = newton_raphson(nll, w, max_iter=1).theta
        errs.append(float((w - ref).norm()))
    assert errs[-1] < 1e-10
    ratios = [errs[i + 1] / errs[i] ** 2 for i in range(3) if errs[i] > 1e-6]
    assert ratios and max(ratios) < 10.0  # e_{k+1} / e_k² bounded: quadratic convergence


def _brute_cv(X, y, folds, alpha=0.0):
    out = torch.empty_like(y)
    for idx in folds:
        keep = torch.ones(len(y), dtype=torch.bool)
        keep[idx] = False
        mask = torch.ones(X.shape[1], dtype=X.dtype)
        mask[0] = 0.0
        w = least_squares(X[keep], y[keep], alpha=alpha, penalty_mask=mask if alpha else None)
        out[idx] = y[idx] - X[idx] @ w
    return out


@pytest.mark.parametrize("alpha", [0.0, 0.8])
def test_loo_equals_brute_force(alpha):
    X, y = _data(n=30, d=4)
    mask = torch.tensor([0.0, 1.0, 1.0, 1.0], dtype=torch.float64)
    r = loo_residuals(X, y, alpha=alpha, penalty_mask=mask)
    brute = _brute_cv(X, y, [torch.tensor([i]) for i in range(30)], alpha)
    np.testing.assert_allclose(r.residuals.numpy(), brute.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(r.predictions.numpy(), (y - brute).numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("alpha", [0.0, 0.8])
def test_kfold_unequal_folds_equals_brute_force(alpha):
    X, y = _data(n=31, d=4, seed=3)
    perm = torch.randperm(31, generator=torch.Generator().manual_seed(0))
    folds = [perm[:5], perm[5:12], perm[12:20], perm[20:]]
    mask = torch.tensor([0.0, 1.0, 1.0, 1.0], dtype=torch.float64)
    r = kfold_residuals(X, y, folds, alpha=alpha, penalty_mask=mask)
    brute = _brute_cv(X, y, folds, alpha)
    np.testing.assert_allclose(r.residuals.numpy(), brute.numpy(), rtol=1e-10, atol=1e-12)
    labels = torch.empty(31, dtype=torch.long)
    for k, f in enumerate(folds):
        labels[f] = k
    r2 = kfold_residuals(X, y, labels, alpha=alpha, penalty_mask=mask)
    np.testing.assert_allclose(r2.residuals.numpy(), r.residuals.numpy(), rtol=1e-12)
    # folds of size one are leave-one-out
    loo = kfold_residuals(X, y, [torch.tensor([i]) for i in range(31)])
    np.testing.assert_allclose(loo.residuals.numpy(), loo_residuals(X, y).residuals.numpy(),
                               rtol=1e-10)


def test_hat_matrix_properties():
    X, _ = _data(n=30, d=4)
    H = hat_matrix(X)
    h = H.diagonal()
    assert bool(((h >= 0) & (h <= 1)).all())
    assert abs(float(h.sum()) - 4) < 1e-12  # trace H = D
    np.testing.assert_allclose((H @ H).numpy(), H.numpy(), atol=1e-12)  # idempotent
    np.testing.assert_allclose(H.numpy(), H.numpy().T, atol=1e-14)


def test_cv_bad_input():
    X, y = _data(n=10, d=3)
    with pytest.raises(ValueError, match="disjoint"):
        kfold_residuals(X, y, [torch.tensor([0, 1]), torch.tensor([1, 2])])
    X2 = torch.zeros(10, 3, dtype=torch.float64)
    X2[:, 0] = 1.0
    X2[0, 1] = 1.0  # column 1 lives on sample 0 only: h_00 = 1
    X2[:, 2] = torch.arange(10.0)
    with pytest.raises(ValueError, match="leverage"):
        loo_residuals(X2, y)


# ---- losses ⇔ negative log-likelihoods (E14), penalties ⇔ priors (D1) ----------------------


def test_losses_are_negative_log_likelihoods():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(20, generator=g, dtype=torch.float64)
    t = (torch.rand(20, generator=g, dtype=torch.float64) < 0.5).double()
    p = torch.sigmoid(a).numpy()
    ref = -stats.bernoulli.logpmf(t.numpy(), p).sum()
    assert abs(float(losses.bce_with_logits(a, t)) - ref) < 1e-10
    A = torch.randn(20, 4, generator=g, dtype=torch.float64)
    lab = torch.randint(0, 4, (20,), generator=g)
    P = torch.softmax(A, 1).numpy()
    ref = -np.log(P[np.arange(20), lab.numpy()]).sum()
    assert abs(float(losses.softmax_cross_entropy(A, lab)) - ref) < 1e-10
    onehot = torch.nn.functional.one_hot(lab, 4).double()
    assert abs(float(losses.softmax_cross_entropy(A, onehot)) - ref) < 1e-10
    y = torch.randn(20, generator=g, dtype=torch.float64)
    ref = -stats.norm.logpdf(y.numpy(), a.numpy(), 1.7).sum()
    assert abs(float(losses.gaussian_nll(a, y, 1.7)) - ref) < 1e-10
    # σ² = ½: the sum of squares up to a constant
    diff = float(losses.gaussian_nll(a, y)) - float((a - y).square().sum())
    assert abs(diff - 0.5 * 20 * np.log(np.pi)) < 1e-10


def test_softmax_gradients_ce_vs_squared_error():
    a = torch.tensor([[8.0, -8.0, 0.0]], dtype=torch.float64, requires_grad=True)
    onehot = torch.tensor([[0.0, 1.0, 0.0]], dtype=torch.float64)  # confidently wrong
    losses.softmax_cross_entropy(a, onehot).backward()
    p = torch.softmax(a.detach(), 1)
    np.testing.assert_allclose(a.grad.numpy(), (p - onehot).numpy(), atol=1e-14)
    ce_norm = float(a.grad.norm())
    a.grad = None
    (torch.softmax(a, 1) - onehot).square().sum().backward()
    assert float(a.grad.norm()) < 1e-2 * ce_norm  # squared error barely learns


def test_penalties_are_negative_log_priors():
    th = torch.tensor([0.3, -1.2, 2.0], dtype=torch.float64)
    ref = stats.norm.logpdf(th.numpy(), 0, 1 / np.sqrt(4.0)).sum()
    assert abs(float(losses.gaussian_log_prior(th, 4.0)) - ref) < 1e-12
    ref = stats.laplace.logpdf(th.numpy(), 0, 1 / 4.0).sum()
    assert abs(float(losses.laplace_log_prior(th, 4.0)) - ref) < 1e-12
    # MAP with a Gaussian prior = ridge (D1 ⇔ E2): minimise NLL + l2_penalty with Newton
    X, y = _data(n=40)

    def post(w):
        r = y - X @ w
        f = 0.5 * float(r @ r) + float(losses.l2_penalty(w, 3.0))
        return f, -(X.mT @ r) + 3.0 * w, X.mT @ X + 3.0 * torch.eye(4)

    w = newton_raphson(post, torch.zeros(4, dtype=torch.float64)).theta
    np.testing.assert_allclose(w.numpy(), ridge_regression(X, y, prior_precision=3.0).numpy(),
                               rtol=1e-10)
