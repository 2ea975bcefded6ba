"""The density table: every density model of genmodels scored on the same held-out images.

    python benchmarks/density_table.py                 # every row, both tables
    python benchmarks/density_table.py --only binary   # one table
    python benchmarks/density_table.py --json out.json

Two tables, one split (``genmodels.data.density_split``: scikit-learn's digits, a fixed
permutation, 1,437 training and 360 held-out images):

- ``binary``: pixels binarised as X/16 > 0.5; held-out **nats per image** (lower is better).
- ``grey``: the 17 integer grey levels; held-out **bits per dimension** (lower is better). A
  continuous density is scored on uniformly dequantised images, −E_u log₂ p(x + u) / 64, which
  bounds the discrete model's bits/dim from above.

Each row is a function ``(train, test) -> Row`` registered in ``ROWS[table]``; a model that
adds a row adds a function here. ``Row.kind`` says what the number is: ``exact`` (the model's
log-likelihood, computed exactly), ``estimate`` (a Monte Carlo estimate, with its standard
error), or ``bound`` (a bound on it, e.g. an ELBO, which is reported as its negative: an upper
bound on the nats or bits).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from genmodels.data import density_split


@dataclass(frozen=True)
class Row:
    """One line of the table: ``value`` in the table's unit (nats/image or bits/dim)."""

    model: str
    value: float
    kind: str  # "exact", "estimate" or "bound"
    stderr: float = 0.0
    note: str = ""


RowFn = Callable[[Tensor, Tensor], Row]
ROWS: dict[str, dict[str, RowFn]] = {"binary": {}, "grey": {}}


def row(table: str, name: str) -> Callable[[RowFn], RowFn]:
    """Register a row function under ``ROWS[table][name]``."""

    def register(fn: RowFn) -> RowFn:
        ROWS[table][name] = fn
        return fn

    return register


# --------------------------------------------------------------------------- binary rows
@row("binary", "independent pixels")
def independent_bernoulli(train: Tensor, test: Tensor) -> Row:
    """One Bernoulli per pixel, maximum likelihood with half a pseudo-count each way."""
    p = (train.sum(0) + 0.5) / (train.shape[0] + 1.0)
    ll = (test * p.log() + (1 - test) * (1 - p).log()).sum(1)
    return Row("independent pixels (Bernoulli)", float(-ll.mean()), "exact")


@row("binary", "Bernoulli mixture")
def bernoulli_mixture(train: Tensor, test: Tensor) -> Row:
    """A mixture of 32 products of Bernoullis, fitted by EM (best of 3 starts)."""
    from genmodels import BernoulliEmission, MixtureModel, fit_em

    k = 32
    model = MixtureModel(torch.full((k,), 1.0 / k, dtype=torch.float64),
                         BernoulliEmission(k, train.shape[1], pseudo_count=1e-2), init="random")
    fit_em(model, train, n_init=3, seed=0, max_iter=200, tol=1e-6, warn=False)
    ll = model.log_marginal(test)
    return Row(f"mixture of {k} Bernoulli products (EM)", float(-ll.mean()), "exact")


# RBMs (issue 10): CD-1 with momentum through the trainer; exact log Z by enumerating the
# hidden layer for H <= 20, AIS (100 runs x 10,000 temperatures, base rates of the training
# data) above. scikit-learn's BernoulliRBM with its defaults (PCD-1, lr 0.1) beside them, its
# fitted parameters scored exactly by the same harmonium.
RBM_EPOCHS = 100


def _rbm_row(train: Tensor, test: Tensor, hidden: int) -> Row:
    from genmodels import BernoulliRBM

    rbm = BernoulliRBM(n_components=hidden, n_iter=RBM_EPOCHS, method="cd", momentum=0.9,
                       learning_rate=0.01, random_state=0).fit(train.numpy())
    if hidden <= 20:
        ll, se = rbm.log_likelihood(test.numpy())
        return Row(f"RBM, H={hidden}, CD-1 ({RBM_EPOCHS} epochs)", -ll, "exact")
    ll, se = rbm.log_likelihood(test.numpy(), method="ais", num_chains=100,
                                num_temperatures=10_000, data=train.numpy())
    return Row(f"RBM, H={hidden}, CD-1 ({RBM_EPOCHS} epochs)", -ll, "estimate", se,
               note="AIS 100 x 10,000")


