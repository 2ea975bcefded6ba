"""Exact inference on the ALARM network and loopy BP on an Ising grid.

* ALARM (37 variables, bnlearn's file shipped inside pgmpy): build the junction tree,
  calibrate it and read every single-variable marginal, with and without evidence on two
  leaves; genmodels' ``BayesianNetwork.query`` against pgmpy 1.1.2's ``VariableElimination``
  (one query per variable: pgmpy's fastest exact setting that finishes). pgmpy's own junction
  tree, ``BeliefPropagation(model).calibrate()``, did not finish on ALARM: it grew past 4 GB
  in 3 minutes on this machine, so it is not timed. Answers are checked equal to 1e-10
  before timing.
* Loopy BP on a side × side Ising grid (random couplings J ~ N(0, 0.3²), fields
  h ~ N(0, 0.3²)), flooding schedule, damping 0.5, to 1e-8: seconds per sweep and in total.
  No peer has loopy BP (pgmpy has none), so there is no ratio.

Timed in ONE process, interleaved, medians of ``--repeats`` runs; ratio peer ÷ genmodels.

    python benchmarks/bench_graphs.py [--repeats 5] [--side 100] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Callable
from importlib.resources import files

import torch

from genmodels.inference.graphs import (
    BayesianNetwork,
    DiscreteFactor,
    FactorGraph,
    belief_propagation,
    read_bif,
)


def _median(fn: Callable[[], object], repeats: int) -> float:
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def alarm(repeats: int) -> None:
    import pgmpy
    from pgmpy.inference import VariableElimination
    from pgmpy.utils import get_example_model

    bn: BayesianNetwork = read_bif(str(files(pgmpy) / "utils/example_models/alarm.bif.gz"))
    model = get_example_model("alarm")
    for cpd in model.get_cpds():
        cpd.normalize()
    for evidence in ({}, {"HRBP": "LOW", "CVP": "HIGH"}):
        free = [v for v in bn.variables if v not in evidence]

        def ours(evidence: dict = evidence) -> dict:  # type: ignore[type-arg]
            return bn.query(evidence).marginals()

        def ve(evidence: dict = evidence, free: list = free) -> dict:  # type: ignore[type-arg]
            inf = VariableElimination(model)
            return {v: inf.query([v], evidence=evidence or None, show_progress=False)
                    for v in free}

        mine, theirs = ours(), ve()
        err = max(float((mine[v][[bn.states[v].index(s) for s in theirs[v].state_names[v]]]
                         - torch.as_tensor(theirs[v].values)).abs().max()) for v in free)
        assert err < 1e-10, err
        times: dict[str, list[float]] = {"genmodels": [], "ve": []}
        for _ in range(repeats):
            for k, fn in (("genmodels", ours), ("ve", ve)):
                t = time.perf_counter()
                fn()
                times[k].append(time.perf_counter() - t)
        med = {k: statistics.median(v) for k, v in times.items()}
        label = "no evidence" if not evidence else f"evidence {evidence}"
        print(f"ALARM, {label}: genmodels {med['genmodels']:.4f} s | pgmpy VE "
              f"{med['ve']:.3f} s ({med['ve'] / med['genmodels']:.0f}×) | max |Δp| {err:.1e}")


def ising(side: int, repeats: int) -> None:
    gen = torch.Generator().manual_seed(0)
    name = [[f"s{i}_{j}" for j in range(side)] for i in range(side)]
    fs = []
    for i in range(side):
        for j in range(side):
            h = 0.3 * torch.randn((), generator=gen)
            fs.append(DiscreteFactor((name[i][j],), log_values=torch.stack([-h, h])))
            for di, dj in ((0, 1), (1, 0)):
                if i + di < side and j + dj < side:
                    J = 0.3 * torch.randn((), generator=gen)
                    fs.append(DiscreteFactor((name[i][j], name[i + di][j + dj]),
                                             log_values=torch.stack([torch.stack([J, -J]),
                                                                     torch.stack([-J, J])])))
    g = FactorGraph(fs)
    res = belief_propagation(g, damping=0.5, tol=1e-8, max_iter=2000)
    total = _median(lambda: belief_propagation(g, damping=0.5, tol=1e-8, max_iter=2000),
                    repeats)
    print(f"loopy BP, {side}×{side} Ising grid ({len(g.variables)} variables, "
          f"{len(g.factors)} factors): {res.iterations} sweeps, converged={res.converged}, "
          f"{total:.2f} s in total, {1e3 * total / res.iterations:.1f} ms per sweep, "
          f"Bethe log Z {float(res.log_partition):.4f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--side", type=int, default=100)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--skip-ising", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore", FutureWarning)
    alarm(args.repeats)
    if not args.skip_ising:
        ising(args.side, max(1, args.repeats // 2))


if __name__ == "__main__":
    main()
