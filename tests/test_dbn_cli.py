"""End to end: ``genmodels fit dbn`` writes metrics, a loadable model and pictures."""

from __future__ import annotations

import json
import math
from pathlib import Path

from genmodels.cli import main
from genmodels.io import load


def test_fit_dbn_on_digits(tmp_path: Path):
    out = tmp_path / "report"
    rc = main(["fit", "dbn", "--layers", "6", "64", "--epochs", "2", "--negative", "1",
               "--fine-tune-epochs", "1", "--gibbs-steps", "5", "--no-progress",
               "--out", str(out)])
    assert rc == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["layers"] == [64, 6, 64] and m["rbm_log_z_method"] == "exact"
    for key in ("rbm_test_log_likelihood", "dbn_test_lower_bound", "fine_tuned_test_lower_bound"):
        assert math.isfinite(m[key]) and m[key] < 0, key
    assert len(m["learning_curves_surrogate"]) == 2
    for f in ("learning_curve.png", "samples.png"):
        assert (out / f).exists(), f
    assert load(out / "model").layer_sizes == [64, 6, 64]


def test_fit_dbn_bad_negative(tmp_path: Path, capsys):
    rc = main(["fit", "dbn", "--negative", "sometimes", "--epochs", "1", "--no-progress",
               "--out", str(tmp_path / "r")])
    assert rc == 2 and "--negative" in capsys.readouterr().err