def _sklearn_rbm_row(train: Tensor, test: Tensor, hidden: int) -> Row:
    from sklearn.neural_network import BernoulliRBM as SkRBM

    from genmodels.inference.partition import exact_log_partition
    from genmodels.models.harmonium import BernoulliRBM as RBMModel

    sk = SkRBM(n_components=hidden, n_iter=RBM_EPOCHS, random_state=0).fit(train.numpy())
    model = RBMModel(train.shape[1], hidden).set_parameters(
        sk.components_, sk.intercept_hidden_, sk.intercept_visible_)
    with torch.no_grad():
        ll = -model.free_energy(test).mean() - exact_log_partition(model).log_z
    return Row(f"scikit-learn BernoulliRBM, H={hidden}, PCD-1 ({RBM_EPOCHS} epochs)",
               float(-ll), "exact")


for _h in (16, 20):
    row("binary", f"sklearn RBM H={_h}")(
        lambda train, test, h=_h: _sklearn_rbm_row(train, test, h))
for _h in (16, 20, 64, 256):
    row("binary", f"RBM H={_h}")(lambda train, test, h=_h: _rbm_row(train, test, h))


# ----------------------------------------------------------------------------- grey rows
LEVELS = 17  # digits' grey levels 0..16
DIMS = 64


@row("grey", "independent pixels")
def independent_categorical(train: Tensor, test: Tensor) -> Row:
    """One categorical over the 17 levels per pixel, with half a pseudo-count per level."""
    counts = torch.nn.functional.one_hot(train.long(), LEVELS).sum(0).to(torch.float64) + 0.5
    logp = (counts / counts.sum(-1, keepdim=True)).log()  # (64, 17)
    ll = logp.gather(1, test.long().T).T.sum(1)  # (N,)
    return Row("independent pixels (categorical)", float(-ll.mean() / (DIMS * math.log(2))),
               "exact")


@row("grey", "Gaussian mixture")
def gaussian_mixture(train: Tensor, test: Tensor) -> Row:
    """A 10-component full-covariance Gaussian mixture on the dequantised images."""
    from genmodels import GaussianMixture

    g = torch.Generator().manual_seed(0)
    tr = train + torch.rand(train.shape, generator=g, dtype=train.dtype)
    te = test + torch.rand(test.shape, generator=g, dtype=test.dtype)
    gm = GaussianMixture(10, covariance_type="full", reg_covar=1e-2, random_state=0).fit(tr)
    ll = torch.as_tensor(gm.score_samples(te))
    return Row("Gaussian mixture, K=10, full (EM), dequantised",
               float(-ll.mean() / (DIMS * math.log(2))), "bound",
               note="one dequantisation draw; the bound is on the discrete model")


def run(tables: list[str]) -> dict[str, list[dict[str, object]]]:
    out: dict[str, list[dict[str, object]]] = {}
    for table in tables:
        train, test = density_split(table)
        unit = "nats/image" if table == "binary" else "bits/dim"
        print(f"== {table} digits, held-out {unit} (lower is better)")
        out[table] = []
        for name, fn in ROWS[table].items():
            t0 = time.perf_counter()
            r = fn(train, test)
            secs = time.perf_counter() - t0
            err = f" ± {r.stderr:.2f}" if r.stderr else ""
            print(f"  {r.model:<55} {r.value:9.3f}{err}  [{r.kind}] ({secs:.1f} s) {r.note}")
            out[table].append({"name": name, **asdict(r), "seconds": secs})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=sorted(ROWS), action="append",
                        help="run one table (repeatable); default all")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()
    torch.manual_seed(0)
    results = run(args.only or sorted(ROWS))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
