"""Kalman filter and Rauch–Tung–Striebel smoother: exact inference in the linear-Gaussian
state-space model (book §2.2.2, Eqs 2.45–2.55).

The model (book §2.2.2, with the emission control of the CATALOGUE's B13):

    x_1 ~ N(μ_1, Σ_1)                                                    (Eq. 2.49)
    x_t | x_{t−1} ~ N(A x_{t−1} + B u_{t−1} + a, Σ_x)        t = 2..T
    y_t | x_t     ~ N(C x_t + D u_t + c, Σ_{y|x})            t = 1..T

Everything here is a pure function on tensors (STYLE §1): ``LGSSMParams`` holds the
parameters; ``kalman_filter`` / ``rts_smoother`` / ``kalman_smoother`` / ``log_marginal`` /
``sample_lgssm`` / ``sample_posterior`` compute. Shapes: ``T`` time steps, ``K`` latent dims,
``M`` observed dims, ``U`` input dims, leading ``*batch`` dims for many sequences. Parameters may
carry their own leading batch dims that broadcast against the data's.

Missing observations: NaN entries of ``y`` (or ``mask=False`` entries) are missing, per time
step and per dimension. A missing entry is removed from the emission by zeroing its row of C
and decoupling it in Σ_{y|x} (unit variance, zero innovation), which is exactly conditioning on
the observed entries only; its −½ log τ normaliser is added back to the log-marginal.

Two forms of each recursion, equal to rounding:

* ``sequential``: the book's recursions, one step at a time (a Python loop over t).
* ``parallel``: the associative-scan forms of Särkkä & García-Fernández (2021, "Temporal
  parallelization of Bayesian smoothers", IEEE TAC 66(1)), O(log T) depth of batched K×K
  products, which is what makes long sequences fast in torch (a loop pays torch's per-call
  overhead T times).

* ``steady``: for a time-invariant model with nothing missing, the covariance recursion runs
  only until it converges (to a few ulps); the means then follow a constant-matrix linear
  recurrence evaluated in blocks (one GEMM per level). Falls back to ``parallel`` otherwise.

``method="auto"`` picks ``steady`` (hence ``parallel`` when it does not apply) for
T > ``PARALLEL_THRESHOLD``, else ``sequential``.

Numerics: covariances are updated in Joseph form and symmetrised; every inverse is a Cholesky
(or, in the parallel filter's combination step, an LU) solve; Σ_{y|x} and the innovation
covariances go through ``safe_cholesky`` (dtype-relative jitter, ValueError if not PD).

Diffuse initial state (``diffuse=True``): the exact diffuse initialisation of Durbin &
Koopman (2012, §5.2) for a fully diffuse state, x_1 ~ N(0, κ I) with κ → ∞. The filter at
t = 1 is then the generalised-least-squares posterior N((CᵀΣ⁻¹C)⁻¹CᵀΣ⁻¹(y_1 − c),
(CᵀΣ⁻¹C)⁻¹), and the log-marginal is the diffuse log-likelihood lim_κ [log p̂_κ(y) + (K/2)
log κ]. It requires y_1 fully observed and C of full column rank (K ≤ M), which covers the
local-level and other models identified by one observation.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor

from genmodels._threads import last_dim, numel, work_sized
from genmodels._validation import as_tensor, check_finite, check_positive_int
from genmodels.inference.scan import Elems, associative_scan, cat_broadcast
from genmodels.linalg import LOG_TAU, cholesky_logdet, safe_cholesky, symmetrize

#: The parameters that may vary with time (``LGSSMParams.time_varying``), as pykalman accepts
#: them: name → (length of the time axis given T, number of trailing event dims).
TIME_VARYING = {"dynamics": (-1, 2), "dynamics_offset": (-1, 1), "emission": (0, 2),
                "emission_offset": (0, 1)}

#: Sequences longer than this use the parallel (associative-scan) forms under method="auto".
PARALLEL_THRESHOLD = 64

_METHODS = ("auto", "sequential", "parallel", "steady")


class LGSSMParams(NamedTuple):
    """Parameters of the linear-Gaussian state-space model (book §2.2.2).

    initial_mean: μ_1, (*, K).   initial_covariance: Σ_1, (*, K, K)      (Eq. 2.49)
    dynamics: A, (*, K, K).      dynamics_covariance: Σ_x, (*, K, K)
    emission: C, (*, M, K).      emission_covariance: Σ_{y|x}, (*, M, M)
    dynamics_offset: a, (*, K) or None.     emission_offset: c, (*, M) or None
    dynamics_input: B, (*, K, U) or None.   emission_input: D, (*, M, U) or None
    time_varying: names of parameters given per time step, time axis first (pykalman's
        convention, rows indexed from 0 like the data): dynamics (T−1, *, K, K) and
        dynamics_offset (T−1, *, K), row s taking step s to step s + 1 (x[s+1] = A[s] x[s] +
        a[s] + …); emission (T, *, M, K) and emission_offset (T, *, M), row s for y[s].
        Only the names in ``TIME_VARYING``; the covariances, inputs and initial state are
        time-invariant. With time-varying matrices the steady-state forms do not apply (the
        filter falls back to the parallel form); time-varying offsets alone keep them.
    """

    initial_mean: Tensor
    initial_covariance: Tensor
    dynamics: Tensor
    dynamics_covariance: Tensor
    emission: Tensor
    emission_covariance: Tensor
    dynamics_offset: Tensor | None = None
    emission_offset: Tensor | None = None
    dynamics_input: Tensor | None = None
    emission_input: Tensor | None = None
    time_varying: frozenset[str] = frozenset()

    @property
    def state_dim(self) -> int:
        return int(self.dynamics.shape[-1])

    @property
    def obs_dim(self) -> int:
        return int(self.emission.shape[-2])


class GaussianFiltered(NamedTuple):
    """The Kalman filter's output (Eqs 2.45–2.48).

    means: x̄_{t|t} = E[x_t | y_{1:t}], (*batch, T, K)
    covariances: Υ_{t|t} = Cov[x_t | y_{1:t}], (*batch, T, K, K)
    predicted_means: x̄_{t|t−1} = E[x_t | y_{1:t−1}] (x̄_{1|0} = μ_1), (*batch, T, K)
    predicted_covariances: Υ_{t|t−1} (Υ_{1|0} = Σ_1), (*batch, T, K, K)
    log_normalizers: log p̂(y_t | y_{1:t−1}) (Eq. 2.40 factors), (*batch, T)
    log_marginal: log p̂(y_{1:T}) = Σ_t log_normalizers, (*batch,)
    steady_from: diagnostic; the step from which the covariances are constant (steady state),
        when the filter found one, else None.
    """

    means: Tensor
    covariances: Tensor
    predicted_means: Tensor
    predicted_covariances: Tensor
    log_normalizers: Tensor
    log_marginal: Tensor
    steady_from: int | None = None


class GaussianSmoothed(NamedTuple):
    """The RTS smoother's output (Eqs 2.50–2.55).

    means: x̄_{t|T} = E[x_t | y_{1:T}], (*batch, T, K)
    covariances: Υ_{t|T} = Cov[x_t | y_{1:T}], (*batch, T, K, K)
    cross_covariances: Υ_{t+1,t|T} = Cov[x_{t+1}, x_t | y_{1:T}] (Eq. 2.55), (*batch, T−1, K, K)
        (row t pairs steps t+1 and t, 0-based).
    gains: J_t = Υ_{t|t} Aᵀ Υ_{t+1|t}⁻¹ (Eq. 2.53), (*batch, T−1, K, K)
    log_marginal: log p̂(y_{1:T}), (*batch,)
    filtered: the GaussianFiltered it was computed from.
    """

    means: Tensor
    covariances: Tensor
    cross_covariances: Tensor
    gains: Tensor
    log_marginal: Tensor
    filtered: GaussianFiltered


# --------------------------------------------------------------------------------------------
# Validation and preparation
# --------------------------------------------------------------------------------------------


def _check_psd(name: str, S: Tensor, *, strict: bool = False) -> None:
    check_finite(S, name)
    if (S - S.mT).abs().amax() > 1e-8 * (1.0 + S.abs().amax()):
        raise ValueError(f"{name} must be symmetric; got max |S − Sᵀ| = "
                         f"{float((S - S.mT).abs().amax()):.3g}.")
    ev = torch.linalg.eigvalsh(symmetrize(S.detach()))
    tol = 1e3 * torch.finfo(S.dtype).eps * ev.abs().amax().clamp_min(1.0)
    if bool((ev < -tol).any()) or (strict and bool((ev <= 0).any())):
        kind = "positive definite" if strict else "positive semi-definite"
        raise ValueError(f"{name} must be {kind}; its smallest eigenvalue is "
                         f"{float(ev.min()):.3g}.")


def as_params(params: LGSSMParams) -> LGSSMParams:
    """The parameters with every field that is not a floating tensor (NumPy arrays, lists,
    integer tensors) converted by the shared validation (``as_tensor``: strings, objects and
    complex numbers refused by name), in the dynamics' dtype and device."""
    ref = params.dynamics
    dtype = ref.dtype if isinstance(ref, Tensor) and ref.is_floating_point() else None
    device = ref.device if isinstance(ref, Tensor) else None
    converted: dict[str, Any] = {}
    for name in params._fields:
        v = getattr(params, name)
        if name == "time_varying" or v is None or (
                isinstance(v, Tensor) and v.is_floating_point()):
            continue
        converted[name] = as_tensor(v, name=name, dtype=dtype, device=device, allow_nan=True,
                                    detach=False)
    return params._replace(**converted) if converted else params


