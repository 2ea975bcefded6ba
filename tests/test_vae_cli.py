"""End to end: ``genmodels fit vae`` writes metrics, a loadable model, plots and a checkpoint,
and ``--resume`` continues from the checkpoint."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from genmodels.cli import main
from genmodels.io import load


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_fit_vae_on_digits(tmp_path: Path, capsys):
    out = tmp_path / "report"
    rc = main(["fit", "vae", "--data", "digits", "--epochs", "2", "--hidden", "16",
               "--latent-dim", "2", "--iw-samples", "5", "--no-progress", "--out", str(out)])
    assert rc == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["likelihood"] == "bernoulli" and m["threshold"] == 8.0
    assert m["epochs_run"] == 2 and len(m["learning_curve_elbo"]) == 2
    assert m["n_train"] + m["n_test"] == 1797
    for key in ("train_elbo", "test_elbo", "test_iw_log_likelihood"):
        assert math.isfinite(m[key]) and m[key] < 0
    assert m["test_iw_log_likelihood"] >= m["test_elbo"] - 1.0
    for f in ("learning_curve.png", "samples.png", "reconstructions.png", "checkpoint.pt"):
        assert (out / f).exists(), f
    model = load(out / "model")
    assert model.sample(3, torch.Generator().manual_seed(0)).shape == (3, 64)
    assert "vae on digits" in capsys.readouterr().out

    # resume: two more epochs continue from the checkpoint (4 in all)
    rc = main(["fit", "vae", "--data", "digits", "--epochs", "4", "--hidden", "16",
               "--latent-dim", "2", "--iw-samples", "5", "--no-progress", "--out", str(out),
               "--resume"])
    assert rc == 0
    m2 = json.loads((out / "metrics.json").read_text())
    assert m2["epochs_run"] == 4
    assert m2["learning_curve_elbo"][:2] == m["learning_curve_elbo"]


def test_fit_vae_gaussian_file_and_errors(tmp_path: Path, capsys):
    rng = np.random.default_rng(0)
    path = tmp_path / "data.npy"
    np.save(path, rng.normal(size=(60, 3)) * 5 + 2)
    out = tmp_path / "r"
    rc = main(["fit", "vae", "--data", str(path), "--epochs", "1", "--latent-dim", "1",
               "--recognition", "full", "--iw-samples", "3", "--no-progress", "--out", str(out)])
    assert rc == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["likelihood"] == "gaussian" and m["standardised"]
    rc = main(["fit", "vae", "--data", str(path), "--test-fraction", "1.5", "--no-progress",
               "--out", str(out)])
    assert rc == 2 and "test-fraction" in capsys.readouterr().err
