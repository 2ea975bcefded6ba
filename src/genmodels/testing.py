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

Models are expected to follow the book's vocabulary: ``log_marginal(y)``, ``sample(n,
generator=...)`` (returning the observations, or a (latents, observations) pair), and for EM
``expected_stats``/``maximize``.
"""

from __future__ import annotations

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


def check_shapes(model: Any, data: Tensor, *, batch_dims: bool = True) -> None:
    """Shapes of ``log_marginal`` and ``sample``, and row independence."""
    n, d = data.shape
    lp = model.log_marginal(data)
    assert lp.shape == (n,), f"log_marginal of (N, D) data must be (N,), got {tuple(lp.shape)}"
    assert torch.isfinite(lp).all(), "log_marginal returned non-finite values on valid data"
    half = model.log_marginal(data[: n // 2])
    torch.testing.assert_close(half, lp[: n // 2], msg="rows are not evaluated independently")
    if batch_dims:
        m = 2 * (n // 2)
        batched = model.log_marginal(data[:m].reshape(2, m // 2, d))
        assert batched.shape == (2, m // 2), f"(B, N, D) must map to (B, N), got {batched.shape}"
        torch.testing.assert_close(batched.reshape(m), lp[:m], msg="batched evaluation differs")
    y = _sample(model, 7, seed=0)
    assert y.shape[0] == 7 and y.shape[-1] == d, f"sample(7) gave shape {tuple(y.shape)}"


def check_dtypes(factory: ModelFactory, data: Tensor) -> None:
    """float32 and float64 versions agree (to float32 precision) and keep their dtype."""
    out: dict[torch.dtype, Tensor] = {}
    for dtype in (torch.float32, torch.float64):
        lp = factory(dtype).log_marginal(data.to(dtype))
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
    ref = factory(torch.float64).log_marginal(data)
    devices = available_devices()
    for dev in devices[1:]:
        lp = factory(torch.float64).to(dev).log_marginal(data.to(dev))
        assert lp.device.type == dev
        torch.testing.assert_close(lp.cpu(), ref, rtol=1e-6, atol=1e-6)
    return devices


def check_sample_log_prob(model: Any, *, n: int = 20000, z: float = 6.0,
                          discrete: bool = False, seed: int = 0) -> None:
    """Samples agree with ``log_marginal`` (Stein's identity, or frequencies for discrete data)."""
    y = _sample(model, n, seed).detach()
    if discrete:
        _check_frequencies(model, y, z)
        return
    y = y.clone().requires_grad_(True)
    (score,) = torch.autograd.grad(model.log_marginal(y).sum(), y)  # ∇_y log p(y): (n, D)
    y = y.detach()
    d = y.shape[1]
    terms = torch.cat([score, (score[:, :, None] * y[:, None, :]).reshape(n, d * d)], dim=1)
    target = torch.cat([torch.zeros(d, dtype=y.dtype), -torch.eye(d, dtype=y.dtype).reshape(-1)])
    mean = terms.mean(0)
    se = terms.std(0) / math.sqrt(n)
    bad = (mean - target).abs() > z * se + 1e-8
    assert not bad.any(), (
        "samples disagree with log_marginal by Stein's identity E[∇log p(Y) (1, Yᵀ)] = (0, −I): "
        f"worst entry {(mean - target).abs().max():.3g} vs {z} standard errors {se.max():.3g}"
    )


def _check_frequencies(model: Any, y: Tensor, z: float) -> None:
    values, counts = torch.unique(y, dim=0, return_counts=True)
    p = model.log_marginal(values).exp()
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

    result = run_em(model, [data], max_iter=n_iter, tol=-1.0, warn=False)
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
    torch.testing.assert_close(restored.log_marginal(data), model.log_marginal(data),
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
