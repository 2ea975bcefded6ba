"""MAP codes of the Laplace-prior sparse-coding model (Eq. 8.10): optimality conditions, the peers
(scikit-learn's Lasso and sparse_encode) on the same problems, batching, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.decomposition import sparse_encode
from sklearn.linear_model import Lasso

from genmodels.inference.lasso import lasso, lasso_energy, lasso_kkt_violation, soft_threshold


def _problem(M: int, K: int, N: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    C = torch.randn(M, K, generator=g)
    C = C / C.norm(dim=0)
    X = torch.randn(N, K, generator=g) * (torch.rand(N, K, generator=g) < 0.1)
    Y = X @ C.T + 0.1 * torch.randn(N, M, generator=g)
    return Y, C


@pytest.mark.parametrize("method", ["cd", "fista", "lars"])
@pytest.mark.parametrize(("M", "K"), [(16, 32), (20, 8)])
def test_modes_satisfy_kkt(method: str, M: int, K: int) -> None:
    Y, C = _problem(M, K, 200, seed=1)
    lam = 4.0
    alpha = torch.full((K,), 0.7) if method == "lars" else torch.linspace(0.2, 1.5, K)
    sol = lasso(Y, C, lam, alpha, method=method, tol=1e-10)
    viol = lasso_kkt_violation(sol.codes, Y, C, lam, alpha)
    assert float(viol.max()) < 1e-8
    assert torch.equal(viol, sol.kkt_violation)
    assert bool((sol.codes == 0).any())  # the conditions are tested on both branches
    assert bool((sol.codes != 0).any())


def test_cd_and_fista_agree_and_descend() -> None:
    Y, C = _problem(12, 36, 100, seed=2)
    a = lasso(Y, C, 2.0, 0.7, method="cd")
    b = lasso(Y, C, 2.0, 0.7, method="fista")
    c = lasso(Y, C, 2.0, 0.7, method="lars")
    assert torch.allclose(a.codes, b.codes, atol=1e-8)
    assert torch.allclose(a.codes, c.codes, atol=1e-10)
    # the mode has lower energy than nearby perturbations
    e0 = lasso_energy(a.codes, Y, C, 2.0, 0.7)
    g = torch.Generator().manual_seed(3)
    for _ in range(5):
        e = lasso_energy(a.codes + 1e-3 * torch.randn(a.codes.shape, generator=g), Y, C, 2.0, 0.7)
        assert bool((e > e0).all())


def test_equals_sklearn_lasso_on_tall_problems() -> None:
    """sklearn's Lasso minimises (1/2M)‖y − Cx‖² + a‖x‖₁, so a = α / (λ M)."""
    Y, C = _problem(40, 10, 5, seed=4)
    lam, alpha = 3.0, 1.2
    sol = lasso(Y, C, lam, alpha)
    M = C.shape[0]
    for n in range(Y.shape[0]):
        sk = Lasso(alpha=alpha / (lam * M), fit_intercept=False, tol=1e-14, max_iter=100_000)
        sk.fit(C.numpy(), Y[n].numpy())
        np.testing.assert_allclose(sol.codes[n].numpy(), sk.coef_, atol=1e-9)


def test_equals_sklearn_sparse_encode_overcomplete() -> None:
    """sparse_encode(algorithm="lasso_cd", alpha=a) solves ½‖y − Cx‖² + a‖x‖₁ (a = α/λ); it stops
    at its own dual-gap tolerance (1e-4), so codes agree to its accuracy and our energy is
    never higher."""
    Y, C = _problem(16, 64, 300, seed=5)
    lam, alpha = 1.0, 0.3
    ours = lasso(Y, C, lam, alpha)
    sk = torch.from_numpy(sparse_encode(Y.numpy(), C.T.numpy(), algorithm="lasso_cd",
                                        alpha=alpha / lam, max_iter=10_000))
    assert torch.allclose(ours.codes, sk, atol=1e-4)
    e_ours = lasso_energy(ours.codes, Y, C, lam, alpha)
    e_sk = lasso_energy(sk, Y, C, lam, alpha)
    assert bool((e_ours <= e_sk + 1e-12).all())
    assert float(lasso_kkt_violation(sk, Y, C, lam, alpha).max()) > float(
        ours.kkt_violation.max())


