"""VAE parts against independent oracles: torch.distributions KLs and densities, the exact
marginal of a linear-Gaussian VAE, enumeration of discrete latents, Gumbel-max frequencies."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import MultivariateNormal, Normal, kl_divergence

from genmodels.io import load, save
from genmodels.models.vae import (
    VAE,
    DiagonalGaussianParams,
    DiagonalGaussianRecognition,
    FullGaussianRecognition,
    GumbelSoftmaxRecognition,
    gaussian_kl_diagonal,
    gaussian_kl_full,
    gaussian_vae_loss,
)


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny networks: threads only add contention
    yield
    torch.set_num_threads(n)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_kl_closed_forms_match_torch_distributions():
    g = gen()
    nu, log_var = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)
    ref = kl_divergence(Normal(nu, (0.5 * log_var).exp()), Normal(0.0, 1.0)).sum(-1)
    torch.testing.assert_close(gaussian_kl_diagonal(nu, log_var), ref)
    rec = FullGaussianRecognition(3)
    p = rec.params(torch.randn(5, rec.out_features(), generator=g))
    assert torch.all(torch.triu(p.scale_tril, 1) == 0)
    ref = kl_divergence(MultivariateNormal(p.nu, scale_tril=p.scale_tril),
                        MultivariateNormal(torch.zeros(3), torch.eye(3)))
    torch.testing.assert_close(gaussian_kl_full(p.nu, p.scale_tril), ref)
    torch.testing.assert_close(rec.kl_to_prior(p), ref)


def test_recognition_log_prob_and_samples_match_torch():
    g = gen(1)
    for rec in (DiagonalGaussianRecognition(3), FullGaussianRecognition(3)):
        p = rec.params(torch.randn(4, rec.out_features(), generator=g))
        x = rec.sample(p, 20000, gen(2))
        if isinstance(p, DiagonalGaussianParams):
            cov = torch.diag_embed(p.log_var.exp())
        else:
            cov = p.scale_tril @ p.scale_tril.mT
        ref = MultivariateNormal(p.nu, cov)
        torch.testing.assert_close(rec.log_prob(p, x[:3]), ref.log_prob(x[:3]))
        # sample mean within 5 standard errors of ν (per coordinate)
        se = (torch.diagonal(cov, dim1=-2, dim2=-1) / 20000).sqrt()
        assert torch.all((x.mean(0) - p.nu).abs() < 5 * se)
        emp_cov = torch.einsum("sni,snj->nij", x - p.nu, x - p.nu) / 20000
        torch.testing.assert_close(emp_cov, cov, atol=0.1 * cov.abs().max().item(), rtol=0)


def test_two_forms_of_the_elbo_agree():
    """−ELBO = −E_q[log p(y|x)] + KL  (closed-form KL)  vs  E_q[log q − log p(x, y)] (same
    samples): their difference is KL − its Monte Carlo estimate, within 5 standard errors."""
    model = VAE(5, 2, hidden=[8], likelihood="gaussian", dtype="float64")
    y = torch.randn(3, 5, generator=gen())
    with torch.no_grad():
        p = model.encode(y)
        x = model.recognition.sample(p, 40000, gen(1))
        log_lik = model.likelihood.log_prob(model.decoder(x), y)
        form1 = log_lik.mean(0) - model.recognition.kl_to_prior(p)
        w = model.log_joint(x, y) - model.recognition.log_prob(p, x)
        form2 = w.mean(0)
        se = (log_lik - w).std(0) / math.sqrt(40000)
    assert torch.all((form1 - form2).abs() < 5 * se)
    e = model.elbo(y, n_samples=40000, generator=gen(1))
    torch.testing.assert_close(e.elbo, form1)
    torch.testing.assert_close(e.elbo, e.log_likelihood - e.kl)


def test_gaussian_vae_loss_closed_form():
    """§8.2.2 boxed loss: v → 0 gives the autoencoder's squared error / 2α + ½D log τα; the
    constant uses D = dim y (≠ K); it equals the VAE's −ELBO with a fixed isotropic emission."""
    D, K, alpha = 7, 2, 0.3
    model = VAE(D, K, network="linear", likelihood="gaussian", variance=alpha,
                learn_variance=False, dtype="float64")
    y = torch.randn(4, D, generator=gen())
    p = model.encode(y)
    with torch.no_grad():
        loss, kl, recon = gaussian_vae_loss(y, p.nu, torch.full_like(p.log_var, -80.0),
                                            model.decoder, alpha, generator=gen(3))
        sq = (model.decoder(p.nu) - y).square().sum(-1)
        const = 0.5 * D * math.log(2 * math.pi * alpha)
        torch.testing.assert_close(recon, sq / (2 * alpha) + const)
        loss, kl, recon = gaussian_vae_loss(y, p.nu, p.log_var, model.decoder, alpha,
                                            n_samples=4, generator=gen(3))
        e = model.elbo(y, n_samples=4, generator=gen(3))
        torch.testing.assert_close(loss, -e.elbo)
        torch.testing.assert_close(kl, e.kl)


