"""InfoMax and independent-components analysis as density estimation (book §5.2.1, §9.0.1–9.1).

The discriminative view (§5.2.1): an invertible map ``x̌ = d(y, θ)`` followed by elementwise
squashing functions ``ž_k = ψ_k(x̌_k)`` onto [0, 1] (Eqs. 5.22–5.23). Maximising the output
entropy H[Ž] (= the mutual information I(Y; Ž), Eq. 5.24) is the same as minimising
``D_KL{p(Y) ‖ p̂(Y; θ)}`` for the model density (Eqs. 5.25–5.26)::

    p̂(y; θ) = Π_k ψ′_k(d_k(y, θ)) · |∂d/∂yᵀ(y, θ)|.

The generative view (§9.0.1, Eqs. 9.1–9.3): ``ŷ = d⁻¹(x̂, θ)`` with independent latents whose
CDFs are ψ_k, so ψ′_k is the latent density; the same p̂(y; θ) follows by change of variables,
and the discriminative outputs ž = ψ(d(y)) are the latents passed through their own CDFs
(uniform and independent under a perfect model). InfoMax ICA (Bell & Sejnowski 1995) is the
linear case ``x̌ = D y`` (Eq. 5.27), i.e. ``ŷ = C x̂`` with ``C = D⁻¹`` (§9.1)::

    log p̂(y; D) = Σ_k log ψ′_k(d_kᵀ y) + log |det D|                         (Eq. 9.5)

The choice of ψ matters (§9.1): the Gaussian CDF makes the model ``N(0, D⁻¹D⁻ᵀ)`` (erratum
E-42), whose optimum only whitens (``DᵀD = E[YYᵀ]⁻¹``); the logistic ψ (a super-Gaussian
latent density) separates super-Gaussian sources; the *extended* InfoMax of Lee, Girolami &
Sejnowski (1999) switches each component between a super- and a sub-Gaussian density.

The latent densities are small objects (:class:`LogisticLatent`, :class:`GaussianLatent`,
:class:`SwitchingLatent`) with ``log_prob`` (= log ψ′), ``score`` (= d log ψ′/dx, the φ of the
learning rule) and ``sample``; :class:`ICAModel` holds the unmixing matrix and the data mean.
The learning algorithm (natural-gradient InfoMax) is in ``genmodels.learning.infomax``; the
scikit-learn face is ``genmodels.estimators.ica.InfomaxICA``.

Samples are rows: a data matrix ``y`` is (N, D), latents ``x`` are (N, K) and ``x = y Wᵀ``
for the unmixing matrix ``W`` (the book's D, renamed so that D can stay a dimension).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import torch
from torch import Tensor, nn

from genmodels._validation import check_positive_int, resolve_dtype
from genmodels.io import SavableModule
from genmodels.linalg import LOG_TAU

#: log ∫ N(u; 0, 1) sech(u) du, the normaliser of the super-Gaussian density of extended
#: InfoMax, p(u) = N(u; 0, 1) sech(u) / c. Computed by adaptive quadrature
#: (scipy.integrate.quad, abs/rel tolerance 1e-14: c = 0.7412642741253798); the tests recompute it.
LOG_SECH_GAUSS_NORMALIZER = -0.2993980720254203


class LatentTerms(NamedTuple):
    """What one pass of the learning rule needs from the latent density at x (*, N):
    log_prob_sum Σ_n log ψ′(x_n) along the last axis (*,); score φ(x); score_derivative φ′(x)
    (None when not asked for)."""

    log_prob_sum: Tensor
    score: Tensor
    score_derivative: Tensor | None


def latent_terms(latent: Any, x: Tensor, *, derivative: bool = True,
                 out: tuple[Tensor, Tensor, Tensor] | None = None) -> LatentTerms:
    """``LatentTerms`` of ``latent`` at x: its fused ``terms`` method when it has one (one
    transcendental pass for all three), else ``log_prob``, ``score``, ``score_derivative``.
    out: three scratch tensors shaped like x that a fused method may write into (the score,
    the derivative, a temporary), so an inner loop allocates nothing."""
    fused = getattr(latent, "terms", None)
    if fused is not None:
        return fused(x, derivative=derivative, out=out)
    return LatentTerms(latent.log_prob(x).sum(-1), latent.score(x),
                       latent.score_derivative(x) if derivative else None)


class LatentDensity(Protocol):
    """A factorial latent density ``Π_k p_k(x_k)`` (the ψ′_k of Eq. 9.2)."""

    name: str

    def log_prob(self, x: Tensor) -> Tensor:
        """log p_k(x_k) elementwise. x: (*, K) → (*, K)."""
        ...

    def score(self, x: Tensor) -> Tensor:
        """φ_k(x_k) = d log p_k / dx_k elementwise. x: (*, K) → (*, K)."""
        ...

    def score_derivative(self, x: Tensor) -> Tensor:
        """φ′_k(x_k) elementwise (used by the relative-Newton solver). x: (*, K) → (*, K)."""
        ...

    def sample(self, n: int, k: int, generator: torch.Generator, *, dtype: torch.dtype,
               device: torch.device | str) -> Tensor:
        """n draws of the K latents: (n, K)."""
        ...


class LogisticLatent:
    """Standard logistic latents: ψ = sigmoid, the Bell–Sejnowski squashing function (B:1729).

    ``log ψ′(x) = log σ(x) + log σ(−x) = −softplus(x) − softplus(−x)`` (never overflows);
    ``φ(x) = 1 − 2σ(x) = −tanh(x/2)`` (B:1733). Super-Gaussian (excess kurtosis 1.2).
    """

    name = "logistic"

    def log_prob(self, x: Tensor) -> Tensor:
        a = x.abs()  # log σ(x) + log σ(−x) = −|x| − 2 log(1 + e^{−|x|}): one exp, no overflow
        return -a - 2.0 * torch.log1p(torch.exp(-a))

    def score(self, x: Tensor) -> Tensor:
        return 1.0 - 2.0 * torch.sigmoid(x)

    def score_derivative(self, x: Tensor) -> Tensor:
        s = torch.sigmoid(x)
        return -2.0 * s * (1.0 - s)

    def terms(self, x: Tensor, *, derivative: bool = True,
              out: tuple[Tensor, Tensor, Tensor] | None = None) -> LatentTerms:
        """log ψ′, φ and φ′ from one exponential e = exp(−|x|) (the fit's inner loop): with
        r = σ(|x|) = 1/(1 + e), log ψ′ = −|x| − 2 log1p(e), φ = 1 − 2σ(x) = −sign(x)(1 − e) r,
        φ′ = −2σ(x)σ(−x) = −2 e r². Each to rounding in relative terms (a form through
        σ(|x|) alone is cheaper but loses the relative accuracy of 1 − r, which slows the
        quasi-Newton solver's last steps). x: (*, N); out: scratch as in ``latent_terms``."""
        r_out, d_out, tmp = (None, None, None) if out is None else out
        e = torch.abs(x, out=r_out)
        a_sum = e.sum(-1)
        e.neg_().exp_()
        log_prob_sum = -(a_sum + 2.0 * torch.log1p(e, out=tmp).sum(-1))
        r = torch.add(e, 1.0, out=tmp).reciprocal_()
        deriv = torch.mul(e, r, out=d_out).mul_(r).mul_(-2.0) if derivative else None
        score = e.sub_(1.0).mul_(r).copysign_(x).neg_()
        return LatentTerms(log_prob_sum, score, deriv)

    def cdf(self, x: Tensor) -> Tensor:
        return torch.sigmoid(x)

    def sample(self, n: int, k: int, generator: torch.Generator, *, dtype: torch.dtype,
               device: torch.device | str) -> Tensor:
        u = torch.rand(n, k, generator=generator, dtype=dtype, device=device)
        tiny = torch.finfo(dtype).tiny
        return torch.log(u.clamp_min(tiny)) - torch.log1p(-u)  # inverse CDF (logit)


class GaussianLatent:
    """Standard normal latents: ψ = Φ. The model is then N(0, D⁻¹D⁻ᵀ) — it only whitens (§9.1)."""

    name = "gaussian"

    def log_prob(self, x: Tensor) -> Tensor:
        return -0.5 * x * x - 0.5 * LOG_TAU

    def score(self, x: Tensor) -> Tensor:
        return -x

    def score_derivative(self, x: Tensor) -> Tensor:
        return -torch.ones_like(x)

    def cdf(self, x: Tensor) -> Tensor:
        return 0.5 * torch.erfc(-x / math.sqrt(2.0))

    def sample(self, n: int, k: int, generator: torch.Generator, *, dtype: torch.dtype,
               device: torch.device | str) -> Tensor:
        return torch.randn(n, k, generator=generator, dtype=dtype, device=device)


class SwitchingLatent:
    """The extended-InfoMax pair of densities (Lee, Girolami & Sejnowski 1999), one per component.

    ``signs[k] = +1`` (super-Gaussian): ``p(x) = N(x; 0, 1) sech(x) / c``, c ≈ 0.7413;
    ``signs[k] = −1`` (sub-Gaussian): ``p(x) = ½[N(x; 1, 1) + N(x; −1, 1)]
    = N(x; 0, 1) cosh(x) e^{−1/2}``. Both give ``φ(x) = −x − k tanh(x)``, so the natural
    gradient (``genmodels.learning.infomax``) is Lee et al.'s ``[I − K tanh(u)uᵀ − uuᵀ]W``.
    """

    name = "switching"

    def __init__(self, signs: Tensor) -> None:
        self.signs = signs

    @staticmethod
    def _log_cosh(x: Tensor) -> Tensor:
        a = x.abs()
        return a + torch.log1p(torch.exp(-2.0 * a)) - math.log(2.0)

    def log_prob(self, x: Tensor) -> Tensor:
        base = -0.5 * x * x - 0.5 * LOG_TAU
        lc = self._log_cosh(x)
        super_ = base - lc - LOG_SECH_GAUSS_NORMALIZER
        sub = base + lc - 0.5
        return torch.where(self.signs > 0, super_, sub)

    def score(self, x: Tensor) -> Tensor:
        return -x - self.signs * torch.tanh(x)

    def score_derivative(self, x: Tensor) -> Tensor:
        t = torch.tanh(x)
        return -1.0 - self.signs * (1.0 - t * t)

    def sample(self, n: int, k: int, generator: torch.Generator, *, dtype: torch.dtype,
               device: torch.device | str) -> Tensor:
        signs = self.signs.to(device=device, dtype=dtype)
        # Sub-Gaussian: ±1 (fair coin) plus N(0, 1).
        coin = torch.randint(0, 2, (n, k), generator=generator, device=device).to(dtype) * 2 - 1
        sub = coin + torch.randn(n, k, generator=generator, dtype=dtype, device=device)
        # Super-Gaussian: rejection from N(0, 1), accepting with probability sech(x) ≤ 1
        # (acceptance rate c ≈ 0.74). Vectorised over all entries; redraw only the rejected.
        def propose(*shape: int) -> tuple[Tensor, Tensor]:
            x = torch.randn(*shape, generator=generator, dtype=dtype, device=device)
            u = torch.rand(*shape, generator=generator, dtype=dtype, device=device)
            return x, u < 1.0 / torch.cosh(x)

        sup, accept = propose(n, k)
        while not bool(accept.all()):
            redo = ~accept
            prop, ok = propose(int(redo.sum()))
            sup[redo] = prop
            accept[redo] = ok
        return torch.where(signs > 0, sup, sub)


AnyLatent = LogisticLatent | GaussianLatent | SwitchingLatent


def make_latent(name: str, n_components: int, *, dtype: torch.dtype = torch.float64,
                device: torch.device | str = "cpu") -> AnyLatent:
    """A latent density by name: ``"logistic"``, ``"gaussian"`` or ``"switching"`` (all +1)."""
    if name == "logistic":
        return LogisticLatent()
    if name == "gaussian":
        return GaussianLatent()
    if name == "switching":
        return SwitchingLatent(torch.ones(n_components, dtype=dtype, device=device))
    raise ValueError(f"latent must be 'logistic', 'gaussian' or 'switching', got {name!r}.")


class ICAModel(SavableModule):
    """Linear ICA generative model ``ŷ = mean + C x̂``, ``C = W⁻¹``, ``x̂_k ~ p_k`` independent.

    Args:
        n_features: D (= K, the model is square).
        latent: ``"logistic"`` (Bell–Sejnowski), ``"gaussian"`` (whitening only) or
            ``"switching"`` (extended InfoMax; set ``signs``).
        dtype, device: of the parameters (default float64).

    Parameters: ``unmixing`` W (K, D), the book's D (Eq. 5.27); buffers ``mean`` (D,) and
    ``signs`` (K,) (used by the switching latent only).
    """

    mean: Tensor
    signs: Tensor

    def __init__(self, n_features: int, latent: str = "logistic", *, dtype: Any = torch.float64,
                 device: str | torch.device | None = None) -> None:
        super().__init__()
        D = check_positive_int(n_features, "n_features")
        dt = resolve_dtype(dtype)
        if latent not in ("logistic", "gaussian", "switching"):
            raise ValueError(
                f"latent must be 'logistic', 'gaussian' or 'switching', got {latent!r}."
            )
        self.latent_name = latent
        self.unmixing = nn.Parameter(torch.eye(D, dtype=dt, device=device))
        self.register_buffer("mean", torch.zeros(D, dtype=dt, device=device))
        self.register_buffer("signs", torch.ones(D, dtype=dt, device=device))
        self.config = {"n_features": D, "latent": latent, "dtype": str(dt).removeprefix("torch.")}

    @property
    def latent(self) -> AnyLatent:
        if self.latent_name == "switching":
            return SwitchingLatent(self.signs)
        return make_latent(self.latent_name, self.unmixing.shape[0])

    @property
    def mixing(self) -> Tensor:
        """C = W⁻¹ (D, K): the columns are the mixing directions."""
        return torch.linalg.inv(self.unmixing)

    def to_latent(self, y: Tensor) -> Tensor:
        """x̌ = W (y − mean): y (*, D) → (*, K)  (Eq. 5.27)."""
        return (y - self.mean) @ self.unmixing.mT

    def to_uniform(self, y: Tensor) -> Tensor:
        """ž = ψ(W(y − mean)), the InfoMax outputs (Eq. 5.22); needs a latent with a CDF."""
        lat = self.latent
        if not hasattr(lat, "cdf"):
            raise ValueError(f"the {lat.name!r} latent has no closed-form CDF.")
        return lat.cdf(self.to_latent(y))

    def log_prob(self, y: Tensor) -> Tensor:
        """log p̂(y; W) = Σ_k log ψ′_k(w_kᵀ(y − mean)) + log|det W|. y: (*, D) → (*)  (Eq. 9.5)."""
        logdet = torch.linalg.slogdet(self.unmixing).logabsdet
        return self.latent.log_prob(self.to_latent(y)).sum(-1) + logdet

    def loss(self, y: Tensor) -> Tensor:
        """Mean surprisal ⟨−log p̂(y)⟩ = D_KL{p ‖ p̂} + H[p] (Eq. 5.25): 0-d."""
        return -self.log_prob(y).mean()

    def euclidean_gradient(self, y: Tensor) -> Tensor:
        """dL/dW = −⟨φ(Wy) yᵀ⟩ − W⁻ᵀ, shape (K, D) (Eq. 5.28 with the corrected transposes,
        errata E-19/E-20; for logistic ψ, φ = 1 − 2σ). y: (N, D), assumed centred by ``mean``."""
        yc = y - self.mean
        phi = self.latent.score(yc @ self.unmixing.mT)
        return -(phi.mT @ yc) / y.shape[0] - torch.linalg.inv(self.unmixing).mT

    def relative_gradient(self, y: Tensor) -> Tensor:
        """G = I + ⟨φ(x) xᵀ⟩ (K, K), x = W(y − mean): the natural-gradient *ascent* step is
        ΔW = η G W (derivation in ``genmodels.learning.infomax``); G = 0 at a stationary point."""
        x = self.to_latent(y)
        eye = torch.eye(x.shape[-1], dtype=x.dtype, device=x.device)
        return eye + (self.latent.score(x).mT @ x) / x.shape[0]

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n draws ŷ = mean + C x̂ (n, D)."""
        if generator is None:
            g = torch.Generator(device=self.mean.device)
            g.seed()
        else:
            g = generator
        K = self.unmixing.shape[0]
        x = self.latent.sample(n, K, g, dtype=self.mean.dtype, device=self.mean.device)
        return self.mean + torch.linalg.solve(self.unmixing, x.mT).mT


def infomax_log_density(
    d: Callable[[Tensor], Tensor], y: Tensor, latent: LatentDensity
) -> Tensor:
    """The InfoMax model density for any invertible map d (Eq. 5.26 = Eq. 9.3), in log form::

        log p̂(y) = Σ_k log ψ′_k(d_k(y)) + log |det ∂d/∂yᵀ(y)|.

    d maps one point (D,) to (D,) and must be written in torch so that its Jacobian can be taken
    (``torch.func.jacrev``, vectorised over the batch with ``vmap``). y: (N, D) → (N,).
    """
    jac = torch.func.vmap(torch.func.jacrev(d))(y)  # (N, D, D)
    x = torch.func.vmap(d)(y)
    return latent.log_prob(x).sum(-1) + torch.linalg.slogdet(jac).logabsdet


def amari_distance(W: Tensor, A: Tensor) -> Tensor:
    """Amari et al.'s (1996) performance index of an unmixing W against a mixing A, in [0, 1].

    With ``P = W A`` (K, K)::

        d = 1/(2K(K−1)) · [Σ_i (Σ_j |p_ij| / max_j |p_ij| − 1)
                           + Σ_j (Σ_i |p_ij| / max_i |p_ij| − 1)]

    d = 0 exactly when P is a scaled permutation, i.e. W recovers the sources up to order and
    scale (and sign); K = 1 gives 0.
    """
    W = torch.as_tensor(W)
    A = torch.as_tensor(A, dtype=W.dtype)
    P = (W @ A).abs()
    K = P.shape[-1]
    if P.shape[-2] != K:
        raise ValueError(f"W A must be square, got shape {tuple(P.shape)}.")
    if K == 1:
        return P.new_zeros(())
    rows = (P.sum(-1) / P.amax(-1) - 1.0).sum(-1)
    cols = (P.sum(-2) / P.amax(-2) - 1.0).sum(-1)
    return (rows + cols) / (2.0 * K * (K - 1))
