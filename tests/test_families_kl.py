"""KL divergences: the exponential-family Bregman form and the Gaussian closed forms (A6)
against torch.distributions.kl_divergence, Monte Carlo and each other."""

from __future__ import annotations

import pytest
import torch
from test_families_core import FAMILIES, member

from genmodels.families import (
    DiagonalNormal,
    FullNormal,
    Normal,
    kl_diag_std_normal,
    kl_diagonal_gaussian,
    kl_divergence,
    kl_gaussian,
)


@pytest.mark.parametrize("name", FAMILIES)
def test_bregman_kl_equals_torch(name):
    p, q = member(name, (4,), seed=10), member(name, (4,), seed=11)
    expect = torch.distributions.kl_divergence(p.to_torch(), q.to_torch())
    torch.testing.assert_close(kl_divergence(p, q), expect, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(kl_divergence(p, p), torch.zeros(4), atol=1e-10, rtol=0)
    assert bool((kl_divergence(p, q) > 0).all())


def test_bregman_kl_by_monte_carlo():
    p, q = member("Gamma", (), seed=12), member("Gamma", (), seed=13)
    x = p.sample((50000,), generator=torch.Generator().manual_seed(14))
    d = p.log_prob(x) - q.log_prob(x)
    assert abs(float(d.mean() - kl_divergence(p, q))) < 6 * float(d.std()) / 50000**0.5


def test_kl_between_different_families_raises():
    with pytest.raises(ValueError, match=r"different families \(Normal, Gamma\)"):
        kl_divergence(member("Normal", ()), member("Gamma", ()))


def _spd(g, *shape):
    a = torch.randn(*shape, generator=g)
    return a @ a.mT + 0.3 * torch.eye(shape[-1])


def test_kl_gaussian_equals_torch_and_bregman():
    g = torch.Generator().manual_seed(15)
    m1, m2 = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)
    s1, s2 = _spd(g, 5, 3, 3), _spd(g, 5, 3, 3)
    k = kl_gaussian(m1, s1, m2, s2)
    expect = torch.distributions.kl_divergence(
        torch.distributions.MultivariateNormal(m1, s1),
        torch.distributions.MultivariateNormal(m2, s2))
    torch.testing.assert_close(k, expect, rtol=1e-10, atol=1e-12)
    breg = kl_divergence(FullNormal.from_mean_cov(m1, s1), FullNormal.from_mean_cov(m2, s2))
    torch.testing.assert_close(k, breg, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(kl_gaussian(m1, s1, m1, s1), torch.zeros(5), atol=1e-12, rtol=0)
    # broadcasting: one second Gaussian against a batch
    torch.testing.assert_close(kl_gaussian(m1, s1, m2[0], s2[0]),
                               kl_gaussian(m1, s1, m2[0].expand(5, 3), s2[0].expand(5, 3, 3)))


def test_kl_gaussian_by_monte_carlo():
    g = torch.Generator().manual_seed(16)
    m1, m2 = torch.randn(2, generator=g), torch.randn(2, generator=g)
    s1, s2 = _spd(g, 2, 2), _spd(g, 2, 2)
    p = torch.distributions.MultivariateNormal(m1, s1)
    q = torch.distributions.MultivariateNormal(m2, s2)
    torch.manual_seed(0)
    x = p.sample((50000,))
    d = p.log_prob(x) - q.log_prob(x)
    assert abs(float(d.mean() - kl_gaussian(m1, s1, m2, s2))) < 6 * float(d.std()) / 50000**0.5


def test_diagonal_and_one_dimensional_special_cases():
    g = torch.Generator().manual_seed(17)
    m1, m2 = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g)
    v1, v2 = torch.rand(4, 3, generator=g) + 0.2, torch.rand(4, 3, generator=g) + 0.2
    diag = kl_diagonal_gaussian(m1, v1, m2, v2)
    full = kl_gaussian(m1, torch.diag_embed(v1), m2, torch.diag_embed(v2))
    torch.testing.assert_close(diag, full)
    torch.testing.assert_close(diag, kl_divergence(DiagonalNormal.from_mean_var(m1, v1),
                                                   DiagonalNormal.from_mean_var(m2, v2)))
    # additivity over independent coordinates = sum of 1-D KLs (S2:540 formula)
    one_d = kl_divergence(Normal.from_mean_var(m1, v1), Normal.from_mean_var(m2, v2))
    torch.testing.assert_close(diag, one_d.sum(-1))
    sp, sq = v1.sqrt(), v2.sqrt()
    slide = torch.log(sq / sp) + (v1 + (m1 - m2) ** 2) / (2 * v2) - 0.5
    torch.testing.assert_close(one_d, slide)
    # against N(0, I): the VAE regulariser (S2:546 corrected, §4 S2-11/S2-12)
    std = kl_diag_std_normal(m1, torch.log(v1))
    torch.testing.assert_close(std, kl_diagonal_gaussian(m1, v1, torch.zeros(3), torch.ones(3)))
    torch.testing.assert_close(std, 0.5 * (v1 + m1**2 - 1 - torch.log(v1)).sum(-1))
