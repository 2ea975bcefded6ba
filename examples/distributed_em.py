"""EM for a Gaussian mixture across processes with torch.distributed.

Each process holds one shard of scikit-learn's digits; every EM iteration all-reduces the
E step's sufficient statistics (one collective), so all processes take the same M step and the
result equals single-process EM on all the data (genmodels.distributed).

    torchrun --standalone --nproc_per_node=2 examples/distributed_em.py --out result.pt
    python examples/distributed_em.py --out result.pt        # one process, the same answer
"""

from __future__ import annotations

import argparse

import torch

from genmodels.data import load_dataset
from genmodels.distributed import init_process_group, run_em_distributed, shard
from genmodels.models.covariance import GaussianEmission
from genmodels.models.mixture import MixtureModel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--components", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--out", default=None, help="rank 0 saves the fitted parameters here")
    args = parser.parse_args()

    rank, world_size = init_process_group("gloo")
    X = load_dataset("digits").X
    model = MixtureModel(torch.full((args.components,), 1.0 / args.components),
                         GaussianEmission(args.components, X.shape[1], "diag", reg_covar=1e-2))
    # the same start everywhere: rank 0 initialises from all the data, then broadcasts
    model.initialize(X, torch.Generator().manual_seed(0))
    result = run_em_distributed(model, [shard(X)], max_iter=args.iterations, tol=0.0,
                                warn=False)
    if rank == 0:
        print(f"{world_size} process(es): log-likelihood per datum by iteration "
              + ", ".join(f"{v:.4f}" for v in result.log_likelihood))
        if args.out:
            torch.save({"weights": model.weights, "means": model.emission.means,
                        "log_likelihood": result.log_likelihood}, args.out)
    if world_size > 1:
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
