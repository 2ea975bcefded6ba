"""Smoke run of examples/natural_gradient.py --tiny."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def test_natural_gradient_example_tiny(capsys):
    path = Path(__file__).resolve().parents[1] / "examples" / "natural_gradient.py"
    spec = importlib.util.spec_from_file_location("natural_gradient_example", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(["--tiny"])
    out = capsys.readouterr().out
    assert "natural gradient (Fisher scoring)" in out
    rows = [line for line in out.splitlines() if line.startswith("| natural gradient (")]
    steps = int(rows[0].split("|")[2])
    assert steps < 200  # converged well before the cap that stops gradient descent
