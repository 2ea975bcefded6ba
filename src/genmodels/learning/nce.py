"""Noise-contrastive objectives: NCE, negative sampling, InfoNCE, local NCE (book §10.1,
Eqs. 10.1–10.13; the NCE slides S2:70-292; CATALOGUE I1–I5, A12).

Each objective is a loss over a model's *unnormalised* log-density ``log_unnormalised(y)`` =
log u(y) = −E(y) and samples from a *noise* distribution q that can be both sampled and
evaluated. None of them needs the normaliser Z = ∫ u.

**NCE** (Gutmann & Hyvärinen 2010, 2012). Label data X = 1 and noise X = 0, with ν noise samples
per datum (the prior P(X = 1) = 1/(1 + ν); the book takes ν = 1, the slides ν = k). Bayes' rule
on the unnormalised model gives the posterior (Eq. 10.2; S2:106-147)

    p̂(X = 1 | y) = u(y) / (u(y) + ν q(y)) = σ(Δ(y)),   Δ(y) = log u(y) − log q(y) − log ν,

(the book's h = E_n − E of Eq. 10.3 at ν = 1; the slides' Δs = s − log kq), and NCE minimises
its cross entropy (Eq. 10.4 at ν = 1; the slides' objective with log σ, erratum S2-3):

    L = [⟨−log σ(Δ(Y⁺))⟩_data + ν ⟨−log σ(−Δ(Y⁻))⟩_noise] / (1 + ν).

*Why it normalises* (S2:179-292, A12): with G = ν q/u the population objective is
C = −∫ log(1 + G) p + ν ∫ (log G − log(1 + G)) q; it has no G′ term, so the Euler–Lagrange
condition is pointwise, δC/δG = 0 ⇔ G = ν q/p, i.e. u = p: the minimiser is the *normalised*
density (erratum S2-6: ν = m/n, the noise-to-data ratio, plays the role of k). Without the
log ν in Δ the minimiser is u = p/ν instead — a model fitted with ν ≠ 1 would be off by log ν.
A model whose family does not contain its own scale learns log Z as one more parameter, c:
log p̂(y) = log u(y) − c (``NCE(learn_log_normaliser=True)``).

*Properties of the estimator* (the book's placeholder, B:3009, filled from Gutmann & Hyvärinen
2012, §2.3–2.4, Theorems 2–3): when q is nonzero wherever p is and the model family contains
p, the estimate is (i) consistent — it converges in probability to the true parameters, log Z
included, as the data grow with ν fixed; (ii) asymptotically normal, with a covariance that
(iii) decreases as ν grows and tends to the Cramér–Rao bound (the covariance of maximum
likelihood) as ν → ∞, the noise samples doing the work that the normaliser's gradient does in
maximum likelihood. The covariance is smallest when q is close to p: noise far from the data
makes the classification easy and the finite-sample estimate unreliable (B:2993-2997). The
cost of a step is independent of the size of a discrete space (S2:149-156).

**Negative sampling** (Mikolov et al. 2013) is NCE with k q(w) ≡ 1 (S2:160-175, erratum S2-5):
Δs = s, ℓ = −log σ(s⁺) − Σ_j log σ(−s⁻_j). With word2vec's q ∝ unigram^¾ and small k it is
*not* consistent NCE: the optimum is s(w, c) = PMI(w, c) − log k (Levy & Goldberg 2014), which
does not self-normalise.

**InfoNCE** (van den Oord et al. 2018; §10.1.2): K examples, one positive; the posterior over
which is positive is a softmax of the critic h (Eq. 10.6) and the loss its cross entropy
(Eq. 10.7). With positives from p(y | z) and negatives from p(y), log K − L is a lower bound on
the mutual information I(Y; Z) for *any* critic (Poole et al. 2019, Eq. 12 — the bound the
book's footnote 2 asks for), and log K − L ≤ log K always. **Local NCE** (wav2vec; §10.1.3)
treats the K examples as independent balanced binary problems (Eq. 10.13).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genmodels._threads import work_sized
from genmodels._validation import as_tensor, check_data_matrix, check_nonnegative_float

__all__ = [
    "NCE",
    "GaussianNoise",
    "InfoNCE",
    "InfoNCEEstimate",
    "ModelNoise",
    "NoiseDistribution",
    "UnigramNoise",
    "as_log_unnormalised",
    "conditional_nce_loss",
    "in_batch_info_nce_loss",
    "info_nce_bound",
    "info_nce_loss",
    "local_nce_loss",
    "nce_logits",
    "nce_loss",
    "negative_sampling_loss",
    "skipgram_negative_sampling_loss",
]


# ---------------------------------------------------------------- noise distributions
@runtime_checkable
class NoiseDistribution(Protocol):
    """What the NCE objectives need of a noise distribution q: draws and their log-density."""

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n draws, (n, *event)."""
        ...

    def log_prob(self, y: Tensor) -> Tensor:
        """log q(y), (n, *event) → (n,); a normalised density."""
        ...


