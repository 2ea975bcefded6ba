"""Tweedie's formula and denoising score matching (book §8.3, Eqs 8.45–8.47).

For y = α x + n, n ~ N(0, Σ), the force (score) of the noisy marginal is the posterior
expectation of the conditional force (Eq. 8.45), which for Gaussian noise is Tweedie's formula
(Eq. 8.46):

    ∇_y log p(y) = Σ⁻¹ (α E[X | y] − y).

The posterior mean is the minimum-mean-squared-error estimator, so a denoiser trained by
regression gives the force; equivalently the force can be fitted directly by denoising score
matching (Vincent 2011): minimise E‖s(y) + (y − α x)/σ²‖² — whose minimiser over functions is
the exact score of the noisy marginal. ``NoiseConditionalScoreModel`` does this at many noise
levels and samples by annealed Langevin dynamics (Song & Ermon 2019).

Shapes: x, y (N, D); a noise variance is a scalar, a (D,) diagonal or a (D, D) matrix.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from genmodels._validation import check_finite, check_positive_int

__all__ = [
    "NoiseConditionalScoreModel",
    "dsm_loss",
    "energy_distance",
    "energy_test",
    "tweedie_mean",
    "tweedie_score",
]


def _solve_noise(noise_var: Tensor | float, r: Tensor) -> Tensor:
    """Σ⁻¹ r for r (N, D): Σ a scalar, a (D,) diagonal or a (D, D) SPD matrix (Cholesky)."""
    S = torch.as_tensor(noise_var, dtype=r.dtype, device=r.device)
    if S.dim() <= 1:
        if bool((S <= 0).any()):
            raise ValueError("noise_var must be positive.")
        return r / S
    if S.shape != (r.shape[-1], r.shape[-1]):
        raise ValueError(f"a matrix noise_var must be (D, D) = {(r.shape[-1],) * 2}, got "
                         f"{tuple(S.shape)}.")
    chol, info = torch.linalg.cholesky_ex(S)
    if int(info):
        raise ValueError("noise_var must be symmetric positive definite.")
    return torch.cholesky_solve(r.unsqueeze(-1), chol).squeeze(-1)


def _mul_noise(noise_var: Tensor | float, r: Tensor) -> Tensor:
    S = torch.as_tensor(noise_var, dtype=r.dtype, device=r.device)
    return r * S if S.dim() <= 1 else r @ S.T


def tweedie_score(posterior_mean: Tensor, y: Tensor, alpha: float | Tensor,
                  noise_var: float | Tensor) -> Tensor:
    """Eq. 8.46: ∇_y log p(y) = Σ⁻¹(α E[X|y] − y) for y = αX + N(0, Σ). (N, D)."""
    return _solve_noise(noise_var, alpha * posterior_mean - y)


def tweedie_mean(score: Tensor, y: Tensor, alpha: float | Tensor,
                 noise_var: float | Tensor) -> Tensor:
    """Tweedie's formula solved for the posterior mean: E[X|y] = (y + Σ ∇ log p(y))/α."""
    return (y + _mul_noise(noise_var, score)) / alpha


def dsm_loss(score: Callable[[Tensor, Tensor], Tensor], x: Tensor,
             sigmas: float | Sequence[float] | Tensor, *, weight_power: float = 2.0,
             levels: Tensor | None = None, eps: Tensor | None = None,
             generator: torch.Generator | None = None) -> Tensor:
    """Per-datum denoising-score-matching loss (N,) (Vincent 2011; Song & Ermon 2019 Eq. 5).

    Each datum gets a noise level σ (uniform over ``sigmas``, or ``levels`` indices) and
    y = x + σ ε; the loss is ½ σ^p ‖s(y, σ) + ε/σ‖², p = ``weight_power`` (p = 2 makes the
    levels' terms comparable, Song & Ermon's λ(σ) = σ²). Its minimiser over functions is the
    force of the noisy marginal, ∇ log p_σ(y) (Eq. 8.45).

    score: ``(y (N, D), σ (N,)) -> (N, D)``.
    """
    sig = torch.as_tensor(sigmas, dtype=x.dtype, device=x.device).reshape(-1)
    if sig.numel() == 0 or bool((sig <= 0).any()):
        raise ValueError("sigmas must hold positive noise levels.")
    check_finite(x, "x")
    n = x.shape[0]
    if levels is None:
        levels = torch.randint(0, sig.numel(), (n,), generator=generator, device=x.device)
    s = sig[levels]  # (N,)
    if eps is None:
        eps = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    sb = s.reshape(n, *([1] * (x.dim() - 1)))
    y = x + sb * eps
    err = (score(y, s) + eps / sb) ** 2
    return 0.5 * s**weight_power * err.reshape(n, -1).sum(1)


