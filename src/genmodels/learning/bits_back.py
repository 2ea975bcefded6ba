"""Bits-back coding with asymmetric numeral systems (book §6.3.2, "Minimum description length
and the 'bits-back' argument", Eqs. 6.10–6.15, Fig. 6.2; CATALOGUE D8; Townsend, Bird &
Barber 2019, "Practical lossless compression with latent variables using bits back coding").

The sender–receiver game of §6.3.2 made real: a lossless coder for data y under a latent
variable model p̂(x) p̂(y | x) with a recognition distribution p̌(x | y). Per datum, on a
last-in-first-out ANS stack:

1. *decode* x ~ p̌(x | y) from the stack — this draws x with bits already on the stack and
   removes −log₂ p̌(x | y) bits from it (the refund, Eq. 6.15);
2. *encode* y with p̂(y | x) (the reconstruction cost, + −log₂ p̂(y | x) bits);
3. *encode* x with p̂(x) (the code cost, + −log₂ p̂(x) bits).

Net: −log₂ p̂(x, y) + log₂ p̌(x | y) bits, whose average over p̌ is the negative ELBO — the
free energy of Eq. 6.9 in bits; with p̌ the exact posterior it is −log₂ p̂(y). The receiver
runs the steps backwards (decode x with the prior, decode y given x, encode x with p̌(x | y)
to put the borrowed bits back), recovering the data in reverse order.

The coder is range-ANS (Duda 2013) with a 64-bit state and 32-bit words (the layout of
Giesen's rans64): state s ∈ [2³¹, 2⁶³); encoding a symbol with quantised frequency f and
cumulative start c at precision P bits maps s → ⌊s/f⌋·2^P + (s mod f) + c after pushing the
low 32 bits while s ≥ 2^(63−P)·f. Every distribution is quantised to integer frequencies
summing to 2^P with each at least 1, so every symbol stays codable; the quantisation costs a
little against the exact ELBO (reported by the tests). ANS is a stack: the loop over data is
inherently sequential and runs in Python integers; every model quantity (posteriors,
quantised tables) is computed for all data at once beforehand.

Two models: a mixture of Bernoulli products (``bits_back_encode``; discrete latent, exact
posterior as recognition, so the net length is −log₂ p̂(y)) and a VAE
(``vae_bits_back_encode``; Gaussian latents discretised into 2^b buckets of equal prior mass
per dimension, the amortised recognition p̌(x | y) as the bucket distribution, so the net
length approaches the VAE's negative ELBO).

Notation: N data, D binary pixels, K mixture components (or latent dimensions).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from genmodels._validation import check_positive_int, make_generator

__all__ = ["BitsBackResult", "RANSStack", "bits_back_decode", "bits_back_encode",
           "negative_elbo_bits", "quantize", "vae_bits_back_decode", "vae_bits_back_encode"]

RANS_L = 1 << 31  # lower bound of the normalised state
WORD = 32
MASK32 = (1 << WORD) - 1


def quantize(probs: Tensor, precision: int) -> Tensor:
    """Integer frequencies (…, M) ≥ 1 summing to 2^precision, close to probs · 2^precision.

    f = 1 + ⌊p (2^P − M)⌋, the remainder added to the most probable symbol; deterministic,
    so encoder and decoder agree.
    """
    m = probs.shape[-1]
    total = 1 << precision
    if m > total:
        raise ValueError(f"{m} symbols do not fit in {precision} bits of precision.")
    f = 1 + torch.floor(probs.to(torch.float64) * (total - m)).to(torch.int64)
    short = total - f.sum(-1, keepdim=True)
    top = probs.argmax(-1, keepdim=True)
    return f.scatter_add(-1, top, short)


class RANSStack:
    """A rANS coder: a 64-bit state over a stack of 32-bit words.

    push(start, freq) encodes a symbol; pop(cumulative) decodes one (the inverse, in LIFO
    order). ``num_bits`` is the message length, 64 + 32 · (words on the stack).
    """

    def __init__(self, precision: int, state: int = RANS_L, words: list[int] | None = None
                 ) -> None:
        if not 1 <= precision <= 31:
            raise ValueError(f"precision must be in 1..31 bits, got {precision}.")
        self.precision = precision
        self.state = int(state)
        self.words: list[int] = list(words or [])

    @property
    def num_bits(self) -> int:
        return 64 + WORD * len(self.words)

    def push(self, start: int, freq: int) -> None:
        s = self.state
        x_max = ((RANS_L >> self.precision) << WORD) * freq
        if s >= x_max:  # renormalise: move the low word to the stack
            self.words.append(s & MASK32)
            s >>= WORD
        self.state = ((s // freq) << self.precision) + (s % freq) + start

    def pop(self, cumulative: np.ndarray) -> int:
        """Decode a symbol whose distribution has cumulative starts ``cumulative`` (M + 1,),
        from 0 to 2^precision."""
        s = self.state
        cf = s & ((1 << self.precision) - 1)
        sym = int(np.searchsorted(cumulative, cf, side="right")) - 1
        start, freq = int(cumulative[sym]), int(cumulative[sym + 1] - cumulative[sym])
        s = freq * (s >> self.precision) + cf - start
        if s < RANS_L:
            if not self.words:
                raise ValueError("the ANS stack ran out of bits: start the message with more "
                                 "initial words (initial_words=).")
            s = (s << WORD) | self.words.pop()
        self.state = s
        return sym


@dataclass
class BitsBackResult:
    """An encoded message and its accounting.

    state, words: the final rANS state and stack (the message).
    initial_bits / final_bits: message length before and after (64 + 32 · words).
    bits_per_datum: (final − initial) / N, the net code length of each datum on average.
    """

    state: int
    words: list[int]
    initial_bits: int
    final_bits: int
    num_data: int

    @property
    def bits_per_datum(self) -> float:
        return (self.final_bits - self.initial_bits) / self.num_data


def _cumulative(freq: Tensor) -> np.ndarray:
    """(…, M) frequencies → (…, M + 1) cumulative starts as int64 NumPy."""
    f = freq.cpu().numpy()
    return np.concatenate([np.zeros((*f.shape[:-1], 1), dtype=np.int64), np.cumsum(f, -1)], -1)


def _tables(model: Any, precision: int) -> tuple[np.ndarray, np.ndarray]:
    """Quantised prior (K + 1,) cumulative and pixel-on frequencies (K, D) of a mixture of
    Bernoulli products."""
    prior = quantize(model.weights.detach()[None], precision)[0]
    p = model.emission.probs.detach()  # (K, D) p̂(y_d = 1 | k)
    two = quantize(torch.stack([1 - p, p], -1), precision)  # (K, D, 2): [off, on]
    return _cumulative(prior), two[..., 1].cpu().numpy()


def _recognition(model: Any, y: Tensor, precision: int) -> np.ndarray:
    """Quantised exact posterior p̂(x | y_n) for every datum: (N, K + 1) cumulative."""
    with torch.no_grad():
        r = model.posterior(y).responsibilities
    return _cumulative(quantize(r, precision))


def bits_back_encode(model: Any, y: Any, *, precision: int = 16, initial_words: int = 4,
                     seed: int = 0) -> BitsBackResult:
    """Compress binary data with a mixture of Bernoulli products by bits-back ANS.

    model: a ``MixtureModel`` with a ``BernoulliEmission`` (K components, D pixels); the
    recognition distribution is its exact posterior. y: (N, D) 0/1. precision: bits of every
    quantised distribution. initial_words: random 32-bit words the message starts with, so
    the first datum has bits to borrow (the "initial bits" overhead, returned when the
    receiver finishes). Returns the message and its length.
    """
    t = torch.as_tensor(np.asarray(y) if not isinstance(y, Tensor) else y).to(torch.float64)
    if t.dim() != 2 or bool(((t != 0) & (t != 1)).any()):
        raise ValueError("y must be an (N, D) array of 0/1 values.")
    n = check_positive_int(t.shape[0], "number of data")
    check_positive_int(initial_words, "initial_words", minimum=0)
    gen = make_generator(seed)
    init = torch.randint(0, 1 << 31, (initial_words + 2,), generator=gen).tolist()
    stack = RANSStack(precision, state=RANS_L | (init[0] << 32) | init[1], words=init[2:])
    start_bits = stack.num_bits
    prior_cdf, on = _tables(model, precision)
    recog = _recognition(model, t, precision)
    total = 1 << precision
    bits = t.to(torch.int64).cpu().numpy()
    for i in range(n):
        x = stack.pop(recog[i])  # 1. borrow bits: x ~ p̌(x | y_i)
        for d in range(bits.shape[1]):  # 2. y | x, pixel by pixel
            f1 = int(on[x, d])
            if bits[i, d]:
                stack.push(total - f1, f1)
            else:
                stack.push(0, total - f1)
        stack.push(int(prior_cdf[x]), int(prior_cdf[x + 1] - prior_cdf[x]))  # 3. x | prior
    return BitsBackResult(stack.state, list(stack.words), start_bits, stack.num_bits, n)


def bits_back_decode(model: Any, message: BitsBackResult, *, precision: int = 16) -> Tensor:
    """Invert ``bits_back_encode``: the N data, (N, D) float64, in their original order."""
    stack = RANSStack(precision, message.state, message.words)
    prior_cdf, on = _tables(model, precision)
    total = 1 << precision
    d = on.shape[1]
    out = np.zeros((message.num_data, d), dtype=np.int64)
    pixel_cdf = np.zeros(3, dtype=np.int64)
    for i in reversed(range(message.num_data)):
        x = stack.pop(prior_cdf)
        for j in reversed(range(d)):
            pixel_cdf[1] = total - int(on[x, j])
            pixel_cdf[2] = total
            out[i, j] = stack.pop(pixel_cdf)
        yi = torch.as_tensor(out[i : i + 1], dtype=torch.float64)
        cdf = _recognition(model, yi, precision)[0]  # give the borrowed bits back
        stack.push(int(cdf[x]), int(cdf[x + 1] - cdf[x]))
    return torch.as_tensor(out, dtype=torch.float64)


def negative_elbo_bits(model: Any, y: Tensor) -> Tensor:
    """−ELBO per datum in bits with the exact posterior as recognition: −log₂ p̂(y_n), (N,)."""
    with torch.no_grad():
        return -model.log_marginal(y) / math.log(2.0)


# ----------------------------------------------------------------------------------------------
# Bits-back with a VAE: continuous latents discretised into equal-prior-mass buckets
# (Townsend, Bird & Barber 2019 §2.5)
# ----------------------------------------------------------------------------------------------


def _bucket_edges(latent_bits: int, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """Edges (B + 1,) and centres (B,) of B = 2^latent_bits buckets of equal N(0, 1) mass:
    the prior of every bucket is exactly 1/B, so coding a bucket under the prior costs
    ``latent_bits`` bits and no discretisation term survives in the net length."""
    b = 1 << latent_bits
    normal = torch.distributions.Normal(torch.zeros((), dtype=dtype), torch.ones((), dtype=dtype))
    u = torch.arange(b + 1, dtype=dtype) / b
    edges = normal.icdf(u.clamp(1e-300, 1 - 1e-16))
    edges[0], edges[-1] = -torch.inf, torch.inf
    centres = normal.icdf((torch.arange(b, dtype=dtype) + 0.5) / b)
    return edges, centres


def _vae_posterior_cdf(model: Any, y: Tensor, edges: Tensor, precision: int) -> np.ndarray:
    """Quantised bucket probabilities under p̌(x_k | y) = N(ν_k, σ_k²), (K, B + 1) cumulative,
    for ONE datum y: (1, D) (one at a time on both sides, so the numbers are identical)."""
    with torch.no_grad():
        p = model.encode(y.to(next(model.parameters()).dtype))
        nu, sd = p.nu[0].double(), (0.5 * p.log_var[0].double()).exp()
    z = (edges[None, :] - nu[:, None]) / sd[:, None]  # (K, B + 1)
    cdf = torch.special.ndtr(z)
    return _cumulative(quantize((cdf[:, 1:] - cdf[:, :-1]).clamp_min(0), precision))


def _vae_pixel_on(model: Any, centres: Tensor, buckets: list[int], precision: int) -> np.ndarray:
    """Quantised p̂(y_d = 1 | x = bucket centres), (D,) frequencies of "on"."""
    x = centres[torch.tensor(buckets)][None].to(next(model.parameters()).dtype)
    with torch.no_grad():
        p = model.decode(x)[0].double()
    two = quantize(torch.stack([1 - p, p], -1), precision)
    return two[:, 1].numpy()


def vae_bits_back_encode(model: Any, y: Any, *, latent_bits: int = 8, precision: int = 16,
                         initial_words: int = 8, seed: int = 0) -> BitsBackResult:
    """Compress binary data with a VAE (diagonal Gaussian recognition, Bernoulli
    likelihood) by bits-back ANS: each latent dimension is discretised into 2^latent_bits
    buckets of equal prior mass; per datum, pop the buckets with the recognition distribution,
    push the pixels given the bucket centres, push the buckets with the (uniform) prior."""
    t = torch.as_tensor(np.asarray(y) if not isinstance(y, Tensor) else y).to(torch.float64)
    if t.dim() != 2 or bool(((t != 0) & (t != 1)).any()):
        raise ValueError("y must be an (N, D) array of 0/1 values.")
    if not 1 <= latent_bits < precision:
        raise ValueError(f"latent_bits must be in 1..precision−1, got {latent_bits}.")
    n = check_positive_int(t.shape[0], "number of data")
    gen = make_generator(seed)
    init = torch.randint(0, 1 << 31, (initial_words + 2,), generator=gen).tolist()
    stack = RANSStack(precision, state=RANS_L | (init[0] << 32) | init[1], words=init[2:])
    start_bits = stack.num_bits
    edges, centres = _bucket_edges(latent_bits, torch.float64)
    total, width = 1 << precision, 1 << (precision - latent_bits)
    bits = t.to(torch.int64).numpy()
    for i in range(n):
        cdf = _vae_posterior_cdf(model, t[i : i + 1], edges, precision)
        buckets = [stack.pop(cdf[k]) for k in range(cdf.shape[0])]  # borrow bits
        on = _vae_pixel_on(model, centres, buckets, precision)
        for d in range(bits.shape[1]):
            f1 = int(on[d])
            if bits[i, d]:
                stack.push(total - f1, f1)
            else:
                stack.push(0, total - f1)
        for b in reversed(buckets):  # the prior: every bucket has frequency 2^P / B
            stack.push(b * width, width)
    return BitsBackResult(stack.state, list(stack.words), start_bits, stack.num_bits, n)


def vae_bits_back_decode(model: Any, message: BitsBackResult, *, latent_bits: int = 8,
                         precision: int = 16) -> Tensor:
    """Invert ``vae_bits_back_encode``: the N data, (N, D) float64, in the original order."""
    stack = RANSStack(precision, message.state, message.words)
    edges, centres = _bucket_edges(latent_bits, torch.float64)
    total, width = 1 << precision, 1 << (precision - latent_bits)
    k = model.latent_dim
    d = model.data_dim
    uniform = np.arange(0, total + 1, width, dtype=np.int64)
    out = np.zeros((message.num_data, d), dtype=np.int64)
    pixel_cdf = np.zeros(3, dtype=np.int64)
    for i in reversed(range(message.num_data)):
        buckets = [stack.pop(uniform) for _ in range(k)]
        on = _vae_pixel_on(model, centres, buckets, precision)
        for j in reversed(range(d)):
            pixel_cdf[1] = total - int(on[j])
            pixel_cdf[2] = total
            out[i, j] = stack.pop(pixel_cdf)
        cdf = _vae_posterior_cdf(model, torch.as_tensor(out[i : i + 1], dtype=torch.float64),
                                 edges, precision)
        for kk in reversed(range(k)):  # give the borrowed bits back
            b = buckets[kk]
            stack.push(int(cdf[kk, b]), int(cdf[kk, b + 1] - cdf[kk, b]))
    return torch.as_tensor(out, dtype=torch.float64)
