"""The Gaussian forward process (Eqs 8.36–8.38), the parameterisations, the losses' weights
and the continuous-time limit (erratum E-41), against closed forms and Bayes' rule."""

from __future__ import annotations

import math

import pytest
import torch

from genmodels.models.diffusion import (
    X0,
    CosineLogSNR,
    Eps,
    GaussianSchedule,
    LinearLogSNR,
    Score,
    V,
    continuous_diffusion_loss,
    diffusion_loss,
    get_parameterisation,
    level_weights,
    reverse_variances,
)


def schedules() -> dict[str, GaussianSchedule]:
    g = torch.Generator().manual_seed(0)
    v = torch.rand(12, generator=g) + 0.2
    rho2 = torch.sort(torch.rand(12, generator=g) * 50 + 0.01, descending=True).values
    return {
        "linear": GaussianSchedule.linear(50, 1e-3, 0.2),
        "cosine": GaussianSchedule.cosine(40),
        "book": GaussianSchedule.from_book(v, rho2.sqrt()),
        "ve": GaussianSchedule.from_snr(rho2, "ve"),
        "loglinear": LinearLogSNR(-6, 8).discretise(30),
    }


@pytest.mark.parametrize("name", list(schedules()))
def test_marginal_equals_iterated_transitions_exactly(name: str) -> None:
    s = schedules()[name]
    # iterate one-step transitions from x_0 (mean scale m, variance v): m ← β m, v ← β² v + γ²
    m, var = torch.tensor(1.0), torch.tensor(0.0)
    for l in range(1, s.L + 1):
        beta, gamma = s.q_transition(l, l - 1)
        m, var = beta * m, beta**2 * var + gamma**2
        a, sd = s.q_marginal(l)
        torch.testing.assert_close(m, a, rtol=1e-12, atol=0)
        torch.testing.assert_close(var, sd**2, rtol=1e-10, atol=1e-14)
    # composing l → m → n equals l → n (Eq. 8.37 for non-adjacent levels)
    l, mid, n = 1, s.L // 2, s.L
    b1, g1 = s.q_transition(mid, l)
    b2, g2 = s.q_transition(n, mid)
    b, g = s.q_transition(n, l)
    torch.testing.assert_close(b1 * b2, b, rtol=1e-12, atol=0)
    torch.testing.assert_close(b2**2 * g1**2 + g2**2, g**2, rtol=1e-10, atol=1e-14)


def test_marginal_equals_iterated_transitions_by_monte_carlo() -> None:
    s = GaussianSchedule.cosine(30)
    g = torch.Generator().manual_seed(1)
    n = 40_000
    x0 = torch.tensor([1.5, -0.7])
    x = x0.expand(n, 2)
    for l in range(1, s.L + 1):
        beta, gamma = s.q_transition(l, l - 1)
        x = beta * x + gamma * torch.randn(x.shape, generator=g)
        if l in (1, 10, 30):
            a, sd = s.q_marginal(l)
            se_mean = sd / math.sqrt(n)
            assert (x.mean(0) - a * x0).abs().max() < 6 * se_mean
            se_var = sd**2 * math.sqrt(2 / n)
            assert (x.var(0) - sd**2).abs().max() < 6 * se_var


