"""The second-order statistics of natural images (book §2.1.2, B:616-630; CATALOGUE B6) and
whitened patches for sparse coding (§2.1.3, §8.1.1).

The photographs are those that ship in installed packages: scikit-learn's two sample images
(china, flower) and scikit-image's photographs (camera, astronaut, chelsea, coffee, rocket)
) when it is installed; all as grey levels in [0, 1].

What the book says, and where it is computed here:

* shift-invariant data have a symmetric Toeplitz covariance — for images, block-Toeplitz with
  Toeplitz blocks — so the covariance of an h×w patch is fixed by the autocorrelation
  r(Δ) = E[(I(p) − μ)(I(p + Δ) − μ)] at (2h − 1)(2w − 1) lags, not (hw)(hw + 1)/2 free
  entries (erratum E-4): ``autocorrelation``, ``stationary_covariance``;
* ignoring edges (a torus) the covariance is block-circulant with circulant blocks, its
  eigenvectors are the 2-D discrete Fourier modes and its eigenvalues the power spectrum, the
  DFT of r (footnote 7: the Fourier modes are then the principal components):
  ``circulant_covariance``, ``fourier_modes``;
* the power spectrum of natural images falls off as very nearly 1/f² (Simoncelli & Olshausen
  2001): ``power_spectrum``, ``radial_average``, ``fit_power_law``;
* whitening = projection on the Fourier modes and division by the amplitude spectrum
  (Olshausen & Field 1996/1997 add a low-pass roll-off exp(−(f/f₀)⁴) against the noise at high
  frequencies): ``whitening_filter``, ``fourier_whiten``; for patches, the symmetric (ZCA)
  whitening Σ^{-1/2} from the patches' covariance: ``PatchWhitening``, ``whitened_patches``.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from genmodels._validation import as_tensor, check_choice, check_positive_int, make_generator
from genmodels.data import Dataset, _require
from genmodels.linalg import eps, symmetrize

__all__ = [
    "SKIMAGE_PHOTOGRAPHS",
    "SKLEARN_PHOTOGRAPHS",
    "PatchWhitening",
    "PowerLawFit",
    "autocorrelation",
    "circulant_covariance",
    "extract_patches",
    "fit_patch_whitening",
    "fit_power_law",
    "fourier_modes",
    "fourier_whiten",
    "natural_images",
    "power_spectrum",
    "radial_average",
    "stationary_covariance",
    "whitened_patches",
    "whitening_filter",
]

SKLEARN_PHOTOGRAPHS = ("china.jpg", "flower.jpg")
SKIMAGE_PHOTOGRAPHS = ("camera", "astronaut", "chelsea", "coffee", "rocket")
SOURCES = ("all", "sklearn", "skimage")


def _grey(img: np.ndarray) -> np.ndarray:
    """Grey levels in [0, 1]: ITU-R 601 luma of an RGB image, or the image itself."""
    a = np.asarray(img, dtype=np.float64)
    if a.max() > 1.0:
        a = a / 255.0
    if a.ndim == 3:
        a = a[..., :3] @ np.array([0.299, 0.587, 0.114])
    return a


def natural_images(source: str = "all", *, dtype: torch.dtype = torch.float64) -> list[Tensor]:
    """The photographs that ship with scikit-learn (and scikit-image, when installed) as grey
    (H, W) tensors in [0, 1]. source: "all", "sklearn" or "skimage"."""
    check_choice(source, "source", SOURCES)
    out: list[Tensor] = []
    if source in ("all", "sklearn"):
        datasets = _require("sklearn.datasets")
        out += [torch.as_tensor(_grey(datasets.load_sample_image(f)), dtype=dtype)
                for f in SKLEARN_PHOTOGRAPHS]
    if source in ("all", "skimage"):
        try:
            skdata = __import__("skimage.data", fromlist=["camera"])
        except ModuleNotFoundError:
            if source == "skimage":
                _require("skimage.data")
        else:
            out += [torch.as_tensor(_grey(getattr(skdata, f)()), dtype=dtype)
                    for f in SKIMAGE_PHOTOGRAPHS]
    return out


def _check_images(images: Any, name: str = "images") -> list[Tensor]:
    if isinstance(images, (Tensor, np.ndarray)):
        t = as_tensor(images, name=name)
        if t.dim() == 2:
            return [t]
        if t.dim() == 3:
            return list(t)
        raise ValueError(f"{name} must be (H, W), (N, H, W) or a list of (H, W), got shape "
                         f"{tuple(t.shape)}.")
    imgs = [as_tensor(im, name=f"{name}[{i}]") for i, im in enumerate(images)]
    if not imgs:
        raise ValueError(f"{name} is empty; at least one image is required.")
    for i, im in enumerate(imgs):
        if im.dim() != 2:
            raise ValueError(f"{name}[{i}] must be a grey (H, W) image, got shape "
                             f"{tuple(im.shape)}.")
    return imgs


def _patch_shape(size: Any) -> tuple[int, int]:
    if isinstance(size, (tuple, list)):
        h, w = size
        return check_positive_int(h, "size[0]"), check_positive_int(w, "size[1]")
    s = check_positive_int(size, "size")
    return s, s


def extract_patches(images: Any, size: Any, n: int, *, seed: Any = 0) -> Tensor:
    """n patches of size h×w at uniformly random positions over all images (each position of
    each image equally likely), flattened row-major. → (n, h·w)."""
    imgs = _check_images(images)
    h, w = _patch_shape(size)
    n = check_positive_int(n, "n")
    for i, im in enumerate(imgs):
        if im.shape[0] < h or im.shape[1] < w:
            raise ValueError(f"patch size {(h, w)} is larger than image {i} of shape "
                             f"{tuple(im.shape)}; choose a smaller size.")
    g = make_generator(seed)
    counts = torch.tensor([(im.shape[0] - h + 1) * (im.shape[1] - w + 1) for im in imgs],
                          dtype=torch.float64)
    which = torch.multinomial(counts / counts.sum(), n, replacement=True, generator=g)
    out = torch.empty(n, h * w, dtype=imgs[0].dtype)
    dy, dx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    for i, im in enumerate(imgs):  # a loop over the few images; patches are gathered at once
        sel = torch.nonzero(which == i).squeeze(1)
        if sel.numel() == 0:
            continue
        H, W = im.shape
        top = torch.randint(0, H - h + 1, (sel.numel(),), generator=g)
        left = torch.randint(0, W - w + 1, (sel.numel(),), generator=g)
        rows = top[:, None, None] + dy
        cols = left[:, None, None] + dx
        out[sel] = im[rows, cols].reshape(-1, h * w)
    return out


# ---------------------------------------------------------------------------------------------
# Stationary covariance
# ---------------------------------------------------------------------------------------------


def autocorrelation(images: Any, max_lag: Any) -> Tensor:
    """The stationary autocovariance r(Δy, Δx) for |Δy| < h, |Δx| < w, pooled over images.

    Each image has its own mean removed; r(Δ) is the mean of (I(p) − μ)(I(p + Δ) − μ) over every
    pair of pixels at offset Δ inside an image (computed by zero-padded FFTs), pooled over
    images by their numbers of pairs. max_lag: (h, w) (or one int) → r: (2h − 1, 2w − 1),
    r[h − 1 + Δy, w − 1 + Δx], symmetric: r(−Δ) = r(Δ).
    """
    imgs = _check_images(images)
    h, w = _patch_shape(max_lag)
    total = torch.zeros(2 * h - 1, 2 * w - 1, dtype=imgs[0].dtype)
    pairs = torch.zeros_like(total)
    for i, im in enumerate(imgs):
        H, W = im.shape
        if H < h or W < w:
            raise ValueError(f"max_lag {(h, w)} is larger than image {i} of shape {(H, W)}.")
        x = im - im.mean()
        sh, sw = H + h, W + w  # zero padding so the circular correlation has no wrap-around
        F = torch.fft.rfft2(x, s=(sh, sw))
        corr = torch.fft.irfft2(F * F.conj(), s=(sh, sw))
        ones = torch.fft.rfft2(torch.ones_like(x), s=(sh, sw))
        cnt = torch.fft.irfft2(ones * ones.conj(), s=(sh, sw)).round()
        iy = torch.arange(-(h - 1), h) % sh
        ix = torch.arange(-(w - 1), w) % sw
        total += corr[iy][:, ix]
        pairs += cnt[iy][:, ix]
    return total / pairs


def stationary_covariance(images: Any, size: Any) -> Tensor:
    """The covariance of h×w patches implied by stationarity: Σ[(i,j),(k,l)] = r(k − i, l − j),
    block-Toeplitz with Toeplitz blocks (B:628). → (h·w, h·w), rows/columns row-major."""
    h, w = _patch_shape(size)
    r = autocorrelation(images, (h, w))
    iy, ix = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    iy, ix = iy.reshape(-1), ix.reshape(-1)
    dy = iy[None, :] - iy[:, None] + h - 1
    dx = ix[None, :] - ix[:, None] + w - 1
    return symmetrize(r[dy, dx])


def circulant_covariance(r: Tensor) -> Tensor:
    """The block-circulant covariance (circulant blocks) of a stationary field on an h×w torus
    with autocovariance r: (h, w), r[Δy mod h, Δx mod w]: Σ[p, q] = r((q − p) mod (h, w)).
    → (h·w, h·w). Its eigenvectors are ``fourier_modes(h, w)``, its eigenvalues fft2(r)."""
    r = as_tensor(r, name="r")
    if r.dim() != 2:
        raise ValueError(f"r must be an (h, w) autocovariance, got shape {tuple(r.shape)}.")
    h, w = r.shape
    iy, ix = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    iy, ix = iy.reshape(-1), ix.reshape(-1)
    return r[(iy[None, :] - iy[:, None]) % h, (ix[None, :] - ix[:, None]) % w]


def fourier_modes(h: int, w: int, *, dtype: torch.dtype = torch.complex128) -> Tensor:
    """The unitary 2-D DFT basis: column (u, v) is exp(2πi(u·y/h + v·x/w)) / √(hw) over pixels
    (y, x) row-major. → (h·w, h·w) complex; F Fᴴ = I."""
    fy = torch.exp(2j * math.pi * torch.outer(torch.arange(h), torch.arange(h)).to(dtype) / h)
    fx = torch.exp(2j * math.pi * torch.outer(torch.arange(w), torch.arange(w)).to(dtype) / w)
    return torch.kron(fy, fx) / math.sqrt(h * w)


# ---------------------------------------------------------------------------------------------
# Power spectrum and its 1/f² law
# ---------------------------------------------------------------------------------------------


def _tiles(imgs: list[Tensor], size: int) -> Tensor:
    """Non-overlapping size×size tiles of every image, each with its mean removed. → (T, s, s)."""
    out = []
    for im in imgs:
        H, W = im.shape
        t = im[: H // size * size, : W // size * size]
        t = t.reshape(H // size, size, W // size, size).permute(0, 2, 1, 3).reshape(-1, size,
                                                                                   size)
        out.append(t)
    if not out or sum(t.shape[0] for t in out) == 0:
        raise ValueError(f"no image is at least {size}×{size}; choose a smaller tile size.")
    tiles = torch.cat(out)
    return tiles - tiles.mean((-2, -1), keepdim=True)


def power_spectrum(images: Any, size: int = 128, *, window: bool = True) -> Tensor:
    """The power spectrum |FFT|² / (size²·⟨w²⟩) averaged over non-overlapping size×size tiles of the
    images (mean removed per tile; a separable Hann window against the edge discontinuities of
    the implied torus, power normalised by the window's energy). → (size, size) at
    ``torch.fft.fftfreq`` frequencies (unshifted, cycles/pixel)."""
    imgs = _check_images(images)
    size = check_positive_int(size, "size", minimum=4)
    tiles = _tiles(imgs, size)
    if window:
        hann = torch.hann_window(size, periodic=False, dtype=tiles.dtype)
        win = torch.outer(hann, hann)
    else:
        win = torch.ones(size, size, dtype=tiles.dtype)
    F = torch.fft.fft2(tiles * win)
    return F.abs().square().mean(0) / win.square().sum()


def radial_average(ps: Tensor) -> tuple[Tensor, Tensor]:
    """The radially averaged spectrum of an (h, w) unshifted spectrum: mean power in rings of
    width 1/max(h, w) cycles/pixel, excluding DC. → (f (R,) the rings' mean frequencies in
    cycles/pixel, P (R,)),
    rings up to the Nyquist frequency 0.5."""
    ps = as_tensor(ps, name="ps")
    h, w = ps.shape
    fy = torch.fft.fftfreq(h, dtype=ps.dtype)
    fx = torch.fft.fftfreq(w, dtype=ps.dtype)
    f = torch.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2).reshape(-1)
    n = max(h, w)
    ring = torch.round(f * n).long()
    keep = (ring >= 1) & (ring <= n // 2)
    ring, p, f = ring[keep], ps.reshape(-1)[keep], f[keep]
    R = n // 2
    sums = torch.zeros(R + 1, dtype=ps.dtype).index_add_(0, ring, p)
    fsum = torch.zeros(R + 1, dtype=ps.dtype).index_add_(0, ring, f)
    cnts = torch.zeros(R + 1, dtype=ps.dtype).index_add_(0, ring, torch.ones_like(p))
    return fsum[1:] / cnts[1:], sums[1:] / cnts[1:]


class PowerLawFit(NamedTuple):
    """P(f) ≈ A f^exponent, fitted by least squares in log–log coordinates."""

    exponent: float
    """the slope of log P against log f (≈ −2 for natural images)"""
    log_amplitude: float
    """log A"""
    residual_std: float
    """the standard deviation of the log-residuals"""


def fit_power_law(f: Tensor, P: Tensor, *, f_min: float = 0.0, f_max: float = 0.5) -> PowerLawFit:
    """Least-squares line through (log f, log P) for f_min < f ≤ f_max. f, P: (R,)."""
    keep = (f > f_min) & (f <= f_max) & (P > 0)
    if int(keep.sum()) < 2:
        raise ValueError(f"fewer than 2 frequencies in ({f_min}, {f_max}] with positive power.")
    lf, lp = f[keep].log(), P[keep].log()
    A = torch.stack([lf, torch.ones_like(lf)], 1)
    coef = torch.linalg.lstsq(A, lp[:, None]).solution[:, 0]
    res = lp - A @ coef
    return PowerLawFit(float(coef[0]), float(coef[1]), float(res.std()))


def whitening_filter(h: int, w: int, fit: PowerLawFit | None = None, *,
                     f0: float | None = None, dtype: torch.dtype = torch.float64) -> Tensor:
    """The amplitude filter that flattens a power law: 1/√P(f) = f^(−exponent/2) (normalised to 1
    at f = 0.5), times the low-pass exp(−(f/f₀)⁴) of Olshausen & Field (1997) when f₀ is given;
    0 at DC. With no fit, the exponent is −2 (the filter ∝ f). → (h, w), unshifted."""
    exponent = -2.0 if fit is None else fit.exponent
    fy = torch.fft.fftfreq(h, dtype=dtype)
    fx = torch.fft.fftfreq(w, dtype=dtype)
    f = torch.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2)
    filt = torch.where(f > 0, (f / 0.5).pow(-exponent / 2.0), torch.zeros_like(f))
    if f0 is not None:
        filt = filt * torch.exp(-((f / f0) ** 4))
    return filt


def fourier_whiten(images: Any, fit: PowerLawFit | None = None, *,
                   f0: float | None = None) -> list[Tensor]:
    """Whiten each image by multiplying its spectrum with ``whitening_filter`` (projection on the
    Fourier modes and division by the amplitude spectrum, B:630); each output has unit variance."""
    out = []
    for im in _check_images(images):
        H, W = im.shape
        filt = whitening_filter(H, W, fit, f0=f0, dtype=im.dtype)
        z = torch.fft.ifft2(torch.fft.fft2(im - im.mean()) * filt).real
        out.append(z / z.std())
    return out


# ---------------------------------------------------------------------------------------------
# Whitened patches
# ---------------------------------------------------------------------------------------------


class PatchWhitening(NamedTuple):
    """Symmetric (ZCA) whitening z = W (y − mean), W = E Λ^{-1/2} Eᵀ (E, Λ the eigenvectors
    and values of the patches' covariance). Of all whitening matrices the symmetric one keeps z
    closest to y, so whitened patches still look like patches (Bell & Sejnowski 1997)."""

    mean: Tensor
    """(D,) the mean patch"""
    matrix: Tensor
    """W: (D, D)"""
    dewhitening: Tensor
    """W⁻¹ = E Λ^{1/2} Eᵀ: (D, D)"""
    variances: Tensor
    """Λ: (D,), descending"""

    def transform(self, Y: Tensor) -> Tensor:
        """(N, D) → (N, D) whitened."""
        return (Y - self.mean) @ self.matrix.mT

    def inverse_transform(self, Z: Tensor) -> Tensor:
        return Z @ self.dewhitening.mT + self.mean


def fit_patch_whitening(Y: Tensor, *, center: bool = True) -> PatchWhitening:
    """ZCA whitening from patches Y: (N, D) (covariance with the 1/N convention). Raises
    ``ValueError`` when the covariance is numerically singular."""
    N, D = Y.shape
    mean = Y.mean(0) if center else Y.new_zeros(D)
    Yc = Y - mean
    cov = symmetrize(Yc.mT @ Yc / N)
    lam, E = torch.linalg.eigh(cov)
    lam, E = lam.flip(-1), E.flip(-1)
    floor = max(N, D) * eps(Y.dtype) * float(lam[0].clamp_min(0))
    if float(lam[-1]) <= floor:
        raise ValueError(f"the patches' covariance is singular (rank {int((lam > floor).sum())} "
                         f"< {D}); use more patches or remove constant images.")
    W = (E / lam.sqrt()) @ E.mT
    return PatchWhitening(mean, W, (E * lam.sqrt()) @ E.mT, lam)


def whitened_patches(size: int = 8, n: int = 20_000, *, source: str = "all", seed: Any = 0,
                     subtract_patch_mean: bool = True) -> tuple[Dataset, PatchWhitening]:
    """A data set of n ZCA-whitened size×size patches from ``natural_images(source)``.

    subtract_patch_mean removes each patch's own mean (its DC component) first, as Olshausen &
    Field do; the whitening then has one zero variance, so it acts on the D − 1 remaining
    directions (the DC direction maps to 0). Returns (Dataset with image_shape (size, size),
    the whitening)."""
    size = check_positive_int(size, "size")
    Y = extract_patches(natural_images(source), size, n, seed=seed)
    if subtract_patch_mean:
        Y = Y - Y.mean(1, keepdim=True)
        # drop the DC direction before whitening (it has zero variance), then map back
        D = size * size
        u = torch.full((D,), 1.0 / math.sqrt(D), dtype=Y.dtype)
        P = torch.eye(D, dtype=Y.dtype) - torch.outer(u, u)
        Q = torch.linalg.qr(torch.cat([u[:, None], P], 1)).Q[:, 1:]  # (D, D − 1) orthonormal
        inner = fit_patch_whitening(Y @ Q)
        wh = PatchWhitening(inner.mean @ Q.mT, Q @ inner.matrix @ Q.mT,
                            Q @ inner.dewhitening @ Q.mT, inner.variances)
    else:
        wh = fit_patch_whitening(Y)
    Z = wh.transform(Y)
    ds = Dataset(
        name=f"images{size}",
        X=Z,
        description=f"{n} ZCA-whitened {size}×{size} patches of the photographs in "
        f"scikit-learn{' and scikit-image' if source == 'all' else ''} (grey levels).",
        image_shape=(size, size),
    )
    return ds, wh
