import math

import pytest
import torch
from em_toy import UnitVarianceMixture, toy_data

from genmodels.exceptions import ConvergenceWarning
from genmodels.learning.em import e_step, fit_em, minibatches, run_em


def test_two_half_batches_give_exactly_the_whole():
    y = toy_data()
    model = UnitVarianceMixture()
    whole = model.expected_stats(y)
    halves = e_step(model, minibatches(y, 200))
    assert halves.n == whole.n
    torch.testing.assert_close(halves.log_likelihood, whole.log_likelihood, rtol=1e-14, atol=0)
    for k in whole.stats:
        torch.testing.assert_close(halves.stats[k], whole.stats[k], rtol=1e-14, atol=1e-12)


def test_streaming_em_equals_full_batch_em():
    y = toy_data()
    a, b = UnitVarianceMixture(), UnitVarianceMixture()
    ra = run_em(a, [y], max_iter=30, tol=0.0, warn=False)
    rb = run_em(b, lambda: iter(minibatches(y, 64)), max_iter=30, tol=0.0, warn=False)
    torch.testing.assert_close(a.means, b.means)
    assert ra.log_likelihood == pytest.approx(rb.log_likelihood, rel=1e-12)


def test_em_is_monotone_and_recovers_means():
    y = toy_data(4000)
    model = UnitVarianceMixture()
    result = run_em(model, [y], max_iter=200, tol=1e-10)
    diffs = torch.diff(torch.tensor(result.log_likelihood))
    assert (diffs >= -1e-12).all()
    assert result.converged
    torch.testing.assert_close(model.means.sort().values, torch.tensor([-2.0, 3.0]),
                               atol=0.1, rtol=0)
    torch.testing.assert_close(model.weights.sort().values, torch.tensor([0.3, 0.7]),
                               atol=0.03, rtol=0)


def test_frozen_parameters_stay_fixed():
    y = toy_data()
    model = UnitVarianceMixture()
    run_em(model, [y], max_iter=5, frozen={"weights"}, warn=False)
    torch.testing.assert_close(model.weights, torch.tensor([0.5, 0.5]))
    with pytest.raises(ValueError, match="unknown parameter"):
        run_em(model, [y], frozen={"nonsense"})


def test_convergence_warning_and_history():
    y = toy_data()
    with pytest.warns(ConvergenceWarning, match="did not converge in 2 iterations"):
        result = run_em(UnitVarianceMixture(), [y], max_iter=2, tol=0.0)
    assert result.n_iter == 2 and len(result.log_likelihood) == 2 and not result.converged


def test_convergence_warning_reports_the_last_change():
    y = toy_data()
    with pytest.warns(ConvergenceWarning) as record:
        result = run_em(UnitVarianceMixture(), [y], max_iter=3, tol=0.0)
    change = abs(result.log_likelihood[-1] - result.log_likelihood[-2])
    assert change > 1e-3  # three iterations from a poor start still move a lot
    assert f"last change {change:.3g} " in str(record[0].message)


def test_restarts_replay_the_warnings_of_every_run():
    y = toy_data()
    with pytest.warns(ConvergenceWarning) as record:
        result = fit_em(UnitVarianceMixture(3), y, n_init=3, seed=0, max_iter=2, tol=0.0)
    messages = [str(w.message) for w in record if w.category is ConvergenceWarning]
    assert len(messages) == 3
    discarded = [m for m in messages if "(discarded)" in m]
    assert len(discarded) == 2
    assert not any(f"restart {result.init + 1} of 3" in m for m in discarded)


def test_restarts_keep_the_best_and_warm_start_skips_initialisation():
    y = toy_data()
    model = UnitVarianceMixture(3)
    result = fit_em(model, y, n_init=4, seed=0, max_iter=50, tol=1e-8, warn=False)
    finals = []
    for s in range(4):
        m = UnitVarianceMixture(3)
        g = torch.Generator().manual_seed(0)
        for _ in range(s + 1):  # the generator advances once per restart
            m.initialize(y, g)
        finals.append(run_em(m, [y], max_iter=50, tol=1e-8, warn=False).final)
    assert result.final == pytest.approx(max(finals), rel=1e-12)
    warm = UnitVarianceMixture(3)
    warm.means = torch.tensor([-2.0, 0.0, 3.0])
    fit_em(warm, y, warm_start=True, max_iter=1, tol=0.0, warn=False)
    assert warm.means[1].abs() < 2.0  # started from the given means, not a random datum


def test_nonfinite_likelihood_is_reported():
    model = UnitVarianceMixture()
    model.weights = torch.tensor([1.0, 0.0])
    model.means = torch.tensor([0.0, 1e200])
    with pytest.raises(ValueError, match="log-likelihood became"):
        run_em(model, [torch.tensor([1e200 * 1e200])], max_iter=1)


def test_empty_batches_rejected():
    with pytest.raises(ValueError, match="no data"):
        run_em(UnitVarianceMixture(), [], max_iter=1)


def test_run_em_validates_max_iter():
    with pytest.raises(ValueError, match="max_iter"):
        run_em(UnitVarianceMixture(), [toy_data()], max_iter=0)
    assert math.isfinite(run_em(UnitVarianceMixture(), [toy_data()], max_iter=1,
                                warn=False).final)
