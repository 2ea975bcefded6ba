"""The library's own models through the shared contract suite (genmodels.testing)."""

import torch

from genmodels.models.covariance import GaussianEmission
from genmodels.models.factor_analysis import FactorAnalyzer
from genmodels.models.family_emissions import BernoulliEmission
from genmodels.models.linear_gaussian import LinearGaussian
from genmodels.models.mixture import MixtureModel
from genmodels.testing import check_model


def _gmm(dtype: torch.dtype, covariance: str = "full") -> MixtureModel:
    means = torch.tensor([[-2.0, 0.0], [2.0, 1.0], [0.0, 3.0]])
    covs = {"full": torch.tensor([[[1.0, 0.3], [0.3, 0.5]], [[0.6, -0.2], [-0.2, 0.8]],
                                  [[0.4, 0.0], [0.0, 0.4]]]),
            "diag": torch.tensor([[1.0, 0.5], [0.6, 0.8], [0.4, 0.4]])}[covariance]
    emission = GaussianEmission.from_parameters(means, covs, covariance)
    return MixtureModel(torch.tensor([0.5, 0.3, 0.2]), emission).to(dtype)


def _data(model, n=60, seed=3):
    return model.sample(n, generator=torch.Generator().manual_seed(seed))[1].double()


def test_gaussian_mixture_meets_the_contract():
    for covariance in ("full", "diag"):
        report = check_model(lambda dtype, c=covariance: _gmm(dtype, c),
                             _data(_gmm(torch.float64, covariance)))
        assert {"shapes", "dtypes", "sample_log_prob", "em_monotone", "save_load"} <= set(
            report.passed)


def test_bernoulli_mixture_meets_the_contract_on_discrete_data():
    def factory(dtype):
        emission = BernoulliEmission(2, 3)
        emission.natural = torch.logit(torch.tensor([[0.9, 0.2, 0.7], [0.1, 0.6, 0.3]]))
        return MixtureModel(torch.tensor([0.4, 0.6]), emission).to(dtype)

    report = check_model(factory, _data(factory(torch.float64)), discrete=True)
    assert "sample_log_prob" in report.passed and "em_monotone" in report.passed


def test_factor_analyzer_meets_the_contract():
    def factory(dtype):
        fa = FactorAnalyzer(3, 1)
        fa.loadings = torch.tensor([[1.0], [0.5], [-0.8]])
        fa.mean = torch.tensor([0.0, 1.0, -1.0])
        fa.noise_variance = torch.tensor([0.3, 0.2, 0.5])
        return fa.to(dtype)

    report = check_model(factory, _data(factory(torch.float64)))
    assert "em_monotone" in report.passed and "save_load" in report.passed


def test_linear_gaussian_meets_the_contract():
    def factory(dtype):
        return LinearGaussian(torch.zeros(2), torch.eye(2), torch.tensor([[1.0, 0.5], [0.0, 1.0],
                                                                          [0.3, -0.2]]),
                              torch.tensor([1.0, 0.0, -1.0]), torch.diag(torch.tensor(
                                  [0.5, 0.4, 0.3]))).to(dtype)

    report = check_model(factory, _data(factory(torch.float64)))
    assert "sample_log_prob" in report.passed
