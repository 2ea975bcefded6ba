"""End to end: ``genmodels fit diffusion`` on digits and on the 2-D pinwheel writes metrics
(held-out bits/dim), a loadable model, samples, the film strip and the learning curve."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from genmodels.cli import main
from genmodels.io import load

TINY = ["--epochs", "1", "--levels", "20", "--hidden", "16", "--layers", "1",
        "--n-samples", "4", "--no-progress"]


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_fit_diffusion_on_digits(tmp_path: Path, capsys) -> None:
    out = tmp_path / "r"
    assert main(["fit", "diffusion", "--data", "digits", *TINY, "--out", str(out)]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["n_train"] == 1437 and m["n_test"] == 360 and m["levels_of_data"] == 17
    assert m["test_bits_per_dim"] > 0 and math.isfinite(m["test_bits_per_dim_stderr"])
    assert len(m["learning_curve_loss"]) == 1
    for f in ("samples.png", "chain.png", "learning_curve.png", "checkpoint.pt"):
        assert (out / f).exists(), f
    model = load(out / "model")
    x = model.sample(2, (64,), generator=torch.Generator().manual_seed(0))
    assert x.shape == (2, 64)
    assert "diffusion on digits" in capsys.readouterr().out


def test_fit_diffusion_on_pinwheel_with_ddim(tmp_path: Path) -> None:
    out = tmp_path / "p"
    assert main(["fit", "diffusion", "--data", "pinwheel", *TINY, "--sampler", "ddim",
                 "--ddim-steps", "5", "--parameterisation", "v", "--out", str(out)]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["energy_distance"] > 0 and m["gmm_energy_distance"] > 0
    assert math.isfinite(m["test_elbo_nats_data_units"])
    assert (out / "samples.png").exists()


def test_fit_diffusion_bad_input(tmp_path: Path, capsys) -> None:
    rc = main(["fit", "diffusion", "--data", "pinwheel", *TINY, "--network", "conv",
               "--out", str(tmp_path / "x")])
    assert rc == 2 and "--network conv needs image data" in capsys.readouterr().err
    rc = main(["fit", "diffusion", "--data", "digits", "--levels", "0", "--no-progress",
               "--out", str(tmp_path / "y")])
    assert rc == 2 and "L must be an integer >= 1" in capsys.readouterr().err
