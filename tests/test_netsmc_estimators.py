"""Monte Carlo gradient estimators (book §8.2.1–8.2.2, slides S0/S2; CATALOGUE A14, G7–G16).

Unbiasedness is checked against gradients of closed-form expectations (autograd of the closed
form is the oracle) with the error bar stated: |mean − reference| < 4 standard errors in every
coordinate, the standard error estimated from R independent estimates. All seeds are fixed.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats
from torch.distributions import (
    Bernoulli,
    Categorical,
    Exponential,
    Independent,
    MultivariateNormal,
    Normal,
    OneHotCategorical,
)

from genmodels.learning.estimators import (
    ConstantBaseline,
    ControlVariate,
    GaussianBackprop,
    GumbelSoftmax,
    ImplicitReparam,
    LearnedBaseline,
    LeaveOneOutBaseline,
    MovingAverageBaseline,
    Pathwise,
    ScoreFunction,
    bonnet_gradient,
    concrete_log_prob,
    gradient_diagnostics,
    gumbel_cdf,
    gumbel_log_prob,
    gumbel_max_sample,
    gumbel_softmax_sample,
    implicit_reparam,
    price_gradient,
    sample_gumbel,
)

Z_MAX = 4.0  # unbiasedness: every coordinate within 4 standard errors


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------- Gaussian mean/scale


def _f_univariate(x: torch.Tensor) -> torch.Tensor:
    return x**2 + torch.sin(x)


def _closed_univariate(p: torch.Tensor) -> torch.Tensor:
    """E_{N(μ,σ²)}[x² + sin x] = μ² + σ² + sin(μ) e^{−σ²/2}."""
    mu, sigma = p[0], p[1]
    return mu**2 + sigma**2 + torch.sin(mu) * torch.exp(-(sigma**2) / 2)


@pytest.mark.parametrize(
    "estimator",
    [
        ScoreFunction(),
        ScoreFunction(LeaveOneOutBaseline()),
        ScoreFunction(ConstantBaseline(1.5)),
        Pathwise(),
        ImplicitReparam(),
        GaussianBackprop(),
    ],
    ids=["score", "score-loo", "score-const", "pathwise", "implicit", "gaussian-backprop"],
)
def test_gaussian_mean_and_scale_unbiased(estimator) -> None:
    p = torch.tensor([0.7, 1.3])
    ref = torch.autograd.functional.jacobian(_closed_univariate, p)
    d = gradient_diagnostics(estimator, _f_univariate, lambda q: Normal(q[..., 0], q[..., 1]), p,
                             reference=ref, num_samples=4, num_repeats=20000, generator=_gen(0))
    assert d.max_abs_z < Z_MAX, (d.bias, d.standard_error)


def _closed_mvn(p: torch.Tensor, A: torch.Tensor, b: torch.Tensor, c: torch.Tensor,
                D: int) -> torch.Tensor:
    """E[xᵀAx + bᵀx + exp(cᵀx)] = μᵀAμ + tr(AΣ) + bᵀμ + exp(cᵀμ + ½cᵀΣc), Σ = LLᵀ."""
    mu, L = _unpack(p, D)
    Sigma = L @ L.mT
    return (mu @ A @ mu + torch.trace(A @ Sigma) + b @ mu
            + torch.exp(c @ mu + 0.5 * c @ Sigma @ c))


def _unpack(p: torch.Tensor, D: int) -> tuple[torch.Tensor, torch.Tensor]:
    """p (*, D + D(D+1)/2) → μ (*, D) and a lower-triangular L (*, D, D)."""
    rows, cols = torch.tril_indices(D, D)
    L = p.new_zeros(*p.shape[:-1], D, D)
    L[..., rows, cols] = p[..., D:]
    return p[..., :D], L


@pytest.mark.parametrize(
    "estimator", [Pathwise(), ScoreFunction(LeaveOneOutBaseline()), GaussianBackprop()],
    ids=["pathwise", "score-loo", "gaussian-backprop"],
)
def test_full_covariance_gaussian_unbiased(estimator) -> None:
    D = 3
    A = torch.tensor([[1.0, 0.3, 0.0], [0.3, 2.0, -0.5], [0.0, -0.5, 0.7]])
    b = torch.tensor([0.5, -1.0, 0.2])
    c = torch.tensor([0.3, -0.2, 0.4])
    mu0 = torch.tensor([0.2, -0.4, 0.1])
    L0 = torch.tensor([[1.0, 0.0, 0.0], [0.4, 0.8, 0.0], [-0.3, 0.2, 0.6]])
    rows, cols = torch.tril_indices(D, D)
    p = torch.cat([mu0, L0[rows, cols]])
    ref = torch.autograd.functional.jacobian(lambda q: _closed_mvn(q, A, b, c, D), p)

    def f(x: torch.Tensor) -> torch.Tensor:
        return ((x @ A) * x).sum(-1) + x @ b + torch.exp(x @ c)

    def make(q: torch.Tensor) -> MultivariateNormal:
        mu, L = _unpack(q, D)
        return MultivariateNormal(mu, scale_tril=L)

    d = gradient_diagnostics(estimator, f, make, p, reference=ref, num_samples=8,
                             num_repeats=5000, generator=_gen(1))
    assert d.max_abs_z < Z_MAX, (d.bias, d.standard_error)


def test_gaussian_backprop_chain_rule_toy() -> None:
    """μ = Wθ, Σ = diag(exp θ): E[gᵀ∂μ/∂θ + ½Tr(H ∂Σ/∂θ)] vs autograd of the closed form."""
    W = torch.tensor([[1.0, -0.5], [0.3, 0.8]])
    A = torch.tensor([[2.0, 0.4], [0.4, 1.0]])
    c = torch.tensor([0.5, -0.3])
    theta = torch.tensor([0.2, -0.6])

    def closed(t: torch.Tensor) -> torch.Tensor:
        mu, Sigma = W @ t, torch.diag(torch.exp(t))
        return mu @ A @ mu + torch.trace(A @ Sigma) + torch.exp(c @ mu + 0.5 * c @ Sigma @ c)

    ref = torch.autograd.functional.jacobian(closed, theta)

    def f(x: torch.Tensor) -> torch.Tensor:
        return ((x @ A) * x).sum(-1) + torch.exp(x @ c)

    for dist_of in (lambda t: MultivariateNormal(t @ W.T, torch.diag_embed(torch.exp(t))),
                    lambda t: Independent(Normal(t @ W.T, torch.exp(t / 2)), 1)):
        d = gradient_diagnostics(GaussianBackprop(), f, dist_of, theta, reference=ref,
                                 num_samples=8, num_repeats=5000, generator=_gen(2))
        assert d.max_abs_z < Z_MAX


# --------------------------------------------------------------------------- Bonnet & Price


def test_bonnet_and_price_equal_autograd_of_closed_form() -> None:
    mu = torch.tensor([0.3, -0.2])
    L = torch.tensor([[0.8, 0.0], [0.3, 0.5]])
    Sigma = L @ L.T
    a = torch.tensor([0.7, -0.4])

    def closed(m: torch.Tensor, S: torch.Tensor) -> torch.Tensor:  # E[exp(aᵀx)]
        return torch.exp(a @ m + 0.5 * a @ S @ a)

    dmu, dSigma = torch.autograd.functional.jacobian(closed, (mu, Sigma))
    S = 200000
    grad_f = lambda x: a * torch.exp(x @ a)[:, None]  # noqa: E731
    hess_f = lambda x: a[:, None] * a[None, :] * torch.exp(x @ a)[:, None, None]  # noqa: E731
    bonnet = bonnet_gradient(grad_f, mu, L, S, generator=_gen(3))
    price = price_gradient(hess_f, mu, L, S, generator=_gen(4))
    # Error bars from the per-draw spread (an independent draw of the same size).
    x = mu + torch.randn(S, 2, generator=_gen(30)) @ L.T  # x ~ N(μ, L Lᵀ)
    se_b = grad_f(x).std(0) / math.sqrt(S)
    se_p = 0.5 * hess_f(x).std(0) / math.sqrt(S)
    assert ((bonnet - dmu).abs() < Z_MAX * se_b).all()
    assert ((price - dSigma).abs() < Z_MAX * se_p).all()
    # Quadratic f: the Hessian is constant, so Price's theorem is exact (no Monte Carlo error).
    A = torch.tensor([[1.0, 0.4], [0.4, 2.0]])
    _, dS_quad = torch.autograd.functional.jacobian(
        lambda m, Sg: m @ A @ m + torch.trace(A @ Sg), (mu, Sigma))
    exact = price_gradient(lambda x: (A + A.T).expand(x.shape[0], 2, 2), mu, L, 10,
                           generator=_gen(31))
    torch.testing.assert_close(exact, dS_quad)
    # Symmetric convention: moving Σ_01 and Σ_10 together gives E[∂²f/∂x_0∂x_1] (no ½).
    E = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    sym_ref = torch.autograd.functional.jacobian(lambda s: closed(mu, Sigma + s * E),
                                                 torch.tensor(0.0))
    sym = price_gradient(hess_f, mu, L, S, generator=_gen(4), symmetric=True)
    assert abs(float(sym[0, 1] - sym_ref)) < Z_MAX * 2 * float(se_p[0, 1])
    torch.testing.assert_close(sym.diagonal(), price.diagonal())


# --------------------------------------------------------------------------- G12: B(x)


def test_implicit_reparam_B_closed_forms_and_exponential_rate() -> None:
    mu = torch.tensor(0.5, requires_grad=True)
    sigma = torch.tensor(1.3, requires_grad=True)
    x = torch.tensor([-1.0, 0.2, 2.5])
    xt = implicit_reparam(Normal(mu, sigma), x)
    torch.testing.assert_close(xt.detach(), x)
    dmu = torch.autograd.grad(xt.sum(), mu, retain_graph=True)[0]
    dsig = torch.autograd.grad(xt, sigma, grad_outputs=torch.tensor([1.0, 0.0, 0.0]))[0]
    assert float(dmu) == pytest.approx(3.0)  # B_μ = 1 for each draw
    assert float(dsig) == pytest.approx((-1.0 - 0.5) / 1.3)  # B_σ = (x − μ)/σ
    lam = torch.tensor(2.0, requires_grad=True)
    xe = torch.tensor([0.3])
    (dlam,) = torch.autograd.grad(implicit_reparam(Exponential(lam), xe).sum(), lam)
    assert float(dlam) == pytest.approx(-0.3 / 2.0)  # B_λ = −x/λ
    # d/dλ E[X²] = d/dλ 2/λ² = −4/λ³, by both implicit and ordinary reparameterisation.
    for est in (ImplicitReparam(), Pathwise()):
        d = gradient_diagnostics(est, lambda v: v**2, lambda r: Exponential(r), torch.tensor(2.0),
                                 reference=torch.tensor(-4 / 8), num_samples=4,
                                 num_repeats=20000, generator=_gen(5))
        assert d.max_abs_z < Z_MAX


def test_slide_B_formula_fails_for_the_scale() -> None:
    """Regression test documenting erratum S0-4: the slides' exponential-family B(x) =
    [∂_θη·u(x) − ∂_θA]/[∂_x log h + ηᵀ∂_x u] gives the wrong d/dσ E[x²] for a Gaussian."""
    mu, sigma = 0.5, 1.3
    x = mu + sigma * torch.randn(400000, generator=_gen(29))
    # Gaussian: η = (μ/σ², −1/(2σ²)), u = (x, x²), A = μ²/(2σ²) + log σ, h constant.
    num = (x - mu) ** 2 / sigma**3 - 1 / sigma  # ∂_σ η·u − ∂_σ A
    den = -(x - mu) / sigma**2  # ηᵀ ∂_x u
    slide = float((num / den * 2 * x).mean())
    correct = 2 * sigma  # d/dσ (μ² + σ²)
    corrected = float((((x - mu) / sigma) * 2 * x).mean())  # B_σ = (x − μ)/σ
    assert corrected == pytest.approx(correct, rel=0.01)
    assert abs(slide - correct) > 1.0


# --------------------------------------------------------------------------- discrete


@pytest.mark.parametrize(
    "baseline",
    [None, LeaveOneOutBaseline(), ConstantBaseline(2.0), MovingAverageBaseline(0.5),
     LearnedBaseline()],
    ids=["none", "loo", "const", "moving", "learned"],
)
def test_categorical_score_function_unbiased(baseline) -> None:
    r = torch.tensor([1.0, -2.0, 0.5, 3.0])
    logits = torch.tensor([1.0, 0.0, -1.0, 2.0])
    ref = torch.autograd.functional.jacobian(lambda l: torch.softmax(l, -1) @ r, logits)
    f = lambda y: y @ r + 0.5 * (y @ r) ** 2  # noqa: E731  (nonlinear in the one-hot draw)
    ref = torch.autograd.functional.jacobian(
        lambda l: torch.softmax(l, -1) @ (r + 0.5 * r**2), logits)
    est = ScoreFunction(baseline)
    if isinstance(baseline, MovingAverageBaseline):  # give it some history first
        est(f, OneHotCategorical(logits=logits), 16, generator=_gen(6))
    d = gradient_diagnostics(est, f, lambda l: OneHotCategorical(logits=l), logits,
                             reference=ref, num_samples=4, num_repeats=20000, generator=_gen(7))
    assert d.max_abs_z < Z_MAX, (d.bias, d.standard_error)


def test_bernoulli_score_function_unbiased() -> None:
    """d/dθ E_{Bern(σ(θ))}[f] = σ(1 − σ)(f(1) − f(0))."""
    theta = torch.tensor([-0.4, 1.2])
    f = lambda x: (x - 0.3) ** 2 * 5.0 + x  # noqa: E731
    p = torch.sigmoid(theta)
    ref = p * (1 - p) * (f(torch.tensor(1.0)) - f(torch.tensor(0.0)))
    for est in (ScoreFunction(), ScoreFunction(LeaveOneOutBaseline())):
        d = gradient_diagnostics(est, f, lambda t: Bernoulli(logits=t), theta, reference=ref,
                                 num_samples=4, num_repeats=20000, generator=_gen(8))
        assert d.max_abs_z < Z_MAX


def test_expected_score_is_zero() -> None:
    """E[∇ log q] = 0: the score-function estimate of ∇E[constant] (B:2511)."""
    d = gradient_diagnostics(ScoreFunction(), lambda y: torch.ones(y.shape[:-1]),
                             lambda l: OneHotCategorical(logits=l), torch.tensor([0.3, -1.0, 2.0]),
                             reference=torch.zeros(3), num_samples=1, num_repeats=20000,
                             generator=_gen(9))
    assert d.max_abs_z < Z_MAX


# --------------------------------------------------------------------------- variance


def _g13(theta: torch.Tensor) -> Normal:
    return Normal(2.0 * theta + 3.0, 1.0)


def test_baselines_reduce_variance() -> None:
    """Per-estimate variance (S = 4 draws, R = 40000 repeats) on the slides' E[z²] example at
    θ = 0 (mean gradient 12). Relative standard error of each variance < 3%, so a ratio < 0.6
    cannot come from noise."""
    f = lambda z: z**2  # noqa: E731
    theta = torch.tensor(0.0)
    ref = torch.tensor(12.0)

    def var(est) -> float:
        d = gradient_diagnostics(est, f, _g13, theta, reference=ref, num_samples=4,
                                 num_repeats=40000, generator=_gen(10))
        assert d.max_abs_z < Z_MAX  # still unbiased
        return float(d.variance)

    plain = var(ScoreFunction())
    moving = MovingAverageBaseline(0.0)
    ScoreFunction(moving)(f, _g13(theta), 1000, generator=_gen(11))  # b ≈ E[f] = 10
    learned = LearnedBaseline()
    opt = torch.optim.SGD(learned.parameters(), lr=0.05)
    for _ in range(200):  # train the scalar baseline by its regression loss
        opt.zero_grad()
        ScoreFunction(learned)(f, _g13(theta), 16, generator=_gen(12)).loss.backward()
        opt.step()
    assert float(learned.net.b.detach()) == pytest.approx(10.0, abs=1.0)
    for est in (ScoreFunction(ConstantBaseline(10.0)), ScoreFunction(moving),
                ScoreFunction(LeaveOneOutBaseline()), ScoreFunction(learned)):
        assert var(est) < 0.6 * plain
    # A control variate equal to f (with its closed-form mean) removes all score-function
    # noise: the estimate is then the exact gradient of E[h].
    cv = ControlVariate(lambda z: z**2, lambda q: q.mean**2 + q.variance)
    assert var(ScoreFunction(control_variates=[cv])) < 1e-20


def test_control_variate_unbiased_and_reduces_variance() -> None:
    f = _f_univariate
    cv = ControlVariate(lambda x: x**2, lambda q: q.loc**2 + q.scale**2, coefficient=1.0)
    p = torch.tensor([0.7, 1.3])
    ref = torch.autograd.functional.jacobian(_closed_univariate, p)
    make = lambda q: Normal(q[..., 0], q[..., 1])  # noqa: E731
    with_cv = gradient_diagnostics(ScoreFunction(control_variates=[cv]), f, make, p,
                                   reference=ref, num_samples=1, num_repeats=40000,
                                   generator=_gen(13))
    without = gradient_diagnostics(ScoreFunction(), f, make, p, reference=ref, num_samples=1,
                                   num_repeats=40000, generator=_gen(13))
    assert with_cv.max_abs_z < Z_MAX
    assert (with_cv.variance < 0.2 * without.variance).all()


def test_score_function_variance_grows_with_irrelevant_dimensions() -> None:
    """K coordinates share the mean φ; f looks at x_1 only (B:2503–2507). The score-function
    variance grows ~linearly in K, the pathwise variance does not change."""
    def make(K: int):
        return lambda phi: Independent(Normal(phi[..., None].expand(*phi.shape, K), 1.0), 1)

    f = lambda x: x[..., 0] ** 2  # noqa: E731
    phi = torch.tensor(1.0)
    v_sf, v_pw = [], []
    for K in (1, 8, 32):
        v_sf.append(float(gradient_diagnostics(ScoreFunction(), f, make(K), phi,
                                               num_repeats=40000, generator=_gen(14)).variance))
        v_pw.append(float(gradient_diagnostics(Pathwise(), f, make(K), phi,
                                               num_repeats=40000, generator=_gen(14)).variance))
    assert v_sf[1] > 3 * v_sf[0] and v_sf[2] > 3 * v_sf[1]
    np.testing.assert_allclose(v_pw, 4.0, rtol=0.05)  # Var[2x_1] = 4 for every K


# --------------------------------------------------------------------------- Gumbel (A14, G15)


def test_gumbel_distribution() -> None:
    g = sample_gumbel((200000,), loc=0.5, scale=2.0, generator=_gen(15))
    assert stats.kstest(g.numpy(), lambda v: gumbel_cdf(torch.as_tensor(v), 0.5, 2.0).numpy()
                        ).pvalue > 1e-3
    se_mean = math.pi * 2.0 / math.sqrt(6) / math.sqrt(g.numel())
    assert abs(float(g.mean()) - (0.5 + 0.5772156649 * 2.0)) < Z_MAX * se_mean
    assert float(g.var()) == pytest.approx(math.pi**2 * 4.0 / 6, rel=0.03)
    total = integrate.quad(lambda v: float(gumbel_log_prob(torch.tensor(v), 0.5, 2.0).exp()),
                           -30, 60)[0]
    assert total == pytest.approx(1.0, abs=1e-8)
    v = torch.linspace(-3, 8, 7)
    torch.testing.assert_close(gumbel_log_prob(v, 0.5, 2.0),
                               torch.distributions.Gumbel(0.5, 2.0).log_prob(v))
    assert torch.isfinite(sample_gumbel((10**6,), generator=_gen(16))).all()


def test_gumbel_max_frequencies_equal_softmax() -> None:
    """Chi-square goodness of fit of 4×10⁵ Gumbel-max draws to softmax(η), η = (1, 0, −1, 2);
    the test rejects at p < 0.001 (a correct sampler fails 1 run in 1000; the seed is fixed)."""
    eta = torch.tensor([1.0, 0.0, -1.0, 2.0])
    n = 400000
    idx = gumbel_max_sample(eta, (n,), generator=_gen(17))
    counts = torch.bincount(idx, minlength=4).numpy()
    probs = torch.softmax(eta, -1).numpy()
    np.testing.assert_allclose(probs, [0.2369, 0.0871, 0.0321, 0.6439], atol=1e-4)
    assert stats.chisquare(counts, n * probs).pvalue > 1e-3
    # Adding a constant to η changes nothing (same noise, same argmax).
    torch.testing.assert_close(gumbel_max_sample(eta + 5.0, (1000,), generator=_gen(18)),
                               gumbel_max_sample(eta, (1000,), generator=_gen(18)))
    # Regression for erratum S2-14: one Gumbel shared by all categories is deterministic.
    shared = sample_gumbel((n, 1), generator=_gen(19))
    assert (torch.argmax(eta + shared, -1) == 3).all()
    # A wrong sampler is caught by the same test: plain softmax-free argmax of η + N(0, 1).
    wrong = torch.argmax(eta + torch.randn(n, 4, generator=_gen(20)), -1)
    assert stats.chisquare(torch.bincount(wrong, minlength=4).numpy(), n * probs).pvalue < 1e-3


# --------------------------------------------------------------------------- Gumbel-softmax (G16)


def test_gumbel_softmax_samples_and_low_temperature() -> None:
    eta = torch.tensor([1.0, 0.0, -1.0, 2.0])
    y = gumbel_softmax_sample(eta, 0.7, (5000,), generator=_gen(21))
    assert (y >= 0).all()
    torch.testing.assert_close(y.sum(-1), torch.ones(5000))
    for tau in (1e-3, 1e-30):  # log-space: finite, one-hot, even at absurd temperatures
        yl = gumbel_softmax_sample(eta, tau, (100000,), generator=_gen(22))
        assert torch.isfinite(yl).all()
        assert ((yl.max(-1).values - 1.0).abs() < 1e-6).float().mean() > 0.99
    # At τ → 0 the argmax frequencies are softmax(η) (chi-square, reject at p < 0.001).
    counts = torch.bincount(yl.argmax(-1), minlength=4).numpy()
    assert stats.chisquare(counts, 100000 * torch.softmax(eta, -1).numpy()).pvalue > 1e-3
    with pytest.raises(ValueError, match="temperature"):
        gumbel_softmax_sample(eta, 0.0)


def test_gumbel_softmax_jacobian() -> None:
    """∂σ_l/∂g_m = (1/τ) σ_l (δ_lm − σ_m) (Eq. 8.29's derivative with erratum E-39)."""
    g = torch.tensor([0.3, -1.2, 0.8])
    tau = 0.4
    J = torch.autograd.functional.jacobian(lambda v: torch.softmax(v / tau, -1), g)
    s = torch.softmax(g / tau, -1)
    torch.testing.assert_close(J, (torch.diag(s) - s[:, None] * s[None, :]) / tau)


def test_concrete_density_integrates_and_matches_samples() -> None:
    eta = torch.tensor([0.4, -0.3])
    tau = 0.6

    def dens(y1: float) -> float:
        y = torch.tensor([y1, 1.0 - y1])
        return float(concrete_log_prob(y, eta, tau).exp())

    assert integrate.quad(dens, 0, 1, limit=200)[0] == pytest.approx(1.0, abs=1e-6)
    n = 200000
    y = gumbel_softmax_sample(eta, tau, (n,), generator=_gen(23))
    frac = float((y[:, 0] < 0.3).double().mean())
    prob = integrate.quad(dens, 0, 0.3, limit=200)[0]
    assert abs(frac - prob) < Z_MAX * math.sqrt(prob * (1 - prob) / n)
    # K = 3 against torch's RelaxedOneHotCategorical density (same parameterisation).
    eta3 = torch.tensor([0.2, -0.5, 1.0])
    y3 = gumbel_softmax_sample(eta3, 0.8, (5,), generator=_gen(24))
    torch.testing.assert_close(
        concrete_log_prob(y3, eta3, 0.8),
        torch.distributions.RelaxedOneHotCategorical(torch.tensor(0.8), logits=eta3).log_prob(y3))


def test_gumbel_softmax_estimator_bias_shrinks_with_temperature() -> None:
    r = torch.tensor([1.0, -2.0, 0.5, 3.0])
    logits = torch.tensor([1.0, 0.0, -1.0, 2.0])
    ref = torch.autograd.functional.jacobian(lambda l: torch.softmax(l, -1) @ r, logits)
    make = lambda l: OneHotCategorical(logits=l)  # noqa: E731
    biases = {}
    for tau in (1.0, 0.1):
        d = gradient_diagnostics(GumbelSoftmax(tau), lambda y: y @ r, make, logits,
                                 reference=ref, num_repeats=100000, generator=_gen(25))
        biases[tau] = float(d.bias.abs().max())
        if tau == 1.0:
            assert d.max_abs_z > 10  # biased at τ = 1, detectably
    assert biases[0.1] < 0.1 * biases[1.0]
    # Straight-through: the forward value is f at a one-hot draw (an unbiased estimate of E[f]).
    est = GumbelSoftmax(0.5, straight_through=True)(lambda y: y @ r, make(logits), 100000,
                                                    generator=_gen(26))
    assert set(torch.unique(est.samples).tolist()) <= {0.0, 1.0}
    se = float((est.samples @ r).std()) / math.sqrt(100000)
    assert abs(float(est.value) - float(torch.softmax(logits, -1) @ r)) < Z_MAX * se


# --------------------------------------------------------------------------- API


def test_surrogate_trick_and_validation() -> None:
    theta = torch.tensor(0.5, requires_grad=True)
    est = ScoreFunction()(lambda z: z**2, _g13(theta), 10, generator=_gen(27))
    torch.testing.assert_close(est.loss.detach(), est.value)
    torch.testing.assert_close(est.value, (est.samples**2).mean(0))
    est.loss.backward()
    assert theta.grad is not None
    with pytest.raises(ValueError, match="num_samples"):
        Pathwise()(lambda z: z, Normal(0.0, 1.0), 0)
    with pytest.raises(ValueError, match="rsample"):
        Pathwise()(lambda y: y.sum(-1), OneHotCategorical(logits=torch.zeros(3)), 2)
    with pytest.raises(ValueError, match="num_samples >= 2"):
        ScoreFunction(LeaveOneOutBaseline())(lambda z: z, Normal(0.0, 1.0), 1)
    with pytest.raises(ValueError, match="one value per draw"):
        Pathwise()(lambda z: z.sum(), Normal(torch.zeros(3), 1.0), 4)
    with pytest.raises(ValueError, match="temperature"):
        GumbelSoftmax(0.0)
    with pytest.raises(ValueError, match="Categorical"):
        GumbelSoftmax(1.0)(lambda y: y, Normal(0.0, 1.0), 2)
    with pytest.raises(ValueError, match="GaussianBackprop"):
        GaussianBackprop()(lambda y: y.float(), Categorical(logits=torch.zeros(3)), 2)
    with pytest.raises(ValueError, match="decay"):
        MovingAverageBaseline(1.0)
    # Reproducible through the generator, and the global RNG is left alone.
    state = torch.random.get_rng_state()
    a = Pathwise()(lambda z: z, Normal(0.0, 1.0), 5, generator=_gen(28)).samples
    b = Pathwise()(lambda z: z, Normal(0.0, 1.0), 5, generator=_gen(28)).samples
    torch.testing.assert_close(a, b)
    assert torch.equal(state, torch.random.get_rng_state())
