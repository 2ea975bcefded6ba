"""Gaussian diffusion models (book §8.3, Eqs 8.30–8.48).

The generative model is a Markov chain from structureless noise to data (Eq. 8.30),
``p̂(x_L) = N(0, I)``, ``p̂(x_{l−1} | x_l) = N(μ(x_l, l), σ_l² I)`` (Eq. 8.33); the recognition
model is a fixed Gaussian forward process defined by its marginals (Eq. 8.36)

    p̌(x_l | x_0) = N(α_l x_0, s_l² I),    α_l = v_l ρ_l (signal scale),  s_l = v_l (noise scale),

with signal-to-noise ratio ``ρ_l² = α_l² / s_l²`` strictly decreasing in ``l``. Level 0 is the
data (``α_0 = 1, s_0 = 0``, so ``ρ_0 = ∞``; erratum E-40: the l = 1 term is a decoder, not a
term of Eq. 8.41). Everything here is written in (α, s) rather than the book's (v, ρ) so that
level 0 needs no infinities; ``GaussianSchedule.from_book`` takes the book's (v, ρ).

Three small objects are chosen once (STYLE §7):

* the **schedule** (``GaussianSchedule``: linear, cosine, the book's (v, ρ), any SNR sequence;
  ``LogSNRSchedule`` for continuous time);
* the **parameterisation** of the denoiser's output (``X0``, ``Eps``, ``V``, ``Score``) with
  the conversions between them (Eq. 8.47 and the reparameterisation above Eq. 8.48);
* the **weighting** of the per-level losses (``"elbo"`` Eq. 8.40, ``"book"`` Eq. 8.41,
  ``"simple"`` Ho et al. 2020).

Every weighting is a weight on the x₀ regression error ``‖x_0 − m̂(x_l, l)‖²`` (Kingma & Gao
2023), which each parameterisation computes in its own output space to avoid cancellation.

Shapes: ``x`` is (N, *event) — N data, any event shape (D,) or (C, H, W). Levels ``l`` are
integer tensors (N,) in 1..L; the denoiser sees the time ``t = l / L`` in (0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from genmodels._validation import check_choice, check_finite, check_positive_int

__all__ = [
    "PARAMETERISATIONS",
    "WEIGHTINGS",
    "X0",
    "CosineLogSNR",
    "DiffusionELBO",
    "DiffusionLatentModel",
    "Eps",
    "GaussianDiffusion",
    "GaussianSchedule",
    "LinearLogSNR",
    "LogSNRSchedule",
    "Parameterisation",
    "Score",
    "V",
    "continuous_diffusion_loss",
    "diffusion_elbo",
    "diffusion_loss",
    "discretised_gaussian_log_likelihood",
    "get_parameterisation",
    "level_weights",
    "reverse_variances",
]


def _bcast(coef: Tensor, x: Tensor) -> Tensor:
    """(N,) per-datum coefficients viewed as (N, 1, ..., 1) against x (N, *event)."""
    return coef.reshape(coef.shape + (1,) * (x.dim() - coef.dim())).to(x.dtype)


# ----------------------------------------------------------------------------- schedules
class GaussianSchedule:
    """The discrete Gaussian forward process, defined by its marginals (Eq. 8.36).

    alpha: (L+1,) signal scales α_l = v_l ρ_l, with α_0 = 1 (level 0 is the data).
    sigma: (L+1,) noise scales s_l = v_l, with s_0 = 0.
    The SNR ``ρ_l² = α_l²/s_l²`` must be strictly decreasing (Eq. 8.36's requirement); each
    failure raises ``ValueError`` naming the level. Stored in float64.

    Use the constructors: ``linear(L)`` and ``cosine(L)`` (variance preserving, as DDPM /
    improved DDPM and diffusers' ``"linear"`` / ``"squaredcos_cap_v2"``), ``from_betas``,
    ``from_alphas_cumprod``, ``from_book(v, rho)`` and ``from_snr(snr, kind)``.
    """

    def __init__(self, alpha: Tensor, sigma: Tensor) -> None:
        alpha = torch.as_tensor(alpha, dtype=torch.float64).detach().clone()
        sigma = torch.as_tensor(sigma, dtype=torch.float64).detach().clone()
        if alpha.dim() != 1 or alpha.shape != sigma.shape or alpha.shape[0] < 2:
            raise ValueError(f"alpha and sigma must be 1-D of equal length L+1 >= 2, got shapes "
                             f"{tuple(alpha.shape)} and {tuple(sigma.shape)}.")
        check_finite(alpha, "alpha")
        check_finite(sigma, "sigma")
        if float(alpha[0]) != 1.0 or float(sigma[0]) != 0.0:
            raise ValueError(f"level 0 is the data: alpha[0] must be 1 and sigma[0] 0, got "
                             f"{float(alpha[0])} and {float(sigma[0])}.")
        for name, t in (("alpha", alpha[1:]), ("sigma", sigma[1:])):
            bad = torch.nonzero(t <= 0)
            if bad.numel():
                i = int(bad[0]) + 1
                raise ValueError(
                    f"{name} must be > 0 at levels 1..L; {name}[{i}] = {float(t[i - 1])}.")
        snr = (alpha[1:] / sigma[1:]) ** 2
        inc = torch.nonzero(snr[1:] >= snr[:-1])
        if inc.numel():
            i = int(inc[0]) + 2
            raise ValueError(
                f"the signal-to-noise ratio ρ_l² = α_l²/σ_l² must strictly decrease with l "
                f"(Eq. 8.36), but ρ²[{i}] = {float(snr[i - 1]):.6g} >= ρ²[{i - 1}] = "
                f"{float(snr[i - 2]):.6g}: the noise level is not increasing at level {i}.")
        self.alpha = alpha
        self.sigma = sigma

    # -- constructors
    @classmethod
    def from_betas(cls, betas: Any) -> GaussianSchedule:
        """Variance preserving: transitions N(√(1−β_l) x_{l−1}, β_l I), l = 1..L (Ho et al.).

        betas: (L,) in (0, 1). Then ᾱ_l = Π_{k≤l}(1−β_k), α_l = √ᾱ_l, s_l = √(1−ᾱ_l).
        """
        b = torch.as_tensor(betas, dtype=torch.float64).detach()
        if b.dim() != 1 or b.numel() == 0:
            raise ValueError(f"betas must be a non-empty 1-D sequence, got shape {tuple(b.shape)}.")
        check_finite(b, "betas")
        bad = torch.nonzero((b <= 0) | (b >= 1))
        if bad.numel():
            i = int(bad[0])
            raise ValueError(
                f"betas must lie in (0, 1); betas[{i}] = {float(b[i])} (level {i + 1}).")
        return cls.from_alphas_cumprod(torch.cumprod(1 - b, 0))

    @classmethod
    def from_alphas_cumprod(cls, alphas_cumprod: Any) -> GaussianSchedule:
        """Variance preserving from ᾱ_l (L,), l = 1..L: strictly decreasing, in (0, 1)."""
        a = torch.as_tensor(alphas_cumprod, dtype=torch.float64).detach()
        if a.dim() != 1 or a.numel() == 0:
            raise ValueError("alphas_cumprod must be a non-empty 1-D sequence.")
        check_finite(a, "alphas_cumprod")
        bad = torch.nonzero((a <= 0) | (a >= 1))
        if bad.numel():
            i = int(bad[0])
            raise ValueError(f"alphas_cumprod must lie in (0, 1); alphas_cumprod[{i}] = "
                             f"{float(a[i])} (level {i + 1}).")
        one, zero = torch.ones(1, dtype=torch.float64), torch.zeros(1, dtype=torch.float64)
        return cls(torch.cat([one, a.sqrt()]), torch.cat([zero, (1 - a).sqrt()]))

    @classmethod
    def linear(cls, L: int = 1000, beta_start: float | None = None,
               beta_end: float | None = None) -> GaussianSchedule:
        """DDPM's linear β schedule (Ho et al. 2020): β_l evenly from beta_start to beta_end,
        by default 1e-4 and 0.02 at L = 1000, scaled by 1000/L for other L (Nichol & Dhariwal
        2021) so that x_L is close to N(0, I) whatever L."""
        L = check_positive_int(L, "L")
        start = 1e-4 * 1000 / L if beta_start is None else beta_start
        end = min(0.02 * 1000 / L, 0.999) if beta_end is None else beta_end
        return cls.from_betas(torch.linspace(start, end, L, dtype=torch.float64))

    @classmethod
    def cosine(cls, L: int = 1000, s: float = 0.008, max_beta: float = 0.999
               ) -> GaussianSchedule:
        """Improved DDPM's cosine schedule (Nichol & Dhariwal 2021):
        ᾱ(t) = cos²((t + s)/(1 + s) · π/2), β_l = min(1 − ᾱ(l/L)/ᾱ((l−1)/L), max_beta)."""
        L = check_positive_int(L, "L")
        t = torch.arange(L + 1, dtype=torch.float64) / L
        abar = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
        return cls.from_betas((1 - abar[1:] / abar[:-1]).clamp(max=max_beta))

    @classmethod
    def from_book(cls, v: Any, rho: Any) -> GaussianSchedule:
        """The book's parameters for levels 1..L (Eq. 8.36): p̌(x_l|x_0) = N(v_l ρ_l x_0, v_l² I).

        v: (L,) marginal noise scales > 0; rho: (L,) with ρ_l² strictly decreasing.
        """
        v = torch.as_tensor(v, dtype=torch.float64).detach()
        rho = torch.as_tensor(rho, dtype=torch.float64).detach()
        if v.dim() != 1 or v.shape != rho.shape:
            raise ValueError(f"v and rho must be 1-D of equal length L, got {tuple(v.shape)} "
                             f"and {tuple(rho.shape)}.")
        one, zero = torch.ones(1, dtype=torch.float64), torch.zeros(1, dtype=torch.float64)
        return cls(torch.cat([one, v * rho]), torch.cat([zero, v]))

    @classmethod
    def from_snr(cls, snr: Any, kind: str = "vp") -> GaussianSchedule:
        """From the SNR ρ_l² (L,) of levels 1..L: ``"vp"`` (variance preserving,
        v_l² = 1/(1 + ρ_l²), so α² + s² = 1) or ``"ve"`` (variance exploding, α_l = 1)."""
        kind = check_choice(kind, "kind", ("vp", "ve"))
        r2 = torch.as_tensor(snr, dtype=torch.float64).detach()
        check_finite(r2, "snr")
        if bool((r2 <= 0).any()):
            raise ValueError("snr must be > 0 at every level.")
        v = (1 / (1 + r2)).sqrt() if kind == "vp" else r2.rsqrt()
        return cls.from_book(v, r2.sqrt())

    # -- quantities of the process
    @property
    def L(self) -> int:
        return self.alpha.shape[0] - 1

    @property
    def snr(self) -> Tensor:
        """(L+1,) ρ_l² = α_l²/s_l² (infinite at level 0)."""
        return (self.alpha / self.sigma) ** 2

    @property
    def betas(self) -> Tensor:
        """(L,) the one-step transition variances γ_l² of Eq. 8.37 (β_l when variance
        preserving)."""
        return self.q_transition(torch.arange(1, self.L + 1), torch.arange(0, self.L))[1] ** 2

    def check_levels(self, l: Any, name: str = "l", *, minimum: int = 1) -> Tensor:
        """``l`` as an int64 tensor, each in [minimum, L]; else ``ValueError``."""
        t = torch.as_tensor(l)
        if t.is_floating_point() or t.dtype == torch.bool:
            if not bool((t == t.round()).all()) or t.dtype == torch.bool:
                raise ValueError(f"{name} must hold integer levels, got {t}.")
        t = t.long()
        bad = torch.nonzero(((t < minimum) | (t > self.L)).reshape(-1))
        if bad.numel():
            v = int(t.reshape(-1)[int(bad[0])])
            raise ValueError(f"{name} must lie in {minimum}..{self.L} (the schedule has L = "
                             f"{self.L} levels), got {v}.")
        return t

    def q_marginal(self, l: Any) -> tuple[Tensor, Tensor]:
        """Eq. 8.36: (scale α_l, std s_l) of p̌(x_l | x_0) = N(α_l x_0, s_l² I)."""
        i = self.check_levels(l, minimum=0)
        return self.alpha[i], self.sigma[i]

    def q_sample(self, x0: Tensor, l: Any, eps: Tensor) -> Tensor:
        """x_l = α_l x_0 + s_l ε (the pathwise form above Eq. 8.43). l: (N,) levels."""
        a, s = self.q_marginal(l)
        return _bcast(a, x0) * x0 + _bcast(s, x0) * eps

    def q_transition(self, m: Any, l: Any) -> tuple[Tensor, Tensor]:
        """Eq. 8.37, m > l: (scale β_ml, std γ_ml) of p̌(x_m | x_l) = N(β_ml x_l, γ_ml² I),
        β_ml = α_m/α_l, γ_ml² = s_m² − β_ml² s_l² = s_m²(1 − ρ_m²/ρ_l²)."""
        mi, li = self.check_levels(m, "m", minimum=0), self.check_levels(l, "l", minimum=0)
        if bool((mi <= li).any()):
            raise ValueError("q_transition(m, l) needs m > l (the forward direction).")
        beta = self.alpha[mi] / self.alpha[li]
        var = self.sigma[mi] ** 2 * (1 - self._snr_ratio(mi, li))
        return beta, var.sqrt()

    def _snr_ratio(self, m: Tensor, l: Tensor) -> Tensor:
        """ρ_m²/ρ_l² = (α_m s_l / (s_m α_l))², finite (zero) when l = 0."""
        return (self.alpha[m] * self.sigma[l] / (self.sigma[m] * self.alpha[l])) ** 2

    def q_posterior(self, l: Any, m: Any, x0: Tensor, xm: Tensor) -> tuple[Tensor, Tensor]:
        """Eq. 8.38, l < m: (mean (N, *event), variance (N,)) of p̌(x_l | x_m, x_0),

            mean = α_l (1 − ρ_m²/ρ_l²) x_0 + β_ml s_l²/s_m² x_m
                 = (v_l/ρ_l)((ρ_l² − ρ_m²) x_0 + (ρ_m/v_m) x_m),
            var  = s_l² (1 − ρ_m²/ρ_l²) = v_l²(ρ_l² − ρ_m²)/ρ_l².
        """
        li, mi = self.check_levels(l, "l", minimum=0), self.check_levels(m, "m", minimum=1)
        li, mi = torch.broadcast_tensors(li, mi)
        if bool((li >= mi).any()):
            raise ValueError("q_posterior(l, m, ...) needs l < m.")
        ratio = self._snr_ratio(mi, li)
        c0 = self.alpha[li] * (1 - ratio)
        cm = self.alpha[mi] / self.alpha[li] * self.sigma[li] ** 2 / self.sigma[mi] ** 2
        mean = _bcast(c0, x0) * x0 + _bcast(cm, xm) * xm
        return mean, self.sigma[li] ** 2 * (1 - ratio)

    def to(self, device: torch.device | str) -> GaussianSchedule:
        """This schedule with its arrays on ``device`` (itself when already there; copies are
        cached, so a training loop does not copy every step)."""
        device = torch.device(device)
        if self.alpha.device == device:
            return self
        copies = self.__dict__.setdefault("_copies", {})
        if device not in copies:
            out = object.__new__(GaussianSchedule)
            out.alpha, out.sigma = self.alpha.to(device), self.sigma.to(device)
            copies[device] = out
        return copies[device]


class LogSNRSchedule:
    """A continuous-time variance-preserving schedule, u ∈ [0, 1] (book's h(u), g(u), §8.3).

    Subclasses give ``log_snr(u)`` = λ(u) = log h(u), strictly decreasing, and its derivative.
    Then h(u) = e^λ is the SNR, α(u)² = sigmoid(λ), g(u) = s(u)² = sigmoid(−λ).
    """

    log_snr_min: float
    log_snr_max: float

    def log_snr(self, u: Tensor) -> Tensor:
        raise NotImplementedError

    def d_log_snr(self, u: Tensor) -> Tensor:
        raise NotImplementedError

    def alpha_sigma(self, u: Tensor) -> tuple[Tensor, Tensor]:
        lam = self.log_snr(u)
        return torch.sigmoid(lam).sqrt(), torch.sigmoid(-lam).sqrt()

    def discretise(self, L: int) -> GaussianSchedule:
        """The discrete schedule with levels l = 1..L at u = l/L (level 0 the data)."""
        L = check_positive_int(L, "L")
        u = torch.arange(1, L + 1, dtype=torch.float64) / L
        return GaussianSchedule.from_snr(self.log_snr(u).exp(), "vp")

    @staticmethod
    def _check_endpoints(log_snr_min: float, log_snr_max: float) -> None:
        if not (math.isfinite(log_snr_min) and math.isfinite(log_snr_max)
                and log_snr_min < log_snr_max):
            raise ValueError(f"need finite log_snr_min < log_snr_max, got {log_snr_min} and "
                             f"{log_snr_max}.")


class LinearLogSNR(LogSNRSchedule):
    """λ(u) = λ_max + (λ_min − λ_max) u (Kingma et al. 2021's fixed linear schedule)."""

    def __init__(self, log_snr_min: float = -10.0, log_snr_max: float = 10.0) -> None:
        self._check_endpoints(log_snr_min, log_snr_max)
        self.log_snr_min, self.log_snr_max = float(log_snr_min), float(log_snr_max)

    def log_snr(self, u: Tensor) -> Tensor:
        return self.log_snr_max + (self.log_snr_min - self.log_snr_max) * u

    def d_log_snr(self, u: Tensor) -> Tensor:
        return torch.full_like(u, self.log_snr_min - self.log_snr_max)


class CosineLogSNR(LogSNRSchedule):
    """λ(u) = −2 log tan(a u + b), the cosine schedule's log-SNR truncated to [λ_min, λ_max]
    (Kingma & Gao 2023): b = atan(e^{−λ_max/2}), a = atan(e^{−λ_min/2}) − b."""

    def __init__(self, log_snr_min: float = -10.0, log_snr_max: float = 10.0) -> None:
        self._check_endpoints(log_snr_min, log_snr_max)
        self.log_snr_min, self.log_snr_max = float(log_snr_min), float(log_snr_max)
        self._b = math.atan(math.exp(-log_snr_max / 2))
        self._a = math.atan(math.exp(-log_snr_min / 2)) - self._b

    def log_snr(self, u: Tensor) -> Tensor:
        return -2 * torch.log(torch.tan(self._a * u + self._b))

    def d_log_snr(self, u: Tensor) -> Tensor:
        return -4 * self._a / torch.sin(2 * (self._a * u + self._b))


# ------------------------------------------------------------------------ parameterisation
class Parameterisation:
    """What the denoiser's output means. With x_l = α x_0 + s ε (α, s broadcast to x):

    ``to_x0(out, x_l, α, s)``: the implied posterior-mean estimate m̂(x_l, l) of x_0;
    ``target(x0, eps, α, s)``: the output a perfect denoiser would give on this draw;
    ``x0_scale(α, s)``: c with ``x_0 − m̂ = c · (target − out)`` (so every loss is computed in
    the output's own space, without cancellation).
    """

    name: str = ""

    def to_x0(self, out: Tensor, x: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
        raise NotImplementedError

    def target(self, x0: Tensor, eps: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
        raise NotImplementedError

    def x0_scale(self, alpha: Tensor, sigma: Tensor) -> Tensor:
        raise NotImplementedError

    def to_eps(self, out: Tensor, x: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
        """ε̂ = (x_l − α m̂)/s."""
        return (x - alpha * self.to_x0(out, x, alpha, sigma)) / sigma

    def to_score(self, out: Tensor, x: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
        """Eq. 8.47 (Tweedie): f̂ = (α m̂ − x_l)/s², the force ∇ log p(x_l)."""
        return (alpha * self.to_x0(out, x, alpha, sigma) - x) / sigma**2

    def from_x0(self, x0: Tensor, x: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
        """The output that implies m̂ = x0 at x_l (the inverse of ``to_x0``)."""
        eps = (x - alpha * x0) / sigma
        return self.target(x0, eps, alpha, sigma)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class X0(Parameterisation):
    """The denoiser predicts x_0 itself (m̂ of Eq. 8.41; diffusers' ``"sample"``)."""

    name = "x0"

    def to_x0(self, out: Tensor, x: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
        return out

    def target(self, x0: Tensor, eps: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
        return x0

    def x0_scale(self, alpha: Tensor, sigma: Tensor) -> Tensor:
        return torch.ones_like(alpha)


class Eps(Parameterisation):
    """The denoiser predicts the noise ε (Ho et al.; Eq. 8.48's last line with f̂ = −ε̂/v_l):
    m̂ = (x_l − s ε̂)/α."""

    name = "eps"

    def to_x0(self, out: Tensor, x: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
        return (x - sigma * out) / alpha

    def to_eps(self, out: Tensor, x: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
        return out

    def target(self, x0: Tensor, eps: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
        return eps

    def x0_scale(self, alpha: Tensor, sigma: Tensor) -> Tensor:
        return sigma / alpha  # x_0 − m̂ = (s/α)(ε̂ − ε): the sign drops out of ‖·‖²


class V(Parameterisation):
    """The denoiser predicts v = α ε − s x_0 (Salimans & Ho 2022):
    m̂ = (α x_l − s v̂)/(α² + s²) (= α x_l − s v̂ when variance preserving)."""

    name = "v"

    def to_x0(self, out: Tensor, x: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
        return (alpha * x - sigma * out) / (alpha**2 + sigma**2)

    def to_eps(self, out: Tensor, x: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
        return (sigma * x + alpha * out) / (alpha**2 + sigma**2)

    def target(self, x0: Tensor, eps: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
        return alpha * eps - sigma * x0

    def x0_scale(self, alpha: Tensor, sigma: Tensor) -> Tensor:
        return sigma / (alpha**2 + sigma**2)


class Score(Parameterisation):
    """The denoiser predicts the force f̂ = ∇ log p(x_l) (Eq. 8.47; score-based models):
    m̂ = (v_l/ρ_l) f̂ + x_l/(v_l ρ_l) = (x_l + s² f̂)/α (the reparameterisation before 8.48)."""

    name = "score"

    def to_x0(self, out: Tensor, x: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
        return (x + sigma**2 * out) / alpha

    def to_score(self, out: Tensor, x: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
        return out

    def target(self, x0: Tensor, eps: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
        return -eps / sigma

    def x0_scale(self, alpha: Tensor, sigma: Tensor) -> Tensor:
        return sigma**2 / alpha


PARAMETERISATIONS: dict[str, type[Parameterisation]] = {
    "x0": X0, "sample": X0, "eps": Eps, "epsilon": Eps, "v": V, "v_prediction": V,
    "score": Score, "force": Score,
}


def get_parameterisation(p: str | Parameterisation) -> Parameterisation:
    """A ``Parameterisation`` from itself or a name: x0/sample, eps/epsilon, v/v_prediction,
    score/force (diffusers' names accepted)."""
    if isinstance(p, Parameterisation):
        return p
    if p not in PARAMETERISATIONS:
        raise ValueError(f"parameterisation must be one of {tuple(PARAMETERISATIONS)} or a "
                         f"Parameterisation, got {p!r}.")
    return PARAMETERISATIONS[p]()


# ------------------------------------------------------------------------------- weights
REVERSE_VARIANCES = ("posterior", "transition")
WEIGHTINGS = ("elbo", "book", "simple")


def reverse_variances(schedule: GaussianSchedule, kind: str = "posterior") -> Tensor:
    """(L,) the generative model's fixed variances σ_l², l = 1..L (Eq. 8.33).

    ``"posterior"``: σ_l² = v_{l−1}²(ρ_{l−1}² − ρ_l²)/ρ_{l−1}² (the book's choice above Eq. 8.41,
    Ho et al.'s β̃_l). At l = 1 that is 0 (x_0 is the data), so the decoder variance there is
    the transition variance β_1 (erratum E-40; Ho et al. 2020 §3.3).
    ``"transition"``: σ_l² = β_l = γ_l² of Eq. 8.37 (Ho et al.'s other choice).
    """
    kind = check_choice(kind, "reverse_variance", REVERSE_VARIANCES)
    betas = schedule.betas
    if kind == "transition":
        return betas
    l = torch.arange(1, schedule.L + 1)
    post = schedule.sigma[l - 1] ** 2 * (1 - schedule._snr_ratio(l, l - 1))
    post[0] = betas[0]
    return post


def level_weights(schedule: GaussianSchedule, weighting: str = "elbo",
                  reverse_variance: str = "posterior") -> Tensor:
    """(L,) weights w_l of the x₀ regression error: the level-l loss is w_l E‖x_0 − m̂_l‖².

    ``"elbo"`` (Eq. 8.40): w_l = α_{l−1}²(1 − ρ_l²/ρ_{l−1}²)²/(2σ_l²), with σ_l² the reverse
        variances; Σ_l of these terms is the negative ELBO up to constants that do not depend
        on the denoiser (``diffusion_elbo`` adds them).
    ``"book"`` (Eq. 8.41): w_l = ½(ρ_{l−1}² − ρ_l²), the SNR decrement — Eq. 8.40 with the
        posterior reverse variance. At l = 1, ρ_0 = ∞, so the level-1 term is the Gaussian
        decoder's, 1/(2β_1) (erratum E-40).
    ``"simple"``: w_l = ρ_l², i.e. the unweighted ‖ε − ε̂‖² of Ho et al. 2020.
    """
    weighting = check_choice(weighting, "weighting", WEIGHTINGS)
    cache = schedule.__dict__.setdefault("_weights", {})
    key = (weighting, reverse_variance)
    if key not in cache:
        cache[key] = _level_weights(schedule, weighting, reverse_variance)
    return cache[key].clone()


def _level_weights(schedule: GaussianSchedule, weighting: str, reverse_variance: str) -> Tensor:
    l = torch.arange(1, schedule.L + 1)
    if weighting == "simple":
        return schedule.snr[l]
    if weighting == "book":
        w = 0.5 * (schedule.snr[l - 1] - schedule.snr[l])
        w[0] = 0.5 / schedule.betas[0]
        return w
    var = reverse_variances(schedule, reverse_variance)
    return schedule.alpha[l - 1] ** 2 * (1 - schedule._snr_ratio(l, l - 1)) ** 2 / (2 * var)


def _sum_event(x: Tensor) -> Tensor:
    return x.reshape(x.shape[0], -1).sum(1)


def diffusion_loss(denoiser: Callable[[Tensor, Tensor], Tensor], x0: Tensor,
                   schedule: GaussianSchedule, parameterisation: str | Parameterisation = "eps",
                   *, weighting: str = "elbo", reverse_variance: str = "posterior",
                   levels: Tensor | None = None, eps: Tensor | None = None,
                   generator: torch.Generator | None = None) -> Tensor:
    """Per-datum Monte Carlo loss (N,) of the discrete diffusion model (Eqs 8.40–8.43, 8.48).

    A level l ~ U{1..L} and noise ε ~ N(0, I) per datum (or the given ``levels``, ``eps``);
    x_l = α_l x_0 + s_l ε (the pathwise form, Eq. 8.43); the loss is
    ``L · w_l · ‖x_0 − m̂(x_l, l)‖²`` — an unbiased estimate of Σ_l w_l E‖x_0 − m̂_l‖² — for
    ``"elbo"`` and ``"book"``, and ``w_l‖x_0 − m̂‖² = ‖ε − ε̂‖²`` (no factor L, Ho et al.'s
    L_simple) for ``"simple"``. Errors are summed over the event dimensions.

    denoiser: ``(x_l (N, *event), t = l/L (N,)) -> output`` in the parameterisation's space.
    """
    param = get_parameterisation(parameterisation)
    check_finite(x0, "x0")
    n = x0.shape[0]
    if levels is None:
        levels = torch.randint(1, schedule.L + 1, (n,), generator=generator, device=x0.device)
    else:
        levels = schedule.check_levels(levels, "levels").to(x0.device)
    if eps is None:
        eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
    sched = schedule if schedule.alpha.device == x0.device else schedule.to(x0.device)
    a, s = _bcast(sched.alpha[levels], x0), _bcast(sched.sigma[levels], x0)
    xl = a * x0 + s * eps
    out = denoiser(xl, levels.to(x0.dtype) / schedule.L)
    err = _sum_event((param.target(x0, eps, a, s) - out) ** 2)
    w = level_weights(schedule, weighting, reverse_variance).to(x0.device)[levels - 1]
    c = param.x0_scale(sched.alpha[levels], sched.sigma[levels])
    scale = 1.0 if weighting == "simple" else float(schedule.L)
    return (scale * w * c**2).to(x0.dtype) * err


def continuous_diffusion_loss(denoiser: Callable[[Tensor, Tensor], Tensor], x0: Tensor,
                              schedule: LogSNRSchedule,
                              parameterisation: str | Parameterisation = "eps", *,
                              u: Tensor | None = None, eps: Tensor | None = None,
                              generator: torch.Generator | None = None) -> Tensor:
    """Per-datum continuous-time loss (N,), the L → ∞ limit of Eq. 8.41 (erratum E-41 fixed):

        lim_{L→∞} L_JRE = −½ ∫_0^1 h′(u) E‖x_0 − m̂(√(g h) x_0 + √g Z, u)‖² du
                        = −½ E_U[h′(U) ‖x_0 − m̂‖²],   U ~ U(0, 1),

    with h(u) = e^{λ(u)} the SNR (h′ < 0, so the weight −h′/2 is positive) and g(u) = s(u)². The
    book's version carries a spurious 1/L and the opposite sign. Kingma et al. 2021 Eq. 17.
    """
    param = get_parameterisation(parameterisation)
    n = x0.shape[0]
    if u is None:
        u = torch.rand(n, generator=generator, dtype=x0.dtype, device=x0.device)
    if eps is None:
        eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
    lam = schedule.log_snr(u)
    alpha, sigma = torch.sigmoid(lam).sqrt(), torch.sigmoid(-lam).sqrt()
    a, s = _bcast(alpha, x0), _bcast(sigma, x0)
    out = denoiser(a * x0 + s * eps, u)
    err = _sum_event((param.target(x0, eps, a, s) - out) ** 2)
    h_prime = schedule.d_log_snr(u) * lam.exp()  # dh/du = λ′ e^λ
    return -0.5 * h_prime * param.x0_scale(alpha, sigma) ** 2 * err


# ---------------------------------------------------------------------------------- ELBO
def discretised_gaussian_log_likelihood(x: Tensor, mean: Tensor, std: Tensor | float,
                                        levels: int) -> Tensor:
    """log P(x) elementwise for data x on the grid −1, −1 + 2/(K−1), ..., 1 of K = ``levels``
    values: the mass of N(mean, std²) on x's bin [x − 1/(K−1), x + 1/(K−1)], the end bins
    extended to ±∞ (Ho, Jain & Abbeel 2020, Eq. 13)."""
    half = 1.0 / (levels - 1)
    std_t = torch.as_tensor(std, dtype=mean.dtype, device=mean.device)
    normal = torch.distributions.Normal(torch.zeros((), dtype=mean.dtype, device=mean.device),
                                        torch.ones((), dtype=mean.dtype, device=mean.device))
    hi = (x + half - mean) / std_t
    lo = (x - half - mean) / std_t
    log_cdf_hi = torch.special.log_ndtr(hi)
    log_sf_lo = torch.special.log_ndtr(-lo)  # log(1 − Φ(lo))
    # log(Φ(hi) − Φ(lo)) computed stably on whichever side of the mean the bin lies
    mid = torch.where(lo > 0,
                      log_sf_lo + torch.log1p(-torch.exp(torch.special.log_ndtr(-hi) - log_sf_lo)),
                      log_cdf_hi + torch.log1p(-torch.exp(torch.special.log_ndtr(lo) - log_cdf_hi)))
    # when the bin is tiny relative to std the difference underflows: use the density × width
    tiny = (hi - lo) < 1e-5
    mid = torch.where(tiny, normal.log_prob((x - mean) / std_t) - std_t.log() + math.log(2 * half),
                      mid)
    out = torch.where(x < -1 + half, log_cdf_hi, torch.where(x > 1 - half, log_sf_lo, mid))
    return out


class DiffusionELBO(NamedTuple):
    """The ELBO of the diffusion model per datum (N,), in nats, and its terms.

    elbo: E_q[log p̂(x_0..x_L) − log q(x_1..x_L | x_0)] ≤ log p̂(x_0) (one draw per level).
    prior: KL(p̌(x_L | x_0) ‖ N(0, I)) (prior matching, E-40).
    diffusion: Σ_{l=2}^L KL(p̌(x_{l−1} | x_l, x_0) ‖ p̂(x_{l−1} | x_l)) (Eqs 8.39–8.40).
    decoder: −log p̂(x_0 | x_1) (Gaussian density, or the discretised decoder's probability).
    bits_per_dim: −elbo / (D log 2).
    """

    elbo: Tensor
    prior: Tensor
    diffusion: Tensor
    decoder: Tensor
    bits_per_dim: Tensor


def _gaussian_kl_iso(mean_diff_sq: Tensor, var_q: Tensor, var_p: Tensor, d: int) -> Tensor:
    """KL(N(μ_q, var_q I) ‖ N(μ_p, var_p I)) in d dims with ‖μ_q − μ_p‖² = mean_diff_sq."""
    return 0.5 * (d * (torch.log(var_p / var_q) + var_q / var_p - 1) + mean_diff_sq / var_p)


def diffusion_elbo(denoiser: Callable[[Tensor, Tensor], Tensor], x0: Tensor,
                   schedule: GaussianSchedule, parameterisation: str | Parameterisation = "eps",
                   *, reverse_variance: str = "posterior", levels_of_data: int | None = None,
                   chunk: int = 64, generator: torch.Generator | None = None) -> DiffusionELBO:
    """The full ELBO of every datum (N,), every level evaluated (one x_l draw per level).

    −ELBO = KL(p̌(x_L|x_0) ‖ N(0,I)) + Σ_{l=2}^L KL(p̌(x_{l−1}|x_l,x_0) ‖ p̂(x_{l−1}|x_l))
            − log p̂(x_0 | x_1)   (Eq. 8.32 with the E-40 boundary terms; Ho et al. Eq. 5).
    The diffusion KLs' mean terms are Eq. 8.40's w_l‖x_0 − m̂_l‖²; the decoder is N(m̂(x_1),
    σ_1²) — or, with ``levels_of_data=K``, the discretised Gaussian on K grey levels scaled to
    [−1, 1] (Ho et al. 2020), whose ELBO bounds the discrete log-probability.
    """
    param = get_parameterisation(parameterisation)
    check_finite(x0, "x0")
    n, d = x0.shape[0], x0[0].numel()
    L = schedule.L
    sched = schedule.to(x0.device)
    var_p = reverse_variances(schedule, reverse_variance).to(x0.device, x0.dtype)
    w = level_weights(schedule, "elbo", reverse_variance).to(x0.device, x0.dtype)
    l_all = torch.arange(1, L + 1, device=x0.device)
    var_q = (sched.sigma[l_all - 1] ** 2 * (1 - sched._snr_ratio(l_all, l_all - 1))).to(x0.dtype)
    diffusion = torch.zeros(n, dtype=x0.dtype, device=x0.device)
    decoder = torch.zeros(n, dtype=x0.dtype, device=x0.device)
    with torch.no_grad():
        for start in range(1, L + 1, chunk):
            ls = torch.arange(start, min(start + chunk, L + 1), device=x0.device)  # (C,)
            c = ls.shape[0]
            xs = x0.unsqueeze(0).expand(c, *x0.shape).reshape(c * n, *x0.shape[1:])
            lv = ls.repeat_interleave(n)
            eps = torch.randn(xs.shape, generator=generator, dtype=x0.dtype, device=x0.device)
            a, s = sched.alpha[lv], sched.sigma[lv]
            ab, sb = _bcast(a, xs), _bcast(s, xs)
            xl = ab * xs + sb * eps
            out = denoiser(xl, lv.to(x0.dtype) / L)
            err = _sum_event((param.target(xs, eps, ab, sb) - out) ** 2)
            err = err * param.x0_scale(a, s).to(x0.dtype) ** 2  # ‖x_0 − m̂‖²
            kl = _gaussian_kl_iso(w[lv - 1] * 2 * var_p[lv - 1] * err, var_q[lv - 1],
                                  var_p[lv - 1], d)
            kl = kl.reshape(c, n)
            first = ls == 1
            if bool(first.any()):
                x0_hat = param.to_x0(out[:n], xl[:n], ab[:n], sb[:n])  # level 1 comes first
                std1 = var_p[0].sqrt()
                if levels_of_data is None:
                    nll = 0.5 * _sum_event((x0 - x0_hat) ** 2) / var_p[0] \
                        + 0.5 * d * torch.log(2 * math.pi * var_p[0])
                else:
                    nll = -_sum_event(discretised_gaussian_log_likelihood(
                        x0, x0_hat, std1, levels_of_data))
                decoder = nll
                kl = kl[~first]
            diffusion = diffusion + kl.sum(0)
    aL, sL = sched.alpha[L].to(x0.dtype), sched.sigma[L].to(x0.dtype)
    prior = 0.5 * (aL**2 * _sum_event(x0**2) + d * (sL**2 - 1 - torch.log(sL**2)))
    elbo = -(prior + diffusion + decoder)
    return DiffusionELBO(elbo, prior, diffusion, decoder, -elbo / (d * math.log(2)))


# ------------------------------------------------------------------------------- the model
class GaussianDiffusion(nn.Module):
    """A Gaussian diffusion model (Eqs 8.30, 8.33, 8.36) around any denoiser ``nn.Module``.

    denoiser: ``(x_l (N, *event), t (N,)) -> output`` in the parameterisation's space
        (``genmodels.models.denoisers`` has an MLP and a small conv net; any module works).
    schedule: a ``GaussianSchedule`` (default ``GaussianSchedule.linear(1000)``).
    parameterisation: ``"eps"`` (default), ``"x0"``, ``"v"``, ``"score"`` or an object.
    weighting: of the training loss, ``"simple"`` (default, Ho et al.), ``"elbo"`` or
        ``"book"`` (see ``level_weights``).
    reverse_variance: σ_l² of the generative transitions, ``"posterior"`` or ``"transition"``.

    ``loss(batch, generator)`` is the mean of ``diffusion_loss`` (the trainer's contract);
    ``sample`` runs the ancestral sampler or DDIM; ``elbo`` gives the ELBO and bits/dim.
    """

    def __init__(self, denoiser: nn.Module, schedule: GaussianSchedule | None = None,
                 parameterisation: str | Parameterisation = "eps", *,
                 weighting: str = "simple", reverse_variance: str = "posterior") -> None:
        super().__init__()
        if not callable(denoiser):
            raise ValueError("denoiser must be callable as denoiser(x_l, t).")
        self.denoiser = denoiser
        self.schedule = schedule if schedule is not None else GaussianSchedule.linear(1000)
        if not isinstance(self.schedule, GaussianSchedule):
            raise ValueError(f"schedule must be a GaussianSchedule, got "
                             f"{type(self.schedule).__name__}.")
        self.parameterisation = get_parameterisation(parameterisation)
        self.weighting = check_choice(weighting, "weighting", WEIGHTINGS)
        self.reverse_variance = check_choice(reverse_variance, "reverse_variance",
                                             REVERSE_VARIANCES)

    def loss(self, batch: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return diffusion_loss(self.denoiser, batch, self.schedule, self.parameterisation,
                              weighting=self.weighting, reverse_variance=self.reverse_variance,
                              generator=generator).mean()

    def _coefficients(self, x: Tensor, l: Tensor | int) -> tuple[Any, Any, Tensor]:
        """(α_l, s_l, t = l/L) broadcastable against x: Python floats for one int level (the
        samplers' case: no indexing per step), else (N, 1, ...) tensors."""
        L = self.schedule.L
        if isinstance(l, int):
            if not 0 <= l <= L:
                raise ValueError(f"l must lie in 0..{L}, got {l}.")
            cache = self.__dict__.get("_alpha_sigma_lists")
            if cache is None:
                cache = (self.schedule.alpha.tolist(), self.schedule.sigma.tolist())
                self.__dict__["_alpha_sigma_lists"] = cache
            t = torch.full((x.shape[0],), l / L, dtype=x.dtype, device=x.device)
            return cache[0][l], cache[1][l], t
        lv = self.schedule.check_levels(l, minimum=0).to(x.device).expand(x.shape[0])
        a = _bcast(self.schedule.alpha.to(x.device)[lv], x)
        s = _bcast(self.schedule.sigma.to(x.device)[lv], x)
        return a, s, lv.to(x.dtype) / L

    def predict_x0(self, x: Tensor, l: Tensor | int) -> Tensor:
        """m̂(x_l, l): the denoiser's estimate of E[x_0 | x_l] (N, *event)."""
        a, s, t = self._coefficients(x, l)
        return self.parameterisation.to_x0(self.denoiser(x, t), x, a, s)

    def score(self, x: Tensor, l: Tensor | int) -> Tensor:
        """Eq. 8.47: f̂(x_l, l) = (α_l m̂ − x_l)/s_l², the estimated force of p(x_l)."""
        a, s, t = self._coefficients(x, l)
        return self.parameterisation.to_score(self.denoiser(x, t), x, a, s)

    @torch.no_grad()
    def sample(self, n: int, event_shape: tuple[int, ...], *,
               generator: torch.Generator | None = None, sampler: str = "ancestral",
               steps: int | None = None, eta: float = 0.0, return_chain: bool = False,
               dtype: torch.dtype = torch.float32, device: Any = None) -> Any:
        """n draws of shape (n, *event_shape): ``"ancestral"`` (DDPM, every level) or
        ``"ddim"`` (``steps`` evenly spaced levels, stochasticity ``eta`` ∈ [0, 1]). With
        ``return_chain`` also the chain (levels, states) for a film strip."""
        from genmodels.inference.samplers import ancestral_sample, ddim_sample

        sampler = check_choice(sampler, "sampler", ("ancestral", "ddim"))
        n = check_positive_int(n, "n")
        dev = device if device is not None else _device_of(self.denoiser)
        xL = torch.randn((n, *event_shape), generator=generator, dtype=dtype, device=dev)
        if sampler == "ancestral":
            return ancestral_sample(self.predict_x0, self.schedule, xL, generator=generator,
                                    reverse_variance=self.reverse_variance,
                                    return_chain=return_chain)
        return ddim_sample(self.predict_x0, self.schedule, xL, steps=steps or self.schedule.L,
                           eta=eta, generator=generator, return_chain=return_chain)

    # -- saving (genmodels.io): the denoiser must itself be savable (a genmodels denoiser)
    def get_config(self) -> dict[str, Any]:
        from genmodels.io import Savable, class_path

        if not isinstance(self.denoiser, Savable):
            raise ValueError(f"the denoiser {type(self.denoiser).__name__} is not savable; "
                             "save its state_dict yourself or use a genmodels denoiser.")
        return {"denoiser_class": class_path(self.denoiser),
                "denoiser_config": self.denoiser.get_config(),
                "parameterisation": self.parameterisation.name,
                "weighting": self.weighting, "reverse_variance": self.reverse_variance}

    def state_tensors(self) -> dict[str, Tensor]:
        out = {f"denoiser.{k}": v.detach().contiguous()
               for k, v in self.denoiser.state_dict().items()}
        out["schedule.alpha"], out["schedule.sigma"] = self.schedule.alpha, self.schedule.sigma
        return out

    @classmethod
    def from_saved(cls, config: dict[str, Any], tensors: dict[str, Tensor]) -> GaussianDiffusion:
        from genmodels.io import import_class

        den = import_class(config["denoiser_class"]).from_saved(
            config["denoiser_config"],
            {k.removeprefix("denoiser."): v for k, v in tensors.items()
             if k.startswith("denoiser.")})
        sched = GaussianSchedule(tensors["schedule.alpha"].cpu(), tensors["schedule.sigma"].cpu())
        return cls(den, sched, config["parameterisation"], weighting=config["weighting"],
                   reverse_variance=config["reverse_variance"])

    def elbo(self, x0: Tensor, *, levels_of_data: int | None = None, chunk: int = 64,
             generator: torch.Generator | None = None) -> DiffusionELBO:
        """``diffusion_elbo`` of this model on x0 (N, *event)."""
        return diffusion_elbo(self.denoiser, x0, self.schedule, self.parameterisation,
                              reverse_variance=self.reverse_variance,
                              levels_of_data=levels_of_data, chunk=chunk, generator=generator)


class DiffusionLatentModel(nn.Module):
    """A ``GaussianDiffusion`` on vector data seen as a latent-variable model (the face that
    ``genmodels.testing.check_bound_model`` checks): latents x = (x_1, ..., x_L), observations
    y = x_0, joint p̂(x_{0:L}) = N(x_L; 0, I) Π_l p̂(x_{l−1} | x_l) (Eqs 8.30, 8.33) with the
    decoder p̂(x_0 | x_1) = N(m̂(x_1), σ_1² I), and recognition the forward process
    q(x_{1:L} | x_0) = Π_l p̌(x_l | x_{l−1}) (Eq. 8.37).

    model: the diffusion model (its denoiser, schedule, parameterisation, reverse variances);
    dim: D. Latent codes are flattened: x (S, N, L·D), levels 1..L in order.

    ``elbo`` is the model's own (Rao–Blackwellised) ``GaussianDiffusion.elbo``;
    ``iwae_bound(y, k)`` the importance-weighted bound with q as the proposal (Burda et al.
    2016), so its k = 1 mean is the same ELBO by a different estimator. ``sample_joint`` draws
    the whole chain including the decoder's noise (the ancestral sampler returns the decoder's
    mean at the last step, which is not a draw from p̂(x_0)).
    """

    def __init__(self, model: GaussianDiffusion, dim: int) -> None:
        super().__init__()
        if not isinstance(model, GaussianDiffusion):
            raise ValueError(f"model must be a GaussianDiffusion, got {type(model).__name__}.")
        self.model = model
        self.dim = check_positive_int(dim, "dim")

    @property
    def L(self) -> int:
        return self.model.schedule.L

    def _reverse(self) -> tuple[list[float], list[float], list[float]]:
        """Per level l (index l, 1..L): μ_l = c0 m̂(x_l) + cm x_l and σ_l (σ_1 the decoder's)."""
        from genmodels.inference.samplers import _step_coefficients

        return _step_coefficients(self.model.schedule, self.model.reverse_variance)

    def _unflatten(self, x: Tensor) -> Tensor:
        """(S, N, L·D) → (S, N, L, D), checked."""
        if x.dim() != 3 or x.shape[-1] != self.L * self.dim:
            raise ValueError(f"latents must be (S, N, L·D) = (S, N, {self.L * self.dim}), got "
                             f"{tuple(x.shape)}.")
        return x.reshape(*x.shape[:2], self.L, self.dim)

    @staticmethod
    def _log_normal(x: Tensor, mean: Tensor, std: float) -> Tensor:
        d = x.shape[-1]
        return -0.5 * ((x - mean) ** 2).sum(-1) / std**2 - d * (math.log(std)
                                                                + 0.5 * math.log(2 * math.pi))

    def log_joint(self, x: Tensor, y: Tensor) -> Tensor:
        """log p̂(x_{1:L}, x_0 = y): x (S, N, L·D), y (N, D) → (S, N)."""
        xs = self._unflatten(x)
        check_finite(y, "y")
        s, n = xs.shape[:2]
        c0, cm, sd = self._reverse()
        chain = torch.cat([y.expand(s, n, self.dim)[:, :, None], xs], 2)  # (S, N, L+1, D)
        out = self._log_normal(chain[:, :, self.L], torch.zeros((), dtype=y.dtype), 1.0)
        for l in range(self.L, 0, -1):
            xl = chain[:, :, l].reshape(s * n, self.dim)
            mean = c0[l] * self.model.predict_x0(xl, l) + cm[l] * xl
            out = out + self._log_normal(chain[:, :, l - 1], mean.reshape(s, n, self.dim),
                                         sd[l])
        return out

    def _recognise(self, y: Tensor, k: int, generator: torch.Generator | None
                   ) -> tuple[Tensor, Tensor]:
        """k draws of the forward chain from y (N, D): (x (k, N, L·D), log q (k, N))."""
        sched = self.model.schedule
        x, log_q, states = y.expand(k, *y.shape), torch.zeros(k, y.shape[0], dtype=y.dtype), []
        for l in range(1, self.L + 1):
            beta, gamma = (float(v) for v in sched.q_transition(l, l - 1))
            nxt = beta * x + gamma * torch.randn(x.shape, generator=generator, dtype=y.dtype)
            log_q = log_q + self._log_normal(nxt, beta * x, gamma)
            states.append(nxt)
            x = nxt
        return torch.stack(states, 2).reshape(k, y.shape[0], self.L * self.dim), log_q

    def elbo(self, y: Tensor, n_samples: int = 1, generator: torch.Generator | None = None
             ) -> Tensor:
        """The model's ELBO per datum (N,) (``GaussianDiffusion.elbo``; one draw per level,
        the KLs in closed form), averaged over ``n_samples`` repetitions."""
        n_samples = check_positive_int(n_samples, "n_samples")
        return torch.stack([self.model.elbo(y, generator=generator).elbo
                            for _ in range(n_samples)]).mean(0)

    @torch.no_grad()
    def iwae_bound(self, y: Tensor, k: int, *, generator: torch.Generator | None = None
                   ) -> Tensor:
        """log (1/k) Σ_i p̂(x^i, y)/q(x^i | y), x^i ~ q(x_{1:L} | y): (N,), ≤ log p̂(y) in
        expectation and rising with k."""
        k = check_positive_int(k, "k")
        check_finite(y, "y")
        x, log_q = self._recognise(y, k, generator)
        return torch.logsumexp(self.log_joint(x, y) - log_q, 0) - math.log(k)

    @torch.no_grad()
    def sample_joint(self, n: int, *, generator: torch.Generator | None = None
                     ) -> tuple[Tensor, Tensor]:
        """(x_{1:L} (n, L·D), x_0 (n, D)) from p̂, the decoder's noise included."""
        c0, cm, sd = self._reverse()
        p = next(self.model.parameters(), None)
        dt = p.dtype if p is not None else torch.float32
        x = torch.randn(check_positive_int(n, "n"), self.dim, generator=generator, dtype=dt)
        states = [x]
        for l in range(self.L, 0, -1):
            mean = c0[l] * self.model.predict_x0(x, l) + cm[l] * x
            x = mean + sd[l] * torch.randn(x.shape, generator=generator, dtype=dt)
            states.append(x)
        latents = torch.stack(states[:-1][::-1], 1)  # x_1..x_L: (n, L, D)
        return latents.reshape(n, self.L * self.dim), x

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        return self.sample_joint(n, generator=generator)[1]

    # -- saving (genmodels.io)
    def get_config(self) -> dict[str, Any]:
        return {"dim": self.dim, "model": self.model.get_config()}

    def state_tensors(self) -> dict[str, Tensor]:
        return self.model.state_tensors()

    @classmethod
    def from_saved(cls, config: dict[str, Any], tensors: dict[str, Tensor]
                   ) -> DiffusionLatentModel:
        return cls(GaussianDiffusion.from_saved(config["model"], tensors), config["dim"])


def _device_of(module: Any) -> torch.device:
    if isinstance(module, nn.Module):
        for p in module.parameters():
            return p.device
    return torch.device("cpu")
