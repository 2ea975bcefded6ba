"""End to end: ``genmodels fit fa`` and ``genmodels fit pca`` on digits write a report whose
saved model loads back and reproduces the reported log-likelihood."""

from __future__ import annotations

import itertools
import json

import pytest
import torch

from genmodels.cli import main
from genmodels.data import load_dataset
from genmodels.io import load
from genmodels.models.factor_analysis import EMPCA, FactorAnalyzer, ProbabilisticPCA


@pytest.mark.filterwarnings("ignore::genmodels.exceptions.DegenerateFitWarning")
def test_fit_fa_on_digits(tmp_path, capsys):
    out = tmp_path / "fa"
    assert main(["fit", "fa", "--data", "digits", "--components", "10", "--out", str(out),
                 "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_components"] == 10 and metrics["n_iter"] >= 1
    curve = metrics["learning_curve"]
    assert all(b >= a - 1e-9 * abs(a) for a, b in itertools.pairwise(curve))
    for name in ("learning_curve.png", "factors.png", "model/config.json"):
        assert (out / name).exists(), name
    model = load(out / "model")
    assert isinstance(model, FactorAnalyzer)
    X = load_dataset("digits").X
    assert abs(float(model.log_marginal(X).mean()) - metrics["log_likelihood"]) < 1e-9
    assert "log_likelihood" in capsys.readouterr().out


@pytest.mark.parametrize("method", ["svd", "em"])
def test_fit_pca_on_digits(tmp_path, method):
    out = tmp_path / method
    assert main(["fit", "pca", "--data", "digits", "--components", "0.8", "--method", method,
                 "--out", str(out), "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["explained_variance"] > 0.8
    assert (out / "components.png").exists() and (out / "learning_curve.png").exists()
    model = load(out / "model")
    X = load_dataset("digits").X
    if method == "svd":
        assert isinstance(model, ProbabilisticPCA)
        assert abs(float(model.log_marginal(X).mean()) - metrics["log_likelihood"]) < 1e-9
    else:
        assert isinstance(model, EMPCA) and metrics["n_iter"] >= 1
        assert model.loadings.shape == (64, metrics["n_components"])
        assert bool(torch.isfinite(model.project(X)).all())


def test_bad_components_is_a_clean_error(tmp_path, capsys):
    assert main(["fit", "fa", "--data", "wine", "--components", "40", "--out",
                 str(tmp_path)]) == 2
    assert "--components" in capsys.readouterr().err
