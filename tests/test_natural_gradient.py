"""Fisher information (= Hessian of KL, = E[s sᵀ]) and natural-gradient descent (J1, J2)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F_
from test_families_core import FAMILIES, member
from torch import nn

from genmodels.families import Bernoulli, Categorical, Normal, bregman_kl
from genmodels.learning.natural_gradient import (
    FlatParameters,
    NaturalGradient,
    empirical_fisher,
    exponential_family_fisher,
    kl_hessian,
    monte_carlo_fisher,
    natural_gradient_step,
    per_sample_scores,
)


# ---------------------------------------------------------------- J1: Fisher = Hessian of KL
def _gauss_kl(a, b):
    """KL between N(μ, σ²) parameterised by θ = (μ, log σ), via torch's closed form."""
    p = torch.distributions.Normal(a[0], a[1].exp())
    q = torch.distributions.Normal(b[0], b[1].exp())
    return torch.distributions.kl_divergence(p, q)


def _numerical_hessian(f, x, h=1e-4):
    """Central second differences: an oracle independent of autograd."""
    p = x.shape[0]
    H = torch.zeros(p, p)
    e = torch.eye(p) * h
    for i in range(p):
        for j in range(p):
            H[i, j] = (f(x + e[i] + e[j]) - f(x + e[i] - e[j]) - f(x - e[i] + e[j])
                       + f(x - e[i] - e[j])) / (4 * h * h)
    return H


def test_fisher_is_hessian_of_kl_gaussian_mean_log_scale():
    theta = torch.tensor([0.7, math.log(1.5)])
    F = kl_hessian(_gauss_kl, theta)
    # closed form: diag(1/σ², 2) for (μ, log σ)  (CATALOGUE A5)
    torch.testing.assert_close(F, torch.diag(torch.tensor([1 / 1.5**2, 2.0])), atol=1e-12,
                               rtol=0)
    num = _numerical_hessian(lambda t: _gauss_kl(theta, t), theta)
    torch.testing.assert_close(F, num, atol=1e-6, rtol=0)
    # B.12: Jᵀ ∇²A J through the exponential-family map θ ↦ η
    def to_natural(t):
        var = torch.exp(2 * t[1])
        return torch.stack([t[0] / var, -0.5 / var])

    torch.testing.assert_close(exponential_family_fisher(Normal, to_natural, theta), F)
    # the gradient of KL(p_θ ‖ p_θ′) vanishes at θ′ = θ
    g = torch.func.grad(lambda t: _gauss_kl(theta, t))(theta)
    torch.testing.assert_close(g, torch.zeros(2), atol=1e-14, rtol=0)


def test_fisher_is_hessian_of_kl_bernoulli_and_categorical():
    logit = torch.tensor([0.3])
    F = kl_hessian(lambda a, b: bregman_kl(Bernoulli, a, b), logit)
    p = torch.sigmoid(logit)
    torch.testing.assert_close(F, (p * (1 - p))[:, None])
    torch.testing.assert_close(
        F, _numerical_hessian(lambda t: torch.distributions.kl_divergence(
            torch.distributions.Bernoulli(logits=logit), torch.distributions.Bernoulli(logits=t)
        ).sum(), logit), atol=1e-7, rtol=0)
    logits = torch.tensor([0.2, -1.0, 0.5, 1.1])
    Fc = kl_hessian(lambda a, b: torch.distributions.kl_divergence(
        torch.distributions.Categorical(logits=a), torch.distributions.Categorical(logits=b)),
        logits)
    pc = torch.softmax(logits, 0)
    torch.testing.assert_close(Fc, torch.diag(pc) - torch.outer(pc, pc), atol=1e-12, rtol=0)
    torch.testing.assert_close(Fc, Categorical(logits).fisher_information(), atol=1e-12, rtol=0)


@pytest.mark.parametrize("name", FAMILIES)
def test_hessian_of_bregman_kl_is_grad2_A(name):
    fam = member(name, ())
    cls = type(fam)
    F = kl_hessian(lambda a, b: bregman_kl(cls, a, b), fam.natural)
    torch.testing.assert_close(F, fam.fisher_information(), rtol=1e-8, atol=1e-9)


def test_kl_minus_quadratic_form_is_third_order():
    theta = torch.tensor([0.2, math.log(0.8)])
    F = kl_hessian(_gauss_kl, theta)
    d = torch.tensor([0.6, -0.8])
    errs = []
    for eps in (1e-1, 5e-2, 2.5e-2):
        h = eps * d
        errs.append(float((_gauss_kl(theta, theta + h) - 0.5 * h @ F @ h).abs()))
    # halving h divides the remainder by ~2³ = 8
    for a, b in itertools.pairwise(errs):
        assert 6.5 < a / b < 9.5, errs


