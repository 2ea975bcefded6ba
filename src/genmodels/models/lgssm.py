"""The linear-Gaussian state-space model and its EM (book §2.2.2, §7.4, Eq. 7.4).

    x_1 ~ N(μ_1, Σ_1)
    x_t | x_{t−1} ~ N(A x_{t−1} + B u_{t−1} + a, Σ_x)
    y_t | x_t     ~ N(C x_t + D u_t + c, Σ_{y|x})

Inference is ``genmodels.inference.kalman``; this class holds the parameters and provides the
E step (``expected_stats``: Kalman filter + RTS smoother, then expected sufficient statistics)
and the M step (``maximize``: the normal equations of Eq. 7.4) for the one EM engine
(``genmodels.learning.em``).

M step. Both conditionals are linear regressions on augmented regressors (CATALOGUE §4 E-28:
augment the M-step regressors, not the prior): the dynamics regress x_t on
z_{t−1} = [x_{t−1}; u_{t−1}; 1] (t = 2..T, giving [A B a] and Σ_x), the emission regresses
y_t on z_t = [x_t; u_t; 1] (all t, giving [C D c] and Σ_{y|x}). Any subset of the blocks can be
frozen: the free blocks are the regression of the residual after the frozen blocks, which is the
exact conditional maximiser; a covariance is then re-estimated with all blocks at their new
values. The initial state gives μ_1 = ⟨x̌_1⟩ and Σ_1 = ⟨(x̌_1 − μ_1)(x̌_1 − μ_1)ᵀ⟩ (with μ_1 at
its new value, or its frozen one). Transition statistics run over t = 2..T_n, so they count
Σ_n (T_n − 1) pairs (the book's implementation note); in a NaN-padded batch of ragged
sequences the trailing padding is not counted (``sequence_mask``).

Missing data. Rows of y with no observed entry drop out of the emission statistics (they are
integrated out exactly). In partly observed rows the missing entries are treated as latent too:
their conditional moments given x_t and the observed entries enter the statistics (Shumway &
Stoffer 1982), which keeps the M step closed-form with a full Σ_{y|x}.

Initial state. ``diffuse=False``: x_1 ~ N(μ_1, Σ_1) with μ_1, Σ_1 learnable. ``diffuse=True``:
the *exact* diffuse initialisation (Durbin & Koopman 2012 §5.2; see
``genmodels.inference.kalman``), in which μ_1 and Σ_1 play no part and are not estimated; the
log-likelihood is then the diffuse log-likelihood. A large-covariance approximation is
available simply by setting ``initial_covariance`` large with ``diffuse=False``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from genmodels._validation import (
    as_tensor,
    check_finite,
    check_nonnegative_float,
    check_positive_int,
    make_generator,
)
from genmodels.inference.kalman import (
    TIME_VARYING,
    GaussianSmoothed,
    LGSSMParams,
    check_params,
    kalman_filter,
    kalman_smoother,
    sample_lgssm,
)
from genmodels.io import SavableModule
from genmodels.learning.em import EMResult, EStep, Stats, run_em
from genmodels.linalg import add_diagonal, psd_solve, symmetrize

#: Parameter names, in the order of ``LGSSMParams``.
PARAMETER_NAMES = (
    "initial_mean", "initial_covariance", "dynamics", "dynamics_covariance", "emission",
    "emission_covariance", "dynamics_offset", "emission_offset", "dynamics_input",
    "emission_input",
)
_COVARIANCES = ("initial_covariance", "dynamics_covariance", "emission_covariance")

Batch = Tensor | tuple[Tensor, Tensor | None]


def pad_sequences(sequences: Sequence[Any], dtype: torch.dtype = torch.float64) -> Tensor:
    """Stack sequences of different lengths (T_n, M) into (N, T_max, M), padding with NaN.

    Padding is missing data, which the Kalman filter integrates out exactly.
    """
    seqs = [torch.as_tensor(s, dtype=dtype) for s in sequences]
    if not seqs:
        raise ValueError("no sequences given.")
    T = max(s.shape[0] for s in seqs)
    M = seqs[0].shape[-1]
    out = torch.full((len(seqs), T, M), float("nan"), dtype=dtype)
    for i, s in enumerate(seqs):
        if s.dim() != 2 or s.shape[1] != M:
            raise ValueError(f"sequence {i} must be (T, {M}), got {tuple(s.shape)}.")
        out[i, : s.shape[0]] = s
    return out


def sequence_mask(observed: Tensor) -> Tensor:
    """Which steps of a NaN-padded batch belong to their sequence.

    A sequence ends at its last row with an observed entry: the all-missing rows after it are
    padding (``pad_sequences``), not time steps, while all-missing rows *inside* a sequence are
    missing observations of a real latent state. Trailing unobserved steps carry no likelihood
    (they integrate to one), so dropping them leaves log p̂(y) unchanged and makes the E step of
    a padded batch the sum of its sequences' E steps.

    observed: (N, T, M) bool → (N, T) bool, True for t < T_n.
    """
    rows = observed.any(-1)  # (N, T)
    T = rows.shape[-1]
    t = torch.arange(1, T + 1, device=rows.device)
    length = (rows * t).amax(-1)  # T_n: 1 + the last observed index (0 if none)
    return t[None] - 1 < length[:, None]


def _blank_padding(y: Tensor, lengths: Any) -> Tensor:
    """A copy of the padded batch y (B, T, M) with NaN (missing) past each sequence's length."""
    if y.dim() != 3:
        raise ValueError(f"lengths needs a padded (B, T, M) batch, got shape {tuple(y.shape)}.")
    B, T = y.shape[:2]
    lens = torch.as_tensor(lengths, device=y.device)
    if lens.shape != (B,) or lens.is_floating_point() or bool((lens < 1).any()) or bool(
            (lens > T).any()):
        raise ValueError(f"lengths must be {B} integers in 1..{T} (one per sequence of the "
                         f"padded batch), got {lens.tolist()}.")
    out = y.clone()
    out[torch.arange(T, device=y.device) >= lens[:, None]] = float("nan")
    return out