class NoiseConditionalScoreModel(nn.Module):
    """A score network s(y, σ) trained by denoising score matching at the noise levels
    ``sigmas`` (strictly decreasing) and sampled by annealed Langevin dynamics (NCSN, Song &
    Ermon 2019).

    net: ``(y (N, D), σ (N,)) -> (N, D)``; the conventional scaling s = net(y, σ)/σ is left to
        the network.
    """

    def __init__(self, net: nn.Module, sigmas: Sequence[float] | Tensor) -> None:
        super().__init__()
        s = torch.as_tensor(sigmas, dtype=torch.float64)
        if s.dim() != 1 or s.numel() == 0 or bool((s <= 0).any()) \
                or bool((s[1:] >= s[:-1]).any()):
            raise ValueError("sigmas must be a non-empty, strictly decreasing sequence of "
                             "positive noise levels.")
        self.net = net
        self.sigmas: Tensor
        self.register_buffer("sigmas", s)

    def forward(self, y: Tensor, sigma: Tensor) -> Tensor:
        return self.net(y, sigma)

    def loss(self, batch: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return dsm_loss(self.net, batch, self.sigmas.to(batch.dtype),
                        generator=generator).mean()

    @torch.no_grad()
    def sample(self, x_init: Tensor, *, step_size: float = 2e-5, n_steps_each: int = 100,
               generator: torch.Generator | None = None) -> Tensor:
        from genmodels.inference.samplers import annealed_langevin

        def score(y: Tensor, sigma: float) -> Tensor:
            return self.net(y, torch.full((y.shape[0],), sigma, dtype=y.dtype, device=y.device))

        return annealed_langevin(score, x_init, self.sigmas.tolist(), step_size, n_steps_each,
                                 generator=generator)


def energy_distance(x: Tensor, y: Tensor) -> Tensor:
    """The energy distance 2E‖X − Y‖ − E‖X − X′‖ − E‖Y − Y′‖ (Székely & Rizzo) between the
    samples x (N, D) and y (M, D): zero iff the distributions agree; the V-statistic form."""
    if x.dim() != 2 or y.dim() != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must be (N, D) and (M, D), got {tuple(x.shape)} and "
                         f"{tuple(y.shape)}.")
    check_finite(x, "x")
    check_finite(y, "y")
    return 2 * torch.cdist(x, y).mean() - torch.cdist(x, x).mean() - torch.cdist(y, y).mean()


def energy_test(x: Tensor, y: Tensor, *, n_permutations: int = 200,
                generator: torch.Generator | None = None) -> tuple[float, float]:
    """Permutation two-sample test on the energy distance: (statistic, p-value)."""
    n_permutations = check_positive_int(n_permutations, "n_permutations")
    check_finite(x, "x")
    check_finite(y, "y")
    z = torch.cat([x, y])
    d = torch.cdist(z, z)
    n, m = x.shape[0], y.shape[0]
    total = d.sum()
    # one indicator row per labelling (the observed one first); within-group sums are the
    # quadratic forms ι_aᵀ D ι_a, all permutations in one matrix product
    perms = torch.stack([torch.arange(n + m)] + [
        torch.randperm(n + m, generator=generator) for _ in range(n_permutations)])
    ind = (perms < n).to(d.dtype)  # (P+1, n+m): 1 where a position is labelled "x"
    s_aa = ((ind @ d) * ind).sum(1)
    s_ab = ((ind @ d) * (1 - ind)).sum(1)
    s_bb = total - s_aa - 2 * s_ab
    stats = 2 * s_ab / (n * m) - s_aa / n**2 - s_bb / m**2
    obs = stats[0]
    p = (int((stats[1:] >= obs).sum()) + 1) / (n_permutations + 1)
    return float(obs), p
