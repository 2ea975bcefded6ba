"""The slides' worked example (CATALOGUE G13): E[z²] under N(aθ + b, 1), a = 2, b = 3.

The per-draw means and variances of both estimators are derived here in closed form from the
moments of a standard normal (E[εᵏ] = (k−1)!! for even k, 0 for odd k), independently of the
constants quoted in the example script, and the Monte Carlo values are checked against them.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from numpy.polynomial import polynomial as P
from torch.distributions import Normal

from genmodels.learning.estimators import Pathwise, ScoreFunction, gradient_diagnostics

A, B = 2.0, 3.0
ROOT = Path(__file__).resolve().parents[1]


def _normal_moment(k: int) -> float:
    return 0.0 if k % 2 else float(np.prod(np.arange(k - 1, 0, -2))) if k else 1.0


def _expect(poly: np.ndarray) -> float:
    """E[p(ε)] for a polynomial p (coefficients, lowest degree first), ε ~ N(0, 1)."""
    return sum(c * _normal_moment(k) for k, c in enumerate(poly))


def _closed_forms(theta: float) -> tuple[float, float, float, float]:
    """Mean and variance of the per-draw score-function and reparameterised estimates."""
    mu = A * theta + B
    z = np.array([mu, 1.0])  # z = μ + ε as a polynomial in ε
    sf = A * P.polymul(P.polymul(z, z), np.array([0.0, 1.0]))  # a z² (z − μ)
    rp = 2 * A * z  # 2a(μ + ε)
    m_sf, m_rp = _expect(sf), _expect(rp)
    return (m_sf, _expect(P.polymul(sf, sf)) - m_sf**2, m_rp, _expect(P.polymul(rp, rp)) - m_rp**2)


def test_closed_forms_match_the_catalogue() -> None:
    m_sf, v_sf, m_rp, v_rp = _closed_forms(0.0)
    assert m_sf == m_rp == 2 * A * B == 12.0
    assert v_sf == pytest.approx(888.0) and v_rp == pytest.approx(16.0)
    assert _closed_forms(-1.5)[1] == pytest.approx(60.0)
    assert _closed_forms(1.0)[1] == pytest.approx(3960.0)


@pytest.mark.parametrize("theta", [-3.0, -1.5, 0.0, 1.0])
def test_per_draw_mean_and_variance(theta: float) -> None:
    """Means within 4 standard errors; variances within 4 standard errors of the sample
    variance, SE ≈ sqrt((m₄ − s⁴)/R) with m₄ the sample fourth central moment."""
    m_sf, v_sf, m_rp, v_rp = _closed_forms(theta)
    make = lambda t: Normal(A * t + B, 1.0)  # noqa: E731
    R = 400000
    for est, m, v, seed in ((ScoreFunction(), m_sf, v_sf, 0), (Pathwise(), m_rp, v_rp, 1)):
        d = gradient_diagnostics(est, lambda z: z**2, make, torch.tensor(theta),
                                 reference=torch.tensor(m), num_samples=1, num_repeats=R,
                                 generator=torch.Generator().manual_seed(seed))
        assert d.max_abs_z < 4
        g = d.estimates
        m4 = float(((g - g.mean()) ** 4).mean())
        se_var = math.sqrt(max(m4 - float(d.variance) ** 2, 0.0) / R)
        assert abs(float(d.variance) - v) < 4 * se_var + 1e-9, (float(d.variance), v, se_var)


def test_example_script_tiny(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("score_vs_reparam",
                                                  ROOT / "examples" / "score_vs_reparam.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["score_vs_reparam"] = mod
    spec.loader.exec_module(mod)
    out = tmp_path / "fig.png"
    res = mod.main(["--tiny", "--out", str(out)])
    assert out.exists() and out.stat().st_size > 1000
    for name in ("score function", "reparameterisation"):
        r = res[name]
        assert abs(r["mean"] - 12.0) < 4 * r["standard_error"]
        # Gradient descent with either estimator reaches θ* = −b/a.
        assert abs(r["sgd_theta"] - (-B / A)) < 0.1
    assert res["score function"]["variance"] > 20 * res["reparameterisation"]["variance"]
