"""Variational autoencoders (book §8.2; CATALOGUE G5, G6, G14–G16, D4).

The generative model is a prior over a latent source and an emission through a network,

    p̂(x) = N(0, I)   (or uniform over categories),   p̂(y | x; θ) = emission(decoder(x; θ)),

and the recognition model is *amortised*: one network maps each datum to the parameters of its
recognition distribution (Eq. 8.12),

    p̌(x | y; φ) = N(ν(y; φ), Υ(y; φ))   (or a factorised categorical).

Learning minimises the joint relative entropy, per datum the negative ELBO (Eq. 8.20, S2:499):

    −ELBO(y) = KL{p̌(X̌ | y) ‖ p̂(X̌)} − E_{p̌(X̌|y)}[log p̂(y | X̌)]
             = E_{p̌(X̌|y)}[log p̌(X̌ | y) − log p̂(X̌, y)]           (Eq. 8.20 / G14)

with the KL in closed form and the expected emission term by Monte Carlo. Its gradient w.r.t. φ
is estimated pathwise (Eq. 8.24, the reparameterisation X̌ = ν + Υ^{1/2} Z) for Gaussian
recognition, by the Gumbel-softmax relaxation (Eq. 8.29) or by the score function (§8.2.1) for
categorical latents. Evaluation uses the ELBO and the importance-weighted bound
log (1/k) Σ_i p̂(y, x_i)/p̌(x_i | y), x_i ~ p̌(x | y) (Burda et al. 2016), which tightens to
log p̂(y) as k → ∞.

The variants are small objects chosen once: a ``Recognition`` (diagonal Gaussian, full
Gaussian with a Cholesky factor, categorical with Gumbel-softmax, categorical with the score
function) and a ``Likelihood`` (isotropic Gaussian, Bernoulli, categorical), plus the network
kind (``linear``, ``mlp``, ``conv``).

Notation: N data, D observed dims, K latent variables, C categories per latent variable,
V values per observed variable, S Monte Carlo samples.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genmodels._threads import numel, work_sized
from genmodels._validation import (
    as_tensor,
    check_choice,
    check_nonnegative_float,
    check_positive_int,
    resolve_dtype,
)
from genmodels.families import (
    FAMILIES,
    Bernoulli,
    Categorical,
    ExponentialFamily,
    Normal,
    kl_diag_std_normal,
    kl_tril_std_normal,
)
from genmodels.io import SavableModule
from genmodels.learning.estimators import (
    LeaveOneOutBaseline,
    MovingAverageBaseline,
    ScoreFunction,
    gumbel_max_sample,
    gumbel_softmax_sample,
    sample_gumbel,
)
from genmodels.learning.trainer import per_sample_noise, step_work
from genmodels.linalg import LOG_TAU
from genmodels.models.networks import MLP

__all__ = [
    "ELBO",
    "VAE",
    "BernoulliLikelihood",
    "CategoricalLikelihood",
    "CategoricalParams",
    "DiagonalGaussianParams",
    "DiagonalGaussianRecognition",
    "FamilyLikelihood",
    "FullGaussianParams",
    "FullGaussianRecognition",
    "GaussianLikelihood",
    "GumbelSoftmaxRecognition",
    "Likelihood",
    "Recognition",
    "ScoreFunctionRecognition",
    "gaussian_kl_diagonal",
    "gaussian_kl_full",
    "gaussian_vae_loss",
]


# ----------------------------------------------------------------------------------------------
# Typed results
# ----------------------------------------------------------------------------------------------


class ELBO(NamedTuple):
    """The evidence lower bound of each datum and its two parts (Eq. 8.20), all (N,).

    elbo: E_q[log p̂(y | X̌)] − KL{p̌(X̌ | y) ‖ p̂(X̌)} ≤ log p̂(y).
    log_likelihood: E_q[log p̂(y | X̌)], the negative reconstruction cost (Monte Carlo).
    kl: KL{p̌(X̌ | y) ‖ p̂(X̌)}, the regulariser (closed form).
    """

    elbo: Tensor
    log_likelihood: Tensor
    kl: Tensor


class DiagonalGaussianParams(NamedTuple):
    """p̌(x | y) = N(nu, diag(exp(log_var))) (Eq. 8.26). nu, log_var: (N, K)."""

    nu: Tensor
    log_var: Tensor


class FullGaussianParams(NamedTuple):
    """p̌(x | y) = N(nu, L Lᵀ), L lower triangular with positive diagonal.
    nu: (N, K); scale_tril: (N, K, K)."""

    nu: Tensor
    scale_tril: Tensor


class CategoricalParams(NamedTuple):
    """p̌(x | y) = Π_k Cat(x_k; softmax(logits[..., k, :])). logits: (N, K, C)."""

    logits: Tensor


# ----------------------------------------------------------------------------------------------
# Closed forms and samplers
# ----------------------------------------------------------------------------------------------


def gaussian_kl_diagonal(nu: Tensor, log_var: Tensor) -> Tensor:
    """KL{N(ν, diag v²) ‖ N(0, I)} = Σ_k ½(−log v_k² − 1 + v_k² + ν_k²) (§8.2.2 boxed):
    ``genmodels.families.kl_diag_std_normal``. nu, log_var: (..., K) → (...)."""
    return kl_diag_std_normal(nu, log_var)


def gaussian_kl_full(nu: Tensor, scale_tril: Tensor) -> Tensor:
    """KL{N(ν, L Lᵀ) ‖ N(0, I)} = ½(tr LLᵀ + νᵀν − K) − Σ_k log L_kk:
    ``genmodels.families.kl_tril_std_normal``. nu: (..., K), scale_tril: (..., K, K) → (...)."""
    return kl_tril_std_normal(nu, scale_tril)


# ----------------------------------------------------------------------------------------------
# Recognition models p̌(x | y; φ)
# ----------------------------------------------------------------------------------------------


class Recognition(nn.Module):
    """A family of recognition distributions whose parameters an encoder network outputs.

    ``reparameterized``: whether ``sample(..., relaxed=True)`` carries pathwise gradients; if not,
    ``expected`` supplies another estimator (the score function).
    """

    reparameterized: bool = True

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        self.latent_dim = latent_dim

    def out_features(self) -> int:
        """Number of encoder outputs per datum."""
        raise NotImplementedError

    def code_dim(self) -> int:
        """Size of the decoder's input (K, or K·C for one-hot codes)."""
        return self.latent_dim

    def params(self, h: Tensor) -> Any:
        """Distribution parameters from encoder outputs h: (N, out_features)."""
        raise NotImplementedError

    def sample(self, p: Any, n_samples: int, generator: torch.Generator | None,
               relaxed: bool = True) -> Tensor:
        """(S, N, code_dim) samples; ``relaxed`` selects the training-time estimator's sample."""
        raise NotImplementedError

    def log_prob(self, p: Any, x: Tensor) -> Tensor:
        """log p̌(x | y): x (S, N, code_dim) → (S, N)."""
        raise NotImplementedError

    def log_prior(self, x: Tensor) -> Tensor:
        """log p̂(x): (S, N, code_dim) → (S, N)."""
        raise NotImplementedError

    def kl_to_prior(self, p: Any) -> Tensor:
        """KL{p̌(X̌ | y) ‖ p̂(X̌)} in closed form, (N,)."""
        raise NotImplementedError

    def mean(self, p: Any) -> Tensor:
        """A representative code per datum (posterior mean or mode), (N, code_dim)."""
        raise NotImplementedError

    def sample_prior(self, n: int, generator: torch.Generator | None, dtype: torch.dtype,
                     device: torch.device) -> Tensor:
        """(n, code_dim) draws from p̂(x)."""
        raise NotImplementedError

    def expected(self, p: Any, f: Callable[[Tensor], Tensor], n_samples: int,
                 generator: torch.Generator | None) -> Tensor:
        """The Monte Carlo estimate of E_{p̌(x|y)}[f(x)], (N,), whose gradient is this family's
        training estimator (here pathwise: f of reparameterised samples). f: (S, N, code) →
        (S, N)."""
        if n_samples == 1 and self.reparameterized:
            return f(self.sample(p, 1, generator, relaxed=True).squeeze(0))
        return f(self.sample(p, n_samples, generator, relaxed=True)).mean(0)


