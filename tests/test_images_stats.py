"""Second-order statistics of natural images (B6): circulant covariances are diagonalised by
the Fourier modes, the 1/f² law and its fit, whitening, and the patch loader."""

from __future__ import annotations

import math

import pytest
import torch

from genmodels.data.images import (
    autocorrelation,
    circulant_covariance,
    extract_patches,
    fit_patch_whitening,
    fit_power_law,
    fourier_modes,
    fourier_whiten,
    natural_images,
    power_spectrum,
    radial_average,
    stationary_covariance,
    whitened_patches,
)


def _power_law_field(n: int, size: int, exponent: float, seed: int) -> torch.Tensor:
    """Gaussian fields on a size×size torus with power spectrum ∝ f^exponent."""
    g = torch.Generator().manual_seed(seed)
    f = torch.fft.fftfreq(size)
    fr = torch.sqrt(f[:, None] ** 2 + f[None, :] ** 2)
    amp = torch.where(fr > 0, fr.pow(exponent / 2), torch.zeros_like(fr))
    white = torch.randn(n, size, size, generator=g)
    return torch.fft.ifft2(torch.fft.fft2(white) * amp).real


def test_circulant_covariance_is_diagonalised_by_fourier_modes() -> None:
    h, w = 6, 5
    g = torch.Generator().manual_seed(0)
    # a valid stationary autocovariance on the torus: r = ifft2(S) for a symmetric S > 0
    S = torch.rand(h, w, generator=g) + 0.1
    S = 0.5 * (S + torch.roll(S.flip(0, 1), (1, 1), (0, 1)))  # S(−f) = S(f) → r real
    r = torch.fft.ifft2(S).real
    Sigma = circulant_covariance(r)
    F = fourier_modes(h, w)
    D = F.conj().T @ Sigma.to(F.dtype) @ F
    off = D - torch.diag_embed(D.diagonal())
    assert float(off.abs().square().sum() / D.abs().square().sum()) < 1e-20
    # eigenvalues = the DFT of the autocovariance (the power spectrum), in the modes' order
    assert torch.allclose(D.diagonal().real, torch.fft.fft2(r).real.reshape(-1), atol=1e-12)
    assert torch.allclose(F @ F.conj().T, torch.eye(h * w, dtype=F.dtype), atol=1e-12)


def test_stationary_covariance_is_toeplitz_and_matches_patch_covariance() -> None:
    fields = list(_power_law_field(4, 64, -2.0, seed=1))
    Sigma = stationary_covariance(fields, (3, 4))
    # block-Toeplitz with Toeplitz blocks: entries depend only on the lag
    r = autocorrelation(fields, (3, 4))
    assert torch.allclose(Sigma[0, 1], r[2, 4]) and torch.allclose(Sigma[5, 6], r[2, 4])
    assert torch.allclose(Sigma[0, 4], r[3, 3]) and torch.allclose(Sigma[6, 10], r[3, 3])
    patches = extract_patches(fields, (3, 4), 40_000, seed=2)
    emp = torch.cov(patches.T, correction=0)
    assert float((emp - Sigma).abs().max()) < 0.05 * float(Sigma.diagonal().mean())


def test_power_law_fit_recovers_minus_two_and_whitening_flattens() -> None:
    fields = list(_power_law_field(8, 128, -2.0, seed=3))
    f, P = radial_average(power_spectrum(fields, 128, window=False))
    fit = fit_power_law(f, P)
    assert abs(fit.exponent + 2.0) < 0.05
    flat = fourier_whiten(fields, fit)
    f2, P2 = radial_average(power_spectrum(flat, 128, window=False))
    assert abs(fit_power_law(f2, P2).exponent) < 0.05


def test_natural_images_spectrum_falls_near_inverse_square() -> None:
    """Natural photographs: a power law over two octaves and more, with an exponent in the range
    reported for calibrated natural images (about −1.6 to −3; van der Schaaf & van Hateren
    1996). These JPEG/PNG photographs are steeper than −2 (see the notes for the values)."""
    imgs = natural_images()
    assert len(imgs) >= 2
    f, P = radial_average(power_spectrum([im / im.std() for im in imgs], 128))
    fit = fit_power_law(f, P, f_min=0.02, f_max=0.25)
    assert -3.2 < fit.exponent < -1.6
    assert fit.residual_std < 0.15  # a straight line in log–log coordinates
    # whitening with the fitted law flattens the spectrum
    flat = fourier_whiten(imgs, fit)
    f2, P2 = radial_average(power_spectrum(flat, 128))
    assert abs(fit_power_law(f2, P2, f_min=0.02, f_max=0.25).exponent) < 0.4


def test_whitened_patches_have_identity_covariance_to_sampling_error() -> None:
    """Held-out patches whitened with a whitening fitted on other patches: every entry of their
    covariance (on the 63 non-DC directions) is within 6 standard errors of the identity; the
    standard error is √2 × that of a sample covariance entry (both halves are samples)."""
    ds, wh = whitened_patches(8, 20_000, seed=0)
    assert ds.X.shape == (20_000, 64) and ds.image_shape == (8, 8)
    Y = extract_patches(natural_images(), 8, 20_000, seed=1)
    Z = wh.transform(Y - Y.mean(1, keepdim=True))
    D = 64
    u = torch.full((D,), 1.0 / math.sqrt(D))
    Q = torch.linalg.qr(torch.cat([u[:, None], torch.eye(D) - torch.outer(u, u)], 1)).Q[:, 1:]
    Zq = Z @ Q
    N = Zq.shape[0]
    cov = Zq.T @ Zq / N
    se = (Zq[:, :, None] * Zq[:, None, :]).std(0) / math.sqrt(N)
    assert float(((cov - torch.eye(D - 1)).abs() / (math.sqrt(2) * se)).max()) < 6.0
    # in sample it is the identity exactly; the DC direction is removed
    Zin = ds.X @ Q
    assert torch.allclose(Zin.T @ Zin / N, torch.eye(D - 1), atol=1e-8)
    assert float((ds.X @ u).abs().max()) < 1e-8
    # and the whitening inverts
    assert torch.allclose(wh.inverse_transform(Z), Y - Y.mean(1, keepdim=True), atol=1e-8)


def test_zca_whitening_without_dc_removal() -> None:
    Y = extract_patches(natural_images("sklearn"), 4, 5000, seed=3)
    wh = fit_patch_whitening(Y)
    Z = wh.transform(Y)
    assert torch.allclose(torch.cov(Z.T, correction=0), torch.eye(16), atol=1e-8)
    assert torch.allclose(wh.matrix, wh.matrix.T)  # symmetric (ZCA)


def test_bad_input() -> None:
    img = torch.rand(10, 12)
    with pytest.raises(ValueError, match=r"patch size \(11, 11\) is larger than image 0"):
        extract_patches([img], 11, 5)
    bad = img.clone()
    bad[2, 3] = float("nan")
    with pytest.raises(ValueError, match=r"images\[0\] contains 1 non-finite.*\(2, 3\)"):
        extract_patches([bad], 3, 5)
    with pytest.raises(ValueError, match="must be a grey"):
        extract_patches([torch.rand(4, 4, 3)], 2, 5)
    with pytest.raises(ValueError, match="source must be one of"):
        natural_images("web")
    with pytest.raises(ValueError, match="size must be an integer >= 1"):
        extract_patches([img], 0, 5)
    with pytest.raises(ValueError, match="covariance is singular"):
        fit_patch_whitening(torch.ones(100, 4))
