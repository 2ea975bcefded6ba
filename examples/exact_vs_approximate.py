"""Exact and approximate inference on the same model objects, side by side (book §3.5, §8.4).

1. The occasionally dishonest casino (an HMM): forward–backward is exact; belief propagation
   on the chain's factor graph is exact too (a tree); naive mean field drops the correlation
   between consecutive dice and is biased; Gibbs sampling is right within its error bars.
2. The ALARM network (37 variables, bnlearn's file inside pgmpy) with two observed
   variables: the junction tree is exact; loopy BP, mean field and Gibbs are not.
3. A linear-Gaussian state-space model: the RTS smoother vs the particle smoother.
4. A small Bernoulli RBM: log Z by enumeration vs AIS vs the mean-field ELBO; marginals by
   the junction tree vs loopy BP, mean field and Gibbs.

    python examples/exact_vs_approximate.py            # tables, and three PNGs in --out
    python examples/exact_vs_approximate.py --tiny     # a few seconds, no plots (smoke test)
"""

from __future__ import annotations

import argparse
from importlib.resources import files
from pathlib import Path
from typing import Any

import torch

from genmodels.inference.compare import (
    compare_hmm,
    compare_lgssm,
    compare_network,
    compare_rbm,
    plot_comparison,
)
from genmodels.inference.graphs import read_bif
from genmodels.inference.kalman import LGSSMParams, sample_lgssm
from genmodels.models.harmonium import Harmonium


def casino(T: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """log π, log P and the (T, 2) log-likelihoods of T rolls drawn from the casino."""
    g = torch.Generator().manual_seed(seed)
    trans = torch.tensor([[0.95, 0.05], [0.10, 0.90]], dtype=torch.float64)
    faces = torch.tensor([[1 / 6] * 6, [0.1] * 5 + [0.5]], dtype=torch.float64)
    state, rolls = 0, []
    for _ in range(T):
        rolls.append(int(torch.multinomial(faces[state], 1, generator=g)))
        state = int(torch.multinomial(trans[state], 1, generator=g))
    log_lik = faces.log().T[torch.tensor(rolls)]  # (T, 2)
    return torch.tensor([0.5, 0.5], dtype=torch.float64).log(), trans.log(), log_lik


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="small runs, no plots")
    ap.add_argument("--out", default="exact_vs_approximate", help="folder for the PNGs")
    args = ap.parse_args(argv)
    sweeps = 100 if args.tiny else 2000
    out: dict[str, Any] = {}

    hmm = compare_hmm(*casino(20 if args.tiny else 200, 0), gibbs_sweeps=sweeps)
    print(hmm.table(), "\n")
    out["hmm"] = {m.name: m.max_error for m in hmm.methods}

    try:
        import pgmpy
        bn = read_bif(str(files(pgmpy) / "utils" / "example_models" / "alarm.bif.gz"))
    except ModuleNotFoundError:  # pgmpy is a test-only peer: the network ships with it
        bn = None
        print("ALARM skipped: pgmpy (which ships the network file) is not installed\n")
    if bn is not None:
        net = compare_network(bn, {"HRBP": "LOW", "CVP": "HIGH"}, name="ALARM | HRBP, CVP",
                              damping=0.3, gibbs_sweeps=sweeps // 2)
        print(net.table(), "\n")
        out["network"] = {m.name: m.max_error for m in net.methods}

    P = LGSSMParams(torch.zeros(2), torch.eye(2), torch.tensor([[0.9, 0.1], [0.0, 0.8]]),
                    0.3 * torch.eye(2), torch.tensor([[1.0, 0.5]]), 0.5 * torch.eye(1))
    P = LGSSMParams(*(t.to(torch.float64) for t in P[:6]))
    _, y = sample_lgssm(P, 10 if args.tiny else 50, generator=torch.Generator().manual_seed(0))
    lg = compare_lgssm(P, y, num_particles=100 if args.tiny else 500,
                       num_runs=4 if args.tiny else 10)
    print(lg.table())
    out["lgssm"] = {m.name: m.max_error for m in lg.methods}

    rbm = Harmonium(("bernoulli", 4 if args.tiny else 8), ("bernoulli", 12), seed=0,
                    init_scale=1.0)
    g = torch.Generator().manual_seed(1)
    rbm.set_parameters(b_x=torch.randn(rbm.weight.shape[0], generator=g),
                       b_y=0.5 * torch.randn(12, generator=g))
    rb = compare_rbm(rbm, ais_chains=50 if args.tiny else 100,
                     ais_temperatures=200 if args.tiny else 5000, gibbs_sweeps=sweeps // 2)
    print("\n" + rb.table())
    out["rbm"] = {m.name: m.max_error for m in rb.methods}

    if not args.tiny:
        folder = Path(args.out)
        for name, comp in (("hmm", hmm), ("lgssm", lg), ("rbm", rb)) + (
                (("alarm", net),) if bn else ()):
            print("wrote", plot_comparison(comp, folder / f"{name}.png"))
    return out


if __name__ == "__main__":
    main()
