"""Saved work: umask permissions on everything written, a model folder replaced atomically as a
whole (a save killed at any instant leaves a loadable, consistent model), and a training run
killed with SIGKILL mid-epoch resuming bit-identically."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from genmodels import io as gio
from genmodels.io import atomic_torch_save, atomic_write_text, load, save
from genmodels.models.lgssm import LinearGaussianSSM
from genmodels.reports import Report

SRC = str(Path(__file__).resolve().parents[1] / "src")


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def _model(k: int) -> LinearGaussianSSM:
    m = LinearGaussianSSM(k, k)
    m.dynamics = torch.full((k, k), float(k), dtype=torch.float64)
    return m


def test_every_file_written_gets_the_umask_permissions(tmp_path, umask_022):
    folder = save(_model(2), tmp_path / "model")
    assert _mode(folder) == 0o755
    for name in ("config.json", "tensors.safetensors"):
        assert _mode(folder / name) == 0o644
    atomic_write_text(tmp_path / "metrics.json", "{}")
    atomic_torch_save({"a": 1}, tmp_path / "ck.pt")
    assert _mode(tmp_path / "metrics.json") == _mode(tmp_path / "ck.pt") == 0o644
    pytest.importorskip("matplotlib")
    report = Report(tmp_path / "report")
    report.learning_curve([1.0, 2.0])
    report.write_metrics({"x": 1})
    assert _mode(tmp_path / "report" / "learning_curve.png") == 0o644
    assert _mode(tmp_path / "report" / "metrics.json") == 0o644
    os.umask(0o077)
    atomic_write_text(tmp_path / "private.json", "{}")
    assert _mode(tmp_path / "private.json") == 0o600


def test_a_save_that_fails_midway_leaves_the_old_model(tmp_path, monkeypatch):
    save(_model(2), tmp_path / "m")
    real = gio.atomic_write_text

    def crash(path, text):  # the tensors of the new model are written, then the "crash"
        raise KeyboardInterrupt

    monkeypatch.setattr(gio, "atomic_write_text", crash)
    with pytest.raises(KeyboardInterrupt):
        save(_model(3), tmp_path / "m")
    monkeypatch.setattr(gio, "atomic_write_text", real)
    back = load(tmp_path / "m")
    assert back.dynamics.shape == (2, 2) and bool((back.dynamics == 2).all())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # the temporary folder is gone


def test_the_fallback_between_two_renames_is_loadable(tmp_path, monkeypatch):
    """Where no atomic exchange exists the old folder is moved aside first; a crash between the
    two renames leaves only that backup, which ``load`` uses."""
    save(_model(2), tmp_path / "m")
    monkeypatch.setattr(gio, "_exchange", lambda a, b: False)
    real_rename = os.rename
    calls = []

    def rename(a, b):
        calls.append((a, b))
        if len(calls) == 2:
            raise KeyboardInterrupt  # killed after moving the old folder aside
        real_rename(a, b)

    monkeypatch.setattr(gio.os, "rename", rename)
    with pytest.raises(KeyboardInterrupt):
        save(_model(3), tmp_path / "m")
    monkeypatch.setattr(gio.os, "rename", real_rename)
    assert not (tmp_path / "m").exists()
    assert load(tmp_path / "m").dynamics.shape == (2, 2)
    save(_model(3), tmp_path / "m")  # the next save cleans up
    assert load(tmp_path / "m").dynamics.shape == (3, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_save_refuses_a_folder_with_other_files(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="holds other files"):
        save(_model(2), tmp_path)


SAVER = textwrap.dedent("""
    import sys, torch
    from genmodels.io import save
    from genmodels.models.lgssm import LinearGaussianSSM
    i = 0
    while True:
        k = 2 + i % 2
        m = LinearGaussianSSM(k, k)
        m.dynamics = torch.full((k, k), float(k), dtype=torch.float64)
        save(m, sys.argv[1])
        if i == 0:
            print("ready", flush=True)
        i += 1
""")


def test_a_save_killed_at_random_instants_leaves_a_consistent_model(tmp_path):
    """A process re-saves models of two shapes in a loop and is SIGKILLed at several instants:
    the folder always loads, with tensors matching its config."""
    env = {**os.environ, "PYTHONPATH": SRC}
    target = tmp_path / "m"
    for delay in (0.0, 0.021, 0.057):
        proc = subprocess.Popen([sys.executable, "-c", SAVER, str(target)], env=env,
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        back = load(target)
        k = back.state_dim
        assert back.dynamics.shape == (k, k) and bool((back.dynamics == k).all())


TRAINER = textwrap.dedent("""
    import os, signal, sys, torch
    from genmodels.learning.trainer import Trainer
    from genmodels.models.vae import VAE
    torch.set_num_threads(1)
    checkpoint, kill_at = sys.argv[1], int(sys.argv[2])
    data = (torch.rand(96, 6, generator=torch.Generator().manual_seed(0)) < 0.4).float()
    model = VAE(6, 2, hidden=[8], likelihood="bernoulli", seed=0)

    def callback(epoch, step, loss):
        if epoch * 100 + step == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)  # mid-epoch, no clean-up of any kind

    Trainer(model, epochs=4, batch_size=16, seed=3, checkpoint=checkpoint, resume=True,
            progress=False, callback=callback).fit(data)
    torch.save(model.state_dict(), checkpoint + ".final")
""")


@pytest.mark.slow
def test_training_killed_mid_epoch_resumes_bit_identically(tmp_path):
    env = {**os.environ, "PYTHONPATH": SRC}
    ck, ref = str(tmp_path / "ck.pt"), str(tmp_path / "ref.pt")
    straight = subprocess.Popen([sys.executable, "-c", TRAINER, ref, "-1"], env=env)
    killed = subprocess.run([sys.executable, "-c", TRAINER, ck, "203"], env=env)  # epoch 3
    assert killed.returncode == -signal.SIGKILL
    assert torch.load(ck, weights_only=False)["epoch"] == 2  # the last completed epoch
    resumed = subprocess.run([sys.executable, "-c", TRAINER, ck, "-1"], env=env)
    assert resumed.returncode == 0 and straight.wait() == 0
    a = torch.load(ck + ".final", weights_only=False)
    b = torch.load(ref + ".final", weights_only=False)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
