"""Sparse coding (genmodels) vs scikit-learn and SPAMS, side by side in one process.

encode: MAP codes of N whitened 8×8 natural-image patches against K atoms (Eq. 8.10,
    ½‖y − Cx‖² + a‖x‖₁): ``genmodels.inference.lasso`` (coordinate descent; FISTA) vs
    ``sklearn.decomposition.sparse_encode(algorithm="lasso_cd")`` and SPAMS's LARS
    (``spams.lasso``, mode 2). The dictionary is scikit-learn's MiniBatchDictionaryLearning
    after two passes over another N patches. Reported: the median wall time of interleaved
    repeats, the ratio to scikit-learn, the mean energy's relative excess over the best of the
    methods (equal solutions ⇔ ≈ 0) and the largest KKT violation.
learn: dictionary learning on the same patches to equal final objective, see ``--learn``.

    python benchmarks/bench_sparse_coding.py                 # encode, N=10,000, K=256
    python benchmarks/bench_sparse_coding.py --quick         # N=2,000
    python benchmarks/bench_sparse_coding.py --learn         # dictionary learning too

The machine may be shared: both sides run in one process, interleaved, so load hits them alike;
read the ratios, not the seconds. One thread everywhere unless --threads.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from sklearn.decomposition import MiniBatchDictionaryLearning, sparse_encode

from genmodels.data.images import whitened_patches
from genmodels.inference.lasso import lasso, lasso_energy, lasso_kkt_violation


def _spams() -> Any:
    try:
        import spams  # type: ignore[import-not-found]
    except ImportError:
        return None
    return spams


def _timed(fn: Callable[[], np.ndarray]) -> tuple[float, np.ndarray]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def encode(n: int, k: int, a: float, repeats: int, threads: int) -> None:
    ds, _ = whitened_patches(8, 2 * n, seed=0)
    Y = ds.X[:n].contiguous()
    # a learned dictionary (scikit-learn's, a few passes): coherent atoms, as in practice
    mb = MiniBatchDictionaryLearning(k, alpha=a, batch_size=256, max_iter=2, random_state=0)
    C = torch.from_numpy(mb.fit(ds.X[n:].numpy()).components_.T.copy())
    C = C / C.norm(dim=0)
    Yn, Cn = Y.numpy(), C.numpy()
    spams = _spams()
    methods: dict[str, Callable[[], np.ndarray]] = {
        "genmodels lasso (cd)": lambda: lasso(Y, C, 1.0, a, n_threads=threads).codes.numpy(),
        "genmodels lasso (fista, tol 1e-6)": lambda: lasso(
            Y, C, 1.0, a, method="fista", tol=1e-6).codes.numpy(),
        "sklearn sparse_encode lasso_cd": lambda: sparse_encode(
            Yn, Cn.T, algorithm="lasso_cd", alpha=a, n_jobs=threads if threads > 1 else None),
    }
    if spams is not None:
        Xf, Df = np.asfortranarray(Yn.T), np.asfortranarray(Cn)
        methods["SPAMS lasso (LARS)"] = lambda: np.asarray(
            spams.lasso(Xf, D=Df, lambda1=a, mode=2, numThreads=threads).todense()).T
    lasso(Y[:10], C, 1.0, a)  # compile the Numba kernel (cached on disk afterwards)
    times: dict[str, list[float]] = {m: [] for m in methods}
    codes: dict[str, np.ndarray] = {}
    for _ in range(repeats):
        for m, fn in methods.items():
            dt, out = _timed(fn)
            times[m].append(dt)
            codes[m] = out
    energies = {m: float(lasso_energy(torch.from_numpy(np.ascontiguousarray(x)), Y, C, 1.0,
                                      a).mean()) for m, x in codes.items()}
    best = min(energies.values())
    ref = statistics.median(times["sklearn sparse_encode lasso_cd"])
    nnz = float((codes["genmodels lasso (cd)"] != 0).sum(1).mean())
    print(f"\nencode: N={n} whitened 8×8 patches, K={k} atoms, a={a} (mean {nnz:.1f} non-zeros), "
          f"{threads} thread(s), median of {repeats} interleaved repeats, float64\n")
    print("| method | time (s) | speed-up vs sklearn | energy excess | max KKT violation |")
    print("|---|---|---|---|---|")
    for m in methods:
        t = statistics.median(times[m])
        kkt = float(lasso_kkt_violation(torch.from_numpy(np.ascontiguousarray(codes[m])), Y, C,
                                        1.0, a).max())
        print(f"| {m} | {t:.3f} | {ref / t:.1f}× | {(energies[m] - best) / best:.1e} | "
              f"{kkt:.1e} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--learn", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--alpha", type=float, default=1.0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    encode(2000 if args.quick else 10_000, 256, args.alpha, args.repeats, args.threads)
    if args.learn:
        from bench_sparse_coding_learn import learn  # type: ignore[import-not-found]

        learn(args.quick, args.repeats)


if __name__ == "__main__":
    main()