def check_params(params: LGSSMParams) -> LGSSMParams:
    """Validate shapes, finiteness and positive (semi-)definiteness; return the params with
    offsets filled in as zeros. Raises ``ValueError`` saying what is wrong."""
    params = as_params(params)
    A, C = params.dynamics, params.emission
    if A.dim() < 2 or A.shape[-1] != A.shape[-2]:
        raise ValueError(f"dynamics A must be (*, K, K), got shape {tuple(A.shape)}.")
    K = A.shape[-1]
    if C.dim() < 2 or C.shape[-1] != K:
        raise ValueError(f"emission C must be (*, M, K) with K={K}, got shape {tuple(C.shape)}.")
    M = C.shape[-2]
    if K == 0 or M == 0:
        raise ValueError(f"the state and observation dimensions must be at least 1; dynamics "
                         f"{tuple(A.shape)} gives K = {K}, emission {tuple(C.shape)} M = {M}.")
    tv = frozenset(params.time_varying)
    if not tv <= set(TIME_VARYING):
        raise ValueError(f"time_varying may name only {sorted(TIME_VARYING)}, got "
                         f"{sorted(tv - set(TIME_VARYING))}.")
    for name in tv:
        v = getattr(params, name)
        if v is None or v.dim() < TIME_VARYING[name][1] + 1:
            raise ValueError(f"time-varying {name} needs a leading time axis, got "
                             f"{None if v is None else tuple(v.shape)}.")
    dts = {name: getattr(params, name).dtype for name in params._fields
           if isinstance(getattr(params, name), Tensor)}
    if len(set(dts.values())) > 1:
        raise ValueError(f"all parameters must share one dtype, got {dts}.")
    if not A.is_floating_point():
        raise ValueError(f"parameters must be floating point, got {A.dtype}.")
    expect = {
        "initial_mean": (K,), "initial_covariance": (K, K), "dynamics_covariance": (K, K),
        "emission_covariance": (M, M), "dynamics_offset": (K,), "emission_offset": (M,),
    }
    for name, shape in expect.items():
        v = getattr(params, name)
        if v is not None and tuple(v.shape[v.dim() - len(shape):]) != shape:
            raise ValueError(f"{name} must have trailing shape {shape}, got {tuple(v.shape)}.")
    for name in ("dynamics", "emission", "initial_mean", "dynamics_offset", "emission_offset",
                 "dynamics_input", "emission_input"):
        v = getattr(params, name)
        if v is not None:
            check_finite(v, name)
    B, D = params.dynamics_input, params.emission_input
    if B is not None and (B.dim() < 2 or B.shape[-2] != K):
        raise ValueError(f"dynamics_input B must be (*, K, U) with K={K}, got {tuple(B.shape)}.")
    if D is not None and (D.dim() < 2 or D.shape[-2] != M):
        raise ValueError(f"emission_input D must be (*, M, U) with M={M}, got {tuple(D.shape)}.")
    if B is not None and D is not None and B.shape[-1] != D.shape[-1]:
        raise ValueError("dynamics_input B and emission_input D must have the same input dim U.")
    _check_psd("initial_covariance Σ_1", params.initial_covariance)
    _check_psd("dynamics_covariance Σ_x", params.dynamics_covariance)
    _check_psd("emission_covariance Σ_{y|x}", params.emission_covariance)
    zeros_k = A.new_zeros(K)
    zeros_m = A.new_zeros(M)
    return params._replace(
        dynamics_offset=zeros_k if params.dynamics_offset is None else params.dynamics_offset,
        emission_offset=zeros_m if params.emission_offset is None else params.emission_offset,
    )


class _Prepared(NamedTuple):
    """Time-first tensors (T leading) ready for the recursions."""

    y: Tensor  # (T, *batch, M): y_t − D u_t − c, zero where missing
    C: Tensor  # (T|1, *b, M, K): emission with missing rows zeroed
    R: Tensor  # (T|1, *b, M, M): Σ_{y|x} with missing entries decoupled
    n_missing: Tensor | None  # (T, *batch) number of missing entries
    u: Tensor  # (T, *batch|1s, K): B u_{t−1} + a (row 0 unused)
    A: Tensor  # (*b, K, K) with the full batch rank, or (T−1, *b, K, K) when time-varying
    Q: Tensor
    mu1: Tensor
    P1: Tensor
    batch: tuple[int, ...]
    A_tv: bool = False  # A carries a time axis
    tv: bool = False  # some parameter varies with time


def _lift_param(params: LGSSMParams, name: str, rank: int, T: int) -> Tensor:
    """A parameter with ``rank`` batch dims; a time-varying one time-first,
    (T−1 or T, *batch, ...), checked against the data's T."""
    t = getattr(params, name)
    offset, trailing = TIME_VARYING.get(name, (0, 2 if t.dim() >= 2 else 1))
    if name not in params.time_varying:
        return _expand_rank(t, rank, trailing, name)
    n = T + offset
    if t.shape[0] != n:
        raise ValueError(f"time-varying {name} must have {n} steps along its first axis for "
                         f"T={T} observations, got shape {tuple(t.shape)}.")
    lead = t.dim() - 1 - trailing
    if lead > rank:
        raise ValueError(f"{name} has {lead} batch dims (shape {tuple(t.shape)}) but the data "
                         f"only {rank}.")
    return t.reshape((n,) + (1,) * (rank - lead) + tuple(t.shape[1:]))


