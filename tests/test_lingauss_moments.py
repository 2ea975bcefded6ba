"""The one-pass centred moments of PCA and factor analysis (models.linear_gaussian)."""

from __future__ import annotations

import pytest
import torch

from genmodels.models.linear_gaussian import centred_moments


@pytest.mark.parametrize("n", [5, 100, 1000, 1003])
def test_centred_moments_equal_the_two_pass_scatter(n: int) -> None:
    g = torch.Generator().manual_seed(n)
    # a mean large against the spread: Σ y yᵀ − N m mᵀ would lose ~8 digits here
    y = 1e4 + 1e-2 * torch.randn(n, 6, generator=g, dtype=torch.float64)
    y[n // 2:] += 3e-2  # a drift, so the first block's mean is not the mean
    mean, m = centred_moments(y, block=64)
    ref_mean = y.mean(0)
    c = y - ref_mean
    torch.testing.assert_close(mean, ref_mean, rtol=1e-15, atol=0)
    ref = c.mT @ c
    torch.testing.assert_close(m.outer, ref, rtol=1e-9, atol=1e-9 * float(ref.abs().max()))
    assert m.n == n and bool((m.sum == 0).all())
    torch.testing.assert_close(m.outer, m.outer.mT, rtol=0, atol=0)


def test_centred_moments_reject_non_matrices() -> None:
    with pytest.raises(ValueError, match=r"data must be \(N, D\)"):
        centred_moments(torch.zeros(3))


def test_scatter_about_any_centre_from_centred_moments() -> None:
    g = torch.Generator().manual_seed(3)
    y = 5.0 + torch.randn(300, 4, generator=g, dtype=torch.float64)
    _, m = centred_moments(y)
    assert m.centred
    c = torch.randn(4, generator=g, dtype=torch.float64)
    r = y - y.mean(0) - c
    torch.testing.assert_close(m.scatter(c), r.mT @ r, rtol=1e-12, atol=1e-10)
    torch.testing.assert_close(m.scatter(), m.outer, rtol=0, atol=0)
    assert not (m + m).centred  # not carried through sums (conservative: the general path)
