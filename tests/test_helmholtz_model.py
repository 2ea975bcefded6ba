"""The Helmholtz machine's densities: exact log-marginal, exact ELBO, importance sampling."""

import math

import pytest
import torch

from genmodels.io import load, save
from genmodels.models.helmholtz import HelmholtzMachine, binary_configurations


def _random_model(sizes, seed=0, scale=1.5):
    hm = HelmholtzMachine(sizes, init_scale=scale, seed=seed)
    g = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        for p in hm.parameters():
            p.add_(torch.randn(p.shape, generator=g))
    return hm


def _brute_log_marginal(hm, y):
    """log Σ_h p̂(y, h) over every joint hidden configuration (the oracle)."""
    allh = binary_configurations(sum(hm.sizes[1:]))
    hs = [h[None] for h in torch.split(allh, hm.sizes[1:], dim=1)]
    return torch.logsumexp(hm.log_joint(y[:, None], hs), dim=1)


@pytest.mark.parametrize("sizes", [[4, 3], [5, 3, 2], [4, 2, 3, 2]])
def test_exact_log_marginal_matches_brute_force_and_normalises(sizes):
    hm = _random_model(sizes)
    Y = binary_configurations(sizes[0])
    lm = hm.log_marginal(Y)
    torch.testing.assert_close(lm, _brute_log_marginal(hm, Y))
    torch.testing.assert_close(torch.logsumexp(lm, 0), torch.zeros(()), atol=1e-12, rtol=0)


def test_elbo_is_at_most_the_exact_log_likelihood():
    hm = _random_model([6, 4, 3], seed=1)
    Y = binary_configurations(6)
    elbo, lm = hm.exact_elbo(Y), hm.log_marginal(Y)
    assert (elbo <= lm + 1e-12).all()
    assert (lm - elbo).min() > 1e-3  # a factorial p̌ cannot match this posterior
    torch.testing.assert_close(hm.posterior_kl(Y), lm - elbo)
    # the Monte Carlo ELBO agrees with the exact one within 6 standard errors
    mc = hm.elbo(Y, 4000, torch.Generator().manual_seed(0))
    assert ((mc.value - elbo).abs() < 6 * mc.stderr).all()


def test_importance_estimate_within_its_standard_error_of_exact():
    hm = _random_model([6, 4, 3], seed=2)
    Y = binary_configurations(6)[::3]
    est = hm.importance_log_marginal(Y, 4000, torch.Generator().manual_seed(1))
    exact = hm.log_marginal(Y).detach()
    z = (est.value - exact) / est.stderr
    assert z.abs().max() < 4.5
    # and the errors are not all one sign beyond chance: the mean z is near 0
    assert abs(float(z.mean())) < 4.5 / math.sqrt(z.numel())
    m, se = est.mean()
    assert abs(m - float(exact.mean())) < 4.5 * se


def test_samples_agree_with_the_exact_marginal():
    hm = _random_model([3, 2, 2], seed=3, scale=1.0)
    _, y = hm.sample(40000, torch.Generator().manual_seed(2))
    codes = (y * 2 ** torch.arange(3)).sum(1).long()
    freq = torch.bincount(codes, minlength=8) / y.shape[0]
    p = hm.log_marginal(binary_configurations(3)).exp()
    assert ((freq - p).abs() < 6 * (p * (1 - p) / y.shape[0]).sqrt()).all()


def test_recognition_shapes_and_errors():
    hm = HelmholtzMachine([5, 4, 2])
    y = torch.ones(7, 5)
    hs = hm.recognize(y, 3, torch.Generator().manual_seed(0))
    assert [h.shape for h in hs] == [(3, 7, 4), (3, 7, 2)]
    assert hm.log_joint(y, hs).shape == (3, 7) and hm.log_recognition(y, hs).shape == (3, 7)
    with pytest.raises(ValueError, match="layer_sizes"):
        HelmholtzMachine([5])
    with pytest.raises(ValueError, match=r"layer_sizes\[1\]"):
        HelmholtzMachine([5, 0])
    with pytest.raises(ValueError, match="visible units"):
        hm.log_joint(torch.ones(7, 4), hs)
    with pytest.raises(ValueError, match="2 hidden layers"):
        hm.log_joint(y, hs[:1])
    with pytest.raises(ValueError, match="importance_log_marginal"):
        HelmholtzMachine([4, 30]).exact_elbo(torch.ones(1, 4))


def test_save_load_roundtrip(tmp_path):
    hm = _random_model([4, 3, 2], seed=4)
    save(hm, tmp_path / "hm")
    back = load(tmp_path / "hm")
    Y = binary_configurations(4)
    torch.testing.assert_close(back.log_marginal(Y), hm.log_marginal(Y))


def test_helmholtz_machine_passes_the_contract_suite():
    from genmodels.testing import check_model

    def factory(dtype):
        return _random_model([4, 3, 2], seed=5).to(dtype)

    report = check_model(factory, binary_configurations(4), discrete=True)
    assert {"shapes", "dtypes", "sample_log_prob", "save_load"} <= set(report.passed)
