"""Particle filter and smoother: sampling-based chain inference for any transition and
emission (book "Sampling-based approaches", Eqs 2.56–2.61).

The filter is represented by I weighted particles, p̂(x_t | y_{1:t}) ≈ Σ_i α_t^{(i)} δ(x_t −
x̂_t^{(i)}) (Eq. 2.56). The time update is the only sampled half-update: pick ancestors from
Categ(α_{t−1}) and propagate them through p̂(x_t | x_{t−1}) (Eqs 2.57–2.58); the measurement
update reweights by the emission (Eq. 2.59). The smoother reweights the same particles backwards
(forward-filtering backward-smoothing, Doucet, Godsill & Andrieu 2000; Eqs 2.60–2.61), O(I²T).

The model is given as callables returning ``torch.distributions.Distribution`` objects, so any
nonlinear, non-Gaussian model works:

* ``initial``: a Distribution over x_1 (event shape (K,) or scalar);
* ``transition(x_prev, t)``: the Distribution of x_t given particles x_prev (I, *event) — a batch
  of I distributions;
* ``emission(x, t)``: the Distribution of y_t given particles x (batch of I).

Everything is vectorised over particles. Randomness comes only from a ``torch.Generator``:
torch's distributions draw from the global generator, so each draw runs inside
``torch.random.fork_rng`` seeded from the given generator (the global state is left untouched).

Resampling schemes (Douc, Cappé & Moulines 2005) are small functions
``(log_weights (I,), n, generator) -> ancestors (n,)``: multinomial (the book's Eq. 2.57),
stratified and systematic. Adaptive resampling resamples only when the effective sample size
1 / Σ_i α_i² falls to ``ess_threshold · I`` or below (``ess_threshold=1`` resamples at every step,
as in the book).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import Tensor
from torch.distributions import Distribution

from genmodels._validation import (
    as_tensor,
    check_finite,
    check_nonnegative_float,
    check_positive_int,
    global_rng_from,
)
from genmodels.linalg import log_normalize

Resampler = Callable[[Tensor, int, torch.Generator | None], Tensor]


def _uniform(shape: tuple[int, ...], like: Tensor, generator: torch.Generator | None) -> Tensor:
    return torch.rand(shape, generator=generator, dtype=like.dtype, device=like.device)


def _check_resampling(log_weights: Any, n: Any) -> tuple[Tensor, int]:
    """log_weights as a 1-D floating tensor with a finite log-sum-exp (NaN and +inf refused,
    −inf is a zero weight) and n a positive integer, by the shared validation."""
    lw = as_tensor(log_weights, name="log_weights", allow_nan=True, detach=False)
    if lw.dim() != 1 or lw.shape[0] == 0:
        raise ValueError(f"log_weights must be a non-empty 1-D tensor (I,), got shape "
                         f"{tuple(lw.shape)}.")
    if bool(torch.isnan(lw).any()) or bool((lw == math.inf).any()):
        raise ValueError("log_weights contains NaN or +inf.")
    if not bool(torch.isfinite(torch.logsumexp(lw, 0))):
        raise ValueError("log_weights are all -inf (or overflow): no particle has weight.")
    return lw, check_positive_int(n, "n")


def _inverse_cdf(log_weights: Tensor, u: Tensor) -> Tensor:
    cdf = torch.cumsum(torch.softmax(log_weights, -1), -1)
    cdf[..., -1] = 1.0  # guard against rounding
    return torch.searchsorted(cdf, u.contiguous()).clamp_max(log_weights.shape[-1] - 1)


def multinomial_resample(log_weights: Tensor, n: int, generator: torch.Generator | None = None
                         ) -> Tensor:
    """n i.i.d. ancestors from Categ(α) (Eq. 2.57)."""
    log_weights, n = _check_resampling(log_weights, n)
    u = _uniform((n,), log_weights, generator)
    return _inverse_cdf(log_weights, u.sort().values)


def stratified_resample(log_weights: Tensor, n: int, generator: torch.Generator | None = None
                        ) -> Tensor:
    """One uniform per stratum [(i)/n, (i+1)/n): lower variance than multinomial."""
    log_weights, n = _check_resampling(log_weights, n)
    u = (torch.arange(n, dtype=log_weights.dtype, device=log_weights.device)
         + _uniform((n,), log_weights, generator)) / n
    return _inverse_cdf(log_weights, u)


def systematic_resample(log_weights: Tensor, n: int, generator: torch.Generator | None = None
                        ) -> Tensor:
    """One shared uniform offset for all strata."""
    log_weights, n = _check_resampling(log_weights, n)
    u = (torch.arange(n, dtype=log_weights.dtype, device=log_weights.device)
         + _uniform((1,), log_weights, generator)) / n
    return _inverse_cdf(log_weights, u)


RESAMPLERS: dict[str, Resampler] = {
    "multinomial": multinomial_resample,
    "stratified": stratified_resample,
    "systematic": systematic_resample,
}


class ParticleFiltered(NamedTuple):
    """The bootstrap particle filter's output.

    particles: x̂_t^{(i)}, (T, I, *event)
    log_weights: log α_t^{(i)}, normalised (Eq. 2.59), (T, I)
    ancestors: index at t−1 of each particle's parent, (T, I) (row 0: arange)
    log_normalizers: estimates of log p̂(y_t | y_{1:t−1}), (T,)
    log_marginal: estimate of log p̂(y_{1:T}) (its exp is unbiased), 0-d
    ess: effective sample size 1 / Σ α² after each measurement update, (T,)
    resampled: whether the time update into step t resampled, (T,) bool
    """

    particles: Tensor
    log_weights: Tensor
    ancestors: Tensor
    log_normalizers: Tensor
    log_marginal: Tensor
    ess: Tensor
    resampled: Tensor

    def mean(self) -> Tensor:
        """Filtered means Σ_i α_t^{(i)} x̂_t^{(i)}, (T, *event)."""
        return _weighted_mean(self.particles, self.log_weights)


def _weighted_mean(particles: Tensor, log_weights: Tensor) -> Tensor:
    w = log_weights.exp()
    return (w.reshape(*w.shape, *([1] * (particles.dim() - 2))) * particles).sum(1)


def _draw(dist: Distribution, generator: torch.Generator | None,
          sample_shape: tuple[int, ...] = ()) -> Tensor:
    with global_rng_from(generator):
        return dist.sample(sample_shape)


def particle_filter(
    y: Tensor,
    initial: Distribution,
    transition: Callable[[Tensor, int], Distribution],
    emission: Callable[[Tensor, int], Distribution],
    num_particles: int,
    *,
    resampling: str | Resampler = "systematic",
    ess_threshold: float = 1.0,
    generator: torch.Generator | None = None,
) -> ParticleFiltered:
    """The bootstrap particle filter (Eqs 2.56–2.59).

    y: (T, *obs_event); a step whose observation is all NaN is skipped (no reweighting).
    resampling: "multinomial", "stratified", "systematic" or a callable.
    ess_threshold: resample when ESS ≤ ess_threshold · I (1 = every step, as in the book).
    """
    if isinstance(resampling, str):
        if resampling not in RESAMPLERS:
            raise ValueError(f"resampling must be one of {tuple(RESAMPLERS)} or a callable, got "
                             f"{resampling!r}.")
        resample = RESAMPLERS[resampling]
    else:
        resample = resampling
    I = check_positive_int(num_particles, "num_particles")
    if check_nonnegative_float(ess_threshold, "ess_threshold") > 1.0:
        raise ValueError(f"ess_threshold must be in [0, 1], got {ess_threshold}.")
    y = as_tensor(y, name="y", allow_nan=True, detach=False)  # NaN marks a missing step
    if y.dim() < 1 or y.shape[0] == 0:
        raise ValueError(f"y: the observation sequence is empty (T = 0), shape "
                         f"{tuple(y.shape)}.")
    if bool(torch.isinf(y).any()):
        raise ValueError("y contains infinite values; use NaN for a missing step.")
    check_finite(torch.nan_to_num(y, nan=0.0), "y")  # magnitudes that overflow
    T = y.shape[0]
    log_I = math.log(I)

    def reweight(x: Tensor, t: int, log_prior_w: Tensor) -> tuple[Tensor, Tensor]:
        if bool(torch.isnan(y[t]).all()):
            return log_prior_w, torch.zeros((), dtype=log_prior_w.dtype)
        if bool(torch.isnan(y[t]).any()):
            raise ValueError(f"y[{t}] is partly NaN; the particle filter skips whole steps only.")
        try:
            log_lik = emission(x, t).log_prob(y[t])  # (I,): log p̂(y_t | x̂_t^{(j)})
        except (ValueError, RuntimeError) as e:  # torch.distributions' shape/support checks
            raise ValueError(f"emission(x, {t}).log_prob(y[{t}]) refused y[{t}] of shape "
                             f"{tuple(y[t].shape)} (y: {tuple(y.shape)}): {e}") from e
        if log_lik.shape != (I,):
            raise ValueError(f"emission(x, t).log_prob(y_t) must have shape ({I},), got "
                             f"{tuple(log_lik.shape)}.")
        log_w, log_norm = log_normalize(log_prior_w + log_lik)  # Eq. 2.59
        if not torch.isfinite(log_norm):
            raise ValueError(f"every particle has zero emission likelihood at step {t}; use more "
                             "particles or check the model.")
        return log_w, log_norm

    x = _draw(initial, generator, (I,))  # first time update: draws from p̂(x_1)
    uniform = torch.full((I,), -log_I, dtype=x.dtype if x.is_floating_point() else torch.float64,
                         device=x.device)
    log_w, log_norm = reweight(x, 0, uniform)
    parts, logws, ancs, norms = [x], [log_w], [torch.arange(I, device=x.device)], [log_norm]
    esses = [1.0 / log_w.exp().square().sum()]
    flags = [False]
    for t in range(1, T):
        if float(esses[-1]) <= ess_threshold * I + 1e-9:
            anc = resample(log_w, I, generator)  # Eq. 2.57: ancestors ~ Categ(α_{t−1})
            prior_w = uniform  # Eq. 2.58
            flags.append(True)
        else:
            anc = torch.arange(I, device=x.device)
            prior_w = log_w
            flags.append(False)
        x = _draw(transition(x[anc], t), generator)  # Eq. 2.57: x̂_t ~ p̂(x_t | x̂_{t−1})
        log_w, log_norm = reweight(x, t, prior_w)
        parts.append(x)
        logws.append(log_w)
        ancs.append(anc)
        norms.append(log_norm)
        esses.append(1.0 / log_w.exp().square().sum())
    log_norms = torch.stack([torch.as_tensor(n, dtype=uniform.dtype) for n in norms])
    return ParticleFiltered(
        torch.stack(parts), torch.stack(logws), torch.stack(ancs), log_norms, log_norms.sum(),
        torch.stack([torch.as_tensor(e) for e in esses]), torch.tensor(flags))


class ParticleSmoothed(NamedTuple):
    """Forward-filtering backward-smoothing weights over the filter's particles.

    log_weights: log β_t^{(i)} (Eq. 2.61), (T, I); β_T = α_T.
    filtered: the ParticleFiltered it reweights.
    """

    log_weights: Tensor
    filtered: ParticleFiltered

    def mean(self) -> Tensor:
        """Smoothed means Σ_i β_t^{(i)} x̂_t^{(i)}, (T, *event)."""
        return _weighted_mean(self.filtered.particles, self.log_weights)


def particle_smoother(
    filtered: ParticleFiltered, transition: Callable[[Tensor, int], Distribution]
) -> ParticleSmoothed:
    """Backward reweighting (Eqs 2.60–2.61); needs an evaluable transition density. O(I²T)."""
    parts, log_alpha = filtered.particles, filtered.log_weights
    T, I = log_alpha.shape
    event = parts.shape[2:]
    log_beta = [log_alpha[-1]]  # β_T = α_T
    for t in range(T - 1, 0, -1):
        dist = transition(parts[t - 1], t)  # batch of I: p̂(x_t | x̂_{t−1}^{(j)})
        x_t = parts[t].reshape(I, *([1]), *event)
        log_trans = dist.log_prob(x_t)  # (I_k, I_j): log p̂(x̂_t^{(k)} | x̂_{t−1}^{(j)})
        if log_trans.shape != (I, I):
            raise ValueError("transition(x, t).log_prob must broadcast to an (I, I) table.")
        joint = log_alpha[t - 1][None, :] + log_trans  # Eq. 2.60 numerator, (k, j)
        future = joint - torch.logsumexp(joint, 1, keepdim=True)  # Eq. 2.60
        log_beta.append(torch.logsumexp(log_beta[-1][:, None] + future, 0))  # Eq. 2.61
    return ParticleSmoothed(torch.stack(log_beta[::-1]), filtered)
