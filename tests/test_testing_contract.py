"""The contract suite itself: it passes a correct model and catches broken ones."""

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
