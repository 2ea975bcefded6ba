"""End to end: ``genmodels fit nice`` on digits (dequantised, held-out bits/dim) and on the
2-D pinwheel."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from genmodels.cli import main
from genmodels.io import load

TINY = ["--epochs", "1", "--hidden", "16", "--layers", "1", "--eval-draws", "2",
        "--no-progress"]


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_fit_nice_on_digits(tmp_path: Path) -> None:
    out = tmp_path / "r"
    assert main(["fit", "nice", "--data", "digits", *TINY, "--out", str(out)]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["n_train"] == 1437 and m["levels_of_data"] == 17
    assert m["test_bits_per_dim"] > 0 and math.isfinite(m["test_bits_per_dim_stderr"])
    for f in ("samples.png", "learning_curve.png"):
        assert (out / f).exists(), f
    flow = load(out / "model")
    y = torch.randint(0, 17, (5, 64), generator=torch.Generator().manual_seed(0)).float() + 0.5
    with torch.no_grad():
        assert bool(torch.isfinite(flow.log_prob(y)).all())


def test_fit_realnvp_on_pinwheel(tmp_path: Path) -> None:
    out = tmp_path / "p"
    assert main(["fit", "nice", "--data", "pinwheel", *TINY, "--coupling", "affine",
                 "--prior", "gaussian", "--out", str(out)]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert math.isfinite(m["test_log_likelihood_nats"]) and m["energy_distance"] > 0
    assert m["coupling"] == "affine"


def test_fit_nice_bad_input(tmp_path: Path, capsys) -> None:
    rc = main(["fit", "nice", "--data", "digits", *TINY, "--couplings", "1",
               "--out", str(tmp_path / "x")])
    assert rc == 2 and "n_couplings >= 2" in capsys.readouterr().err
