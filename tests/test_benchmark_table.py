"""benchmarks/readme_table.py renders run_all.py's JSON and replaces the README's table."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _module():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("readme_table",
                                                  ROOT / "benchmarks" / "readme_table.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["readme_table"] = mod
    spec.loader.exec_module(mod)
    return mod


def _row(case: str, threads: int, quiet: float, busy: float) -> dict:
    return {"case": case, "task": f"task {case}", "peer": "peer", "threads": threads,
            "agreement": "equal", "busy_fraction_of_quiet": busy / quiet,
            "quiet": {"genmodels_s": 1.0, "peer_s": quiet, "ratio": quiet},
            "busy": {"genmodels_s": 2.0, "peer_s": 2 * busy, "ratio": busy}}


RESULTS = {"date": "2026-12-02T15:00:00+00:00", "quick": False,
           "machine": {"cores": 2, "processor": "x86_64", "platform": "Linux", "torch": "2.13",
                       "python": "3.11"},
           "loadavg_before": [1.0], "loadavg_after": [1.5],
           "rows": [_row("a", 1, 2.0, 1.8), _row("a", 2, 3.0, 2.7), _row("b", 1, 1.5, 1.5)]}


def test_render_has_one_row_per_case_with_both_conditions() -> None:
    table = _module().render(RESULTS)
    lines = [ln for ln in table.splitlines() if ln.startswith(("| task a", "| task b"))]
    assert len(lines) == 2  # two cases, each thread count in its own columns
    a = next(ln for ln in table.splitlines() if ln.startswith("| task a"))
    assert "**2.00×**" in a and "1.80× (90%)" in a and "**3.00×**" in a and "2.70× (90%)" in a
    b = next(ln for ln in table.splitlines() if ln.startswith("| task b"))
    assert "–" in b  # no 2-thread run of case b
    assert "2026-12-02" in table and "2 cores" in table


def test_write_replaces_only_between_the_markers(tmp_path: Path) -> None:
    mod = _module()
    readme = tmp_path / "README.md"
    readme.write_text(f"before\n{mod.START}\nold table\n{mod.END}\nafter\n")
    mod.write_readme("new table\n", readme)
    assert readme.read_text() == f"before\n{mod.START}\nnew table\n{mod.END}\nafter\n"
    readme.write_text("no markers\n")
    with pytest.raises(SystemExit, match="markers"):
        mod.write_readme("x\n", readme)
