"""End to end: ``genmodels fit helmholtz`` writes metrics, a loadable model and pictures."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from genmodels.cli import main
from genmodels.io import load


def test_fit_helmholtz_on_digits(tmp_path: Path):
    out = tmp_path / "report"
    rc = main(["fit", "helmholtz", "--layers", "8", "4", "--epochs", "2", "--eval-samples", "20",
               "--no-progress", "--out", str(out)])
    assert rc == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["n_train"] == 1437 and m["n_test"] == 360 and m["layers"] == [64, 8, 4]
    assert len(m["learning_curve"]) == 2
    assert math.isfinite(m["test_log_likelihood_is"]) and m["test_log_likelihood_is"] < 0
    assert m["test_log_likelihood_is"] >= m["test_elbo"] - 3 * m["test_elbo_stderr"]
    for f in ("learning_curve.png", "samples.png"):
        assert (out / f).exists(), f
    model = load(out / "model")
    assert model.log_marginal(torch.zeros(2, 64)).shape == (2,)


def test_fit_helmholtz_bad_layer(tmp_path: Path, capsys):
    rc = main(["fit", "helmholtz", "--layers", "0", "--epochs", "1", "--no-progress",
               "--out", str(tmp_path / "r")])
    assert rc == 2 and "layer_sizes[1]" in capsys.readouterr().err
