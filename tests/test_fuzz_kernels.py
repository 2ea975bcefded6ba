"""Property-based fuzz of the pure inference kernels, the EM and gradient trainers, the
state-space faces, the GLM and the newer modules' public functions (hypothesis, derandomised;
the estimators are in ``test_fuzz_public_api.py``).

Each entry point of the table ``ENTRIES`` is called with valid arguments except one, which is
spoiled: NaN, ±inf, empty or zero-width, one dimension too few or too many, a wrong trailing
size, strings, an object array, complex numbers, magnitudes of 1e±300 — or, for a
hyper-parameter, 0, −1, 2.5, 'a', NaN, ±inf, a bool, None. The call must end in exactly one of
two ways: a ``ValueError`` / ``TypeError`` raised by genmodels' own code (not from inside NumPy
or torch) whose message names the spoiled argument, or a finite result. An illegal
hyper-parameter that is accepted anyway fails; so does a refusal of the same (valid) argument
given as a NumPy array or a list instead of a tensor.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from genmodels.inference import (
    hmm,
    kalman,
    laplace,
    lasso,
    mean_field,
    particle,
    partition,
    samplers,
)
from genmodels.learning.em import fit_em
from genmodels.learning.trainer import Trainer

CASE = settings(max_examples=3, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.differing_executors])


# --------------------------------------------------------------------------------- spoiling
ARRAY_KINDS = ("nan", "inf", "empty", "zero_width", "fewer_dims", "more_dims", "wrong_last",
               "strings", "object", "complex", "complex_tensor", "magnitude", "numpy", "list")
#: kinds whose value is the valid argument in another container: it must be accepted
EQUIVALENT = ("numpy", "list")
#: kinds no entry point may accept (a complex number cut to its real part is a silent wrong)
NOT_NUMBERS = ("strings", "object", "complex", "complex_tensor")
SCALAR_VALUES: tuple[Any, ...] = (0, -1, 2.5, "a", math.nan, math.inf, -math.inf, -1e-3, True,
                                  None, 10**30)


def _spoil_array(value: Any, kind: str, where: int, exp: int) -> Any:
    """``value`` (a tensor or array) spoiled as ``kind``."""
    a = np.array(value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else value)
    if kind == "numpy":
        return a
    if kind == "list":
        return a.tolist()
    if kind in ("nan", "inf", "magnitude") and a.size:
        a = a.astype(np.float64)
        flat = a.reshape(-1)
        i = where % flat.size
        if kind == "nan":
            flat[i] = np.nan
        elif kind == "inf":
            flat[i] = np.inf if where % 2 else -np.inf
        else:
            flat *= 10.0 ** exp
        return a
    if kind == "empty":
        return a[:0] if a.ndim else np.zeros(0)
    if kind == "zero_width":
        return a[..., :0] if a.ndim else np.zeros((1, 0))
    if kind == "fewer_dims":
        return a[..., 0] if a.ndim else a
    if kind == "more_dims":
        return a[None]
    if kind == "wrong_last":
        if a.ndim == 0:
            return np.stack([a, a])
        return np.concatenate([a, a[..., :1]], -1)
    if kind == "strings":
        return np.full(a.shape if a.ndim else (1,), "a")
    if kind == "object":
        out = a.astype(object)
        if out.size:
            out.reshape(-1)[where % out.size] = "x"
        return out
    if kind == "complex":
        return a + 1j
    if kind == "complex_tensor":  # a tensor's cast to real would drop the imaginary part
        return torch.as_tensor(a + 1j)
    return a


def _legal(value: Any, rule: str) -> bool:
    """Whether a scalar hyper-parameter value is legal for its rule."""
    real = isinstance(value, (int, float)) and not isinstance(value, bool)
    if rule == "bool":
        return isinstance(value, bool)
    if rule == "seed":
        return value is None or (isinstance(value, int) and not isinstance(value, bool)
                                 and value >= 0)
    if rule in ("pos_int", "nonneg_int"):
        return (isinstance(value, int) and not isinstance(value, bool)
                and value >= (1 if rule == "pos_int" else 0))
    if not real or not math.isfinite(value):
        return False
    if rule == "pos_float":
        return value > 0
    if rule == "nonneg_float":
        return value >= 0
    if rule == "unit":
        return 0 <= value <= 1
    raise AssertionError(rule)


# --------------------------------------------------------------------------------- property
def _raiser(e: BaseException) -> str:
    """The module whose code raised ``e`` (the innermost frame of its traceback)."""
    tb = e.__traceback__
    assert tb is not None
    while tb.tb_next is not None:
        tb = tb.tb_next
    return str(tb.tb_frame.f_globals.get("__name__", "?"))


def _finite(out: Any, path: str = "result") -> None:
    """Every floating number in ``out`` (tensors, arrays, floats, nested tuples/lists/dicts)
    is finite."""
    if isinstance(out, torch.Tensor):
        if out.is_floating_point() or out.is_complex():
            assert bool(torch.isfinite(out).all()), f"a silent NaN or ±inf in {path}"
    elif isinstance(out, np.ndarray):
        if out.dtype.kind in "fc":
            assert bool(np.isfinite(out).all()), f"a silent NaN or ±inf in {path}"
    elif isinstance(out, (float, np.floating)):
        assert math.isfinite(out), f"a silent NaN or ±inf in {path}"
    elif isinstance(out, dict):
        for k, v in out.items():
            _finite(v, f"{path}[{k!r}]")
    elif isinstance(out, (tuple, list)):
        for i, v in enumerate(out):
            _finite(v, f"{getattr(out, '_fields', [i] * (i + 1))[i]}" if hasattr(
                out, "_fields") else f"{path}[{i}]")


def _outcome(call: Callable[[], Any], names: tuple[str, ...], *, must_accept: bool = False,
             must_refuse: bool = False) -> None:
    """The property: a genmodels ValueError/TypeError naming one of ``names``, or a finite
    result (and, with ``must_accept`` / ``must_refuse``, exactly that outcome)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = call()
    except (ValueError, TypeError) as e:
        where = _raiser(e)
        assert where.startswith("genmodels"), (
            f"{type(e).__name__} raised from inside {where}, not by genmodels: {e}")
        assert any(n in str(e) for n in names), f"the refusal does not name {names[0]}: {e}"
        assert not must_accept, f"a valid {names[0]} refused: {e}"
        return
    assert not must_refuse, f"an illegal {names[0]} accepted"
    _finite(out)