class _GaussianPrior(Recognition):
    def log_prior(self, x: Tensor) -> Tensor:
        return -0.5 * (x.square().sum(-1) + self.latent_dim * LOG_TAU)

    def sample_prior(self, n: int, generator: torch.Generator | None, dtype: torch.dtype,
                     device: torch.device) -> Tensor:
        return torch.randn(n, self.latent_dim, generator=generator, dtype=dtype, device=device)


class DiagonalGaussianRecognition(_GaussianPrior):
    """p̌(x | y) = N(ν(y), diag v²(y)) (Eq. 8.26); the encoder outputs (ν, log v²)."""

    def out_features(self) -> int:
        return 2 * self.latent_dim

    def params(self, h: Tensor) -> DiagonalGaussianParams:
        nu, log_var = h.split(self.latent_dim, dim=-1)
        return DiagonalGaussianParams(nu, log_var)

    def sample(self, p: DiagonalGaussianParams, n_samples: int,
               generator: torch.Generator | None, relaxed: bool = True) -> Tensor:
        shape = p.nu.shape if n_samples == 1 else (n_samples, *p.nu.shape)
        z = per_sample_noise(lambda sh: torch.randn(sh, generator=generator, dtype=p.nu.dtype,
                                                    device=p.nu.device), shape, dim=-2)
        x = p.nu + (0.5 * p.log_var).exp() * z  # Eq. 8.24: X̌ = Υ^{1/2} Z + ν
        return x.unsqueeze(0) if n_samples == 1 else x

    def log_prob(self, p: DiagonalGaussianParams, x: Tensor) -> Tensor:
        return -0.5 * ((x - p.nu).square() / p.log_var.exp() + p.log_var + LOG_TAU).sum(-1)

    def kl_to_prior(self, p: DiagonalGaussianParams) -> Tensor:
        return gaussian_kl_diagonal(p.nu, p.log_var)

    def mean(self, p: DiagonalGaussianParams) -> Tensor:
        return p.nu


