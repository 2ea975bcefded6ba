"""NCE learns by recovery, through ``learning.trainer``: a Gaussian energy with a free constant
self-normalises (I1), free scores on a 20-word vocabulary converge to the word probabilities
for k = 1, 5, 25 (I2), a Gaussian-mixture energy reaches maximum likelihood's held-out
log-likelihood with log Z learned and checked against its exact normaliser, and conditional
NCE on a skip-gram self-normalises per context while negative sampling learns the shifted PMI
(I3, Levy & Goldberg 2014)."""

from __future__ import annotations

import math

import pytest
import torch

import genmodels
from genmodels.learning.kmeans import kmeans
from genmodels.learning.nce import NCE, GaussianNoise, UnigramNoise
from genmodels.learning.trainer import Trainer
from genmodels.models.embeddings import SkipGram
from genmodels.models.energy import GaussianEnergy, GaussianMixtureEnergy, TableEnergy


def _cosine(epochs: int):
    return lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)


@pytest.mark.parametrize("nu", [1.0, 4.0])
def test_nce_recovers_the_gaussian_normaliser(nu):
    """E(y) = ½(y − μ)²/σ² + c, data N(0.5, 1.5²) (10⁵ samples), noise N(0, 3²): c → ½ log 2πσ₀²
    within 0.02, μ → μ₀, σ → σ₀; with ν = 4 only because Δ carries its log ν."""
    mu0, s0 = 0.5, 1.5
    g = torch.Generator().manual_seed(0)
    y = mu0 + s0 * torch.randn(100_000, 1, generator=g)
    model = NCE(GaussianEnergy(1), GaussianNoise(torch.zeros(1), torch.tensor([[9.0]])),
                noise_ratio=nu)
    epochs = 150
    Trainer(model, epochs=epochs, batch_size=100_000, lr=0.05, seed=1, progress=False,
            scheduler=_cosine(epochs)).fit(y)
    energy = model.model
    c = float(model.log_normaliser.detach())
    assert abs(c - 0.5 * math.log(2 * math.pi * s0**2)) < 0.02
    assert abs(float(energy.loc.detach()) - mu0) < 0.02
    sigma = float(energy.precision().detach().reshape(()) ** -0.5)
    assert abs(sigma - s0) < 0.02
    # self-normalised: the learned c is the energy's exact log-normaliser
    assert abs(c - float(energy.log_normaliser().detach())) < 0.02


@pytest.mark.parametrize("k", [1, 5, 25])
def test_free_scores_on_a_vocabulary_converge_to_the_word_probabilities(k):
    """One free score per word of a 20-word vocabulary, uniform noise, k noise words per
    datum: exp(s_w) → p(w) and Σ_w exp(s_w) → 1 (no normaliser is learned or imposed)."""
    V = 20
    g = torch.Generator().manual_seed(2)
    p = torch.rand(V, generator=g) + 0.2
    p = p / p.sum()
    w = torch.multinomial(p, 100_000, replacement=True, generator=g)
    freq = torch.bincount(w, minlength=V) / w.numel()
    model = NCE(TableEnergy(V), UnigramNoise(torch.ones(V)), noise_ratio=k,
                learn_log_normaliser=False)
    epochs = 12
    Trainer(model, epochs=epochs, batch_size=10_000, lr=0.1, seed=k, progress=False,
            scheduler=_cosine(epochs)).fit(w)
    u = model.model.scores.detach().exp()
    assert abs(float(u.sum()) - 1) < 0.01
    assert float(((u - p) / p).abs().max()) < 0.08  # sampling error of p̃ is ~3% here
    assert float(((u - freq) / freq).abs().max()) < 0.03


