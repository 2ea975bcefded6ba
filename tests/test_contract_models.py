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


# -- every other model of the library -----------------------------------------------------------

def test_probabilistic_pca_and_ica_meet_the_contract():
    from genmodels.models.factor_analysis import ProbabilisticPCA
    from genmodels.models.ica import ICAModel

    def ppca(dtype):
        m = ProbabilisticPCA(3, 1)
        m.loadings = torch.tensor([[1.0], [0.5], [-0.8]])
        m.mean = torch.tensor([0.0, 1.0, -1.0])
        m.noise_variance = torch.full((3,), 0.3)
        return m.to(dtype)

    report = check_model(ppca, _data(ppca(torch.float64)))
    assert {"em_monotone", "save_load"} <= set(report.passed)

    def ica(dtype):
        m = ICAModel(2, "logistic")
        with torch.no_grad():
            m.unmixing.copy_(torch.tensor([[1.0, 0.4], [-0.3, 0.8]]))
        m.mean = torch.tensor([0.5, -1.0])
        return m.to(dtype)

    data = ica(torch.float64).sample(60, generator=torch.Generator().manual_seed(2)).double()
    report = check_model(ica, data, em=False)
    assert {"sample_log_prob", "save_load"} <= set(report.passed)


def test_poisson_and_categorical_mixtures_meet_the_contract_on_discrete_data():
    from genmodels.models.family_emissions import CategoricalEmission, PoissonEmission

    def poisson(dtype):
        emission = PoissonEmission(2, 1, rates=torch.tensor([[0.7], [3.0]]))
        return MixtureModel(torch.tensor([0.4, 0.6]), emission).to(dtype)

    def categorical(dtype):
        emission = CategoricalEmission(2, 3, probs=torch.tensor([[0.7, 0.2, 0.1],
                                                                 [0.1, 0.3, 0.6]]))
        return MixtureModel(torch.tensor([0.5, 0.5]), emission).to(dtype)

    for factory in (poisson, categorical):
        report = check_model(factory, _data(factory(torch.float64)), discrete=True)
        assert {"sample_log_prob", "em_monotone", "save_load"} <= set(report.passed)


def _hmm(dtype, emission):
    from genmodels.models.hmm import HiddenMarkovModel

    P = torch.tensor([[0.8, 0.15, 0.05], [0.1, 0.7, 0.2], [0.25, 0.25, 0.5]])
    return HiddenMarkovModel(torch.tensor([0.5, 0.3, 0.2]), P, emission).to(dtype)


def _gaussian_hmm(dtype, covariance="diag"):
    means = torch.tensor([[-2.0, 0.0], [2.0, 1.0], [0.0, 3.0]])
    covs = {"diag": torch.tensor([[1.0, 0.5], [0.6, 0.8], [0.4, 0.4]]),
            "full": torch.tensor([[[1.0, 0.3], [0.3, 0.5]], [[0.6, -0.2], [-0.2, 0.8]],
                                  [[0.4, 0.0], [0.0, 0.4]]])}[covariance]
    return _hmm(dtype, GaussianEmission.from_parameters(means, covs, covariance))


def _sequences(model, T=12, B=6, seed=4):
    return model.sample(T, B, generator=torch.Generator().manual_seed(seed))[1].double()


def test_gaussian_hmms_meet_the_sequence_contract_with_ragged_batches():
    from genmodels.testing import check_sequence_model

    lengths = torch.tensor([12, 7, 12, 3, 9, 12])
    for covariance in ("diag", "full"):
        def factory(dtype, c=covariance):
            return _gaussian_hmm(dtype, c)

        report = check_sequence_model(factory, _sequences(factory(torch.float64)), lengths)
        assert {"ragged", "shapes", "dtypes", "sample_log_prob", "em_monotone",
                "save_load"} <= set(report.passed)


def test_gmm_hmm_meets_the_sequence_contract():
    from genmodels.models.hmm import GaussianMixtureEmission
    from genmodels.testing import check_sequence_model

    def factory(dtype):
        em = GaussianMixtureEmission(3, 2, 2, "diag")
        em.components.set_parameters(
            means=torch.tensor([[-2.0, 0.0], [-1.0, 1.0], [2.0, 1.0], [3.0, 0.0],
                                [0.0, 3.0], [1.0, 4.0]]),
            covariances=torch.tensor([[0.5, 0.4], [0.3, 0.6], [0.7, 0.5], [0.4, 0.4],
                                      [0.5, 0.5], [0.6, 0.3]]))
        return _hmm(dtype, em)

    report = check_sequence_model(factory, _sequences(factory(torch.float64)))
    assert {"sample_log_prob", "em_monotone", "save_load"} <= set(report.passed)


def test_categorical_and_poisson_hmms_meet_the_sequence_contract_on_discrete_data():
    from genmodels.models.family_emissions import CategoricalEmission, PoissonEmission
    from genmodels.testing import check_sequence_model

    def categorical(dtype):
        return _hmm(dtype, CategoricalEmission(3, 2, probs=torch.tensor(
            [[0.9, 0.1], [0.2, 0.8], [0.5, 0.5]])))

    def poisson(dtype):
        return _hmm(dtype, PoissonEmission(3, 1, rates=torch.tensor([[0.3], [1.5], [4.0]])))

    for factory in (categorical, poisson):
        report = check_sequence_model(factory, _sequences(factory(torch.float64)),
                                      torch.tensor([12, 5, 12, 1, 8, 12]), discrete=True,
                                      n_samples=20000, num_steps=2)
        assert {"ragged", "sample_log_prob", "em_monotone", "save_load"} <= set(report.passed)