class FullGaussianRecognition(_GaussianPrior):
    """p̌(x | y) = N(ν(y), L(y) L(y)ᵀ) with a Cholesky factor: the encoder outputs ν (K), the log
    of L's diagonal (K) and its strictly lower entries (K(K−1)/2)."""

    _rows: Tensor
    _cols: Tensor

    def __init__(self, latent_dim: int) -> None:
        super().__init__(latent_dim)
        rows, cols = torch.tril_indices(latent_dim, latent_dim, offset=-1)
        self.register_buffer("_rows", rows, persistent=False)
        self.register_buffer("_cols", cols, persistent=False)

    def out_features(self) -> int:
        k = self.latent_dim
        return 2 * k + k * (k - 1) // 2

    def params(self, h: Tensor) -> FullGaussianParams:
        k = self.latent_dim
        nu, log_diag, off = h[..., :k], h[..., k:2 * k], h[..., 2 * k:]
        lower = h.new_zeros(*h.shape[:-1], k, k)
        lower[..., self._rows, self._cols] = off
        return FullGaussianParams(nu, lower + torch.diag_embed(log_diag.exp()))

    def sample(self, p: FullGaussianParams, n_samples: int,
               generator: torch.Generator | None, relaxed: bool = True) -> Tensor:
        z = per_sample_noise(lambda sh: torch.randn(sh, generator=generator, dtype=p.nu.dtype,
                                                    device=p.nu.device),
                             (n_samples, *p.nu.shape), dim=-2)
        return p.nu + torch.einsum("nij,snj->sni", p.scale_tril, z)  # Eq. 8.24

    def log_prob(self, p: FullGaussianParams, x: Tensor) -> Tensor:
        diff = (x - p.nu).unsqueeze(-1)  # (S, N, K, 1)
        L = p.scale_tril.expand(*diff.shape[:-2], self.latent_dim, self.latent_dim)
        w = torch.linalg.solve_triangular(L, diff, upper=False).squeeze(-1)
        logdet = torch.diagonal(p.scale_tril, dim1=-2, dim2=-1).log().sum(-1)
        return -0.5 * (w.square().sum(-1) + self.latent_dim * LOG_TAU) - logdet

    def kl_to_prior(self, p: FullGaussianParams) -> Tensor:
        return gaussian_kl_full(p.nu, p.scale_tril)

    def mean(self, p: FullGaussianParams) -> Tensor:
        return p.nu


class _Categorical(Recognition):
    """K independent categorical latents with C categories each, uniform prior; codes are
    one-hot vectors flattened to K·C."""

    def __init__(self, latent_dim: int, n_categories: int) -> None:
        super().__init__(latent_dim)
        self.n_categories = check_positive_int(n_categories, "n_categories", minimum=2)

    def out_features(self) -> int:
        return self.latent_dim * self.n_categories

    def code_dim(self) -> int:
        return self.latent_dim * self.n_categories

    def params(self, h: Tensor) -> CategoricalParams:
        return CategoricalParams(h.unflatten(-1, (self.latent_dim, self.n_categories)))

    def _hard(self, p: CategoricalParams, n_samples: int,
              generator: torch.Generator | None) -> Tensor:
        idx = gumbel_max_sample(p.logits, (n_samples,),
                                gumbels=self._gumbels(p, n_samples, generator))  # Eq. 8.28
        return F.one_hot(idx, self.n_categories).to(p.logits.dtype).flatten(-2)

    @staticmethod
    def _gumbels(p: CategoricalParams, n_samples: int, generator: torch.Generator | None
                 ) -> Tensor:
        """Standard Gumbel noise (S, N, K, C) by global sample index (``per_sample_noise``)."""
        return per_sample_noise(
            lambda sh: sample_gumbel(sh, generator=generator, dtype=p.logits.dtype,
                                     device=p.logits.device),
            (n_samples, *p.logits.shape), dim=1)

    def log_prob(self, p: CategoricalParams, x: Tensor) -> Tensor:
        logq = torch.log_softmax(p.logits, -1)  # (N, K, C)
        return (x.unflatten(-1, (self.latent_dim, self.n_categories)) * logq).sum((-2, -1))

    def log_prior(self, x: Tensor) -> Tensor:
        return x.new_full(x.shape[:-1], -self.latent_dim * math.log(self.n_categories))

    def kl_to_prior(self, p: CategoricalParams) -> Tensor:
        logq = torch.log_softmax(p.logits, -1)
        return (logq.exp() * (logq + math.log(self.n_categories))).sum((-2, -1))

    def mean(self, p: CategoricalParams) -> Tensor:
        return F.one_hot(p.logits.argmax(-1), self.n_categories).to(p.logits.dtype).flatten(-2)

    def sample_prior(self, n: int, generator: torch.Generator | None, dtype: torch.dtype,
                     device: torch.device) -> Tensor:
        idx = torch.randint(self.n_categories, (n, self.latent_dim), generator=generator,
                            device=device)
        return F.one_hot(idx, self.n_categories).to(dtype).flatten(-2)


