"""End-to-end: `genmodels fit lgssm --data nile` and the Nile example."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from _kalman_oracle import single_thread

from genmodels.cli import main


@pytest.fixture(autouse=True)
def _one_thread():
    yield from single_thread()

pytest.importorskip("statsmodels")


@pytest.mark.slow
def test_cli_fit_lgssm_on_nile(tmp_path, capsys):
    out = tmp_path / "report"
    rc = main(["fit", "lgssm", "--data", "nile", "--out", str(out), "--no-progress",
               "--em-iters", "5"])
    assert rc == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert abs(metrics["sigma2_irregular"] - 15099) / 15099 < 5e-3
    assert abs(metrics["sigma2_level"] - 1469.1) / 1469.1 < 5e-3
    assert abs(metrics["log_likelihood"] - (-633.4646)) < 1e-3
    assert (out / "model" / "config.json").exists()
    printed = capsys.readouterr().out
    assert "sigma2_level" in printed and "log_likelihood" in printed
    if importlib.util.find_spec("matplotlib") is not None:
        assert (out / "states.png").exists()


def test_nile_example_tiny_runs():
    path = Path(__file__).resolve().parents[1] / "examples" / "nile_local_level.py"
    spec = importlib.util.spec_from_file_location("nile_local_level", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    result = mod.main(["--tiny"])
    assert result["sigma2_level"] > 0 and result["sigma2_irregular"] > 0
