import math
import warnings

import pytest
import torch

from genmodels import linalg
from genmodels.exceptions import JitterWarning


def test_logmatmulexp_matches_direct_product():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(3, 4, 5, generator=g)
    b = torch.randn(3, 5, 2, generator=g)
    expected = torch.log(torch.exp(a) @ torch.exp(b))
    torch.testing.assert_close(linalg.logmatmulexp(a, b), expected)


def test_logmatmulexp_large_scale_and_impossible_states():
    a = torch.tensor([[-1000.0, -1001.0], [-float("inf"), -float("inf")]])
    b = torch.tensor([[0.0, -float("inf")], [-2.0, -float("inf")]])
    out = linalg.logmatmulexp(a, b)
    expected0 = torch.tensor(-1000.0 + math.log1p(math.exp(-3.0)))
    torch.testing.assert_close(out[0, 0], expected0)
    assert out[1].eq(-float("inf")).all() and out[0, 1] == -float("inf")
    assert not torch.isnan(out).any()


def test_safe_cholesky_adds_relative_jitter_to_a_singular_matrix():
    v = torch.tensor([[1.0, 2.0, 3.0]])
    singular = v.T @ v * 1e4  # rank one
    with pytest.warns(JitterWarning, match="1 of 1 matrices"):
        L = linalg.safe_cholesky(singular)
    torch.testing.assert_close(L @ L.T, singular, rtol=1e-6, atol=1e-6)


def test_safe_cholesky_jitters_only_the_failing_matrices_of_a_batch():
    g = torch.Generator().manual_seed(3)
    m = torch.randn(3, 3, 3, generator=g, dtype=torch.float64)
    good = m @ m.mT + torch.eye(3, dtype=torch.float64)  # (3, 3, 3) well conditioned
    v = torch.tensor([[1.0, 2.0, 3.0]], dtype=torch.float64)
    batch = torch.stack([good[0], v.T @ v, good[1], good[2]])  # the second is rank one
    with pytest.warns(JitterWarning, match="1 of 4 matrices"):
        L = linalg.safe_cholesky(batch)
    exact = torch.linalg.cholesky(good)
    assert torch.equal(L[[0, 2, 3]], exact)  # untouched, bit for bit
    torch.testing.assert_close(L[1] @ L[1].T, v.T @ v, rtol=0, atol=1e-10)


def test_safe_cholesky_is_silent_on_positive_definite_input():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        linalg.safe_cholesky(torch.eye(3) * 2.0)


def test_safe_cholesky_rejects_indefinite():
    with pytest.raises(ValueError, match="not positive definite"):
        linalg.safe_cholesky(torch.diag(torch.tensor([1.0, -1.0])))


def test_psd_solve_and_gaussian_density_match_torch():
    g = torch.Generator().manual_seed(1)
    m = torch.randn(4, 4, generator=g)
    cov = m @ m.T + 4 * torch.eye(4)
    b = torch.randn(4, 3, generator=g)
    torch.testing.assert_close(linalg.psd_solve(cov, b), torch.linalg.solve(cov, b))
    mean = torch.randn(4, generator=g)
    x = torch.randn(7, 4, generator=g)
    ref = torch.distributions.MultivariateNormal(mean, cov).log_prob(x)
    got = linalg.gaussian_log_density_cholesky(x, mean, torch.linalg.cholesky(cov))
    torch.testing.assert_close(got, ref)


def test_log_normalize_sums_to_one():
    lp = torch.tensor([[1.0, 2.0, 3.0], [-1e4, -1e4 + 1.0, -1e4 + 2.0]])
    out, lse = linalg.log_normalize(lp)
    torch.testing.assert_close(out.exp().sum(-1), torch.ones(2))
    torch.testing.assert_close(lse[0], torch.logsumexp(lp[0], 0))
