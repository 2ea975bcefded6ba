"""End-to-end: ``genmodels fit hmm`` on the Nile series, and the casino example's tiny run."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from genmodels.cli import main


def test_cli_fit_hmm_nile(tmp_path):
    pytest.importorskip("statsmodels")
    out = tmp_path / "report"
    rc = main(["fit", "hmm", "--out", str(out), "--no-progress", "--n-init", "2"])
    assert rc == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["states"] == 2 and metrics["converged"]
    # the Aswan change point: one switch, around 1898-1902, the later regime lower
    assert len(metrics["viterbi_switches_at"]) == 1
    assert 1895 <= metrics["viterbi_switches_at"][0] <= 1905
    low, high = (m[0] for m in metrics["state_means"])
    assert 800 < low < 900 and 1050 < high < 1150
    assert (out / "model" / "config.json").exists()
    from genmodels.io import load

    model = load(out / "model")
    assert model.num_states == 2
    if importlib.util.find_spec("matplotlib") is not None:
        assert (out / "states.png").exists() and (out / "learning_curve.png").exists()


def test_cli_bad_option(tmp_path, capsys):
    rc = main(["fit", "hmm", "--out", str(tmp_path / "r"), "--states", "0", "--no-progress"])
    assert rc == 2
    assert "--states" in capsys.readouterr().err


def test_casino_example_tiny():
    path = Path(__file__).resolve().parents[1] / "examples" / "casino_hmm.py"
    spec = importlib.util.spec_from_file_location("casino_hmm", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = mod.main(["--tiny"])
    assert out["acc_viterbi"] > 0.6
    assert out["loglik_last"] >= out["loglik_first"]