def _linear_gaussian_log_marginal(model: VAE, y: torch.Tensor) -> torch.Tensor:
    W, b = model.decoder.weight, model.decoder.bias
    alpha = model.likelihood.log_alpha.exp()
    C = W @ W.T + alpha * torch.eye(W.shape[0], dtype=W.dtype)
    return MultivariateNormal(b, C).log_prob(y)


def _set_encoder_to_posterior(model: VAE, inflate: float, shift: float) -> None:
    """Write the exact posterior of the linear-Gaussian model into the (linear, full-covariance)
    encoder: p̂(x | y) = N(M⁻¹Wᵀ(y − b), α M⁻¹), M = WᵀW + αI — with its covariance scaled by
    ``inflate`` and its mean moved by ``shift``."""
    W, b = model.decoder.weight.detach(), model.decoder.bias.detach()
    alpha = model.likelihood.log_alpha.exp().detach()
    K = W.shape[1]
    M = W.T @ W + alpha * torch.eye(K, dtype=W.dtype)
    A = torch.linalg.solve(M, W.T)  # (K, D)
    L = torch.linalg.cholesky(inflate * alpha * torch.linalg.inv(M))
    rows, cols = torch.tril_indices(K, K, offset=-1)
    with torch.no_grad():
        enc = model.encoder
        enc.weight.zero_()
        enc.weight[:K] = A
        enc.bias[:K] = -A @ b + shift
        enc.bias[K:2 * K] = torch.diagonal(L).log()
        enc.bias[2 * K:] = L[rows, cols]


def test_exact_posterior_makes_the_elbo_exact():
    """G5: with the encoder equal to the exact posterior the ELBO equals log p̂(y) (every
    importance weight is exactly p̂(y))."""
    model = VAE(4, 2, network="linear", likelihood="gaussian", recognition="full",
                variance=0.5, dtype="float64", seed=3)
    _set_encoder_to_posterior(model, 1.0, 0.0)
    y = torch.randn(6, 4, generator=gen(), dtype=torch.float64) * 2
    with torch.no_grad():
        exact = _linear_gaussian_log_marginal(model, y)
        p = model.encode(y)
        x = model.recognition.sample(p, 3, gen(1))
        w = model.log_joint(x, y) - model.recognition.log_prob(p, x)
        torch.testing.assert_close(w, exact.expand(3, -1))  # every importance weight is p̂(y)
        torch.testing.assert_close(model.iwae_bound(y, k=3, generator=gen(1)), exact)
        e = model.elbo(y, n_samples=20000, generator=gen(2))  # closed-form KL + MC recon.
        x = model.recognition.sample(p, 20000, gen(2))
        se = model.likelihood.log_prob(model.decoder(x), y).std(0) / math.sqrt(20000)
        assert torch.all((e.elbo - exact).abs() < 5 * se)


