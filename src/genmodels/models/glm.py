"""Generalised linear models with a statsmodels-style face (book §5.1.2; CATALOGUE E5–E8).

    from genmodels.models.glm import GLM
    res = GLM(y, X, family="poisson", exposure=t).fit()
    print(res.summary()); res.params, res.bse, res.deviance, res.aic

The model is ``p̌(y_n | x_n) = h(y_n) exp{(y_n θ_n − A(θ_n)) a_n/φ}`` with mean
``μ_n = g⁻¹(x_nᵀd + offset_n)`` (Eq. 5.12 generalised to any link g). ``fit`` runs IRLS
(``genmodels.learning.irls``); the results hold the maximum-likelihood coefficients and, from
the Fisher information ``XᵀWX/φ``, their standard errors — computed, when first asked for,
from a QR factorisation of √W X (accuracy ∝ cond(X), not cond(X)²).

Conventions (matching statsmodels so that results compare one to one):

* ``scale`` φ is 1 for the binomial and Poisson families and Pearson's χ²/(N_w − rank)
  otherwise (the Gamma shape is 1/φ);
* ``llf`` is evaluated at that φ, except for the Gaussian family with the identity link where
  it is the profile log-likelihood at φ̂ = RSS/N_w;
* ``aic = −2 llf + 2 (df_model + 1)``, ``bic = −2 llf + log(N_w)(df_model + 1)`` with
  df_model = rank − (1 if the design has a constant column) — the scale is not counted;
* z statistics and normal p-values.

Binomial responses are 0/1 outcomes, proportions (with ``var_weights`` = trials), or an
(N, 2) array of (successes, failures) counts.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from genmodels._validation import (
    as_tensor,
    check_data_matrix,
    check_nonnegative_float,
    check_positive_int,
)
from genmodels.learning.irls import IRLSResult, irls, weighted_gram
from genmodels.models.glm_families import (
    Binomial,
    Family,
    Gaussian,
    Identity,
    Link,
    Log,
    get_family,
    get_link,
)


def _names(exog: Any, d: int) -> list[str]:
    cols = getattr(exog, "columns", None)
    if cols is not None:
        return [str(c) for c in cols]
    return [f"x{j + 1}" for j in range(d)]


def _check_coefficients(value: Any, name: str, X: Tensor) -> Tensor:
    """(D,) coefficients for the design X (N, D): finite, one per column, and giving a finite
    linear predictor X d (coefficients of 1e300 overflow it)."""
    d = as_tensor(value, name=name, dtype=X.dtype, device=X.device).reshape(-1)
    if d.shape[0] != X.shape[1]:
        raise ValueError(f"{name} must have one entry per column of exog ({X.shape[1]}), got "
                         f"{d.shape[0]}.")
    if not bool(torch.isfinite(X @ d).all()):
        raise ValueError(f"{name} is too large: the linear predictor exog @ {name} overflows.")
    return d


def _add_offset(eta: Tensor, offset: Any) -> Tensor:
    """η + offset, the offset (M,) one entry per predicted row (not broadcast from fewer)."""
    if offset is None:
        return eta
    off = as_tensor(offset, name="offset", dtype=eta.dtype, device=eta.device).reshape(-1)
    if off.shape[0] != eta.shape[0]:
        raise ValueError(f"offset has {off.shape[0]} entries but exog has {eta.shape[0]} rows.")
    return eta + off


def _finite_means(mu: Tensor, offset: Any) -> Tensor:
    """The predicted means, refused rather than returned as ±inf/NaN (an exog or offset so
    large that g⁻¹ overflows)."""
    if not bool(torch.isfinite(mu).all()):
        which = "exog or offset" if offset is not None else "exog"
        raise ValueError(f"the predicted means overflow: {which} too large for the fitted "
                         "coefficients (rescale the input).")
    return mu


class GLM:
    """A generalised linear model: response, design, family and link (nothing fitted yet).

    endog: (N,) response, or (N, 2) (successes, failures) for the binomial family.
    exog: (N, D) design (add a column of ones for an intercept, as in statsmodels).
    family: "gaussian" | "binomial" | "poisson" | "gamma" or a ``Family``.
    link: a ``Link`` or name; default the family's canonical link (log for Poisson, logit for
        binomial, inverse for Gamma, identity for Gaussian).
    offset: (N,) added to the linear predictor; exposure: (N,) > 0, adds log(exposure)
        (log link only).
    freq_weights: (N,) ≥ 0 replication counts (they count in N_w); var_weights: (N,) > 0
        divide the variance (Var = φV(μ)/w).
    """

    def __init__(
        self,
        endog: Any,
        exog: Any,
        family: str | Family = "gaussian",
        link: str | Link | None = None,
        *,
        offset: Any = None,
        exposure: Any = None,
        freq_weights: Any = None,
        var_weights: Any = None,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str | None = None,
    ) -> None:
        self.family = get_family(family)
        self.link = get_link(link) if link is not None else self.family.default_link()
        X = check_data_matrix(exog, name="exog", dtype=dtype, device=device)
        n, d = X.shape
        self.exog_names = _names(exog, d)
        y = as_tensor(endog, name="endog", dtype=dtype, device=device)
        self.endog_name = str(getattr(endog, "name", None) or "y")
        trials = None
        if y.dim() == 2 and y.shape[1] == 2:
            if not isinstance(self.family, Binomial):
                raise ValueError("a 2-column endog (successes, failures) needs the binomial "
                                 "family.")
            if bool((y < 0).any()):
                raise ValueError("binomial (successes, failures) counts must be non-negative.")
            trials = y.sum(1)
            if bool((trials <= 0).any()):
                raise ValueError("every binomial row needs at least one trial.")
            y = y[:, 0] / trials
        elif y.dim() == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.dim() != 1:
            raise ValueError(f"endog must have shape (N,) or (N, 2), got {tuple(y.shape)}.")
        if y.shape[0] != n:
            raise ValueError(f"endog has {y.shape[0]} rows but exog has {n}.")
        self.family.check_response(y)

        def vec(v: Any, name: str, positive: bool = False) -> Tensor | None:
            if v is None:
                return None
            t = as_tensor(v, name=name, dtype=dtype, device=device).reshape(-1)
            if t.shape[0] != n:
                raise ValueError(f"{name} has {t.shape[0]} entries but the data have {n} rows.")
            if positive and bool((t <= 0).any()):
                raise ValueError(f"{name} must be strictly positive.")
            if bool((t < 0).any()):
                raise ValueError(f"{name} must be non-negative.")
            return t

        off = None
        if offset is not None:
            off = as_tensor(offset, name="offset", dtype=dtype, device=device).reshape(-1)
            if off.shape[0] != n:
                raise ValueError(f"offset has {off.shape[0]} entries but the data have {n} rows.")
        exp_t = vec(exposure, "exposure", positive=True)
        if exp_t is not None:
            if not isinstance(self.link, Log):
                raise ValueError("exposure needs the log link (it adds log(exposure) to the "
                                 "linear predictor); use offset otherwise.")
            off = torch.log(exp_t) if off is None else off + torch.log(exp_t)
        self.freq_weights = vec(freq_weights, "freq_weights")
        self.var_weights = vec(var_weights, "var_weights", positive=True)
        one = torch.ones(n, dtype=dtype, device=X.device)
        fw = one if self.freq_weights is None else self.freq_weights
        vw = one if self.var_weights is None else self.var_weights
        self.exog, self.endog, self.offset, self.trials = X, y, off, trials
        # a_n: frequency × variance weights × binomial trials (IRLS prior weights).
        self._iweights = fw * vw
        self._prior = self._iweights * (trials if trials is not None else one)
        self._ll_var = vw  # weights inside log p (binomial trials enter through `trials`)
        self.nobs = n
        self.wnobs = float(fw.sum())
        self.k_constant = int(bool(((X - X[:1]).abs().amax(0) == 0).any() and
                                   (X[:1].abs().amax() > 0)))

    # ----------------------------------------------------------------------------------------
    def fit(
        self,
        *,
        max_iter: int = 100,
        tol: float = 1e-8,
        alpha: float = 0.0,
        start_params: Any = None,
        warn: bool = True,
    ) -> GLMResults:
        """Maximum likelihood (or, with alpha > 0, MAP under a N(0, φ/alpha) prior on the
        non-constant coefficients: minimises ½ deviance + ½ alpha ‖d‖²) by IRLS."""
        alpha = check_nonnegative_float(alpha, "alpha")
        max_iter = check_positive_int(max_iter, "max_iter")
        tol = check_nonnegative_float(tol, "tol")
        X = self.exog
        const = ((X - X[:1]).abs().amax(0) == 0) & (X[0] != 0)
        mask = (~const).to(X.dtype)
        start = None
        if start_params is not None:
            start = _check_coefficients(start_params, "start_params", X)
        r = irls(X, self.endog, self.family, self.link, prior_weights=self._prior,
                 offset=self.offset, l2=float(alpha), penalty_mask=mask, start=start,
                 max_iter=max_iter, tol=tol, column_names=self.exog_names, warn=warn)
        return GLMResults(self, r, alpha=float(alpha))

    # ----------------------------------------------------------------------------------------
    def null_mean(self) -> Tensor:
        """Fitted means of the intercept-only model (with the offset if any)."""
        y, a = self.endog, self._prior
        if self.offset is None:
            return torch.full_like(y, float((a * y).sum() / a.sum()))
        ones = torch.ones(self.nobs, 1, dtype=y.dtype, device=y.device)
        r = irls(ones, y, self.family, self.link, prior_weights=a, offset=self.offset,
                 tol=1e-12, warn=False)
        return r.mu


class GLMResults:
    """The fitted GLM. Tensors for vectors, floats for scalars.

    params (D,), bse (D,), tvalues (D,) z = params/bse, pvalues (D,), cov_params() (D, D),
    conf_int() (D, 2); fittedvalues / mu (N,); deviance, null_deviance, pearson_chi2, scale,
    llf, llnull, aic, bic, df_model, df_resid, n_iter, converged, separated.
    """

    def __init__(self, model: GLM, fit: IRLSResult, *, alpha: float = 0.0) -> None:
        self.model = model
        self.family = model.family
        self.link = model.link
        self.alpha = alpha
        self.params = fit.params
        self.mu = fit.mu
        self.fittedvalues = fit.mu
        self.eta = fit.eta
        self.deviance = fit.deviance
        self.n_iter = fit.n_iter
        self.converged = fit.converged
        self.separated = fit.separated
        self.history = fit.history
        self._working = fit.working_weights
        self.rank = model.exog.shape[1]  # full rank is enforced by the fit
        self.df_model = self.rank - model.k_constant
        self.df_resid = model.wnobs - self.rank
        y, mu = model.endog, fit.mu
        self.pearson_chi2 = float((model._prior * (y - mu).square()
                                   / model.family.variance(mu)).sum())
        if model.family.fixed_scale:
            self.scale = 1.0
        else:
            self.scale = self.pearson_chi2 / self.df_resid if self.df_resid > 0 else float("nan")
        self._cov: Tensor | None = None
        self._null_mu: Tensor | None = None

    # ----------------------------------------------------------------------------------------
    @property
    def nobs(self) -> float:
        return self.model.wnobs

    def _normalized_cov(self) -> Tensor:
        """(XᵀWX + αP)⁻¹ from R of the QR factorisation of [√W X; √(αP)] (no inverse of a
        squared matrix: R⁻¹ R⁻ᵀ by triangular solves)."""
        if self._cov is None:
            X = self.model.exog
            Z = X * self._working.sqrt()[:, None]
            if self.alpha > 0:
                const = ((X - X[:1]).abs().amax(0) == 0) & (X[0] != 0)
                Z = torch.cat([Z, torch.diag(math.sqrt(self.alpha) * (~const).to(X.dtype))])
            R = torch.linalg.qr(Z, mode="r").R
            eye = torch.eye(R.shape[0], dtype=R.dtype, device=R.device)
            Rinv = torch.linalg.solve_triangular(R, eye, upper=True)
            self._cov = Rinv @ Rinv.mT
        return self._cov

    def cov_params(self) -> Tensor:
        """φ (XᵀWX)⁻¹: the inverse Fisher information of the coefficients. (D, D)."""
        return self.scale * self._normalized_cov()

    @property
    def bse(self) -> Tensor:
        return self.cov_params().diagonal().sqrt()

    @property
    def tvalues(self) -> Tensor:
        return self.params / self.bse

    @property
    def pvalues(self) -> Tensor:
        """Two-sided normal p-values 2(1 − Φ(|z|)) = erfc(|z|/√2)."""
        return torch.special.erfc(self.tvalues.abs() / math.sqrt(2.0))

    def conf_int(self, alpha: float = 0.05) -> Tensor:
        q = float(torch.special.ndtri(torch.tensor(1.0 - alpha / 2.0, dtype=torch.float64)))
        return torch.stack([self.params - q * self.bse, self.params + q * self.bse], dim=1)

    # ----------------------------------------------------------------------------------------
    def _loglike(self, mu: Tensor, scale: float) -> float:
        m = self.model
        fw = m.freq_weights if m.freq_weights is not None else torch.ones_like(mu)
        ll = self.family.log_likelihood_obs(m.endog, mu, m._ll_var, scale, m.trials)
        return float((fw * ll).sum())

    def _llf_scale(self) -> float:
        m = self.model
        if isinstance(self.family, Gaussian) and isinstance(self.link, Identity):
            vw = m.var_weights if m.var_weights is not None else torch.ones_like(self.mu)
            fw = m.freq_weights if m.freq_weights is not None else torch.ones_like(self.mu)
            return float((fw * vw * (m.endog - self.mu).square()).sum()) / m.wnobs
        return self.scale

    @property
    def llf(self) -> float:
        """Log-likelihood at the fitted means (see the module docstring for φ)."""
        return self._loglike(self.mu, self._llf_scale())

    @property
    def null_mu(self) -> Tensor:
        if self._null_mu is None:
            self._null_mu = self.model.null_mean()
        return self._null_mu

    @property
    def null_deviance(self) -> float:
        m = self.model
        return float(self.family.deviance(m.endog, self.null_mu, m._prior))

    @property
    def llnull(self) -> float:
        return self._loglike(self.null_mu, self.scale)

    @property
    def aic(self) -> float:
        return -2.0 * self.llf + 2.0 * (self.df_model + 1)

    @property
    def bic(self) -> float:
        return -2.0 * self.llf + math.log(self.model.wnobs) * (self.df_model + 1)

    @property
    def pseudo_rsquared(self) -> float:
        """McFadden's 1 − llf/llnull."""
        return 1.0 - self.llf / self.llnull

    def predict(self, exog: Any = None, *, offset: Any = None, linear: bool = False) -> Tensor:
        """Predicted means g⁻¹(Xd + offset) (or the linear predictor). exog: (M, D)."""
        if exog is None:
            return self.eta if linear else self.mu
        X = check_data_matrix(exog, name="exog", n_features=self.params.shape[0],
                              dtype=self.params.dtype)
        eta = _add_offset(X @ self.params, offset)
        return eta if linear else _finite_means(self.link.inverse(eta), offset)

    # ----------------------------------------------------------------------------------------
    def summary(self) -> str:
        """A readable table: model facts, then one row per coefficient."""
        m = self.model
        top = [
            ("Dep. variable", m.endog_name), ("No. observations", f"{m.wnobs:g}"),
            ("Family", type(self.family).__name__), ("Df residuals", f"{self.df_resid:g}"),
            ("Link", type(self.link).__name__), ("Df model", f"{self.df_model}"),
            ("Method", "IRLS" + (f" + L2 (alpha={self.alpha:g})" if self.alpha else "")),
            ("Scale", f"{self.scale:.6g}"),
            ("Iterations", f"{self.n_iter}"), ("Log-likelihood", f"{self.llf:.6g}"),
            ("Converged", "yes" if self.converged else
             ("NO: separated" if self.separated else "NO")),
            ("Deviance", f"{self.deviance:.6g}"),
            ("Null deviance", f"{self.null_deviance:.6g}"),
            ("Pearson chi2", f"{self.pearson_chi2:.4g}"),
            ("AIC", f"{self.aic:.6g}"), ("BIC", f"{self.bic:.6g}"),
        ]
        width = 78
        lines = ["Generalized Linear Model Regression Results".center(width), "=" * width]
        for i in range(0, len(top), 2):
            (k1, v1), (k2, v2) = top[i], top[i + 1]
            lines.append(f"{k1 + ':':<18}{v1:>20}  {k2 + ':':<18}{v2:>18}")
        lines.append("=" * width)
        namew = max(12, *(len(n) for n in m.exog_names))
        lines.append(f"{'':<{namew}} {'coef':>10} {'std err':>10} {'z':>8} {'P>|z|':>8} "
                     f"{'[0.025':>10} {'0.975]':>10}")
        lines.append("-" * width)
        ci = self.conf_int()
        for j, name in enumerate(m.exog_names):
            lines.append(
                f"{name:<{namew}} {float(self.params[j]):>10.4g} {float(self.bse[j]):>10.4g} "
                f"{float(self.tvalues[j]):>8.3f} {float(self.pvalues[j]):>8.3f} "
                f"{float(ci[j, 0]):>10.4g} {float(ci[j, 1]):>10.4g}")
        lines.append("=" * width)
        if self.separated:
            lines.append("WARNING: (quasi-)complete separation: the coefficients are not "
                         "estimates.")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (f"GLMResults(family={type(self.family).__name__}, link={type(self.link).__name__},"
                f" deviance={self.deviance:.6g}, converged={self.converged})")

    # ----------------------------------------------------------------------------------------
    def to_model(self) -> FittedGLM:
        """The savable part of the fit (coefficients, covariance, summary numbers)."""
        return FittedGLM(
            family=self.family.name, link=self.link.name, exog_names=self.model.exog_names,
            scale=self.scale, deviance=self.deviance, llf=self.llf, aic=self.aic, bic=self.bic,
            converged=self.converged, params=self.params, cov_params=self.cov_params())


