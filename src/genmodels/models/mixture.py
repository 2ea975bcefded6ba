"""Mixture models over any emission (§2.1.1, CATALOGUE B1–B3, F1).

The source is categorical, x̂ ~ Categ(π) (Eq. 2.3), and the emission p̂(y | x̂ = k) is any
``Emission`` (Gaussian, Bernoulli, Poisson, ...). Because the categorical prior is
"pseudo-conjugate" to every emission (B:443-455), inference is exact for all of them:

    ẑ_k = log p̂(y | x̂ = k) + log π_k                        (Eq. 2.6, the "logits")
    p̂(x̂ = k | y) = softmax(ẑ)_k                             (Eqs. 2.6–2.7, responsibilities)
    p̂(y) = Σ_k π_k p̂(y | x̂ = k)                              (Eq. 2.10, the marginal)

and learning is EM (§7.1) through ``genmodels.learning.em``: ``expected_stats`` returns the
summed responsibilities and the emission's posterior-weighted statistics, ``maximize`` sets
π_k = ⟨r_k⟩ and hands the rest to the emission's M step.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import Tensor

from genmodels._validation import as_tensor, check_data_matrix
from genmodels.io import SavableModule, class_path, import_class
from genmodels.learning.em import EStep
from genmodels.linalg import eps, log_normalize
from genmodels.models.emissions import Emission

Stats = dict[str, Tensor]

#: How ``MixtureModel.initialize`` starts EM (scikit-learn's ``init_params`` names).
INIT_METHODS = ("kmeans", "k-means++", "random", "random_from_data")


class MixturePosterior(NamedTuple):
    """Exact inference in a mixture ("inverting the arrow").

    responsibilities: p̂(x̂_n = k | y_n), (N, K); rows sum to one (Eq. 2.6).
    log_responsibilities: their logarithms, (N, K).
    log_marginal: log p̂(y_n), (N,) (Eq. 2.10).
    """

    responsibilities: Tensor
    log_responsibilities: Tensor
    log_marginal: Tensor


def _exp_shifted_(z: Tensor) -> Tensor:
    """exp(z) in place for z ≤ 0 (log-weights shifted by their maximum), with z first floored at
    log tiny + 8 (≈ −700.4 in float64, −79.3 in float32): weights below e⁸ × the smallest
    normal number (7e-305 in float64, 3.5e-35 in float32) come out as that floor.

    Next to a largest weight of 1 the floor cannot change a normalised sum or a statistic
    beyond rounding; computing the true values costs 10–70× a normal exp on x86 (torch's exp
    takes a slow path from z ≈ −708 down, subnormal and underflowing results alike: 4–8 ms
    against 0.4 ms for an (11,335 × 32) float64 chunk, as a GMM's far components give), and
    subnormal weights then slow the M step's product as well. (Zeroing the floored entries
    instead costs a mask and a fill, two more passes: 25 ms of a 200 ms EM iteration at
    N = 200,000, K = 32.)"""
    return z.clamp_min_(math.log(torch.finfo(z.dtype).tiny) + 8.0).exp_()


class MixtureModel(SavableModule):
    """p̂(x, y) = Categ(x; π) · p̂(y | x) for any emission (§2.1.1).

    weights: (K,) mixing proportions π (positive, normalised here).
    emission: an ``Emission`` over K states (e.g. ``GaussianEmission``).
    init: how ``initialize`` starts EM, one of ``INIT_METHODS``.
    initializer: optional callable ``(model, data, generator) -> None`` that replaces the
        default initialisation (estimators use it to apply user-given initial parameters; it
        may call ``default_initialize`` first).
    """

    weights: Tensor

    def __init__(self, weights: Tensor, emission: Emission, *, init: str = "kmeans") -> None:
        super().__init__()
        if not isinstance(emission, Emission):
            raise ValueError(f"emission must implement the Emission protocol, got "
                             f"{type(emission).__name__}.")
        w = torch.as_tensor(weights)
        if not w.is_floating_point():
            w = w.to(torch.float64)
        k = emission.num_states
        if tuple(w.shape) != (k,):
            raise ValueError(f"weights must have shape ({k},) to match the emission's {k} "
                             f"states, got {tuple(w.shape)}.")
        if not bool(torch.isfinite(w).all()) or bool((w < 0).any()) or float(w.sum()) <= 0:
            raise ValueError("weights must be finite, non-negative and not all zero.")
        if init not in INIT_METHODS:
            raise ValueError(f"init must be one of {INIT_METHODS}, got {init!r}.")
        self.emission = emission
        self.init = init
        self.register_buffer("weights", w / w.sum())
        self.initializer: Callable[[MixtureModel, Tensor, torch.Generator], None] | None = None
        self.config = {"init": init}

    # -- saving: the emission is a module of its own -----------------------------------------
    def get_config(self) -> dict[str, Any]:
        em: Any = self.emission
        if not hasattr(em, "get_config"):
            raise ValueError(f"cannot save: the emission {type(em).__name__} is not savable.")
        return {"init": self.init,
                "emission_class": class_path(em),
                "emission_config": em.get_config()}

    @classmethod
    def from_saved(cls, config: dict[str, Any], tensors: dict[str, Tensor]) -> Any:
        emission = import_class(config["emission_class"])(**config["emission_config"])
        obj = cls(torch.ones_like(tensors["weights"]), emission, init=config["init"])
        obj.load_state_dict(tensors)
        return obj

    # -- representation -----------------------------------------------------------------------
    @property
    def num_states(self) -> int:
        return int(self.weights.shape[0])

    def log_prior(self) -> Tensor:
        """log π, (K,) (Eq. 2.3)."""
        return torch.log(self.weights)

    def log_joint(self, y: Tensor) -> Tensor:
        """ẑ_nk = log p̂(y_n | x̂ = k) + log π_k (Eq. 2.6). y: (*batch, N, D) → (*batch, N, K)."""
        if y.dim() > 2:  # emissions see (N, D): fold the leading batch dimensions into N
            return self.log_joint(y.reshape(-1, y.shape[-1])).reshape(*y.shape[:-1], -1)
        return self.emission.log_likelihood(y) + self.log_prior()

    def posterior(self, y: Tensor) -> MixturePosterior:
        """Responsibilities and log marginal (Eqs. 2.6, 2.7, 2.10). y: (*batch, N, D)."""
        log_resp, log_marg = log_normalize(self.log_joint(y))  # softmax in log space
        return MixturePosterior(log_resp.exp(), log_resp, log_marg)

    def log_marginal(self, y: Tensor) -> Tensor:
        """log p̂(y_n) = logsumexp_k ẑ_nk (Eq. 2.10). y: (*batch, N, D) → (*batch, N)."""
        return torch.logsumexp(self.log_joint(y), dim=-1)

    def sample(self, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Ancestral sampling: x̂ ~ Categ(π), ŷ ~ p̂(y | x̂). → (states (n,), y (n, D))."""
        states = torch.multinomial(self.weights.cpu(), n, replacement=True, generator=generator)
        states = states.to(self.weights.device)
        return states, self.emission.sample(states, generator)

    def num_parameters(self) -> int:
        """K − 1 free mixing weights plus the emission's parameters."""
        return self.num_states - 1 + self.emission.num_parameters()

    def bic(self, y: Tensor) -> float:
        """Bayesian information criterion −2 log p̂(Y) + p log N (lower is better)."""
        return float(-2.0 * self.log_marginal(y).sum() + self.num_parameters()
                     * torch.log(torch.tensor(float(y.shape[0]))))

    def aic(self, y: Tensor) -> float:
        """Akaike information criterion −2 log p̂(Y) + 2p (lower is better)."""
        return float(-2.0 * self.log_marginal(y).sum() + 2.0 * self.num_parameters())

    # -- learning (the EM contract of genmodels.learning.em) ---------------------------------
    def _chunk_rows(self, y: Tensor) -> int:
        # Bound the per-chunk work arrays (responsibilities + the emission's features) to about
        # 2**20 numbers (8 MB in float64) so that the M step's product finds the chunk that the
        # E step's product just read still in cache; vectorised within a chunk. (At N = 200k,
        # D = 16, K = 32 the products of (11,000 × 153) chunks ran at 46–56% of the matmul
        # peak, of (4,000 × 153) ones at 90–100%.)
        d = y.shape[-1] if y.dim() > 1 else 1
        width = self.num_states + d * (d + 1) // 2 + d
        return max(1024, (1 << 20) // width)

    def expected_stats(self, batch: Tensor) -> EStep:
        """E step: Σ_n r_nk and the emission's weighted statistics; Σ_n log p̂(y_n)."""
        if not isinstance(batch, Tensor):  # a NumPy array or list: the shared conversion
            batch = self.check_data(batch)
        log_pi = self.log_prior()
        total: Stats | None = None
        loglik = torch.zeros((), dtype=self.weights.dtype, device=self.weights.device)
        rows = self._chunk_rows(batch)
        fused = bool(getattr(self.emission, "fuses_log_prior", False)) and batch.dim() == 2
        if fused:
            # one (K, rows) buffer for every chunk's ẑ, used through its (rows, K) transpose:
            # no fresh (n, K) array per chunk (each cost a page-faulting allocation), log π
            # folded into the emission's product (no separate pass), and the M step's
            # product Rᵀ F then reads R's rows contiguously (measured at N = 200,000, D = 16,
            # K = 32, full, 1 thread: the E + M step 18% faster than z = table + log π)
            buf = batch.new_empty(self.num_states, min(rows, batch.shape[0]))
        for y in torch.split(batch, rows):
            if fused:  # (n, K) Eq. 2.6's ẑ
                z = self.emission.log_likelihood(y, bias=log_pi,  # type: ignore[call-arg]
                                                 out=buf[:, : y.shape[0]].T)
            else:
                z = self.emission.log_likelihood(y) + log_pi  # (n, K) Eq. 2.6's ẑ
            z_max = z.amax(-1, keepdim=True)
            if not bool(torch.isfinite(z_max).all()):
                bad = int(torch.nonzero(~torch.isfinite(z_max))[0, 0])
                raise ValueError(f"observation {bad} of the batch (the data) has zero (or NaN) "
                                 "probability under every component.")
            resp = _exp_shifted_(z.sub_(z_max))  # softmax in place (Eqs. 2.6–2.7)
            norm = resp.sum(-1, keepdim=True)
            resp = resp.mul_(norm.reciprocal())
            log_marg = (z_max + norm.log()).squeeze(-1)  # Eq. 2.10
            part = {"weights": resp.sum(0)}
            part.update({f"emission.{k}": v
                         for k, v in self.emission.expected_stats(y, resp).items()})
            total = part if total is None else {k: total[k] + part[k] for k in total}
            loglik = loglik + log_marg.sum()  # Eq. 2.10
        if total is None:
            raise ValueError("the batch is empty: EM needs at least one observation.")
        return EStep(total, loglik, float(batch.shape[0]))

    def maximize(self, stats: Stats, frozen: frozenset[str] = frozenset()) -> None:
        """M step (§7.1): π_k = ⟨r_k⟩ (the Lagrange-multiplier solution); the emission's own
        M step for the rest. ``frozen`` may hold "weights", "emission" (all of it) or names
        the emission understands."""
        if "weights" not in frozen:
            counts = stats["weights"] + 10.0 * eps(stats["weights"].dtype)
            self.weights = counts / counts.sum()
        if "emission" not in frozen:
            sub = {k.removeprefix("emission."): v for k, v in stats.items()
                   if k.startswith("emission.")}
            self.emission.maximize(sub, frozenset(frozen) - {"weights"})

    def responsibilities_init(self, data: Tensor, generator: torch.Generator) -> Tensor:
        """Initial responsibilities (N, K) by ``self.init`` (scikit-learn's ``init_params``):
        one-hot K-means labels; one-hot nearest k-means++ seed; one-hot nearest random datum;
        or uniform random rows ("random")."""
        from genmodels.learning.kmeans import assign, kmeans, kmeans_plusplus

        k, n = self.num_states, data.shape[0]
        if n < k:
            raise ValueError(f"Expected n_samples >= n_components but got n_components = {k}, "
                             f"n_samples = {n} (the rows of data).")
        if self.init == "random":
            r = torch.rand(n, k, generator=generator, dtype=data.dtype).to(data.device)
            return r / r.sum(-1, keepdim=True)
        if self.init == "kmeans":
            labels = kmeans(data, k, n_init=1, seed=generator).labels
        else:
            if self.init == "k-means++":
                centers, _ = kmeans_plusplus(data, k, generator)
            else:
                perm = torch.randperm(n, generator=generator)[:k].to(data.device)
                centers = data[perm]
            labels, _ = assign(data, centers)
        return torch.nn.functional.one_hot(labels, k).to(data.dtype)

    def check_data(self, data: Any, name: str = "data") -> Tensor:
        """``data`` through the shared validation: a NumPy array or list as a tensor (floating
        data keep their dtype, integers become float64); finite; (N, D) with the emission's D
        where it has one."""
        dim = getattr(self.emission, "dim", None)
        if isinstance(dim, int):
            return check_data_matrix(data, name=name, n_features=dim)
        return as_tensor(data, name=name)

    def initialize(self, data: Tensor, generator: torch.Generator) -> None:
        """Start EM: ``initializer`` if set, else ``default_initialize``."""
        data = self.check_data(data)
        if self.initializer is not None:
            self.initializer(self, data, generator)
        else:
            self.default_initialize(data, generator)

    def default_initialize(self, data: Tensor, generator: torch.Generator) -> None:
        """One M step from ``responsibilities_init``."""
        set_center = getattr(self.emission, "set_center", None)
        if callable(set_center):
            set_center(data)
        resp = self.responsibilities_init(data, generator)
        counts = resp.sum(0) + 10.0 * eps(data.dtype)
        self.weights = counts / counts.sum()
        self.emission.maximize(self.emission.expected_stats(data, resp))


def supervised_stats(emission: Emission, y: Tensor, labels: Tensor, num_classes: int
                     ) -> Stats:
    """The mixture's E-step statistics when the sources are observed (B:431): one-hot
    responsibilities. y: (N, D); labels: (N,) integers in [0, num_classes)."""
    resp = torch.nn.functional.one_hot(labels.long(), num_classes).to(y.dtype)
    set_center = getattr(emission, "set_center", None)
    if callable(set_center):
        set_center(y)
    return {"weights": resp.sum(0),
            **{f"emission.{k}": v for k, v in emission.expected_stats(y, resp).items()}}


def fit_supervised(emission: Emission, y: Tensor, labels: Tensor, num_classes: int
                   ) -> MixtureModel:
    """Fit a mixture from known labels (QDA/LDA, B2–B3): one-hot responsibilities through the
    same M step, so π_k are class frequencies and the emission gets per-class statistics.

    y: (N, D); labels: (N,) integers in [0, num_classes).
    """
    stats = supervised_stats(emission, y, labels, num_classes)
    model = MixtureModel(torch.ones(num_classes, dtype=y.dtype, device=y.device), emission)
    model.maximize(stats)
    return model


__all__ = [
    "INIT_METHODS",
    "MixtureModel",
    "MixturePosterior",
    "fit_supervised",
    "supervised_stats",
]
