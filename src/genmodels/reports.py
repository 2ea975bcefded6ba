"""What a fit writes for a person to read: metrics (JSON), the model, and plots (PNG).

Plots need matplotlib (the ``plot`` extra); without it they are skipped with a note in the
report rather than failing the fit.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from genmodels.io import Savable, atomic_write_bytes, atomic_write_text, save


class Report:
    """A report folder: ``metrics.json``, ``model/`` and ``*.png``."""

    def __init__(self, out: str | Path) -> None:
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.files: list[str] = []
        self.notes: list[str] = []

    def write_metrics(self, metrics: dict[str, Any]) -> Path:
        path = self.out / "metrics.json"
        atomic_write_text(path, json.dumps(metrics, indent=2, default=_jsonable))
        self.files.append(path.name)
        return path

    def save_model(self, model: Savable) -> Path:
        folder = save(model, self.out / "model")
        self.files.append("model/")
        return folder

    def stages(self, desc: str, names: Sequence[str], enabled: bool) -> Stages:
        """A progress bar over the named stages of a fit (``--no-progress`` turns it off)."""
        return Stages(desc, names, enabled)

    def _pyplot(self) -> Any | None:
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ModuleNotFoundError:
            self.notes.append("plots skipped: install matplotlib (pip install 'genmodels[plot]')")
            return None
        return plt

    def _finish(self, fig: Any, filename: str) -> Path:
        import io

        path = self.out / filename
        buf = io.BytesIO()
        fig.savefig(buf, dpi=120, bbox_inches="tight", format=Path(filename).suffix[1:] or "png")
        atomic_write_bytes(path, buf.getvalue())  # whole or absent, with umask permissions
        fig.clf()
        self.files.append(filename)
        return path

    def learning_curve(self, values: Sequence[float], *, ylabel: str = "log-likelihood per datum",
                       xlabel: str = "iteration", filename: str = "learning_curve.png") -> None:
        plt = self._pyplot()
        if plt is None or not values:
            return
        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.plot(range(1, len(values) + 1), list(values), marker="o", markersize=3)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        self._finish(fig, filename)
        plt.close(fig)

    def image_grid(self, images: Tensor, image_shape: tuple[int, ...], *, filename: str,
                   title: str = "", titles: Sequence[str] | None = None) -> None:
        """Draw each row of ``images`` (M, prod(image_shape)) as a picture."""
        plt = self._pyplot()
        if plt is None:
            return
        imgs = images.detach().cpu().double()
        m = imgs.shape[0]
        cols = min(m, 10)
        rows = math.ceil(m / cols)
        fig, axes = plt.subplots(rows, cols, figsize=(1.2 * cols, 1.3 * rows + 0.4), squeeze=False)
        for i, ax in enumerate(axes.flat):
            ax.axis("off")
            if i < m:
                ax.imshow(imgs[i].reshape(image_shape).numpy(), cmap="gray_r")
                if titles is not None:
                    ax.set_title(titles[i], fontsize=7)
        if title:
            fig.suptitle(title)
        self._finish(fig, filename)
        plt.close(fig)

    def figure(self, filename: str) -> tuple[Any, Any] | None:
        """A fresh (figure, axes) for a custom plot; call ``save_figure`` when drawn."""
        plt = self._pyplot()
        if plt is None:
            return None
        return plt.subplots(figsize=(7, 4))

    def save_figure(self, fig: Any, filename: str) -> None:
        self._finish(fig, filename)
        import matplotlib.pyplot as plt

        plt.close(fig)


class Stages:
    """A tqdm bar over a fixed list of stages (for fits without an iteration loop of their own
    to report, such as LDA, QDA and a GLM's IRLS plus its summary). ``done(name)`` after each;
    use as a context manager so the bar closes."""

    def __init__(self, desc: str, names: Sequence[str], enabled: bool) -> None:
        self.names = list(names)
        self.bar: Any = None
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=len(self.names), desc=desc, unit="stage", leave=False)
            self.bar.set_postfix_str(self.names[0] if self.names else "")

    def done(self, name: str) -> None:
        if self.bar is None:
            return
        self.bar.update(1)
        i = self.names.index(name) + 1 if name in self.names else None
        if i is not None and i < len(self.names):
            self.bar.set_postfix_str(self.names[i])

    def __enter__(self) -> Stages:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.close()


def _jsonable(o: Any) -> Any:
    if isinstance(o, Tensor):
        return o.tolist()
    if isinstance(o, torch.dtype):
        return str(o)
    if hasattr(o, "tolist"):
        return o.tolist()
    return str(o)
