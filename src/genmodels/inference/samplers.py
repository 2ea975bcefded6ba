"""Samplers for diffusion, score and energy models (book §8.3, Eq. 8.44).

* ``ancestral_step`` / ``ancestral_sample``: the generative chain of Eq. 8.33 run from
  x_L ~ N(0, I), each step x_{l−1} ~ N(μ(x_l, l), σ_l² I) with μ the posterior mean of
  Eq. 8.38 at m̂(x_l, l) (Ho et al. 2020, Algorithm 2).
* ``ddim_step`` / ``ddim_sample``: DDIM (Song, Meng & Ermon 2021, Eq. 12) on any subsequence of
  levels, η ∈ [0, 1] from deterministic (η = 0) to ancestral-like (η = 1).
* ``langevin``: Langevin dynamics, Eq. 8.44, for any force (score) function;
  ``score_from_energy`` turns an energy into its force by autograd.
* ``annealed_langevin``: Song & Ermon 2019, Algorithm 1, over decreasing noise levels.

They are functions on tensors: a model supplies ``predict_x0(x, l)`` or a score function.
Every chain is vectorised over the N samples; the loop is over steps only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import pairwise
from typing import Any

import torch
from torch import Tensor

from genmodels._validation import (
    as_tensor,
    check_finite,
    check_nonnegative_float,
    check_positive_int,
)
from genmodels.models.diffusion import GaussianSchedule, reverse_variances

__all__ = [
    "ancestral_sample",
    "ancestral_step",
    "annealed_langevin",
    "ddim_levels",
    "ddim_sample",
    "ddim_step",
    "langevin",
    "score_from_energy",
]

PredictX0 = Callable[[Tensor, int], Tensor]


def _check_level(l: int, L: int, name: str = "l", minimum: int = 1) -> int:
    if isinstance(l, bool) or (not isinstance(l, int) and not (
            isinstance(l, Tensor) and l.numel() == 1 and not l.is_floating_point())):
        raise ValueError(f"{name} must be an integer level, got {l!r}.")
    l = int(l)
    if not minimum <= l <= L:
        raise ValueError(f"{name} must lie in {minimum}..{L} (the schedule has L = {L} "
                         f"levels), got {l}.")
    return l


def _step_coefficients(schedule: GaussianSchedule, reverse_variance: str
                       ) -> tuple[list[float], list[float], list[float]]:
    """For every l = 1..L (index l): the posterior-mean coefficients of Eq. 8.38 for the step
    l → l−1, μ = c0 m̂ + cm x_l, and the reverse standard deviation σ_l; cached per schedule."""
    key = f"_step_coefficients_{reverse_variance}"
    cached = getattr(schedule, key, None)
    if cached is None:
        L = schedule.L
        m = torch.arange(1, L + 1)
        l = m - 1
        ratio = schedule._snr_ratio(m, l)
        c0 = schedule.alpha[l] * (1 - ratio)
        cm = schedule.alpha[m] / schedule.alpha[l] * schedule.sigma[l] ** 2 / schedule.sigma[m] ** 2
        sd = reverse_variances(schedule, reverse_variance).sqrt()
        nan = [float("nan")]
        cached = (nan + c0.tolist(), nan + cm.tolist(), nan + sd.tolist())
        setattr(schedule, key, cached)
    return cached


def ancestral_step(x0_hat: Tensor, x: Tensor, l: int, schedule: GaussianSchedule,
                   noise: Tensor | None = None, *, reverse_variance: str = "posterior",
                   generator: torch.Generator | None = None) -> Tensor:
    """One step x_l → x_{l−1} of the generative chain (Eq. 8.33 with Eq. 8.38's mean):

        μ = α_{l−1}(1 − ρ_l²/ρ_{l−1}²) m̂ + (α_l/α_{l−1}) s_{l−1}²/s_l² x_l,
        x_{l−1} = μ + σ_l z   (no noise at l = 1: the last step returns the mean).

    x0_hat: m̂(x_l, l) (N, *event); noise: z (default drawn from ``generator``).
    """
    l = _check_level(l, schedule.L)
    c0, cm, sd = _step_coefficients(schedule, reverse_variance)
    mean = c0[l] * x0_hat + cm[l] * x
    if l == 1:
        return mean
    if noise is None:
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    return mean + sd[l] * noise


def ancestral_sample(predict_x0: PredictX0, schedule: GaussianSchedule, xL: Tensor, *,
                     reverse_variance: str = "posterior", generator: torch.Generator | None = None,
                     return_chain: bool = False, chain_every: int | None = None) -> Any:
    """Run the chain from x_L (N, *event) through every level to x_0 (DDPM sampling).

    predict_x0: ``(x_l, l) -> m̂(x_l, l)`` with l an int level. With ``return_chain``,
    returns (x_0, levels, states): the states (S, N, *event) at levels every ``chain_every``
    steps (default L/10) and the last.
    """
    check_finite(xL, "xL")  # the chain's start; the steps themselves are not re-checked
    x = xL
    L = schedule.L
    every = chain_every or max(L // 10, 1)
    levels: list[int] = []
    states: list[Tensor] = []
    for l in range(L, 0, -1):
        if return_chain and (l % every == 0 or l == L):
            levels.append(l)
            states.append(x)
        x = ancestral_step(predict_x0(x, l), x, l, schedule,
                           reverse_variance=reverse_variance, generator=generator)
    if return_chain:
        return x, [*levels, 0], torch.stack([*states, x])
    return x


def ddim_step(x0_hat: Tensor, x: Tensor, l: int, l_prev: int, schedule: GaussianSchedule,
              eta: float = 0.0, noise: Tensor | None = None, *,
              eps_hat: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
    """One DDIM step x_l → x_{l_prev}, l_prev < l (Song et al. 2021, Eq. 12):

        ε̂ = (x_l − α_l m̂)/s_l,   c² = η² s_{l'}²(1 − ρ_l²/ρ_{l'}²)  (η² × the posterior
        variance of Eq. 8.38),   x_{l'} = α_{l'} m̂ + √(s_{l'}² − c²) ε̂ + c z.

    eps_hat: the noise estimate if the denoiser gives it directly (else derived from m̂).
    """
    l = _check_level(l, schedule.L)
    lp = _check_level(l_prev, schedule.L, "l_prev", minimum=0)
    if lp >= l:
        raise ValueError(f"l_prev must be below l, got l={l}, l_prev={lp}.")
    eta = check_nonnegative_float(eta, "eta")
    if eta > 1:
        raise ValueError(f"eta must lie in [0, 1], got {eta}.")
    a, s = schedule.alpha[l].item(), schedule.sigma[l].item()
    ap, sp = schedule.alpha[lp].item(), schedule.sigma[lp].item()
    if eps_hat is None:
        eps_hat = (x - a * x0_hat) / s
    ratio = (a * sp / (s * ap)) ** 2
    c2 = eta**2 * sp**2 * (1 - ratio)
    out = ap * x0_hat + max(sp**2 - c2, 0.0) ** 0.5 * eps_hat
    if eta > 0:
        if noise is None:
            noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        out = out + c2**0.5 * noise
    return out


def ddim_levels(L: int, steps: int) -> list[int]:
    """``steps`` levels from L down, evenly spaced, then 0: round(linspace(L, 0, steps + 1))."""
    L = check_positive_int(L, "L")
    steps = check_positive_int(steps, "steps")
    if steps > L:
        raise ValueError(f"steps must be at most L = {L}, got {steps}.")
    lv = torch.linspace(L, 0, steps + 1, dtype=torch.float64).round().long().tolist()
    return [int(v) for v in lv]


def ddim_sample(predict_x0: PredictX0, schedule: GaussianSchedule, xL: Tensor, *,
                steps: int, eta: float = 0.0, generator: torch.Generator | None = None,
                return_chain: bool = False) -> Any:
    """DDIM sampling over ``ddim_levels(L, steps)`` from x_L (N, *event). With
    ``return_chain``: (x_0, levels, states (steps + 1, N, *event))."""
    lv = ddim_levels(schedule.L, steps)
    check_finite(xL, "xL")
    x = xL
    states = [x]
    for l, lp in pairwise(lv):
        x = ddim_step(predict_x0(x, l), x, l, lp, schedule, eta,
                      generator=generator)
        states.append(x)
    if return_chain:
        return x, lv, torch.stack(states)
    return x


# ------------------------------------------------------------------------------- Langevin
def score_from_energy(energy: Callable[[Tensor], Tensor]) -> Callable[[Tensor], Tensor]:
    """The force f(x) = −∂E/∂x (N, D) of an energy ``energy(x) -> (N,)``, by autograd."""

    def force(x: Tensor) -> Tensor:
        with torch.enable_grad():
            xr = x.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(energy(xr).sum(), xr)
        return -g

    return force


def langevin(score: Callable[[Tensor], Tensor], x: Tensor, step_size: float, n_steps: int, *,
             generator: torch.Generator | None = None, return_chain: bool = False) -> Any:
    """Langevin dynamics, Eq. 8.44: X_{i+1} = X_i + ε f(X_i) + √(2ε) Z_i, f = −∂E/∂x.

    score: the force f(x) (N, D) → (N, D) (e.g. ``score_from_energy(E)``); x: the N chains'
    starting points; samples approximately from p ∝ e^{−E} (bias O(ε), no Metropolis step).
    With ``return_chain`` also the states (n_steps + 1, N, D).
    """
    eps = check_nonnegative_float(step_size, "step_size", strictly=True)
    n_steps = check_positive_int(n_steps, "n_steps")
    x = as_tensor(x, name="x (the chains' starting points)", detach=False)
    states = [x] if return_chain else []
    noise_sd = (2 * eps) ** 0.5
    for _ in range(n_steps):
        z = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        x = x + eps * score(x) + noise_sd * z
        if return_chain:
            states.append(x)
    if return_chain:
        return x, torch.stack(states)
    return x


def annealed_langevin(score: Callable[[Tensor, float], Tensor], x: Tensor,
                      sigmas: Sequence[float] | Tensor, step_size: float, n_steps_each: int, *,
                      generator: torch.Generator | None = None) -> Tensor:
    """Annealed Langevin dynamics (Song & Ermon 2019, Algorithm 1).

    score: ``(x, σ) -> ∇ log p_σ(x)``, the force of the data convolved with N(0, σ² I);
    sigmas: noise levels, strictly decreasing; at level i run ``n_steps_each`` steps of
    Eq. 8.44 with ε_i = step_size · σ_i²/σ_min².
    """
    s = as_tensor(sigmas, name="sigmas", dtype=torch.float64, detach=False)
    if s.dim() != 1 or s.numel() == 0 or bool((s <= 0).any()):
        raise ValueError("sigmas must be a non-empty 1-D sequence of positive noise levels.")
    if bool((s[1:] >= s[:-1]).any()):
        raise ValueError("sigmas must strictly decrease (annealing from coarse to fine).")
    check_nonnegative_float(step_size, "step_size", strictly=True)
    check_positive_int(n_steps_each, "n_steps_each")
    x = as_tensor(x, name="x (the chains' starting points)", detach=False)
    smin = float(s[-1])
    for sig in s.tolist():
        eps_i = step_size * (sig / smin) ** 2  # the ratio first: σ of 1e±300 stay finite

        def force(y: Tensor, sig: float = sig) -> Tensor:
            return score(y, sig)

        x = langevin(force, x, eps_i, n_steps_each, generator=generator)
    return x