def _expand_rank(t: Tensor, rank: int, trailing: int, name: str = "a parameter") -> Tensor:
    """Prepend singleton dims so that t has ``rank`` leading (batch) dims."""
    lead = t.dim() - trailing
    if lead > rank:
        raise ValueError(f"{name} has {lead} batch dims (shape {tuple(t.shape)}) but the data "
                         f"only {rank}.")
    return t.reshape((1,) * (rank - lead) + tuple(t.shape))


def _prepare(
    params: LGSSMParams, y: Tensor, inputs: Tensor | None, mask: Tensor | None, validate: bool
) -> _Prepared:
    if validate:
        params = check_params(params)
    elif params.dynamics_offset is None or params.emission_offset is None:
        params = check_params(params)
    else:
        params = as_params(params)
    K, M = params.state_dim, params.obs_dim
    y = as_tensor(y, name="y", dtype=params.dynamics.dtype, device=params.dynamics.device,
                  allow_nan=True, detach=False)  # NaN marks a missing entry
    if y.dim() < 2 or y.shape[-1] != M:
        raise ValueError(f"observations y must be (*batch, T, M) with M={M}, got shape "
                         f"{tuple(y.shape)}.")
    T = y.shape[-2]
    if T == 0:
        raise ValueError("the observation sequence is empty (T = 0); at least one step is needed.")
    batch = tuple(y.shape[:-2])
    nb = len(batch)
    if mask is not None:
        mask = as_tensor(mask, name="mask", device=y.device, detach=False).to(torch.bool)
        if mask.shape != y.shape:
            raise ValueError(f"mask must have the shape of y {tuple(y.shape)}, got "
                             f"{tuple(mask.shape)}.")
        bad = mask & ~torch.isfinite(y)
        if bool(bad.any()):
            idx = tuple(int(i) for i in torch.nonzero(bad)[0])
            raise ValueError(f"y has a NaN or infinite entry at index {idx} that the mask marks "
                             "as observed; set mask False there (or use NaN without a mask).")
        observed = mask
    else:
        if bool(torch.isinf(y).any()):
            idx = tuple(int(i) for i in torch.nonzero(torch.isinf(y))[0])
            raise ValueError(f"y has an infinite entry at index {idx}; use NaN for missing.")
        observed = ~torch.isnan(y)
    # the observed entries must not overflow either (1e300-scaled data: every quadratic is inf)
    check_finite(torch.where(observed, y, torch.zeros((), dtype=y.dtype, device=y.device)), "y")
    any_missing = not bool(observed.all())

    def lift(t: Tensor, trailing: int, name: str) -> Tensor:
        return _expand_rank(t, nb, trailing, name)

    assert params.dynamics_offset is not None and params.emission_offset is not None
    tv = params.time_varying
    A = _lift_param(params, "dynamics", nb, T)
    C0 = _lift_param(params, "emission", nb, T)  # (*b, M, K) or (T, *b, M, K)
    R0 = lift(params.emission_covariance, 2, "emission_covariance")
    yt = y.movedim(-2, 0)  # (T, *batch, M)
    obs_t = observed.movedim(-2, 0)
    resid = yt - _lift_param(params, "emission_offset", nb, T)
    a = _lift_param(params, "dynamics_offset", nb, T)
    if "dynamics_offset" in tv:  # row t of u is a_{t−1}, row 0 unused
        u = torch.cat([torch.zeros_like(a[:1]), a], 0).expand(T, *batch, K)
    else:
        u = a.expand(*batch, K)[None].expand(T, *batch, K)
    if inputs is not None:
        inputs = as_tensor(inputs, name="inputs", dtype=y.dtype, device=y.device, detach=False)
        if inputs.shape[:-1] != y.shape[:-1] or inputs.dim() != y.dim():
            raise ValueError(f"inputs must be (*batch, T, U) with (*batch, T) = "
                             f"{tuple(y.shape[:-1])}, got {tuple(inputs.shape)}.")
        ut = inputs.movedim(-2, 0)  # (T, *batch, U)
        if params.emission_input is not None:
            resid = resid - (lift(params.emission_input, 2, "emission_input")
                             @ ut[..., None])[..., 0]
        if params.dynamics_input is not None:
            Bu = (lift(params.dynamics_input, 2, "dynamics_input")
                  @ ut[..., None])[..., 0]  # B u_t
            u = u + torch.cat([torch.zeros_like(Bu[:1]), Bu[:-1]], 0)  # row t uses u_{t−1}
    elif params.dynamics_input is not None or params.emission_input is not None:
        raise ValueError("the model has input matrices B/D but no inputs were given.")
    if any_missing:
        o = obs_t.to(y.dtype)  # (T, *batch, M)
        resid = torch.where(obs_t, resid, torch.zeros_like(resid))
        C = C0 * o[..., None]
        R = R0 * (o[..., :, None] * o[..., None, :]) + torch.diag_embed(1.0 - o)
        n_missing: Tensor | None = (1.0 - o).sum(-1)
    else:
        C = C0 if "emission" in tv else C0[None]
        R, n_missing = R0[None], None
    return _Prepared(resid, C, R, n_missing, u, A,
                     lift(params.dynamics_covariance, 2, "dynamics_covariance"),
                     lift(params.initial_mean, 1, "initial_mean"),
                     lift(params.initial_covariance, 2, "initial_covariance"), batch,
                     "dynamics" in tv, bool(tv))


def _mv(A: Tensor, x: Tensor) -> Tensor:
    """A x over the last dim, broadcasting; a single GEMM when A is one matrix."""
    if A.dim() == 2 or A.shape[:-2].numel() == 1:
        return x @ A.reshape(A.shape[-2:]).mT
    return (A @ x[..., None])[..., 0]


def _eye_like(A: Tensor) -> Tensor:
    return torch.eye(A.shape[-1], dtype=A.dtype, device=A.device)


# --------------------------------------------------------------------------------------------
# Measurement update (Eq. 2.47) and the exact diffuse first step
# --------------------------------------------------------------------------------------------


class _Update(NamedTuple):
    mean: Tensor
    cov: Tensor
    log_norm: Tensor


def _innovation_cholesky(S: Tensor) -> Tensor:
    """The Cholesky factor of an innovation covariance, or a refusal naming the parameters
    that made it: legal but extreme ones (e.g. dynamics scaled by 1e150) overflow it."""
    try:
        return safe_cholesky(S)
    except ValueError as e:
        raise ValueError(
            "the innovation covariance C Υ Cᵀ + Σ_{y|x} (Eq. 2.47) is not positive definite: it "
            "overflowed or is singular; rescale the parameters (dynamics, emission, "
            f"dynamics_covariance, emission_covariance) or the data y. ({e})") from e


def _measurement_update(m: Tensor, P: Tensor, y: Tensor, C: Tensor, R: Tensor) -> _Update:
    """Eq. 2.47: condition N(m, P) on y = C x + noise(R). Joseph-form covariance."""
    CP = C @ P  # (*, M, K)
    S = symmetrize(CP @ C.mT + R)  # innovation covariance C Υ Cᵀ + Σ_{y|x}
    L = _innovation_cholesky(S)
    gain = torch.cholesky_solve(CP, L).mT  # Eq. 2.47: K = Υ Cᵀ S⁻¹, (*, K, M)
    v = y - _mv(C, m)  # innovation y_t − (C x̄_{t|t−1} + c)
    mean = m + _mv(gain, v)  # Eq. 2.47
    IKC = _eye_like(P) - gain @ C
    cov = symmetrize(IKC @ P @ IKC.mT + gain @ R @ gain.mT)  # Eq. 2.47 (Joseph form)
    z = torch.linalg.solve_triangular(L, v[..., None], upper=False)[..., 0]
    log_norm = -0.5 * (S.shape[-1] * LOG_TAU + cholesky_logdet(L) + z.square().sum(-1))  # Eq. 2.40
    return _Update(mean, cov, log_norm)