class GumbelSoftmaxRecognition(_Categorical):
    """Categorical latents trained through the Gumbel-softmax / Concrete relaxation (Eq. 8.29;
    Jang et al. 2017, Maddison et al. 2017): the decoder sees softmax((η + G)/s) during
    training (``hard=True``: the straight-through one-hot). The KL term is that of the discrete
    p̌ to the uniform prior, so the training objective is a relaxation of the discrete ELBO; its
    bias vanishes as the temperature s → 0 (and its gradient variance grows as 1/s)."""

    def __init__(self, latent_dim: int, n_categories: int, temperature: float = 0.67,
                 hard: bool = False) -> None:
        super().__init__(latent_dim, n_categories)
        self.temperature = check_nonnegative_float(temperature, "temperature", strictly=True)
        self.hard = bool(hard)

    def sample(self, p: CategoricalParams, n_samples: int,
               generator: torch.Generator | None, relaxed: bool = True) -> Tensor:
        if not relaxed:
            return self._hard(p, n_samples, generator)
        y = gumbel_softmax_sample(p.logits, self.temperature, (n_samples,), hard=self.hard,
                                  gumbels=self._gumbels(p, n_samples, generator))  # Eq. 8.29
        return y.flatten(-2)


class ScoreFunctionRecognition(_Categorical):
    """Categorical latents trained with the score-function (REINFORCE) estimator (§8.2.1):
    ∇_φ E_q[f] = E_q[(f − b) ∇_φ log p̌(x | y; φ)], f = log p̂(y | x).

    The baseline b keeps the estimator unbiased because E_q[∇_φ log p̌] = 0 and b does not depend
    on the sample it multiplies: with ``n_samples`` ≥ 2 it is the leave-one-out mean of the other
    samples of the same datum; with one sample a running (exponential) mean of f. The variance
    falls by about Var(b) − 2 Cov(f, b) relative to no baseline; the KL term is differentiated
    exactly (closed form)."""

    reparameterized = False
    running_f: Tensor

    def __init__(self, latent_dim: int, n_categories: int, decay: float = 0.9) -> None:
        super().__init__(latent_dim, n_categories)
        self.decay = decay
        # the moving-average baseline's state, kept as a buffer so checkpoints resume exactly
        self.register_buffer("running_f", torch.full((), math.nan))

    def sample(self, p: CategoricalParams, n_samples: int,
               generator: torch.Generator | None, relaxed: bool = True) -> Tensor:
        return self._hard(p, n_samples, generator)

    def expected(self, p: CategoricalParams, f: Callable[[Tensor], Tensor], n_samples: int,
                 generator: torch.Generator | None) -> Tensor:
        dist = torch.distributions.Independent(
            torch.distributions.OneHotCategorical(logits=p.logits), 1)
        baseline: LeaveOneOutBaseline | MovingAverageBaseline
        if n_samples > 1:
            baseline = LeaveOneOutBaseline()
        else:
            baseline = MovingAverageBaseline(self.decay)
            if not bool(self.running_f.isnan()):
                baseline.average = float(self.running_f)
        # the draws by global sample index (``_hard``), as the other recognition models: data-
        # parallel processes then see the single-process draws of their rows
        x = self._hard(p, n_samples, generator).unflatten(-1, p.logits.shape[-2:])
        est = ScoreFunction(baseline)(lambda x: f(x.flatten(-2)), dist, n_samples,
                                      generator=generator, sample=x)
        if isinstance(baseline, MovingAverageBaseline) and self.training:
            self.running_f.fill_(baseline.average if baseline.average is not None else math.nan)
        return est.loss


# ----------------------------------------------------------------------------------------------
# Emission distributions p̂(y | x; θ)
# ----------------------------------------------------------------------------------------------


class Likelihood(nn.Module):
    """An emission family whose parameters the decoder network outputs."""

    channels: int = 1  # decoder outputs per observed variable

    def log_prob(self, h: Tensor, y: Tensor) -> Tensor:
        """log p̂(y | x) summed over the D observed variables: h (..., N, D·channels) → (..., N)."""
        raise NotImplementedError

    def mean(self, h: Tensor) -> Tensor:
        """E[y | x]: (..., D)."""
        raise NotImplementedError

    def sample(self, h: Tensor, generator: torch.Generator | None) -> Tensor:
        raise NotImplementedError

    def check(self, y: Tensor) -> None:
        """Raise ValueError when y is outside the family's support."""


