"""The contract suite itself: it passes a correct model and catches broken ones."""

import math

import pytest
import torch
from em_toy import UnitVarianceMixture, toy_data

from genmodels.io import SavableModule
from genmodels.testing import check_model, check_sample_log_prob, check_shapes


class Gaussian(SavableModule):
    def __init__(self, d: int = 2, scale_error: float = 1.0, shift_error: float = 0.0) -> None:
        super().__init__()
        self.config = {"d": d, "scale_error": scale_error, "shift_error": shift_error}
        self.register_buffer("mean", torch.arange(1.0, d + 1.0))
        self.register_buffer("scale_tril", torch.eye(d) + 0.3 * torch.tril(torch.ones(d, d), -1))
        self.scale_error, self.shift_error = scale_error, shift_error

    def _dist(self) -> torch.distributions.MultivariateNormal:
        return torch.distributions.MultivariateNormal(self.mean, scale_tril=self.scale_tril)

    def log_marginal(self, y):
        return self._dist().log_prob(y)

    def sample(self, n, generator=None):
        eps = torch.randn(n, self.mean.shape[0], generator=generator, dtype=self.mean.dtype)
        return self.mean + self.shift_error + self.scale_error * eps @ self.scale_tril.T


def test_a_correct_model_passes_every_check():
    data = Gaussian().sample(50, torch.Generator().manual_seed(1))
    report = check_model(lambda dtype: Gaussian().to(dtype), data)
    assert "sample_log_prob" in report.passed and "save_load" in report.passed
    assert "em_monotone" in report.not_applicable


@pytest.mark.parametrize("broken", [{"scale_error": 1.1}, {"shift_error": 0.2}])
def test_a_sampler_that_disagrees_with_the_density_is_caught(broken):
    with pytest.raises(AssertionError, match="Stein"):
        check_sample_log_prob(Gaussian(**broken), n=20000)


def test_shape_errors_are_caught():
    class RowMixing(Gaussian):
        def log_marginal(self, y):
            return super().log_marginal(y) + 1e-3 * y.mean()  # couples rows

    data = Gaussian().sample(10, torch.Generator().manual_seed(0))
    with pytest.raises(AssertionError, match="independently"):
        check_shapes(RowMixing(), data)


def test_em_monotone_check_runs_on_an_em_model():
    class ToyModel(UnitVarianceMixture):
        def log_marginal(self, y):
            return torch.logsumexp(self.log_joint(y[..., 0].reshape(-1)), -1).reshape(y.shape[:-1])

        def sample(self, n, generator=None):
            z = torch.multinomial(self.weights, n, replacement=True, generator=generator)
            eps = torch.randn(n, generator=generator, dtype=self.means.dtype)
            return (self.means[z] + eps)[:, None]

        def expected_stats(self, y):
            return super().expected_stats(y[:, 0])

    y = toy_data(300)[:, None]
    report = check_model(lambda dtype: ToyModel().to(dtype), y)
    assert "em_monotone" in report.passed


# -- the sequence and bound contracts catch broken models ---------------------------------------

def _hmm():
    from genmodels.models.covariance import GaussianEmission
    from genmodels.models.hmm import HiddenMarkovModel

    emission = GaussianEmission.from_parameters(torch.tensor([[-2.0], [2.0]]),
                                                torch.tensor([[1.0], [0.5]]), "diag")
    return HiddenMarkovModel(torch.tensor([0.6, 0.4]), torch.tensor([[0.9, 0.1], [0.2, 0.8]]),
                             emission)


def _seqs(model, T=6, B=4, seed=0):
    return model.sample(T, B, generator=torch.Generator().manual_seed(seed))[1]


def test_a_padded_batch_that_counts_its_padding_is_caught():
    from genmodels.testing import check_ragged

    class CountsPadding(type(_hmm())):
        def log_marginal(self, data, *, lengths=None, method="auto"):
            return super().log_marginal(data, method=method)  # ignores the lengths

    model = _hmm()
    broken = CountsPadding(model.initial_probs, model.transition_matrix, model.emission)
    y, lengths = _seqs(model), torch.tensor([6, 3, 6, 2])
    check_ragged(model, y, lengths)
    with pytest.raises(AssertionError, match="as if alone"):
        check_ragged(broken, y, lengths)


