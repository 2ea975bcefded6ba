"""Diffusion and NICE on a 2-D density that is not a Gaussian mixture (two moons), against
Gaussian mixtures, by the energy distance (benchmarks/two_sample_2d.py has the full comparison
with mixtures of the same parameter budget, and its numbers are in the README).

The fast, weaker statement tested here: trained for a few seconds on one core (≈ 7 s CPU for
both), both models are closer to the truth than the best single Gaussian — they learn the
non-Gaussian shape — and still above the truth-vs-truth floor. (Over training seeds 0–4 this
held every time; beating the 2-component mixture held for diffusion at 4 of 5 seeds and for
NICE at 4 of 5, so it is not asserted.)"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from genmodels import GaussianMixture
from genmodels.recipes.diffusion import two_moons

ROOT = Path(__file__).resolve().parents[1]


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


SEED = 0


def test_diffusion_and_nice_beat_a_gaussian_on_two_moons(bench) -> None:  # type: ignore[no-untyped-def]
    train, ref = two_moons(2000, seed=SEED), two_moons(2000, seed=SEED + 1)

    def dist(draw) -> float:  # type: ignore[no-untyped-def]
        return sum(bench.distances(draw, ref, 2000, (SEED + 7, SEED + 8, SEED + 9))) / 3

    diffusion, draw_d = bench.train_diffusion(train, hidden=32, layers=2, levels=50,
                                              epochs=120, batch_size=128, lr=2e-3, seed=SEED)
    _, draw_n = bench.train_nice(train, hidden=32, layers=2, couplings=6, epochs=80,
                                 batch_size=128, lr=1e-2, seed=SEED)
    gmm = {k: dist(bench.gmm_draw(GaussianMixture(k, covariance_type="full",
                                                  random_state=SEED).fit(train)))
           for k in (1,)}
    floor = dist(lambda n, g: two_moons(n, seed=SEED + 5))
    d, f = dist(draw_d), dist(draw_n)
    assert d < gmm[1] and f < gmm[1], (d, f, gmm)
    assert floor < min(d, f)  # neither model reaches the truth's own floor in a few seconds
    # the budget the benchmark matches: a full-covariance 2-D component costs 6 numbers
    p = sum(q.numel() for q in diffusion.parameters())
    assert bench.gmm_components(p) == (p + 1) // 6 and bench.gmm_components(3) == 1
