"""Saving and loading: safetensors for tensors, JSON for configuration, atomic writes.

A saved model is a folder with ``config.json`` (the class and its constructor arguments) and
``tensors.safetensors`` (its parameters). Any object meeting the ``Savable`` protocol can be
saved; ``SavableModule`` gives it to ``torch.nn.Module`` subclasses that record their
constructor arguments in ``self.config``.
"""

from __future__ import annotations

import importlib
import json
import os
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


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
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


def save(obj: Savable, path: str | os.PathLike[str]) -> Path:
    """Save ``obj`` into the folder ``path`` (created if needed). Returns the folder."""
    from safetensors.torch import save as st_save

    if not isinstance(obj, Savable):
        raise ValueError(f"{type(obj).__name__} cannot be saved: it does not implement Savable.")
    folder = Path(path)
    tensors = {k: v.detach().cpu().contiguous() for k, v in obj.state_tensors().items()}
    meta = {
        "format_version": FORMAT_VERSION,
        "class": class_path(obj),
        "config": obj.get_config(),
    }
    atomic_write_bytes(folder / "tensors.safetensors", st_save(tensors))
    atomic_write_text(folder / "config.json", json.dumps(meta, indent=2, default=_json_default))
    return folder


def load(path: str | os.PathLike[str], *, device: str | torch.device = "cpu",
         allow_external: bool = False) -> Any:
    """Load an object saved with ``save``: ``genmodels.load("report/model")``.

    The class named in config.json is imported; only genmodels' own classes unless
    ``allow_external`` (loading a folder you trust that holds a model class of your own).
    """
    from safetensors.torch import load_file

    folder = Path(path)
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
