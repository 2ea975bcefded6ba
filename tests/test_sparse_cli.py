"""End to end: ``genmodels fit sparse-coding --data images`` writes the dictionary, the spectrum
and whitening plots, metrics and a model that loads back."""

from __future__ import annotations

import json

import pytest
import torch

from genmodels.cli import main
from genmodels.io import load
from genmodels.models.sparse_coding import SparseCodingModel


@pytest.mark.parametrize("algorithm", ["map", "em"])
def test_fit_sparse_coding_on_images(tmp_path, algorithm):
    out = tmp_path / algorithm
    args = ["fit", "sparse-coding", "--data", "images", "--components", "16", "--patch-size",
            "4", "--n-patches", "600", "--max-iter", "2", "--algorithm", algorithm, "--out",
            str(out), "--no-progress"]
    if algorithm == "em":
        args += ["--lam", "20"]
    assert main(args) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_components"] == 16 and metrics["n_features"] == 16
    assert -3.2 < metrics["spectrum_exponent"] < -1.6
    for name in ("dictionary.png", "spectrum.png", "whitening.png", "learning_curve.png",
                 "model/config.json"):
        assert (out / name).exists(), name
    model = load(out / "model")
    assert isinstance(model, SparseCodingModel)
    assert torch.isfinite(model.dictionary).all()
    assert 0.0 <= metrics["atom_localisation_median"] <= 1.0


def test_bad_arguments(tmp_path, capsys):
    assert main(["fit", "sparse-coding", "--data", "images", "--components", "0",
                 "--n-patches", "100", "--patch-size", "4", "--out", str(tmp_path),
                 "--no-progress"]) == 2
    assert "--components must be at least 1" in capsys.readouterr().err