def test_iwae_bound_orders_and_converges_to_exact_marginal():
    """For a linear-Gaussian decoder log p̂(y) is exact: ELBO ≤ E IW_k ≤ log p̂(y), IW_k → log p̂(y)
    as k grows (here with an imperfect recognition model)."""
    model = VAE(4, 2, network="linear", likelihood="gaussian", recognition="full",
                variance=0.5, dtype="float64", seed=3)
    _set_encoder_to_posterior(model, 2.0, 0.5)
    y = torch.randn(6, 4, generator=gen(), dtype=torch.float64) * 2
    with torch.no_grad():
        exact = _linear_gaussian_log_marginal(model, y)
        elbo = model.elbo(y, n_samples=20000, generator=gen(1)).elbo
        iw1 = model.iwae_bound(y, k=20000, generator=gen(1), chunk=20000)
        reps = torch.stack([model.iwae_bound(y, k=1, generator=gen(s)) for s in range(400)])
        iw10 = torch.stack([model.iwae_bound(y, k=10, generator=gen(s)) for s in range(400)])
        iw_big = model.iwae_bound(y, k=20000, generator=gen(2))
    gap = exact - elbo
    assert torch.all(gap > 0.05)
    se1 = reps.std(0) / math.sqrt(400)
    assert torch.all((reps.mean(0) - elbo).abs() < 5 * se1)  # IW_1 is the ELBO in expectation
    se10 = iw10.std(0) / math.sqrt(400)
    assert torch.all(iw10.mean(0) > elbo + 0.3 * gap)  # tighter with k
    assert torch.all(iw10.mean(0) < exact + 5 * se10)  # still a lower bound
    assert torch.all(iw1 >= elbo - 1e-9)  # log-mean-exp ≥ mean (Jensen) on the same samples
    assert torch.all((exact - iw_big).abs() < 0.05 * gap)


def test_categorical_recognition_samples():
    """Exact codes by Gumbel-max are distributed as softmax(η) (Eq. 8.28; CATALOGUE G15
    numbers): chi-square test; relaxed codes lie on the simplex."""
    eta = torch.tensor([1.0, 0.0, -1.0, 2.0], dtype=torch.float64)
    rec = GumbelSoftmaxRecognition(1, 4)
    from genmodels.models.vae import CategoricalParams

    n = 400_000
    x = rec.sample(CategoricalParams(eta.expand(1, 1, 4)), n, gen(), relaxed=False)
    counts = x.sum((0, 1))
    expected = n * torch.softmax(eta, 0)
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 16.27  # 99.9% quantile of chi-square with 3 degrees of freedom
    torch.testing.assert_close(torch.softmax(eta, 0),
                               torch.tensor([0.2369, 0.0871, 0.0321, 0.6439],
                                            dtype=torch.float64), atol=1e-4, rtol=0)
    relaxed = rec.sample(CategoricalParams(eta.expand(1, 1, 4)), 1000, gen(1))
    assert torch.all(relaxed >= 0)
    torch.testing.assert_close(relaxed.sum(-1), torch.ones(1000, 1, dtype=relaxed.dtype))


def _exact_discrete_elbo(model: VAE, y: torch.Tensor) -> torch.Tensor:
    """Σ_x q(x|y)[log p̂(y|x)] − KL by enumerating all C^K codes."""
    K, C = model.latent_dim, model.recognition.n_categories  # type: ignore[attr-defined]
    codes = torch.cartesian_prod(*[torch.arange(C)] * K).reshape(-1, K)
    onehot = torch.nn.functional.one_hot(codes, C).to(y.dtype).flatten(-2)  # (C^K, K·C)
    p = model.encode(y)
    x = onehot[:, None, :].expand(-1, y.shape[0], -1)
    logq = model.recognition.log_prob(p, x)  # (C^K, N)
    ll = model.likelihood.log_prob(model.decoder(x), y)
    return (logq.exp() * ll).sum(0) - model.recognition.kl_to_prior(p)