def test_monte_carlo_fisher_within_error_bars():
    theta = torch.tensor([0.4, math.log(1.3)])

    def log_prob(t, x):
        return torch.distributions.Normal(t[0], t[1].exp()).log_prob(x)

    def sample(t, n, g):
        return t[0] + t[1].exp() * torch.randn(n, generator=g)

    F_mc, se = monte_carlo_fisher(log_prob, sample, theta, 40000, torch.Generator().manual_seed(0))
    F = kl_hessian(_gauss_kl, theta)
    assert bool(((F_mc - F).abs() < 6 * se).all()), (F_mc, F, se)
    # the score has zero mean under the model (A5)
    s = per_sample_scores(log_prob, theta, sample(theta, 40000, torch.Generator().manual_seed(1)))
    assert bool((s.mean(0).abs() < 6 * s.std(0) / 200).all())


def _tiny_net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 1))


def test_monte_carlo_fisher_of_small_network_equals_gauss_newton():
    """For a Bernoulli-output network the Fisher is exactly (1/N) Σ p(1−p) ∇f ∇fᵀ (the
    generalised Gauss–Newton matrix): an oracle for the vmapped Monte Carlo estimate."""
    net = _tiny_net()
    flat = FlatParameters(net)
    theta = flat.vector()
    X = torch.randn(10, 2, generator=torch.Generator().manual_seed(2))
    logit_grads = torch.func.vmap(torch.func.grad(lambda t, x: flat.call(t, x)[0]),
                                  in_dims=(None, 0))(theta, X)
    p = torch.sigmoid(flat.call(theta, X)[:, 0])
    ggn = (logit_grads.T * (p * (1 - p))) @ logit_grads / X.shape[0]

    log_prob = flat.log_prob(lambda out, y: y * out[0] - F_.softplus(out[0]))

    def sample(t, n, g):
        idx = torch.randint(X.shape[0], (n,), generator=g)
        x = X[idx]
        return x, torch.bernoulli(torch.sigmoid(flat.call(t, x)[:, 0]), generator=g)

    F_mc, se = monte_carlo_fisher(log_prob, sample, theta, 20000,
                                  torch.Generator().manual_seed(3))
    assert F_mc.shape == (flat.size, flat.size)
    assert bool(((F_mc - ggn).abs() < 6 * se + 1e-12).all())


def test_empirical_fisher_and_log_probs_closure_agree():
    net = _tiny_net(1)
    flat = FlatParameters(net)
    X = torch.randn(12, 2, generator=torch.Generator().manual_seed(4))
    y = (X[:, 0] > 0).double()
    log_prob = flat.log_prob(lambda out, t: t * out[0] - F_.softplus(out[0]))
    F_emp = empirical_fisher(log_prob, flat.vector(), (X, y))
    manual = torch.zeros(flat.size, flat.size)
    for i in range(12):
        net.zero_grad()
        out = net(X[i])
        (y[i] * out[0] - F_.softplus(out[0])).backward()
        g = torch.cat([p.grad.reshape(-1) for p in net.parameters()])
        manual += torch.outer(g, g) / 12
    torch.testing.assert_close(F_emp, manual)

    def log_probs():
        out = net(X)[:, 0]
        return y * out - F_.softplus(out)

    opt = NaturalGradient(net.parameters(), lr=0.1, log_probs=log_probs)
    torch.testing.assert_close(opt.fisher_matrix(), manual)


# ------------------------------------------------------- J2: invariance to parameterisation
T_BAR = torch.tensor([1.0, 3.0])  # data averages of t(x) = (x, x²): mean 1, variance 2


def _mean_to_natural(m):
    var = m[1] - m[0] ** 2
    return torch.stack([m[0] / var, -0.5 / var])


def _identity(e):
    return e


def _nll(to_natural):
    def loss(theta):  # average NLL up to log h: A(η) − ηᵀ t̄
        eta = to_natural(theta)
        return Normal.log_partition(eta) - eta @ T_BAR

    return loss


def _trajectory(to_natural, theta0, lr, steps, natural=True):
    theta = theta0.clone().requires_grad_(True)
    loss = _nll(to_natural)
    if natural:
        def fisher():
            return kl_hessian(lambda a, b: bregman_kl(Normal, to_natural(a), to_natural(b)),
                              theta.detach())

        opt: torch.optim.Optimizer = NaturalGradient([theta], lr=lr, damping=0.0, fisher=fisher)
    else:
        opt = torch.optim.SGD([theta], lr=lr)
    out = []
    for _ in range(steps):
        def closure():
            opt.zero_grad()
            value = loss(theta)
            value.backward()
            return value

        opt.step(closure)
        out.append(to_natural(theta.detach()).clone())
    return torch.stack(out)


