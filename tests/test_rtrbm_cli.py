"""End to end: ``genmodels fit rtrbm`` on bouncing balls: metrics, model, film strips."""

from __future__ import annotations

import json
import math
from pathlib import Path

from genmodels.cli import main
from genmodels.io import load


def test_fit_rtrbm_on_bouncing_balls(tmp_path: Path):
    out = tmp_path / "report"
    rc = main(["fit", "rtrbm", "--hidden", "8", "--sequences", "10", "--frames", "6",
               "--res", "6", "--epochs", "2", "--baseline", "--no-progress", "--out", str(out)])
    assert rc == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["n_train_sequences"] == 10 and m["pixels"] == 36
    for key in ("next_frame_squared_error", "rbm_next_frame_squared_error"):
        assert math.isfinite(m[key]) and m[key] > 0
    for f in ("learning_curve.png", "samples.png", "predictions.png"):
        assert (out / f).exists(), f
    assert load(out / "model").n_hidden == 8


def test_fit_rtrbm_needs_sequences(tmp_path: Path, capsys):
    rc = main(["fit", "rtrbm", "--data", "digits", "--no-progress", "--out", str(tmp_path)])
    assert rc == 2 and "bouncing_balls" in capsys.readouterr().err
