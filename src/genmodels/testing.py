"""A contract suite that any genmodels model — or a user's own — can run.

    from genmodels.testing import check_model
    report = check_model(lambda dtype: MyModel(...).to(dtype), data)
    print(report)

The checks, each also callable on its own:

* ``check_shapes``: ``log_marginal`` maps (N, D) to (N,), treats rows independently, and (with
  ``batch_dims``) maps (B, N, D) to (B, N); ``sample(n)`` gives n observations of D dims.
* ``check_dtypes``: float32 and float64 models agree to float32 precision and return their dtype.
* ``check_devices``: every available device (CPU, and CUDA when present) gives the CPU result.
* ``check_sample_log_prob``: samples agree with the log-density. For continuous data by Stein's
  identity — under p, E[∇_y log p(Y)] = 0 and E[∇_y log p(Y) Yᵀ] = −I (integration by parts) —
  checked entry-wise within ``z`` standard errors; this catches a sampler and a density that
  disagree about location or scale. For discrete data, sampled frequencies against exp(log p).
* ``check_em_monotone``: EM from the model's current state never decreases the log-likelihood.
* ``check_save_load``: ``genmodels.save``/``genmodels.load`` reproduce ``log_marginal`` exactly.

Models are expected to follow the book's vocabulary: ``log_marginal(y)`` (or ``log_prob``),
``sample(n, generator=...)`` (returning the observations, or a (latents, observations) pair),
and for EM ``expected_stats``/``maximize``.

Two more kinds of model have their own entry points, with the same checks adapted:

* ``check_sequence_model`` — models of whole sequences (HMMs, state-space models):
  ``log_marginal(y, lengths=...)`` maps a padded (B, T, D) batch to (B,), and
  ``sample(num_steps, num_sequences, generator=...)`` draws (B, T, D). Beyond the checks above
  (applied to each sequence as one draw of T·D numbers): a padded ragged batch must score each
  sequence as if it were alone (``check_ragged``).
* ``check_bound_model`` — models whose marginal is only bounded or estimated (VAEs):
  ``log_joint(x, y)``, ``elbo(y, n_samples, generator)`` and ``iwae_bound(y, k, generator)``.
  ``check_bounds``: the importance-weighted bound rises with k (within standard errors), starts
  at the ELBO, and stays below the exact log-marginal where an oracle is given; the sampler is
  checked against ``log_joint`` by Stein's identity in y at the sampled latents.
"""

from __future__ import annotations

import itertools
import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

ModelFactory = Callable[[torch.dtype], Any]


@dataclass
class ContractReport:
    """Which checks passed and which did not apply (with the reason)."""

    passed: list[str] = field(default_factory=list)
    not_applicable: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        lines = [f"passed: {', '.join(self.passed) or 'none'}"]
        lines += [f"not applicable: {k} ({v})" for k, v in self.not_applicable.items()]
        return "\n".join(lines)


def _observations(out: Any) -> Tensor:
    return out[1] if isinstance(out, tuple) else out


def _sample(model: Any, n: int, seed: int) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return _observations(model.sample(n, generator=g))


def _log_density(model: Any) -> Callable[..., Tensor]:
    """The model's log-density of observations: ``log_marginal``, or ``log_prob``."""
    fn = getattr(model, "log_marginal", None) or getattr(model, "log_prob", None)
    if fn is None:
        raise AttributeError(f"{type(model).__name__} has neither log_marginal nor log_prob")
    return fn


