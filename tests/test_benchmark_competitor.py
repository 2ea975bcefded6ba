"""benchmarks/run_all.py's busy condition: a separate CPU-bound interpreter, not a fork.

A forked competitor shares the benchmark's memory copy-on-write, so the library timed first
after the fork pays page faults for every buffer it had written before (measured: +1,900
faults, +80% time on an HMM posterior) — a cost of the benchmark, not of a busy core.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")


def _run_all():  # type: ignore[no-untyped-def]
    sys.path.insert(0, str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location("run_all", ROOT / "benchmarks" / "run_all.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["run_all"] = mod  # (its dataclasses look their module up)
    spec.loader.exec_module(mod)
    return mod


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def test_quiet_starts_nothing() -> None:
    with _run_all().competing_process(False) as proc:
        assert proc is None


def test_busy_is_a_fresh_spinning_interpreter_stopped_after() -> None:
    with _run_all().competing_process(True) as proc:
        pid = proc.pid
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        # a fresh interpreter running the spin loop, not a copy of this (pytest) process
        assert cmdline[0] == os.fsencode(sys.executable)
        assert b"-c" in cmdline and not any(b"pytest" in part for part in cmdline)
        t0 = _cpu_ticks(pid)
        time.sleep(0.3)
        assert _cpu_ticks(pid) > t0  # it competes for a core
    assert proc.poll() is not None  # and is gone afterwards