# ------------------------------------------------------------------------------ the table
class Entry(NamedTuple):
    """One public entry point: ``call(**good())`` must succeed with finite results."""

    call: Callable[..., Any]
    good: Callable[[], dict[str, Any]]
    arrays: tuple[str, ...] = ()  # array arguments, spoiled with ARRAY_KINDS
    scalars: Mapping[str, str] = MappingProxyType({})  # hyper-parameter → rule of legal values
    names: Mapping[str, tuple[str, ...]] = MappingProxyType({})  # other words naming an argument
    equivalent: tuple[str, ...] = EQUIVALENT  # containers of a valid array it must accept
    kinds: tuple[str, ...] = ARRAY_KINDS  # the spoils that apply (shapes may be a model's)


_g = np.random.default_rng(0)


def _hmm_args(T: int = 6, K: int = 3) -> dict[str, Any]:
    r = np.random.default_rng(1)
    P = r.dirichlet(np.ones(K), K)
    return {"log_init": torch.log(torch.full((K,), 1.0 / K, dtype=torch.float64)),
            "log_trans": torch.as_tensor(np.log(P)),
            "log_lik": torch.as_tensor(r.normal(size=(2, T, K)))}


def _hmm_posterior(**kw: Any) -> Any:
    out = hmm.forward_backward(**kw)
    return out.smoothed_probs, out.log_marginal, out.expected_transitions