class FittedGLM:
    """A fitted GLM reduced to what prediction and reporting need; saves with
    ``genmodels.save`` (config JSON + safetensors) and loads with ``genmodels.load``.

    params: (D,); cov_params: (D, D).
    """

    def __init__(self, *, family: str, link: str, exog_names: list[str], scale: float,
                 deviance: float, llf: float, aic: float, bic: float, converged: bool,
                 params: Tensor, cov_params: Tensor) -> None:
        self.family = get_family(family)
        self.link = get_link(link)
        self.config: dict[str, Any] = dict(
            family=family, link=link, exog_names=list(exog_names), scale=scale,
            deviance=deviance, llf=llf, aic=aic, bic=bic, converged=converged)
        self.params = params
        self.cov_params = cov_params

    @property
    def bse(self) -> Tensor:
        return self.cov_params.diagonal().sqrt()

    def predict(self, exog: Any, *, offset: Any = None) -> Tensor:
        X = check_data_matrix(exog, name="exog", n_features=self.params.shape[0],
                              dtype=self.params.dtype)
        return _finite_means(self.link.inverse(_add_offset(X @ self.params, offset)), offset)

    # genmodels.io.Savable
    def get_config(self) -> dict[str, Any]:
        return dict(self.config)

    def state_tensors(self) -> dict[str, Tensor]:
        return {"params": self.params, "cov_params": self.cov_params}

    @classmethod
    def from_saved(cls, config: dict[str, Any], tensors: dict[str, Tensor]) -> FittedGLM:
        return cls(**config, params=tensors["params"], cov_params=tensors["cov_params"])


def fisher_information(results: GLMResults) -> Tensor:
    """XᵀWX/φ at the fitted coefficients (the inverse of ``cov_params`` without penalty)."""
    return weighted_gram(results.model.exog, results._working) / results.scale


__all__ = ["GLM", "FittedGLM", "GLMResults", "fisher_information"]