def test_sequences_scored_together_are_caught():
    from genmodels.testing import check_sequence_shapes

    class Coupled(type(_hmm())):
        def log_marginal(self, data, **kw):
            lp = super().log_marginal(data, **kw)
            return lp + 1e-3 * lp.mean()

    model = _hmm()
    broken = Coupled(model.initial_probs, model.transition_matrix, model.emission)
    with pytest.raises(AssertionError, match="sequences are not evaluated independently"):
        check_sequence_shapes(broken, _seqs(model))


@pytest.mark.parametrize("discrete", [False, True])
def test_a_sequence_sampler_that_disagrees_with_the_density_is_caught(discrete):
    from genmodels.models.family_emissions import CategoricalEmission
    from genmodels.models.hmm import HiddenMarkovModel
    from genmodels.testing import check_sequence_sample_log_prob

    model = _hmm()
    if discrete:
        model = HiddenMarkovModel(model.initial_probs, model.transition_matrix,
                                  CategoricalEmission(2, 2, probs=torch.tensor(
                                      [[0.8, 0.2], [0.3, 0.7]])))
    check_sequence_sample_log_prob(model, num_steps=3, discrete=discrete)

    class SamplesOtherDynamics(type(model)):
        def sample(self, num_steps, num_sequences=None, generator=None):
            other = type(model)(self.initial_probs, torch.tensor([[0.6, 0.4], [0.4, 0.6]]),
                                self.emission)
            return other.sample(num_steps, num_sequences, generator)

    broken = SamplesOtherDynamics(model.initial_probs, model.transition_matrix, model.emission)
    with pytest.raises(AssertionError, match=r"Stein|standard errors"):
        check_sequence_sample_log_prob(broken, num_steps=3, discrete=discrete)


def _vae():
    from genmodels.models.vae import VAE

    return VAE(3, 2, network="linear", likelihood="gaussian", variance=0.3,
               learn_variance=False, dtype="float64", seed=0)


@pytest.mark.parametrize(("shift", "message"), [
    (lambda k: 0.0, None),
    (lambda k: -2.0 * math.log(k), "fell from k = 1"),          # falls as k grows
    (lambda k: 0.5 * (k == 1), "at k = 1 is not the ELBO"),     # k = 1 is not the ELBO
    (lambda k: 0.3 * math.log(k), "exceeds the exact"),         # rises past log p̂(y)
])
def test_bounds_that_misbehave_are_caught(shift, message):
    from torch.distributions import MultivariateNormal

    from genmodels.testing import check_bounds

    class Shifted(type(_vae())):
        def iwae_bound(self, y, k=100, generator=None, chunk=50):
            return super().iwae_bound(y, k, generator, chunk) + shift(k)

    broken = Shifted(3, 2, network="linear", likelihood="gaussian", variance=0.3,
                     learn_variance=False, dtype="float64", seed=0)
    y = broken.sample(400, generator=torch.Generator().manual_seed(1))
    W, b = broken.decoder.weight, broken.decoder.bias
    exact = MultivariateNormal(b, W @ W.T + 0.3 * torch.eye(3, dtype=W.dtype)).log_prob(y)
    if message is None:
        check_bounds(broken, y, exact=exact.detach())
    else:
        with pytest.raises(AssertionError, match=message):
            check_bounds(broken, y, exact=exact.detach())


def test_a_joint_sampler_that_disagrees_with_log_joint_is_caught():
    from genmodels.testing import check_joint_sample_log_prob

    model = _vae()
    check_joint_sample_log_prob(model)

    class WideNoise(type(model)):
        def sample_joint(self, n, generator=None):
            x, y = super().sample_joint(n, generator)
            mean = self.decoder(x)
            return x, mean + 1.1 * (y - mean)  # noise 10% wider than log_joint's

    broken = WideNoise(3, 2, network="linear", likelihood="gaussian", variance=0.3,
                       learn_variance=False, dtype="float64", seed=0)
    with pytest.raises(AssertionError, match="Stein"):
        check_joint_sample_log_prob(broken)
