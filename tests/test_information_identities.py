"""Eq. 6.3 (the gradient through the posterior) against autograd of the exact marginal
log-likelihood, for a Gaussian mixture and a factor analyser; Eqs. 6.7–6.9 and the
description lengths of Eqs. 6.12–6.15 add up exactly."""

from __future__ import annotations

import pytest
import torch

from genmodels.inference.information import (
    entropy_decomposition,
    marginal_gradient_autograd,
    marginal_gradient_via_posterior,
)
from genmodels.models.covariance import GaussianEmission
from genmodels.models.factor_analysis import FactorAnalyzer
from genmodels.models.mixture import MixtureModel


def _gmm(gen: torch.Generator, kind: str) -> tuple[MixtureModel, torch.Tensor]:
    k, d = 3, 2
    y = torch.randn(60, d, generator=gen) * 2
    em = GaussianEmission(k, d, kind)
    A = torch.randn(k, d, d, generator=gen)
    cov = {"full": A @ A.mT + torch.eye(d), "diag": torch.rand(k, d, generator=gen) + 0.5,
           "spherical": torch.rand(k, generator=gen) + 0.5}[kind]
    em.set_parameters(means=torch.randn(k, d, generator=gen), covariances=cov)
    w = torch.rand(k, generator=gen) + 0.2
    return MixtureModel(w / w.sum(), em), y


@pytest.mark.parametrize("kind", ["full", "diag", "spherical"])
def test_eq_6_3_for_a_gaussian_mixture(kind: str) -> None:
    gen = torch.Generator().manual_seed(0)
    model, y = _gmm(gen, kind)
    params = ["weights", "emission.means", "emission.precisions_cholesky"]
    exact = marginal_gradient_autograd(model, y, params)
    via = marginal_gradient_via_posterior(model, y, params)
    for p in params:
        assert float(exact[p].abs().max()) > 1e-3  # not trivially zero
        torch.testing.assert_close(via[p], exact[p], atol=1e-10, rtol=1e-8, msg=p)


def test_eq_6_3_for_a_factor_analyser() -> None:
    gen = torch.Generator().manual_seed(1)
    fa = FactorAnalyzer(5, 2)
    fa.loadings = torch.randn(5, 2, generator=gen)
    fa.mean = torch.randn(5, generator=gen)
    fa.noise_variance = torch.rand(5, generator=gen) + 0.3
    y = torch.randn(40, 5, generator=gen) * 1.5
    params = ["loadings", "mean", "noise_variance"]
    exact = marginal_gradient_autograd(fa, y, params)
    via = marginal_gradient_via_posterior(fa, y, params)
    for p in params:
        assert float(exact[p].abs().max()) > 1e-3
        torch.testing.assert_close(via[p], exact[p], atol=1e-10, rtol=1e-8, msg=p)


def test_the_joint_cross_entropy_alone_has_a_different_gradient() -> None:
    """The hybrid joint depends on θ (§6.2): differentiating through the posterior too gives
    another answer, so the check above can fail."""
    gen = torch.Generator().manual_seed(2)
    model, y = _gmm(gen, "full")
    params = ["emission.means"]
    exact = marginal_gradient_autograd(model, y, params)["emission.means"]
    from genmodels.inference import information
    with information._differentiable(model, params) as (m,):
        post = model.posterior(y).responsibilities  # NOT detached
        loss = -(post * model.log_joint(y)).sum(-1).mean()
        (wrong,) = torch.autograd.grad(loss, [m])
    assert float((wrong - exact).abs().max()) > 1e-3


def test_eqs_6_7_to_6_9_and_the_description_lengths_add_up() -> None:
    gen = torch.Generator().manual_seed(3)
    model, y = _gmm(gen, "diag")
    log_joint = model.log_joint(y)
    log_prior = model.log_prior()
    post = model.posterior(y).responsibilities
    q = torch.softmax(torch.randn(*log_joint.shape, generator=gen), -1)
    hard = torch.nn.functional.one_hot(post.argmax(-1), 3).to(q)
    for recog in (q, hard, post):
        t = entropy_decomposition(log_joint, recog, log_prior)
        tol = dict(abs=1e-12, rel=1e-12)
        e = entropy_decomposition(log_joint, post, log_prior)
        # (6.7) with the generative posterior
        assert float(e.marginal_cross_entropy) == pytest.approx(
            float(e.hybrid_joint_cross_entropy - e.posterior_entropy), **tol)
        # (6.8a), (6.8b), (6.9) with the recognition distribution
        assert float(t.marginal_cross_entropy) == pytest.approx(
            float(t.joint_cross_entropy - t.posterior_cross_entropy), **tol)
        assert float(t.marginal_cross_entropy + t.recognition_entropy) == pytest.approx(
            float(t.joint_cross_entropy - t.posterior_relative_entropy), **tol)
        assert float(t.marginal_cross_entropy + t.posterior_relative_entropy) == pytest.approx(
            float(t.free_energy), **tol)
        # (6.12)-(6.13): code + reconstruction = PRE + recognition entropy + H_pp̂[Y];
        # (6.15): after the refund, PRE + H_pp̂[Y]
        assert float(t.code_cost + t.reconstruction_cost) == pytest.approx(
            float(t.posterior_relative_entropy + t.recognition_entropy
                  + t.marginal_cross_entropy), **tol)
        assert float(t.bits_back_cost) == pytest.approx(
            float(t.posterior_relative_entropy + t.marginal_cross_entropy), **tol)
    exact = entropy_decomposition(log_joint, post, log_prior)
    hard_t = entropy_decomposition(log_joint, hard, log_prior)
    assert float(exact.posterior_relative_entropy) == pytest.approx(0.0, abs=1e-12)
    assert float(hard_t.recognition_entropy) == 0.0  # (6.14): the delta's entropy vanishes
    assert float(hard_t.code_cost + hard_t.reconstruction_cost) >= float(exact.bits_back_cost)