@pytest.mark.parametrize("name", list(schedules()))
def test_posterior_transition_is_bayes_rule_on_the_two_gaussians(name: str) -> None:
    s = schedules()[name]
    g = torch.Generator().manual_seed(2)
    for l, m in [(0, 1), (1, 2), (3, 9), (2, s.L)]:
        x0 = torch.randn(5, 3, generator=g)
        xm = torch.randn(5, 3, generator=g)
        mean, var = s.q_posterior(torch.full((5,), l), torch.full((5,), m), x0, xm)
        # the joint of (x_l, x_m) | x_0: x_l ~ N(α_l x_0, s_l²), x_m = β x_l + γ z
        a_l, s_l = s.q_marginal(l)
        beta, gamma = s.q_transition(m, l)
        c_ll, c_lm, c_mm = s_l**2, beta * s_l**2, beta**2 * s_l**2 + gamma**2
        mu_l, mu_m = a_l * x0, beta * a_l * x0
        bayes_mean = mu_l + c_lm / c_mm * (xm - mu_m)
        bayes_var = c_ll - c_lm**2 / c_mm
        torch.testing.assert_close(mean, bayes_mean, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(var, bayes_var.expand(5), rtol=1e-10, atol=1e-14)
        assert bool((var <= c_ll + 1e-15).all())  # the posterior is narrower than the prior
        if l >= 1:  # the book's (v, ρ) form of Eq. 8.38
            v_l, v_m = s.sigma[l], s.sigma[m]
            r_l, r_m = s.snr[l].sqrt(), s.snr[m].sqrt()
            book = (v_l / r_l) * ((r_l**2 - r_m**2) * x0 + (r_m / v_m) * xm)
            torch.testing.assert_close(mean, book, rtol=1e-9, atol=1e-11)
            torch.testing.assert_close(var, (v_l**2 * (r_l**2 - r_m**2) / r_l**2).expand(5),
                                       rtol=1e-9, atol=1e-14)


def test_posterior_regression_by_monte_carlo() -> None:
    """Regressing x_l on x_m (given x_0) by simulation recovers Eq. 8.38's slope and variance."""
    s = GaussianSchedule.linear(20, 1e-2, 0.1)
    g = torch.Generator().manual_seed(3)
    n, l, m, x0 = 200_000, 4, 11, 0.8
    a_l, s_l = s.q_marginal(l)
    beta, gamma = s.q_transition(m, l)
    xl = a_l * x0 + s_l * torch.randn(n, generator=g)
    xm = beta * xl + gamma * torch.randn(n, generator=g)
    design = torch.stack([xm, torch.ones(n)], 1)
    coef = torch.linalg.lstsq(design, xl[:, None]).solution.squeeze()
    resid = xl - design @ coef
    mean0, var = s.q_posterior(l, m, torch.zeros(1), torch.zeros(1))
    mean1, _ = s.q_posterior(l, m, torch.zeros(1), torch.ones(1))
    slope, intercept = mean1 - mean0, s.q_posterior(l, m, torch.full((1,), x0), torch.zeros(1))[0]
    assert abs(float(coef[0] - slope)) < 0.01
    assert abs(float(coef[1] - intercept)) < 0.01
    assert abs(float(resid.var() / var) - 1) < 0.02


# ------------------------------------------------------------------------ parameterisation
@pytest.mark.parametrize("param", [X0(), Eps(), V(), Score()])
def test_parameterisation_conversions(param) -> None:
    s = GaussianSchedule.cosine(20)
    g = torch.Generator().manual_seed(4)
    lv = torch.randint(1, 21, (8,), generator=g)
    a, sd = s.alpha[lv][:, None], s.sigma[lv][:, None]
    x0, eps = torch.randn(8, 3, generator=g), torch.randn(8, 3, generator=g)
    xl = a * x0 + sd * eps
    out = param.target(x0, eps, a, sd)
    torch.testing.assert_close(param.to_x0(out, xl, a, sd), x0)
    torch.testing.assert_close(param.to_eps(out, xl, a, sd), eps)
    torch.testing.assert_close(param.to_score(out, xl, a, sd), -eps / sd)  # Eq. 8.47
    torch.testing.assert_close(param.from_x0(x0, xl, a, sd), out)
    # x_0 − m̂ = ±c (target − output) for any output
    other = torch.randn(8, 3, generator=g)
    lhs = (x0 - param.to_x0(other, xl, a, sd)).abs()
    torch.testing.assert_close(lhs, param.x0_scale(a, sd) * (out - other).abs())


def test_parameterisation_names() -> None:
    assert isinstance(get_parameterisation("epsilon"), Eps)
    assert isinstance(get_parameterisation("v_prediction"), V)
    assert isinstance(get_parameterisation("sample"), X0)
    with pytest.raises(ValueError, match="parameterisation must be one of"):
        get_parameterisation("noise")


def test_three_parameterisations_give_the_same_loss() -> None:
    """Eq. 8.41 ≡ Eq. 8.48: corresponding denoisers in x0/eps/v/score space, one loss value."""
    s = GaussianSchedule.linear(100, 1e-3, 0.05)
    g = torch.Generator().manual_seed(5)
    x0, eps = torch.randn(64, 2, generator=g), torch.randn(64, 2, generator=g)
    lv = torch.randint(1, 101, (64,), generator=g)

    def m_hat(x, t):  # some fixed x0-predictor
        return torch.tanh(x) * (1 - t)[:, None] + 0.3

    def wrap(param):
        def net(x, t):
            l = (t * s.L).round().long()
            a, sd = s.alpha[l][:, None], s.sigma[l][:, None]
            return param.from_x0(m_hat(x, t), x, a, sd)
        return net

    for weighting in ("elbo", "book", "simple"):
        vals = [diffusion_loss(wrap(p), x0, s, p, weighting=weighting, levels=lv, eps=eps)
                for p in (X0(), Eps(), V(), Score())]
        for v in vals[1:]:
            torch.testing.assert_close(v, vals[0], rtol=1e-8, atol=1e-10)


def test_weights() -> None:
    s = GaussianSchedule.linear(100)
    book = level_weights(s, "book")
    elbo = level_weights(s, "elbo", "posterior")
    torch.testing.assert_close(book, elbo)  # Eq. 8.41 is Eq. 8.40 with the posterior σ_l²
    snr = s.snr
    torch.testing.assert_close(book[1:], 0.5 * (snr[1:-1] - snr[2:]))  # SNR decrements
    torch.testing.assert_close(book[0], 0.5 / s.betas[0])  # the decoder term (E-40)
    assert bool((book > 0).all())
    # the "transition" variance β_l ≥ β̃_l, so its weights are smaller
    assert bool((level_weights(s, "elbo", "transition") <= elbo + 1e-12).all())
    torch.testing.assert_close(reverse_variances(s, "transition"), s.betas)
    torch.testing.assert_close(level_weights(s, "simple"), snr[1:])


# ----------------------------------------------------------------- continuous time (E-41)
M, S2 = 0.5, 2.0  # x_0 ~ N(M, S2)


def optimal_x0(x, alpha, sigma):
    """E[x_0 | x_l] for Gaussian data (Bayes on two Gaussians)."""
    return M + alpha * S2 / (alpha**2 * S2 + sigma**2) * (x - alpha * M)


def exact_continuous_loss(lmin: float, lmax: float) -> float:
    """½ ∫ E‖x_0 − E[x_0|x_λ]‖² dh over h = e^λ ∈ [e^λmin, e^λmax] = ½ ∫ S2/(1 + S2 h) dh."""
    return 0.5 * math.log((1 + S2 * math.exp(lmax)) / (1 + S2 * math.exp(lmin)))


@pytest.mark.parametrize("sched", [LinearLogSNR(-5, 4), CosineLogSNR(-5, 4)])
def test_continuous_loss_is_positive_and_schedule_invariant(sched) -> None:
    g = torch.Generator().manual_seed(6)
    n = 200_000
    x0 = M + math.sqrt(S2) * torch.randn(n, 1, generator=g)

    def net(x, u):
        a, sd = sched.alpha_sigma(u)
        return optimal_x0(x, a[:, None], sd[:, None])

    loss = continuous_diffusion_loss(net, x0, sched, "x0", generator=g)
    exact = exact_continuous_loss(-5, 4)
    assert float(loss.mean()) > 0
    assert abs(float(loss.mean()) - exact) < 5 * float(loss.std()) / math.sqrt(n)


def test_discrete_loss_converges_to_the_continuous_limit() -> None:
    """Eq. 8.41 at the optimal denoiser → the continuous integral, error O(1/L) (no 1/L)."""
    sched = LinearLogSNR(-5, 4)
    exact = exact_continuous_loss(-5, 4)
    errs = []
    for L in (50, 200, 800):
        s = sched.discretise(L)
        # Σ_{l≥2} ½(ρ²_{l−1} − ρ²_l) E‖x_0 − m̂_l‖²  with the posterior MSE S2/(1 + S2 ρ_l²)
        w = level_weights(s, "book")[1:]
        mse = S2 / (1 + S2 * s.snr[2:])
        errs.append(abs(float((w * mse).sum()) - exact))
    assert errs[0] > errs[1] > errs[2]
    assert errs[2] < 1e-2 * exact
    assert 3 < errs[1] / errs[2] < 5  # first order in 1/L


# ------------------------------------------------------------------------------ bad input
def test_bad_schedules_raise() -> None:
    with pytest.raises(ValueError, match=r"betas must lie in \(0, 1\); betas\[2\]"):
        GaussianSchedule.from_betas([0.1, 0.2, 1.5])
    with pytest.raises(ValueError, match="betas contains 1 non-finite"):
        GaussianSchedule.from_betas([0.1, float("nan")])
    with pytest.raises(ValueError, match=r"strictly decrease.*level 3"):
        GaussianSchedule.from_book([0.5, 0.6, 0.7], [3.0, 2.0, 2.5])
    with pytest.raises(ValueError, match=r"alphas_cumprod must lie in \(0, 1\)"):
        GaussianSchedule.from_alphas_cumprod([0.9, -0.1])
    with pytest.raises(ValueError, match="noise level is not increasing"):
        GaussianSchedule.from_alphas_cumprod([0.9, 0.95])
    with pytest.raises(ValueError, match="level 0 is the data"):
        GaussianSchedule(torch.tensor([0.9, 0.5]), torch.tensor([0.1, 0.8]))
    with pytest.raises(ValueError, match="log_snr_min < log_snr_max"):
        LinearLogSNR(3, 2)


def test_timesteps_out_of_range_raise() -> None:
    s = GaussianSchedule.linear(10)
    with pytest.raises(ValueError, match=r"l must lie in 0..10 .* got 11"):
        s.q_marginal(11)
    with pytest.raises(ValueError, match=r"levels must lie in 1..10"):
        diffusion_loss(lambda x, t: x, torch.zeros(2, 1), s, levels=torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="needs m > l"):
        s.q_transition(2, 5)
    with pytest.raises(ValueError, match="integer levels"):
        s.q_marginal(torch.tensor([1.5]))