class GaussianLikelihood(Likelihood):
    """p̂(y | x) = N(μ(x), α I) (Eqs. 8.15, 8.26) with α learned (``learn_variance``) or fixed.
    Not a ``FamilyLikelihood``: α is one parameter shared by every output, not a per-output
    natural parameter from the decoder (``likelihood="normal"`` is that heteroscedastic one);
    its density is ``genmodels.families.Normal.log_prob_mean_var``.

    −log p̂(y | x) = ½[D log(τα) + ‖y − μ‖²/α]: the book's boxed reconstruction term with the
    constant's D = dim y (erratum E-34 / G6: ``M log τα``, not ``K``)."""

    def __init__(self, variance: float = 1.0, learn_variance: bool = True) -> None:
        super().__init__()
        check_nonnegative_float(variance, "variance", strictly=True)
        log_alpha = torch.tensor(math.log(variance))
        if learn_variance:
            self.log_alpha = nn.Parameter(log_alpha)
        else:
            self.register_buffer("log_alpha", log_alpha)

    def log_prob(self, h: Tensor, y: Tensor) -> Tensor:
        # Eq. 8.26: ``genmodels.families.Normal``'s density, N(y_d; h_d, α) summed over d
        return Normal.log_prob_mean_var(y, h, self.log_alpha.exp()).sum(-1)

    def mean(self, h: Tensor) -> Tensor:
        return h

    def sample(self, h: Tensor, generator: torch.Generator | None) -> Tensor:
        noise = torch.randn(h.shape, generator=generator, dtype=h.dtype, device=h.device)
        return h + (0.5 * self.log_alpha).exp() * noise


class FamilyLikelihood(Likelihood):
    """p̂(y | x) = Π_d p(y_d | η_d(x)) for any scalar family of ``genmodels.families``: the
    decoder outputs P unconstrained numbers per observed variable, mapped onto the natural
    domain by ``family.natural_from_unconstrained`` (Gamma: (softplus − 1, −softplus));
    log-density, mean, sampling and support check are the family's. So a family added to
    ``genmodels.families`` is a VAE likelihood (``likelihood=<its name>``) with no code here.
    ``channels`` (P) is the family's own unless the family leaves it open (Categorical: V).
    """

    def __init__(self, family: str | type[ExponentialFamily], channels: int | None = None
                 ) -> None:
        super().__init__()
        fam = FAMILIES.get(family) if isinstance(family, str) else family
        if fam is None or fam.event_dim != 0 or not (fam.natural_per_unit or channels):
            raise ValueError(f"family must name a scalar family of genmodels.families, got "
                             f"{family!r}.")
        self.family = fam
        self.channels = channels or fam.natural_per_unit

    def natural(self, h: Tensor) -> Tensor:
        """The decoder's output as natural parameters. (..., D·P) → (..., D, P)."""
        return self.family.natural_from_unconstrained(h.unflatten(-1, (-1, self.channels)))

    def log_prob(self, h: Tensor, y: Tensor) -> Tensor:
        if self.channels == 1:  # one output per variable: no (..., D, 1) view in the graph
            return self.family.log_prob_unconstrained(y, h).sum(-1)
        return self.family.log_prob_natural(y, self.natural(h)).sum(-1)

    def mean(self, h: Tensor) -> Tensor:
        return self.family.mean_value(self.natural(h))

    def sample(self, h: Tensor, generator: torch.Generator | None) -> Tensor:
        return self.family.sample_natural(self.natural(h), generator).to(h.dtype)

    def check(self, y: Tensor) -> None:
        why = self.family.support_error(y)
        if why is not None:
            raise ValueError(f"a {self.family.name} emission needs data that {why}.")


class BernoulliLikelihood(FamilyLikelihood):
    """p̂(y | x) = Π_d Bernoulli(y_d; sigmoid(h_d)) (``genmodels.families.Bernoulli``);
    y ∈ [0, 1] (binary, or grey levels read as probabilities)."""

    def __init__(self) -> None:
        super().__init__(Bernoulli)

    def check(self, y: Tensor) -> None:
        if bool(((y < 0) | (y > 1)).any()):
            raise ValueError("a Bernoulli emission needs data in [0, 1]; binarise or rescale "
                             "the data, or use likelihood='gaussian'.")


class CategoricalLikelihood(FamilyLikelihood):
    """p̂(y | x) = Π_d Cat(y_d; softmax(h_d)), y_d ∈ {0, …, V−1} (e.g. grey levels)
    (``genmodels.families.Categorical``, V decoder outputs per variable)."""

    def __init__(self, n_values: int) -> None:
        super().__init__(Categorical, check_positive_int(n_values, "n_values", minimum=2))

    def check(self, y: Tensor) -> None:
        if bool(((y < 0) | (y >= self.channels) | (y != y.round())).any()):
            raise ValueError(f"a categorical emission needs integer data in [0, "
                             f"{self.channels - 1}]; set n_values to the number of levels.")


