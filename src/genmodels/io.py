"""Saving and loading: safetensors for tensors, JSON for configuration, atomic writes.

A saved model is a folder with ``config.json`` (the class and its constructor arguments) and
``tensors.safetensors`` (its parameters), replaced as a whole on every save (``save``). Every file
genmodels writes goes through ``atomic_write_bytes`` and gets the permissions the umask gives.
Any object meeting the ``Savable`` protocol can be saved; ``SavableModule`` gives it to
``torch.nn.Module`` subclasses that record their constructor arguments in ``self.config``.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

FORMAT_VERSION = 1


@runtime_checkable
class Savable(Protocol):
    def get_config(self) -> dict[str, Any]: ...

    def state_tensors(self) -> dict[str, Tensor]: ...

    @classmethod
    def from_saved(cls, config: dict[str, Any], tensors: dict[str, Tensor]) -> Any: ...


class SavableModule(nn.Module):
    """A module that saves as (constructor config, state dict).

    Subclasses set ``self.config`` to their JSON-serialisable constructor arguments.
    """

    config: dict[str, Any]

    def get_config(self) -> dict[str, Any]:
        return dict(self.config)

    def state_tensors(self) -> dict[str, Tensor]:
        return {k: v.detach().contiguous() for k, v in self.state_dict().items()}

    @classmethod
    def from_saved(cls, config: dict[str, Any], tensors: dict[str, Tensor]) -> Any:
        obj = cls(**config)
        obj.load_state_dict(tensors)
        return obj


def class_path(obj: Any) -> str:
    """``"module:QualName"`` of an object's class, as saved in config.json."""
    return f"{type(obj).__module__}:{type(obj).__qualname__}"


def import_class(path: str, *, allow_external: bool = False) -> Any:
    """The class named by ``class_path``; only genmodels' own unless ``allow_external`` (a
    saved folder names the class to construct, so loading one you did not write is refused)."""
    module_name, _, qualname = path.partition(":")
    if not (module_name.split(".")[0] == "genmodels" or allow_external):
        raise ValueError(f"refusing to load class {path!r} from outside genmodels; "
                         "pass allow_external=True if you trust this folder.")
    cls: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        cls = getattr(cls, part)
    return cls


def _umask() -> int:
    """The process's file-creation mask (read by setting and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    """Make a rename inside ``folder`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half.

    The file gets the permissions an ordinary ``open`` would (0666 less the umask), not the
    0600 of the temporary file it is written through.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), 0o666 & ~_umask())
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_torch_save(obj: Any, path: str | os.PathLike[str]) -> None:
    """``torch.save`` through a temporary file and ``os.replace`` (for checkpoints)."""
    import io as _io

    buf = _io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


#: The files of a saved model folder.
MODEL_FILES = ("config.json", "tensors.safetensors")


def save(obj: Savable, path: str | os.PathLike[str]) -> Path:
    """Save ``obj`` into the folder ``path``, atomically as a whole. Returns the folder.

    Both files are written into a temporary sibling folder, which then replaces ``path`` in
    one step (an atomic exchange of the two folders on Linux; elsewhere two renames, with
    ``load`` falling back to the old folder if a crash falls between them). A crash at any
    point leaves the old model or the new one at ``path``, never a tensors file of one with
    the config of the other. An existing ``path`` must be a saved model folder (or empty): other
    files in it would be lost, so that is refused.
    """
    from safetensors.torch import save as st_save

    if not isinstance(obj, Savable):
        raise ValueError(f"{type(obj).__name__} cannot be saved: it does not implement Savable.")
    folder = Path(path)
    if folder.exists():
        if not folder.is_dir():
            raise ValueError(f"cannot save a model to {folder}: it exists and is not a folder.")
        extra = sorted(p.name for p in folder.iterdir() if p.name not in MODEL_FILES)
        if extra:
            raise ValueError(f"cannot save a model into {folder}: it holds other files "
                             f"({', '.join(extra[:5])}) that replacing the folder would delete; "
                             "choose an empty or new folder.")
    tensors = {k: v.detach().cpu().contiguous() for k, v in obj.state_tensors().items()}
    meta = {
        "format_version": FORMAT_VERSION,
        "class": class_path(obj),
        "config": obj.get_config(),
    }
    config_text = json.dumps(meta, indent=2, default=_json_default)
    parent = folder.parent
    parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(parent, folder.name)
    tmp = Path(tempfile.mkdtemp(dir=parent, prefix=f".{folder.name}.new-"))
    try:
        os.chmod(tmp, 0o777 & ~_umask())
        atomic_write_bytes(tmp / "tensors.safetensors", st_save(tensors))
        atomic_write_text(tmp / "config.json", config_text)
        _fsync_dir(tmp)
        _replace_folder(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _remove_stale(parent, folder.name)  # a backup an earlier crash left is now obsolete
    return folder


def _remove_stale(parent: Path, name: str) -> None:
    """Delete temporary folders a crashed ``save`` of ``name`` left behind (a backup only once
    the folder itself is back)."""
    for p in parent.glob(f".{name}.new-*"):
        shutil.rmtree(p, ignore_errors=True)
    if (parent / name).exists():
        for p in parent.glob(f".{name}.old-*"):
            shutil.rmtree(p, ignore_errors=True)


def _replace_folder(new: Path, folder: Path) -> None:
    """Put the folder ``new`` at ``folder``, in one atomic step where the OS allows."""
    if not folder.exists():
        os.rename(new, folder)
    elif _exchange(new, folder):  # now ``new`` holds the old model
        shutil.rmtree(new, ignore_errors=True)
    else:
        old = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.old-"))
        os.rmdir(old)
        os.rename(folder, old)  # a crash here leaves only the backup: ``load`` falls back to it
        os.rename(new, folder)
        shutil.rmtree(old, ignore_errors=True)
    _fsync_dir(folder.parent)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2 with RENAME_EXCHANGE); False if unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    rc = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    return rc == 0


def load(path: str | os.PathLike[str], *, device: str | torch.device = "cpu",
         allow_external: bool = False) -> Any:
    """Load an object saved with ``save``: ``genmodels.load("report/model")``.

    The class named in config.json is imported; only genmodels' own classes unless
    ``allow_external`` (loading a folder you trust that holds a model class of your own).
    """
    from safetensors.torch import load_file

    folder = Path(path)
    if not folder.exists():
        # ``save`` without an atomic exchange may have been killed between its two renames
        backups = sorted(folder.parent.glob(f".{folder.name}.old-*"))
        if backups:
            folder = backups[-1]
    cfg_file = folder / "config.json"
    if not cfg_file.exists():
        raise ValueError(f"{folder} is not a saved genmodels model: no config.json in it.")
    meta = json.loads(cfg_file.read_text())
    cls = import_class(meta["class"], allow_external=allow_external)
    tensors = load_file(str(folder / "tensors.safetensors"), device=str(device))
    return cls.from_saved(meta["config"], tensors)


def _json_default(o: Any) -> Any:
    if isinstance(o, torch.dtype):
        return str(o).removeprefix("torch.")
    if isinstance(o, (torch.device, Path)):
        return str(o)
    if hasattr(o, "tolist"):
        return o.tolist()
    raise TypeError(f"cannot serialise {type(o).__name__} to JSON")
