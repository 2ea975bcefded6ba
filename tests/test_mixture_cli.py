"""End to end: ``genmodels fit gmm | kmeans | lda | qda`` on digits into a temporary folder."""

from __future__ import annotations

import json

import pytest
import torch

from genmodels.cli import main
from genmodels.data import load_dataset
from genmodels.io import load
from genmodels.recipes.mixture import adjusted_rand_index


def test_fit_gmm_on_digits_writes_a_report(tmp_path, capsys):
    out = tmp_path / "report"
    rc = main(["fit", "gmm", "--data", "digits", "--components", "10", "--covariance", "diag",
               "--n-init", "1", "--max-iter", "30", "--out", str(out), "--no-progress"])
    assert rc == 0
    m = json.loads((out / "metrics.json").read_text())
    for key in ("log_likelihood_train", "log_likelihood_test", "bic", "aic", "n_iter",
                "converged", "adjusted_rand_index"):
        assert key in m
    assert m["adjusted_rand_index"] > 0.3  # clusters carry digit identity (0 = chance)
    assert m["bic"] > m["aic"]
    model = load(out / "model")
    assert model.num_states == 10
    # The saved model is the fitted one: its total log-likelihood on all of digits equals the
    # reported train and test means weighted by their sizes (checked here, not by the recipe).
    X = load_dataset("digits").X
    total = m["log_likelihood_train"] * m["n_train"] + m["log_likelihood_test"] * m["n_test"]
    assert abs(float(model.log_marginal(X).sum()) - total) < 1e-8 * abs(total)
    assert (out / "learning_curve.png").exists() and (out / "means.png").exists()
    assert "gmm on digits" in capsys.readouterr().out


@pytest.mark.parametrize("recipe,extra,key,floor", [
    ("kmeans", ["--clusters", "10", "--n-init", "2"], "adjusted_rand_index", 0.4),
    ("lda", [], "test_accuracy", 0.9),
    ("qda", ["--reg-param", "0.05"], "test_accuracy", 0.9),
])
def test_fit_kmeans_lda_qda_on_digits(tmp_path, recipe, extra, key, floor):
    out = tmp_path / recipe
    assert main(["fit", recipe, "--data", "digits", "--out", str(out), "--no-progress",
                 *extra]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m[key] > floor


def test_cli_reports_bad_options_as_errors(tmp_path, capsys):
    rc = main(["fit", "gmm", "--data", "iris", "--components", "0", "--out", str(tmp_path)])
    assert rc == 2
    assert "--components" in capsys.readouterr().err


def test_adjusted_rand_index_matches_sklearn():
    from sklearn.metrics import adjusted_rand_score

    g = torch.Generator().manual_seed(0)
    a = torch.randint(4, (300,), generator=g)
    b = torch.where(torch.rand(300, generator=g) < 0.7, a, torch.randint(5, (300,),
                                                                          generator=g))
    assert abs(adjusted_rand_index(a, b) - adjusted_rand_score(a.numpy(), b.numpy())) < 1e-12
    assert adjusted_rand_index(a, a) == 1.0
