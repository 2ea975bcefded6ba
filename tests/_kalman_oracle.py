"""Dense joint-Gaussian oracle for the linear-Gaussian state-space model (small T).

Builds the joint Gaussian of (x_1..x_T, y_1..y_T) from independent noises and conditions it on
the observed entries of y with dense linear algebra (NumPy, float64).
"""

from __future__ import annotations

import numpy as np
from scipy import stats


def random_params(rng, K, M, U=0, offsets=True):
    A = rng.normal(size=(K, K))
    A = 0.9 * A / np.max(np.abs(np.linalg.eigvals(A)))
    def spd(n, s=1.0):
        X = rng.normal(size=(n, n))
        return s * (X @ X.T / n + 0.5 * np.eye(n))
    p = dict(
        initial_mean=rng.normal(size=K), initial_covariance=spd(K), dynamics=A,
        dynamics_covariance=spd(K, 0.5), emission=rng.normal(size=(M, K)),
        emission_covariance=spd(M, 0.7),
        dynamics_offset=rng.normal(size=K) if offsets else np.zeros(K),
        emission_offset=rng.normal(size=M) if offsets else np.zeros(M),
        dynamics_input=rng.normal(size=(K, U)) if U else None,
        emission_input=rng.normal(size=(M, U)) if U else None,
    )
    return p


def joint(p, T, inputs=None):
    """Mean and covariance of z = (x_1..x_T, y_1..y_T) flattened, as [x block; y block]."""
    K = p["dynamics"].shape[0]
    M = p["emission"].shape[0]
    n_eps = T * K + T * M
    eps_cov = np.zeros((n_eps, n_eps))
    eps_cov[:K, :K] = p["initial_covariance"]
    for t in range(1, T):
        eps_cov[t * K:(t + 1) * K, t * K:(t + 1) * K] = p["dynamics_covariance"]
    for t in range(T):
        o = T * K + t * M
        eps_cov[o:o + M, o:o + M] = p["emission_covariance"]
    Lx = []
    mx = []
    for t in range(T):
        L = np.zeros((K, n_eps))
        L[:, t * K:(t + 1) * K] = np.eye(K)
        if t == 0:
            m = p["initial_mean"].copy()
        else:
            L = L + p["dynamics"] @ Lx[-1]
            m = p["dynamics"] @ mx[-1] + p["dynamics_offset"]
            if inputs is not None and p["dynamics_input"] is not None:
                m = m + p["dynamics_input"] @ inputs[t - 1]
        Lx.append(L)
        mx.append(m)
    Ly, my = [], []
    for t in range(T):
        L = p["emission"] @ Lx[t]
        L[:, T * K + t * M:T * K + (t + 1) * M] += np.eye(M)
        m = p["emission"] @ mx[t] + p["emission_offset"]
        if inputs is not None and p["emission_input"] is not None:
            m = m + p["emission_input"] @ inputs[t]
        Ly.append(L)
        my.append(m)
    L = np.vstack(Lx + Ly)
    mean = np.concatenate(mx + my)
    return mean, L @ eps_cov @ L.T


def condition(p, y, inputs=None):
    """Posterior moments of all states given the observed (non-NaN) entries of y (T, M).

    Returns (means (T, K), covs (T, K, K), cross (T−1, K, K) = Cov[x_{t+1}, x_t], log p(y_obs)).
    """
    T = y.shape[0]
    K = p["dynamics"].shape[0]
    mean, cov = joint(p, T, inputs)
    nx = T * K
    obs = ~np.isnan(y.ravel())
    idx_y = nx + np.flatnonzero(obs)
    Sxy = cov[:nx, idx_y]
    Syy = cov[np.ix_(idx_y, idx_y)]
    r = y.ravel()[obs] - mean[idx_y]
    post_mean = mean[:nx] + Sxy @ np.linalg.solve(Syy, r)
    post_cov = cov[:nx, :nx] - Sxy @ np.linalg.solve(Syy, Sxy.T)
    means = post_mean.reshape(T, K)
    covs = np.stack([post_cov[t * K:(t + 1) * K, t * K:(t + 1) * K] for t in range(T)])
    cross = np.stack([post_cov[(t + 1) * K:(t + 2) * K, t * K:(t + 1) * K]
                      for t in range(T - 1)]) if T > 1 else np.zeros((0, K, K))
    ll = stats.multivariate_normal(mean[idx_y], Syy).logpdf(y.ravel()[obs]) if obs.any() else 0.0
    return means, covs, cross, float(ll)


def filtered(p, y, inputs=None):
    """Filter moments: condition on y_{1:t} for each t."""
    T = y.shape[0]
    means, covs = [], []
    for t in range(1, T + 1):
        m, c, _, _ = condition(p, y[:t], inputs[:t] if inputs is not None else None)
        means.append(m[-1])
        covs.append(c[-1])
    return np.stack(means), np.stack(covs)


def single_thread():
    """Generator for an autouse fixture: run torch single-threaded during a test.

    The Kalman recursions are chains of tiny (K×K) ops; on a loaded 2-core machine, OpenMP
    threads spinning for each of them make a test tens of times slower. Restored afterwards.
    """
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
