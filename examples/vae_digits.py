"""Variational autoencoders on binarised digits (book §8.2): Gaussian latents (pathwise
gradients) against categorical latents (Gumbel-softmax and score function), scored by the
held-out importance-weighted log-likelihood, next to a mixture of Bernoullis as a reference.

    python examples/vae_digits.py                 # about a minute on a laptop CPU
    python examples/vae_digits.py --tiny          # a few seconds (smoke run)

Prints a markdown table: held-out ELBO and IW log-likelihood (nats per digit, k importance
samples) for each recognition model.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import torch

from genmodels.data import load_dataset
from genmodels.learning.trainer import Trainer
from genmodels.models.vae import VAE


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tiny", action="store_true", help="2 epochs, k = 10 (smoke run)")
    ap.add_argument("--epochs", type=int, default=60)
    args = ap.parse_args(argv)
    epochs, k = (2, 10) if args.tiny else (args.epochs, 500)

    X = (load_dataset("digits").X >= 8).to(torch.float32)  # threshold at 8 of 16 grey levels
    perm = torch.randperm(X.shape[0], generator=torch.Generator().manual_seed(0))
    train, test = X[perm[:1500]], X[perm[1500:]]
    variants = {
        "Gaussian, diagonal (pathwise)": dict(recognition="diagonal", latent_dim=8),
        "Gaussian, full Cholesky (pathwise)": dict(recognition="full", latent_dim=8),
        "categorical 8×10, Gumbel-softmax": dict(recognition="gumbel", latent_dim=8,
                                                 n_categories=10),
        "categorical 8×10, score function": dict(recognition="score", latent_dim=8,
                                                 n_categories=10, n_samples=4),
    }
    print(f"\nVAEs on binarised digits: {train.shape[0]} train / {test.shape[0]} test, "
          f"{epochs} epochs, hidden 64\n")
    print(f"| recognition | test ELBO | test IW log-lik (k={k}) |")
    print("|---|---:|---:|")
    for name, kw in variants.items():
        model = VAE(64, hidden=[64], likelihood="bernoulli", seed=0, **kw)
        Trainer(model, epochs=epochs, batch_size=64, lr=3e-3, seed=0,
                progress=not args.tiny).fit(train)
        g = torch.Generator().manual_seed(1)
        with torch.no_grad():
            elbo = float(model.elbo(test, 10, g).elbo.mean())
            iw = float(model.iwae_bound(test, k, g).mean())
        print(f"| {name} | {elbo:.2f} | {iw:.2f} |")


if __name__ == "__main__":
    main()