def _diffuse_update(y: Tensor, C: Tensor, R: Tensor) -> _Update:
    """Exact diffuse first step (Durbin & Koopman 2012 §5.2) for x_1 ~ N(0, κI), κ → ∞."""
    LR = safe_cholesky(R)
    Z = torch.linalg.solve_triangular(LR, C, upper=False)  # R^{-1/2} C, (*, M, K)
    w = torch.linalg.solve_triangular(LR, y[..., None], upper=False)[..., 0]
    info = symmetrize(Z.mT @ Z)  # Cᵀ Σ⁻¹ C
    L_info, bad = torch.linalg.cholesky_ex(info)
    if bool((bad > 0).any()):
        raise ValueError("exact diffuse initialisation needs the emission C to have full column "
                         "rank (the first observation must identify the state); use a large "
                         "initial_covariance instead.")
    zw = _mv(Z.mT, w)
    cov = torch.cholesky_inverse(L_info)  # the GLS covariance itself is the wanted quantity
    mean = torch.cholesky_solve(zw[..., None], L_info)[..., 0]
    h = torch.linalg.solve_triangular(L_info, zw[..., None], upper=False)[..., 0]
    quad = w.square().sum(-1) - h.square().sum(-1)
    log_norm = -0.5 * (y.shape[-1] * LOG_TAU + cholesky_logdet(LR) + cholesky_logdet(L_info)
                       + quad)
    return _Update(mean, symmetrize(cov), log_norm)


def _first_update(p: _Prepared, diffuse: bool) -> _Update:
    C1, R1 = p.C[0], p.R[0]
    if diffuse:
        if p.n_missing is not None and bool((p.n_missing[0] > 0).any()):
            raise ValueError("exact diffuse initialisation needs y_1 fully observed.")
        return _diffuse_update(p.y[0], C1, R1)
    m0 = p.mu1.expand(*p.batch, p.mu1.shape[-1])
    return _measurement_update(m0, p.P1, p.y[0], C1, R1)


def _finish_log_norm(log_norm: Tensor, p: _Prepared) -> Tensor:
    """Remove the decoupled missing entries' N(0; 0, 1) factors."""
    if p.n_missing is not None:
        log_norm = log_norm + 0.5 * LOG_TAU * p.n_missing
    return log_norm


# --------------------------------------------------------------------------------------------
# Sequential forms
# --------------------------------------------------------------------------------------------


def _filter_sequential(p: _Prepared, diffuse: bool) -> GaussianFiltered:
    T = p.y.shape[0]
    K = p.A.shape[-1]
    first = _first_update(p, diffuse)
    means, covs, logs = [first.mean], [first.cov], [first.log_norm]
    pm = [p.mu1.expand(*p.batch, K)]
    pc = [p.P1.expand(*p.batch, K, K)]
    for t in range(1, T):
        At = p.A[t - 1] if p.A_tv else p.A
        m_pred = _mv(At, means[-1]) + p.u[t]  # Eq. 2.48
        P_pred = symmetrize(At @ covs[-1] @ At.mT + p.Q)  # Eq. 2.48
        Ct = p.C[t] if p.C.shape[0] > 1 else p.C[0]
        Rt = p.R[t] if p.R.shape[0] > 1 else p.R[0]
        up = _measurement_update(m_pred, P_pred, p.y[t], Ct, Rt)
        pm.append(m_pred)
        pc.append(P_pred)
        means.append(up.mean)
        covs.append(up.cov)
        logs.append(up.log_norm)
    if diffuse:  # the prediction at t = 1 is improper: report it as the filter's, N(x̄_{1|1}, ∞)
        pm[0] = means[0]
        pc[0] = torch.full_like(covs[0], float("inf"))
    return _assemble_filtered(p, means, covs, pm, pc, logs)


def _assemble_filtered(p: _Prepared, means: list[Tensor], covs: list[Tensor], pm: list[Tensor],
                       pc: list[Tensor], logs: list[Tensor]) -> GaussianFiltered:
    K = p.A.shape[-1]
    ln = _finish_log_norm(torch.stack([x.expand(p.batch) for x in logs], 0), p)
    return GaussianFiltered(
        torch.stack([x.expand(*p.batch, K) for x in means], -2),
        torch.stack([x.expand(*p.batch, K, K) for x in covs], -3),
        torch.stack([x.expand(*p.batch, K) for x in pm], -2),
        torch.stack([x.expand(*p.batch, K, K) for x in pc], -3),
        ln.movedim(0, -1), ln.sum(0),
    )


def _smoother_elements(filt: GaussianFiltered, A: Tensor, Q: Tensor) -> tuple[Tensor, ...]:
    """Gains J_t (Eq. 2.53) and the backward kernels p̂(x_t | x_{t+1}, y_{1:t}) =
    N(J_t x_{t+1} + g_t, L_t), time-first: (T−1, *batch, ...)."""
    mf = filt.means.movedim(-2, 0)
    Pf = filt.covariances.movedim(-3, 0)
    mp = filt.predicted_means.movedim(-2, 0)[1:]
    Pp = filt.predicted_covariances.movedim(-3, 0)[1:]
    APf = A @ Pf[:-1]  # (T−1, *, K, K)
    J = torch.cholesky_solve(APf, safe_cholesky(Pp)).mT  # Eq. 2.53: Υ_{t|t} Aᵀ Υ_{t+1|t}⁻¹
    g = mf[:-1] - _mv(J, mp)  # Eq. 2.53 (second line)
    IJA = _eye_like(A) - J @ A
    L = symmetrize(IJA @ Pf[:-1] @ IJA.mT + J @ Q @ J.mT)  # Eq. 2.53: Υ_{t|t} − J Υ_{t+1|t} Jᵀ
    return J, g, L, mf, Pf, mp, Pp


def _smooth_sequential(filt: GaussianFiltered, A: Tensor, Q: Tensor
                       ) -> tuple[Tensor, Tensor, Tensor]:
    J, _, _, mf, Pf, mp, Pp = _smoother_elements(filt, A, Q)
    T = mf.shape[0]
    ms, Ps = [mf[-1]], [Pf[-1]]  # smoother at T = filter at T
    for t in range(T - 2, -1, -1):
        ms.append(mf[t] + _mv(J[t], ms[-1] - mp[t]))  # Eq. 2.54
        Ps.append(symmetrize(Pf[t] + J[t] @ (Ps[-1] - Pp[t]) @ J[t].mT))  # Eq. 2.54
    return torch.stack(ms[::-1], 0), torch.stack(Ps[::-1], 0), J


# --------------------------------------------------------------------------------------------
# Parallel forms (Särkkä & García-Fernández 2021)
# --------------------------------------------------------------------------------------------

