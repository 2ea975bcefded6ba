"""Monte Carlo gradient estimators for ∇_φ E_{q(x; φ)}[f(x)] (book §8.2.1–8.2.2, slides S0, S2).

Every estimator is a small object called as ``estimator(f, dist, num_samples, generator=...)``
and returns a :class:`GradientEstimate`. Its ``loss`` carries Pyro's surrogate trick,
``value + (surrogate − surrogate.detach())``: in the forward pass it *is* the Monte Carlo
estimate of E_q[f], and ``loss.sum().backward()`` puts the estimator's gradient into the
parameters that ``dist`` (and f) were built from. So swapping estimators never changes the
training loop.

Conventions: ``dist`` is a ``torch.distributions.Distribution`` (any batch shape);
``x = dist.sample((S,))`` has shape (S, *batch, *event) and ``f(x)`` must return (S, *batch)
— one value per draw and batch element, with no coupling between draws. ``loss``/``value`` then
have shape (*batch): the average over the S draws. f may depend on parameters directly (e.g. a
decoder); that part of the gradient is always included.

Estimators:

* :class:`ScoreFunction` — REINFORCE / likelihood ratio (book §8.2.1, S2:318–333):
  ``∇E[f] = E[f(x) ∇ log q(x)]``, with optional :class:`Baseline` and :class:`ControlVariate`.
  Needs only ``log_prob``: works for discrete x and non-differentiable f; variance grows with
  the number of latent dimensions (B:2503–2507).
* :class:`Pathwise` — reparameterisation (Eqs. 8.23–8.25): ``x = g(ε, φ)`` via ``rsample``;
  ``∇E[f] = E[(∂g/∂φ)ᵀ ∇f(g(ε, φ))]``. Needs differentiable f and a ``dist.has_rsample``.
* :class:`GaussianBackprop` — Bonnet's and Price's theorems combined by the chain rule (S0):
  ``∇_θ E[f] = E[gᵀ ∂μ/∂θ + ½ Tr(H ∂Σ/∂θ)]``, g = ∇f and H = ∇²f at x ~ N(μ, Σ).
* :class:`ImplicitReparam` — the general-distribution "B(x)" form (CATALOGUE G12, the corrected
  version of the slides' formula): ``∇_θ E[f] = E[B(x) f′(x)]``, ``B(x) = −∂_θF(x|θ)/p(x|θ)``
  for any distribution with a differentiable CDF F (Figurnov, Mohamed & Mnih 2018).
* :class:`GumbelSoftmax` — the Concrete relaxation (Eq. 8.29) of a categorical, with optional
  straight-through; biased (it differentiates a relaxed objective) with bias → 0 as τ → 0.

Also: the Gumbel distribution (:func:`sample_gumbel`, :func:`gumbel_log_prob`,
:func:`gumbel_cdf`), the Gumbel-max trick (:func:`gumbel_max_sample`, Eqs. 8.27–8.28), relaxed
samples (:func:`gumbel_softmax_sample`) and their density (:func:`concrete_log_prob`); the
theorems as direct estimators (:func:`bonnet_gradient`, :func:`price_gradient`); and
:func:`gradient_diagnostics`, which measures any estimator's bias and variance against a
reference gradient in one vectorised pass.

Randomness: every function takes an optional ``torch.Generator``. torch's distributions draw
from the global generator, so a draw is made inside ``torch.random.fork_rng`` seeded from the
given generator: reproducible, and the global state is left untouched.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn
from torch.distributions import Distribution, Independent, MultivariateNormal, Normal

from genmodels._validation import global_rng_from
from genmodels.learning.trainer import global_batch_mean

Objective = Callable[[Tensor], Tensor]


class GradientEstimate(NamedTuple):
    """One Monte Carlo gradient estimate of E_q[f].

    loss: (*batch) — equals ``value`` in the forward pass; its gradient is the estimator's
        gradient (``value + (surrogate − surrogate.detach())``).
    value: (*batch) — the Monte Carlo estimate ⟨f(x)⟩ over the S draws (detached).
    surrogate: (*batch) — the surrogate objective whose gradient is the estimate.
    samples: (S, *batch, *event) — the draws (detached; relaxed draws for Gumbel-softmax).
    """

    loss: Tensor
    value: Tensor
    surrogate: Tensor
    samples: Tensor


def _estimate(value: Tensor, surrogate: Tensor, samples: Tensor) -> GradientEstimate:
    value = value.detach()
    return GradientEstimate(value + (surrogate - surrogate.detach()), value, surrogate,
                            samples.detach())


def _check_num_samples(num_samples: int, minimum: int = 1) -> int:
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < minimum:
        raise ValueError(f"num_samples must be an integer >= {minimum}, got {num_samples!r}.")
    return num_samples


def _forked(generator: torch.Generator | None, draw: Callable[[], Tensor]) -> Tensor:
    """Run ``draw`` (which uses torch's global generator) seeded from ``generator``."""
    with global_rng_from(generator):
        return draw()


def draw(dist: Distribution, num_samples: int, generator: torch.Generator | None = None, *,
         reparameterized: bool = False) -> Tensor:
    """``num_samples`` draws from ``dist``: (S, *batch, *event); ``rsample`` if reparameterized."""
    shape = torch.Size([num_samples])
    if reparameterized:
        if not dist.has_rsample:
            raise ValueError(
                f"{type(dist).__name__} has no reparameterised sampler (rsample); use "
                "ScoreFunction, ImplicitReparam (if it has a CDF) or GumbelSoftmax (categorical)."
            )
        return _forked(generator, lambda: dist.rsample(shape))
    return _forked(generator, lambda: dist.sample(shape))


def _check_values(fx: Tensor, x: Tensor, dist: Distribution) -> Tensor:
    want = x.shape[: x.dim() - len(dist.event_shape)]
    if fx.shape != want:
        raise ValueError(
            f"f(x) must return one value per draw and batch element, shape {tuple(want)}; got "
            f"{tuple(fx.shape)}."
        )
    return fx


# --------------------------------------------------------------------------- baselines


class Baseline:
    """A baseline b for the score-function estimator: ``E[∇log q(x) (f(x) − b)]``.

    Unbiased whenever b does not depend on the draw x it multiplies, because the expected score
    is zero: ``E[∇ log q(x)] = ∫ ∇q = ∇1 = 0`` (B:2511). Its effect on the variance, for one
    parameter with score s: ``Var[s(f − b)] = Var[s f] − 2b E[s² f] + b² E[s²]``, minimised at
    ``b* = E[s² f]/E[s²]`` and smaller than without a baseline for any b between 0 and 2b* —
    so a baseline near the typical value of f helps most when f has a large offset.
    """

    def __call__(self, f: Tensor, context: Tensor | None) -> Tensor | float:
        """The baseline for each draw; f: (S, *batch) detached values. Must not use f[s] for s."""
        raise NotImplementedError

    def loss(self, f: Tensor, context: Tensor | None) -> Tensor | float:
        """An extra term added to the surrogate (only learned baselines have one)."""
        return 0.0

    def update(self, f: Tensor) -> None:
        """Called after each estimate with the detached values f (S, *batch)."""


class ConstantBaseline(Baseline):
    """A fixed b. Unbiased; lowers the variance for b in (0, 2b*) (see :class:`Baseline`)."""

    def __init__(self, value: float) -> None:
        self.value = float(value)

    def __call__(self, f: Tensor, context: Tensor | None) -> float:
        return self.value


class MovingAverageBaseline(Baseline):
    """b = exponential moving average of past ⟨f⟩ (decay ρ): ``b ← ρ b + (1 − ρ)⟨f⟩``.

    Unbiased because b uses only earlier calls' draws (the first call uses b = 0). Tracks
    b ≈ E[f], near the optimum b* when the score and f are weakly dependent; a scalar over all
    batch elements (the "running average reward" of REINFORCE, Williams 1992). In a
    data-parallel step ⟨f⟩ is the global batch's (``global_batch_mean``), so every process keeps
    the average one process would.
    """

    def __init__(self, decay: float = 0.9) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay!r}.")
        self.decay = float(decay)
        self.average: float | None = None

    def __call__(self, f: Tensor, context: Tensor | None) -> float:
        return 0.0 if self.average is None else self.average

    def update(self, f: Tensor) -> None:
        m = float(global_batch_mean(f))
        if self.average is None:
            self.average = m
        else:
            self.average = self.decay * self.average + (1 - self.decay) * m


