"""Noise-contrastive objectives, end to end (book §10.1; the NCE slides).

Part 1 — NCE learns the normaliser: a Gaussian energy E(y) = ½(y − μ)²/σ² with a free constant
c, fitted by NCE (noise N(0, 3²), ν noise samples per datum) to N(0.5, 1.5²) data. The fitted c
is the log-normaliser ½ log 2πσ²: the model normalises itself, although Z was never computed.

Part 2 — InfoNCE as a mutual-information bound: on correlated Gaussians with known
I(Y; Z) = −(d/2) log(1 − ρ²), the bound log K − L with the optimal critic rises with the batch
K towards I(Y; Z) and never above log K; a bilinear critic trained by InfoNCE comes close.

Part 3 — negative sampling: skip-gram embeddings on the Lee news corpus (gensim's test data),
trained by the compiled word2vec pass; nearest neighbours of a few words.

Run:  python examples/noise_contrastive.py [--tiny]
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence

import torch

from genmodels.data.text import load_corpus
from genmodels.estimators.word2vec import Word2Vec
from genmodels.learning.nce import NCE, GaussianNoise, InfoNCE
from genmodels.learning.trainer import Trainer
from genmodels.models.cpc import BilinearCritic
from genmodels.models.energy import GaussianEnergy


def nce_gaussian(n: int, epochs: int, nu: float) -> None:
    mu0, s0 = 0.5, 1.5
    g = torch.Generator().manual_seed(0)
    y = mu0 + s0 * torch.randn(n, 1, generator=g, dtype=torch.float64)
    noise = GaussianNoise(torch.zeros(1, dtype=torch.float64), torch.full((1, 1), 9.0))
    model = NCE(GaussianEnergy(1), noise, noise_ratio=nu)
    Trainer(model, epochs=epochs, batch_size=n, lr=0.05, progress=False,
            scheduler=lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, epochs)).fit(y)
    e = model.model
    sigma = float(e.precision().detach().reshape(())) ** -0.5
    print(f"NCE, ν = {nu:g}, N = {n}: μ = {float(e.loc.detach()):.4f} (true {mu0}), "
          f"σ = {sigma:.4f} (true {s0}), learned c = {float(model.log_normaliser.detach()):.4f}, "
          f"½ log 2πσ² = {0.5 * math.log(2 * math.pi * sigma**2):.4f}")


def info_nce(n: int, d: int = 2, rho: float = 0.5) -> None:
    g = torch.Generator().manual_seed(1)
    z = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = rho * z + math.sqrt(1 - rho**2) * torch.randn(n, d, generator=g, dtype=torch.float64)
    data = torch.cat([y, z], 1)
    a = 1 - rho**2

    def optimal(y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:  # log p(y|z)/p(y)
        return rho * (z @ y.T) / a - rho**2 * y.square().sum(1)[None] / (2 * a)

    mi = -d / 2 * math.log(a)
    print(f"\nInfoNCE on correlated Gaussians, I(Y; Z) = {mi:.4f} nats")
    print("| K | log K | bound, optimal critic |")
    print("|---:|---:|---:|")
    for K in (2, 8, 64, 256):
        e = InfoNCE(optimal, d).mutual_information(data, K)
        print(f"| {K} | {e.log_k:.3f} | {e.lower_bound:.4f} ± {e.standard_error:.4f} |")
    model = InfoNCE(BilinearCritic(d, d, dtype=torch.float64), d)
    Trainer(model, epochs=2, batch_size=128, lr=0.02, progress=False).fit(data)
    e = model.mutual_information(data, 128)
    print(f"bilinear critic trained by InfoNCE, K = 128: {e.lower_bound:.4f} ± "
          f"{e.standard_error:.4f}")


def word2vec(epochs: int) -> None:
    sentences = list(load_corpus("lee").sentences)
    model = Word2Vec(sentences, vector_size=50, min_count=3, epochs=epochs, workers=1)
    print(f"\nskip-gram on the Lee corpus: {len(model.wv)} words, {epochs} epochs")
    for word in ("government", "police", "Australia"):
        near = ", ".join(w for w, _ in model.wv.most_similar(word, topn=5))
        print(f"  {word}: {near}")


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tiny", action="store_true", help="a quick run (smaller data, fewer steps)")
    args = p.parse_args(argv)
    n, epochs = (5_000, 30) if args.tiny else (100_000, 150)
    for nu in (1.0, 4.0):
        nce_gaussian(n, epochs, nu)
    info_nce(4_096 if args.tiny else 2**15)
    word2vec(1 if args.tiny else 10)


if __name__ == "__main__":
    main()