@pytest.mark.parametrize("batch", [(), (5,), (2, 3)])
def test_batch_shapes(batch: tuple[int, ...]) -> None:
    Y, C = _problem(10, 20, int(np.prod(batch, dtype=int)), seed=6)
    Yb = Y.reshape(*batch, 10)
    for method in ("cd", "fista"):
        sol = lasso(Yb, C, 1.0, 0.5, method=method)
        assert sol.codes.shape == (*batch, 20)
        assert sol.kkt_violation.shape == batch
        flat = lasso(Y, C, 1.0, 0.5, method=method).codes
        assert torch.allclose(sol.codes.reshape(-1, 20), flat, atol=1e-9)


def test_warm_start_and_threads_give_the_same_codes() -> None:
    Y, C = _problem(16, 48, 500, seed=7)
    cold = lasso(Y, C, 1.0, 0.4, n_threads=1)
    threaded = lasso(Y, C, 1.0, 0.4, n_threads=2)
    warm = lasso(Y, C, 1.0, 0.4, init=cold.codes + 0.01)
    assert torch.allclose(cold.codes, threaded.codes, atol=1e-12)
    assert torch.allclose(cold.codes, warm.codes, atol=1e-9)


def test_zero_penalty_is_least_squares_and_large_penalty_is_zero() -> None:
    Y, C = _problem(30, 6, 20, seed=8)
    ls = torch.linalg.lstsq(C, Y.T).solution.T
    assert torch.allclose(lasso(Y, C, 1.0, 0.0).codes, ls, atol=1e-8)
    big = (Y @ C).abs().max() * 1.01
    assert bool((lasso(Y, C, 1.0, float(big)).codes == 0).all())


def test_soft_threshold() -> None:
    z = torch.tensor([-3.0, -0.5, 0.0, 0.5, 3.0])
    assert torch.equal(soft_threshold(z, 1.0), torch.tensor([-2.0, 0.0, 0.0, 0.0, 2.0]))


def test_bad_input() -> None:
    Y, C = _problem(5, 8, 4, seed=9)
    C0 = C.clone()
    C0[:, 3] = 0
    with pytest.raises(ValueError, match=r"all-zero column.*atom 3"):
        lasso(Y, C0)
    with pytest.raises(ValueError, match="alpha must be a finite number >= 0"):
        lasso(Y, C, 1.0, -1.0)
    with pytest.raises(ValueError, match="alpha must be non-negative; entry 2"):
        lasso(Y, C, 1.0, torch.tensor([1.0, 1.0, -1.0, 1, 1, 1, 1, 1]))
    with pytest.raises(ValueError, match=r"alpha must be a scalar or have shape \(8,\)"):
        lasso(Y, C, 1.0, torch.ones(3))
    with pytest.raises(ValueError, match="lam must be a finite number > 0"):
        lasso(Y, C, 0.0)
    Yn = Y.clone()
    Yn[1, 2] = float("nan")
    with pytest.raises(ValueError, match=r"Y contains 1 non-finite.*NaN at index \(1, 2\)"):
        lasso(Yn, C)
    with pytest.raises(ValueError, match=r"Y must have shape \(\*batch, 5\)"):
        lasso(Y[:, :4], C)
    with pytest.raises(ValueError, match="method must be one of"):
        lasso(Y, C, method="omp")
    with pytest.raises(ValueError, match="method='lars' needs one common, positive alpha"):
        lasso(Y, C, 1.0, torch.linspace(0.1, 1, 8), method="lars")
    with pytest.raises(ValueError, match=r"init must have shape \(4, 8\)"):
        lasso(Y, C, init=torch.zeros(4, 7))
    with pytest.raises(ValueError, match=r"C must be a non-empty \(M, K\) matrix"):
        lasso(Y, torch.zeros(5, 0))