START_NAT = torch.tensor([0.0, -0.5])  # N(0, 1)
START_MEAN = torch.tensor([0.0, 1.0])


def _distance(eta_a, eta_b):
    """√(2 KL): a distance in distribution space, ≈ the Fisher–Rao length for close members."""
    return float(torch.sqrt(2 * bregman_kl(Normal, eta_a, eta_b).clamp_min(0)).max())


def _step_discrepancy(lr, natural):
    a = _trajectory(_identity, START_NAT, lr, 1, natural)
    b = _trajectory(_mean_to_natural, START_MEAN, lr, 1, natural)
    return _distance(a, b)


def test_natural_gradient_one_step_discrepancy_is_second_order():
    """Natural vs mean parameters of N(μ, σ²): after one step of size lr the two distributions
    differ by O(lr²) (first-order invariance); plain gradient descent differs by O(lr)."""
    lrs = (0.05, 0.025, 0.0125)
    ng = [_step_discrepancy(lr, True) for lr in lrs]
    gd = [_step_discrepancy(lr, False) for lr in lrs]
    for a, b in itertools.pairwise(ng):
        assert 3.5 < a / b < 4.5, ng  # O(lr²)
    for a, b in itertools.pairwise(gd):
        assert 1.8 < a / b < 2.4, gd  # O(lr): not invariant even to first order
    assert ng[-1] < 0.05 * gd[-1]


def test_natural_gradient_trajectories_converge_as_step_shrinks():
    """Over a fixed horizon (steps · lr = 1) the two natural-gradient paths approach one
    another as O(lr); the plain-gradient paths do not approach one another at all."""
    def horizon(lr, natural):
        n = round(1 / lr)
        a = _trajectory(_identity, START_NAT, lr, n, natural)
        b = _trajectory(_mean_to_natural, START_MEAN, lr, n, natural)
        return max(_distance(x, y) for x, y in zip(a, b))

    ng = [horizon(lr, True) for lr in (0.05, 0.025)]
    gd = [horizon(lr, False) for lr in (0.05, 0.025)]
    assert 1.7 < ng[0] / ng[1] < 2.5, ng
    assert gd[1] > 0.8 * gd[0] and gd[1] > 10 * ng[1], (gd, ng)


def test_unit_natural_step_in_mean_parameters_lands_on_the_mle():
    """In mean parameters F = (∇²A)⁻¹ and ∇L = (∇²A)⁻¹(μ − t̄), so one step with lr = 1 is
    μ ← t̄, the maximum-likelihood estimate (J2 test)."""
    path = _trajectory(_mean_to_natural, START_MEAN, 1.0, 1)
    mle = Normal.natural_from_mean(T_BAR)
    torch.testing.assert_close(path[0], mle, atol=1e-12, rtol=0)
    # in natural parameters it is a Newton step on the convex NLL (F = ∇²A = the Hessian):
    # quadratic convergence from a start close enough to stay inside the domain η₂ < 0
    near = Normal.natural_from_mean(torch.tensor([0.8, 0.8**2 + 1.8]))
    nat = _trajectory(_identity, near, 1.0, 6)
    torch.testing.assert_close(nat[-1], mle, atol=1e-12, rtol=0)


def test_natural_direction_minimises_linear_loss_on_kl_ellipse():
    """−F⁻¹g minimises gᵀh subject to ½hᵀFh = c (S2:671-690)."""
    g0 = torch.Generator().manual_seed(5)
    A = torch.randn(3, 3, generator=g0)
    F = A @ A.T + 0.5 * torch.eye(3)
    grad = torch.randn(3, generator=g0)
    c = 0.3
    h = natural_gradient_step(grad, F, 1.0, damping=0.0)
    h = h * math.sqrt(2 * c / float(h @ F @ h))
    L = torch.linalg.cholesky(F)
    u = torch.randn(20000, 3, generator=g0)
    u = u / u.norm(dim=1, keepdim=True)
    others = math.sqrt(2 * c) * torch.linalg.solve_triangular(L.T, u.T, upper=True).T
    torch.testing.assert_close(0.5 * torch.einsum("ni,ij,nj->n", others, F, others),
                               torch.full((20000,), c))
    assert float(grad @ h) <= float((others @ grad).min()) + 1e-12