def _alpha_gamma(**kw: Any) -> Any:
    out = hmm.alpha_gamma(**kw)
    return out[1], out.log_marginal


def _viterbi(**kw: Any) -> Any:
    return hmm.viterbi(**kw).log_joint


def _hmm_sample(**kw: Any) -> Any:
    kw.setdefault("generator", torch.Generator().manual_seed(0))
    return hmm.sample_posterior(**kw).to(torch.float64)


_LGSSM_FIELDS = ("initial_mean", "initial_covariance", "dynamics", "dynamics_covariance",
                 "emission", "emission_covariance", "dynamics_offset", "emission_offset")


def _lgssm_fields() -> dict[str, Any]:
    K, M = 2, 3
    r = np.random.default_rng(2)
    C = r.normal(size=(M, K))
    return {"initial_mean": torch.zeros(K, dtype=torch.float64),
            "initial_covariance": torch.eye(K, dtype=torch.float64),
            "dynamics": torch.tensor([[0.9, 0.1], [-0.1, 0.8]], dtype=torch.float64),
            "dynamics_covariance": 0.1 * torch.eye(K, dtype=torch.float64),
            "emission": torch.as_tensor(C),
            "emission_covariance": 0.5 * torch.eye(M, dtype=torch.float64),
            "dynamics_offset": torch.zeros(K, dtype=torch.float64),
            "emission_offset": torch.zeros(M, dtype=torch.float64)}


def _kalman_args() -> dict[str, Any]:
    return {**_lgssm_fields(),
            "y": torch.as_tensor(np.random.default_rng(3).normal(size=(8, 3)))}


def _params(kw: dict[str, Any]) -> kalman.LGSSMParams:
    return kalman.LGSSMParams(**{f: kw.pop(f) for f in _LGSSM_FIELDS})


def _kalman_filter(**kw: Any) -> Any:
    p = _params(kw)
    out = kalman.kalman_filter(p, **kw)
    return out.means, out.covariances, out.log_marginal


def _kalman_smoother(**kw: Any) -> Any:
    p = _params(kw)
    out = kalman.kalman_smoother(p, **kw)
    return out.means, out.covariances, out.log_marginal


def _kalman_log_marginal(**kw: Any) -> Any:
    return kalman.log_marginal(_params(kw), **kw)


def _sample_lgssm(**kw: Any) -> Any:
    p = _params(kw)
    return kalman.sample_lgssm(p, kw.pop("num_timesteps"),
                               generator=torch.Generator().manual_seed(0))


def _particle_args() -> dict[str, Any]:
    return {"y": torch.as_tensor(np.random.default_rng(4).normal(size=(6, 1))),
            "num_particles": 16, "ess_threshold": 0.5}


def _particle_filter(**kw: Any) -> Any:
    N = torch.distributions.Normal

    def transition(x: torch.Tensor, t: int) -> Any:
        return torch.distributions.Independent(N(0.9 * x, 0.5 * torch.ones_like(x)), 1)

    def emission(x: torch.Tensor, t: int) -> Any:
        return torch.distributions.Independent(N(x, torch.ones_like(x)), 1)

    initial = torch.distributions.Independent(
        N(torch.zeros(1, dtype=torch.float64), torch.ones(1, dtype=torch.float64)), 1)
    out = particle.particle_filter(kw.pop("y"), initial, transition, emission,
                                   generator=torch.Generator().manual_seed(0), **kw)
    return out.log_marginal, out.mean()


def _resample(**kw: Any) -> Any:
    return particle.systematic_resample(kw["log_weights"], kw["n"],
                                        torch.Generator().manual_seed(0)).to(torch.float64)


def _log_partition(**kw: Any) -> Any:
    return partition.log_partition_bruteforce([((0, 1), kw["table"]), ((1,), kw["unary"])],
                                              [2, 3])


def _quadratic(x: torch.Tensor) -> torch.Tensor:
    """E(x) = ½‖x − 1‖² + ½ log τ per row: a normalised Gaussian joint."""
    return 0.5 * ((x - 1.0) ** 2).sum(-1) + 0.5 * x.shape[-1] * math.log(2 * math.pi)


