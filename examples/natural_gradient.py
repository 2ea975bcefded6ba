"""Natural gradient vs plain gradient descent (CATALOGUE J1, J2; slides S2:662-745).

Part 1 — logistic regression on the breast-cancer data (four features in their raw, badly
scaled units plus an intercept): natural-gradient descent with the model Fisher
Xᵀ diag(p(1−p)) X / N (= Fisher scoring = IRLS) against gradient descent with the largest safe
constant step 1/L.
Prints how many steps each needs to bring the gradient norm below a tolerance.

Part 2 — invariance to parameterisation: fit N(μ, σ²) by minimising the average negative
log-likelihood, once in natural parameters η = (μ/σ², −1/(2σ²)) and once in mean parameters
(E x, E x²). Natural-gradient paths agree up to O(lr) over a fixed horizon (O(lr²) per step);
plain gradient paths do not agree at all.

Run:  python examples/natural_gradient.py [--tiny]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
import torch.nn.functional as F_

from genmodels.data import load_dataset
from genmodels.families import Normal, bregman_kl
from genmodels.learning.natural_gradient import NaturalGradient, kl_hessian


def logistic_steps(X: torch.Tensor, y: torch.Tensor, natural: bool, max_steps: int,
                   tol: float) -> tuple[int, float]:
    """Steps to reach ‖∇L‖ < tol (or max_steps), and the final mean NLL."""
    w = torch.zeros(X.shape[1], requires_grad=True)

    def nll() -> torch.Tensor:
        z = X @ w
        return (F_.softplus(z) - y * z).mean()

    if natural:
        def fisher() -> torch.Tensor:
            p = torch.sigmoid(X @ w.detach())
            return (X.T * (p * (1 - p))) @ X / X.shape[0]

        opt: torch.optim.Optimizer = NaturalGradient([w], lr=1.0, damping=1e-10, fisher=fisher)
    else:
        lip = float(torch.linalg.eigvalsh(X.T @ X / X.shape[0])[-1]) / 4
        opt = torch.optim.SGD([w], lr=1.0 / lip)
    for step in range(max_steps):
        opt.zero_grad()
        loss = nll()
        loss.backward()
        assert w.grad is not None
        if float(w.grad.norm()) < tol:
            return step, float(loss.detach())
        opt.step()
    return max_steps, float(nll().detach())


def invariance(lr: float, horizon: float = 1.0) -> tuple[float, float]:
    """Largest distance √(2 KL) between the natural- and mean-parameter paths, for natural
    gradient and for plain gradient descent."""
    t_bar = torch.tensor([1.0, 3.0])  # data: mean 1, variance 2

    def mean_to_natural(m: torch.Tensor) -> torch.Tensor:
        var = m[1] - m[0] ** 2
        return torch.stack([m[0] / var, -0.5 / var])

    def identity(e: torch.Tensor) -> torch.Tensor:
        return e

    def path(to_nat: Callable[[torch.Tensor], torch.Tensor], theta0: torch.Tensor,
             natural: bool) -> list[torch.Tensor]:
        theta = theta0.clone().requires_grad_(True)
        if natural:
            def fisher() -> torch.Tensor:
                return kl_hessian(lambda a, b: bregman_kl(Normal, to_nat(a), to_nat(b)),
                                  theta.detach())

            opt: torch.optim.Optimizer = NaturalGradient([theta], lr=lr, damping=0.0,
                                                         fisher=fisher)
        else:
            opt = torch.optim.SGD([theta], lr=lr)
        out = []
        for _ in range(round(horizon / lr)):
            opt.zero_grad()
            eta = to_nat(theta)
            (Normal.log_partition(eta) - eta @ t_bar).backward()
            opt.step()
            out.append(to_nat(theta.detach()).clone())
        return out

    result = []
    for natural in (True, False):
        a = path(identity, torch.tensor([0.0, -0.5]), natural)
        b = path(mean_to_natural, torch.tensor([0.0, 1.0]), natural)
        result.append(max(float(torch.sqrt(2 * bregman_kl(Normal, x, z).clamp_min(0)))
                          for x, z in zip(a, b)))
    return result[0], result[1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="a seconds-long smoke run")
    args = parser.parse_args(argv)
    torch.set_default_dtype(torch.float64)

    data = load_dataset("breast_cancer")
    assert data.y is not None
    X, y = data.X, data.y.to(torch.float64)
    # The first four features (radius, texture, perimeter, area: scales from 10 to 1000) keep
    # the classes overlapping, so a finite maximum-likelihood estimate exists (all 30 features
    # separate the data and the likelihood has no maximiser).
    X = X[:, :4]
    if args.tiny:
        X, y = X[:100], y[:100]
    X = torch.cat([torch.ones(X.shape[0], 1), X], 1)
    tol, cap = (1e-4, 200) if args.tiny else (1e-6, 50_000)
    print(f"Logistic regression, {X.shape[0]} samples × {X.shape[1]} features (raw units), "
          f"stop at ‖∇L‖ < {tol:g}")
    print("| method | steps | final mean NLL |")
    print("|---|---|---|")
    for name, natural in (("natural gradient (Fisher scoring)", True),
                          ("gradient descent, step 1/L", False)):
        steps, loss = logistic_steps(X, y, natural, cap, tol)
        shown = f"{steps}" if steps < cap else f">{cap} (stopped)"
        print(f"| {name} | {shown} | {loss:.6f} |")

    print("\nInvariance: largest √(2 KL) between the natural- and mean-parameter paths of "
          "N(μ, σ²), horizon steps·lr = 1")
    print("| lr | natural gradient | gradient descent |")
    print("|---|---|---|")
    for lr in ((0.1,) if args.tiny else (0.1, 0.05, 0.025)):
        ng, gd = invariance(lr)
        print(f"| {lr:g} | {ng:.2e} | {gd:.2e} |")


if __name__ == "__main__":
    main()