_TV_PREFIX = "time_varying."


class LinearGaussianSSM(SavableModule):
    """Linear-Gaussian state-space model with EM over any subset of its parameters.

    state_dim K, obs_dim M, input_dim U (0: no controls). Parameters (buffers, float64 by
    default) are named as in ``LGSSMParams``: initial_mean μ_1 (K,), initial_covariance Σ_1,
    dynamics A, dynamics_covariance Σ_x, emission C (M, K), emission_covariance Σ_{y|x},
    dynamics_offset a, emission_offset c, dynamics_input B (K, U), emission_input D (M, U).
    reg_covar: added to the diagonal of every re-estimated covariance (0 by default; the book
    notes Σ_1 can be singular with one sequence of fully observed states).
    """

    initial_mean: Tensor
    initial_covariance: Tensor
    dynamics: Tensor
    dynamics_covariance: Tensor
    emission: Tensor
    emission_covariance: Tensor
    dynamics_offset: Tensor
    emission_offset: Tensor
    dynamics_input: Tensor
    emission_input: Tensor

    def __init__(
        self,
        state_dim: int,
        obs_dim: int,
        input_dim: int = 0,
        *,
        diffuse: bool = False,
        reg_covar: float = 0.0,
        dtype: torch.dtype | str = torch.float64,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        K = check_positive_int(state_dim, "state_dim")
        M = check_positive_int(obs_dim, "obs_dim")
        U = check_positive_int(input_dim, "input_dim", minimum=0)
        self.reg_covar = check_nonnegative_float(reg_covar, "reg_covar")
        dt = dtype if isinstance(dtype, torch.dtype) else getattr(torch, str(dtype))
        self.state_dim, self.obs_dim, self.input_dim, self.diffuse = K, M, U, bool(diffuse)
        self.config = {"state_dim": K, "obs_dim": M, "input_dim": U, "diffuse": self.diffuse,
                       "reg_covar": self.reg_covar, "dtype": str(dt).removeprefix("torch.")}
        kw: dict[str, Any] = {"dtype": dt, "device": device}
        eye_k, eye_m = torch.eye(K, **kw), torch.eye(M, **kw)
        self.register_buffer("initial_mean", torch.zeros(K, **kw))
        self.register_buffer("initial_covariance", eye_k.clone())
        self.register_buffer("dynamics", eye_k.clone())
        self.register_buffer("dynamics_covariance", eye_k.clone())
        self.register_buffer("emission", torch.eye(M, K, **kw))
        self.register_buffer("emission_covariance", eye_m.clone())
        self.register_buffer("dynamics_offset", torch.zeros(K, **kw))
        self.register_buffer("emission_offset", torch.zeros(M, **kw))
        self.register_buffer("dynamics_input", torch.zeros(K, U, **kw))
        self.register_buffer("emission_input", torch.zeros(M, U, **kw))
        #: Known time-varying parameters (``set_time_varying``), time axis first; saved beside
        #: the buffers as ``time_varying.NAME`` (files without them load as time-invariant).
        self.time_varying: dict[str, Tensor] = {}

    # ---------------------------------------------------------------- parameters

    def set_params(self, **values: Any) -> LinearGaussianSSM:
        """Set parameters by name (arrays or tensors); validates the result."""
        for name, value in values.items():
            if name not in PARAMETER_NAMES:
                raise ValueError(f"unknown parameter {name!r}; choose from {PARAMETER_NAMES}.")
            old = getattr(self, name)
            t = as_tensor(value, name=name, dtype=old.dtype, device=old.device)
            if t.shape != old.shape:
                raise ValueError(f"{name} must have shape {tuple(old.shape)}, got "
                                 f"{tuple(t.shape)}.")
            setattr(self, name, t.clone())
        check_params(self.params())
        return self

    def set_time_varying(self, **values: Any) -> LinearGaussianSSM:
        """Give some of dynamics, dynamics_offset, emission, emission_offset per time step, as
        pykalman does: dynamics (T−1, K, K), dynamics_offset (T−1, K), emission (T, M, K),
        emission_offset (T, M) (time first; see ``LGSSMParams.time_varying``); None returns a
        parameter to its time-invariant buffer. They are known, not learned: EM holds the
        whole conditional they belong to (the matrix, the input matrix and the offset of the
        dynamics, or of the emission) fixed, and learns the rest (the covariances, the
        initial state, the other conditional). Only sequences of the matching T can be used.
        """
        for name, value in values.items():
            if name not in TIME_VARYING:
                raise ValueError(f"only {sorted(TIME_VARYING)} can vary with time, got {name!r}.")
            if value is None:
                self.time_varying.pop(name, None)
                continue
            old = getattr(self, name)
            t = as_tensor(value, name=name, dtype=old.dtype, device=old.device)
            if t.dim() != old.dim() + 1 or t.shape[1:] != old.shape:
                raise ValueError(f"time-varying {name} must have shape (T, *{tuple(old.shape)}) "
                                 f"with the time axis first, got {tuple(t.shape)}.")
            self.time_varying[name] = t.clone()
        check_params(self.params())
        return self

    def state_tensors(self) -> dict[str, Tensor]:
        """The buffers and the known time-varying parameters (``time_varying.NAME``)."""
        tensors = super().state_tensors()
        tensors.update({f"{_TV_PREFIX}{k}": v.detach().contiguous()
                        for k, v in self.time_varying.items()})
        return tensors

    @classmethod
    def from_saved(cls, config: dict[str, Any], tensors: dict[str, Tensor]) -> Any:
        varying = {k.removeprefix(_TV_PREFIX): v for k, v in tensors.items()
                   if k.startswith(_TV_PREFIX)}
        obj = super().from_saved(config, {k: v for k, v in tensors.items()
                                          if not k.startswith(_TV_PREFIX)})
        return obj.set_time_varying(**varying) if varying else obj

    def params(self) -> LGSSMParams:
        """The parameters as the kernels take them (input matrices None when U = 0)."""
        has_u = self.input_dim > 0
        p = LGSSMParams(
            self.initial_mean, self.initial_covariance, self.dynamics, self.dynamics_covariance,
            self.emission, self.emission_covariance, self.dynamics_offset, self.emission_offset,
            self.dynamics_input if has_u else None, self.emission_input if has_u else None)
        if self.time_varying:
            p = p._replace(**self.time_varying, time_varying=frozenset(self.time_varying))
        return p

    def _known_blocks(self) -> tuple[bool, bool]:
        """Whether the dynamics / the emission conditional has a time-varying (known) part."""
        tv = self.time_varying
        return ("dynamics" in tv or "dynamics_offset" in tv,
                "emission" in tv or "emission_offset" in tv)

    def num_parameters(self, frozen: Iterable[str] = ()) -> int:
        """Number of free scalar parameters (symmetric covariances count K(K+1)/2)."""
        n = 0
        skip = set(frozen) | ({"initial_mean", "initial_covariance"} if self.diffuse else set())
        for name in PARAMETER_NAMES:
            if name in skip:
                continue
            t = getattr(self, name)
            d = t.shape[-1]
            n += d * (d + 1) // 2 if name in _COVARIANCES else t.numel()
        return n

    # ---------------------------------------------------------------- inference

    def _observations(self, y: Any) -> Tensor:
        """y (T, M) or (N, T, M) through the shared checks: numeric, real, NaN = missing, no
        ±inf, no magnitudes whose squares overflow, M = obs_dim."""
        t = as_tensor(y, name="y", dtype=self.dynamics.dtype, device=self.dynamics.device,
                      allow_nan=True)
        if t.dim() not in (2, 3) or t.shape[-1] != self.obs_dim or t.shape[-2] == 0:
            raise ValueError(f"y must have shape (T, {self.obs_dim}) or (N, T, {self.obs_dim}) "
                             f"with T >= 1, got {tuple(t.shape)}.")
        if bool(torch.isinf(t).any()):
            raise ValueError("y contains infinite values; use NaN for missing observations.")
        check_finite(torch.nan_to_num(t, nan=0.0), "y")
        return t

    def _unpack(self, batch: Batch) -> tuple[Tensor, Tensor | None]:
        if isinstance(batch, tuple):
            y, u = batch
        else:
            y, u = batch, None
        y = torch.as_tensor(y, dtype=self.dynamics.dtype, device=self.dynamics.device)
        if y.dim() == 2:
            y = y[None]
            u = None if u is None else torch.as_tensor(u, dtype=y.dtype, device=y.device)[None]
        if self.input_dim > 0 and u is None:
            raise ValueError(f"the model has input_dim={self.input_dim}: pass (y, inputs).")
        if u is not None:
            u = torch.as_tensor(u, dtype=y.dtype, device=y.device)
        return y, u

    def smooth(self, y: Tensor, inputs: Tensor | None = None, **kw: Any) -> GaussianSmoothed:
        """p̂(x_t | y_{1:T}) for every t (Kalman filter + RTS smoother)."""
        return kalman_smoother(self.params(), y, inputs=inputs, diffuse=self.diffuse, **kw)

    def log_marginal(self, y: Tensor, inputs: Tensor | None = None, *, lengths: Any = None,
                     **kw: Any) -> Tensor:
        """log p̂(y_{1:T}) (the diffuse log-likelihood when ``diffuse``), (*batch,).
        ``lengths`` (B,) for a padded (B, T, M) batch: the steps past each sequence's length
        are treated as missing, which leaves its log-marginal that of the shorter sequence."""
        if lengths is not None:
            y = _blank_padding(torch.as_tensor(y), lengths)
        return kalman_filter(self.params(), y, inputs=inputs, diffuse=self.diffuse,
                             **kw).log_marginal

    def sample(self, num_timesteps: int, batch_shape: int | tuple[int, ...] = (),
               inputs: Tensor | None = None, seed: Any = None,
               generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """(states (*batch, T, K), observations (*batch, T, M)) drawn from the model; an int
        ``batch_shape`` B means (B,). ``generator`` (or ``seed``) makes the draw reproducible."""
        if self.diffuse:
            raise ValueError("cannot sample from a model with a diffuse (improper) initial state.")
        if isinstance(batch_shape, int):
            batch_shape = (check_positive_int(batch_shape, "batch_shape"),)
        g = generator if generator is not None else make_generator(seed, self.dynamics.device)
        return sample_lgssm(self.params(), num_timesteps, batch_shape=batch_shape, inputs=inputs,
                            generator=g)

    # ---------------------------------------------------------------- E step

    def expected_stats(self, batch: Batch) -> EStep:
        """Kalman filter + RTS smoother, then the expected sufficient statistics of Eq. 7.4,
        summed over sequences and time (additive across batches)."""
        y, u = self._unpack(batch)
        y = y.reshape(-1, *y.shape[-2:])
        N, T, M = y.shape
        K = self.state_dim
        if u is not None:
            u = u.reshape(N, T, -1)
        sm = kalman_smoother(self.params(), y, inputs=u, diffuse=self.diffuse, validate=False)
        m, P = sm.means, sm.covariances  # (N, T, K), (N, T, K, K)
        dt = m.dtype
        observed = ~torch.isnan(y)
        valid = sequence_mask(observed)  # (N, T): t < T_n, the padding excluded
        v = valid.to(dt)
        ones = m.new_ones(N, T, 1)
        Z = torch.cat([m, u, ones] if u is not None else [m, ones], -1)  # E[z_t]: (N, T, Dz)
        Dz = Z.shape[-1]

        def pad_cov(Pk: Tensor) -> Tensor:  # E[z zᵀ] − E[z]E[z]ᵀ = blockdiag(P, 0)
            out = Pk.new_zeros(Dz, Dz)
            out[:K, :K] = Pk
            return out

        stats: Stats = {}
        # dynamics: regress x_t on z_{t−1}, t = 2..T_n (pairs inside each sequence only)
        vp = v[:, 1:]  # (N, T−1): the pair (t−1, t) is real when t < T_n
        Zp, mn = Z[:, :-1].reshape(-1, Dz), m[:, 1:].reshape(-1, K)
        Zpv = Zp * vp.reshape(-1, 1)
        stats["dyn_zz"] = Zpv.mT @ Zp + pad_cov((P[:, :-1] * vp[..., None, None]).sum((0, 1)))
        dyn_xz = (mn * vp.reshape(-1, 1)).mT @ Zp
        dyn_xz[:, :K] += (sm.cross_covariances * vp[..., None, None]).sum((0, 1))  # Eq. 2.55
        stats["dyn_xz"] = dyn_xz
        stats["dyn_xx"] = (mn * vp.reshape(-1, 1)).mT @ mn + (
            P[:, 1:] * vp[..., None, None]).sum((0, 1))
        stats["dyn_n"] = vp.sum()
        dyn_known, em_known = self._known_blocks()
        if dyn_known and T > 1:
            # Σ_t E[r_t r_tᵀ] with r_t = x_t − A_{t−1} x_{t−1} − a_{t−1} − B u_{t−1}
            A = self._per_step("dynamics", T - 1)  # (T−1 | 1, K, K)
            a = self._per_step("dynamics_offset", T - 1)
            r = m[:, 1:] - (A @ m[:, :-1, :, None])[..., 0] - a
            if u is not None:
                r = r - u[:, :-1] @ self.dynamics_input.mT
            X = sm.cross_covariances  # Cov[x_t, x_{t−1}], (N, T−1, K, K)
            AX = A @ X.mT
            cov = P[:, 1:] - AX - AX.mT + A @ P[:, :-1] @ A.mT
            stats["dyn_res"] = ((r[..., :, None] * r[..., None, :] + cov)
                                * vp[..., None, None]).sum((0, 1))
        # emission: regress y_t on z_t over rows with at least one observed entry
        w = observed.any(-1).to(dt)  # (N, T); padded rows have none
        Zw = Z * w[..., None]
        stats["em_zz"] = Zw.reshape(-1, Dz).mT @ Z.reshape(-1, Dz) + pad_cov(
            (P * w[..., None, None]).sum((0, 1)))
        if bool(observed.all()):
            Yf = y.reshape(-1, M)
            stats["em_yz"] = Yf.mT @ Z.reshape(-1, Dz)
            stats["em_yy"] = Yf.mT @ Yf
        else:
            Ey, G, V = self._impute(y, observed, m, u)
            Eyw = (Ey * w[..., None]).reshape(-1, M)
            em_yz = Eyw.mT @ Z.reshape(-1, Dz)
            GP = G @ P  # (N, T, M, K)
            em_yz[:, :K] += (GP * w[..., None, None]).sum((0, 1))
            stats["em_yz"] = em_yz
            stats["em_yy"] = Eyw.mT @ Ey.reshape(-1, M) + (
                (GP @ G.mT + V) * w[..., None, None]).sum((0, 1))
        stats["em_n"] = w.sum()
        if em_known:  # Σ_t E[r_t r_tᵀ] over observed rows, r_t = y_t − C_t x_t − c_t − D u_t
            Ct = self._per_step("emission", T)  # (T | 1, M, K)
            ct = self._per_step("emission_offset", T)
            if bool(observed.all()):
                Ey, G, V = y, torch.zeros_like(Ct), torch.zeros_like(P[..., :1, :1])
            else:
                Ey, G, V = self._impute(y, observed, m, u, Ct, ct)
            r = Ey - (Ct @ m[..., None])[..., 0] - ct
            if u is not None:
                r = r - u @ self.emission_input.mT
            GC = G - Ct
            cov = GC @ P @ GC.mT + V
            stats["em_res"] = ((r[..., :, None] * r[..., None, :] + cov)
                               * w[..., None, None]).sum((0, 1))
        # initial state (of every sequence with at least one observed row)
        v1 = v[:, 0]
        stats["init_x"] = (m[:, 0] * v1[:, None]).sum(0)
        stats["init_xx"] = (m[:, 0] * v1[:, None]).mT @ m[:, 0] + (
            P[:, 0] * v1[:, None, None]).sum(0)
        stats["init_n"] = v1.sum()
        return EStep(stats, sm.log_marginal.sum(), float(v.sum()))

    def _per_step(self, name: str, n: int) -> Tensor:
        """A parameter per step, (n, ...) if time-varying, else (1, ...) to broadcast."""
        t = self.time_varying.get(name)
        if t is None:
            return getattr(self, name)[None]
        if t.shape[0] != n:
            raise ValueError(f"time-varying {name} has {t.shape[0]} steps; sequences of this "
                             f"length need {n}.")
        return t

    def _impute(self, y: Tensor, observed: Tensor, m: Tensor, u: Tensor | None,
                C: Tensor | None = None, c: Tensor | None = None
                ) -> tuple[Tensor, Tensor, Tensor]:
        """Moments of the full y_t (missing entries latent) given x_t and the observed entries:
        y_t = G_t x_t + h_t + ε_t with ε_t ~ N(0, V_t). Returns (E[y_t], G_t, V_t).
        C, c: the emission and its offset, per step (T, M, K), (T, M) when time-varying."""
        o = observed.to(y.dtype)  # (N, T, M)
        R = self.emission_covariance
        C = self.emission if C is None else C
        base = (self.emission_offset if c is None else c).expand_as(y)
        if u is not None and self.input_dim > 0:
            base = base + u @ self.emission_input.mT
        y0 = torch.where(observed, y, torch.zeros_like(y))
        r = o * (y0 - base)  # observed residual of the offsets
        Rt = R * (o[..., :, None] * o[..., None, :]) + torch.diag_embed(1.0 - o)
        rhs = o[..., :, None] * R * (1.0 - o)[..., None, :]  # diag(o) R diag(1−o)
        Gamma = torch.cholesky_solve(rhs, torch.linalg.cholesky(Rt)).mT  # R_mo R_oo⁻¹
        miss = (1.0 - o)[..., None]
        G = miss * (C - Gamma @ (o[..., None] * C))
        h = o * y0 + (1.0 - o) * (base + (Gamma @ r[..., None])[..., 0])
        V = symmetrize(miss * (R - Gamma @ R) * (1.0 - o)[..., None, :])
        Ey = (G @ m[..., None])[..., 0] + h
        return Ey, G, V

    # ---------------------------------------------------------------- M step

    def _regression(self, names: tuple[str, ...], zz: Tensor, yz: Tensor, frozen: frozenset[str]
                    ) -> Tensor | None:
        """Normal equations for the stacked coefficient [W_1 W_2 w_3] of a linear-Gaussian
        conditional with some blocks frozen. Returns the full new W (or None if all frozen)."""
        mats = [getattr(self, n) for n in names[:2]] + [getattr(self, names[2])[:, None]]
        sizes = [t.shape[1] for t in mats]
        idx, start = [], 0
        for s in sizes:
            idx.append(torch.arange(start, start + s, device=zz.device))
            start += s
        free = [i for i, n in enumerate(names) if n not in frozen]
        if not free:
            return None
        fro = [i for i, n in enumerate(names) if n in frozen]
        fi = torch.cat([idx[i] for i in free])
        target = yz[:, fi]
        if fro:
            ri = torch.cat([idx[i] for i in fro])
            Wr = torch.cat([mats[i] for i in fro], 1)
            target = target - Wr @ zz[ri][:, fi]
        W_free = psd_solve(zz[fi][:, fi], target.mT).mT  # Eq. 7.4 normal equations
        W = torch.cat(mats, 1).clone()
        W[:, fi] = W_free
        return W

    def _assign(self, names: tuple[str, ...], W: Tensor, frozen: frozenset[str]) -> None:
        K_out = W.shape[0]
        cols = [getattr(self, names[0]).shape[1], self.input_dim, 1]
        parts = torch.split(W, cols, dim=1)
        if names[0] not in frozen:
            setattr(self, names[0], parts[0].contiguous())
        if self.input_dim > 0 and names[1] not in frozen:
            setattr(self, names[1], parts[1].contiguous())
        if names[2] not in frozen:
            setattr(self, names[2], parts[2].reshape(K_out).contiguous())

    def _current_W(self, names: tuple[str, ...]) -> Tensor:
        return torch.cat([getattr(self, names[0]), getattr(self, names[1]),
                          getattr(self, names[2])[:, None]], 1)

    def _residual_cov(self, W: Tensor, zz: Tensor, yz: Tensor, yy: Tensor, n: Tensor) -> Tensor:
        cov = (yy - W @ yz.mT - yz @ W.mT + W @ zz @ W.mT) / n  # Eq. 7.4 (Σ_x, Σ_{y|x})
        cov = symmetrize(cov)
        return add_diagonal(cov, self.reg_covar) if self.reg_covar > 0 else cov

    def maximize(self, stats: Stats, frozen: frozenset[str] = frozenset()) -> None:
        """The M step (Eq. 7.4) for every parameter not in ``frozen``."""
        frozen = frozenset(frozen)
        if self.diffuse:
            frozen = frozen | {"initial_mean", "initial_covariance"}
        dyn = ("dynamics", "dynamics_input", "dynamics_offset")
        emi = ("emission", "emission_input", "emission_offset")
        for names, cov_name, zz, yz, yy, n, res in (
            (emi, "emission_covariance", stats["em_zz"], stats["em_yz"], stats["em_yy"],
             stats["em_n"], stats.get("em_res")),
            (dyn, "dynamics_covariance", stats["dyn_zz"], stats["dyn_xz"], stats["dyn_xx"],
             stats["dyn_n"], stats.get("dyn_res")),
        ):
            if float(n) <= 0:
                continue
            if res is not None:  # a known time-varying conditional: only its covariance is free
                if cov_name not in frozen:
                    cov = symmetrize(res / n)  # Eq. 7.4 with the known per-step coefficients
                    setattr(self, cov_name, add_diagonal(cov, self.reg_covar)
                            if self.reg_covar > 0 else cov)
                continue
            W = self._regression(names, zz, yz, frozen)
            if W is not None:
                self._assign(names, W, frozen)
            if cov_name not in frozen:
                Wf = self._current_W(names)
                setattr(self, cov_name, self._residual_cov(Wf, zz, yz, yy, n))
        n1 = stats["init_n"]
        x1, xx1 = stats["init_x"] / n1, stats["init_xx"] / n1
        if "initial_mean" not in frozen:
            self.initial_mean = x1.clone()
        if "initial_covariance" not in frozen:
            mu = self.initial_mean
            cov = symmetrize(xx1 - torch.outer(mu, x1) - torch.outer(x1, mu) + torch.outer(mu, mu))
            self.initial_covariance = (add_diagonal(cov, self.reg_covar) if self.reg_covar > 0
                                       else cov)

    # ---------------------------------------------------------------- fitting

    def initialize(self, data: Batch, generator: torch.Generator) -> None:
        """A data-driven start for EM: C from the top principal directions of y, Σ_{y|x} from
        the remaining variance, A = 0.9·I (plus a small random perturbation), Σ_x = 0.1·I."""
        y = data[0] if isinstance(data, tuple) else data
        if isinstance(y, (list, tuple)):
            y = pad_sequences(y, self.dynamics.dtype)
        y = torch.as_tensor(y, dtype=self.dynamics.dtype, device=self.dynamics.device)
        Y = y.reshape(-1, self.obs_dim)
        Y = Y[~torch.isnan(Y).any(-1)]
        if Y.shape[0] < 2:
            raise ValueError("need at least two fully observed rows to initialise the model.")
        K = self.state_dim
        mean = Y.mean(0)
        Yc = Y - mean
        _, S, Vh = torch.linalg.svd(Yc, full_matrices=False)
        var = S.square() / Y.shape[0]
        k = min(K, Vh.shape[0])
        C = Y.new_zeros(self.obs_dim, K)
        C[:, :k] = Vh[:k].mT * var[:k].sqrt()
        noise = var[k:].mean() if var.numel() > k else var.mean() * 0.1
        dt = self.dynamics.dtype
        jitter = 0.01 * torch.randn(K, K, generator=generator, dtype=dt, device="cpu").to(
            self.dynamics.device)
        self.emission = C
        self.emission_offset = mean.clone()
        self.emission_covariance = torch.eye(self.obs_dim, dtype=dt, device=Y.device) * float(
            noise.clamp_min(1e-6 * var.mean()))
        self.dynamics = 0.9 * torch.eye(K, dtype=dt, device=Y.device) + jitter
        self.dynamics_covariance = 0.1 * torch.eye(K, dtype=dt, device=Y.device)
        self.dynamics_offset = torch.zeros(K, dtype=dt, device=Y.device)
        self.initial_mean = torch.zeros(K, dtype=dt, device=Y.device)
        self.initial_covariance = torch.eye(K, dtype=dt, device=Y.device)

    def fit(self, y: Any, inputs: Any = None, *, lengths: Any = None, max_iter: int = 100,
            tol: float = 1e-6, frozen: Iterable[str] = (), progress: bool = False,
            warn: bool = True) -> EMResult:
        """EM from the current parameters (Eq. 7.4) over the parameters not in ``frozen``.

        y: (T, M), (N, T, M) or a list of (T_n, M) sequences (NaN-padded); NaN = missing.
        lengths: (N,) for a padded (N, T, M) batch whose padding is not NaN: the steps past
            each length become padding (``sequence_mask``), as in ``log_marginal``.
        tol: on the per-time-step log-likelihood change.
        """
        if isinstance(y, list) and y and np.ndim(y[0]) >= 2:  # a list of (T_n, M) sequences
            y = pad_sequences(y, self.dynamics.dtype)
        y = self._observations(y)  # (a list of rows is one sequence, as an array would be)
        if lengths is not None:
            y = _blank_padding(y, lengths)
        batch: Batch = (y, inputs) if inputs is not None else y
        frozen_set = frozenset(frozen)
        unknown = frozen_set - set(PARAMETER_NAMES)
        if unknown:
            raise ValueError(f"cannot freeze unknown parameter(s) {sorted(unknown)}; choose from "
                             f"{PARAMETER_NAMES}.")
        return run_em(self, [batch], max_iter=max_iter, tol=tol, frozen=frozen_set,
                      progress=progress, warn=warn)

    def fit_gradient(self, y: Any, inputs: Any = None, *, names: Iterable[str] = (
            "dynamics_covariance", "emission_covariance"), max_iter: int = 200,
            tol: float = 1e-10) -> float:
        """Maximum likelihood by L-BFGS on the exact log-marginal (autograd through the Kalman
        filter) over the parameters in ``names``; covariances are parameterised by their
        log-Cholesky factors. Returns the final log-likelihood."""
        names = tuple(names)
        for n in names:
            if n not in PARAMETER_NAMES:
                raise ValueError(f"unknown parameter {n!r}.")
        yt = torch.as_tensor(y, dtype=self.dynamics.dtype, device=self.dynamics.device)
        ut = None if inputs is None else torch.as_tensor(inputs, dtype=yt.dtype)
        raw: dict[str, Tensor] = {}
        for n in names:
            v = getattr(self, n)
            if n in _COVARIANCES:
                L = torch.linalg.cholesky(v)
                L = L.tril(-1) + torch.diag_embed(L.diagonal().log())
                raw[n] = L.clone().requires_grad_(True)
            else:
                raw[n] = v.clone().requires_grad_(True)

        def build() -> dict[str, Tensor]:
            out = {}
            for n, r in raw.items():
                if n in _COVARIANCES:
                    L = r.tril(-1) + torch.diag_embed(r.diagonal().exp())
                    out[n] = L @ L.mT
                else:
                    out[n] = r
            return out

        opt = torch.optim.LBFGS(list(raw.values()), max_iter=max_iter, tolerance_grad=tol,
                                tolerance_change=tol * 1e-3, line_search_fn="strong_wolfe")
        scale = float(yt.shape[-2])

        def closure() -> Tensor:
            opt.zero_grad()
            p = self.params()._replace(**build())  # type: ignore[arg-type]
            loss = -kalman_filter(p, yt, inputs=ut, diffuse=self.diffuse,
                                  validate=False).log_marginal.sum() / scale
            loss.backward()
            return loss

        opt.step(closure)
        with torch.no_grad():
            for n, v in build().items():
                setattr(self, n, v.detach().clone())
        ll = float(self.log_marginal(yt, ut).sum())
        if not math.isfinite(ll):
            raise ValueError("gradient fitting diverged to a non-finite log-likelihood.")
        return ll
