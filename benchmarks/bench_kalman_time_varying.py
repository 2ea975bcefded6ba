"""Time-varying Kalman parameters on pykalman's own robot data: genmodels vs pykalman, one
process, the same ``KalmanFilter`` calls.

    python benchmarks/bench_kalman_time_varying.py [--repeats 5]

Data: ``pykalman.datasets.load_robot()`` (501 observations, 5-dim state, transition_offsets
(500, 5)), float64, torch single-threaded. Timings are the best of interleaved repeats (the
machine may be shared): ``smooth`` (filter + RTS smoother) and one EM iteration over the two
covariances (pykalman's reference run).
"""

from __future__ import annotations

import argparse
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    import pykalman
    from pykalman.datasets import load_robot

    from genmodels.estimators.kalman import KalmanFilter

    torch.set_num_threads(1)
    d = load_robot()
    fixed = (d.transition_matrix, d.observation_matrix)
    rest = (d.transition_offsets, d.observation_offset, d.initial_state_mean,
            d.initial_state_covariance)
    libs = {"genmodels": KalmanFilter, "pykalman": pykalman.KalmanFilter}
    best: dict[str, list[float]] = {name: [float("inf")] * 2 for name in libs}
    for _ in range(args.repeats):
        for name, KF in libs.items():  # interleaved, so both suffer the same load
            kf = KF(*fixed, d.transition_covariance, d.observation_covariance, *rest)
            t0 = time.perf_counter()
            kf.smooth(d.observations)
            best[name][0] = min(best[name][0], time.perf_counter() - t0)
            kf = KF(*fixed, d.initial_transition_covariance, d.initial_observation_covariance,
                    *rest, em_vars=["transition_covariance", "observation_covariance"])
            t0 = time.perf_counter()
            kf.em(d.observations, n_iter=1)
            best[name][1] = min(best[name][1], time.perf_counter() - t0)
    g, p = best["genmodels"], best["pykalman"]
    print(f"smooth:        genmodels {g[0] * 1e3:7.1f} ms  pykalman {p[0] * 1e3:7.1f} ms  "
          f"ratio {p[0] / g[0]:.1f}×")
    print(f"EM iteration:  genmodels {g[1] * 1e3:7.1f} ms  pykalman {p[1] * 1e3:7.1f} ms  "
          f"ratio {p[1] / g[1]:.1f}×")


if __name__ == "__main__":
    main()