def test_lars_homotopy_alone_reaches_the_kkt_conditions() -> None:
    """The homotopy kernel by itself (no coordinate-descent hand-over) ends on the solution."""
    from genmodels.inference import _lasso_numba as kern

    Y, C = _problem(16, 40, 50, seed=10)
    G = (C.T @ C).numpy()
    Q = (Y @ C).numpy()
    K = 40
    x, c = np.zeros(K), np.zeros(K)
    idx, L = np.zeros(K, dtype=np.int64), np.zeros((K, K))
    d, a, inA = np.zeros(K), np.zeros(K), np.zeros(K, dtype=np.bool_)
    worst = 0.0
    for n in range(50):
        steps = kern._lars_one(G, Q[n], x, c, 0.3, 4 * K, idx, L, d, a, inA)
        assert steps >= 0
        v = lasso_kkt_violation(torch.from_numpy(x.copy())[None], Y[n:n + 1], C, 1.0, 0.3)
        worst = max(worst, float(v))
    assert worst < 1e-10


def test_active_set_alone_reaches_the_kkt_conditions() -> None:
    """The active-set kernel by itself (no coordinate-descent hand-over) ends on the solution,
    with per-atom penalties, in about as many steps as the support has atoms."""
    from genmodels.inference import _lasso_numba as kern

    Y, C = _problem(16, 40, 50, seed=11)
    G = (C.T @ C).numpy()
    Q = (Y @ C).numpy()
    K = 40
    t = np.linspace(0.1, 0.6, K)
    x, r, b, sg = np.zeros(K), np.zeros(K), np.zeros(K), np.zeros(K)
    idx, L, inA = np.zeros(K, dtype=np.int64), np.zeros((K, K)), np.zeros(K, dtype=np.bool_)
    worst, extra = 0.0, 0
    for n in range(50):
        x[:] = 0.0
        code, steps = kern._active_set(G, Q[n], x, r, t, 1e-12, 4 * K, idx, sg, inA, L, b)
        assert code == 1
        extra += steps - int((x != 0).sum())
        v = lasso_kkt_violation(torch.from_numpy(x.copy())[None], Y[n:n + 1], C, 1.0,
                                torch.from_numpy(t))
        worst = max(worst, float(v))
    assert worst < 1e-10
    # steps = 1 + joins + drops and non-zeros = joins − drops: one step per datum beyond its
    # support, plus two per drop, of which there are few
    assert 50 <= extra < 100


@pytest.mark.parametrize("active_steps", [0, 1, 3])
def test_hand_over_to_coordinate_descent_gives_the_same_codes(active_steps: int) -> None:
    """A datum the active-set method hands over (here: it runs out of steps) is finished by
    coordinate descent from where it stopped, to the same codes."""
    from genmodels.inference import _lasso_numba as kern

    Y, C = _problem(16, 48, 100, seed=12)
    G = (C.T @ C).numpy()
    Q = np.ascontiguousarray((Y @ C).numpy())
    t = np.full(48, 0.4)

    def solve(steps: int) -> np.ndarray:
        X, n_it, viol = np.zeros((100, 48)), np.zeros(100, dtype=np.int64), np.zeros(100)
        kern.cd_block(G, Q, X, t, 1e-12, 10_000, n_it, viol, 8, steps)
        assert float(viol.max()) < 1e-12
        return X

    np.testing.assert_allclose(solve(active_steps), solve(4 * 48), atol=1e-10)


def test_cholesky_row_deletion() -> None:
    """_chol_delete leaves the factor of G_AA with one atom removed (every position, several
    sizes), with a positive diagonal."""
    from genmodels.inference import _lasso_numba as kern

    rng = np.random.default_rng(13)
    for s in (1, 2, 3, 7):
        A = rng.normal(size=(12, s))
        G = A.T @ A
        for c in range(s):
            L = np.zeros((s, s))
            assert kern._chol_factor(G, np.arange(s), s, L) < 0
            kern._chol_delete(L, s, c)
            keep = [i for i in range(s) if i != c]
            Ls = np.tril(L[:s - 1, :s - 1])
            np.testing.assert_allclose(Ls @ Ls.T, G[np.ix_(keep, keep)], atol=1e-12)
            assert bool((np.diag(Ls) > 0).all())