def _filter_combine(earlier: Elems, later: Elems) -> Elems:
    """The filtering operator of Särkkä & García-Fernández (2021, Lemma 8)."""
    Ai, bi, Ci, ei, Ji = earlier
    Aj, bj, Cj, ej, Jj = later
    M1 = _eye_like(Ci) + Ci @ Jj  # I + C_i J_j (invertible: C_i J_j has eigenvalues ≥ 0)
    LU, piv = torch.linalg.lu_factor(M1)
    G = torch.linalg.lu_solve(LU, piv, Aj.mT, adjoint=True).mT  # A_j (I + C_i J_j)⁻¹
    H = torch.linalg.lu_solve(LU, piv, Ai).mT  # A_iᵀ (I + J_j C_i)⁻¹
    A = G @ Ai
    b = _mv(G, bi + _mv(Ci, ej)) + bj
    C = symmetrize(G @ Ci @ Aj.mT + Cj)
    e = _mv(H, ej - _mv(Jj, bi)) + ei
    J = symmetrize(H @ Jj @ Ai + Ji)
    return A, b, C, e, J


def _filter_parallel(p: _Prepared, diffuse: bool) -> GaussianFiltered:
    T = p.y.shape[0]
    K = p.A.shape[-1]
    first = _first_update(p, diffuse)
    I = _eye_like(p.A)
    # Elements for t ≥ 2: p̂(x_t | x_{t−1}, y_t) = N(A_t x_{t−1} + b_t, C_t) and the likelihood
    # of y_t as a function of x_{t−1}, ∝ N_I(x_{t−1}; η_t, J_t) (ibid., Lemma 7).
    C = p.C[1:] if p.C.shape[0] > 1 else p.C
    R = p.R[1:] if p.R.shape[0] > 1 else p.R
    y, u = p.y[1:], p.u[1:]
    CQ = C @ p.Q
    S = symmetrize(CQ @ C.mT + R)
    L = safe_cholesky(S)
    gain = torch.cholesky_solve(CQ, L).mT  # Q Cᵀ S⁻¹
    IKC = I - gain @ C
    v = y - _mv(C, u)
    A_el = IKC @ p.A
    b_el = u + _mv(gain, v)
    C_el = symmetrize(IKC @ p.Q @ IKC.mT + gain @ R @ gain.mT)
    Z = torch.linalg.solve_triangular(L, C @ p.A, upper=False)  # S^{-1/2} C A
    w = torch.linalg.solve_triangular(L, v[..., None], upper=False)[..., 0]
    e_el = _mv(Z.mT, w)
    J_el = symmetrize(Z.mT @ Z)
    bshape = (T - 1, *p.batch)
    A_el = A_el.expand(T - 1, *A_el.shape[1:])
    C_el = C_el.expand(T - 1, *C_el.shape[1:])
    J_el = J_el.expand(T - 1, *J_el.shape[1:])
    zero_kk = torch.zeros_like(A_el[:1])
    elems = (
        torch.cat([zero_kk, A_el], 0),
        torch.cat([first.mean.expand(1, *p.batch, K), b_el.expand(*bshape, K)], 0),
        cat_broadcast(first.cov[None], C_el),
        torch.cat([torch.zeros_like(first.mean).expand(1, *p.batch, K), e_el.expand(*bshape, K)],
                  0),
        torch.cat([zero_kk, J_el], 0),
    )
    _, means, covs, _, _ = associative_scan(_filter_combine, elems)
    # predictions and log-normalisers, all steps at once
    m_pred = _mv(p.A, means[:-1]) + u
    P_pred = symmetrize(p.A @ covs[:-1] @ p.A.mT + p.Q)
    CP = C @ P_pred
    S2 = symmetrize(CP @ C.mT + R)
    L2 = safe_cholesky(S2)
    z = torch.linalg.solve_triangular(L2, (y - _mv(C, m_pred))[..., None], upper=False)[..., 0]
    log_norm = -0.5 * (S2.shape[-1] * LOG_TAU + cholesky_logdet(L2) + z.square().sum(-1))
    logs = torch.cat([first.log_norm.expand(1, *p.batch), log_norm.expand(*bshape)], 0)
    if diffuse:
        pm0, pc0 = first.mean, torch.full_like(first.cov, float("inf"))
    else:
        pm0, pc0 = p.mu1.expand(*p.batch, K), p.P1
    pm = torch.cat([pm0.expand(1, *p.batch, K), m_pred.expand(*bshape, K)], 0)
    pc = cat_broadcast(pc0[None], P_pred)
    ln = _finish_log_norm(logs, p)
    return GaussianFiltered(
        means.expand(T, *p.batch, K).movedim(0, -2),
        covs.expand(T, *p.batch, K, K).movedim(0, -3),
        pm.movedim(0, -2), pc.expand(T, *p.batch, K, K).movedim(0, -3),
        ln.movedim(0, -1), ln.sum(0),
    )


def _smooth_combine(later: Elems, earlier: Elems) -> Elems:
    """Backward operator (ibid., Lemma 10), written as fn(suffix result, earlier element)."""
    El, gl, Ll = later
    Ee, ge, Le = earlier
    return Ee @ El, _mv(Ee, gl) + ge, symmetrize(Ee @ Ll @ Ee.mT + Le)


def _smooth_parallel(filt: GaussianFiltered, A: Tensor, Q: Tensor
                     ) -> tuple[Tensor, Tensor, Tensor]:
    J, g, L, mf, Pf, _, _ = _smoother_elements(filt, A, Q)
    E = cat_broadcast(J, torch.zeros_like(Pf[-1:]))
    gg = torch.cat([g, mf[-1:]], 0)
    LL = cat_broadcast(L, Pf[-1:])
    rev = (E.flip(0), gg.flip(0), LL.flip(0))
    _, ms, Ps = associative_scan(_smooth_combine, rev)
    return ms.flip(0), Ps.flip(0), J


# --------------------------------------------------------------------------------------------
# Steady-state blocked forms (time-invariant model, no missing data)
# --------------------------------------------------------------------------------------------
#
# Without missing data the covariances, gains and innovation covariances of a time-invariant
# model do not depend on the data, and the Riccati recursion converges geometrically. We run
# the covariance recursion (small, unbatched) until two successive predicted covariances agree
# to a few ulps; from then on every step uses the same gain, so the means obey a linear
# recurrence with a *constant* matrix, x_t = F x_{t−1} + g_t, which ``linear_recurrence``
# evaluates in blocks: the within-block part is one GEMM with a block-Toeplitz matrix of powers
# of F, the carries between blocks recurse on F^L. The result equals the sequential recursion
# to rounding (the tolerance for "converged" is a few ulps).

#: Block length of ``linear_recurrence`` (work ∝ T·L·K², depth ∝ log_L T).
BLOCK = 32
#: Relative change below which the Riccati recursion counts as converged (a few ulps).
STEADY_RTOL = 16.0