# ----------------------------------------------------------------------------------------------
# Networks
# ----------------------------------------------------------------------------------------------


class _ConvEncoder(nn.Module):
    """(N, H·W) images → (N, d_out): two 3×3 convolutions (the second strided) and a linear map."""

    def __init__(self, image_shape: tuple[int, int], width: int, d_out: int) -> None:
        super().__init__()
        h, w = image_shape
        self.image_shape = image_shape
        self.net = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten(),
            nn.Linear(2 * width * ((h + 1) // 2) * ((w + 1) // 2), d_out))

    def forward(self, y: Tensor) -> Tensor:
        lead = y.shape[:-1]
        out = self.net(y.reshape(-1, 1, *self.image_shape))
        return out.reshape(*lead, -1)


class _ConvDecoder(nn.Module):
    """(…, code) → (…, H·W·channels): a linear map, a transposed convolution back to full size
    and a 3×3 convolution; channel last so each pixel's outputs are contiguous."""

    def __init__(self, d_in: int, image_shape: tuple[int, int], width: int,
                 channels: int) -> None:
        super().__init__()
        h, w = image_shape
        if h % 2 or w % 2:
            raise ValueError(f"the convolutional decoder needs even image sides, got {image_shape}")
        self.image_shape = image_shape
        self.net = nn.Sequential(
            nn.Linear(d_in, 2 * width * (h // 2) * (w // 2)), nn.ReLU(),
            nn.Unflatten(1, (2 * width, h // 2, w // 2)),
            nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(width, channels, 3, padding=1))

    def forward(self, x: Tensor) -> Tensor:
        lead = x.shape[:-1]
        out = self.net(x.reshape(-1, x.shape[-1]))  # (B, V, H, W)
        return out.permute(0, 2, 3, 1).reshape(*lead, -1)


# ----------------------------------------------------------------------------------------------
# The VAE
# ----------------------------------------------------------------------------------------------

_RECOGNITION = ("diagonal", "full", "gumbel", "score")
_LIKELIHOOD = ("gaussian", "bernoulli", "categorical")


def _likelihoods() -> tuple[str, ...]:
    """The three named likelihoods, then every other scalar family of ``genmodels.families``
    (``FamilyLikelihood``), including families defined after this module was imported."""
    return _LIKELIHOOD + tuple(
        name for name, f in FAMILIES.items()
        if f.natural_per_unit and f.event_dim == 0 and name not in _LIKELIHOOD)
_NETWORK = ("linear", "mlp", "conv")


class VAE(SavableModule):
    """A variational autoencoder (§8.2): prior p̂(x), emission p̂(y | x; θ) through a decoder
    network, amortised recognition p̌(x | y; φ) through an encoder network.

    data_dim: D. latent_dim: K (Gaussian latents, or K categorical latents).
    recognition: ``"diagonal"`` N(ν, diag v²) (Eq. 8.26), ``"full"`` N(ν, LLᵀ) (Cholesky),
        ``"gumbel"`` categorical via Gumbel-softmax (Eq. 8.29), ``"score"`` categorical via the
        score function (§8.2.1).
    likelihood: ``"gaussian"`` N(μ(x), αI) (α learned unless ``learn_variance=False``),
        ``"bernoulli"``, ``"categorical"`` (``n_values`` levels per variable).
    network: ``"linear"`` (one affine map each way: with a Gaussian emission this is
        probabilistic PCA's generative model), ``"mlp"`` (``hidden`` tanh layers), ``"conv"``
        (needs ``image_shape``; ``hidden[0]`` is the channel width).
    n_samples: Monte Carlo samples per datum in the training loss.
    """

    def __init__(
        self,
        data_dim: int,
        latent_dim: int = 2,
        *,
        hidden: list[int] | tuple[int, ...] = (64,),
        network: str = "mlp",
        recognition: str = "diagonal",
        likelihood: str = "bernoulli",
        n_categories: int = 2,
        n_values: int = 2,
        temperature: float = 0.67,
        hard: bool = False,
        variance: float = 1.0,
        learn_variance: bool = True,
        n_samples: int = 1,
        image_shape: list[int] | tuple[int, ...] | None = None,
        dtype: str | torch.dtype = "float32",
        seed: int | None = 0,
    ) -> None:
        super().__init__()
        D = check_positive_int(data_dim, "data_dim")
        K = check_positive_int(latent_dim, "latent_dim")
        hidden = [check_positive_int(h, "hidden sizes") for h in hidden]
        check_choice(network, "network", _NETWORK)
        check_choice(recognition, "recognition", _RECOGNITION)
        check_choice(likelihood, "likelihood", _likelihoods())
        self.n_samples = check_positive_int(n_samples, "n_samples")
        dt = resolve_dtype(dtype)
        self.config = dict(
            data_dim=D, latent_dim=K, hidden=list(hidden), network=network,
            recognition=recognition, likelihood=likelihood, n_categories=n_categories,
            n_values=n_values, temperature=temperature, hard=hard, variance=variance,
            learn_variance=learn_variance, n_samples=n_samples,
            image_shape=list(image_shape) if image_shape is not None else None,
            dtype=str(dt).removeprefix("torch."), seed=seed)
        self.data_dim, self.latent_dim = D, K

        self.recognition: Recognition = {
            "diagonal": lambda: DiagonalGaussianRecognition(K),
            "full": lambda: FullGaussianRecognition(K),
            "gumbel": lambda: GumbelSoftmaxRecognition(K, n_categories, temperature, hard),
            "score": lambda: ScoreFunctionRecognition(K, n_categories),
        }[recognition]()
        likelihoods: dict[str, Callable[[], Likelihood]] = {
            "gaussian": lambda: GaussianLikelihood(variance, learn_variance),
            "bernoulli": BernoulliLikelihood,
            "categorical": lambda: CategoricalLikelihood(n_values),
        }
        self.likelihood: Likelihood = (likelihoods[likelihood]() if likelihood in likelihoods
                                       else FamilyLikelihood(likelihood))

        # network initialisation draws from torch's global generator: seed it inside a fork so
        # the caller's global random state is left as it was
        with torch.random.fork_rng(devices=[], enabled=seed is not None):
            if seed is not None:
                torch.manual_seed(seed)
            self._build_networks(network, hidden, image_shape, dt)
        self.to(dt)

    def _build_networks(self, network: str, hidden: list[int],
                        image_shape: list[int] | tuple[int, ...] | None,
                        dt: torch.dtype) -> None:
        D = self.data_dim
        enc_out, code = self.recognition.out_features(), self.recognition.code_dim()
        dec_out = D * self.likelihood.channels
        if network == "linear":
            self.encoder: nn.Module = nn.Linear(D, enc_out)
            self.decoder: nn.Module = nn.Linear(code, dec_out)
        elif network == "mlp":
            self.encoder = MLP([D, *hidden, enc_out], activation="tanh", dtype=dt)
            self.decoder = MLP([code, *hidden[::-1], dec_out], activation="tanh", dtype=dt)
        else:
            if image_shape is None or len(image_shape) != 2 or image_shape[0] * image_shape[1] != D:
                raise ValueError("network='conv' needs image_shape=(H, W) with H·W = data_dim, "
                                 f"got {image_shape} for data_dim={D}.")
            shape = (int(image_shape[0]), int(image_shape[1]))
            width = hidden[0] if hidden else 16
            self.encoder = _ConvEncoder(shape, width, enc_out)
            self.decoder = _ConvDecoder(code, shape, width, self.likelihood.channels)

    # -- helpers -------------------------------------------------------------------------------

    @property
    def dtype(self) -> torch.dtype:
        return self._dtype

    def _apply(self, fn: Any, recurse: bool = True) -> VAE:
        super()._apply(fn, recurse)
        self._dtype = next(self.parameters()).dtype  # cached: ``loss`` is the inner loop
        return self

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def _data(self, y: Any, name: str = "y") -> Tensor:
        t = as_tensor(y, name=name, dtype=self.dtype, device=self.device)
        if t.dim() != 2 or t.shape[1] != self.data_dim:
            raise ValueError(f"{name} must have shape (N, {self.data_dim}), got "
                             f"{tuple(t.shape)}.")
        if t.shape[0] == 0:
            raise ValueError(f"{name} is empty.")
        self.likelihood.check(t)
        return t

    # -- the model's parts ---------------------------------------------------------------------

    def encode(self, y: Tensor) -> Any:
        """The recognition distribution's parameters p̌(x | y; φ) (a typed tuple) for y: (N, D)."""
        return self.recognition.params(self.encoder(y))

    def decode(self, x: Tensor) -> Tensor:
        """E[y | x] under the emission, x: (..., code_dim) → (..., D)."""
        return self.likelihood.mean(self.decoder(x))

    def log_joint(self, x: Tensor, y: Tensor) -> Tensor:
        """log p̂(x, y) = log p̂(x) + log p̂(y | x): x (S, N, code), y (N, D) → (S, N)."""
        return self.recognition.log_prior(x) + self.likelihood.log_prob(self.decoder(x), y)

    # -- objectives ----------------------------------------------------------------------------

    @work_sized(lambda self, y, n_samples=1, *a, **k: step_work(
        self, numel(y) // max(1, self.data_dim) * int(n_samples), y))
    def elbo(self, y: Any, n_samples: int = 1, generator: torch.Generator | None = None,
             ) -> ELBO:
        """The ELBO of each datum (Eq. 8.20, S2:499): Monte Carlo E_q[log p̂(y|X̌)] with
        ``n_samples`` draws (discrete latents: exact samples, not relaxed) and the KL in closed
        form. Differentiable (pathwise) for Gaussian recognition."""
        y = self._data(y)
        check_positive_int(n_samples, "n_samples")
        p = self.encode(y)
        x = self.recognition.sample(p, n_samples, generator, relaxed=False)
        ll = self.likelihood.log_prob(self.decoder(x), y).mean(0)
        kl = self.recognition.kl_to_prior(p)
        return ELBO(ll - kl, ll, kl)

    def loss(self, y: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """The training loss: mean over the batch of −ELBO, with the gradient of the chosen
        estimator (pathwise, Gumbel-softmax, or score function with a baseline). Its *value*
        is the Monte Carlo −ELBO (for Gumbel-softmax, of the relaxed samples). y: (N, D),
        not validated (it is the inner loop; ``elbo`` validates)."""
        if y.dtype != self._dtype:
            y = y.to(self._dtype)
        p = self.encode(y)

        def log_lik(x: Tensor) -> Tensor:  # log p̂(y | x): (S, N, code) → (S, N)
            return self.likelihood.log_prob(self.decoder(x), y)

        expected = self.recognition.expected(p, log_lik, self.n_samples, generator)
        return (self.recognition.kl_to_prior(p) - expected).mean()  # Eq. 8.20

    @torch.no_grad()
    def iwae_bound(self, y: Any, k: int = 100, generator: torch.Generator | None = None,
                   chunk: int = 50) -> Tensor:
        """The importance-weighted bound log (1/k) Σ_i p̂(y, x_i)/p̌(x_i | y), x_i ~ p̌(x|y)
        (Burda et al. 2016): ≤ log p̂(y), non-decreasing in k, equal to the ELBO at k = 1 in
        expectation; an estimate of the log-likelihood for evaluation. y: (N, D) → (N,)."""
        y = self._data(y)
        k = check_positive_int(k, "k")
        p = self.encode(y)
        logw = []
        for start in range(0, k, chunk):
            s = min(chunk, k - start)
            x = self.recognition.sample(p, s, generator, relaxed=False)
            logw.append(self.log_joint(x, y) - self.recognition.log_prob(p, x))
        w = torch.cat(logw, 0)
        return torch.logsumexp(w, 0) - math.log(k)

    # -- generation ----------------------------------------------------------------------------

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None,
               mean: bool = False) -> Tensor:
        """n draws y ~ p̂(y) by ancestral sampling (``mean=True``: E[y | x] instead). (n, D)."""
        if not mean:
            return self.sample_joint(n, generator)[1]
        n = check_positive_int(n, "n")
        x = self.recognition.sample_prior(n, generator, self.dtype, self.device)
        return self.likelihood.mean(self.decoder(x))

    @torch.no_grad()
    def sample_joint(self, n: int, generator: torch.Generator | None = None
                     ) -> tuple[Tensor, Tensor]:
        """n draws (x, y) ~ p̂(x) p̂(y | x): the latents beside the observations. ((n, code),
        (n, D))."""
        n = check_positive_int(n, "n")
        x = self.recognition.sample_prior(n, generator, self.dtype, self.device)
        return x, self.likelihood.sample(self.decoder(x), generator)

    @torch.no_grad()
    def reconstruct(self, y: Any) -> Tensor:
        """E[y | x = mean code of p̌(x | y)]: the autoencoder's reconstruction. (N, D)."""
        y = self._data(y)
        return self.decode(self.recognition.mean(self.encode(y)))

    @torch.no_grad()
    def transform(self, y: Any) -> Tensor:
        """The recognition mean (Gaussian) or mode (categorical, one-hot) per datum."""
        y = self._data(y)
        return self.recognition.mean(self.encode(y))


def gaussian_vae_loss(y: Tensor, nu: Tensor, log_var: Tensor, decoder_mean: Any, alpha: float,
                      n_samples: int = 1, generator: torch.Generator | None = None,
                      ) -> tuple[Tensor, Tensor, Tensor]:
    """The closed-form-KL loss of a VAE with an isotropic Gaussian decoder and a diagonal
    Gaussian encoder (§8.2.2 boxed formulas, corrected; CATALOGUE G6), per datum:

        kl    = Σ_k ½(−log v_k² − 1 + v_k² + ν_k²)
        recon = ½⟨D log(τα) + ‖μ(v∘Z + ν) − y‖²/α⟩_Z,   Z ~ N(0, I)

    y: (N, D); nu, log_var: (N, K); decoder_mean: x (S, N, K) → μ (S, N, D).
    Returns (loss, kl, recon), each (N,), loss = kl + recon = −ELBO.
    """
    z = torch.randn((n_samples, *nu.shape), generator=generator, dtype=nu.dtype,
                    device=nu.device)
    mu = decoder_mean(nu + (0.5 * log_var).exp() * z)
    a = torch.as_tensor(alpha, dtype=mu.dtype, device=mu.device)
    recon = -Normal.log_prob_mean_var(y, mu, a).sum(-1).mean(0)
    kl = kl_diag_std_normal(nu, log_var)
    return kl + recon, kl, recon
