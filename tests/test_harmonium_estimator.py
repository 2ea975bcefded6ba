"""The scikit-learn face of the RBM: check_estimator, the BernoulliRBM interface, the true
log-likelihood, bad input, and (slow) held-out digits against scikit-learn's BernoulliRBM."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.utils.estimator_checks import parametrize_with_checks

import genmodels
from genmodels.data import bars_and_stripes, density_split
from genmodels.estimators.rbm import BernoulliRBM
from genmodels.inference.partition import exact_log_partition
from genmodels.models import harmonium


# Bernoulli visible units reject the checks' real-valued random data by design (a ValueError
# saying which entry is outside [0, 1]); Gaussian visible units take any real data, so the
# estimator machinery (fit, partial_fit, transform, score_samples, pickling, ...) is checked
# with them, once for PCD and once for CD.
@parametrize_with_checks([
    BernoulliRBM(n_components=3, n_iter=2, random_state=0, visible="gaussian"),
    BernoulliRBM(n_components=3, n_iter=2, random_state=0, visible="gaussian", method="cd",
                 k=2, momentum=0.5),
])
def test_scikit_learn_check_estimator(estimator, check) -> None:
    check(estimator)


def test_importable_from_genmodels_and_mirrors_scikit_learn_names() -> None:
    assert genmodels.BernoulliRBM is BernoulliRBM
    X = bars_and_stripes(3).numpy()
    rbm = BernoulliRBM(n_components=5, n_iter=3, batch_size=7, random_state=0).fit(X)
    assert rbm.components_.shape == (5, 9)
    assert rbm.intercept_hidden_.shape == (5,) and rbm.intercept_visible_.shape == (9,)
    assert rbm.persistent_chains_.shape == (7, 9)
    h = rbm.transform(X)
    assert h.shape == (14, 5) and bool(((h > 0) & (h < 1)).all())
    v = rbm.gibbs(X)
    assert v.shape == X.shape and set(np.unique(v)) <= {0.0, 1.0}
    ps = rbm.score_samples(X)
    assert ps.shape == (14,) and bool((ps <= 0).all())
    assert list(rbm.get_feature_names_out()) == [f"bernoullirbm{i}" for i in range(5)]
    # the same fit with the same seed
    again = BernoulliRBM(n_components=5, n_iter=3, batch_size=7, random_state=0).fit(X)
    np.testing.assert_array_equal(again.components_, rbm.components_)


def test_true_log_likelihood_exact_and_ais() -> None:
    X = bars_and_stripes(3).numpy()
    rbm = BernoulliRBM(n_components=8, n_iter=200, batch_size=7, learning_rate=0.5,
                       momentum=0.5, method="cd", random_state=0).fit(X)
    ll, se = rbm.log_likelihood(X)
    assert se == 0.0
    with torch.no_grad():
        lz = float(exact_log_partition(rbm.model_).log_z)
        ref = float((-rbm.model_.free_energy(torch.as_tensor(X)) - lz).mean())
    assert ll == pytest.approx(ref, abs=1e-12)
    assert ll > -9 * np.log(2) + 0.5  # learned something
    ll_ais, se_ais = rbm.log_likelihood(X, method="ais", num_chains=200,
                                        num_temperatures=500, data=X)
    assert se_ais > 0 and abs(ll_ais - ll) < 3 * se_ais + 1e-9


def test_exact_method_and_partial_fit_carry_the_chains() -> None:
    X = bars_and_stripes(3).numpy()
    exact = BernoulliRBM(n_components=4, n_iter=100, batch_size=14, learning_rate=1.0,
                         momentum=0.9, method="exact", random_state=1).fit(X)
    pcd = BernoulliRBM(n_components=4, batch_size=7, random_state=1)
    for _ in range(3):
        before = pcd.persistent_chains_.copy() if hasattr(pcd, "persistent_chains_") else None
        pcd.partial_fit(X)
        if before is not None:
            assert not np.array_equal(before, pcd.persistent_chains_)
    assert exact.log_likelihood(X)[0] > -9 * np.log(2) + 1.0


@pytest.mark.parametrize("visible,X,match", [
    ("bernoulli", [[0.0, 1.5], [1.0, 0.0]], r"values in \[0, 1\] .* first 1\.5 at index \(0, 1\)"),
    ("poisson", [[0.0, -1.0], [1.0, 0.0]], r"nonnegative integer counts .* first -1\.0"),
    ("poisson", [[0.0, 2.5], [1.0, 0.0]], r"nonnegative integer counts .* first 2\.5"),
    ("gaussian", [[0.0, np.nan], [1.0, 0.0]], r"NaN at index \(0, 1\)"),
])
def test_bad_input_is_a_value_error_saying_what_and_where(visible, X, match) -> None:
    with pytest.raises(ValueError, match=match):
        BernoulliRBM(n_components=2, visible=visible, n_iter=1).fit(np.asarray(X))


def test_bad_input_after_fitting_and_bad_parameters() -> None:
    X = bars_and_stripes(2).numpy()
    rbm = BernoulliRBM(n_components=2, n_iter=1, random_state=0).fit(X)
    with pytest.raises(ValueError, match=r"binary values \(0 or 1\) .* first 0\.5"):
        rbm.log_likelihood(X * 0.5)
    with pytest.raises(ValueError, match="X has 3 features, but BernoulliRBM is expecting 4"):
        rbm.transform(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="method must be one of"):
        BernoulliRBM(method="sgd").fit(X)
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        BernoulliRBM(k=0).fit(X)
    with pytest.raises(ValueError, match="visible must be one of"):
        BernoulliRBM(visible="gamma").fit(X)
    with pytest.raises(ValueError, match="more than max_states"):
        BernoulliRBM(n_components=30, method="exact").fit(
            np.random.default_rng(0).integers(0, 2, (5, 30)).astype(float))


def test_gaussian_and_poisson_visible_units_fit_and_score() -> None:
    rng = np.random.default_rng(0)
    Xg = rng.normal(size=(60, 3))
    g = BernoulliRBM(n_components=4, visible="gaussian-learned", n_iter=5, random_state=0,
                     learning_rate=0.05).fit(Xg)
    assert isinstance(g.model_.visible, harmonium.GaussianLayer) and g.model_.visible.learn_scale
    ll, _ = g.log_likelihood(Xg)
    np.testing.assert_allclose(g.score_samples(Xg).mean(), ll)
    Xp = rng.poisson(2.0, size=(60, 3)).astype(float)
    p = BernoulliRBM(n_components=4, visible="poisson", n_iter=5, random_state=0,
                     learning_rate=0.01).fit(Xp)
    assert np.isfinite(p.log_likelihood(Xp)[0])


@pytest.mark.slow
@pytest.mark.parametrize("hidden", [16, 20])
def test_held_out_digits_log_likelihood_beats_scikit_learn(hidden: int) -> None:
    """density_split("binary"): same H, same 20 epochs, batch 10. scikit-learn's PCD-1 with its
    defaults; genmodels' CD-1 with momentum 0.9 (learning rate 0.01). The exact held-out
    log-likelihood (log Z by enumerating the hidden layer) of ours is higher."""
    from sklearn.neural_network import BernoulliRBM as SkRBM

    train, test = density_split("binary")
    X, Xt = train.numpy(), test.numpy()
    sk = SkRBM(n_components=hidden, n_iter=20, random_state=0).fit(X)
    sk_model = harmonium.BernoulliRBM(64, hidden).set_parameters(
        sk.components_, sk.intercept_hidden_, sk.intercept_visible_)
    with torch.no_grad():
        sk_ll = float((-sk_model.free_energy(test) - exact_log_partition(sk_model).log_z).mean())
    ours = BernoulliRBM(n_components=hidden, n_iter=20, random_state=0, method="cd",
                        momentum=0.9, learning_rate=0.01).fit(X)
    ll, se = ours.log_likelihood(Xt)
    assert se == 0.0
    assert ll > sk_ll + 1.0, (ll, sk_ll)
