"""genmodels vs hmmlearn: HMM inference and Baum–Welch, side by side in one process.

    python benchmarks/bench_hmm.py            # full: T = 100,000 and 1,000 × T = 100
    python benchmarks/bench_hmm.py --quick    # smaller, for a smoke run

Both libraries get the same parameters and the same data. hmmlearn runs its fastest compiled
back end, ``implementation="scaling"`` (C++). Rows:

* "kernel": the inference kernel alone on the same table of log-likelihoods —
  genmodels.inference.hmm (method="auto": the compiled kernels on the CPU) on the (B, T, K)
  batch vs hmmlearn's _hmmc (forward_scaling + backward_scaling + posteriors; viterbi) called
  on each sequence in turn, as hmmlearn itself does.
* "estimator": the public API end to end (emission log-likelihoods included):
  ``score_samples`` / ``decode`` / one Baum–Welch iteration (``fit`` with n_iter iterations from
  the same parameters, time divided by the iterations).

Timings are wall-clock medians of interleaved repeats (the two libraries alternate), with
torch (and the compiled kernels, which split a batch over torch's threads) limited to
``--threads`` threads (default 1, one core against hmmlearn's one; ``--threads 2`` shows
what a user's default of all cores gives on a 2-core machine). On a shared
machine the numbers are noisy: compare the ratio column, and rerun on a quiet machine.
speed-up = hmmlearn seconds / genmodels seconds (> 1: genmodels is faster).
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from genmodels.estimators.hmm import GaussianHMM
from genmodels.inference.hmm import forward_backward, viterbi


def _params(K: int, D: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    A = rng.random((K, K)) + np.eye(K) * K  # sticky, as fitted HMMs usually are
    return {"startprob": np.full(K, 1.0 / K), "transmat": A / A.sum(1, keepdims=True),
            "means": rng.normal(size=(K, D)) * 2.0, "covars": rng.uniform(0.5, 1.5, (K, D))}


def _hmmlearn(p: dict[str, np.ndarray], n_iter: int = 1) -> Any:
    from hmmlearn import hmm

    m = hmm.GaussianHMM(len(p["startprob"]), covariance_type="diag", covars_prior=0.0,
                        init_params="", n_iter=n_iter, tol=0.0, implementation="scaling")
    m.startprob_, m.transmat_, m.means_, m.covars_ = (p["startprob"], p["transmat"],
                                                      p["means"], p["covars"])
    return m


def _ours(p: dict[str, np.ndarray], n_iter: int = 1) -> GaussianHMM:
    m = GaussianHMM(len(p["startprob"]), "diag", reg_covar=0.0, init_params="", n_iter=n_iter,
                    tol=0.0)
    m.startprob_, m.transmat_, m.means_, m.covars_ = (p["startprob"], p["transmat"],
                                                      p["means"], p["covars"])
    return m


def _time(fns: list[Callable[[], Any]], repeats: int) -> list[float]:
    """Median wall-clock seconds of each function, the functions interleaved."""
    for f in fns:  # warm-up
        f()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for i, f in enumerate(fns):
            t0 = time.perf_counter()
            f()
            times[i].append(time.perf_counter() - t0)
    return [statistics.median(t) for t in times]


def _hmmlearn_fb(p: dict[str, np.ndarray], log_lik: np.ndarray) -> None:
    from hmmlearn import _hmmc

    scaled = np.exp(log_lik - log_lik.max(1, keepdims=True))
    _, fwd, scaling = _hmmc.forward_scaling(p["startprob"], p["transmat"], scaled)
    bwd = _hmmc.backward_scaling(p["startprob"], p["transmat"], scaled, scaling)
    post = fwd * bwd
    post /= post.sum(1, keepdims=True)


def _hmmlearn_viterbi(p: dict[str, np.ndarray], log_lik: np.ndarray) -> None:
    from hmmlearn import _hmmc

    _hmmc.viterbi(p["startprob"], p["transmat"], log_lik)


Row = tuple[str, str, str, float, float]


def _bench_long(K: int, D: int, T: int, repeats: int) -> list[Row]:
    """One long sequence: kernels on the same log-likelihood table, then the estimators."""
    p = _params(K, D, K)
    ref, ours = _hmmlearn(p), _ours(p)
    X, _ = ref.sample(T, random_state=0)
    log_lik = ref._compute_log_likelihood(X)
    li = torch.log(torch.as_tensor(p["startprob"]))
    lt = torch.log(torch.as_tensor(p["transmat"]))
    ll = torch.as_tensor(log_lik)
    shape = f"1 × {T:,}"
    rows: list[Row] = []
    t_ref, t_ours = _time([lambda: _hmmlearn_fb(p, log_lik),
                           lambda: forward_backward(li, lt, ll)], repeats)
    rows.append(("forward–backward, kernel", str(K), shape, t_ref, t_ours))
    t_ref, t_ours = _time([lambda: _hmmlearn_viterbi(p, log_lik),
                           lambda: viterbi(li, lt, ll)], repeats)
    rows.append(("Viterbi, kernel", str(K), shape, t_ref, t_ours))
    t_ref, t_ours = _time([lambda: ref.score_samples(X), lambda: ours.score_samples(X)], repeats)
    rows.append(("score_samples (posteriors)", str(K), shape, t_ref, t_ours))
    t_ref, t_ours = _time([lambda: ref.decode(X), lambda: ours.decode(X)], repeats)
    rows.append(("decode (Viterbi)", str(K), shape, t_ref, t_ours))
    return rows


def _bench_batch(K: int, D: int, n_seq: int, T: int, repeats: int, n_iter: int = 3
                 ) -> list[Row]:
    """Many short sequences: posteriors, Viterbi and Baum–Welch per iteration."""
    p = _params(K, D, 100 + K)
    ref, ours = _hmmlearn(p), _ours(p)
    rs = np.random.RandomState(1)
    X = np.concatenate([ref.sample(T, random_state=rs)[0] for _ in range(n_seq)])
    lengths = [T] * n_seq
    shape = f"{n_seq:,} × {T}"
    rows: list[Row] = []
    log_lik = ref._compute_log_likelihood(X)  # (n_seq · T, K), the sequences one after another
    tables = [log_lik[i * T:(i + 1) * T] for i in range(n_seq)]
    li = torch.log(torch.as_tensor(p["startprob"]))
    lt = torch.log(torch.as_tensor(p["transmat"]))
    ll = torch.as_tensor(log_lik).reshape(n_seq, T, K)
    t_ref, t_ours = _time([lambda: [_hmmlearn_fb(p, x) for x in tables],
                           lambda: forward_backward(li, lt, ll, transitions=False)], repeats)
    rows.append(("forward–backward, kernel", str(K), shape, t_ref, t_ours))
    t_ref, t_ours = _time([lambda: [_hmmlearn_viterbi(p, x) for x in tables],
                           lambda: viterbi(li, lt, ll)], repeats)
    rows.append(("Viterbi, kernel", str(K), shape, t_ref, t_ours))
    t_ref, t_ours = _time([lambda: ref.score_samples(X, lengths),
                           lambda: ours.score_samples(X, lengths)], repeats)
    rows.append(("score_samples (posteriors)", str(K), shape, t_ref, t_ours))
    t_ref, t_ours = _time([lambda: ref.decode(X, lengths), lambda: ours.decode(X, lengths)],
                          repeats)
    rows.append(("decode (Viterbi)", str(K), shape, t_ref, t_ours))
    t_ref, t_ours = _time([lambda: _hmmlearn(p, n_iter).fit(X, lengths),
                           lambda: _ours(p, n_iter).fit(X, lengths)], max(1, repeats - 2))
    rows.append(("Baum–Welch, per iteration", str(K), shape, t_ref / n_iter, t_ours / n_iter))
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, few repeats")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--repeats", type=int, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    long_T = 20_000 if args.quick else 100_000
    n_seq, seq_T = (200, 100) if args.quick else (1000, 100)
    repeats = args.repeats or (3 if args.quick else 5)
    D = 2
    rows: list[Row] = []

    for K in (8, 32):
        rows += _bench_long(K, D, long_T, repeats)
    for K in (8, 32):
        rows += _bench_batch(K, D, n_seq, seq_T, repeats)

    print(f"\nHMM benchmark: genmodels vs hmmlearn (implementation='scaling'); torch threads = "
          f"{args.threads}; median of {repeats} interleaved repeats; Gaussian diag emissions, "
          f"D = {D}.\n")
    print("| task | K | sequences × T | hmmlearn (s) | genmodels (s) | speed-up |")
    print("|---|---:|---:|---:|---:|---:|")
    for task, K, shape, a, b in rows:
        print(f"| {task} | {K} | {shape} | {a:.4f} | {b:.4f} | {a / b:.2f}× |")


if __name__ == "__main__":
    main()
