"""The compiled full-batch InfoMax pass (``learning._infomax_numba``) computes what the tensor
form computes: the same loss, relative gradient and Newton direction at any W, and the same fit."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from genmodels.exceptions import ConvergenceWarning
from genmodels.learning import _infomax_numba as kernel
from genmodels.learning import infomax
from genmodels.learning.infomax import fit_infomax, whiten
from genmodels.models.ica import ICAModel, LogisticLatent


def _white(n: int, k: int, seed: int) -> torch.Tensor:
    g = np.random.default_rng(seed)
    makers = [lambda: g.laplace(size=n), lambda: g.logistic(size=n),
              lambda: g.standard_t(5, size=n)]
    S = np.stack([makers[i % 3]() for i in range(k)], 1)
    Y = torch.as_tensor(S @ g.normal(size=(k, k)).T)
    wh = whiten(Y)
    return (Y - wh.mean) @ wh.matrix.T


def test_exp_neg_is_exp_to_one_ulp() -> None:
    a = np.concatenate([np.linspace(0.0, 700.0, 200_001), [0.0, 1e-300, 5e-324, 0.5 * np.log(2)]])
    got = np.array([kernel.exp_neg(v) for v in a[::97]])
    ref = np.exp(-a[::97])
    assert np.max(np.abs(got / ref - 1.0)) <= 2.3e-16
    assert kernel.exp_neg(1000.0) == pytest.approx(np.exp(-708.0))  # clamped, no underflow


@pytest.mark.parametrize(("n", "k"), [(1000, 1), (777, 3), (3000, 8)])
def test_compiled_objective_equals_tensor_objective(n: int, k: int) -> None:
    """At a random W (not the optimum) and with N not a multiple of the block size."""
    yT = _white(n, k, seed=k).mT.contiguous()
    W = np.random.default_rng(1).normal(size=(k, k)) + 2 * np.eye(k)
    comp = infomax._CompiledObjective(infomax._kernels(), yT)
    ten = infomax._TensorObjective(LogisticLatent(), yT, derivative=True)
    losses = [comp.evaluate(W), ten.evaluate(W)]
    comp.accept()
    ten.accept()
    assert losses[0] == pytest.approx(losses[1], rel=1e-14, abs=0)
    G = ten.gradient()
    np.testing.assert_allclose(comp.gradient(), G, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(comp.newton_direction(G, 1e-2), ten.newton_direction(G, 1e-2),
                               rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("solver", ["newton", "natural"])
def test_compiled_fit_equals_tensor_fit(monkeypatch: pytest.MonkeyPatch, solver: str) -> None:
    Z = _white(3000, 4, seed=2)
    fits = []
    for compiled in (True, False):
        if not compiled:
            monkeypatch.setattr(infomax, "_kernels", lambda: None)
        model = ICAModel(4)
        res = fit_infomax(model, Z, tol=1e-9 if solver == "newton" else 1e-6, max_iter=2000,
                          solver=solver)
        assert res.converged
        assert np.all(np.diff(res.log_likelihood) >= -1e-12)
        fits.append((model.unmixing.detach().clone(), res.log_likelihood[-1]))
    (Wc, llc), (Wt, llt) = fits
    torch.testing.assert_close(Wc, Wt, rtol=0, atol=1e-8 if solver == "newton" else 1e-5)
    assert llc == pytest.approx(llt, rel=1e-13 if solver == "newton" else 1e-10)


def test_compiled_kernels_can_be_cached_on_disk() -> None:
    import numba

    kernels = [v for v in vars(kernel).values() if isinstance(v, numba.core.registry.CPUDispatcher)]
    assert {"logistic_pass", "exp_neg", "two_sum"} <= {k.py_func.__name__ for k in kernels}
    for k in kernels:
        assert k.py_func.__closure__ is None, k.py_func.__name__
        assert type(k._cache).__name__ == "FunctionCache", k.py_func.__name__  # cache=True


@pytest.mark.parametrize("kwargs", [{}, {"n_components": 2}, {"whiten": "arbitrary-variance"},
                                    {"whiten": False}, {"solver": "newton"}])
def test_estimator_mixing_is_the_pseudo_inverse(kwargs: dict) -> None:
    """mixing_ (computed in closed form from the whitening) = pinv(components_)."""
    from genmodels.estimators.ica import InfomaxICA

    X = _white(2000, 3, seed=4).numpy() @ np.array([[2.0, 0.5, 0.0], [0.3, 1.0, -0.4],
                                                    [0.0, 0.2, 3.0]]) + 1.5
    est = InfomaxICA(random_state=0, **kwargs).fit(X)
    np.testing.assert_allclose(est.mixing_, np.linalg.pinv(est.components_), rtol=1e-9,
                               atol=1e-12)
    if kwargs.get("whiten", "unit-variance") == "unit-variance":
        np.testing.assert_allclose(est.transform(X).std(0), 1.0, rtol=1e-12)


@pytest.mark.parametrize(("n", "k", "seed"), [(3000, 4, 2), (20000, 3, 5), (2000, 8, 7)])
def test_compiled_newton_loop_equals_python_loop(monkeypatch: pytest.MonkeyPatch, n: int,
                                                 k: int, seed: int) -> None:
    """The relative-Newton iterations in one compiled call take the same steps as the
    Python loop over the same compiled passes: same iterations, log-likelihoods, unmixing."""
    Z = _white(n, k, seed=seed)
    W0 = torch.linalg.qr(torch.randn(k, k, generator=torch.Generator().manual_seed(seed),
                                     dtype=torch.float64))[0]
    fits = []
    for whole_loop in (True, False):
        if not whole_loop:  # the kernels without the compiled loop
            monkeypatch.setattr(infomax, "_kernels",
                                lambda: SimpleNamespace(logistic_pass=kernel.logistic_pass))
        model = ICAModel(k)
        with torch.no_grad():
            model.unmixing.copy_(W0)
        res = fit_infomax(model, Z, tol=1e-7, max_iter=100, solver="newton")
        assert res.converged
        fits.append((model.unmixing.detach().clone(), res))
    (Wc, rc), (Wp, rp) = fits
    assert rc.n_iter == rp.n_iter
    np.testing.assert_allclose(rc.log_likelihood, rp.log_likelihood, rtol=1e-14, atol=0)
    torch.testing.assert_close(Wc, Wp, rtol=0, atol=1e-10)


def test_compiled_newton_loop_stops_at_max_iter_and_warns() -> None:
    Z = _white(3000, 4, seed=2)
    model = ICAModel(4)
    with pytest.warns(ConvergenceWarning, match="did not converge in 2 iterations"):
        res = fit_infomax(model, Z, tol=1e-12, max_iter=2, solver="newton")
    assert res.n_iter == 2 and not res.converged and len(res.log_likelihood) == 3


def test_compiled_newton_direction_equals_numpy() -> None:
    g = np.random.default_rng(3)
    for k in (1, 3, 8):
        G = g.normal(size=(k, k))
        moments = np.stack([-g.uniform(0.1, 0.5, k), g.uniform(0.5, 2.0, k),
                            -g.uniform(0.1, 1.0, k)]) * 1000.0
        E = np.empty((k, k))
        kernel.newton_direction(G, moments, 1000.0, 0.05, E)
        m = moments / 1000.0
        ref = infomax._newton_direction(G, m[0], m[1], m[2], 0.05)
        np.testing.assert_allclose(E, ref, rtol=1e-13, atol=1e-15)