class GaussianNoise(nn.Module):
    """q = N(μ, Σ), e.g. fitted to the data (``GaussianNoise.fit``): noise close to the data is
    what makes NCE efficient (Gutmann & Hyvärinen 2012, §2.4).

    loc: (D,); covariance: (D, D) positive definite.
    """

    loc: Tensor
    scale_tril: Tensor

    def __init__(self, loc: Any, covariance: Any) -> None:
        super().__init__()
        m = as_tensor(loc, name="loc")
        if m.dim() != 1 or m.numel() == 0:
            raise ValueError(f"loc must have shape (D,), got {tuple(m.shape)}.")
        S = as_tensor(covariance, name="covariance", dtype=m.dtype)
        d = m.shape[0]
        if tuple(S.shape) != (d, d):
            raise ValueError(f"covariance must have shape ({d}, {d}) to match loc, got "
                             f"{tuple(S.shape)}.")
        L, info = torch.linalg.cholesky_ex(0.5 * (S + S.mT))
        if int(info) != 0:
            raise ValueError("covariance must be symmetric positive definite.")
        self.register_buffer("loc", m)
        self.register_buffer("scale_tril", L)

    @classmethod
    def fit(cls, y: Any, *, scale: float = 1.0, reg: float = 1e-6) -> GaussianNoise:
        """The data's mean and covariance, the covariance times ``scale``² (a wider noise),
        plus ``reg``·(mean variance)·I. y: (N, D) with N ≥ 2."""
        Y = check_data_matrix(y, name="y", min_samples=2)
        s = check_nonnegative_float(scale, "scale", strictly=True)
        cov = torch.cov(Y.mT).reshape(Y.shape[1], Y.shape[1]) * s**2
        jitter = reg * float(cov.diagonal().mean().clamp_min(torch.finfo(Y.dtype).tiny))
        return cls(Y.mean(0), cov + jitter * torch.eye(Y.shape[1], dtype=Y.dtype))

    def _dist(self) -> torch.distributions.MultivariateNormal:
        return torch.distributions.MultivariateNormal(self.loc, scale_tril=self.scale_tril,
                                                      validate_args=False)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """(n, D) draws μ + L ε, ε ~ N(0, I)."""
        eps = torch.randn(n, self.loc.shape[0], generator=generator, dtype=self.loc.dtype,
                          device=self.loc.device)
        return self.loc + eps @ self.scale_tril.mT

    def log_prob(self, y: Tensor) -> Tensor:
        """log N(y; μ, Σ). y: (N, D) → (N,)."""
        return self._dist().log_prob(y)


