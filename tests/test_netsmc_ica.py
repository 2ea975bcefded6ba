"""InfoMax ICA (book §5.2.1, §9.0.1–9.1): gradients, recovery, parity with scikit-learn's FastICA,
the generative (maximum-likelihood) view, and input validation."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from scipy import integrate, stats
from sklearn.base import clone
from sklearn.decomposition import FastICA

from genmodels.estimators.ica import InfomaxICA
from genmodels.exceptions import ConvergenceWarning
from genmodels.learning.infomax import (
    extended_signs,
    fit_infomax,
    relative_newton_direction,
    whiten,
)
from genmodels.models.ica import (
    LOG_SECH_GAUSS_NORMALIZER,
    GaussianLatent,
    ICAModel,
    LogisticLatent,
    SwitchingLatent,
    amari_distance,
    infomax_log_density,
)

N = 5000


def _super_sources(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Three super-Gaussian sources (Laplace, Student-t(5), centred exponential), mixed by A."""
    rng = np.random.default_rng(seed)
    S = np.c_[rng.laplace(size=N), rng.standard_t(5, size=N), rng.exponential(size=N) - 1.0]
    A = rng.normal(size=(3, 3))
    return S, A, S @ A.T + np.array([1.0, -2.0, 0.5])


def _mixed_sources(seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two sub-Gaussian sources (uniform, sinusoid) and one super-Gaussian (Laplace)."""
    rng = np.random.default_rng(seed)
    S = np.c_[rng.uniform(-1, 1, N), np.sin(np.linspace(0, 200, N)), rng.laplace(size=N)]
    A = rng.normal(size=(3, 3))
    return S, A, S @ A.T


def _amari(W, A) -> float:
    return float(amari_distance(torch.as_tensor(W), torch.as_tensor(A)))


# --------------------------------------------------------------------------- gradients


def test_euclidean_gradient_matches_finite_differences_and_autograd() -> None:
    """dL/dW = −⟨(1 − 2σ(Wy)) yᵀ⟩ − W⁻ᵀ (Eq. 5.28 with the corrected transposes, E-19)."""
    g = torch.Generator().manual_seed(0)
    y = torch.randn(200, 3, generator=g) @ torch.randn(3, 3, generator=g)
    model = ICAModel(3)
    with torch.no_grad():
        model.unmixing.copy_(torch.randn(3, 3, generator=g))
    analytic = model.euclidean_gradient(y)

    def L(W: torch.Tensor) -> torch.Tensor:  # the CATALOGUE's form of the loss
        x = y @ W.T
        return (torch.nn.functional.softplus(x) + torch.nn.functional.softplus(-x)).sum(-1).mean() \
            - torch.linalg.slogdet(W).logabsdet

    W = model.unmixing.detach().clone()
    fd = torch.zeros(3, 3)
    h = 1e-6
    for i in range(3):
        for j in range(3):
            E = torch.zeros(3, 3)
            E[i, j] = h
            fd[i, j] = (L(W + E) - L(W - E)) / (2 * h)
    torch.testing.assert_close(analytic, fd, rtol=1e-6, atol=1e-7)
    (auto,) = torch.autograd.grad(model.loss(y), model.unmixing)
    torch.testing.assert_close(analytic, auto.detach())
    # The relative gradient is the Euclidean one mapped by WᵀW: −G W = (dL/dW) WᵀW.
    G = model.relative_gradient(y)
    torch.testing.assert_close(-G @ W, analytic @ W.T @ W)


@pytest.mark.parametrize("solver", ["natural", "newton"])
def test_fixed_point_at_convergence(solver: str) -> None:
    """At the optimum ⟨φ(x)xᵀ⟩ = −I, i.e. E[tanh(x/2) xᵀ] = I (erratum E-20's condition)."""
    _, _, X = _super_sources()
    Y = torch.as_tensor(X)
    wh = whiten(Y)
    Z = (Y - wh.mean) @ wh.matrix.T
    model = ICAModel(3)
    tol = 1e-7 if solver == "natural" else 1e-11
    res = fit_infomax(model, Z, tol=tol, max_iter=1000, solver=solver)
    assert res.converged
    if solver == "newton":
        assert res.n_iter < 30  # quasi-Newton: a handful of steps
    x = model.to_latent(Z).detach()
    torch.testing.assert_close(torch.tanh(x / 2).T @ x / N, torch.eye(3), atol=tol, rtol=0)
    assert np.all(np.diff(res.log_likelihood) >= -1e-12)


def test_newton_direction_is_exact_newton_for_separated_sources() -> None:
    """Near the optimum (sources separated, scales at their ML values) the H̃ approximation is
    the relative Hessian up to sampling error, so the step agrees with the Newton step computed
    from autograd's exact Hessian in E."""
    u = torch.rand(50000, 2, generator=torch.Generator().manual_seed(3)) - 0.5
    y = -torch.sign(u) * torch.log1p(-2 * u.abs())  # Laplace(0, 1) by inverse CDF
    model = ICAModel(2)
    fit_infomax(model, y, tol=1e-10, solver="newton")
    with torch.no_grad():  # perturb: a small mixing of the recovered sources
        model.unmixing.copy_(torch.tensor([[1.0, 0.06], [-0.04, 1.0]]) @ model.unmixing)
    W0 = model.unmixing.detach().clone()

    def L(e: torch.Tensor) -> torch.Tensor:
        Wm = (torch.eye(2) + e.reshape(2, 2)) @ W0
        u = y @ Wm.T
        return (torch.nn.functional.softplus(u) + torch.nn.functional.softplus(-u)).sum(-1) \
            .mean() - torch.linalg.slogdet(Wm).logabsdet

    e0 = torch.zeros(4)
    grad = torch.autograd.functional.jacobian(L, e0)
    hess = torch.autograd.functional.hessian(L, e0)
    exact = -torch.linalg.solve(hess, grad).reshape(2, 2)
    approx = relative_newton_direction(model, y)
    torch.testing.assert_close(approx, exact, atol=0.005, rtol=0)  # the step is ~0.05


# --------------------------------------------------------------------------- recovery


@pytest.mark.parametrize("solver", ["natural", "newton"])
def test_infomax_recovers_three_sources(solver: str) -> None:
    S, A, X = _super_sources()
    est = InfomaxICA(random_state=0, solver=solver).fit(X)
    assert est.converged_
    assert _amari(est.components_, A) < 0.05
    # Unit-variance sources, and each recovered source matches a true one up to sign.
    S_hat = est.transform(X)
    np.testing.assert_allclose(S_hat.std(0), 1.0, atol=1e-10)
    corr = np.abs(np.corrcoef(S_hat.T, S.T)[:3, 3:])
    assert (corr.max(1) > 0.99).all()


def test_agrees_with_fastica_up_to_permutation_and_sign() -> None:
    _, A, X = _super_sources(3)
    ours = InfomaxICA(random_state=0).fit(X)
    fast = FastICA(random_state=0, whiten="unit-variance", max_iter=1000).fit(X)
    assert _amari(fast.components_, A) < 0.05  # FastICA works here too
    # Our unmixing undoes FastICA's mixing up to a scaled permutation.
    assert _amari(ours.components_, fast.mixing_) < 0.02
    # After matching the permutation and sign, the unit-variance sources agree closely.
    S1, S2 = ours.transform(X), fast.transform(X)
    C = np.corrcoef(S1.T, S2.T)[:3, 3:]
    perm = np.abs(C).argmax(1)
    assert sorted(perm) == [0, 1, 2]
    signs = np.sign(C[np.arange(3), perm])
    assert np.abs(S1 - S2[:, perm] * signs).max() < 0.25
    assert np.abs(C[np.arange(3), perm]).min() > 0.999


def test_extended_infomax_separates_sub_gaussian_sources() -> None:
    _, A, X = _mixed_sources()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        plain = InfomaxICA(random_state=0, max_iter=60).fit(X)
    ext = InfomaxICA(random_state=0, extended=True, solver="newton").fit(X)
    assert _amari(ext.components_, A) < 0.05
    ext_natural = InfomaxICA(random_state=0, extended=True, max_iter=500, tol=1e-3).fit(X)
    assert _amari(ext_natural.components_, ext.mixing_) < 0.02
    assert _amari(plain.components_, A) > 0.15  # the logistic density cannot separate them
    # The switching rule found two sub-Gaussian components and one super-Gaussian.
    assert sorted(ext.signs_.tolist()) == [-1.0, -1.0, 1.0]


def test_extended_signs_rule() -> None:
    g = torch.Generator().manual_seed(0)
    u = torch.rand(20000, generator=g) - 0.5
    lap = -(2**-0.5) * u.sign() * torch.log1p(-2 * u.abs())  # Laplace(0, 2^−½) by inversion
    uni = (torch.rand(20000, generator=g) - 0.5) * math.sqrt(12)
    assert extended_signs(torch.stack([lap, uni], 1)).tolist() == [1.0, -1.0]


def test_minibatch_infomax_recovers_sources() -> None:
    _, A, X = _super_sources(5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # SGD noise keeps |G| above tol
        est = InfomaxICA(random_state=0, batch_size=250, max_iter=30, tol=1e-3).fit(X)
    assert _amari(est.components_, A) < 0.05


def test_gaussian_cdf_only_whitens() -> None:
    """ψ = Φ: the optimum satisfies W E[yyᵀ] Wᵀ = I and leaves the rotation arbitrary (§9.1)."""
    _, A, X = _super_sources()
    Y = torch.as_tensor(X)
    Y = Y - Y.mean(0)
    model = ICAModel(3, "gaussian")
    with torch.no_grad():
        model.unmixing.copy_(torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator()
                                                         .manual_seed(1)))[0] * 0.5)
    fit_infomax(model, Y, tol=1e-8, max_iter=2000)
    W = model.unmixing.detach()
    torch.testing.assert_close(W @ (Y.T @ Y / N) @ W.T, torch.eye(3), atol=1e-7, rtol=0)
    assert _amari(W, A) > 0.1  # whitening alone does not separate


# --------------------------------------------------------------------------- likelihood


def test_log_likelihood_increases_and_matches_independent_formula() -> None:
    _, _, X = _super_sources()
    est = InfomaxICA(whiten="arbitrary-variance", random_state=0).fit(X)
    curve = est.log_likelihood_curve_
    assert len(curve) == est.n_iter_ + 1
    assert np.all(np.diff(curve) >= -1e-12)  # never decreases (full-batch, backtracking)
    assert curve[-1] > curve[0] + 0.05
    # Independent oracle: scipy's logistic log-density of the sources plus log|det W| (Eq. 9.5).
    W = est.model_.unmixing.detach().numpy()
    x = (X - est.mean_) @ W.T
    ll = stats.logistic.logpdf(x).sum(1) + np.linalg.slogdet(W)[1]
    np.testing.assert_allclose(est.score_samples(X), ll, rtol=1e-10)
    assert est.score(X) == pytest.approx(curve[-1], rel=1e-10)
    # With arbitrary variance, components_ is the maximum-likelihood unmixing itself.
    np.testing.assert_allclose(est.components_, W)


@pytest.mark.parametrize("latent", ["logistic", "switching"])
def test_model_density_integrates_to_one(latent: str) -> None:
    model = ICAModel(2, latent)
    with torch.no_grad():
        model.unmixing.copy_(torch.tensor([[1.2, 0.4], [-0.3, 0.9]]))
        model.mean.copy_(torch.tensor([0.3, -0.2]))
        model.signs.copy_(torch.tensor([1.0, -1.0]))
    t = torch.linspace(-25, 25, 801)
    grid = torch.stack(torch.meshgrid(t, t, indexing="ij"), -1).reshape(-1, 2)
    dens = model.log_prob(grid).detach().exp().reshape(801, 801)
    h = float(t[1] - t[0])
    assert float(dens.sum()) * h * h == pytest.approx(1.0, abs=1e-4)


def test_infomax_log_density_general_map() -> None:
    """Eq. 5.26 for a nonlinear invertible d integrates to 1; for linear d it is Eq. 9.5."""
    lat = LogisticLatent()

    def d(y: torch.Tensor) -> torch.Tensor:  # invertible: triangular with monotone pieces
        return torch.stack([y[0] + 0.3 * torch.tanh(y[0]), 0.8 * y[1] + 0.5 * torch.sin(y[0])])

    t = torch.linspace(-30, 30, 601)
    grid = torch.stack(torch.meshgrid(t, t, indexing="ij"), -1).reshape(-1, 2)
    dens = infomax_log_density(d, grid, lat).exp()
    h = float(t[1] - t[0])
    assert float(dens.sum()) * h * h == pytest.approx(1.0, abs=1e-3)
    model = ICAModel(2)
    Wm = torch.tensor([[1.0, 0.5], [0.2, -1.5]])
    with torch.no_grad():
        model.unmixing.copy_(Wm)
    y = torch.randn(7, 2, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(infomax_log_density(lambda v: Wm @ v, y, lat),
                               model.log_prob(y).detach())


def test_switching_latent_normaliser_and_sampler() -> None:
    c, _ = integrate.quad(lambda u: math.exp(-u * u / 2) / math.sqrt(2 * math.pi) / math.cosh(u),
                          -40, 40, epsabs=1e-14, epsrel=1e-14)
    assert math.log(c) == pytest.approx(LOG_SECH_GAUSS_NORMALIZER, abs=1e-12)
    lat = SwitchingLatent(torch.tensor([1.0, -1.0]))
    for k in range(2):  # each density integrates to 1 and sampling agrees with it (2nd moment)
        f = lambda u, k=k: float(lat.log_prob(torch.tensor([[u, u]]))[0, k].exp())  # noqa: E731
        assert integrate.quad(f, -30, 30)[0] == pytest.approx(1.0, abs=1e-9)
        m2 = integrate.quad(lambda u, f=f: u * u * f(u), -30, 30)[0]
        x = lat.sample(200000, 2, torch.Generator().manual_seed(k), dtype=torch.float64,
                       device="cpu")[:, k]
        se = float((x**2).std()) / math.sqrt(x.numel())
        assert abs(float((x**2).mean()) - m2) < 4 * se
    # Score is the derivative of the log-density (autograd oracle).
    x = torch.randn(5, 2, generator=torch.Generator().manual_seed(5)).requires_grad_()
    (auto,) = torch.autograd.grad(lat.log_prob(x).sum(), x)
    torch.testing.assert_close(lat.score(x), auto)


def test_generative_view_outputs_are_uniform() -> None:
    """Data sampled from the model, passed through ψ(W(y − mean)), are uniform (H1)."""
    model = ICAModel(2)
    with torch.no_grad():
        model.unmixing.copy_(torch.tensor([[2.0, 1.0], [0.5, 1.5]]))
    y = model.sample(20000, torch.Generator().manual_seed(0))
    z = model.to_uniform(y).detach()
    for k in range(2):
        assert stats.kstest(z[:, k].numpy(), "uniform").pvalue > 1e-3
    assert abs(float(np.corrcoef(z.T.numpy())[0, 1])) < 0.03  # 0.03 ≈ 4 / √20000
    with pytest.raises(ValueError, match="CDF"):
        ICAModel(2, "switching").to_uniform(y)
    assert isinstance(ICAModel(2, "gaussian").latent, GaussianLatent)


# --------------------------------------------------------------------------- estimator API


def test_estimator_api_roundtrip_and_clone() -> None:
    _, _, X = _super_sources()
    est = InfomaxICA(n_components=3, random_state=0)
    S = est.fit_transform(X)
    np.testing.assert_allclose(est.transform(X), S, atol=1e-10)
    np.testing.assert_allclose(est.inverse_transform(S), X, atol=1e-8)
    assert est.components_.shape == (3, 3) and est.mixing_.shape == (3, 3)
    assert est.whitening_.shape == (3, 3) and est.mean_.shape == (3,)
    assert est.n_iter_ > 0
    c = clone(est)
    assert c.get_params() == est.get_params()
    assert list(est.get_feature_names_out()) == ["infomaxica0", "infomaxica1", "infomaxica2"]
    # Fewer components: a (K, D) unmixing; no density on data space, so no score_samples.
    est2 = InfomaxICA(n_components=2, random_state=0).fit(X)
    assert est2.components_.shape == (2, 3) and est2.mixing_.shape == (3, 2)
    with pytest.raises(AttributeError, match="score_samples"):
        est2.score_samples(X)
    # whiten=False: the data are used as given (here: pre-whitened).
    Z = (X - X.mean(0)) @ whiten(torch.as_tensor(X)).matrix.T.numpy()
    est3 = InfomaxICA(whiten=False, random_state=0).fit(Z)
    assert not hasattr(est3, "whitening_")
    np.testing.assert_allclose(est3.mean_, 0.0)


def test_bad_input_raises() -> None:
    _, _, X = _super_sources()
    Xn = X.copy()
    Xn[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        InfomaxICA().fit(Xn)
    with pytest.raises(ValueError, match="2-D array"):
        InfomaxICA().fit(X[:, 0])
    with pytest.raises(ValueError, match="at least 2"):
        InfomaxICA().fit(X[:1])
    with pytest.raises(ValueError, match="exceeds n_features"):
        InfomaxICA(n_components=4).fit(X)
    with pytest.raises(ValueError, match="whiten"):
        InfomaxICA(whiten="yes").fit(X)
    with pytest.raises(ValueError, match="n_components must equal"):
        InfomaxICA(whiten=False, n_components=2).fit(X)
    with pytest.raises(ValueError, match="max_iter"):
        InfomaxICA(max_iter=0).fit(X)
    with pytest.raises(ValueError, match="learning_rate"):
        InfomaxICA(learning_rate=-1.0).fit(X)
    with pytest.raises(ValueError, match="rank"):
        InfomaxICA().fit(np.c_[X, X[:, 0] + X[:, 1]])
    est = InfomaxICA(random_state=0).fit(X)
    with pytest.raises(ValueError, match="features"):
        est.transform(X[:, :2])
    with pytest.raises(ValueError, match="shape"):
        est.inverse_transform(np.ones((4, 2)))
    from genmodels.exceptions import NotFittedError

    with pytest.raises(NotFittedError, match="fit"):
        InfomaxICA().transform(X)
    with pytest.raises(ValueError, match="latent"):
        ICAModel(3, "cauchy")
    with pytest.raises(ValueError, match="switching"):
        fit_infomax(ICAModel(3), torch.as_tensor(X), extended=True)
    with pytest.raises(ValueError, match="solver"):
        InfomaxICA(solver="lbfgs").fit(X)
    with pytest.raises(ValueError, match="full batch"):
        InfomaxICA(solver="newton", batch_size=10).fit(X)


def test_amari_distance_properties() -> None:
    P = torch.tensor([[0.0, 2.0, 0.0], [0.0, 0.0, -1.0], [3.0, 0.0, 0.0]])
    assert float(amari_distance(P, torch.eye(3))) == 0.0
    assert float(amari_distance(torch.ones(3, 3), torch.eye(3))) == pytest.approx(1.0)
    assert 0 < float(amari_distance(torch.eye(3) + 0.1, torch.eye(3))) < 1


@pytest.mark.slow
def test_infomax_ica_passes_check_estimator() -> None:
    from sklearn.utils.estimator_checks import check_estimator

    results = check_estimator(InfomaxICA(max_iter=50, random_state=0), on_fail=None)
    failed = [(r["check_name"], str(r["exception"])[:200]) for r in results
              if r["status"] == "failed"]
    assert not failed, failed


def test_score_is_absent_when_components_are_fewer_than_features() -> None:
    _, _, X = _super_sources()
    assert not hasattr(InfomaxICA(n_components=2, random_state=0).fit(X), "score_samples")
    assert hasattr(InfomaxICA(random_state=0).fit(X), "score_samples")


def test_newton_warm_start_on_a_subsample_reaches_the_same_optimum() -> None:
    """N ≥ 4 · WARM_START_SAMPLES: the subsample start is kept only if it helps, the curve
    never decreases, and the fit ends at the full data's fixed point (as without it)."""
    from genmodels.learning import infomax

    g = np.random.default_rng(7)
    n = 4 * infomax.WARM_START_SAMPLES
    S = np.stack([g.laplace(size=n), g.logistic(size=n), g.standard_t(5, size=n)], 1)
    Y = torch.as_tensor(S @ g.normal(size=(3, 3)).T)
    wh = whiten(Y)
    Z = (Y - wh.mean) @ wh.matrix.T
    fits = {}
    for samples in (infomax.WARM_START_SAMPLES, n):  # with, and (threshold above N) without
        model = ICAModel(3)
        old = infomax.WARM_START_SAMPLES
        infomax.WARM_START_SAMPLES = samples
        try:
            res = fit_infomax(model, Z, tol=1e-9, solver="newton")
        finally:
            infomax.WARM_START_SAMPLES = old
        assert res.converged and len(res.log_likelihood) == res.n_iter + 1
        assert np.all(np.diff(res.log_likelihood) >= -1e-12)
        fits[samples] = model.unmixing.detach().clone()
    a, b = fits.values()
    assert float(amari_distance(a, torch.linalg.inv(b))) < 1e-6