# -------------------------------------------------------- logistic regression (GLM, E5/E6)
def _logistic_problem():
    g = torch.Generator().manual_seed(6)
    n = 300
    X = torch.cat([torch.ones(n, 1), torch.randn(n, 3, generator=g) * torch.tensor([1.0, 4.0,
                                                                                     0.3])], 1)
    w_true = torch.tensor([0.3, -1.0, 0.4, 2.0])
    y = torch.bernoulli(torch.sigmoid(X @ w_true), generator=g)
    return X, y


def _logistic_nll(w, X, y):
    z = X @ w
    return (F_.softplus(z) - y * z).mean()


def _run_logistic(X, y, natural, max_steps, tol=1e-8):
    w = torch.zeros(X.shape[1], requires_grad=True)
    if natural:
        def fisher():  # model Fisher of the mean NLL: Xᵀ diag(p(1−p)) X / N
            p = torch.sigmoid(X @ w.detach())
            return (X.T * (p * (1 - p))) @ X / X.shape[0]

        opt: torch.optim.Optimizer = NaturalGradient([w], lr=1.0, damping=0.0, fisher=fisher)
    else:
        # the largest safe constant step: 1/L with L = λ_max(XᵀX)/(4N) ≥ the Hessian's norm
        lip = float(torch.linalg.eigvalsh(X.T @ X / X.shape[0])[-1]) / 4
        opt = torch.optim.SGD([w], lr=1.0 / lip)
    for step in range(1, max_steps + 1):
        opt.zero_grad()
        _logistic_nll(w, X, y).backward()
        if float(w.grad.norm()) < tol:
            return step - 1, w.detach()
        opt.step()
    return max_steps, w.detach()


def test_natural_gradient_reaches_logistic_optimum_in_fewer_steps():
    X, y = _logistic_problem()
    n_ng, w_ng = _run_logistic(X, y, True, 100)
    n_gd, _w_gd = _run_logistic(X, y, False, 20000)
    assert n_ng <= 10
    assert n_gd > 20 * n_ng, (n_ng, n_gd)
    from sklearn.linear_model import LogisticRegression

    ref = LogisticRegression(C=np.inf, fit_intercept=False, tol=1e-12,
                             max_iter=10000).fit(X.numpy(), y.numpy())
    torch.testing.assert_close(w_ng, torch.from_numpy(ref.coef_[0]), atol=1e-5, rtol=1e-5)


def test_natural_gradient_step_equals_irls_step():
    """With the model Fisher, lr = 1 and no damping, a natural-gradient step on the logistic
    NLL is Fisher scoring, i.e. one IRLS weighted-least-squares solve (J2; E5/E6)."""
    X, y = _logistic_problem()
    w0 = torch.tensor([0.1, -0.2, 0.05, 0.3])
    w = w0.clone().requires_grad_(True)

    def fisher():
        p = torch.sigmoid(X @ w.detach())
        return (X.T * (p * (1 - p))) @ X / X.shape[0]

    opt = NaturalGradient([w], lr=1.0, damping=0.0, fisher=fisher)
    opt.zero_grad()
    _logistic_nll(w, X, y).backward()
    opt.step()
    p = torch.sigmoid(X @ w0)
    W = p * (1 - p)
    z = X @ w0 + (y - p) / W  # working response
    irls = torch.linalg.solve((X.T * W) @ X, (X.T * W) @ z)
    torch.testing.assert_close(w.detach(), irls, atol=1e-10, rtol=1e-10)


def test_bad_arguments_raise():
    w = torch.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match="exactly one of fisher="):
        NaturalGradient([w])  # no Fisher given
    with pytest.raises(ValueError, match="exactly one of fisher="):
        NaturalGradient([w], fisher=lambda: torch.eye(2), log_probs=lambda: torch.zeros(2))
    with pytest.raises(ValueError, match="lr must be a finite number > 0"):
        NaturalGradient([w], lr=0.0, fisher=lambda: torch.eye(2))
    with pytest.raises(ValueError, match=r"fisher must have shape \(2, 2\)"):
        natural_gradient_step(torch.zeros(2), torch.eye(3), 1.0)
    with pytest.raises(ValueError, match="NaN or infinite"):
        natural_gradient_step(torch.zeros(2), torch.full((2, 2), float("nan")), 1.0)
    opt = NaturalGradient([w], fisher=lambda: torch.eye(3))
    w.grad = torch.ones(2)
    with pytest.raises(ValueError, match=r"fisher must have shape \(2, 2\)"):
        opt.step()