class _ScalarModule(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.b = nn.Parameter(torch.zeros(()))

    def forward(self) -> Tensor:
        return self.b


class LearnedBaseline(nn.Module, Baseline):
    """b = net(context), trained alongside by regressing f: the surrogate gains ⟨(f − b)²⟩,
    whose gradient reaches only the baseline's parameters (the reported value is unchanged).

    ``net`` maps the context (e.g. the data y a recognition model conditions on, (*batch, C))
    to (*batch, 1) or (*batch); with ``net=None`` b is one learned scalar. Unbiased because b
    depends on the context, never on the draw x; minimising ⟨(f − b)²⟩ drives b to E[f | y]
    (Mnih & Gregor 2014's input-dependent baseline). Put its parameters in the optimiser.
    """

    def __init__(self, net: nn.Module | None = None) -> None:
        super().__init__()
        self.net = net if net is not None else _ScalarModule()

    def predict(self, context: Tensor | None) -> Tensor:
        out = self.net() if context is None else self.net(context)
        return out.squeeze(-1) if out.dim() > 0 and out.shape[-1] == 1 else out

    def __call__(self, f: Tensor, context: Tensor | None) -> Tensor:
        return self.predict(context).detach()

    def loss(self, f: Tensor, context: Tensor | None) -> Tensor:
        return ((f - self.predict(context)) ** 2).mean(0)


class LeaveOneOutBaseline(Baseline):
    """b_s = mean of f over the other S − 1 draws (Kool, van Hoof & Welling 2019, "RLOO").

    Unbiased (b_s is independent of draw s); approximates E[f] without any state or extra
    parameters; needs S ≥ 2. Equivalent to ``S/(S−1) · ⟨∇log q · (f − ⟨f⟩)⟩``.
    """

    def __call__(self, f: Tensor, context: Tensor | None) -> Tensor:
        S = f.shape[0]
        if S < 2:
            raise ValueError("LeaveOneOutBaseline needs num_samples >= 2.")
        return (f.sum(0, keepdim=True) - f) / (S - 1)


class ControlVariate(NamedTuple):
    """A control variate h with a known, differentiable expectation.

    The score-function estimate becomes ``∇log q (f − c h) + c ∇E_q[h]``: unbiased for any c,
    and of lower variance when ``2c Cov(ĝ_f, ĝ_h) > c² Var(ĝ_h)`` — i.e. when h tracks f (c = 1
    for h ≈ f; the best c is Cov/Var).

    h: x (S, *batch, *event) → (S, *batch).
    expectation: dist → E_q[h] (*batch), differentiable in the distribution's parameters.
    coefficient: c.
    """

    h: Objective
    expectation: Callable[[Distribution], Tensor]
    coefficient: float = 1.0


# --------------------------------------------------------------------------- estimators


class ScoreFunction:
    """Score-function (REINFORCE) estimator: ``∇_φ E[f] = E[f(x) ∇_φ log q(x; φ)]`` (B:2493).

    Surrogate (per draw): ``f(x) + log q(x) · (f(x) − b − Σ c h(x))ᵈᵉᵗ`` plus ``Σ c E_q[h]``
    and, for a learned baseline, its regression loss. Unbiased for any baseline independent of
    the draw and any control-variate coefficient (expected score zero).

    Args:
        baseline: a :class:`Baseline` (None: b = 0).
        control_variates: :class:`ControlVariate` s.
    """

    def __init__(self, baseline: Baseline | None = None,
                 control_variates: Sequence[ControlVariate] = ()) -> None:
        self.baseline = baseline
        self.control_variates = tuple(control_variates)

    def __call__(self, f: Objective, dist: Distribution, num_samples: int = 1, *,
                 generator: torch.Generator | None = None,
                 context: Tensor | None = None, sample: Tensor | None = None
                 ) -> GradientEstimate:
        """``sample``: the S draws (S, *batch, *event) when the caller draws them itself (e.g.
        by global sample index, so data-parallel processes draw the single-process noise);
        otherwise drawn from ``dist`` with ``generator``."""
        S = _check_num_samples(num_samples)
        if sample is not None:
            want = (S, *dist.batch_shape, *dist.event_shape)
            if tuple(sample.shape) != want:
                raise ValueError(f"sample must have shape {want} (num_samples, *batch, "
                                 f"*event), got {tuple(sample.shape)}.")
        x = (draw(dist, S, generator) if sample is None else sample).detach()
        fx = _check_values(f(x), x, dist)  # may carry f's own parameters
        fd = fx.detach()
        logq = dist.log_prob(x)  # (S, *batch)
        weight = fd
        extra: Tensor | float = 0.0
        if self.baseline is not None:
            weight = weight - self.baseline(fd, context)
            extra = self.baseline.loss(fd, context)
        for cv in self.control_variates:
            weight = weight - cv.coefficient * cv.h(x).detach()
            extra = extra + cv.coefficient * cv.expectation(dist)
        surrogate = (fx + logq * weight.detach()).mean(0) + extra
        if self.baseline is not None:
            self.baseline.update(fd)
        return _estimate(fd.mean(0), surrogate, x)


class Pathwise:
    """Pathwise (reparameterisation) estimator: ``x = g(ε, φ)`` with parameter-free ε,
    ``∇_φ E[f] = E_ε[(∂g/∂φ)ᵀ ∂f/∂x (g(ε, φ))]`` (B:2531). Uses ``dist.rsample`` (Normal,
    MultivariateNormal, Exponential, Gamma, ...); f must be differentiable in x. Its variance
    does not grow with latent dimensions that f ignores (B:2537)."""

    def __call__(self, f: Objective, dist: Distribution, num_samples: int = 1, *,
                 generator: torch.Generator | None = None,
                 context: Tensor | None = None) -> GradientEstimate:
        S = _check_num_samples(num_samples)
        x = draw(dist, S, generator, reparameterized=True)
        fx = _check_values(f(x), x, dist)
        return _estimate(fx.detach().mean(0), fx.mean(0), x)


class ImplicitReparam:
    """The general "B(x)" estimator ``∇_θ E[f] = E[B(x) f′(x)]``, ``B(x) = −∂_θF(x|θ)/p(x|θ)``.

    Correct form of the slides' general-distribution rule (S0:98–107 gives
    ``B = (∇_θ log p)/(∇_x log p)`` for exponential families, which is wrong even in sign for a
    Gaussian mean and fails for scale parameters; CATALOGUE G12/S0-4). Derivation: along the
    quantile path x(θ) = F⁻¹(u; θ) with u fixed, ``F(x(θ); θ) = u`` gives
    ``dx/dθ = −∂_θF/p``, and the pathwise rule applies. Implemented without F⁻¹: the draw x is
    replaced by ``x̃ = x − (F(x;θ) − F(x;θ)ᵈᵉᵗ)/p(x)ᵈᵉᵗ``, equal to x with derivative B(x).
    Gaussian: B_μ = 1, B_σ = (x − μ)/σ; exponential rate λ: B_λ = −x/λ.

    Needs ``dist.cdf`` differentiable in the parameters (Normal, Laplace, Exponential, Cauchy,
    Uniform, ...); a distribution with several independent coordinates is handled coordinatewise
    (each coordinate's own CDF).
    """

    def __call__(self, f: Objective, dist: Distribution, num_samples: int = 1, *,
                 generator: torch.Generator | None = None,
                 context: Tensor | None = None) -> GradientEstimate:
        S = _check_num_samples(num_samples)
        if dist.event_shape != torch.Size([]):
            raise ValueError("ImplicitReparam needs a univariate (coordinatewise) distribution.")
        x = draw(dist, S, generator).detach()
        x_tilde = implicit_reparam(dist, x)
        fx = _check_values(f(x_tilde), x, dist)
        return _estimate(fx.detach().mean(0), fx.mean(0), x)


def implicit_reparam(dist: Distribution, x: Tensor) -> Tensor:
    """x with the implicit-reparameterisation derivative ``dx/dθ = −∂_θF(x|θ)/p(x|θ)`` attached.

    x: draws from ``dist`` (detached), shape (S, *batch). The value is x itself.
    """
    try:
        F = dist.cdf(x)
    except NotImplementedError as err:
        raise ValueError(f"{type(dist).__name__} has no cdf; ImplicitReparam needs one.") from err
    p = dist.log_prob(x).detach().exp()
    return x - (F - F.detach()) / p


class GaussianBackprop:
    """Gaussian stochastic backpropagation (S0, "Backpropagation"; Rezende et al. 2014)::

        ∇_θ E_{N(μ,Σ)}[f] = E[gᵀ ∂μ/∂θ + ½ Tr(H ∂Σ/∂θ)],   g = ∇f(x),  H = ∇²f(x),

    i.e. Bonnet's theorem (∇_μ E[f] = E[∇f]) and Price's (∇_Σ E[f] = ½E[∇²f], Σ_ij and Σ_ji as
    separate entries) chained through μ(θ), Σ(θ). Surrogate: ``⟨gᵈᵉᵗᵀ μ + ½ tr(Hᵈᵉᵗ Σ)⟩``.

    ``dist``: a ``MultivariateNormal`` or ``Independent(Normal, 1)`` (f: (S, *batch, D) →
    (S, *batch)), or a univariate ``Normal`` (f elementwise: (S, *batch) → (S, *batch)).
    f must be twice differentiable; H costs D extra backward passes.
    """

    def __call__(self, f: Objective, dist: Distribution, num_samples: int = 1, *,
                 generator: torch.Generator | None = None,
                 context: Tensor | None = None) -> GradientEstimate:
        S = _check_num_samples(num_samples)
        if not isinstance(dist, (MultivariateNormal, Independent, Normal)):
            raise ValueError(
                "GaussianBackprop needs a Normal, Independent(Normal, 1) or MultivariateNormal."
            )
        x = draw(dist, S, generator).detach()
        xf = x.clone().requires_grad_(True)
        fx = _check_values(f(xf), x, dist)
        if isinstance(dist, MultivariateNormal):
            g, H = _grad_and_hessian(fx, xf)  # (S, *batch, D), (S, *batch, D, D)
            surrogate_terms = ((g * dist.loc).sum(-1)
                               + 0.5 * (H * dist.covariance_matrix).sum((-1, -2)))
        elif isinstance(dist, Independent) and isinstance(dist.base_dist, Normal) \
                and dist.reinterpreted_batch_ndims == 1:
            base = dist.base_dist
            g, H = _grad_and_hessian(fx, xf)
            Hdiag = H.diagonal(dim1=-2, dim2=-1)  # Σ is diagonal: only H_ii enter the trace
            surrogate_terms = (g * base.loc).sum(-1) + 0.5 * (Hdiag * base.scale**2).sum(-1)
        elif isinstance(dist, Normal):
            # Univariate per batch element: f(x)[s, b] depends on x[s, b] only, so the second
            # derivative is the derivative of the summed first derivative.
            (g,) = torch.autograd.grad(fx.sum(), xf, create_graph=True)
            h = (torch.autograd.grad(g.sum(), xf, allow_unused=True)[0]
                 if g.requires_grad else None)
            h = torch.zeros_like(x) if h is None else h
            surrogate_terms = g.detach() * dist.loc + 0.5 * h.detach() * dist.scale**2
        else:
            raise ValueError(
                "GaussianBackprop needs a Normal, Independent(Normal, 1) or MultivariateNormal."
            )
        # f evaluated at the detached draw keeps any direct dependence of f on parameters.
        surrogate = (f(x) + surrogate_terms).mean(0)
        return _estimate(fx.detach().mean(0), surrogate, x)


def _grad_and_hessian(fx: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
    """g = ∂f/∂x (*, D) and H = ∂²f/∂x∂xᵀ (*, D, D) per draw and batch element, detached.

    f(x)[s, b] must depend on x[s, b, :] only (no coupling), so summing before differentiating
    gives every draw's own derivatives at once.
    """
    (g,) = torch.autograd.grad(fx.sum(), x, create_graph=True)
    rows = []
    for i in range(x.shape[-1]):  # one backward pass per coordinate (D is a latent dim)
        if g.requires_grad:
            (h,) = torch.autograd.grad(g[..., i].sum(), x, retain_graph=True, allow_unused=True)
        else:  # f linear in x: no second derivative
            h = None
        rows.append(torch.zeros_like(x) if h is None else h)
    return g.detach(), torch.stack(rows, -2).detach()


class GumbelSoftmax:
    """Gumbel-softmax / Concrete estimator for categorical x (Eq. 8.29; Maddison et al. 2017,
    Jang et al. 2017): f is evaluated at the relaxed one-hot ``y = softmax((η + G)/τ)`` and
    differentiated pathwise (B:2631).

    The gradient is that of the relaxed objective E[f(y_τ)], a biased estimate of ∇E[f(one-hot)]
    whose bias vanishes as τ → 0 while its variance grows like 1/τ (the Jacobian
    ``∂σ_l/∂g_m = σ_l(δ_lm − σ_m)/τ``, erratum E-39). ``straight_through=True`` (Bengio et al.
    2013) evaluates f at the hard one-hot argmax (so ``value`` is an unbiased estimate of E[f])
    and backpropagates through the relaxed sample.

    ``dist``: a ``Categorical`` or ``OneHotCategorical`` (its logits η are used); f takes
    one-hot-like vectors (S, *batch, K).
    """

    def __init__(self, temperature: float = 1.0, straight_through: bool = False) -> None:
        if not (isinstance(temperature, (int, float)) and temperature > 0):
            raise ValueError(f"temperature must be > 0, got {temperature!r}.")
        self.temperature = float(temperature)
        self.straight_through = straight_through

    def __call__(self, f: Objective, dist: Distribution, num_samples: int = 1, *,
                 generator: torch.Generator | None = None,
                 context: Tensor | None = None) -> GradientEstimate:
        S = _check_num_samples(num_samples)
        logits = getattr(dist, "logits", None)
        if logits is None:
            raise ValueError("GumbelSoftmax needs a Categorical or OneHotCategorical distribution.")
        y = gumbel_softmax_sample(logits, self.temperature, (S,), generator=generator,
                                  hard=self.straight_through)
        fy = f(y)
        if fy.shape != y.shape[:-1]:
            raise ValueError(
                f"f(y) must return shape {tuple(y.shape[:-1])}, got {tuple(fy.shape)}."
            )
        return _estimate(fy.detach().mean(0), fy.mean(0), y)


# --------------------------------------------------------------------------- Gumbel (A14, G15, G16)


def sample_gumbel(shape: Sequence[int] | torch.Size, loc: Tensor | float = 0.0,
                  scale: Tensor | float = 1.0, *, generator: torch.Generator | None = None,
                  dtype: torch.dtype | None = None,
                  device: torch.device | str | None = None) -> Tensor:
    """Gumbel draws ``loc − scale · log E``, E ~ Exp(1) (A14: G = −log(−log U), with −log U = E).

    Drawing E directly with ``exponential_`` avoids log 0 at U ∈ {0, 1}; E is floored at the
    dtype's smallest normal number so G stays finite.
    """
    dt = dtype or torch.get_default_dtype()
    e = torch.empty(tuple(shape), dtype=dt, device=device).exponential_(generator=generator)
    return loc - scale * torch.log(e.clamp_min(torch.finfo(dt).tiny))


def gumbel_log_prob(g: Tensor, loc: Tensor | float = 0.0, scale: Tensor | float = 1.0) -> Tensor:
    """log f(g; loc, scale) = −log scale − (z + e^{−z}), z = (g − loc)/scale (B:2589)."""
    z = (g - loc) / scale
    return -(z + torch.exp(-z)) - torch.log(torch.as_tensor(scale, dtype=z.dtype))


def gumbel_cdf(g: Tensor, loc: Tensor | float = 0.0, scale: Tensor | float = 1.0) -> Tensor:
    """F(g; loc, scale) = exp(−e^{−(g − loc)/scale}) (B:2589)."""
    return torch.exp(-torch.exp(-(g - loc) / scale))


def gumbel_max_sample(logits: Tensor, sample_shape: Sequence[int] = (), *,
                      generator: torch.Generator | None = None,
                      gumbels: Tensor | None = None) -> Tensor:
    """Categorical draws by the Gumbel-max trick: ``argmax_k (η_k + G_k)`` with one i.i.d.
    standard Gumbel G_k **per category** (Eq. 8.28; a single G shared by all categories — the
    slides' notation, erratum S2-14 — would always return argmax η).

    logits η: (*batch, K), unnormalised log-probabilities → indices (*sample_shape, *batch).
    gumbels: the standard Gumbel draws G to use, (*sample_shape, *batch, K) (default: drawn
    from ``generator``).
    """
    shape = (*sample_shape, *logits.shape)
    G = gumbels if gumbels is not None else sample_gumbel(
        shape, generator=generator, dtype=logits.dtype, device=logits.device)
    return torch.argmax(logits + G, dim=-1)  # Eqs. 8.27–8.28


def gumbel_softmax_sample(logits: Tensor, temperature: float, sample_shape: Sequence[int] = (),
                          *, generator: torch.Generator | None = None,
                          hard: bool = False, gumbels: Tensor | None = None) -> Tensor:
    """Relaxed one-hot draws ``y = softmax((η + G)/τ)`` (Eq. 8.29), computed as
    ``exp(log_softmax(·))`` so that any τ > 0 is safe (no overflow at τ → 0: the log-softmax
    subtracts the max). ``hard=True``: straight-through — the forward value is the one-hot
    argmax, the gradient that of the relaxed y. Returns (*sample_shape, *batch, K).
    gumbels: the standard Gumbel draws G to use (default: drawn from ``generator``).
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}.")
    shape = (*sample_shape, *logits.shape)
    G = gumbels if gumbels is not None else sample_gumbel(
        shape, generator=generator, dtype=logits.dtype, device=logits.device)
    log_y = torch.log_softmax((logits + G) / temperature, dim=-1)  # Eq. 8.29, in log space
    y = log_y.exp()
    if hard:
        one_hot = nn.functional.one_hot(log_y.argmax(-1), logits.shape[-1]).to(y.dtype)
        y = one_hot + (y - y.detach())
    return y


def concrete_log_prob(y: Tensor, logits: Tensor, temperature: float) -> Tensor:
    """Log-density of the Concrete (Gumbel-softmax) distribution on the simplex (the density
    the book leaves as "…", B:2627), with respect to Lebesgue measure on (y_1..y_{K−1})::

        p(y) = (K−1)! τ^{K−1} Π_k (α_k y_k^{−τ−1}) / (Σ_k α_k y_k^{−τ})^K,   α = e^η

    (Maddison, Mnih & Teh 2017, Eq. 12), evaluated in log space. y: (*, K) on the simplex.
    """
    K = y.shape[-1]
    log_y = torch.log(y)
    t = float(temperature)
    return (math.lgamma(K) + (K - 1) * math.log(t)
            + (logits - (t + 1.0) * log_y).sum(-1)
            - K * torch.logsumexp(logits - t * log_y, dim=-1))


# --------------------------------------------------------------------------- Bonnet & Price


def bonnet_gradient(grad_f: Callable[[Tensor], Tensor], mean: Tensor, scale_tril: Tensor,
                    num_samples: int, *, generator: torch.Generator | None = None) -> Tensor:
    """Bonnet's theorem as an estimator: ``∇_μ E_{N(μ,Σ)}[f] ≈ ⟨∇f(x)⟩``, x ~ N(μ, LLᵀ) (S0).

    grad_f: x (S, D) → ∇f (S, D). mean: (D,), scale_tril: L (D, D) → (D,).
    """
    x = draw(MultivariateNormal(mean, scale_tril=scale_tril), num_samples, generator)
    return grad_f(x).mean(0)


def price_gradient(hess_f: Callable[[Tensor], Tensor], mean: Tensor, scale_tril: Tensor,
                   num_samples: int, *, generator: torch.Generator | None = None,
                   symmetric: bool = False) -> Tensor:
    """Price's theorem as an estimator: ``∇_Σ E_{N(μ,Σ)}[f] ≈ ½⟨∇²f(x)⟩`` (S0).

    The ½ treats Σ_ij and Σ_ji as separate entries (so that ``dE = tr(∇_Σᵀ dΣ)``). With
    ``symmetric=True`` the derivative is with respect to one free parameter per pair
    (Σ_ij = Σ_ji moved together): off-diagonal entries are then ``⟨∂²f/∂x_i∂x_j⟩`` (no ½,
    erratum S0-6). hess_f: x (S, D) → (S, D, D). Returns (D, D).
    """
    x = draw(MultivariateNormal(mean, scale_tril=scale_tril), num_samples, generator)
    G = 0.5 * hess_f(x).mean(0)
    if symmetric:
        G = 2.0 * G - torch.diag_embed(G.diagonal())
    return G


# --------------------------------------------------------------------------- diagnostics


class EstimatorDiagnostics(NamedTuple):
    """Bias and variance of a gradient estimator, from R independent estimates.

    estimates: (R, *param_shape), one gradient estimate per repeat (each from S draws).
    mean: the average estimate.  variance: the per-estimate variance (unbiased, over repeats).
    standard_error: sqrt(variance / R), the error bar of ``mean``.
    bias: mean − reference (None without a reference).
    max_abs_z: max |bias| / standard_error over the coordinates (None without a reference).
    """

    estimates: Tensor
    mean: Tensor
    variance: Tensor
    standard_error: Tensor
    bias: Tensor | None
    max_abs_z: float | None


def gradient_diagnostics(
    estimator: Callable[..., GradientEstimate],
    f: Objective,
    make_dist: Callable[[Tensor], Distribution],
    params: Tensor,
    *,
    reference: Tensor | None = None,
    num_samples: int = 1,
    num_repeats: int = 1000,
    generator: torch.Generator | None = None,
    **kwargs: Any,
) -> EstimatorDiagnostics:
    """Measure an estimator's bias and variance at ``params`` in one vectorised pass.

    The parameters are replicated R times as a leaf of shape (R, *params.shape) and
    ``make_dist`` is called once on it: it must build a distribution whose leading batch
    dimension is the replicate (e.g. ``lambda p: Normal(2 * p + 3, 1.0)``). One call of the
    estimator with ``num_samples`` draws per replicate and one backward pass then give R
    independent gradient estimates (replicate r's loss depends only on its own copy of the
    parameters). Extra ``kwargs`` go to the estimator. With ``num_samples=1`` the variance is the
    per-sample variance of the estimator.
    """
    R = _check_num_samples(num_repeats, minimum=2)
    rep = params.detach().expand(R, *params.shape).clone().requires_grad_(True)
    est = estimator(f, make_dist(rep), num_samples, generator=generator, **kwargs)
    (grads,) = torch.autograd.grad(est.loss.sum(), rep)
    mean = grads.mean(0)
    var = grads.var(0, correction=1)
    se = (var / R).sqrt()
    if reference is None:
        return EstimatorDiagnostics(grads, mean, var, se, None, None)
    ref = torch.as_tensor(reference, dtype=mean.dtype, device=mean.device)
    bias = mean - ref
    z = (bias.abs() / se.clamp_min(torch.finfo(se.dtype).tiny)).max()
    return EstimatorDiagnostics(grads, mean, var, se, bias, float(z))


__all__ = [
    "Baseline",
    "ConstantBaseline",
    "ControlVariate",
    "EstimatorDiagnostics",
    "GaussianBackprop",
    "GradientEstimate",
    "GumbelSoftmax",
    "ImplicitReparam",
    "LearnedBaseline",
    "LeaveOneOutBaseline",
    "MovingAverageBaseline",
    "Pathwise",
    "ScoreFunction",
    "bonnet_gradient",
    "concrete_log_prob",
    "draw",
    "gradient_diagnostics",
    "gumbel_cdf",
    "gumbel_log_prob",
    "gumbel_max_sample",
    "gumbel_softmax_sample",
    "implicit_reparam",
    "price_gradient",
    "sample_gumbel",
]