def test_nce_fits_a_gaussian_mixture_energy_as_well_as_em(tmp_path):
    """A 3-component diagonal Gaussian-mixture energy with free log-weights and a learned
    log Z, fitted by NCE against a Gaussian fitted to the data: held-out log-likelihood (with
    the exact normaliser) within 0.01 nats of EM's maximum-likelihood fit, and the learned c
    within 0.01 of the exact log Z of the fitted energy."""
    from genmodels import GaussianMixture

    g = torch.Generator().manual_seed(0)
    means = torch.tensor([[-2.0, 0.0], [2.0, 1.0], [0.0, -2.5]])
    scales = torch.tensor([[0.6, 1.0], [1.0, 0.5], [0.8, 0.8]])
    weights = torch.tensor([0.3, 0.5, 0.2])

    def sample(n):
        k = torch.multinomial(weights, n, replacement=True, generator=g)
        return means[k] + scales[k] * torch.randn(n, 2, generator=g)

    y, held_out = sample(10_000), sample(10_000)
    em = GaussianMixture(3, covariance_type="diag", random_state=0).fit(y.numpy())
    energy = GaussianMixtureEnergy(3, 2)
    with torch.no_grad():
        energy.means.copy_(kmeans(y, 3, seed=0).centers)
    model = NCE(energy, GaussianNoise.fit(y), noise_ratio=1.0)
    epochs = 30
    Trainer(model, epochs=epochs, batch_size=1000, lr=0.05, seed=0, progress=False,
            scheduler=_cosine(epochs)).fit(y)
    with torch.no_grad():
        nce_ll = float(energy.log_prob(held_out).mean())
        c, log_z = float(model.log_normaliser), float(energy.log_normaliser())
        self_normalised = float(model.log_density(held_out).mean())
    em_ll = float(em.score(held_out.numpy()))
    assert abs(nce_ll - em_ll) < 0.01
    assert abs(c - log_z) < 0.01
    assert abs(self_normalised - nce_ll) < 0.01
    genmodels.save(energy, tmp_path / "energy")
    back = genmodels.load(tmp_path / "energy")
    torch.testing.assert_close(back.log_prob(held_out[:5]), energy.log_prob(held_out[:5]))


def _pairs_from_table(P_joint: torch.Tensor, n: int, g: torch.Generator) -> torch.Tensor:
    """n (context, word) pairs drawn from the joint table P_joint (C, W)."""
    flat = torch.multinomial(P_joint.reshape(-1), n, replacement=True, generator=g)
    return torch.stack([flat // P_joint.shape[1], flat % P_joint.shape[1]], 1)


def test_conditional_nce_self_normalises_and_negative_sampling_learns_shifted_pmi():
    """On a synthetic co-occurrence table over 8 words, a full-rank skip-gram (D = 10) trained
    through the trainer: conditional NCE (Δs = s − log kq) gives exp s(w|c) ≈ p(w|c) with
    Σ_w exp s(w|c) ≈ 1 for every context; negative sampling with q the unigram distribution
    gives the shifted PMI, log p(c, w)/(k q(w)(p(c) − p(c, w))) — Levy & Goldberg's
    PMI(c, w) − log k with the correction for word2vec's skipping of a negative equal to the
    positive word (it vanishes as p(w | c) → 0)."""
    V, k = 8, 4
    g = torch.Generator().manual_seed(5)
    joint = torch.rand(V, V, generator=g) ** 3 + 0.02
    joint = (joint + joint.T) / joint.sum() / 2  # symmetric, as skip-gram pairs are
    pairs = _pairs_from_table(joint, 200_000, g)
    emp = torch.zeros(V, V)
    emp.index_put_((pairs[:, 0], pairs[:, 1]), torch.ones(len(pairs)), accumulate=True)
    emp /= emp.sum()
    pc, pw = emp.sum(1), emp.sum(0)
    for objective in ("nce", "negative_sampling"):
        model = SkipGram(pw.numpy() * 1e6, V + 2, negative=k, ns_exponent=1.0,
                         objective=objective, seed=0)
        model.double()
        epochs = 15
        Trainer(model, epochs=epochs, batch_size=4096, lr=0.05, seed=3, progress=False,
                scheduler=_cosine(epochs)).fit(pairs)
        S = (model.input_vectors @ model.output_vectors.T).detach()  # s(w|c), [c, w]
        if objective == "nce":
            cond = emp / pc[:, None]
            torch.testing.assert_close(S.exp().sum(1), torch.ones(V), atol=0.03, rtol=0)
            assert float((S.exp() / cond - 1).abs().max()) < 0.1
        else:
            target = torch.log(emp / (k * pw[None, :] * (pc[:, None] - emp)))
            assert float((S - target).abs().max()) < 0.1
            # and it does not self-normalise
            assert float((S.exp().sum(1) - 1).abs().max()) > 0.5
