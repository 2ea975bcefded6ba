"""RBMs side by side: one PCD-1 epoch of genmodels' ``BernoulliRBM`` — the compiled kernel
(``solver="compiled"``, the default for binary data) and the Boltzmann gradient through
``learning.trainer`` (``solver="trainer"``) — against scikit-learn's ``BernoulliRBM``,
on the binarised digits of the density table (1,437 × 64), H = 64 and 256, batch 10 and 100,
same learning rate, the same thread count each (``--threads``: torch and every BLAS under
NumPy and SciPy); then the partition functions: exact log Z at H = 20 (2²⁰ hidden states
enumerated) and AIS with 100 runs × 10,000 temperatures at H = 64 and 256.

Both libraries run in ONE process, alternating, the median of ``--repeats`` epochs each; the
ratio is scikit-learn's time ÷ genmodels' (above 1: genmodels is faster), by the wall clock and
by the process's CPU time (on a shared machine the CPU time is the steadier of the two: it
leaves out the time the process waits for a core). Each fit(n_iter=1) includes its library's
set-up (validation, initial weights and chains: ~0.5 ms of genmodels' fit), so a second line
gives the time per epoch of ``--long``-epoch fits, the set-up spread over the epochs.
Agreement: after ``--epochs`` epochs with the same settings, the held-out pseudo-log-
likelihood of each fit, in nats per image (the exact one: Σ_d log p̂(v_d | v_¬d) over all D
pixels, from free energies; not scikit-learn's one-random-pixel estimate), the mean and spread
over ``--seeds`` seeds — the compiled kernel runs scikit-learn's algorithm, so the two should
agree to Monte Carlo noise. The agreement fits use the first ⌊N / batch⌋ · batch training
images, a whole number of minibatches: on a short last minibatch scikit-learn's update is not
the mean gradient — ``_fit`` scales by learning_rate / len(batch) but its negative phase sums
all ``batch_size`` persistent chains, so the negative statistics weigh batch_size / len(batch)
times the positive ones (100 / 37 = 2.7 on the 1,437 images at batch 100, once an epoch), which
costs its fit ~3 nats of held-out pseudo-likelihood at batch 100 (``--all-rows`` shows it);
genmodels takes the mean of each phase. The load average is printed with the results.

    python benchmarks/bench_rbm.py [--repeats 5] [--threads 1] [--epochs 10] [--seeds 3]
                                   [--long 10] [--all-rows] [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any

import numpy as np
import torch

from genmodels.data import density_split
from genmodels.estimators.rbm import BernoulliRBM
from genmodels.inference.partition import ais_log_partition, exact_log_partition
from genmodels.models.harmonium import BernoulliRBM as RBMModel


def _fit(who: int, X: np.ndarray, hidden: int, batch: int, epochs: int, seed: int) -> Any:
    """who: 0 genmodels compiled, 1 genmodels through the trainer, 2 scikit-learn."""
    from sklearn.neural_network import BernoulliRBM as SkRBM

    if who == 2:
        return SkRBM(n_components=hidden, batch_size=batch, n_iter=epochs, learning_rate=0.1,
                     random_state=seed).fit(X)
    return BernoulliRBM(n_components=hidden, batch_size=batch, n_iter=epochs,
                        learning_rate=0.1, random_state=seed,
                        solver=("compiled", "trainer")[who]).fit(X)


def _epoch_times(X: np.ndarray, hidden: int, batch: int, repeats: int
                 ) -> tuple[list[float], list[float]]:
    """Median wall and CPU seconds of one epoch: genmodels compiled, genmodels through the
    trainer, scikit-learn — in rotating order."""
    wall: list[list[float]] = [[], [], []]
    cpu: list[list[float]] = [[], [], []]
    for r in range(repeats):
        for who in np.roll(np.arange(3), r):
            t0, c0 = time.perf_counter(), time.process_time()
            _fit(int(who), X, hidden, batch, 1, r)
            wall[who].append(time.perf_counter() - t0)
            cpu[who].append(time.process_time() - c0)
    return [statistics.median(v) for v in wall], [statistics.median(v) for v in cpu]


def _long_fit_times(X: np.ndarray, hidden: int, batch: int, repeats: int, epochs: int
                    ) -> tuple[list[float], list[float]]:
    """Median wall and CPU seconds per epoch of an ``epochs``-epoch fit (the fit's time ÷
    epochs: the set-up of each library spread over the epochs): genmodels compiled,
    scikit-learn — alternating."""
    wall: list[list[float]] = [[], []]
    cpu: list[list[float]] = [[], []]
    for r in range(repeats):
        for i in ((0, 1) if r % 2 == 0 else (1, 0)):
            t0, c0 = time.perf_counter(), time.process_time()
            _fit((0, 2)[i], X, hidden, batch, epochs, r)
            wall[i].append((time.perf_counter() - t0) / epochs)
            cpu[i].append((time.process_time() - c0) / epochs)
    return [statistics.median(v) for v in wall], [statistics.median(v) for v in cpu]


def pseudo_log_likelihood(W: np.ndarray, b_h: np.ndarray, b_v: np.ndarray,
                          X: np.ndarray) -> float:
    """Mean over the rows of X of Σ_d log p̂(v_d | v_¬d), the binary RBM's exact conditionals:
    log σ(F(ṽ⁽ᵈ⁾) − F(v)) with ṽ⁽ᵈ⁾ the image with pixel d flipped and F the free energy
    F(v) = −b_vᵀv − Σ_j softplus(b_h,j + W_j v). W (H, D), b_h (H,), b_v (D,), X (N, D)."""
    a = X @ W.T + b_h  # (N, H)
    f = -X @ b_v - np.logaddexp(0.0, a).sum(1)
    total = 0.0
    for d in range(X.shape[1]):
        s = 1.0 - 2.0 * X[:, d]  # +1 where the pixel turns on, −1 where it turns off
        f_flip = -(X @ b_v + s * b_v[d]) - np.logaddexp(0.0, a + s[:, None] * W[:, d]).sum(1)
        total += float(-np.logaddexp(0.0, -(f_flip - f)).sum())
    return total / X.shape[0]


def _agreement(X: np.ndarray, held_out: np.ndarray, hidden: int, batch: int, epochs: int,
               seeds: int, all_rows: bool) -> list[list[float]]:
    """Held-out pseudo-log-likelihoods (nats per image) after ``epochs`` epochs, seeds 0 ..
    seeds − 1: [genmodels compiled, scikit-learn]. Fitted on whole minibatches only (the first
    ⌊N / batch⌋ · batch rows) unless ``all_rows``."""
    if not all_rows:
        X = X[: X.shape[0] // batch * batch]
    out: list[list[float]] = [[], []]
    for seed in range(seeds):
        for i, who in enumerate((0, 2)):
            m = _fit(who, X, hidden, batch, epochs, seed)
            out[i].append(pseudo_log_likelihood(m.components_, m.intercept_hidden_,
                                                m.intercept_visible_, held_out))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=10,
                        help="epochs of the fits whose pseudo-log-likelihoods are compared")
    parser.add_argument("--seeds", type=int, default=3, help="seeds of the agreement fits")
    parser.add_argument("--long", type=int, default=10,
                        help="also time fits of this many epochs, per epoch (1: skip)")
    parser.add_argument("--all-rows", action="store_true",
                        help="agreement fits on all training images (a short last minibatch)")
    parser.add_argument("--quick", action="store_true",
                        help="H = 64 only, 2 repeats, AIS with 1,000 temperatures")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from threadpoolctl import threadpool_limits

    train, test = density_split("binary")
    X, held_out = train.numpy(), test.numpy()
    repeats = 2 if args.quick else args.repeats
    BernoulliRBM(n_components=2, n_iter=1, solver="compiled").fit(X[:20])  # compile once
    print(f"load average {os.getloadavg()[0]:.1f}; {args.threads} thread(s) each")
    with threadpool_limits(args.threads):
        print("PCD-1 epoch on binarised digits (1,437 x 64), seconds (wall / CPU), median of "
              f"{repeats}; held-out pseudo-log-likelihood after {args.epochs} epochs, mean ± sd "
              f"over {args.seeds} seed(s), "
              + ("all rows" if args.all_rows else "whole minibatches"))
        for hidden in ((64,) if args.quick else (64, 256)):
            for batch in (10, 100):
                (comp, trainer, theirs), (c_comp, _, c_theirs) = _epoch_times(
                    X, hidden, batch, repeats)
                pl_ours, pl_theirs = (
                    f"{np.mean(v):.2f} ± {np.std(v, ddof=1) if len(v) > 1 else 0.0:.2f}"
                    for v in _agreement(X, held_out, hidden, batch, args.epochs, args.seeds,
                                        args.all_rows))
                print(f"  H={hidden:4d} batch={batch:4d}  genmodels compiled {comp:.4f} / "
                      f"{c_comp:.4f} (ratio {theirs / comp:.2f}x / {c_theirs / c_comp:.2f}x)  "
                      f"trainer {trainer:.4f} (ratio {theirs / trainer:.2f}x)  scikit-learn "
                      f"{theirs:.4f} / {c_theirs:.4f}  PL {pl_ours} vs {pl_theirs}",
                      flush=True)
                if args.long > 1:
                    (ours, sk), (c_ours, c_sk) = _long_fit_times(X, hidden, batch, repeats,
                                                                 args.long)
                    print(f"  {'':21s}per epoch of a {args.long}-epoch fit: genmodels compiled "
                          f"{ours:.4f} / {c_ours:.4f} (ratio {sk / ours:.2f}x / "
                          f"{c_sk / c_ours:.2f}x)  scikit-learn {sk:.4f} / {c_sk:.4f}",
                          flush=True)
    temps = 1000 if args.quick else 10_000
    g = torch.Generator().manual_seed(0)
    model = RBMModel(64, 20, init_scale=0.1)
    t0 = time.perf_counter()
    with torch.no_grad():
        lz = exact_log_partition(model).log_z
    print(f"exact log Z, H=20 (2^20 states): {time.perf_counter() - t0:.3f} s "
          f"(log Z = {float(lz):.4f})")
    for hidden in ((64,) if args.quick else (64, 256)):
        model = RBMModel(64, hidden, init_scale=0.1, seed=int(torch.randint(0, 100, (),
                                                                           generator=g)))
        t0 = time.perf_counter()
        est = ais_log_partition(model, num_chains=100, num_temperatures=temps, data=train,
                                seed=0)
        print(f"AIS, H={hidden}, 100 runs x {temps} temperatures: "
              f"{time.perf_counter() - t0:.2f} s (log Z = {float(est.log_z):.3f} "
              f"± {float(est.stderr):.3f}, ESS {float(est.ess):.0f})", flush=True)


if __name__ == "__main__":
    main()
