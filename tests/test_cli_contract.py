"""The command line's contract: `genmodels --help` lists every recipe and data set, every recipe
saves its model (kmeans included), --no-progress is honoured and a bar is drawn otherwise (lda,
qda, glm), and a missing optional package is one line naming the extra."""

from __future__ import annotations

import json
import sys

import pytest
import torch

from genmodels.cli import RECIPES, main, missing_package_message
from genmodels.data import available_datasets, load_dataset
from genmodels.io import load
from genmodels.learning.kmeans import kmeans


def test_help_lists_every_recipe_and_data_set(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for name in [*RECIPES, *available_datasets()]:
        assert f" {name}" in out, name


def test_kmeans_saves_a_model_that_assigns_as_kmeans(tmp_path):
    out = tmp_path / "km"
    assert main(["fit", "kmeans", "--data", "iris", "--clusters", "3", "--n-init", "2",
                 "--out", str(out), "--no-progress"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    model = load(out / "model")
    X = load_dataset("iris").X
    res = kmeans(X, 3, n_init=2, max_iter=300, tol=1e-4, seed=torch.Generator().manual_seed(0))
    assigned = model.posterior(X).responsibilities.argmax(-1)
    assert torch.equal(assigned, res.labels)  # the most probable component is the nearest centre
    assert torch.bincount(assigned, minlength=3).tolist() == m["cluster_sizes"]


@pytest.mark.parametrize(("argv", "desc"), [
    (["fit", "lda", "--data", "iris"], "lda"),
    (["fit", "qda", "--data", "iris"], "qda"),
    (["fit", "glm", "--data", "scotland", "--family", "gamma", "--link", "log"], "glm"),
])
def test_no_progress_is_honoured_and_a_bar_is_drawn_otherwise(tmp_path, capsys, argv, desc):
    assert main([*argv, "--out", str(tmp_path / "a"), "--no-progress"]) == 0
    assert "stage" not in capsys.readouterr().err
    assert main([*argv, "--out", str(tmp_path / "b")]) == 0
    err = capsys.readouterr().err
    assert f"{desc}:" in err and "/3 [" in err and "stage" in err
    assert (tmp_path / "b" / "model" / "config.json").exists()


def test_a_missing_optional_package_is_one_line_naming_the_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "statsmodels", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "statsmodels.api", None)
    assert main(["fit", "lgssm", "--data", "nile", "--out", str(tmp_path), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "statsmodels" in err[0] and "genmodels[peers]" in err[0]
    assert "Traceback" not in err[0]
    raw = ModuleNotFoundError("No module named 'matplotlib'", name="matplotlib")
    assert "pip install 'genmodels[plot]'" in missing_package_message(raw)
    unknown = ModuleNotFoundError("No module named 'nosuch'", name="nosuch")
    assert "'nosuch' is not installed" in missing_package_message(unknown)