def linear_recurrence(F: Tensor, g: Tensor, x0: Tensor, *, block: int = BLOCK) -> Tensor:
    """x_t = F x_{t−1} + g_t for t = 1..n, from x_0 = x0, in blocks of length ``block``.

    F: (K, K) constant; g: (n, *batch, K); x0: (*batch, K) → x_{1..n}: (n, *batch, K).
    """
    n, K = g.shape[0], g.shape[-1]
    batch = g.shape[1:-1]
    B = int(torch.tensor(batch).prod()) if batch else 1
    gf = g.reshape(n, B, K)
    L = min(block, n)
    nc = -(-n // L)
    if nc * L != n:
        gf = torch.cat([gf, gf.new_zeros(nc * L - n, B, K)], 0)
    powers = [torch.eye(K, dtype=F.dtype, device=F.device)]
    for _ in range(L):
        powers.append(F @ powers[-1])
    Pw = torch.stack(powers)  # (L+1, K, K): F^0..F^L
    j = torch.arange(L, device=F.device)
    lag = j[:, None] - j[None, :]  # (L, L): j − i
    toe = Pw[lag.clamp_min(0)] * (lag >= 0).to(F.dtype)[..., None, None]  # (L, L, K, K)
    toe = toe.permute(0, 2, 1, 3).reshape(L * K, L * K)
    G2 = gf.reshape(nc, L, B, K).permute(1, 3, 0, 2).reshape(L * K, nc * B)
    local = (toe @ G2).reshape(L, K, nc, B).permute(2, 0, 3, 1)  # (nc, L, B, K)
    x0f = x0.expand(*batch, K).reshape(B, K)
    if nc > 1:
        carries = linear_recurrence(Pw[L], local[:-1, -1], x0f, block=block)  # (nc−1, B, K)
        starts = torch.cat([x0f[None], carries], 0)
    else:
        starts = x0f[None]
    x = local + torch.einsum("jkl,cbl->cjbk", Pw[1:], starts)
    return x.reshape(nc * L, B, K)[:n].reshape(n, *batch, K)


def _cov_update(P: Tensor, C: Tensor, R: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Covariance half of Eq. 2.47: (Υ_{t|t}, gain K_t, Cholesky factor of S_t)."""
    CP = C @ P
    L = safe_cholesky(symmetrize(CP @ C.mT + R))
    gain = torch.cholesky_solve(CP, L).mT
    IKC = _eye_like(P) - gain @ C
    return symmetrize(IKC @ P @ IKC.mT + gain @ R @ gain.mT), gain, L


def _converged(new: Tensor, old: Tensor) -> bool:
    new, old = new.detach(), old.detach()
    tol = STEADY_RTOL * eps_of(new) * float(new.abs().amax())
    return float((new - old).abs().amax()) <= tol


def eps_of(t: Tensor) -> float:
    return float(torch.finfo(t.dtype).eps)


def _filter_steady(p: _Prepared, diffuse: bool) -> GaussianFiltered | None:
    """The filter through the steady-state gain, or None when it does not apply."""
    T = p.y.shape[0]
    # time-varying offsets leave the covariance recursion data- and time-independent (they
    # enter only the means through u_t and y_t − c_t), so only a time-varying A or C excludes it
    if (p.A_tv or p.n_missing is not None or p.C.shape[0] != 1 or any(
            d != 1 for t in (p.A, p.Q, p.C[0], p.R[0], p.P1) for d in t.shape[:-2])):
        return None
    K = p.A.shape[-1]
    kk = (K, K)
    A, Q = p.A.reshape(kk), p.Q.reshape(kk)
    C, R = p.C[0].reshape(p.C.shape[-2:]), p.R[0].reshape(p.R.shape[-2:])
    # covariance (Riccati) pass until convergence
    Pp, Pf, gains, Ls = [], [], [], []
    first = _first_update(p, diffuse)
    steady = -1
    P = p.P1.reshape(kk)
    for t in range(T):
        if t == 0 and diffuse:
            Pp.append(torch.full_like(P, float("inf")))
            Pf.append(first.cov.reshape(-1, K, K)[0])
            gains.append(P.new_zeros(K, C.shape[0]))
            Ls.append(P.new_zeros(C.shape[0], C.shape[0]))
        else:
            Pp.append(P)
            Pt, Kt, Lt = _cov_update(P, C, R)
            Pf.append(Pt)
            gains.append(Kt)
            Ls.append(Lt)
        if t >= 2 and _converged(Pf[-1], Pf[-2]) and _converged(Pp[-1], Pp[-2]):
            steady = t
            break
        P = symmetrize(A @ Pf[-1] @ A.mT + Q)  # Eq. 2.48
    if steady < 0:
        return None
    s = steady
    # transient means, sequentially (batched over sequences)
    batch = p.batch
    means = [first.mean.expand(*batch, K)]
    for t in range(1, s + 1):
        m_pred = _mv(A, means[-1]) + p.u[t]
        means.append(m_pred + _mv(gains[t], p.y[t] - _mv(C, m_pred)))  # Eq. 2.47
    mf = torch.stack(means, 0)
    if T > s + 1:
        Kg = gains[s]
        IKC = _eye_like(A) - Kg @ C
        F = IKC @ A
        g = _mv(IKC, p.u[s + 1:]) + _mv(Kg, p.y[s + 1:])
        mf = torch.cat([mf, linear_recurrence(F, g, mf[-1])], 0)
    n_rest = T - s - 1
    Pf_all = torch.cat([torch.stack(Pf), Pf[s].expand(n_rest, K, K)], 0)
    Pp_all = torch.cat([torch.stack(Pp), Pp[s].expand(n_rest, K, K)], 0)
    m_pred = _mv(A, mf[:-1]) + p.u[1:]
    v = p.y[1:] - _mv(C, m_pred)  # innovations, (T−1, *batch, M)
    Mdim = C.shape[0]
    lead = (slice(None),) + (None,) * len(batch)
    parts = [first.log_norm.expand(1, *batch)]
    if s >= 1:  # transient steps 1..s, each with its own S_t
        Lt = torch.stack(Ls[1:s + 1])[lead]
        z = torch.linalg.solve_triangular(Lt, v[:s, ..., None], upper=False)[..., 0]
        parts.append(-0.5 * (Mdim * LOG_TAU + cholesky_logdet(Lt) + z.square().sum(-1)))
    if n_rest > 0:  # steady steps: one S, one triangular solve with many right-hand sides
        vr = v[s:].reshape(-1, Mdim)
        z = torch.linalg.solve_triangular(Ls[s], vr.mT, upper=False)
        quad = z.square().sum(0).reshape(n_rest, *batch)
        parts.append(-0.5 * (Mdim * LOG_TAU + cholesky_logdet(Ls[s]) + quad))
    logs = torch.cat(parts, 0)
    if diffuse:
        pm0 = first.mean.expand(*batch, K)
    else:
        pm0 = p.mu1.expand(*batch, K)
    pm = torch.cat([pm0[None], m_pred], 0)
    exp_c = (T, *batch, K, K)
    return GaussianFiltered(
        mf.movedim(0, -2), Pf_all[lead].expand(exp_c).movedim(0, -3), pm.movedim(0, -2),
        Pp_all[lead].expand(exp_c).movedim(0, -3), logs.movedim(0, -1), logs.sum(0), s)


def _steady_start(X: Tensor) -> int | None:
    """First index from which the (T, K, K) sequence X is constant to a few ulps, else None."""
    X = X.detach()
    d = (X[1:] - X[-1:]).abs().amax((-1, -2))
    tol = STEADY_RTOL * eps_of(X) * float(X[-1].abs().amax())
    bad = torch.nonzero(d > tol)
    return 0 if bad.numel() == 0 else int(bad[-1]) + 1


def _smooth_steady(filt: GaussianFiltered, A: Tensor, Q: Tensor
                   ) -> tuple[Tensor, Tensor, Tensor, Tensor] | None:
    """The RTS smoother with a constant gain where the filter is steady, or None.

    Returns time-first (means, covariances, gains, cross-covariances).
    """
    Pf_b, Pp_b = filt.covariances, filt.predicted_covariances
    nb = Pf_b.dim() - 3
    if any(st != 0 for st in Pf_b.stride()[:nb]) and Pf_b.shape[:nb].numel() != 1:
        return None  # covariances differ across sequences (missing data)
    if any(d != 1 for d in A.shape[:-2]) or any(d != 1 for d in Q.shape[:-2]):
        return None
    K = A.shape[-1]
    A2 = A.reshape(K, K)
    Pf = Pf_b.reshape(-1, *Pf_b.shape[-3:])[0]  # (T, K, K)
    Pp = Pp_b.reshape(-1, *Pp_b.shape[-3:])[0]
    T = Pf.shape[0]
    if filt.steady_from is not None:
        s = filt.steady_from
    else:
        sf, sp = _steady_start(Pf), _steady_start(Pp[1:])
        if sf is None or sp is None:
            return None
        s = max(sf, sp + 1)
    if s > T - 2:
        return None
    # gains J_t (Eq. 2.53) for the transient t < s, and the constant one
    APf = A2 @ Pf[: s + 1]
    J_distinct = torch.cholesky_solve(APf, safe_cholesky(Pp[1: s + 2])).mT
    Js = J_distinct[s]
    # smoothed covariances (Eq. 2.54), backward: constant coefficients until converged (the
    # tail near T), a constant stretch, then the transient head t < s
    tail = [Pf[-1]]
    t = T - 2
    Pc = None
    while t >= s:
        nxt = symmetrize(Pf[s] + Js @ (tail[-1] - Pp[s + 1]) @ Js.mT)
        if _converged(nxt, tail[-1]):
            Pc = nxt
            break
        tail.append(nxt)
        t -= 1
    k = t + 1  # steps k..T−1 are in ``tail``; s..k−1 equal Pc (if any)
    n_const = k - s if Pc is not None else 0
    prev = Pc if Pc is not None else tail[-1]
    head = []
    for t in range(s - 1, -1, -1):
        prev = symmetrize(Pf[t] + J_distinct[t] @ (prev - Pp[t + 1]) @ J_distinct[t].mT)
        head.append(prev)
    pieces = [torch.stack(head[::-1])] if head else []
    if n_const:
        assert Pc is not None
        pieces.append(Pc.expand(n_const, K, K))
    pieces.append(torch.stack(tail[::-1]))
    Ps = torch.cat(pieces, 0)  # (T, K, K)
    J = torch.cat([J_distinct[:s], Js.expand(T - 1 - s, K, K)], 0)  # (T−1, K, K)
    cross = Ps.new_empty(T - 1, K, K)  # Eq. 2.55, computed once per distinct pair
    cross[:s] = Ps[1: s + 1] @ J_distinct[:s].mT
    kk = max(k - 1, s)
    if kk > s:
        assert Pc is not None
        cross[s:kk] = Pc @ Js.mT
    cross[kk:] = Ps[kk + 1:] @ Js.mT
    # smoothed means: m_{t|T} = J_t m_{t+1|T} + (m_{t|t} − J_t m_{t+1|t})     (Eq. 2.54)
    mf = filt.means.movedim(-2, 0)
    mp = filt.predicted_means.movedim(-2, 0)
    g_tail = mf[s:-1] - _mv(Js, mp[s + 1:])  # (T−1−s, *batch, K)
    tail_m = linear_recurrence(Js, g_tail.flip(0), mf[-1]).flip(0)  # t = s..T−2
    ms = [tail_m[0]]
    for t in range(s - 1, -1, -1):
        ms.append(_mv(J_distinct[t], ms[-1] - mp[t + 1]) + mf[t])
    head_m = torch.stack(ms[1:][::-1], 0) if s > 0 else tail_m[:0]
    means = torch.cat([head_m, tail_m, mf[-1:]], 0)
    return means, Ps, J, cross


# --------------------------------------------------------------------------------------------
# Public kernels
# --------------------------------------------------------------------------------------------


def _resolve_method(method: str, T: int) -> str:
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}.")
    if method == "auto":
        return "steady" if T > PARALLEL_THRESHOLD else "sequential"
    return method


def _kalman_work(params: LGSSMParams, y: Tensor, *args: Any, **kwargs: Any) -> float:
    """The largest operation of the batched (parallel, steady) forms: a K × K product at every
    time step of every sequence, 2 (batch · T) K³; the sequential form's are K³ each."""
    k = int(params.dynamics.shape[-1])
    steps = numel(y) // max(1, last_dim(y))
    return 2.0 * steps * k * k * k


@work_sized(_kalman_work)
def kalman_filter(
    params: LGSSMParams,
    y: Tensor,
    *,
    inputs: Tensor | None = None,
    mask: Tensor | None = None,
    diffuse: bool = False,
    method: str = "auto",
    validate: bool = True,
) -> GaussianFiltered:
    """The Kalman filter (Eqs 2.45–2.49): p̂(x_t | y_{1:t}) for every t, and log p̂(y_{1:T}).

    y: (*batch, T, M), NaN where missing (or give ``mask``: True where observed).
    inputs: (*batch, T, U) controls u_t (u_{t−1} drives x_t; u_t drives y_t), or None.
    diffuse: exact diffuse initial state (ignores μ_1, Σ_1; see the module docstring).
    method: "sequential" (the book's recursion), "parallel" (associative scan), "steady"
        (steady-state gain with blocked means when the model is time-invariant and nothing is
        missing, else parallel) or "auto" ("steady" for T > PARALLEL_THRESHOLD, else
        "sequential"). All agree to rounding.
    validate: check the parameters (shapes, symmetry, PSD); turn off inside tight loops.
    """
    p = _prepare(params, y, inputs, mask, validate)
    chosen = _resolve_method(method, p.y.shape[0])
    if chosen == "steady":
        out = _filter_steady(p, diffuse)
        if out is not None:
            return out
        chosen = "parallel"
    if chosen == "parallel":
        return _filter_parallel(p, diffuse)
    return _filter_sequential(p, diffuse)


@work_sized(lambda params, filtered, **kw: _kalman_work(params, filtered.means))
def rts_smoother(
    params: LGSSMParams, filtered: GaussianFiltered, *, method: str = "auto"
) -> GaussianSmoothed:
    """The RTS smoother (Eqs 2.50–2.55) from a filter's output; it does not see the data.

    Needs only A and Σ_x from ``params`` (the offsets and inputs enter through the filter's
    predicted means).
    """
    params = as_params(params)
    T = filtered.means.shape[-2]
    nb = filtered.means.dim() - 2
    A = _lift_param(params, "dynamics", nb, T)  # time-first (T−1, *b, K, K) if time-varying
    Q = _expand_rank(params.dynamics_covariance, nb, 2)
    if T == 1:
        K = filtered.means.shape[-1]
        empty = filtered.covariances.new_zeros((*filtered.means.shape[:-2], 0, K, K))
        return GaussianSmoothed(filtered.means, filtered.covariances, empty, empty,
                                filtered.log_marginal, filtered)
    chosen = _resolve_method(method, T)
    steady = _smooth_steady(filtered, A, Q) if chosen == "steady" else None
    if steady is not None:
        ms, Ps, J, cross = steady
        batch = tuple(ms.shape[1:-1])
        lead = (slice(None),) + (None,) * len(batch)
        K = ms.shape[-1]
        return GaussianSmoothed(
            ms.movedim(0, -2), Ps[lead].expand(T, *batch, K, K).movedim(0, -3),
            cross[lead].expand(T - 1, *batch, K, K).movedim(0, -3),
            J[lead].expand(T - 1, *batch, K, K).movedim(0, -3), filtered.log_marginal, filtered)
    if chosen in ("parallel", "steady"):
        ms, Ps, J = _smooth_parallel(filtered, A, Q)
    else:
        ms, Ps, J = _smooth_sequential(filtered, A, Q)
    cross = Ps[1:] @ J.mT  # Eq. 2.55: Cov[x_{t+1}, x_t | y_{1:T}] = Υ_{t+1|T} J_tᵀ
    return GaussianSmoothed(ms.movedim(0, -2), Ps.movedim(0, -3), cross.movedim(0, -3),
                            J.movedim(0, -3), filtered.log_marginal, filtered)


def kalman_smoother(
    params: LGSSMParams,
    y: Tensor,
    *,
    inputs: Tensor | None = None,
    mask: Tensor | None = None,
    diffuse: bool = False,
    method: str = "auto",
    validate: bool = True,
) -> GaussianSmoothed:
    """Kalman filter then RTS smoother: p̂(x_t | y_{1:T}) and the lag-one cross-covariances."""
    filt = kalman_filter(params, y, inputs=inputs, mask=mask, diffuse=diffuse, method=method,
                         validate=validate)
    return rts_smoother(params, filt, method=method)


def log_marginal(
    params: LGSSMParams,
    y: Tensor,
    *,
    inputs: Tensor | None = None,
    mask: Tensor | None = None,
    diffuse: bool = False,
    method: str = "auto",
) -> Tensor:
    """log p̂(y_{1:T}) = Σ_t log N(y_t; C x̄_{t|t−1} + c, C Υ_{t|t−1} Cᵀ + Σ_{y|x}) (Eq. 2.40),
    (*batch,). Differentiable in the parameters (for gradient-based maximum likelihood)."""
    return kalman_filter(params, y, inputs=inputs, mask=mask, diffuse=diffuse,
                         method=method).log_marginal


def _affine_scan(E: Tensor, g: Tensor) -> Tensor:
    """x_t = E_t x_{t−1} + g_t along dim 0 with x_0 = g_0 (E_0 ignored), by associative scan."""

    def fn(earlier: Elems, later: Elems) -> Elems:
        return later[0] @ earlier[0], _mv(later[0], earlier[1]) + later[1]

    return associative_scan(fn, (E, g))[1]


def _noise_factor(S: Tensor) -> Tensor:
    """A square root of a PSD covariance (Cholesky with dtype-relative jitter)."""
    return safe_cholesky(S)


def sample_lgssm(
    params: LGSSMParams,
    num_timesteps: int,
    *,
    batch_shape: tuple[int, ...] = (),
    inputs: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Draw (states (*batch, T, K), observations (*batch, T, M)) from the model."""
    params = check_params(params)
    T = check_positive_int(num_timesteps, "num_timesteps")
    K, M = params.state_dim, params.obs_dim
    A = params.dynamics
    dtype, device = A.dtype, A.device
    nb = len(batch_shape)
    zk = torch.randn((T, *batch_shape, K), generator=generator, dtype=dtype, device=device)
    zm = torch.randn((T, *batch_shape, M), generator=generator, dtype=dtype, device=device)
    lift = _expand_rank
    tv = params.time_varying
    assert params.dynamics_offset is not None and params.emission_offset is not None
    a = _lift_param(params, "dynamics_offset", nb, T)
    if "dynamics_offset" in tv:  # row t is a_{t−1}, row 0 unused
        a = torch.cat([torch.zeros_like(a[:1]), a], 0)
    u = a.expand(T, *batch_shape, K)
    yoff = _lift_param(params, "emission_offset", nb, T).expand(T, *batch_shape, M)
    if inputs is not None:
        ut = as_tensor(inputs, name="inputs", dtype=dtype, device=device,
                       detach=False).movedim(-2, 0)
        if ut.shape[0] != T:
            raise ValueError(f"inputs must have T={T} steps, got {ut.shape[0]}.")
        if params.dynamics_input is not None:
            Bu = _mv(lift(params.dynamics_input, nb, 2, "dynamics_input"), ut)
            u = u + torch.cat([torch.zeros_like(Bu[:1]), Bu[:-1]], 0)
        if params.emission_input is not None:
            yoff = yoff + _mv(lift(params.emission_input, nb, 2, "emission_input"), ut)
    x1 = lift(params.initial_mean, nb, 1, "initial_mean") + _mv(
        lift(_noise_factor(params.initial_covariance), nb, 2, "initial_covariance"), zk[0])
    g = torch.cat([x1.expand(1, *batch_shape, K),
                   u[1:] + _mv(lift(_noise_factor(params.dynamics_covariance), nb, 2,
                                    "dynamics_covariance"), zk[1:])],
                  0)
    if "dynamics" in tv:  # E_t = A_{t−1}; E_0 is ignored by the scan
        At = _lift_param(params, "dynamics", nb, T)
        E = torch.cat([torch.zeros_like(At[:1]), At], 0).expand(T, *batch_shape, K, K)
    else:
        E = (lift(A, nb, 2, "dynamics").expand(T, *batch_shape, K, K) if nb
             else A.expand(T, K, K))
    x = _affine_scan(E, g) if T > 1 else g
    yv = _mv(_lift_param(params, "emission", nb, T), x) + yoff + _mv(
        lift(_noise_factor(params.emission_covariance), nb, 2, "emission_covariance"), zm)
    if not (bool(torch.isfinite(x).all()) and bool(torch.isfinite(yv).all())):
        raise ValueError("the draw overflowed: the states grow without bound under these "
                         "parameters (an explosive dynamics A, or dynamics/emission scaled too "
                         "large); rescale them or draw fewer steps.")
    return x.movedim(0, -2), yv.movedim(0, -2)


def sample_posterior(
    params: LGSSMParams,
    smoothed_or_filtered: GaussianSmoothed | GaussianFiltered,
    num_samples: int,
    *,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Draw state paths from p̂(x_{1:T} | y_{1:T}) by forward filtering, backward sampling:
    x_T ~ p̂(x_T | y_{1:T}), x_t ~ p̂(x_t | x_{t+1}, y_{1:t}) = N(J_t x_{t+1} + g_t, L_t)
    (Eq. 2.53, the sequence posterior Π_t p̂(x_t | x_{t+1}, y)). → (num_samples, *batch, T, K).
    """
    filt = (smoothed_or_filtered.filtered if isinstance(smoothed_or_filtered, GaussianSmoothed)
            else smoothed_or_filtered)
    n = check_positive_int(num_samples, "num_samples")
    params = as_params(params)
    T, K = filt.means.shape[-2:]
    batch = tuple(filt.means.shape[:-2])
    nb = len(batch)
    dtype, device = filt.means.dtype, filt.means.device
    z = torch.randn((T, n, *batch, K), generator=generator, dtype=dtype, device=device)
    mf = filt.means.movedim(-2, 0)
    Pf = filt.covariances.movedim(-3, 0)
    xT = mf[-1] + _mv(safe_cholesky(Pf[-1]), z[-1])
    if T == 1:
        return xT[:, None].movedim(1, -2) if nb else xT[:, None]
    A = _lift_param(params, "dynamics", nb, T)
    Q = _expand_rank(params.dynamics_covariance, nb, 2)
    J, g, L, *_ = _smoother_elements(filt, A, Q)  # (T−1, *batch, ...)
    noise = g[:, None] + _mv(safe_cholesky(L)[:, None], z[:-1])  # (T−1, n, *batch, K)
    E = torch.cat([J[:, None].expand(T - 1, n, *J.shape[1:]),
                   torch.zeros_like(J[:1, None]).expand(1, n, *J.shape[1:])], 0)
    gg = torch.cat([noise, xT[None]], 0)
    x = _affine_scan(E.flip(0), gg.flip(0)).flip(0)  # (T, n, *batch, K)
    return x.movedim(0, -2)