@pytest.mark.parametrize("n_samples", [1, 3])
def test_score_function_gradient_is_unbiased(n_samples: int):
    """The score-function loss's gradient w.r.t. the encoder averages to the exact gradient of
    the enumerated ELBO (within 5 standard errors per coordinate)."""
    model = VAE(4, 2, recognition="score", n_categories=3, hidden=[5], n_samples=n_samples,
                dtype="float64", seed=2)
    y = torch.bernoulli(torch.full((3, 4), 0.5, dtype=torch.float64), generator=gen())
    enc = list(model.encoder.parameters())
    exact = torch.autograd.grad(-_exact_discrete_elbo(model, y).mean(), enc)
    exact_flat = torch.cat([e.flatten() for e in exact])
    g = gen(5)
    model.loss(y, g)  # initialise the running baseline (one-sample case)
    # each call's loss averages 200 independent copies of the batch: one estimate per call
    ys = y.repeat(200, 1)
    reps = 60
    est = torch.empty(reps, exact_flat.numel(), dtype=torch.float64)
    for r in range(reps):
        grads = torch.autograd.grad(model.loss(ys, g), enc)
        est[r] = torch.cat([e.flatten() for e in grads])
    se = est.std(0) / math.sqrt(reps)
    assert torch.all((est.mean(0) - exact_flat).abs() < 5 * se + 1e-10)
    assert torch.all(se < 0.2 * exact_flat.abs().max())  # the check has power


def test_gumbel_softmax_vae_trains_and_its_elbo_is_exact_by_enumeration():
    model = VAE(4, 2, recognition="gumbel", n_categories=3, hidden=[5], dtype="float64")
    y = torch.bernoulli(torch.full((3, 4), 0.5, dtype=torch.float64), generator=gen())
    exact = _exact_discrete_elbo(model, y).detach()
    e = model.elbo(y, n_samples=40000, generator=gen(1))
    assert torch.all((e.elbo - exact).abs() < 0.05)
    loss = model.loss(y, gen(2))
    loss.backward()
    assert all(p.grad is not None for p in model.encoder.parameters())


@pytest.mark.parametrize("kw", [
    dict(recognition="diagonal", likelihood="bernoulli"),
    dict(recognition="full", likelihood="gaussian", network="linear"),
    dict(recognition="gumbel", likelihood="bernoulli", hard=True),
    dict(recognition="diagonal", likelihood="categorical", n_values=17, network="conv",
         hidden=[4], image_shape=[8, 8]),
])
def test_shapes_sample_reconstruct_save_load(tmp_path, kw):
    D = 64 if kw.get("network") == "conv" else 6
    model = VAE(D, 3, **kw)
    if kw["likelihood"] == "categorical":
        y = torch.randint(0, 17, (5, D)).float()
    else:
        y = torch.bernoulli(torch.full((5, D), 0.5))
    assert model.loss(y, gen()).shape == ()
    assert model.sample(4, gen()).shape == (4, D)
    assert model.sample(4, gen(), mean=True).shape == (4, D)
    assert model.reconstruct(y).shape == (5, D)
    assert model.iwae_bound(y, k=3, generator=gen()).shape == (5,)
    save(model, tmp_path / "m")
    back = load(tmp_path / "m")
    torch.testing.assert_close(back.elbo(y, 2, gen(7)).elbo, model.elbo(y, 2, gen(7)).elbo)


def test_bad_input():
    model = VAE(4, 2)
    with pytest.raises(ValueError, match="shape"):
        model.elbo(torch.zeros(3, 5))
    with pytest.raises(ValueError, match="NaN"):
        model.elbo(torch.tensor([[0.0, 1.0, float("nan"), 0.0]]))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        model.elbo(torch.full((2, 4), 3.0))
    with pytest.raises(ValueError, match="recognition"):
        VAE(4, 2, recognition="flow")
    with pytest.raises(ValueError, match="image_shape"):
        VAE(10, 2, network="conv")
    with pytest.raises(ValueError, match="latent_dim"):
        VAE(4, 0)


