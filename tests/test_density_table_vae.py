"""The density table's VAE rows (benchmarks/density_table.py) run end to end at toy size: the
number is −ELBO in bits/dim, the importance-weighted bound beside it is tighter, and the
Gaussian emission is scored on dequantised images in the grey levels' units."""

from __future__ import annotations

import importlib.util
import math
import re
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def table():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("density_table",
                                                  ROOT / "benchmarks" / "density_table.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["density_table"] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("likelihood", ["normal", "categorical"])
def test_vae_rows_at_toy_size(table, monkeypatch, likelihood: str) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        monkeypatch.setattr(table, "VAE_EPOCHS", 2)
        monkeypatch.setattr(table, "VAE_IW", 20)
        monkeypatch.setattr(table, "VAE_DRAWS", 2)
        from genmodels.data import density_split

        train, test = density_split("grey")
        r = table.ROWS["grey"][{"normal": "VAE, Gaussian emission",
                                "categorical": "VAE, categorical emission"}[likelihood]](
            train[:300], test[:60])
    finally:
        torch.set_num_threads(n)
    assert r.kind == "bound" and math.isfinite(r.value) and r.value > 0 and r.stderr > 0
    iw = float(re.search(r"\(k = 20\) ([0-9.]+)", r.note).group(1))
    assert iw <= r.value + 1e-3  # the importance-weighted bound is the tighter one
    if likelihood == "categorical":  # two epochs already beat uniform levels, log₂ 17 bits
        assert r.value < math.log2(17)
