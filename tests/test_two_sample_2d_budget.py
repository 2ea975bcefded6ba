"""Issue #13's 2-D claim at a small scale, with unbiased two-sample statistics
(benchmarks/two_sample_2d.py ``--replicated`` has the full comparison; its numbers are in the
README and they say that in 2-D a Gaussian mixture of the same parameter budget is *not*
beaten — see there).

What is robust at this scale and asserted here, on two concentric rings (``circles``, not a
Gaussian mixture), trained for a few seconds on one core:

* the U-statistics equal their brute-force definitions (so the truth against itself is 0 in
  expectation, not a V-statistic floor);
* a trained diffusion model (P = 3,874) is closer to the truth, in energy distance, than
  Gaussian mixtures of K ≤ 2 components (≤ 11 parameters), which cannot make two rings;
* the same model with an untrained denoiser is not (so the check catches a broken model);
* a mixture with the model's parameter budget (capped at N/10 = 200 components) is closer
  than the diffusion model: the negative result the benchmark reports, pinned at this scale.

Over seeds 0–4 (``SEED``): diffusion 0.0016–0.0035, K = 2 0.0036–0.0061, the same-budget
mixture −0.0002–0.0008, the untrained denoiser > 600. Beating K = 4 (0.0014–0.0028) held at
2 of 5 seeds, so it is not asserted.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from genmodels import GaussianMixture

ROOT = Path(__file__).resolve().parents[1]
SEED = 0
N = 2000


@pytest.fixture(scope="module")
def bench():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("two_sample_2d",
                                                  ROOT / "benchmarks" / "two_sample_2d.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["two_sample_2d"] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(autouse=True)
def _one_thread():  # type: ignore[no-untyped-def]
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_unbiased_distances_against_brute_force(bench) -> None:  # type: ignore[no-untyped-def]
    g = torch.Generator().manual_seed(SEED)
    x, y = torch.randn(7, 2, generator=g, dtype=torch.float64), \
        torch.randn(5, 2, generator=g, dtype=torch.float64) + 0.3
    h = 0.7

    def pairs(a, b, same):  # type: ignore[no-untyped-def]
        return [(i, j) for i in range(len(a)) for j in range(len(b)) if not (same and i == j)]

    def mean(f, a, b, same):  # type: ignore[no-untyped-def]
        ps = pairs(a, b, same)
        return sum(float(f(a[i], b[j])) for i, j in ps) / len(ps)

    def dist(u, v):  # type: ignore[no-untyped-def]
        return (u - v).norm()

    def k(u, v):  # type: ignore[no-untyped-def]
        return torch.exp(-0.5 * ((u - v).norm() / h) ** 2)

    e = 2 * mean(dist, x, y, False) - mean(dist, x, x, True) - mean(dist, y, y, True)
    m = mean(k, x, x, True) + mean(k, y, y, True) - 2 * mean(k, x, y, False)
    for block in (2048, 3):  # one block, and blocks that do not divide n or m
        got = bench.unbiased_distances(x, y, h, block=block)
        assert got == pytest.approx((e, m), rel=1e-12, abs=1e-14)
    given = bench.unbiased_distances(x, y, h, y_sums=bench.pair_sums(y, y, h))
    assert given == pytest.approx((e, m), rel=1e-12, abs=1e-14)


def test_trained_diffusion_on_rings_between_small_and_same_budget_mixtures(  # type: ignore[no-untyped-def]
        bench) -> None:
    truth = bench.circles
    train, ref = truth(N, seed=SEED), truth(N, seed=SEED + 1)
    gen = torch.Generator().manual_seed(SEED + 2)

    def energy(x: torch.Tensor) -> float:
        return bench.unbiased_distances(x.double(), ref, 0.1)[0]

    cfg = {"hidden": 32, "layers": 2, "levels": 50, "batch_size": 128, "seed": SEED}
    model, draw = bench.train_diffusion(train, epochs=120, lr=2e-3, **cfg)
    _, draw_untrained = bench.train_diffusion(train, epochs=1, lr=1e-12, **cfg)
    d = energy(draw(N, gen))
    d_untrained = energy(draw_untrained(N, gen))
    p = sum(q.numel() for q in model.parameters())
    k_budget = min(bench.gmm_components(p), N // bench.MIN_POINTS)
    gmm = {k: energy(bench.gmm_draw(GaussianMixture(k, covariance_type="full",
                                                    random_state=SEED).fit(train))(N, gen))
           for k in (1, 2, k_budget)}
    assert k_budget == N // bench.MIN_POINTS == 200 and p == 3874
    assert d < min(gmm[1], gmm[2]), (d, gmm)
    assert d_untrained > max(gmm[1], gmm[2]), (d_untrained, gmm)
    assert gmm[k_budget] < d, (gmm, d)  # the mixture of the same budget is closer
