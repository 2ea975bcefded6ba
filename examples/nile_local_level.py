"""The Nile local-level model (Durbin & Koopman 2012, ch. 2): Kalman filter, RTS smoother,
EM, and maximum likelihood with an exact diffuse initial state, then a particle filter on the
same model for comparison.

    python examples/nile_local_level.py          # full run
    python examples/nile_local_level.py --tiny   # a few iterations (smoke test)
"""

from __future__ import annotations

import argparse
import warnings

import torch
from torch.distributions import Normal

from genmodels.data import load_dataset
from genmodels.inference.particle import particle_filter
from genmodels.models.lgssm import LinearGaussianSSM


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tiny", action="store_true", help="few iterations and particles")
    args = ap.parse_args(argv)
    y = load_dataset("nile").X.clone()  # (100, 1), annual flow 1871-1970

    model = LinearGaussianSSM(1, 1, diffuse=True)
    model.set_params(dynamics=[[1.0]], emission=[[1.0]], dynamics_covariance=[[1000.0]],
                     emission_covariance=[[10000.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        em = model.fit(y, max_iter=3 if args.tiny else 50, tol=0.0,
                       frozen=["dynamics", "emission", "dynamics_offset", "emission_offset"])
    print(f"after {em.n_iter} EM steps: σ²_η = {float(model.dynamics_covariance):.1f}, "
          f"σ²_ε = {float(model.emission_covariance):.1f}")
    ll = model.fit_gradient(y, max_iter=5 if args.tiny else 200)
    q, r = float(model.dynamics_covariance), float(model.emission_covariance)
    print(f"maximum likelihood: σ²_η = {q:.1f} (D&K 1469.1), σ²_ε = {r:.1f} (D&K 15099), "
          f"diffuse log-likelihood = {ll:.4f}")

    smoothed = model.smooth(y)
    print("smoothed level, first five years:", smoothed.means[:5, 0].round(decimals=1).tolist())

    # the same model by particles (a proper prior for x_1 centred on y_1, since particles need one)
    def transition(x: torch.Tensor, t: int) -> Normal:
        return Normal(x, q ** 0.5)

    def emission(x: torch.Tensor, t: int) -> Normal:
        return Normal(x, r ** 0.5)

    pf = particle_filter(y[:, 0], Normal(y[0, 0], 1e3), transition, emission,
                         200 if args.tiny else 5000, generator=torch.Generator().manual_seed(0))
    err = (pf.mean() - smoothed.filtered.means[:, 0]).abs().mean()
    print(f"particle filter: mean |PF − Kalman| filtered level = {float(err):.2f}")
    return {"sigma2_level": q, "sigma2_irregular": r, "log_likelihood": ll}


if __name__ == "__main__":
    main()