def check_shapes(model: Any, data: Tensor, *, batch_dims: bool = True) -> None:
    """Shapes of ``log_marginal`` and ``sample``, and row independence."""
    n, d = data.shape
    log_marginal = _log_density(model)
    lp = log_marginal(data)
    assert lp.shape == (n,), f"log_marginal of (N, D) data must be (N,), got {tuple(lp.shape)}"
    assert torch.isfinite(lp).all(), "log_marginal returned non-finite values on valid data"
    half = log_marginal(data[: n // 2])
    torch.testing.assert_close(half, lp[: n // 2], msg="rows are not evaluated independently")
    if batch_dims:
        m = 2 * (n // 2)
        batched = log_marginal(data[:m].reshape(2, m // 2, d))
        assert batched.shape == (2, m // 2), f"(B, N, D) must map to (B, N), got {batched.shape}"
        torch.testing.assert_close(batched.reshape(m), lp[:m], msg="batched evaluation differs")
    y = _sample(model, 7, seed=0)
    assert y.shape[0] == 7 and y.shape[-1] == d, f"sample(7) gave shape {tuple(y.shape)}"


def check_dtypes(factory: ModelFactory, data: Tensor) -> None:
    """float32 and float64 versions agree (to float32 precision) and keep their dtype."""
    out: dict[torch.dtype, Tensor] = {}
    for dtype in (torch.float32, torch.float64):
        lp = _log_density(factory(dtype))(data.to(dtype))
        assert lp.dtype == dtype, f"log_marginal of a {dtype} model returned {lp.dtype}"
        out[dtype] = lp
    scale = out[torch.float64].abs().mean().item() + 1.0
    torch.testing.assert_close(out[torch.float32].double(), out[torch.float64],
                               rtol=1e-4, atol=1e-4 * scale)


def available_devices() -> list[str]:
    devices = ["cpu"]
    if torch.cuda.is_available():
        devices.append("cuda")
    return devices


def check_devices(factory: ModelFactory, data: Tensor) -> list[str]:
    """Every available device gives the CPU result; returns the devices checked."""
    ref = _log_density(factory(torch.float64))(data)
    devices = available_devices()
    for dev in devices[1:]:
        lp = _log_density(factory(torch.float64).to(dev))(data.to(dev))
        assert lp.device.type == dev
        torch.testing.assert_close(lp.cpu(), ref, rtol=1e-6, atol=1e-6)
    return devices


def check_sample_log_prob(model: Any, *, n: int = 20000, z: float = 6.0,
                          discrete: bool = False, seed: int = 0) -> None:
    """Samples agree with ``log_marginal`` (Stein's identity, or frequencies for discrete data)."""
    y = _sample(model, n, seed).detach()
    log_marginal = _log_density(model)
    if discrete:
        _check_frequencies(log_marginal, y, z)
        return
    y = y.clone().requires_grad_(True)
    (score,) = torch.autograd.grad(log_marginal(y).sum(), y)  # ∇_y log p(y): (n, D)
    _check_stein(y.detach(), score, z)


def _check_stein(y: Tensor, score: Tensor, z: float) -> None:
    """Stein's identity E[∇log p(Y) (1, Yᵀ)] = (0, −I) on draws y (n, D) with scores (n, D)."""
    n, d = y.shape
    terms = torch.cat([score, (score[:, :, None] * y[:, None, :]).reshape(n, d * d)], dim=1)
    target = torch.cat([torch.zeros(d, dtype=y.dtype), -torch.eye(d, dtype=y.dtype).reshape(-1)])
    mean = terms.mean(0)
    se = terms.std(0) / math.sqrt(n)
    bad = (mean - target).abs() > z * se + 1e-8
    assert not bad.any(), (
        "samples disagree with log_marginal by Stein's identity E[∇log p(Y) (1, Yᵀ)] = (0, −I): "
        f"worst entry {(mean - target).abs().max():.3g} vs {z} standard errors {se.max():.3g}"
    )


def _check_frequencies(log_marginal: Callable[[Tensor], Tensor], y: Tensor, z: float) -> None:
    values, counts = torch.unique(y, dim=0, return_counts=True)
    p = log_marginal(values).detach().exp()
    assert float(p.sum()) <= 1.0 + 1e-8, "probabilities of distinct values sum above one"
    n = y.shape[0]
    freq = counts.to(p.dtype) / n
    se = torch.sqrt(p * (1 - p) / n) + 1.0 / n
    worst = ((freq - p).abs() / se).max()
    assert worst < z, f"a sampled frequency is {worst:.1f} standard errors from exp(log_marginal)"


def check_em_monotone(model: Any, data: Tensor, *, n_iter: int = 10, rtol: float = 1e-10
                      ) -> list[float]:
    """Step EM one iteration at a time; the log-likelihood must never decrease."""
    from genmodels.learning.em import run_em

    result = run_em(model, [data], max_iter=n_iter, tol=0.0, warn=False)
    ll = result.log_likelihood
    for i in range(1, len(ll)):
        assert ll[i] >= ll[i - 1] - rtol * (abs(ll[i - 1]) + 1.0), (
            f"EM decreased the log-likelihood at iteration {i + 1}: {ll[i - 1]} → {ll[i]}"
        )
    return ll


def check_save_load(model: Any, data: Tensor) -> None:
    """``genmodels.save`` then ``genmodels.load`` gives the same log-density."""
    from genmodels.io import load, save

    with tempfile.TemporaryDirectory() as tmp:
        save(model, tmp)
        restored = load(tmp, allow_external=True)
    torch.testing.assert_close(_log_density(restored)(data), _log_density(model)(data),
                               rtol=0, atol=0)


def check_model(factory: ModelFactory, data: Tensor, *, batch_dims: bool = True,
                discrete: bool = False, em: bool = True, n_samples: int = 20000
                ) -> ContractReport:
    """Run every applicable check on ``factory(torch.float64)``; raises AssertionError on the
    first failure and returns a ``ContractReport`` otherwise.

    factory: dtype → a fresh model with fixed parameters (the same for every call).
    data: (N, D) float64 observations the model assigns finite log-density.
    """
    report = ContractReport()
    model = factory(torch.float64)
    check_shapes(model, data, batch_dims=batch_dims)
    report.passed.append("shapes")
    check_dtypes(factory, data)
    report.passed.append("dtypes")
    report.passed.append("devices[" + ",".join(check_devices(factory, data)) + "]")
    check_sample_log_prob(model, n=n_samples, discrete=discrete)
    report.passed.append("sample_log_prob")
    if em and hasattr(model, "expected_stats") and hasattr(model, "maximize"):
        check_em_monotone(factory(torch.float64), data)
        report.passed.append("em_monotone")
    else:
        report.not_applicable["em_monotone"] = "no expected_stats/maximize (not an EM model)"
    if hasattr(model, "get_config") and hasattr(model, "state_tensors"):
        check_save_load(model, data)
        report.passed.append("save_load")
    else:
        report.not_applicable["save_load"] = "model does not implement genmodels.io.Savable"
    return report


# -- models of whole sequences ------------------------------------------------------------------

def _sample_sequences(model: Any, num_steps: int, num_sequences: int, seed: int) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return _observations(model.sample(num_steps, num_sequences, generator=g))


def check_sequence_shapes(model: Any, y: Tensor) -> None:
    """``log_marginal`` maps a (B, T, D) batch to (B,), sequences independently; ``sample(T,
    B)`` draws (B, T, D)."""
    b, _, d = y.shape
    lp = model.log_marginal(y)
    assert lp.shape == (b,), f"log_marginal of (B, T, D) data must be (B,), got {tuple(lp.shape)}"
    assert torch.isfinite(lp).all(), "log_marginal returned non-finite values on valid data"
    half = model.log_marginal(y[: max(b // 2, 1)])
    torch.testing.assert_close(half, lp[: max(b // 2, 1)],
                               msg="sequences are not evaluated independently")
    s = _sample_sequences(model, 5, 3, seed=0)
    assert s.shape[:2] == (3, 5) and s.shape[-1] == d, f"sample(5, 3) gave shape {tuple(s.shape)}"


def check_ragged(model: Any, y: Tensor, lengths: Tensor) -> None:
    """A padded batch with ``lengths`` scores every sequence as if it were alone: padding is
    neither counted nor allowed to leak into the real steps."""
    lp = model.log_marginal(y, lengths=lengths)
    alone = torch.cat([model.log_marginal(y[b: b + 1, : int(n)])
                       for b, n in enumerate(lengths.tolist())])
    torch.testing.assert_close(lp, alone, rtol=1e-10, atol=1e-10,
                               msg="a padded batch does not score each sequence as if alone")


def check_sequence_sample_log_prob(model: Any, *, num_steps: int = 3, n: int = 20000,
                                   z: float = 6.0, discrete: bool = False, seed: int = 0) -> None:
    """Sampled sequences agree with ``log_marginal``: each sequence is one draw of T·D numbers,
    checked by Stein's identity (continuous) or by its frequency (discrete)."""
    y = _sample_sequences(model, num_steps, n, seed).detach()
    shape = y.shape[1:]
    if discrete:
        _check_frequencies(lambda v: model.log_marginal(v.reshape(-1, *shape)),
                           y.reshape(n, -1), z)
        return
    y = y.clone().requires_grad_(True)
    (score,) = torch.autograd.grad(model.log_marginal(y).sum(), y)
    _check_stein(y.detach().reshape(n, -1), score.reshape(n, -1), z)


def check_sequence_model(factory: ModelFactory, y: Tensor, lengths: Tensor | None = None, *,
                         discrete: bool = False, em: bool = True, n_samples: int = 20000,
                         num_steps: int = 3) -> ContractReport:
    """Every applicable check for a model of sequences on ``factory(torch.float64)``.

    y: (B, T, D) float64 sequences (with ``lengths`` (B,), a padded ragged batch; the checks
    other than ``ragged`` use the first min(lengths) steps). Sampling is checked on sequences
    of ``num_steps`` steps. Raises AssertionError on the first failure.
    """
    report = ContractReport()
    model = factory(torch.float64)
    if lengths is not None:
        check_ragged(model, y, lengths)
        report.passed.append("ragged")
        y = y[:, : int(lengths.min())]
    else:
        report.not_applicable["ragged"] = "no lengths given"
    check_sequence_shapes(model, y)
    report.passed.append("shapes")
    check_dtypes(factory, y)
    report.passed.append("dtypes")
    report.passed.append("devices[" + ",".join(check_devices(factory, y)) + "]")
    check_sequence_sample_log_prob(model, num_steps=num_steps, n=n_samples, discrete=discrete)
    report.passed.append("sample_log_prob")
    if em and hasattr(model, "expected_stats") and hasattr(model, "maximize"):
        check_em_monotone(factory(torch.float64), y)
        report.passed.append("em_monotone")
    else:
        report.not_applicable["em_monotone"] = "no expected_stats/maximize (not an EM model)"
    check_save_load(model, y)
    report.passed.append("save_load")
    return report


# -- models whose marginal is a bound or an estimate --------------------------------------------

def _elbo(model: Any, y: Tensor, generator: torch.Generator) -> Tensor:
    out = model.elbo(y, 1, generator)
    return out[0] if isinstance(out, tuple) else out


def check_bounds(model: Any, y: Tensor, *, ks: tuple[int, ...] = (1, 10, 100),
                 exact: Tensor | None = None, z: float = 4.0, seed: int = 0) -> dict[int, float]:
    """The importance-weighted bound (Burda et al. 2016) of each datum: (N,), finite; at k = 1
    its mean equals the ELBO's; its mean never falls as k grows; and, given ``exact`` (N,) log
    marginals, it stays below them. Each comparison is of means over the N data, within ``z``
    standard errors of the per-datum differences. Returns the mean bound per k."""
    g = torch.Generator().manual_seed(seed)
    n = y.shape[0]
    elbo = _elbo(model, y, g).detach()
    assert elbo.shape == (n,), f"elbo of (N, D) data must be (N,), got {tuple(elbo.shape)}"
    bounds = {k: model.iwae_bound(y, k, generator=g).detach() for k in ks}
    for k, b in bounds.items():
        assert b.shape == (n,), f"iwae_bound(k={k}) must be (N,), got {tuple(b.shape)}"
        assert torch.isfinite(b).all(), f"iwae_bound(k={k}) returned non-finite values"

    def below(lo: Tensor, hi: Tensor) -> bool:  # E[lo] ≤ E[hi] within z standard errors
        d = hi - lo
        return float(d.mean()) >= -z * float(d.std()) / math.sqrt(n) - 1e-9

    def close(a: Tensor, b: Tensor) -> bool:
        return below(a, b) and below(b, a)

    if 1 in bounds:
        assert close(bounds[1], elbo), "the importance-weighted bound at k = 1 is not the ELBO"
    ordered = sorted(bounds)
    for k1, k2 in itertools.pairwise(ordered):
        assert below(bounds[k1], bounds[k2]), (
            f"the importance-weighted bound fell from k = {k1} ({float(bounds[k1].mean()):.4f}) "
            f"to k = {k2} ({float(bounds[k2].mean()):.4f})")
    if exact is not None:
        top = ordered[-1]
        assert below(bounds[top], exact), (
            f"the bound at k = {top} ({float(bounds[top].mean()):.4f}) exceeds the exact "
            f"log-marginal ({float(exact.mean()):.4f})")
        assert below(elbo, exact), "the ELBO exceeds the exact log-marginal"
    return {k: float(b.mean()) for k, b in bounds.items()}


def check_joint_sample_log_prob(model: Any, *, n: int = 20000, z: float = 6.0,
                                seed: int = 0) -> None:
    """Draws (x, y) from ``sample_joint`` agree with ``log_joint``: Stein's identity in y at the
    sampled latents, E[∇_y log p̂(x, Y) (1, Yᵀ)] = (0, −I) (it holds for each x)."""
    g = torch.Generator().manual_seed(seed)
    x, y = model.sample_joint(n, generator=g)
    y = y.detach().clone().requires_grad_(True)
    (score,) = torch.autograd.grad(model.log_joint(x.detach()[None], y).sum(), y)
    _check_stein(y.detach(), score, z)


def check_bound_model(factory: ModelFactory, data: Tensor, *, exact: Tensor | None = None,
                      discrete: bool = False, n_samples: int = 20000) -> ContractReport:
    """Every applicable check for a model with only a bound on (or an estimate of) its marginal.

    The model offers ``log_joint(x, y)`` ((S, N, code), (N, D) → (S, N)), ``elbo(y, n_samples,
    generator)``, ``iwae_bound(y, k, generator=)``, ``sample(n, generator=)`` and
    ``sample_joint(n, generator=)`` → (x (n, code), y (n, D)). ``exact``: (N,) exact
    log-marginals of ``data`` where an oracle exists.
    """
    report = ContractReport()
    model = factory(torch.float64)
    y7 = _sample(model, 7, seed=0)
    assert y7.shape == (7, data.shape[1]), f"sample(7) gave shape {tuple(y7.shape)}"
    check_bounds(model, data, exact=exact)
    report.passed.append("bounds" + ("[exact]" if exact is not None else ""))
    g = torch.Generator().manual_seed(1)
    x, y = model.sample_joint(data.shape[0], generator=g)
    lj = {dt: factory(dt).log_joint(x[None].to(dt), y.to(dt)) for dt in (torch.float32,
                                                                         torch.float64)}
    assert lj[torch.float32].dtype == torch.float32, "log_joint of a float32 model changed dtype"
    torch.testing.assert_close(lj[torch.float32].double(), lj[torch.float64], rtol=1e-4,
                               atol=1e-4 * (lj[torch.float64].abs().mean().item() + 1.0))
    report.passed.append("dtypes")
    if discrete:
        report.not_applicable["sample_log_prob"] = (
            "discrete observations: Stein's identity needs continuous y (the bounds' exact "
            "oracle checks the density instead)")
    else:
        check_joint_sample_log_prob(model, n=n_samples)
        report.passed.append("sample_log_prob")
    report.not_applicable["em_monotone"] = "trained by gradient, not EM"
    from genmodels.io import load, save

    with tempfile.TemporaryDirectory() as tmp:
        save(model, tmp)
        restored = load(tmp, allow_external=True)
    a = model.iwae_bound(data, 5, generator=torch.Generator().manual_seed(2))
    b = restored.iwae_bound(data, 5, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(b, a, rtol=0, atol=0)
    report.passed.append("save_load")
    return report
