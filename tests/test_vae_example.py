"""Smoke run of examples/vae_digits.py --tiny."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_vae_example_tiny(capsys):
    path = Path(__file__).resolve().parents[1] / "examples" / "vae_digits.py"
    spec = importlib.util.spec_from_file_location("vae_digits_example", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(["--tiny"])
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| Gaussian")
            or line.startswith("| categorical")]
    assert len(rows) == 4
    for row in rows:
        elbo, iw = (float(v) for v in row.strip("|").split("|")[1:3])
        assert -64 * 0.7 < elbo < 0 and iw < 0  # better than coin flips (64 log 2 ≈ 44 nats)
