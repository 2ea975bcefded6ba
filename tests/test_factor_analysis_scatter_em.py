"""ScatterEM (the estimator's EM on the scatter about the sample mean) gives the iterates of the
general E and M steps of ``FactorAnalyzer`` with the offset frozen (Eq. 7.3, §7.3)."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch

from genmodels.exceptions import DegenerateFitWarning
from genmodels.learning.em import run_em
from genmodels.models.factor_analysis import FactorAnalyzer, ScatterEM
from genmodels.models.linear_gaussian import centred_moments


def data(n: int = 300, d: int = 7, k: int = 2, seed: int = 0,
         constant: bool = False) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    y = (torch.randn(n, k, generator=g, dtype=torch.float64)
         @ torch.randn(k, d, generator=g, dtype=torch.float64)
         + 0.5 * torch.randn(n, d, generator=g, dtype=torch.float64) + 3.0)
    if constant:
        y[:, -1] = 2.0
    return y


@pytest.mark.parametrize("noise", ["diagonal", "isotropic"])
@pytest.mark.parametrize("constant", [False, True])
def test_scatter_em_matches_the_general_steps(noise: str, constant: bool) -> None:
    y = data(constant=constant)
    _, moments = centred_moments(y)
    general = FactorAnalyzer(7, 2, noise=noise)
    general.initialize(moments)
    fast = copy.deepcopy(general)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateFitWarning)
        ref = run_em(general, [moments], max_iter=25, tol=0.0, per_datum=False,
                     frozen={"mean"}, warn=False)
        got = run_em(ScatterEM(fast, moments.outer, moments.n), [None], max_iter=25, tol=0.0,
                     per_datum=False, warn=False)
    assert got.n_iter == ref.n_iter == 25
    torch.testing.assert_close(torch.tensor(got.log_likelihood),
                               torch.tensor(ref.log_likelihood), rtol=1e-12, atol=0.0)
    torch.testing.assert_close(fast.loadings, general.loadings, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(fast.noise_variance, general.noise_variance, rtol=1e-10,
                               atol=1e-14)


def test_scatter_em_warns_once_about_the_floor() -> None:
    y = data(constant=True)
    _, moments = centred_moments(y)
    model = FactorAnalyzer(7, 2)
    model.initialize(moments)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_em(ScatterEM(model, moments.outer, moments.n), [None], max_iter=30, tol=0.0,
               per_datum=False, warn=False)
    floors = [w for w in caught if issubclass(w.category, DegenerateFitWarning)]
    assert len(floors) == 1 and "[6]" in str(floors[0].message)


def test_scatter_em_refuses_frozen_parameters() -> None:
    _, moments = centred_moments(data())
    model = FactorAnalyzer(7, 2)
    model.initialize(moments)
    em = ScatterEM(model, moments.outer, moments.n)
    with pytest.raises(ValueError, match="cannot freeze"):
        em.maximize(em.expected_stats().stats, frozenset({"noise_variance"}))
