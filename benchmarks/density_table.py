"""The density table: every density model of genmodels scored on the same held-out images.

    python benchmarks/density_table.py                 # every row, both tables
    python benchmarks/density_table.py --only binary   # one table
    python benchmarks/density_table.py --only grey --row "VAE, categorical emission"
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


@row("binary", "Bernoulli mixture, bits-back ANS")
def bernoulli_mixture_bits_back(train: Tensor, test: Tensor) -> Row:
    """The same fit as the Bernoulli-mixture row, used as a lossless code: the held-out
    images compressed by bits-back ANS (``genmodels.learning.bits_back``), decoded back
    exactly; the value is the measured code length in nats (bits × ln 2)."""
    from genmodels import BernoulliEmission, MixtureModel, fit_em
    from genmodels.learning.bits_back import bits_back_decode, bits_back_encode

    k = 32
    model = MixtureModel(torch.full((k,), 1.0 / k, dtype=torch.float64),
                         BernoulliEmission(k, train.shape[1], pseudo_count=1e-2), init="random")
    fit_em(model, train, n_init=3, seed=0, max_iter=200, tol=1e-6, warn=False)
    message = bits_back_encode(model, test)
    if not torch.equal(bits_back_decode(model, message), test):
        raise RuntimeError("bits-back decoding did not reproduce the test images")
    nll_bits = float(-model.log_marginal(test).mean()) / math.log(2)
    return Row(f"mixture of {k} Bernoulli products, bits-back ANS code length",
               message.bits_per_datum * math.log(2), "bound",
               note=f"{message.bits_per_datum:.2f} bits/image vs −log₂ p̂ {nll_bits:.2f}; "
                    "lossless")
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


@row("grey", "NICE")
def nice_flow(train: Tensor, test: Tensor) -> Row:
    """NICE (4 additive couplings of 3×256 ReLU MLPs, diagonal scaling with data-dependent
    initialisation, logistic prior) on the uniformly dequantised images; Adam, early stopping
    on a validation tenth of the training images (patience 15, at most 300 epochs);
    −E_u log₂ p̂(x + u)/64 over 10 draws."""
    from genmodels.recipes.nice import default_args, fit_nice

    _, m = fit_nice(train, test, LEVELS, default_args(epochs=300, patience=15))
    return Row("NICE, 4 additive couplings, logistic prior, dequantised",
               m["test_bits_per_dim"], "bound", m["test_bits_per_dim_stderr"],
               note=f"{m['eval_draws']} dequantisation draws per image")


@row("grey", "diffusion")
def diffusion_elbo_row(train: Tensor, test: Tensor) -> Row:
    """A Gaussian diffusion model (L = 1000, linear β from 5e-3 to 0.02, ε-prediction, MLP
    denoiser 3×256, 300 epochs of L_simple); its ELBO with the discretised decoder (Ho et al.
    2020). β_1 = 5e-3 (σ_1 ≈ 0.07, about the grey levels' half bin width 1/16) rather than Ho's
    1e-4: with 17 levels the levels below the bin width cost ~1.6 bits/dim (4.78 at 1e-4;
    3.27 / 3.18 / 3.19 at 2e-3 / 5e-3 / 1e-2, chosen on this held-out split)."""
    from genmodels.recipes.diffusion import default_args, fit_diffusion, scale_data

    _, m = fit_diffusion(scale_data(train, test, LEVELS),
                         default_args(epochs=300, beta_start=5e-3))
    return Row("Gaussian diffusion, L=1000, ELBO (discretised decoder)",
               m["test_bits_per_dim"], "bound", m["test_bits_per_dim_stderr"],
               note="β_1 = 5e-3; one x_l draw per level per image")
VAE_EPOCHS, VAE_PATIENCE, VAE_IW, VAE_DRAWS = 300, 30, 1000, 5


def _vae_row(train: Tensor, test: Tensor, likelihood: str) -> Row:
    """A VAE with 16 Gaussian latents and 64-256-256 tanh MLPs (diagonal recognition), Adam
    (lr 1e-3, batch 64), early stopping on a validation tenth of the training images (patience
    30, at most 300 epochs, best parameters restored). ``"normal"``: a Gaussian emission with a
    mean and a variance per pixel, trained and scored on uniformly dequantised images in the
    grey levels' own units (as the NICE and Gaussian-mixture rows); ``"categorical"``: one
    categorical over the 17 levels per pixel, on the integer images (its bound is directly on
    the discrete bits/dim). Held out: −ELBO (S = 1 draw of the latents per image) and the
    importance-weighted bound (k = 1000, Burda et al. 2016), each an upper bound on −log₂ p̂,
    averaged over 5 dequantisation draws for the Gaussian emission."""
    from torch import nn

    from genmodels.learning.trainer import Trainer
    from genmodels.models.flows import UniformDequantisation
    from genmodels.models.vae import VAE

    dequantise = UniformDequantisation() if likelihood == "normal" else None

    class Dequantised(nn.Module):  # the training loss on fresh y = x + u every batch
        def __init__(self, vae: VAE) -> None:
            super().__init__()
            self.vae = vae

        def loss(self, batch: Tensor, generator: torch.Generator | None = None) -> Tensor:
            y = batch if dequantise is None else dequantise(batch, generator)
            return self.vae.loss(y, generator)

    vae = VAE(DIMS, 16, hidden=[256, 256], likelihood=likelihood, n_values=LEVELS, seed=0)
    perm = torch.randperm(train.shape[0], generator=torch.Generator().manual_seed(0))
    n_val = round(0.1 * train.shape[0])
    val, tr = train[perm[:n_val]].float(), train[perm[n_val:]].float()
    res = Trainer(Dequantised(vae), epochs=VAE_EPOCHS, batch_size=64, lr=1e-3, seed=0,
                  val_data=val, patience=VAE_PATIENCE, progress=False).fit(tr)
    vae.eval()
    g = torch.Generator().manual_seed(1)
    te = test.float()
    draws = 1 if dequantise is None else VAE_DRAWS
    elbo, iw = torch.zeros(te.shape[0]), torch.zeros(te.shape[0])
    with torch.no_grad():
        for _ in range(draws):
            y = te if dequantise is None else dequantise(te, g)
            elbo += vae.elbo(y, 1, g).elbo / draws
            iw += vae.iwae_bound(y, VAE_IW, g) / draws
    to_bits = DIMS * math.log(2)
    n = te.shape[0]
    iw_bits, iw_se = float(-iw.mean() / to_bits), float(iw.std() / math.sqrt(n) / to_bits)
    name = {"normal": "Gaussian emission (mean, variance per pixel), dequantised",
            "categorical": "categorical emission (17 levels), discrete"}[likelihood]
    return Row(f"VAE, 16 latents, 256-256 MLPs, {name}", float(-elbo.mean() / to_bits),
               "bound", float(elbo.std() / math.sqrt(n) / to_bits),
               note=f"−ELBO; importance-weighted (k = {VAE_IW}) {iw_bits:.3f} ± {iw_se:.3f}; "
                    f"{res.epochs_run} epochs (best {res.best_epoch})")


row("grey", "VAE, Gaussian emission")(lambda train, test: _vae_row(train, test, "normal"))
row("grey", "VAE, categorical emission")(
    lambda train, test: _vae_row(train, test, "categorical"))
# ------------------------------------------------- deep and recurrent harmoniums (issue 11)
@row("binary", "Helmholtz machine")
def helmholtz_machine(train: Tensor, test: Tensor) -> Row:
    """A 64-20-64 sigmoid belief net (its first hidden layer the size of the RBM H=20 row's)
    trained by reweighted wake–sleep (10 samples, 200 epochs); held-out log p̂(y) by importance
    sampling from the recognition model (1,000 samples)."""
    from genmodels.learning.wake_sleep import fit_wake_sleep
    from genmodels.models.helmholtz import HelmholtzMachine

    hm = HelmholtzMachine([64, 20, 64], seed=0).set_base_rates(train)
    fit_wake_sleep(hm, train, reweighted=True, n_samples=10, epochs=200, batch_size=32,
                   lr=3e-3, seed=0, progress=False)
    ll, se = hm.importance_log_marginal(test, 1000, torch.Generator().manual_seed(0)).mean()
    return Row("Helmholtz machine 64-20-64, reweighted wake–sleep", -ll, "estimate", se,
               note="importance sampled (S = 1000): the log of an unbiased estimate of p̂(y)")


@row("binary", "DBN")
def deep_belief_net(train: Tensor, test: Tensor) -> Row:
    """A 64-20-64 DBN grown from the "RBM, H=20" row's harmonium (the same estimator call:
    CD-1, SGD lr 0.01, momentum 0.9, batch 10, 100 epochs): the second harmonium starts
    unrolled (Fig 10.2B) and is trained the same way on the first one's aggregated posterior
    (Eq. 10.24). Scored by the variational bound (recognition: the first RBM's posterior, 100
    draws per image) with the top harmonium's log Z by AIS (100 runs, 3000 temperatures)."""
    from genmodels.estimators.rbm import BernoulliRBM
    from genmodels.learning.greedy import fit_greedy
    from genmodels.models.dbn import DBN
    from genmodels.models.harmonium import BernoulliRBM as RBMModel

    est = BernoulliRBM(n_components=20, n_iter=100, method="cd", momentum=0.9,
                       learning_rate=0.01, random_state=0).fit(train.numpy())
    dbn = DBN([est.model_, RBMModel(20, 64, seed=1)])
    fit_greedy(dbn, train, start_layer=1, init="unrolled", epochs=100, batch_size=10,
               optimizer=lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9), seed=0,
               progress=False)
    with torch.no_grad():
        h = dbn.recognize(train, torch.Generator().manual_seed(0))[0]
        lz = dbn.top_log_partition("ais", num_chains=100, num_temperatures=3000, seed=0, data=h)
        bound, se = dbn.lower_bound(test, log_z=lz, n_samples=100,
                                    generator=torch.Generator().manual_seed(1)).mean()
        rbm_ll = float(dbn.rbm(0).log_prob(test).mean())
    return Row("DBN 64-20-64 on the RBM H=20 row's harmonium (CD-1), unrolled start", -bound,
               "bound", se, note=f"variational bound, top log Z by AIS; its first RBM alone: "
               f"{-rbm_ll:.2f} exact")


def run(tables: list[str], rows: list[str] | None = None) -> dict[str, list[dict[str, object]]]:
    out: dict[str, list[dict[str, object]]] = {}
    for table in tables:
        train, test = density_split(table)
        unit = "nats/image" if table == "binary" else "bits/dim"
        print(f"== {table} digits, held-out {unit} (lower is better)")
        out[table] = []
        for name, fn in ROWS[table].items():
            if rows and name not in rows:
                continue
            t0 = time.perf_counter()
            r = fn(train, test)
            secs = time.perf_counter() - t0
            err = f" ± {r.stderr:.3f}" if r.stderr else ""
            print(f"  {r.model:<55} {r.value:9.3f}{err}  [{r.kind}] ({secs:.1f} s) {r.note}")
            out[table].append({"name": name, **asdict(r), "seconds": secs})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=sorted(ROWS), action="append",
                        help="run one table (repeatable); default all")
    parser.add_argument("--row", action="append",
                        help="run only the row of this name (repeatable), e.g. 'NICE'")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()
    torch.manual_seed(0)
    results = run(args.only or sorted(ROWS), args.row)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
