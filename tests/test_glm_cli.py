"""The `genmodels fit glm` / `logistic` commands and the breast-cancer example, end to end."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import statsmodels.api as sm

import genmodels
from genmodels.cli import main
from genmodels.data import load_dataset

ROOT = Path(__file__).resolve().parents[1]


def test_cli_fit_glm_binomial(tmp_path, capsys):
    out = tmp_path / "rep"
    rc = main(["fit", "glm", "--data", "breast_cancer", "--family", "binomial",
               "--features", "mean", "--out", str(out), "--no-progress"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "Generalized Linear Model Regression Results" in text and "mean radius" in text
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["converged"] and not metrics["separated"]
    ds = load_dataset("breast_cancer")
    X = sm.add_constant(ds.X[:, :10].numpy())
    ref = sm.GLM(ds.y.double().numpy(), X, family=sm.families.Binomial()).fit(tol=1e-12)
    assert abs(metrics["deviance"] - ref.deviance) < 1e-6
    rows = list(csv.DictReader((out / "coefficients.csv").open()))
    np.testing.assert_allclose([float(r["coef"]) for r in rows], ref.params, rtol=1e-6)
    np.testing.assert_allclose([float(r["std_err"]) for r in rows], ref.bse, rtol=1e-6)
    model = genmodels.load(out / "model")
    np.testing.assert_allclose(model.params.numpy(), ref.params, rtol=1e-6)


def test_cli_logistic_all_features_reports_separation(tmp_path, capsys):
    rc = main(["fit", "logistic", "--out", str(tmp_path / "r")])
    assert rc == 0
    text = capsys.readouterr().out
    assert "separat" in text
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert metrics["separated"] and not metrics["converged"]


def test_cli_gamma_scotland_and_bad_data(tmp_path, capsys):
    assert main(["fit", "glm", "--data", "scotland", "--family", "gamma", "--link", "log",
                 "--out", str(tmp_path / "g")]) == 0
    bad = tmp_path / "bad.csv"
    bad.write_text("a,y\n1,-1\n2,3\n3,1\n")
    assert main(["fit", "glm", "--data", str(bad), "--family", "poisson",
                 "--out", str(tmp_path / "b")]) == 2
    assert "non-negative" in capsys.readouterr().err


def test_example_tiny_runs():
    r = subprocess.run([sys.executable, str(ROOT / "examples" / "glm_breast_cancer.py"), "--tiny"],
                       capture_output=True, text=True, timeout=300,
                       env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr
    assert "Generalized Linear Model" in r.stdout and "leave-one-out" in r.stdout