def _laplace(**kw: Any) -> Any:
    out = laplace.laplace_approximation(_quadratic, **kw)
    return out.mode, out.log_marginal


def _newton(**kw: Any) -> Any:
    return laplace.newton_mode(_quadratic, **kw)


def _force(x: torch.Tensor) -> torch.Tensor:
    return -x


def _langevin(**kw: Any) -> Any:
    return samplers.langevin(_force, generator=torch.Generator().manual_seed(0), **kw)


def _annealed(**kw: Any) -> Any:
    return samplers.annealed_langevin(lambda x, s: -x / (1 + s * s),
                                      generator=torch.Generator().manual_seed(0), **kw)


def _ddim_levels(**kw: Any) -> Any:
    return [float(v) for v in samplers.ddim_levels(**kw)]


def _vbgmm(**kw: Any) -> Any:
    prior = mean_field.VBGMMPrior("dirichlet_distribution", kw.pop("weight_concentration"),
                                  kw.pop("mean_precision"), kw.pop("mean"),
                                  kw.pop("degrees_of_freedom"), kw.pop("covariance"))
    fit = mean_field.vbgmm_cavi(kw.pop("y"), prior, "full", **kw)
    return fit.lower_bounds, fit.log_resp.exp()


def _vbgmm_args() -> dict[str, Any]:
    r = np.random.default_rng(5)
    y = torch.as_tensor(np.concatenate([r.normal(-2, 1, (20, 2)), r.normal(2, 1, (20, 2))]))
    resp = torch.as_tensor(np.stack([np.r_[np.ones(20), np.zeros(20)],
                                     np.r_[np.zeros(20), np.ones(20)]], 1))
    return {"y": y, "resp0": resp, "weight_concentration": 1.0, "mean_precision": 1.0,
            "mean": torch.zeros(2, dtype=torch.float64), "degrees_of_freedom": 2.0,
            "covariance": torch.eye(2, dtype=torch.float64), "max_iter": 5, "tol": 1e-3,
            "reg_covar": 1e-6}


def _blr_args() -> dict[str, Any]:
    r = np.random.default_rng(6)
    X = torch.as_tensor(r.normal(size=(30, 3)))
    return {"X": X, "y": X @ torch.tensor([1.0, -1.0, 0.5], dtype=torch.float64),
            "max_iter": 20, "tol": 1e-8}


def _blr(**kw: Any) -> Any:
    fit = mean_field.bayesian_linear_regression(**kw)
    return fit.mean, fit.covariance, fit.elbo_history


def _lasso(**kw: Any) -> Any:
    return lasso.lasso(**kw).codes


def _lasso_args() -> dict[str, Any]:
    r = np.random.default_rng(7)
    C = torch.as_tensor(r.normal(size=(4, 6)))
    return {"Y": torch.as_tensor(r.normal(size=(5, 4))), "C": C, "lam": 1.0, "alpha": 0.5,
            "tol": 1e-8, "max_iter": 200}


def _gmm_model() -> Any:
    from genmodels.models.covariance import GaussianEmission
    from genmodels.models.mixture import MixtureModel

    return MixtureModel(torch.full((2,), 0.5, dtype=torch.float64),
                        GaussianEmission(2, 2, "diag").to(torch.float64), init="random")


def _fit_em(**kw: Any) -> Any:
    res = fit_em(_gmm_model(), **kw)
    return res.log_likelihood


def _fit_em_args() -> dict[str, Any]:
    r = np.random.default_rng(8)
    return {"data": torch.as_tensor(np.concatenate([r.normal(-2, 1, (20, 2)),
                                                    r.normal(2, 1, (20, 2))])),
            "n_init": 1, "seed": 0, "max_iter": 3, "tol": 1e-3}