class ModelNoise(nn.Module):
    """Any genmodels model as the noise: ``model.sample(n, generator=...)`` (the observations,
    or a (latents, observations) pair) and ``model.log_marginal(y)`` (or ``log_prob``) —
    e.g. a Gaussian mixture fitted by EM to the data."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        log_density = getattr(model, "log_marginal", None) or getattr(model, "log_prob", None)
        if not callable(getattr(model, "sample", None)) or not callable(log_density):
            raise ValueError(f"{type(model).__name__} cannot be the noise: it needs sample(n, "
                             "generator) and log_marginal(y) (or log_prob(y)).")
        self.model = model
        self._log_density: Callable[[Tensor], Tensor] = log_density

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        out = self.model.sample(n, generator=generator)
        return out[-1] if isinstance(out, tuple) else out

    def log_prob(self, y: Tensor) -> Tensor:
        return self._log_density(y)


class UnigramNoise(nn.Module):
    """q(w) ∝ count(w)^power over a vocabulary of V symbols (word2vec's power ¾; 1 for the
    unigram distribution itself, 0 for uniform). Draws are symbol indices.

    counts: (V,) non-negative, not all zero.
    """

    probs: Tensor
    cdf: Tensor

    def __init__(self, counts: Any, power: float = 0.75) -> None:
        super().__init__()
        c = as_tensor(counts, name="counts")
        if c.dim() != 1 or c.numel() == 0:
            raise ValueError(f"counts must have shape (V,) with V >= 1, got {tuple(c.shape)}.")
        if bool((c < 0).any()) or float(c.sum()) <= 0:
            raise ValueError("counts must be non-negative and not all zero.")
        self.power = float(power)
        w = torch.where(c > 0, c.pow(self.power), torch.zeros_like(c))
        self.register_buffer("probs", w / w.sum())
        self.register_buffer("cdf", torch.cumsum(self.probs, 0))

    @property
    def num_symbols(self) -> int:
        return int(self.probs.shape[0])

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """(n,) indices, by inversion of the cumulative distribution."""
        u = torch.rand(n, generator=generator, dtype=self.cdf.dtype, device=self.cdf.device)
        idx = torch.searchsorted(self.cdf, u * self.cdf[-1], right=True)
        return idx.clamp_max(self.num_symbols - 1)

    def log_prob(self, w: Tensor) -> Tensor:
        """log q(w) for indices w (any shape); −inf for symbols with zero count."""
        return self.probs.log()[w]


# ---------------------------------------------------------------- the unnormalised model
def as_log_unnormalised(model: Any) -> Callable[[Tensor], Tensor]:
    """The unnormalised log-density log u(y) of a model: its ``log_unnormalised(y)``, else
    −``free_energy(y)`` (a harmonium, Eq. 3.4), else −``energy(y)``, else the model itself if
    callable (a user's ``nn.Module`` returning log u). y: (N, *event) → (N,)."""
    fn = getattr(model, "log_unnormalised", None)
    if callable(fn):
        return fn
    for name in ("free_energy", "energy"):
        energy = getattr(model, name, None)
        if callable(energy):
            return _Negated(energy)
    if callable(model):
        return model
    raise ValueError(f"{type(model).__name__} gives no unnormalised log-density: it needs "
                     "log_unnormalised(y), free_energy(y) or energy(y), or to be callable.")


class _Negated:
    """y ↦ −f(y): log u = −E."""

    def __init__(self, f: Callable[[Tensor], Tensor]) -> None:
        self.f = f

    def __call__(self, y: Tensor) -> Tensor:
        return -self.f(y)


def _check_support(log_q: Tensor, what: str) -> None:
    bad = ~torch.isfinite(log_q)
    if bool(bad.any()):
        i = int(torch.nonzero(bad.reshape(-1))[0])
        raise ValueError(
            f"the noise density is {'zero' if float(log_q.reshape(-1)[i]) < 0 else 'infinite'} "
            f"at {what} index {i} (log q = {float(log_q.reshape(-1)[i])}); NCE needs a noise "
            "distribution that is positive and finite wherever the data are (B:2991).")


# ---------------------------------------------------------------- losses on tensors
def nce_logits(log_u: Tensor, log_q: Tensor, nu: float = 1.0) -> Tensor:
    """Δ = log u − log q − log ν, the logit of p̂(X = 1 | y) = u/(u + νq) (Eqs. 10.2–10.3;
    S2:138-147, Δs = s − log kq). log_u, log_q: same shape."""
    if log_u.shape != log_q.shape:
        raise ValueError(f"log_u and log_q must have the same shape, got {tuple(log_u.shape)} "
                         f"and {tuple(log_q.shape)}.")
    return log_u - log_q - math.log(check_nonnegative_float(nu, "nu", strictly=True))


def _mean(x: Tensor, weights: Tensor | None) -> Tensor:
    return x.mean() if weights is None else (x * weights).sum()


def nce_loss(delta_pos: Tensor, delta_neg: Tensor, nu: float | None = None, *,
             pos_weights: Tensor | None = None, neg_weights: Tensor | None = None) -> Tensor:
    """NCE's posterior cross entropy with prior P(X = 1) = 1/(1 + ν) (Eq. 10.4 at ν = 1):

        L = [⟨−log σ(Δ⁺)⟩ + ν ⟨−log σ(−Δ⁻)⟩] / (1 + ν).

    delta_pos: (N,) logits Δ at the data; delta_neg: the logits at the noise samples, (M,) or
    (N, k) (k per datum: the slides' conditional NCE). nu: the noise-to-data ratio, by default
    M/N (it must be the ν inside Δ). pos_weights, neg_weights: optional probabilities (summing
    to one) that replace the sample means by expectations — the population loss on a grid.
    Returns a 0-d tensor."""
    if delta_pos.numel() == 0:
        raise ValueError("the data sample is empty: NCE needs at least one datum.")
    if delta_neg.numel() == 0:
        raise ValueError("the noise sample is empty: NCE needs at least one noise sample "
                         "(noise_ratio · batch size must be ≥ 1).")
    if delta_neg.dim() == 2 and delta_pos.dim() == 1 and delta_neg.shape[0] != \
            delta_pos.shape[0]:
        raise ValueError(f"delta_neg (N, k) must have one row per datum: {delta_pos.shape[0]} "
                         f"data but {delta_neg.shape[0]} rows of noise logits.")
    if nu is None:
        nu = delta_neg.numel() / delta_pos.numel()
    nu = check_nonnegative_float(nu, "nu", strictly=True)
    pos = _mean(F.softplus(-delta_pos), pos_weights)  # −log σ(Δ⁺)
    neg = _mean(F.softplus(delta_neg), neg_weights)  # −log σ(−Δ⁻) = −log(1 − σ(Δ⁻))
    return (pos + nu * neg) / (1.0 + nu)


def conditional_nce_loss(s_pos: Tensor, s_neg: Tensor, log_q_pos: Tensor,
                         log_q_neg: Tensor) -> Tensor:
    """Conditional NCE with k noise samples per context (S2:100-158, Mnih & Teh 2012): for each
    observed pair (c, w) and its k noise words w̄ ~ q, Δs = s(w|c) − log(k q(w)) and the loss is
    ``nce_loss`` with ν = k. No per-context normaliser is learned: at the optimum
    exp s(w|c) = p(w|c), normalised for every context.

    s_pos, log_q_pos: (B,); s_neg, log_q_neg: (B, k)."""
    if s_neg.dim() != 2 or s_pos.shape != s_neg.shape[:1] or log_q_pos.shape != s_pos.shape \
            or log_q_neg.shape != s_neg.shape:
        raise ValueError(f"s_pos, log_q_pos must be (B,) and s_neg, log_q_neg (B, k); got "
                         f"{tuple(s_pos.shape)}, {tuple(log_q_pos.shape)}, {tuple(s_neg.shape)}, "
                         f"{tuple(log_q_neg.shape)}.")
    k = s_neg.shape[1]
    if k == 0:
        raise ValueError("the noise sample is empty: conditional NCE needs k >= 1 noise words "
                         "per context.")
    _check_support(log_q_pos, "data (pair)")
    return nce_loss(nce_logits(s_pos, log_q_pos, k), nce_logits(s_neg, log_q_neg, k), k)


def negative_sampling_loss(s_pos: Tensor, s_neg: Tensor, mask: Tensor | None = None) -> Tensor:
    """Negative sampling (S2:160-175, corrected as S2-4): the mean over pairs of
    ℓ = −log σ(s⁺) − Σ_j log σ(−s⁻_j) — NCE with k q ≡ 1 (Δs = s), summed rather than
    averaged over the 1 + k examples: ℓ̄ = (1 + k) · ``nce_loss(s_pos, s_neg)``.

    s_pos: (B,) scores s(w|c) of the observed pairs; s_neg: (B, k) scores of the negatives;
    mask: optional (B, k), 0 where a negative is to be skipped (word2vec skips a negative equal
    to the positive word)."""
    if s_neg.dim() != 2 or s_pos.shape != s_neg.shape[:1]:
        raise ValueError(f"s_pos must be (B,) and s_neg (B, k), got {tuple(s_pos.shape)} and "
                         f"{tuple(s_neg.shape)}.")
    neg = F.softplus(s_neg)
    if mask is not None:
        neg = neg * mask
    return (F.softplus(-s_pos) + neg.sum(-1)).mean()


def skipgram_negative_sampling_loss(U: Tensor, Vc: Tensor, centers: Tensor, contexts: Tensor,
                                    negatives: Tensor) -> Tensor:
    """The skip-gram negative-sampling loss of word2vec: s(w|c) = u_wᵀ v_c with u the output
    ("target") vectors and v the input ("centre") vectors (S2:70-77).

    U, Vc: (V, D); centers, contexts: (B,) indices c and w; negatives: (B, k) indices w̄.
    A negative equal to its pair's positive word is skipped (as in word2vec)."""
    v = Vc[centers]  # (B, D)
    s_pos = (U[contexts] * v).sum(-1)  # (B,)
    s_neg = torch.einsum("bkd,bd->bk", U[negatives], v)  # (B, k)
    mask = (negatives != contexts[:, None]).to(s_neg.dtype)
    return negative_sampling_loss(s_pos, s_neg, mask)


def info_nce_loss(h_pos: Tensor, h_neg: Tensor) -> Tensor:
    """InfoNCE / multi-example NCE (Eq. 10.7): the mean over trials of
    −log softmax(h⁺, h⁻_1, …, h⁻_{K−1})_+ . h_pos: (B,); h_neg: (B, K − 1)."""
    if h_neg.dim() != 2 or h_pos.shape != h_neg.shape[:1]:
        raise ValueError(f"h_pos must be (B,) and h_neg (B, K - 1), got {tuple(h_pos.shape)} "
                         f"and {tuple(h_neg.shape)}.")
    if h_neg.shape[1] == 0:
        raise ValueError("InfoNCE needs at least one negative per trial (K >= 2).")
    logits = torch.cat([h_pos[:, None], h_neg], 1)  # (B, K), the positive first
    return (torch.logsumexp(logits, 1) - h_pos).mean()  # Eq. 10.6 in log space


@functools.lru_cache(maxsize=16)
def _diagonal_labels(B: int, device: torch.device) -> Tensor:
    """arange(B) on device, made once per (B, device) (read-only: cross_entropy's targets)."""
    return torch.arange(B, device=device)


def in_batch_info_nce_loss(scores: Tensor) -> Tensor:
    """InfoNCE with in-batch negatives: scores[i, j] = h(y_j, z_i) for a batch of B pairs
    (y_i, z_i); for each z_i the positive is y_i and the other B − 1 are its negatives, drawn
    from the marginal p(y) (§10.1.2 (3)). The cross entropy with the diagonal as the labels.
    scores: (*batch, B, B) → 0-d (the mean over trials)."""
    if scores.dim() < 2 or scores.shape[-1] != scores.shape[-2]:
        raise ValueError(f"scores must be square (*batch, B, B), got {tuple(scores.shape)}.")
    if scores.shape[-1] < 2:
        raise ValueError("in-batch InfoNCE needs a batch of at least 2 pairs (K = B >= 2).")
    B = scores.shape[-1]
    labels = _diagonal_labels(B, scores.device)  # the positives: the diagonal
    if scores.dim() > 2:
        scores, labels = scores.reshape(-1, B), labels.repeat(scores.numel() // (B * B))
    return F.cross_entropy(scores, labels)  # a fused log-softmax (Eq. 10.6)


def info_nce_bound(loss: Tensor | float, K: int) -> Tensor:
    """log K − L_InfoNCE: a lower bound on I(Y; Z) (Poole et al. 2019, Eq. 12; the book's
    Eq. 10.11 made rigorous), never above log K."""
    return math.log(K) - torch.as_tensor(loss)


def local_nce_loss(h_pos: Tensor, h_neg: Tensor) -> Tensor:
    """Local NCE (wav2vec; Eq. 10.13, with h(Y^j) per negative as erratum E-45): the mean over
    trials of −log σ(h⁺) − Σ_j log σ(−h⁻_j), each example its own balanced binary problem.
    h_pos: (B,); h_neg: (B, K − 1)."""
    if h_neg.dim() != 2 or h_pos.shape != h_neg.shape[:1]:
        raise ValueError(f"h_pos must be (B,) and h_neg (B, K - 1), got {tuple(h_pos.shape)} "
                         f"and {tuple(h_neg.shape)}.")
    return (F.softplus(-h_pos) + F.softplus(h_neg).sum(-1)).mean()


# ---------------------------------------------------------------- loss models for the trainer
class NCE(nn.Module):
    """An unnormalised model fitted by NCE through ``learning.trainer`` (a ``LossModel``).

    model: the unnormalised density — anything ``as_log_unnormalised`` accepts (a genmodels
        energy model, a harmonium's free energy, a user's ``nn.Module``); its parameters are
        trained.
    noise: a ``NoiseDistribution`` (``GaussianNoise.fit(data)``, ``ModelNoise(gmm)``,
        ``UnigramNoise(counts)``).
    noise_ratio: ν, noise samples per datum (round(ν·B) per batch of B).
    learn_log_normaliser: learn c = log Z as a parameter, so that log p̂(y) = log u(y) − c is
        normalised at the optimum (off for models whose log u carries its own constant).
    log_normaliser: the initial c.

    ``log_density(y)`` is the fitted, self-normalised log p̂(y); ``log_normaliser`` is c.
    """

    def __init__(self, model: Any, noise: NoiseDistribution, *, noise_ratio: float = 1.0,
                 learn_log_normaliser: bool = True, log_normaliser: float = 0.0) -> None:
        super().__init__()
        if not isinstance(noise, NoiseDistribution):
            raise ValueError(f"noise must have sample(n, generator) and log_prob(y), got "
                             f"{type(noise).__name__}.")
        self._log_u = as_log_unnormalised(model)
        self.model = model if isinstance(model, nn.Module) else None
        self.noise = noise if isinstance(noise, nn.Module) else _NoiseModule(noise)
        self.noise_ratio = check_nonnegative_float(noise_ratio, "noise_ratio", strictly=True)
        c = torch.tensor(float(log_normaliser), dtype=_dtype_of(model))
        if learn_log_normaliser:
            self.log_normaliser = nn.Parameter(c)
        else:
            self.register_buffer("log_normaliser", c)

    def log_density(self, y: Tensor) -> Tensor:
        """log p̂(y) = log u(y) − c, (N, *event) → (N,)."""
        return self._log_u(y) - self.log_normaliser

    def logits(self, y: Tensor) -> Tensor:
        """Δ(y) = log p̂(y) − log q(y) − log ν (Eqs. 10.2–10.3)."""
        return nce_logits(self.log_density(y), self._log_q(y), self.noise_ratio)

    @torch.no_grad()
    def _log_q(self, y: Tensor) -> Tensor:
        """log q(y): the noise is fixed (no gradient reaches a model used as the noise)."""
        return self.noise.log_prob(y)

    def loss(self, batch: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """The NCE loss on a batch of data (B, *event) and round(ν·B) fresh noise draws."""
        m = round(self.noise_ratio * batch.shape[0])
        if m < 1:
            raise ValueError(f"noise_ratio={self.noise_ratio} gives no noise sample for a batch "
                             f"of {batch.shape[0]}; raise noise_ratio or the batch size.")
        with torch.no_grad():
            y_neg = self.noise.sample(m, generator).to(batch.device)
        if y_neg.shape[1:] != batch.shape[1:]:
            raise ValueError(f"the noise draws have shape {tuple(y_neg.shape[1:])} per sample "
                             f"but the data {tuple(batch.shape[1:])}.")
        log_q_pos = self._log_q(batch)
        _check_support(log_q_pos, "data (batch)")
        delta_pos = nce_logits(self.log_density(batch), log_q_pos, self.noise_ratio)
        return nce_loss(delta_pos, self.logits(y_neg), self.noise_ratio)


class _NoiseModule(nn.Module):
    """A noise distribution that is not an ``nn.Module``, held as one."""

    def __init__(self, noise: NoiseDistribution) -> None:
        super().__init__()
        self.inner = noise

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        return self.inner.sample(n, generator)

    def log_prob(self, y: Tensor) -> Tensor:
        return self.inner.log_prob(y)


def _dtype_of(model: Any) -> torch.dtype:
    if isinstance(model, nn.Module):
        for p in model.parameters():
            return p.dtype
    return torch.get_default_dtype()


class InfoNCEEstimate(NamedTuple):
    """A mutual-information lower bound from InfoNCE.

    lower_bound: log K − L, the mean over batches (Poole et al. 2019): ≤ I(Y; Z) in expectation
        and ≤ log K always.
    standard_error: its standard error over the batches.
    log_k: log K, the bound's ceiling.
    loss: the mean InfoNCE loss L.
    """

    lower_bound: float
    standard_error: float
    log_k: float
    loss: float


class InfoNCE(nn.Module):
    """A critic h(y, z) trained by in-batch InfoNCE through ``learning.trainer``.

    critic: ``critic.scores(y, z)`` or ``critic(y, z)`` → (B, B) with [i, j] = h(y_j, z_i)
        (``genmodels.models.cpc.BilinearCritic``, or the optimal critic log p(y|z)/p(y)).
    dim_y: the data rows are [y, z] side by side: y the first dim_y columns, z the rest.
    """

    def __init__(self, critic: Any, dim_y: int) -> None:
        super().__init__()
        self.critic = critic
        self._scores = getattr(critic, "scores", critic)
        if not callable(self._scores):
            raise ValueError("critic must have scores(y, z) or be callable as critic(y, z).")
        self.dim_y = int(dim_y)

    def split(self, batch: Tensor) -> tuple[Tensor, Tensor]:
        if batch.dim() != 2 or not 0 < self.dim_y < batch.shape[1]:
            raise ValueError(f"a batch must be (B, dim_y + dim_z) with dim_y = {self.dim_y}, "
                             f"got {tuple(batch.shape)}.")
        return batch[:, : self.dim_y], batch[:, self.dim_y:]

    def scores(self, y: Tensor, z: Tensor) -> Tensor:
        if y.shape[0] != z.shape[0]:
            raise ValueError(f"y and z must pair up: {y.shape[0]} rows of y, {z.shape[0]} of z.")
        return self._scores(y, z)

    def flops_per_operation(self, batch_size: int, datum_shape: tuple[int, ...]) -> float:
        """The (B, B) score matrix of a batch, 2 B² dim_z flops (for the thread policy; the
        critic's own layers, when larger, through their parameters)."""
        width = int(datum_shape[-1]) if datum_shape else 1
        dim_z = max(1, width - self.dim_y)
        return 2.0 * batch_size * max(batch_size * dim_z, self._largest_parameter())

    def _largest_parameter(self) -> int:
        """The largest parameter's size, found once (a walk over the critic's modules costs
        ~2 µs per batch); re-walked while the critic has uninitialised (lazy) parameters."""
        cached = self.__dict__.get("_largest_numel")
        if cached is not None:
            return int(cached)
        params = list(self.parameters())
        if any(isinstance(p, nn.parameter.UninitializedParameter) for p in params):
            return 0
        largest = max((p.numel() for p in params), default=0)
        self.__dict__["_largest_numel"] = largest
        return largest

    @work_sized(lambda self, batch, *a, **k: self.flops_per_operation(
        batch.shape[0], tuple(batch.shape[1:])))
    def loss(self, batch: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """The in-batch InfoNCE loss of one batch (B, dim_y + dim_z), in a thread-policy
        region (nested in the trainer's, it changes nothing; its cost is ~2 µs, the work
        estimate's parameter walk cached)."""
        return in_batch_info_nce_loss(self.scores(*self.split(batch)))

    @work_sized(lambda self, data, batch_size: self.flops_per_operation(
        batch_size, tuple(data.shape[1:])))
    @torch.no_grad()
    def mutual_information(self, data: Tensor, batch_size: int) -> InfoNCEEstimate:
        """log K − L over consecutive batches of K = ``batch_size`` pairs of ``data``
        (N, dim_y + dim_z); the remainder is dropped."""
        n = data.shape[0] // batch_size
        if n < 1 or batch_size < 2:
            raise ValueError(f"need batch_size >= 2 and at least one full batch; got "
                             f"batch_size={batch_size} for {data.shape[0]} pairs.")
        y, z = self.split(data[: n * batch_size])
        per = torch.stack([in_batch_info_nce_loss(self.scores(yb, zb)) for yb, zb in
                           zip(y.split(batch_size), z.split(batch_size))])
        bound = math.log(batch_size) - per
        se = float(bound.std() / math.sqrt(n)) if n > 1 else math.nan
        return InfoNCEEstimate(float(bound.mean()), se, math.log(batch_size), float(per.mean()))
