"""Bits-back ANS with a mixture of Bernoulli products on the binarised digits: lossless on
every held-out image, and the code length within 1% (plus one 32-bit word) of the negative
ELBO in bits; the rANS coder on its own."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from genmodels import BernoulliEmission, MixtureModel, fit_em
from genmodels.data import density_split
from genmodels.learning.bits_back import (
    RANSStack,
    bits_back_decode,
    bits_back_encode,
    negative_elbo_bits,
    quantize,
)


@pytest.fixture(scope="module")
def fitted() -> tuple[MixtureModel, torch.Tensor]:
    train, test = density_split("binary")
    k = 16
    model = MixtureModel(torch.full((k,), 1.0 / k, dtype=torch.float64),
                         BernoulliEmission(k, 64, pseudo_count=1e-2), init="random")
    fit_em(model, train, seed=0, max_iter=60, tol=1e-6, warn=False)
    return model, test


def test_decode_inverts_encode_on_every_test_image(fitted) -> None:  # type: ignore[no-untyped-def]
    model, test = fitted
    msg = bits_back_encode(model, test)
    assert torch.equal(bits_back_decode(model, msg), test)


def test_code_length_is_the_negative_elbo_within_one_percent(fitted) -> None:  # type: ignore[no-untyped-def]
    model, test = fitted
    msg = bits_back_encode(model, test)
    nelbo = float(negative_elbo_bits(model, test).mean())  # exact posterior: −log₂ p̂(y)
    overhead = 32 / test.shape[0]  # the stack grows in 32-bit words: one word of slack
    assert abs(msg.bits_per_datum - nelbo) <= 0.01 * nelbo + overhead
    # the refund matters: without it (hard assignment to the posterior mode, Eq. 6.14) the
    # cost is the joint surprisal at the mode, which is larger
    with torch.no_grad():
        lj = model.log_joint(test)
    hard = float(-(lj.max(-1).values).mean()) / math.log(2)
    assert msg.bits_per_datum < hard


def test_rans_alone_round_trips_and_costs_the_surprisal() -> None:
    gen = torch.Generator().manual_seed(0)
    p = torch.softmax(2 * torch.randn(7, generator=gen), 0)
    freq = quantize(p[None], 12)[0]
    assert int(freq.sum()) == 1 << 12 and int(freq.min()) >= 1
    cdf = np.concatenate([[0], np.cumsum(freq.numpy())])
    symbols = torch.multinomial(p, 5000, replacement=True, generator=gen).tolist()
    st = RANSStack(12)
    for s in symbols:
        st.push(int(cdf[s]), int(freq[s]))
    surprisal = -sum(math.log2(int(freq[s]) / 4096) for s in symbols)
    assert abs((st.num_bits - 64) - surprisal) <= 64
    assert [st.pop(cdf) for _ in symbols][::-1] == symbols
    assert st.state == 1 << 31 and not st.words  # back to the initial state exactly


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="do not fit"):
        quantize(torch.full((1, 10), 0.1), 3)
    with pytest.raises(ValueError, match="ran out of bits"):
        RANSStack(8).pop(np.array([0, 100, 256]))
    model = MixtureModel(torch.tensor([0.5, 0.5]), BernoulliEmission(2, 3))
    with pytest.raises(ValueError, match="0/1 values"):
        bits_back_encode(model, torch.tensor([[0.0, 2.0, 1.0]]))


@pytest.mark.slow
def test_vae_bits_back_is_lossless_and_costs_the_negative_elbo() -> None:
    from genmodels import VAE, Trainer
    from genmodels.learning.bits_back import vae_bits_back_decode, vae_bits_back_encode

    train, test = density_split("binary")
    test = test[:120]
    model = VAE(64, latent_dim=4, hidden=[32], likelihood="bernoulli", seed=0)
    Trainer(model, epochs=4, batch_size=64, lr=3e-3, seed=0, progress=False).fit(train.float())
    msg = vae_bits_back_encode(model, test, latent_bits=8)
    assert torch.equal(vae_bits_back_decode(model, msg, latent_bits=8), test)
    with torch.no_grad():  # the ELBO with 400 posterior draws: its Monte Carlo error is small
        elbo = model.elbo(test.float(), 400, torch.Generator().manual_seed(0)).elbo
    nelbo = float(-elbo.mean()) / math.log(2)
    assert abs(msg.bits_per_datum - nelbo) <= 0.01 * nelbo + 64 / test.shape[0]