class _Gauss(torch.nn.Module):
    """A learnable-mean unit Gaussian: the smallest LossModel."""

    def __init__(self) -> None:
        super().__init__()
        self.mu = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))

    def loss(self, batch: torch.Tensor, generator: Any = None) -> torch.Tensor:
        return 0.5 * ((batch - self.mu) ** 2).sum(-1).mean()


def _trainer(**kw: Any) -> Any:
    data = kw.pop("data")
    model = _Gauss()
    res = Trainer(model, progress=False, **kw).fit(data)
    return res.history["train_loss"], model.mu.detach()


def _trainer_args() -> dict[str, Any]:
    return {"data": torch.as_tensor(np.random.default_rng(9).normal(size=(16, 2))),
            "epochs": 2, "batch_size": 8, "lr": 1e-2, "seed": 0, "min_delta": 0.0}


_PYKALMAN_FIELDS = ("transition_matrices", "observation_matrices", "transition_covariance",
                    "observation_covariance", "transition_offsets", "observation_offsets",
                    "initial_state_mean", "initial_state_covariance")


def _pykalman_args() -> dict[str, Any]:
    f = _lgssm_fields()
    return {"X": np.random.default_rng(10).normal(size=(8, 3)),
            "transition_matrices": f["dynamics"], "observation_matrices": f["emission"],
            "transition_covariance": f["dynamics_covariance"],
            "observation_covariance": f["emission_covariance"],
            "transition_offsets": f["dynamics_offset"],
            "observation_offsets": f["emission_offset"],
            "initial_state_mean": f["initial_mean"],
            "initial_state_covariance": f["initial_covariance"]}


def _kalman_face(method: str) -> Callable[..., Any]:
    """``KalmanFilter(**params).method(X, ...)``: the pykalman face."""
    def call(**kw: Any) -> Any:
        from genmodels.estimators.kalman import KalmanFilter

        X = kw.pop("X")
        other = {k: kw.pop(k) for k in ("n_iter",) if k in kw}
        kf = KalmanFilter(**kw)
        if method == "em":
            kf.em(X, **other)
            return [getattr(kf, f) for f in _PYKALMAN_FIELDS], kf.loglikelihood(X)
        return getattr(kf, method)(X)
    return call


def _kalman_sample(**kw: Any) -> Any:
    from genmodels.estimators.kalman import KalmanFilter

    n = kw.pop("n_timesteps")
    kw.pop("X")
    states, obs = KalmanFilter(**kw).sample(n, random_state=0)
    return states, np.asarray(obs)


def _lgssm_model(**kw: Any) -> Any:
    from genmodels.models.lgssm import LinearGaussianSSM

    model = LinearGaussianSSM(kw.pop("state_dim"), kw.pop("obs_dim"),
                              reg_covar=kw.pop("reg_covar"))
    model.set_params(**{f: kw.pop(f) for f in _LGSSM_FIELDS})
    return model, kw


def _lgssm_args() -> dict[str, Any]:
    return {**_kalman_args(), "state_dim": 2, "obs_dim": 3, "reg_covar": 0.0, "max_iter": 3,
            "tol": 1e-6}


def _lgssm_fit(**kw: Any) -> Any:
    model, kw = _lgssm_model(**kw)
    res = model.fit(kw.pop("y"), **kw)
    return res.log_likelihood, [getattr(model, f) for f in _LGSSM_FIELDS]


def _lgssm_log_marginal(**kw: Any) -> Any:
    model, kw = _lgssm_model(**kw)
    return model.log_marginal(kw.pop("y"))


def _glm_data() -> tuple[torch.Tensor, torch.Tensor]:
    r = np.random.default_rng(11)
    X = np.c_[np.ones(30), r.normal(size=30)]
    y = r.poisson(np.exp(0.3 + 0.5 * X[:, 1]))
    return torch.as_tensor(X), torch.as_tensor(y, dtype=torch.float64)


def _glm_fit(**kw: Any) -> Any:
    from genmodels.models.glm import GLM

    X, y = _glm_data()
    res = GLM(y, X, "poisson").fit(**kw)
    return res.params, res.llf, res.deviance


