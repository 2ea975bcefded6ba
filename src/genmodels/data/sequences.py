"""Synthetic sequence data used by the papers on recurrent harmoniums.

* ``bouncing_balls`` — the videos of Sutskever, Hinton & Taylor (2008, "The recurrent temporal
  restricted Boltzmann machine", NeurIPS): balls moving in a box, bouncing elastically off the
  walls and each other, rendered as soft discs on a ``res × res`` grid.
* ``poisson_lds`` — a linear dynamical system (a damped, noise-driven spring: position and
  velocity) observed through a population of neurons with Gaussian tuning curves over position
  that emit Poisson spike counts, as in Makin, Dichter & Sabes (2015, "Learning to estimate
  dynamical state with probabilistic population codes", PLoS Comput Biol 11(11)). The
  ``population_decode`` helper turns each step's counts into the Gaussian observation that the
  Kalman-filter baseline of that paper sees.

Both are vectorised over sequences (``B``); only time is a loop, as the physics requires.
Randomness only through a ``torch.Generator`` or an int ``seed``.
Shapes: ``B`` sequences, ``T`` time steps, ``D`` pixels or neurons, ``K`` state dimensions.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from genmodels._validation import check_nonnegative_float, check_positive_int, make_generator
from genmodels.inference.kalman import LGSSMParams, kalman_filter

__all__ = [
    "BouncingBalls",
    "PoissonLDS",
    "bouncing_balls",
    "kalman_one_step",
    "poisson_lds",
    "population_decode",
]

#: Side of the box the balls move in, in the units of Sutskever et al.'s generator.
BOX = 10.0


class BouncingBalls(NamedTuple):
    """Bouncing-ball videos.

    frames: (B, T, res, res) pixel intensities in [0, 1] (soft discs, summed and clipped).
    positions: (B, T, n_balls, 2) ball centres in [0, BOX]² (row, column coordinates).
    velocities: (B, T, n_balls, 2) velocities at each frame.
    """

    frames: Tensor
    positions: Tensor
    velocities: Tensor


def _initial_positions(B: int, n: int, radius: float, g: torch.Generator,
                       dtype: torch.dtype) -> Tensor:
    """Rejection-sample centres (B, n, 2) inside the box with no two balls overlapping."""
    lo, hi = radius, BOX - radius
    x = torch.empty(B, n, 2, dtype=dtype)
    todo = torch.ones(B, dtype=torch.bool)
    for _ in range(10_000):
        m = int(todo.sum())
        if m == 0:
            return x
        cand = lo + torch.rand(m, n, 2, generator=g, dtype=dtype) * (hi - lo)
        d = torch.cdist(cand, cand) + 2 * radius * torch.eye(n, dtype=dtype)  # ignore self
        ok = (d >= 2 * radius).flatten(1).all(dim=1)
        idx = todo.nonzero().squeeze(1)
        x[idx[ok]] = cand[ok]
        todo[idx[ok]] = False
    raise ValueError(f"could not place {n} balls of radius {radius} without overlap in the box "
                     f"of side {BOX}; use fewer or smaller balls.")


def _collide(x: Tensor, v: Tensor, radius: float) -> Tensor:
    """Elastic collisions of equal masses: for every overlapping pair that is approaching, the
    velocity components along the line of centres are exchanged. x, v: (B, n, 2)."""
    n = x.shape[1]
    v = v.clone()
    for i in range(n):
        for j in range(i):
            w = x[:, i] - x[:, j]  # (B, 2)
            dist = w.norm(dim=1, keepdim=True)
            w = w / dist.clamp_min(torch.finfo(x.dtype).tiny)
            vi = (w * v[:, i]).sum(1, keepdim=True)
            vj = (w * v[:, j]).sum(1, keepdim=True)
            hit = (dist < 2 * radius) & (vi - vj < 0)  # overlapping and approaching
            swap = torch.where(hit, vj - vi, torch.zeros_like(vi))
            v[:, i] = v[:, i] + w * swap
            v[:, j] = v[:, j] - w * swap
    return v


def bouncing_balls(n_sequences: int, T: int, *, res: int = 15, n_balls: int = 3,
                   radius: float = 1.2, speed: float = 0.5, substeps: int = 2,
                   seed: int | torch.Generator | None = 0,
                   dtype: torch.dtype = torch.float64) -> BouncingBalls:
    """Videos of ``n_balls`` balls in a box (Sutskever, Hinton & Taylor 2008).

    Each ball starts at a uniform position (no overlaps, rejection sampled) with a random
    direction, every ball moving at ``speed`` box units per frame; between frames the motion is
    integrated in ``substeps`` Euler steps, after each of which balls collide elastically (equal
    masses) with each other and then reflect off the walls. A frame renders each ball as the soft
    disc exp{−(‖p − x‖² / r²)⁴} at the pixel centres p, summed over balls and clipped to 1 —
    the rendering of the paper's generator. Its balls share one speed per sequence (the
    velocities' joint norm); here every ball has the same ``speed``, so videos are stationary.

    n_sequences: B.  T: frames per sequence.  res: pixels per side (the paper uses 30; 15 keeps
    tests fast).  Returns ``BouncingBalls`` with frames (B, T, res, res).
    """
    B = check_positive_int(n_sequences, "n_sequences")
    T = check_positive_int(T, "T")
    res = check_positive_int(res, "res")
    n = check_positive_int(n_balls, "n_balls")
    r = check_nonnegative_float(radius, "radius", strictly=True)
    speed = check_nonnegative_float(speed, "speed")
    substeps = check_positive_int(substeps, "substeps")
    if 2 * r >= BOX:
        raise ValueError(f"radius={radius} is too large for the box of side {BOX}.")
    g = make_generator(seed)
    x = _initial_positions(B, n, r, g, dtype)
    angle = 2 * math.pi * torch.rand(B, n, generator=g, dtype=dtype)
    v = speed * torch.stack([torch.cos(angle), torch.sin(angle)], dim=-1)  # (B, n, 2)
    xs, vs = [], []
    eps = 1.0 / substeps
    for _ in range(T):
        xs.append(x)
        vs.append(v)
        for _ in range(substeps):
            x = x + eps * v
            v = _collide(x, v, r)
            v = torch.where(x - r < 0, v.abs(), v)  # the walls last: reflect off the low walls
            v = torch.where(x + r > BOX, -v.abs(), v)  # and the high walls
    X = torch.stack(xs, dim=1)  # (B, T, n, 2)
    V = torch.stack(vs, dim=1)
    centres = (torch.arange(res, dtype=dtype) + 0.5) * (BOX / res)  # pixel centres
    rows, cols = X[..., 0, None, None], X[..., 1, None, None]  # (B, T, n, 1, 1)
    d2 = (centres[:, None] - rows) ** 2 + (centres[None, :] - cols) ** 2  # (B, T, n, res, res)
    frames = torch.exp(-((d2 / r**2) ** 4)).sum(dim=2).clamp_max(1.0)
    return BouncingBalls(frames=frames, positions=X, velocities=V)


class PoissonLDS(NamedTuple):
    """A linear dynamical system observed through Poisson spike counts.

    states: (B, T, 2) the latent (position, velocity).
    counts: (B, T, D) spike counts of the D neurons.
    rates: (B, T, D) their Poisson means (Eq. in ``poisson_lds``).
    params: the latent dynamics as ``LGSSMParams`` (its emission fields describe the Gaussian
        observation of the population-decoded position; see ``population_decode``).
    centres: (D,) preferred positions of the neurons.  width: tuning width σ.  gain: peak rate.
    """

    states: Tensor
    counts: Tensor
    rates: Tensor
    params: LGSSMParams
    centres: Tensor
    width: float
    gain: float


def poisson_lds(n_sequences: int, T: int, *, n_neurons: int = 15, dt: float = 0.05,
                stiffness: float = 3.0, damping: float = 0.5, noise: float = 1.5,
                gain: float = 6.0, width: float | None = None, span: float = 3.0,
                seed: int | torch.Generator | None = 0,
                dtype: torch.dtype = torch.float64) -> PoissonLDS:
    """A damped spring driven by noise, seen through Poisson neurons (Makin et al. 2015).

    Latent state x_t = (position z_t, velocity ż_t), Euler-discretised with step ``dt``:

        x_{t+1} = A x_t + w_t,   A = [[1, dt], [−k dt, 1 − b dt]],
        w_t ~ N(0, diag(0, (noise² dt))),   x_1 ~ N(0, Σ_∞) (the stationary covariance),

    with k = ``stiffness`` and b = ``damping``. Neuron i has a Gaussian tuning curve over
    position with preferred position c_i (``n_neurons`` evenly spaced over [−span, span]) and
    width σ (default the spacing), and fires

        n_{t,i} ~ Poisson(g exp{−(z_t − c_i)² / (2σ²)}),   g = ``gain``.

    Returns ``PoissonLDS``; ``params`` carries A, Σ_x, μ_1 = 0, Σ_1 = Σ_∞ and, as the emission,
    position-only C = [1, 0] with the decoding variance at the mean total count (see
    ``population_decode``), so a Kalman filter can run on the decoded positions.
    """
    B = check_positive_int(n_sequences, "n_sequences")
    T = check_positive_int(T, "T")
    D = check_positive_int(n_neurons, "n_neurons", minimum=2)
    dt = check_nonnegative_float(dt, "dt", strictly=True)
    k = check_nonnegative_float(stiffness, "stiffness", strictly=True)
    b = check_nonnegative_float(damping, "damping", strictly=True)
    q = check_nonnegative_float(noise, "noise", strictly=True)
    g_peak = check_nonnegative_float(gain, "gain", strictly=True)
    span = check_nonnegative_float(span, "span", strictly=True)
    centres = torch.linspace(-span, span, D, dtype=dtype)
    sigma = float(centres[1] - centres[0]) if width is None else check_nonnegative_float(
        width, "width", strictly=True)
    A = torch.tensor([[1.0, dt], [-k * dt, 1.0 - b * dt]], dtype=dtype)
    if torch.linalg.eigvals(A).abs().max() >= 1:
        raise ValueError(f"dt={dt} with stiffness={k} and damping={b} gives unstable dynamics "
                         "(spectral radius >= 1); lower dt or raise the damping.")
    Q = torch.diag(torch.tensor([0.0, q * q * dt], dtype=dtype))
    # stationary covariance: solve S = A S Aᵀ + Q (vec form, 4 × 4)
    eye = torch.eye(4, dtype=dtype)
    S = torch.linalg.solve(eye - torch.kron(A, A), Q.reshape(4)).reshape(2, 2)
    S = 0.5 * (S + S.T)
    gen = make_generator(seed)
    L = torch.linalg.cholesky(S)
    x = torch.randn(B, 2, generator=gen, dtype=dtype) @ L.T
    xs = []
    for _ in range(T):
        xs.append(x)
        w = torch.randn(B, 2, generator=gen, dtype=dtype) * Q.diagonal().sqrt()
        x = x @ A.T + w
    states = torch.stack(xs, dim=1)  # (B, T, 2)
    rates = g_peak * torch.exp(-((states[..., :1] - centres) ** 2) / (2 * sigma**2))  # (B, T, D)
    counts = torch.poisson(rates, generator=gen)
    # the decoding variance σ²/N at the expected total count of a position at the origin
    total = float((g_peak * torch.exp(-(centres**2) / (2 * sigma**2))).sum())
    params = LGSSMParams(
        initial_mean=torch.zeros(2, dtype=dtype), initial_covariance=S, dynamics=A,
        dynamics_covariance=Q + 1e-12 * torch.eye(2, dtype=dtype),
        emission=torch.tensor([[1.0, 0.0]], dtype=dtype),
        emission_covariance=torch.tensor([[sigma**2 / total]], dtype=dtype))
    return PoissonLDS(states=states, counts=counts, rates=rates, params=params,
                      centres=centres, width=sigma, gain=g_peak)


def population_decode(counts: Tensor, centres: Tensor, width: float) -> tuple[Tensor, Tensor]:
    """The Gaussian likelihood of position that a population of Gaussian-tuned Poisson neurons
    carries (a probabilistic population code).

    With tuning curves f_i(z) = g exp{−(z − c_i)²/(2σ²)} whose sum is nearly constant in z, the
    log-likelihood Σ_i n_i log f_i(z) − Σ_i f_i(z) is, up to a constant, −Σ_i n_i (z − c_i)²/(2σ²):
    a Gaussian in z with mean ẑ = Σ n_i c_i / Σ n_i and variance σ² / Σ n_i.
    counts: (*, D).  Returns (ẑ, var), each (*,); where no neuron fired, ẑ = 0 and var = inf.
    """
    total = counts.sum(-1)
    safe = total.clamp_min(1.0)
    zhat = torch.where(total > 0, (counts * centres).sum(-1) / safe, torch.zeros_like(total))
    var = torch.where(total > 0, width**2 / safe, torch.full_like(total, math.inf))
    return zhat, var


def kalman_one_step(lds: PoissonLDS, params: LGSSMParams | None = None) -> Tensor:
    """The Kalman filter's one-step predictions E[x_{t+1} | n_{1:t}] of the state, for t = 1 …
    T − 1, from the population-decoded positions (``population_decode``; steps where no neuron
    fired are missing) under the true dynamics (``lds.params``, or ``params``): the baseline of
    Makin et al. (2015). Returns (B, T − 1, 2)."""
    p = lds.params if params is None else params
    z, var = population_decode(lds.counts, lds.centres, lds.width)
    y = torch.where(torch.isfinite(var), z, torch.full_like(z, math.nan))[..., None]
    filtered = kalman_filter(p, y)
    return filtered.means[:, :-1] @ p.dynamics.mT  # x̄_{t+1|t} = A x̄_{t|t}
