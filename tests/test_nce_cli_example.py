"""`genmodels fit word2vec` end to end, the text data sets, and the noise-contrastive example
(--tiny)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

import genmodels
from genmodels.cli import main
from genmodels.data import available_datasets, load_dataset

pytest.importorskip("gensim")


def test_cli_fit_word2vec_on_lee(tmp_path, capsys):
    out = tmp_path / "rep"
    rc = main(["fit", "word2vec", "--data", "lee", "--dim", "30", "--min-count", "3",
               "--epochs", "2", "--out", str(out), "--no-progress"])
    assert rc == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["vocabulary"] == 3027 and metrics["tokens"] == 59890
    for key in ("wordsim353_spearman", "simlex999_spearman", "analogy_accuracy",
                "words_per_second"):
        assert key in metrics
    assert 0 < metrics["wordsim353_oov_percent"] < 100
    assert (out / "projection.png").stat().st_size > 1000
    header, first = (out / "vectors.txt").read_text().splitlines()[:2]
    assert header == "3027 30" and len(first.split()) == 31
    wv = genmodels.load(out / "model").word_vectors()
    assert wv.index_to_key[0] == first.split()[0] == "the"
    assert "wordsim353_spearman" in capsys.readouterr().out


def test_cli_word2vec_bad_data(tmp_path, capsys):
    rc = main(["fit", "word2vec", "--data", str(tmp_path / "missing.txt"), "--out",
               str(tmp_path / "r")])
    assert rc == 2
    assert "unknown corpus" in capsys.readouterr().err
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    assert main(["fit", "word2vec", "--data", str(empty), "--out", str(tmp_path / "r")]) == 2
    assert "holds no tokens" in capsys.readouterr().err


def test_text_corpora_are_registered_data_sets():
    assert {"enwiki", "lee"} <= set(available_datasets())
    ds = load_dataset("lee")
    assert ds.X.shape == (59890,) and ds.index is not None and int(ds.index[-1]) == 59890
    assert ds.feature_names[int(ds.X[0])] == "Hundreds"


def test_noise_contrastive_example_tiny(capsys):
    path = Path(__file__).resolve().parents[1] / "examples" / "noise_contrastive.py"
    spec = importlib.util.spec_from_file_location("noise_contrastive_example", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(["--tiny"])
    out = capsys.readouterr().out
    assert "learned c" in out and "bound, optimal critic" in out and "government:" in out