def _glm_fit_args() -> dict[str, Any]:
    return {"start_params": torch.tensor([0.1, 0.1], dtype=torch.float64), "max_iter": 50,
            "tol": 1e-8, "alpha": 0.0}


def _glm_predict(**kw: Any) -> Any:
    from genmodels.models.glm import GLM

    X, y = _glm_data()
    return GLM(y, X, "poisson").fit().predict(kw["exog"], offset=kw["offset"])


def _glm_predict_args() -> dict[str, Any]:
    X, _ = _glm_data()
    return {"exog": X[:5], "offset": torch.linspace(-1.0, 1.0, 5, dtype=torch.float64)}


ENTRIES: dict[str, Entry] = {
    "hmm.forward_filter": Entry(lambda **k: hmm.forward_filter(**k).log_marginal, _hmm_args,
                                ("log_init", "log_trans", "log_lik")),
    "hmm.forward_backward": Entry(_hmm_posterior, _hmm_args,
                                  ("log_init", "log_trans", "log_lik")),
    "hmm.hmm_log_marginal": Entry(hmm.hmm_log_marginal, _hmm_args,
                                  ("log_init", "log_trans", "log_lik")),
    "hmm.alpha_gamma": Entry(_alpha_gamma, _hmm_args, ("log_init", "log_trans", "log_lik")),
    "hmm.viterbi": Entry(_viterbi, _hmm_args, ("log_init", "log_trans", "log_lik")),
    "hmm.sample_posterior": Entry(_hmm_sample, lambda: {**_hmm_args(), "num_samples": 2},
                                  ("log_lik",), {"num_samples": "pos_int"}),
    "kalman.kalman_filter": Entry(_kalman_filter, _kalman_args, ("y", *_LGSSM_FIELDS)),
    "kalman.kalman_smoother": Entry(_kalman_smoother, _kalman_args, ("y", *_LGSSM_FIELDS)),
    "kalman.log_marginal": Entry(_kalman_log_marginal, _kalman_args, ("y", "dynamics")),
    "kalman.sample_lgssm": Entry(_sample_lgssm, lambda: {**_lgssm_fields(), "num_timesteps": 5},
                                 ("dynamics", "emission_covariance"),
                                 {"num_timesteps": "pos_int"}),
    "particle.particle_filter": Entry(_particle_filter, _particle_args, ("y",),
                                      {"num_particles": "pos_int", "ess_threshold": "unit"}),
    "particle.systematic_resample": Entry(
        _resample, lambda: {"log_weights": torch.log(torch.tensor([0.2, 0.3, 0.5],
                                                                  dtype=torch.float64)),
                            "n": 4}, ("log_weights",), {"n": "pos_int"}),
    "partition.log_partition_bruteforce": Entry(
        _log_partition, lambda: {"table": torch.rand(2, 3, dtype=torch.float64,
                                                     generator=torch.Generator().manual_seed(0))
                                 + 0.1,
                                 "unary": torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)},
        ("table", "unary"), names={"table": ("potentials",), "unary": ("potentials",)}),
    "laplace.laplace_approximation": Entry(
        _laplace, lambda: {"x0": torch.zeros(3, 2, dtype=torch.float64), "tol": 1e-10,
                           "max_iter": 20}, ("x0",), {"tol": "nonneg_float",
                                                      "max_iter": "pos_int"}),
    "laplace.newton_mode": Entry(
        _newton, lambda: {"x0": torch.zeros(3, 2, dtype=torch.float64), "tol": 1e-10,
                          "max_iter": 20}, ("x0",), {"tol": "nonneg_float",
                                                     "max_iter": "pos_int"}),
    "samplers.langevin": Entry(
        _langevin, lambda: {"x": torch.zeros(4, 2, dtype=torch.float64), "step_size": 0.1,
                            "n_steps": 3}, ("x",), {"step_size": "pos_float",
                                                    "n_steps": "pos_int"}),
    "samplers.annealed_langevin": Entry(
        _annealed, lambda: {"x": torch.zeros(4, 2, dtype=torch.float64),
                            "sigmas": torch.tensor([1.0, 0.5, 0.1], dtype=torch.float64),
                            "step_size": 1e-3, "n_steps_each": 2},
        ("x", "sigmas"), {"step_size": "pos_float", "n_steps_each": "pos_int"}),
    "samplers.ddim_levels": Entry(_ddim_levels, lambda: {"L": 10, "steps": 3}, (),
                                  {"L": "pos_int", "steps": "pos_int"}),
    "mean_field.vbgmm_cavi": Entry(
        _vbgmm, _vbgmm_args, ("y", "resp0", "mean", "covariance"),
        {"weight_concentration": "pos_float", "mean_precision": "pos_float",
         "degrees_of_freedom": "pos_float", "max_iter": "pos_int", "tol": "nonneg_float",
         "reg_covar": "nonneg_float"}),
    "mean_field.bayesian_linear_regression": Entry(
        _blr, _blr_args, ("X", "y"), {"max_iter": "pos_int", "tol": "nonneg_float"}),
    "lasso.lasso": Entry(_lasso, _lasso_args, ("Y", "C"),
                         {"lam": "pos_float", "tol": "nonneg_float", "max_iter": "pos_int"}),
    # a list is a model's own container for fit_em (e.g. an HMM's list of sequences)
    "em.fit_em": Entry(_fit_em, _fit_em_args, ("data",),
                       {"n_init": "pos_int", "seed": "seed", "max_iter": "pos_int",
                        "tol": "nonneg_float"}, equivalent=("numpy",)),
    "trainer.Trainer.fit": Entry(_trainer, _trainer_args, ("data",),
                                 {"epochs": "pos_int", "batch_size": "pos_int",
                                  "lr": "pos_float", "seed": "nonneg_int",
                                  "min_delta": "nonneg_float"},
                                 # the shape of a batch is the model's contract, not the trainer's
                                 kinds=("nan", "inf", "empty", "strings", "object", "complex",
                                        "complex_tensor", "magnitude", "numpy", "list")),
    # the GLM's start and prediction offset (the design and response: the public-API fuzz)
    "GLM.fit": Entry(_glm_fit, _glm_fit_args, ("start_params",),
                     {"max_iter": "pos_int", "tol": "nonneg_float", "alpha": "nonneg_float"}),
    "GLMResults.predict": Entry(_glm_predict, _glm_predict_args, ("exog", "offset")),
}


