"""Every genmodels-vs-peer comparison in one run, quiet and busy, at 1 and 2 threads → one JSON.

    python benchmarks/run_all.py                 # full sizes (tens of minutes on 2 cores)
    python benchmarks/run_all.py --quick         # smaller sizes, fewer repeats (a few minutes)
    python benchmarks/run_all.py --only gmm pca  # a subset of the cases (names below)
    python benchmarks/readme_table.py results.json   # the README's speed table from the file

Each case times genmodels and its peer on the same data, side by side in one process, and
checks that they agree (the "agreement" field). For each thread count (torch's
``set_num_threads`` and the peers' BLAS through threadpoolctl, alike — the genmodels thread
policy chooses within that ceiling by itself) the repeats alternate between two conditions:

* quiet: nothing else started by this script;
* busy: one CPU-bound competing process (a Python spin loop in a fresh interpreter, not a
  fork of this one) running beside the comparison, as a user's second job would.

The ratio of a condition is peer median / genmodels median (> 1: genmodels faster); the
busy ratio is reported beside the quiet one and as a fraction of it. The machine itself may
be shared (the JSON records the load average before and after), which hits both libraries
of a repeat alike but adds noise between repeats.

The remaining scripts (``bench_vae.py``, ``bench_word2vec.py``, ``bench_hmm.py``,
``bench_glm.py``, ``bench_infonce.py``) are run as they are with ``--quick`` when
``--scripts`` is given, and their printed tables are stored in the JSON verbatim.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


# ---------------------------------------------------------------------------------------------
# The competing process and the timing loop
# ---------------------------------------------------------------------------------------------


#: The competitor: a fresh interpreter running a spin loop, as a user's second job would be.
#: (Not a fork of this process: a forked child shares this process's memory copy-on-write, so
#: every page this process had written before the fork faults and is copied on its next
#: write — measured 1,900 extra page faults and +80% time on one HMM posterior call, +70% on a
#: GMM fit, with the child only sleeping. That charges the library that reuses its buffers
#: for the benchmark's fork, not for a busy core.)
_SPIN = "x = 0\nwhile True:\n    x += 1\n"


def _start_spinner() -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-S", "-c", _SPIN], stdin=subprocess.DEVNULL)
    time.sleep(0.2)  # let it start and reach the scheduler
    return proc


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.kill()
    proc.wait(5)


@contextlib.contextmanager
def competing_process(busy: bool) -> Iterator[subprocess.Popen[bytes] | None]:
    """One CPU-bound process beside the block (when ``busy``; yields it, else None)."""
    if not busy:
        yield None
        return
    proc = _start_spinner()
    try:
        yield proc
    finally:
        _stop(proc)


def start_competitor() -> None:
    """Busy mode of the single scripts (``--busy``): one CPU-bound process from now until this
    one exits."""
    import atexit

    proc = _start_spinner()
    atexit.register(_stop, proc)
    print("busy mode: one CPU-bound process running beside this benchmark", flush=True)


@dataclass
class Prepared:
    ours: Callable[[], Any]
    peer: Callable[[], Any]
    agreement: Callable[[Any, Any], str]
    peer_name: str
    sizes: str = ""  # the sizes actually run, when --quick changes them


@dataclass
class Case:
    name: str
    task: str
    prepare: Callable[[bool], Prepared]
    repeats: int = 3


def time_case(case: Case, quick: bool, threads: int) -> dict[str, Any]:
    from threadpoolctl import threadpool_limits

    prep = case.prepare(quick)
    times: dict[str, dict[str, list[float]]] = {c: {"ours": [], "peer": []}
                                                for c in ("quiet", "busy")}
    last: dict[str, Any] = {}
    torch.set_num_threads(threads)
    with threadpool_limits(threads), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        last["ours"], last["peer"] = prep.ours(), prep.peer()  # warm-up (compilation, caches)
        repeats = max(2, case.repeats - 1) if quick else case.repeats
        for _ in range(repeats):
            for cond in ("quiet", "busy"):  # interleaved conditions within the same run
                with competing_process(cond == "busy"):
                    for side, fn in (("ours", prep.ours), ("peer", prep.peer)):
                        t0 = time.perf_counter()
                        last[side] = fn()
                        times[cond][side].append(time.perf_counter() - t0)
    task = case.task if not (quick and prep.sizes) else f"{case.task} (--quick: {prep.sizes})"
    row: dict[str, Any] = {"case": case.name, "task": task, "peer": prep.peer_name,
                           "threads": threads,
                           "agreement": prep.agreement(last["ours"], last["peer"])}
    for cond, t in times.items():
        o, p = statistics.median(t["ours"]), statistics.median(t["peer"])
        row[cond] = {"genmodels_s": o, "peer_s": p, "ratio": p / o,
                     "genmodels_all": t["ours"], "peer_all": t["peer"]}
    row["busy_fraction_of_quiet"] = row["busy"]["ratio"] / row["quiet"]["ratio"]
    return row


# ---------------------------------------------------------------------------------------------
# The cases
# ---------------------------------------------------------------------------------------------


def _gmm(quick: bool) -> Prepared:
    from bench_gmm import make_data
    from sklearn.mixture import GaussianMixture as SkGMM

    from genmodels.estimators.mixture import GaussianMixture

    n, d, k = (20_000, 8, 8) if quick else (200_000, 16, 32)
    X = make_data(n, d, k)
    start = GaussianMixture(k, max_iter=1, random_state=0).fit(X[: min(n, 20_000)])
    init = dict(weights_init=start.weights_, means_init=start.means_,
                precisions_init=start.precisions_, covariance_type="full", tol=0.0,
                max_iter=5)

    def agree(a: Any, b: Any) -> str:
        gap = abs(a.lower_bound_ - b.lower_bound_)
        return f"final log-likelihood per sample differs by {gap:.1e}"

    return Prepared(lambda: GaussianMixture(k, **init).fit(X), lambda: SkGMM(k, **init).fit(X),
                    agree, "scikit-learn GaussianMixture", f"N={n:,}, D={d}, K={k}")


def _kalman(quick: bool) -> Prepared:
    from statsmodels.tsa.statespace.kalman_smoother import KalmanSmoother

    from genmodels.inference.kalman import LGSSMParams, kalman_smoother, sample_lgssm

    K, M, T = 8, 4, 10_000
    rng = np.random.default_rng(0)
    A = rng.normal(size=(K, K))
    A = 0.95 * A / np.abs(np.linalg.eigvals(A)).max()
    C = rng.normal(size=(M, K))
    Q, R = 0.1 * np.eye(K), np.eye(M)
    f64 = torch.float64
    P = LGSSMParams(torch.zeros(K, dtype=f64), torch.eye(K, dtype=f64), torch.tensor(A),
                    torch.tensor(Q), torch.tensor(C), torch.tensor(R))
    _, y = sample_lgssm(P, T, generator=torch.Generator().manual_seed(0))
    ks = KalmanSmoother(k_endog=M, k_states=K, k_posdef=K)
    ks.bind(y.numpy().copy())
    ks["design"], ks["obs_cov"], ks["transition"] = C, R, A
    ks["selection"], ks["state_cov"] = np.eye(K), Q
    ks.initialize_known(np.zeros(K), np.eye(K))

    def agree(a: Any, b: Any) -> str:
        err = np.abs(a.means.numpy() - b.smoothed_state.T).max()
        return f"smoothed means to {err:.0e}"

    return Prepared(lambda: kalman_smoother(P, y), ks.smooth, agree,
                    "statsmodels KalmanSmoother")


def _decomposition(which: str, data: str) -> Callable[[bool], Prepared]:
    def prepare(quick: bool) -> Prepared:
        from bench_decomposition import synthetic
        from sklearn import decomposition as skd

        from genmodels.data import load_dataset
        from genmodels.estimators import decomposition as gmd

        X = (load_dataset("digits").X.numpy() if data == "digits"
             else synthetic(20_000 if quick else 100_000))
        ours, theirs = getattr(gmd, which), getattr(skd, which)

        def agree(a: Any, b: Any) -> str:
            if which == "PCA":
                gap = np.abs(np.abs(a.components_) - np.abs(b.components_)).max()
                return f"components equal up to sign to {gap:.0e}"
            return f"log-likelihood per datum {a.score(X) - b.score(X):+.2g} vs scikit-learn"

        return Prepared(lambda: ours(10).fit(X), lambda: theirs(10).fit(X), agree,
                        f"scikit-learn {which}", f"N={X.shape[0]:,}")

    return prepare


def _ica(n: int, k: int) -> Callable[[bool], Prepared]:
    def prepare(quick: bool) -> Prepared:
        from bench_ica import make_data
        from sklearn.decomposition import FastICA

        from genmodels.estimators.ica import InfomaxICA
        from genmodels.models.ica import amari_distance

        X, A = make_data(n, k, seed=n + k)

        def amari(est: Any) -> float:
            return float(amari_distance(torch.as_tensor(est.components_), torch.as_tensor(A)))

        def agree(a: Any, b: Any) -> str:
            return f"Amari distance {amari(a):.4f} vs {amari(b):.4f}"

        return Prepared(
            lambda: InfomaxICA(random_state=0, solver="newton", tol=1e-4).fit(X),
            lambda: FastICA(whiten="unit-variance", random_state=0, max_iter=1000,
                            tol=1e-4).fit(X), agree, "scikit-learn FastICA (logcosh)")

    return prepare


def _hmm(quick: bool) -> Prepared:
    from bench_hmm import _hmmlearn, _ours, _params

    K, D, n_seq, T = 8, 4, (200 if quick else 1000), 100
    p = _params(K, D, 0)
    ref, ours = _hmmlearn(p), _ours(p)
    X, _ = ref.sample(n_seq * T, random_state=np.random.RandomState(1))
    lengths = np.full(n_seq, T)

    def agree(a: Any, b: Any) -> str:
        return f"posteriors to {np.abs(a[1] - b[1]).max():.0e}"

    return Prepared(lambda: ours.score_samples(X, lengths), lambda: ref.score_samples(X, lengths),
                    agree, "hmmlearn GaussianHMM (scaling)", f"{n_seq:,} sequences")


CASES = [
    Case("gmm", "GaussianMixture fit end to end (given initial parameters, validation and set-up "
         "included), 5 EM iterations, N=200k, D=16, K=32, full", _gmm, 3),
    Case("kalman", "Kalman filter + RTS smoother, T=10,000, 8-dim state, 4-dim observations",
         _kalman, 5),
    Case("pca_digits", "PCA(10) on digits (1797×64)", _decomposition("PCA", "digits"), 15),
    Case("pca_100k", "PCA(10), N=100,000×64", _decomposition("PCA", "synthetic"), 7),
    Case("fa_digits", "FactorAnalysis(10) on digits", _decomposition("FactorAnalysis", "digits"),
         5),
    Case("fa_100k", "FactorAnalysis(10), N=100,000×64",
         _decomposition("FactorAnalysis", "synthetic"), 3),
    Case("ica_5k_3", "InfomaxICA (relative Newton), N=5,000, K=3", _ica(5000, 3), 7),
    Case("ica_5k_8", "InfomaxICA (relative Newton), N=5,000, K=8", _ica(5000, 8), 5),
    Case("ica_50k_3", "InfomaxICA (relative Newton), N=50,000, K=3", _ica(50000, 3), 5),
    Case("ica_50k_8", "InfomaxICA (relative Newton), N=50,000, K=8", _ica(50000, 8), 3),
    Case("hmm", "GaussianHMM score_samples, 1,000 sequences × T=100, K=8", _hmm, 5),
]

SCRIPTS = ["bench_vae.py", "bench_word2vec.py", "bench_hmm.py", "bench_glm.py",
           "bench_infonce.py"]


def _loadavg() -> list[float]:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return []


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller sizes and fewer repeats")
    ap.add_argument("--only", nargs="*", default=None, help="case names to run")
    ap.add_argument("--threads", nargs="*", type=int, default=[1, 2])
    ap.add_argument("--scripts", action="store_true",
                    help="also run the other bench_*.py scripts with --quick (stored verbatim)")
    ap.add_argument("--out", default="benchmarks/results.json")
    args = ap.parse_args(argv)
    cases = [c for c in CASES if args.only is None or c.name in args.only]
    out: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cores": os.cpu_count(), "python": platform.python_version(),
                    "torch": torch.__version__},
        "quick": args.quick, "loadavg_before": _loadavg(), "rows": [], "scripts": {},
    }
    for case in cases:
        for threads in args.threads:
            row = time_case(case, args.quick, threads)
            out["rows"].append(row)
            print(f"{case.name:12s} threads={threads}: quiet {row['quiet']['ratio']:.2f}×, "
                  f"busy {row['busy']['ratio']:.2f}× ({100 * row['busy_fraction_of_quiet']:.0f}%"
                  f" of quiet); {row['agreement']}", flush=True)
    if args.scripts:
        for script in SCRIPTS:
            res = subprocess.run([sys.executable, str(HERE / script), "--quick"],
                                 capture_output=True, text=True, check=False)
            out["scripts"][script] = {"returncode": res.returncode, "stdout": res.stdout}
    out["loadavg_after"] = _loadavg()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
