"""The hidden Markov model (§2.2.1) and its EM, Baum–Welch (§7.2; CATALOGUE B11, F3).

    p̂(x_1..x_T, y_1..y_T) = Π_t p̂(x_t | x_{t−1}) p̂(y_t | x_t)            (Eq. 2.35)
    p̂(x_1) = Categ(π),  p̂(x_t = j | x_{t−1} = i) = P_ij,  p̂(y_t | x_t = k) = emission k.

``transition_matrix`` P is **row-stochastic** (rows: the state left; as hmmlearn's
``transmat_``); the book's column-stochastic A (a_ij = p(x_t = i | x_{t−1} = j), B:2079,
errata E-6) is ``model.A = P.T``.

The model only assembles the arguments of the pure kernels in ``genmodels.inference.hmm`` (one
forward–backward for every emission) and provides ``expected_stats`` / ``maximize`` /
``initialize`` for the one EM engine (``genmodels.learning.em``): Baum–Welch is ``fit_em(hmm,
data)``. Parameters can be frozen by name: ``initial_probs``, ``transition_matrix`` and the
emission's own names (``means``, ``covariances``, ``probs``, ``rates``, ``weights``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from genmodels._validation import as_tensor, check_positive_int, resolve_dtype
from genmodels.inference import _hmm_compiled
from genmodels.inference import hmm as kernels
from genmodels.io import SavableModule, class_path, import_class
from genmodels.learning.em import EStep, Stats
from genmodels.linalg import symmetrize
from genmodels.models.covariance import GaussianEmission

__all__ = ["GaussianMixtureEmission", "HMMData", "HiddenMarkovModel", "as_hmm_data",
           "kmeans_init", "pack_sequences"]


@dataclass
class HMMData:
    """Several sequences padded to one tensor.

    y: (B, T, D) observations (padding rows hold a copy of a real row: any valid value);
    lengths: (B,) long, each ≥ 1; mask: optional (B, T) bool, False where an observation is
    missing.
    """

    y: Tensor
    lengths: Tensor
    mask: Tensor | None = None
    _time_major: Tensor | None = field(default=None, init=False, repr=False, compare=False)

    def time_major_rows(self) -> Tensor:
        """The rows in time-major order, (T·B, D) (row t·B + b is ``y[b, t]``), made once per
        data object: the kernels run time-major, so an emission table computed in this order
        needs no transposing copy (and the emission's feature cache sees one tensor)."""
        if self._time_major is None:
            self._time_major = self.y.transpose(0, 1).reshape(-1, self.y.shape[-1])
        return self._time_major

    @property
    def valid(self) -> Tensor:
        """(B, T) bool, True at real (non-padding) steps."""
        T = self.y.shape[1]
        return torch.arange(T, device=self.y.device) < self.lengths[:, None]

    @property
    def padded(self) -> bool:
        """Whether any sequence is shorter than T (some steps are padding)."""
        return int(self.lengths.min()) != self.y.shape[1]

    def flat(self) -> Tensor:
        """The real rows, (Σ lengths, D), in sequence order."""
        if not self.padded:
            return self.y.reshape(-1, self.y.shape[-1])
        return self.y[self.valid]


def as_hmm_data(data: HMMData | Tensor, lengths: Any = None) -> HMMData:
    """``data`` as ``HMMData``: a padded (B, T, D) tensor (or one (T, D) sequence) with optional
    ``lengths`` (B,) becomes one; ``HMMData`` passes through (then ``lengths`` must be None)."""
    if isinstance(data, HMMData):
        if lengths is not None:
            raise ValueError("lengths is given twice: HMMData already holds its lengths.")
        return data
    if not isinstance(data, Tensor):
        raise TypeError(f"data must be HMMData or a (B, T, D) tensor, got {type(data).__name__}.")
    y = data[None] if data.dim() == 2 else data
    if y.dim() != 3:
        raise ValueError(f"data must be (B, T, D) (or one (T, D) sequence), got shape "
                         f"{tuple(data.shape)}.")
    B, T = y.shape[:2]
    if lengths is None:
        return HMMData(y, torch.full((B,), T, dtype=torch.long, device=y.device))
    lens = torch.as_tensor(lengths, device=y.device)
    if lens.shape != (B,) or lens.is_floating_point() or bool((lens < 1).any()) or bool(
            (lens > T).any()):
        raise ValueError(f"lengths must be {B} integers in 1..{T} (one per sequence of the "
                         f"padded batch), got {lens.tolist()}.")
    return HMMData(y, lens.long())


def pack_sequences(X: Any, lengths: Any = None, *, dtype: torch.dtype | None = None,
                   device: Any = None, integer: bool = False) -> HMMData:
    """hmmlearn's layout — all sequences stacked, (Σ T_i, D), plus their ``lengths`` — to a
    padded ``HMMData``. ``integer``: keep integer symbols (categorical data)."""
    if integer:
        arr = np.asarray(X.to_numpy() if hasattr(X, "to_numpy") else X)
        if arr.dtype.kind not in "biuf":
            raise ValueError(f"X must hold integer symbols or counts, got an array of dtype "
                             f"{arr.dtype}.")
        t = torch.as_tensor(arr)
        if t.is_floating_point():
            if not bool(torch.isfinite(t).all()):
                raise ValueError("X contains NaN or infinite values.")
        t = t.to(device) if device is not None else t
    else:
        t = as_tensor(X, name="X", dtype=dtype, device=device)
    if t.dim() == 1:
        t = t[:, None]
    if t.dim() != 2:
        raise ValueError(f"X must be 2-dimensional (n_samples, n_features), got shape "
                         f"{tuple(t.shape)}.")
    n = t.shape[0]
    if n == 0:
        raise ValueError("X is empty: at least one observation is required.")
    if t.shape[1] == 0:
        raise ValueError(f"X has 0 features (shape {tuple(t.shape)}); at least one is required.")
    if lengths is None:
        lens = torch.tensor([n])
    else:
        lens = torch.as_tensor(lengths)
        if lens.dim() != 1 or lens.numel() == 0:
            raise ValueError("lengths must be a non-empty 1-D sequence of sequence lengths.")
        if lens.is_floating_point() and bool((lens != lens.round()).any()):
            raise ValueError("lengths must be integers.")
        lens = lens.long()
        if bool((lens < 1).any()):
            raise ValueError(f"every sequence needs length >= 1 (an empty sequence has no "
                             f"posterior); got lengths {lens.tolist()[:10]}.")
        if int(lens.sum()) != n:
            raise ValueError(f"lengths sum to {int(lens.sum())} but X has {n} rows.")
    lens = lens.to(t.device)
    B, T = lens.numel(), int(lens.max())
    if B == 1 or int(lens.min()) == T:  # equal lengths: a reshape, no padding
        return HMMData(t.reshape(B, T, t.shape[1]), lens)
    valid = torch.arange(T, device=t.device) < lens[:, None]
    y = t[:1].expand(B * T, t.shape[1]).clone().reshape(B, T, t.shape[1])
    y[valid] = t
    return HMMData(y, lens)


def kmeans_init(y: Tensor, k: int, generator: torch.Generator | None, n_iter: int = 20
                ) -> Tensor:
    """k-means++ seeding (Arthur & Vassilvitskii 2007) and a few Lloyd iterations: initial
    means (K, D) for Gaussian emissions. y: (N, D)."""
    n = y.shape[0]
    if n < k:
        idx = torch.randint(n, (k,), generator=generator)
        return y[idx].clone()
    first = int(torch.randint(n, (1,), generator=generator))
    centers = [y[first]]
    d2 = (y - centers[0]).square().sum(-1)
    for _ in range(1, k):
        total = d2.sum()
        if float(total) <= 0:
            nxt = int(torch.randint(n, (1,), generator=generator))
        else:
            nxt = int(torch.multinomial(d2 / total, 1, generator=generator))
        centers.append(y[nxt])
        d2 = torch.minimum(d2, (y - y[nxt]).square().sum(-1))
    mu = torch.stack(centers)
    for _ in range(n_iter):
        lab = torch.cdist(y, mu).argmin(-1)
        counts = torch.bincount(lab, minlength=k).to(y.dtype)
        sums = torch.zeros_like(mu).index_add_(0, lab, y)
        new = torch.where(counts[:, None] > 0, sums / counts.clamp_min(1)[:, None], mu)
        if torch.equal(new, mu):
            break
        mu = new
    return mu


class GaussianMixtureEmission(SavableModule):
    """A mixture of M Gaussians per state (hmmlearn's GMMHMM emission):
    p̂(y | x = k) = Σ_m w_km N(y; μ_km, Σ_km).

    Built on one ``GaussianEmission`` with K·M components (component k·M + m), so every
    covariance structure comes for free; its statistics are the Gaussian ones weighted by the
    joint responsibilities γ_nk · p̂(m | y_n, k), plus the per-state component counts.
    covariance: "full", "diag", "spherical", or "tied" — one full matrix per *state*, shared
    by its M components (hmmlearn's meaning); its M step pools the components' scatter,
    Σ_k = Σ_m Σ_n r_nkm (y_n − μ_km)(y_n − μ_km)ᵀ / Σ_m Σ_n r_nkm (+ reg_covar · I).

    Buffers/parameters: ``weights`` (K, M) rows summing to 1; ``components`` the
    GaussianEmission (means (K·M, D) ...; for "tied", full (K·M, D, D) covariances, equal
    within a state). Frozen names: ``weights``, ``means``, ``covariances``.
    """

    weights: Tensor

    def __init__(self, num_states: int, num_mix: int, dim: int, covariance: str = "diag", *,
                 reg_covar: float = 1e-6, dtype: Any = torch.float64, device: Any = None
                 ) -> None:
        super().__init__()
        k = check_positive_int(num_states, "num_states")
        m = check_positive_int(num_mix, "num_mix")
        dt = resolve_dtype(dtype)
        self.num_mix = m
        self._k = k
        self.tied_per_state = covariance == "tied"
        self.components = GaussianEmission(k * m, dim, "full" if self.tied_per_state
                                           else covariance, reg_covar=reg_covar, dtype=dt,
                                           device=device)
        self.config = {"num_states": k, "num_mix": m, "dim": dim,
                       "covariance": "tied" if self.tied_per_state
                       else self.components.structure.name, "reg_covar": reg_covar,
                       "dtype": str(dt).removeprefix("torch.")}
        self.register_buffer("weights", torch.full((k, m), 1.0 / m, dtype=dt, device=device))

    @property
    def num_states(self) -> int:
        return self._k

    def _component_log_lik(self, y: Tensor) -> Tensor:
        """log w_km + log N(y_n; μ_km, Σ_km). y: (N, D) → (N, K, M)."""
        ll = self.components.log_likelihood(y).reshape(y.shape[0], self._k, self.num_mix)
        return ll + torch.log(self.weights)

    def log_likelihood(self, y: Tensor) -> Tensor:
        """log Σ_m w_km N(y_n; μ_km, Σ_km). y: (N, D) → (N, K)."""
        return torch.logsumexp(self._component_log_lik(y), -1)

    def expected_stats(self, y: Tensor, weights: Tensor) -> Stats:
        """weights: (N, K) state posteriors γ; returns Gaussian statistics under γ_nk ·
        p̂(m | y_n, x = k) and the component counts ``mix`` (K, M)."""
        cl = self._component_log_lik(y)
        r = weights[..., None] * torch.softmax(cl, -1)  # (N, K, M)
        stats = self.components.expected_stats(y, r.reshape(y.shape[0], -1))
        stats["mix"] = r.sum(0)
        return stats

    def maximize(self, stats: Stats, frozen: frozenset[str] = frozenset()) -> None:
        if "weights" not in frozen:
            mix = stats["mix"]
            tot = mix.sum(-1, keepdim=True)
            self.weights = torch.where(tot > 0, mix / tot.clamp_min(torch.finfo(mix.dtype).tiny),
                                       self.weights)
        self.components.maximize({k: v for k, v in stats.items() if k != "mix"}, frozen)
        if self.tied_per_state and "covariances" not in frozen:
            self._pool_covariances(stats["counts"])

    def _pool_covariances(self, counts: Tensor) -> None:
        """Tied per state: Σ_k = Σ_m N_km (Σ_km − reg·I) / Σ_m N_km + reg·I, the pooled scatter
        of the state's components about their means (a state without data keeps its Σ)."""
        k, m = self._k, self.num_mix
        comp = self.components
        cov = comp.covariances.reshape(k, m, comp.dim, comp.dim)
        reg = comp.reg_covar * torch.eye(comp.dim, dtype=cov.dtype, device=cov.device)
        n = counts.reshape(k, m)
        tot = n.sum(-1)
        pooled = ((n[..., None, None] * (cov - reg)).sum(1)
                  / tot.clamp_min(torch.finfo(cov.dtype).tiny)[:, None, None] + reg)
        pooled = torch.where(tot[:, None, None] > 0, pooled, cov[:, 0])
        comp.set_parameters(covariances=symmetrize(pooled).repeat_interleave(m, 0))

    def state_covariances(self) -> Tensor:
        """The covariances in hmmlearn's per-state layout: (K, M, ...) components, or (K, D, D)
        when tied per state."""
        c = self.components.covariances
        c = c.reshape(self._k, self.num_mix, *c.shape[1:])
        return c[:, 0] if self.tied_per_state else c

    def sample(self, states: Tensor, generator: torch.Generator | None = None) -> Tensor:
        flat = states.reshape(-1)
        comp = torch.multinomial(self.weights[flat], 1, replacement=True,
                                 generator=generator)[:, 0]
        y = self.components.sample(flat * self.num_mix + comp, generator)
        return y.reshape(*states.shape, -1)

    def num_parameters(self) -> int:
        n = self._k * (self.num_mix - 1) + self.components.num_parameters()
        if self.tied_per_state:  # K matrices, not K·M
            d = self.components.dim
            n -= self._k * (self.num_mix - 1) * d * (d + 1) // 2
        return n


class HiddenMarkovModel(SavableModule):
    """A hidden Markov model over any ``Emission`` (§2.2.1).

    initial_probs: (K,) π. transition_matrix: (K, K) row-stochastic P, P[i, j] =
    p̂(x_t = j | x_{t−1} = i). emission: an ``Emission`` with K states.
    initial_prior, transition_prior: Dirichlet concentrations α over π and over each row of P
    (scalars, (K,) and (K, K); hmmlearn's ``startprob_prior`` / ``transmat_prior``). The M
    step then maximises the posterior: π_k ∝ max(⟨X̌_1^k⟩ + α_k − 1, 0), likewise each row
    of P; α = 1 (the default) is maximum likelihood.
    """

    initial_probs: Tensor
    transition_matrix: Tensor
    initial_prior: Tensor
    transition_prior: Tensor

    def __init__(self, initial_probs: Any, transition_matrix: Any, emission: Any, *,
                 initial_prior: Any = 1.0, transition_prior: Any = 1.0) -> None:
        super().__init__()
        k = int(emission.num_states)
        dt = _emission_dtype(emission)
        pi = as_tensor(initial_probs, name="initial_probs", dtype=dt)
        P = as_tensor(transition_matrix, name="transition_matrix", dtype=dt)
        _check_stochastic(pi, P, k)
        self.register_buffer("initial_probs", pi.clone())
        self.register_buffer("transition_matrix", P.clone())
        self.register_buffer("initial_prior", _concentration(
            initial_prior, (k,), dt, "initial_prior (hmmlearn's startprob_prior)"))
        self.register_buffer("transition_prior", _concentration(
            transition_prior, (k, k), dt, "transition_prior (hmmlearn's transmat_prior)"))
        self.emission = emission
        self.config = {"num_states": k}

    # -- saving (the emission is a SavableModule of its own) --------------------------------
    def get_config(self) -> dict[str, Any]:
        em = self.emission
        return {"num_states": self.num_states,
                "emission_class": class_path(em),
                "emission_config": em.get_config()}

    @classmethod
    def from_saved(cls, config: dict[str, Any], tensors: dict[str, Tensor]) -> Any:
        em = import_class(config["emission_class"])(**config["emission_config"])
        k = config["num_states"]
        dt = _emission_dtype(em)
        obj = cls(torch.full((k,), 1.0 / k, dtype=dt), torch.full((k, k), 1.0 / k, dtype=dt), em)
        # models saved before the priors existed load with the maximum-likelihood α = 1
        obj.load_state_dict({"initial_prior": obj.initial_prior,
                             "transition_prior": obj.transition_prior, **tensors})
        return obj

    def __getattr__(self, name: str) -> Any:
        # Emission parameters are reachable by name (``model.means``), so that the EM engine's
        # frozen-parameter check recognises them.
        try:
            return super().__getattr__(name)
        except AttributeError:
            emission = self.__dict__.get("_modules", {}).get("emission")
            if emission is not None and not name.startswith("_") and hasattr(emission, name):
                return getattr(emission, name)
            raise

    # -- parameters --------------------------------------------------------------------------
    @property
    def num_states(self) -> int:
        return int(self.initial_probs.shape[0])

    @property
    def A(self) -> Tensor:
        """The book's column-stochastic transition matrix, A[i, j] = p̂(x_t = i | x_{t−1} = j)."""
        return self.transition_matrix.T

    @property
    def log_initial(self) -> Tensor:
        return torch.log(self.initial_probs)

    @property
    def log_transition(self) -> Tensor:
        return torch.log(self.transition_matrix)

    def num_parameters(self) -> int:
        """Free parameters: (K − 1) + K(K − 1) + the emission's."""
        k = self.num_states
        return (k - 1) + k * (k - 1) + int(self.emission.num_parameters())

    def set_parameters(self, *, initial_probs: Any = None, transition_matrix: Any = None) -> None:
        dt = self.initial_probs.dtype
        pi = self.initial_probs if initial_probs is None else as_tensor(
            initial_probs, name="initial_probs", dtype=dt)
        P = self.transition_matrix if transition_matrix is None else as_tensor(
            transition_matrix, name="transition_matrix", dtype=dt)
        _check_stochastic(pi, P, self.num_states)
        self.initial_probs = pi.clone().to(self.initial_probs.device)
        self.transition_matrix = P.clone().to(self.initial_probs.device)

    # -- inference ---------------------------------------------------------------------------
    def log_likelihood_table(self, data: HMMData) -> Tensor:
        """log p̂(y_t | x_t = k) for every real step, zeros at padding. → (B, T, K)."""
        return self._table(data, reuse=False)

    def _table(self, data: HMMData, *, reuse: bool = True) -> Tensor:
        """``log_likelihood_table``; with ``reuse``, a Gaussian table on the CPU is written into
        this thread's scratch buffer (for the inference calls below, which do not keep it)."""
        B, T = data.y.shape[:2]
        # a time-major table (returned as a (B, T, K) view) serves the loop-over-time forms;
        # the compiled CPU kernels read each sequence's steps contiguously instead
        compiled = data.y.device.type == "cpu" and _hmm_compiled.available()
        if data.mask is None and not data.padded and not compiled:
            ll_tm = self.emission.log_likelihood(data.time_major_rows())
            return ll_tm.reshape(T, B, self.num_states).transpose(0, 1)
        valid = data.valid
        rows = _observed_rows(data)
        if reuse and compiled and isinstance(self.emission, GaussianEmission):
            out = _hmm_compiled.scratch("table", (rows.shape[0], self.num_states), rows.dtype)
            ll_flat = self.emission.log_likelihood(rows, out=out)
        else:
            ll_flat = self.emission.log_likelihood(rows)
        if not data.padded:
            return ll_flat.reshape(B, T, self.num_states)
        ll = ll_flat.new_zeros(B, T, self.num_states)
        ll[valid] = ll_flat
        return ll

    def _lengths(self, data: HMMData) -> Tensor | None:
        return data.lengths if data.padded else None

    def posterior(self, data: HMMData, *, pairwise: bool = False, transitions: bool = True,
                  filtered: bool = True, method: str = "auto") -> kernels.HMMPosterior:
        """Filter, smoother and log-marginal of every sequence (B10–B11); the flags as in
        ``inference.forward_backward``."""
        return kernels.forward_backward(
            self.log_initial, self.log_transition, self._table(data),
            mask=data.mask, lengths=self._lengths(data), pairwise=pairwise,
            transitions=transitions, filtered=filtered, method=method)

    def log_marginal(self, data: HMMData | Tensor, *, lengths: Any = None,
                     method: str = "auto") -> Tensor:
        """log p̂(y_1..y_T) per sequence. data: ``HMMData``, or a padded (B, T, D) tensor with
        optional ``lengths`` (B,) (the steps past a sequence's length are ignored). → (B,)."""
        data = as_hmm_data(data, lengths)
        return kernels.hmm_log_marginal(
            self.log_initial, self.log_transition, self._table(data),
            mask=data.mask, lengths=self._lengths(data), method=method)

    def most_probable_states(self, data: HMMData, *, method: str = "auto"
                             ) -> kernels.ViterbiPath:
        """The Viterbi path of every sequence. states: (B, T), −1 at padding."""
        return kernels.viterbi(
            self.log_initial, self.log_transition, self._table(data),
            mask=data.mask, lengths=self._lengths(data), method=method)

    def sample_posterior(self, data: HMMData, num_samples: int = 1,
                         generator: torch.Generator | None = None) -> Tensor:
        """State paths from p̂(x | y) (forward filtering, backward sampling)."""
        return kernels.sample_posterior(
            self.log_initial, self.log_transition, self._table(data),
            num_samples=num_samples, generator=generator, mask=data.mask,
            lengths=self._lengths(data))

    # -- generation --------------------------------------------------------------------------
    def sample(self, num_steps: int, num_sequences: int | None = None,
               generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Ancestral sampling (Eq. 2.35). Returns (states (T,) or (B, T) long,
        observations (T, D) or (B, T, D))."""
        T = check_positive_int(num_steps, "num_steps")
        B = 1 if num_sequences is None else check_positive_int(num_sequences, "num_sequences")
        dev = self.initial_probs.device
        u = torch.rand(B, T, generator=generator, dtype=self.initial_probs.dtype, device=dev)
        cdf_pi = self.initial_probs.cumsum(-1)
        cdf_P = self.transition_matrix.cumsum(-1)
        k = self.num_states
        x = (cdf_pi[None] <= u[:, :1] * cdf_pi[-1]).sum(-1).clamp_max(k - 1)
        states = [x]
        for t in range(1, T):
            c = cdf_P[x]
            x = (c <= u[:, t, None] * c[:, -1:]).sum(-1).clamp_max(k - 1)
            states.append(x)
        s = torch.stack(states, 1)
        y = self.emission.sample(s, generator)
        if num_sequences is None:
            return s[0], y[0]
        return s, y

    # -- EM (Baum–Welch, §7.2) ---------------------------------------------------------------
    def expected_stats(self, batch: HMMData | Tensor) -> EStep:
        """E step over a batch of sequences: smoothed γ and summed pairwise marginals from one
        forward–backward (the expectations need the full pass, even for x_1: §7.2). batch:
        ``HMMData`` or an equal-length (B, T, D) tensor."""
        batch = as_hmm_data(batch)
        ll = self._table(batch)
        post = kernels.forward_backward(self.log_initial, self.log_transition, ll,
                                        mask=batch.mask, lengths=self._lengths(batch),
                                        filtered=False)
        gamma = post.smoothed_probs  # (B, T, K)
        valid = batch.valid
        stats: Stats = {
            "initial": gamma[:, 0].sum(0),  # ⟨X̌_1^k⟩
            "transitions": _required(post.expected_transitions).sum(0),  # ⟨Σ X̌_{t−1}^i X̌_t^j⟩
        }
        if batch.mask is None and not batch.padded:  # time-major rows, as the table
            y = batch.time_major_rows()
            w = gamma.transpose(0, 1).reshape(-1, gamma.shape[-1])
        else:
            y = _observed_rows(batch)
            w = gamma[valid]
            if batch.mask is not None:  # a missing observation carries no emission statistics
                w = w * batch.mask[valid][:, None].to(w.dtype)
        for key, value in self.emission.expected_stats(y, w).items():
            stats["emission." + key] = value
        n = float(batch.lengths.sum())
        return EStep(stats, post.log_marginal.sum(), n)

    def maximize(self, stats: Stats, frozen: frozenset[str] = frozenset()) -> None:
        """M step (§7.2): π_k = ⟨X̌_1^k⟩ / N_seq; P_ij = ⟨Σ_t X̌_{t−1}^i X̌_t^j⟩ /
        ⟨Σ_{t=2}^T X̌_{t−1}^i⟩ (the denominator omits the last step: the row sum of the
        expected transitions); emission parameters from their statistics. A state with no
        expected outgoing transition keeps its row. With Dirichlet priors (α ≠ 1) the counts
        become max(counts + α − 1, 0): the MAP estimate."""
        if "initial_probs" not in frozen:
            s = _map_counts(stats["initial"], self.initial_prior, self.initial_probs)
            total = s.sum()
            if float(total) > 0:
                self.initial_probs = s / total
        if "transition_matrix" not in frozen:
            c = _map_counts(stats["transitions"], self.transition_prior, self.transition_matrix)
            rows = c.sum(-1, keepdim=True)
            self.transition_matrix = torch.where(
                rows > 0, c / rows.clamp_min(torch.finfo(c.dtype).tiny), self.transition_matrix)
        em_stats = {k.removeprefix("emission."): v for k, v in stats.items()
                    if k.startswith("emission.")}
        self.emission.maximize(em_stats, frozenset(frozen))

    def initialize(self, data: HMMData, generator: torch.Generator | None = None, *,
                   which: frozenset[str] | None = None, min_covar: float = 1e-3) -> None:
        """Cold start (as hmmlearn): uniform π and P; Gaussian means by k-means(++), covariances
        from the data's; other emissions by their own ``initialize``. ``which`` limits the
        parameters initialised (default all)."""
        k = self.num_states
        dt = self.initial_probs.dtype
        names = which if which is not None else frozenset(
            {"initial_probs", "transition_matrix", "emission"})
        if "initial_probs" in names:
            self.initial_probs = torch.full((k,), 1.0 / k, dtype=dt,
                                            device=self.initial_probs.device)
        if "transition_matrix" in names:
            self.transition_matrix = torch.full((k, k), 1.0 / k, dtype=dt,
                                                device=self.initial_probs.device)
        if "emission" in names or names & {"means", "covariances", "weights", "probs", "rates"}:
            initialize_emission(self.emission, _observed_rows(data), generator, names,
                                min_covar=min_covar)


def initialize_emission(emission: Any, y: Tensor, generator: torch.Generator | None,
                        names: frozenset[str] = frozenset({"emission"}), *,
                        min_covar: float = 1e-3) -> None:
    """Initialise an emission from data (N, D). Gaussian: k-means means and the data
    covariance + ``min_covar`` for every state (hmmlearn's start); mixture emissions: k-means
    over K·M components; others: their ``initialize``."""
    every = "emission" in names
    if isinstance(emission, GaussianMixtureEmission):
        if every or "weights" in names:
            emission.weights = torch.full_like(emission.weights, 1.0 / emission.num_mix)
        _init_gaussian(emission.components, y, generator, names, min_covar)
    elif isinstance(emission, GaussianEmission):
        _init_gaussian(emission, y, generator, names, min_covar)
    elif hasattr(emission, "initialize"):
        if every or getattr(emission, "param_name", "") in names:
            emission.initialize(y, generator)
    else:
        raise ValueError(f"cannot initialise an emission of type {type(emission).__name__}: "
                         "set its parameters and pass init_params without it.")


def _init_gaussian(em: GaussianEmission, y: Tensor, generator: torch.Generator | None,
                   names: frozenset[str], min_covar: float) -> None:
    every = "emission" in names
    k, d = em.num_states, em.dim
    em.set_center(y)
    if every or "means" in names:
        em.set_parameters(means=kmeans_init(y, k, generator))
    if every or "covariances" in names:
        yc = y - y.mean(0)
        cov = yc.T @ yc / max(y.shape[0] - 1, 1) + min_covar * torch.eye(d, dtype=y.dtype,
                                                                       device=y.device)
        if y.shape[0] < 2:
            cov = torch.eye(d, dtype=y.dtype, device=y.device)
        name = em.structure.name
        if name == "full":
            c = cov.expand(k, d, d).clone()
        elif name == "tied":
            c = cov
        elif name == "diag":
            c = cov.diagonal().expand(k, d).clone()
        else:
            c = cov.diagonal().mean().expand(k).clone()
        em.set_parameters(covariances=c)


def _concentration(value: Any, shape: tuple[int, ...], dtype: torch.dtype, name: str
                   ) -> Tensor:
    """A Dirichlet concentration broadcast to ``shape``: finite and > 0."""
    a = as_tensor(value, name=name, dtype=dtype)
    try:
        a = torch.broadcast_to(a, shape).clone()
    except RuntimeError:
        raise ValueError(f"{name} must be a scalar or broadcast to shape {shape}, got shape "
                         f"{tuple(a.shape)}.") from None
    if not bool((a > 0).all()):
        raise ValueError(f"{name} must be > 0 (a Dirichlet concentration); got min "
                         f"{float(a.min()):.6g}.")
    return a


def _map_counts(counts: Tensor, alpha: Tensor, current: Tensor) -> Tensor:
    """The MAP M step's unnormalised probabilities, max(counts + α − 1, 0); entries that are
    exactly 0 now stay 0 (forbidden starts or transitions, e.g. a left-to-right chain)."""
    c = (counts + alpha.to(counts) - 1).clamp_min(0)
    return torch.where(current == 0, torch.zeros((), dtype=c.dtype, device=c.device), c)


def _required(t: Tensor | None) -> Tensor:
    assert t is not None
    return t


def _observed_rows(data: HMMData) -> Tensor:
    """The real rows (Σ lengths, D); a missing observation's row is replaced by an observed
    one (any valid value: its likelihood is masked out)."""
    y = data.flat()
    if data.mask is None:
        return y
    m = data.mask[data.valid]
    if not bool(m.any()):
        raise ValueError("every observation is masked as missing.")
    fill = y[int(torch.nonzero(m)[0])]
    return torch.where(m[:, None], y, fill.expand_as(y))


def _emission_dtype(emission: Any) -> torch.dtype:
    for t in list(emission.buffers()) + list(emission.parameters()):
        if t.is_floating_point():
            return t.dtype
    return torch.float64


def _check_stochastic(pi: Tensor, P: Tensor, k: int) -> None:
    tol = math.sqrt(torch.finfo(pi.dtype).eps)
    if pi.shape != (k,):
        raise ValueError(f"initial_probs must have shape ({k},) to match the emission's {k} "
                         f"states, got {tuple(pi.shape)}.")
    if P.shape != (k, k):
        raise ValueError(f"transition_matrix must have shape ({k}, {k}), got {tuple(P.shape)}.")
    if bool((pi < 0).any()) or abs(float(pi.sum()) - 1) > tol:
        raise ValueError(f"initial_probs must be nonnegative and sum to 1; it sums to "
                         f"{float(pi.sum()):.6g}.")
    if bool((P < 0).any()):
        raise ValueError("transition_matrix has negative entries.")
    rows = P.sum(-1)
    bad = (rows - 1).abs() > tol
    if bool(bad.any()):
        i = int(torch.nonzero(bad)[0])
        raise ValueError(
            f"transition_matrix must be row-stochastic (rows: the state left; each row sums to "
            f"1); row {i} sums to {float(rows[i]):.6g}. The book's column-stochastic A is its "
            "transpose.")