#: the pykalman face and the state-space model, every parameter spoiled.
STATE_SPACE: dict[str, Entry] = dict({
    "KalmanFilter.filter": Entry(_kalman_face("filter"), _pykalman_args,
                                 ("X", *_PYKALMAN_FIELDS)),
    "KalmanFilter.smooth": Entry(_kalman_face("smooth"), _pykalman_args, ("X",)),
    "KalmanFilter.loglikelihood": Entry(_kalman_face("loglikelihood"), _pykalman_args, ("X",)),
    "KalmanFilter.em": Entry(_kalman_face("em"), lambda: {**_pykalman_args(), "n_iter": 2},
                             ("X",), {"n_iter": "pos_int"}),
    "KalmanFilter.sample": Entry(_kalman_sample, lambda: {**_pykalman_args(), "n_timesteps": 4},
                                 ("transition_matrices", "observation_covariance"),
                                 {"n_timesteps": "pos_int"}),
    # (its parameters' conversions are the ones KalmanFilter.filter spoils one by one)
    "LinearGaussianSSM.fit": Entry(_lgssm_fit, _lgssm_args, ("y", "dynamics",
                                                             "emission_covariance"),
                                   {"state_dim": "pos_int", "obs_dim": "pos_int",
                                    "reg_covar": "nonneg_float", "max_iter": "pos_int",
                                    "tol": "nonneg_float"}),
    "LinearGaussianSSM.log_marginal": Entry(_lgssm_log_marginal, _lgssm_args, ("y",)),
})
ENTRIES.update(STATE_SPACE)