def test_linear_gaussian_ssm_meets_the_sequence_contract_with_ragged_batches():
    import numpy as np
    from _kalman_oracle import random_params

    from genmodels.models.lgssm import LinearGaussianSSM
    from genmodels.testing import check_sequence_model

    p = random_params(np.random.default_rng(0), 2, 2)

    def factory(dtype):
        m = LinearGaussianSSM(2, 2)
        m.set_params(**{k: v for k, v in p.items() if v is not None})
        return m.to(dtype)

    report = check_sequence_model(factory, _sequences(factory(torch.float64)),
                                  torch.tensor([12, 4, 12, 9, 1, 12]))
    assert {"ragged", "sample_log_prob", "em_monotone", "save_load"} <= set(report.passed)


def _linear_vae(dtype):
    from genmodels.models.vae import VAE

    model = VAE(4, 2, network="linear", likelihood="gaussian", variance=0.3,
                learn_variance=False, dtype="float64", seed=0)
    return model.to(dtype)


def test_vae_meets_the_bound_contract_against_its_exact_marginal():
    """A linear-Gaussian VAE's marginal is PPCA's: N(b, W Wᵀ + α I) — the oracle for its
    bounds (the recognition model is not the exact posterior, so the ELBO is strictly lower)."""
    from torch.distributions import MultivariateNormal

    from genmodels.testing import check_bound_model

    model = _linear_vae(torch.float64)
    data = model.sample(200, generator=torch.Generator().manual_seed(5))
    W, b = model.decoder.weight, model.decoder.bias
    C = W @ W.T + model.likelihood.log_alpha.exp() * torch.eye(4, dtype=W.dtype)
    exact = MultivariateNormal(b, C).log_prob(data).detach()
    report = check_bound_model(_linear_vae, data, exact=exact)
    assert {"bounds[exact]", "dtypes", "sample_log_prob", "save_load"} <= set(report.passed)


def test_bernoulli_vae_meets_the_bound_contract():
    from genmodels.models.vae import VAE
    from genmodels.testing import check_bound_model

    def factory(dtype):
        return VAE(6, 2, hidden=[8], likelihood="bernoulli", dtype="float64", seed=1).to(dtype)

    data = factory(torch.float64).sample(200, generator=torch.Generator().manual_seed(6))
    report = check_bound_model(factory, data, discrete=True)
    assert "bounds" in report.passed and "sample_log_prob" in report.not_applicable


# -- the second half's models -------------------------------------------------------------------

def _rbm(cls, *args, seed=0, **kw):
    g = torch.Generator().manual_seed(seed)
    model = cls(*args, **kw)
    return model.set_parameters(torch.randn(model.weight.shape, generator=g, dtype=torch.float64),
                                0.5 * torch.randn(model.b_x.shape, generator=g,
                                                  dtype=torch.float64),
                                0.5 * torch.randn(model.b_y.shape, generator=g,
                                                  dtype=torch.float64))


def test_harmoniums_meet_the_contract_with_gibbs_samples():
    """Block Gibbs draws (1,000 sweeps per chain, one chain per draw) against the exact
    log p̂(y) = −F(y) − log Z: frequencies for binary and count visibles, Stein's identity for
    Gaussian ones."""
    from genmodels.models.harmonium import (
        BernoulliRBM,
        GaussianBernoulliRBM,
        PoissonBernoulliRBM,
    )

    cases = [
        (lambda dt: _rbm(BernoulliRBM, 4, 3).to(dt), True),
        (lambda dt: _rbm(PoissonBernoulliRBM, 2, 2, seed=1).to(dt), True),
        (lambda dt: _rbm(GaussianBernoulliRBM, 2, 3, seed=2).to(dt), False),
    ]
    for factory, discrete in cases:
        model = factory(torch.float64)
        data = model.sample(60, 1000, generator=torch.Generator().manual_seed(3)).y.double()
        report = check_model(factory, data, discrete=discrete)
        assert {"shapes", "dtypes", "sample_log_prob", "save_load"} <= set(report.passed)


def test_nice_and_realnvp_flows_meet_the_contract():
    from genmodels.models.flows import nice, realnvp

    for build in (nice, realnvp):
        def factory(dtype, build=build):
            flow = build(2, n_couplings=4, hidden=8, seed=0, dtype=torch.float64)
            with torch.no_grad():  # move every weight off its initial value
                g = torch.Generator().manual_seed(1)
                for p in flow.parameters():
                    p.add_(0.3 * torch.randn(p.shape, generator=g, dtype=p.dtype))
            return flow.to(dtype)

        data = factory(torch.float64).sample(60, generator=torch.Generator().manual_seed(2))
        report = check_model(factory, data, batch_dims=False, em=False)
        assert {"shapes", "dtypes", "sample_log_prob", "save_load"} <= set(report.passed)
