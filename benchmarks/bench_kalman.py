"""Kalman filter + RTS smoother and EM: genmodels vs statsmodels and pykalman, one process.

    python benchmarks/bench_kalman.py [--quick] [--threads 1]

Model: 8-dim state, 4-dim observations, T = 10,000, float64, one sequence (``--quick``: fewer
repeats). Timings are medians over interleaved repeats (the machine may be shared, so repeats
alternate between libraries). torch runs single-threaded by default (``--threads``), like the
peers, so the ratio compares algorithms, not core counts.

* filter+smoother: genmodels ``kalman_smoother`` (method "auto": steady-state gain + blocked
  means) vs statsmodels' compiled ``KalmanSmoother.smooth`` vs pykalman ``KalmanFilter.smooth``
  (pykalman once, it is slow).
* EM iteration: genmodels ``LinearGaussianSSM`` one E+M step vs pykalman ``em(n_iter=1)``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch


def timeit(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="3 repeats instead of 7")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--busy", action="store_true",
                    help="run beside one CPU-bound competing process (a user's second job)")
    args = ap.parse_args()
    if args.busy:
        from run_all import start_competitor

        start_competitor()
    torch.set_num_threads(args.threads)
    from pykalman import KalmanFilter as PyKalman
    from statsmodels.tsa.statespace.kalman_smoother import KalmanSmoother

    from genmodels.inference.kalman import LGSSMParams, kalman_smoother, sample_lgssm
    from genmodels.models.lgssm import LinearGaussianSSM

    K, M = 8, 4
    T = 10000
    repeats = 3 if args.quick else 7
    rng = np.random.default_rng(0)
    A = rng.normal(size=(K, K))
    A = 0.95 * A / np.abs(np.linalg.eigvals(A)).max()
    C = rng.normal(size=(M, K))
    Q, R = 0.1 * np.eye(K), np.eye(M)
    f64 = torch.float64
    P = LGSSMParams(torch.zeros(K, dtype=f64), torch.eye(K, dtype=f64), torch.tensor(A),
                    torch.tensor(Q), torch.tensor(C), torch.tensor(R))
    _, y = sample_lgssm(P, T, generator=torch.Generator().manual_seed(0))
    Y = y.numpy()

    ks = KalmanSmoother(k_endog=M, k_states=K, k_posdef=K)
    ks.bind(Y.copy())
    ks["design"], ks["obs_cov"], ks["transition"] = C, R, A
    ks["selection"], ks["state_cov"] = np.eye(K), Q
    ks.initialize_known(np.zeros(K), np.eye(K))
    pk = PyKalman(transition_matrices=A, observation_matrices=C, transition_covariance=Q,
                  observation_covariance=R, initial_state_mean=np.zeros(K),
                  initial_state_covariance=np.eye(K))

    ours = kalman_smoother(P, y)
    theirs = ks.smooth()
    err = np.abs(ours.means.numpy() - theirs.smoothed_state.T).max()
    dll = abs(float(ours.log_marginal) - theirs.llf_obs.sum())

    t_gm, t_sm = [], []
    for _ in range(repeats):
        t_gm.append(timeit(lambda: kalman_smoother(P, y)))
        t_sm.append(timeit(ks.smooth))
    t_pk = timeit(lambda: pk.smooth(Y))

    model = LinearGaussianSSM(K, M)
    model.set_params(dynamics=A, emission=C, dynamics_covariance=Q, emission_covariance=R)
    frozen = frozenset({"dynamics_offset", "emission_offset"})

    def em_ours() -> None:
        model.maximize(model.expected_stats(y).stats, frozen)

    em_vars = ["transition_matrices", "observation_matrices", "transition_covariance",
               "observation_covariance", "initial_state_mean", "initial_state_covariance"]
    pk_em = PyKalman(transition_matrices=A, observation_matrices=C, transition_covariance=Q,
                     observation_covariance=R, initial_state_mean=np.zeros(K),
                     initial_state_covariance=np.eye(K), em_vars=em_vars)
    t_em = [timeit(em_ours) for _ in range(repeats)]
    t_pk_em = timeit(lambda: pk_em.em(Y, n_iter=1))

    med = statistics.median
    print(f"# Kalman benchmark: K={K}, M={M}, T={T}, float64, torch threads={args.threads}")
    print(f"# agreement with statsmodels: max |Δ smoothed mean| = {err:.2e}, |Δ loglik| = "
          f"{dll:.2e}")
    print()
    print("| task | genmodels (s) | peer | peer (s) | speed-up |")
    print("|---|---|---|---|---|")
    print(f"| filter + RTS smoother | {med(t_gm):.4f} | statsmodels KalmanSmoother | "
          f"{med(t_sm):.4f} | {med(t_sm) / med(t_gm):.1f}x |")
    print(f"| filter + RTS smoother | {med(t_gm):.4f} | pykalman | {t_pk:.3f} | "
          f"{t_pk / med(t_gm):.0f}x |")
    print(f"| EM iteration | {med(t_em):.4f} | pykalman em(n_iter=1) | {t_pk_em:.3f} | "
          f"{t_pk_em / med(t_em):.0f}x |")
    print()
    print(f"Medians of {repeats} interleaved repeats (pykalman: one run).")


if __name__ == "__main__":
    main()