# ------------------------------------------------------------------------------ the tests
def _cases() -> list[tuple[str, str, str]]:
    return [(name, arg, kind) for name, e in ENTRIES.items() for arg in e.arrays
            for kind in e.kinds]


@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_valid_arguments_give_a_finite_result(name):
    e = ENTRIES[name]
    _outcome(lambda: e.call(**e.good()), ("",), must_accept=True)


def _check_spoiled(name: str, arg: str, kind: str, where: int, exp: int) -> None:
    e = ENTRIES[name]
    kw = e.good()
    kw[arg] = _spoil_array(kw[arg], kind, where, exp)
    _outcome(lambda: e.call(**kw), (arg, *e.names.get(arg, ())),
             must_accept=kind in e.equivalent, must_refuse=kind in NOT_NUMBERS)


#: Cases per test function. hypothesis' pytest plugin wraps a parametrized @given test's
#: settings in a new child of the previous ones at every invocation (hypothesis 6.170,
#: _hypothesis_pytestplugin), so one function with ~950 invocations in a process overflows
#: the stack walking that chain (RecursionError in settings.database): the cases are split.
SPOIL_CHUNK = 300


def _spoil_test(cases: list[tuple[str, str, str]]) -> Any:
    @pytest.mark.parametrize(("name", "arg", "kind"), cases)
    @CASE
    @given(where=st.integers(0, 1000), exp=st.sampled_from([-300, -150, 150, 300]))
    def test(name: str, arg: str, kind: str, where: int, exp: int) -> None:
        _check_spoiled(name, arg, kind, where, exp)

    return test


_ALL_CASES = _cases()
for _i in range(0, len(_ALL_CASES), SPOIL_CHUNK):
    _name = f"test_spoiled_arrays_are_refused_by_name_or_give_a_finite_result_{_i // SPOIL_CHUNK}"
    globals()[_name] = _spoil_test(_ALL_CASES[_i: _i + SPOIL_CHUNK])


def _scalar_cases() -> list[tuple[str, str, Any]]:
    return [(name, p, v) for name, e in ENTRIES.items() for p in e.scalars
            for v in SCALAR_VALUES]


@pytest.mark.parametrize(("name", "param", "value"), _scalar_cases())
def test_hyperparameters_are_refused_by_name_unless_legal(name, param, value):
    e = ENTRIES[name]
    kw = e.good()
    kw[param] = value
    legal = _legal(value, e.scalars[param])
    if legal and value == 10**30:
        return  # legal but absurd (10^30 iterations): not run
    _outcome(lambda: e.call(**kw), (param, *e.names.get(param, ())), must_refuse=not legal)


def test_the_property_catches_what_it_must():
    """The property itself can fail: a silent NaN, an exception from NumPy, a refusal that
    does not name the argument, an illegal value accepted, a valid one refused."""
    with pytest.raises(AssertionError, match="silent NaN"):
        _outcome(lambda: (torch.ones(2), {"a": [np.array([np.nan])]}), ("x",))
    with pytest.raises(AssertionError, match="not by genmodels"):
        _outcome(lambda: np.asarray(["a"]).astype(float), ("x",))
    with pytest.raises(AssertionError, match="does not name"):
        _outcome(lambda: hmm.forward_filter(torch.zeros(2), torch.zeros(2, 2), [[0.0, 0.0]]),
                 ("nothing_by_this_name",))
    with pytest.raises(AssertionError, match="accepted"):
        _outcome(lambda: 1.0, ("x",), must_refuse=True)
    with pytest.raises(AssertionError, match="refused"):
        _outcome(lambda: hmm.forward_filter(torch.zeros(2), torch.zeros(2, 2), [[0.0, 0.0]]),
                 ("log_init",), must_accept=True)
