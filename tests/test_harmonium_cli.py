"""End to end: ``genmodels fit rbm`` writes metrics (exact or AIS log-likelihood), a loadable
model, filters, samples and the held-out learning curve, and resumes from its checkpoint."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from genmodels.cli import main
from genmodels.io import load
from genmodels.models.harmonium import Harmonium


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_fit_rbm_on_binarised_digits_exact(tmp_path: Path) -> None:
    out = tmp_path / "report"
    rc = main(["fit", "rbm", "--data", "digits", "--hidden", "8", "--epochs", "2",
               "--method", "cd", "--sample-steps", "5", "--no-progress", "--out", str(out)])
    assert rc == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["threshold"] == 8.0 and m["log_z_method"] == "exact"
    assert m["n_train"] + m["n_test"] == 1797 and m["epochs_run"] == 2
    assert len(m["learning_curve_test_log_likelihood"]) == 2
    assert -64 * math.log(2) < m["test_log_likelihood"] < 0
    for f in ("learning_curve.png", "filters.png", "samples.png", "checkpoint.pt"):
        assert (out / f).exists(), f
    model = load(out / "model")
    assert isinstance(model, Harmonium) and model.hidden.size == 8
    # resume: two more epochs continue the curve
    rc = main(["fit", "rbm", "--data", "digits", "--hidden", "8", "--epochs", "4",
               "--method", "cd", "--sample-steps", "5", "--no-progress", "--out", str(out),
               "--resume"])
    m2 = json.loads((out / "metrics.json").read_text())
    assert rc == 0 and m2["epochs_run"] == 4
    assert m2["learning_curve_test_log_likelihood"][:2] == m["learning_curve_test_log_likelihood"]


def test_fit_gaussian_rbm_on_grey_levels_with_ais(tmp_path: Path) -> None:
    out = tmp_path / "g"
    rc = main(["fit", "rbm", "--data", "digits", "--visible", "gaussian", "--hidden", "24",
               "--epochs", "1", "--ais-chains", "20", "--ais-temperatures", "50",
               "--sample-steps", "5", "--no-progress", "--out", str(out)])
    assert rc == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["standardised"] and m["log_z_method"] == "ais" and m["log_z_stderr"] > 0
    assert math.isfinite(m["test_log_likelihood"])