def test_gaussian_vae_loss_gradient_matches_finite_differences():
    """G6: the reparameterised gradient of the loss equals central finite differences of the
    same Monte Carlo loss under common random numbers (same generator seed)."""
    model = VAE(5, 2, hidden=[6], likelihood="gaussian", dtype="float64", seed=1)
    y = torch.randn(3, 5, generator=gen(), dtype=torch.float64)
    p = model.encode(y)
    nu = p.nu.detach().clone().requires_grad_(True)
    lv = p.log_var.detach().clone().requires_grad_(True)

    def total(nu_: torch.Tensor, lv_: torch.Tensor) -> torch.Tensor:
        return gaussian_vae_loss(y, nu_, lv_, model.decoder, 0.7, n_samples=5,
                                 generator=gen(9))[0].sum()

    g_nu, g_lv = torch.autograd.grad(total(nu, lv), (nu, lv))
    h = 1e-6
    with torch.no_grad():
        for (i, k) in [(0, 0), (1, 1), (2, 0)]:
            e = torch.zeros_like(nu)
            e[i, k] = h
            fd = (total(nu + e, lv) - total(nu - e, lv)) / (2 * h)
            assert abs(float(fd) - float(g_nu[i, k])) < 1e-6 * (1 + abs(float(fd)))
            fd = (total(nu, lv + e) - total(nu, lv - e)) / (2 * h)
            assert abs(float(fd) - float(g_lv[i, k])) < 1e-6 * (1 + abs(float(fd)))


def test_price_form_of_the_variance_gradient_equals_pathwise():
    """G5, Eqs. 8.16–8.17: the gradient of E_q[E_emiss] w.r.t. the recognition variance v_k²
    is ½ E_q[∂²E_emiss/∂x_k²] (Price), and w.r.t. ν it is E_q[∂E_emiss/∂x] (Bonnet); the
    pathwise (autodiff) estimates agree within 5 standard errors."""
    model = VAE(4, 2, hidden=[6], likelihood="bernoulli", dtype="float64", seed=4)
    y = torch.tensor([[1.0, 0.0, 1.0, 1.0]], dtype=torch.float64)
    nu = torch.tensor([[0.3, -0.5]], dtype=torch.float64, requires_grad=True)
    var = torch.tensor([[0.4, 0.9]], dtype=torch.float64, requires_grad=True)
    S = 20000
    z = torch.randn(S, 1, 2, generator=gen(3), dtype=torch.float64)
    x = nu + var.sqrt() * z
    e = -model.likelihood.log_prob(model.decoder(x), y)  # E_emiss per sample, (S, 1)
    g_nu_s, g_var_s = [], []
    for s in range(0, S, 4000):  # per-sample pathwise gradients, in chunks
        gs = torch.autograd.grad(e[s:s + 4000].sum(), (nu, var), retain_graph=True)
        g_nu_s.append(gs[0])
        g_var_s.append(gs[1])
    path_nu = torch.stack(g_nu_s).sum(0) / S
    path_var = torch.stack(g_var_s).sum(0) / S
    # Bonnet / Price with exact per-sample derivatives in x
    xs = x.detach().requires_grad_(True)
    ex = -model.likelihood.log_prob(model.decoder(xs), y)
    gx = torch.autograd.grad(ex.sum(), xs, create_graph=True)[0]  # (S, 1, 2)
    hdiag = torch.stack([torch.autograd.grad(gx[..., k].sum(), xs, retain_graph=True)[0][..., k]
                         for k in range(2)], -1)  # (S, 1, 2)
    bonnet = gx.detach().mean(0)
    assert torch.all((path_nu - bonnet).abs() < 1e-10 + 1e-9 * bonnet.abs())  # same samples
    # the pathwise variance gradient per sample is ∂E/∂x · z/(2v): its mean is autograd's, and
    # it equals Price's ½ ∂²E/∂x² in expectation (Stein's lemma), not sample by sample
    per_sample = gx.detach() * z / (2 * var.detach().sqrt())
    torch.testing.assert_close(per_sample.mean(0), path_var)
    diff = per_sample - 0.5 * hdiag.detach()
    se = diff.std(0) / math.sqrt(S)
    assert torch.all(diff.mean(0).abs() < 5 * se)
    assert torch.all(0.5 * hdiag.mean(0).abs() > 10 * se)  # the check has power
