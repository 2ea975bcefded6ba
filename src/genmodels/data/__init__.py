"""Real data sets that ship inside installed packages, files by path, and synthetic data.

``load_dataset(name)`` returns a ``Dataset``. The real data sets come from packages listed in the
``peers`` extra; if the package is missing the error names the extra to install.

==============  =========================================  ===============================
name            what                                        from
==============  =========================================  ===============================
digits          1797 8×8 handwritten digits, 16 grey levels  scikit-learn
iris            150 flowers × 4 measurements, 3 species     scikit-learn
wine            178 wines × 13 chemical measurements        scikit-learn
breast_cancer   569 tumours × 30 features, benign/malignant  scikit-learn
china, flower   427×640 RGB photographs, pixels as rows     scikit-learn (sample images)
nile            annual Nile flow at Aswan, 1871–1970        statsmodels
scotland        32 council areas: 1997 "yes" vote % (Gamma)  statsmodels
randhie         20,190 RAND HIE doctor-visit counts         statsmodels
cpunish         17 US states: 1997 executions (counts)      statsmodels
enwiki, lee     English text as word ids (``data.text``)    gensim (test data)
images          20,000 whitened 8×8 photograph patches       scikit-learn, scikit-image
==============  =========================================  ===============================

For the three regression sets X holds the covariates (no constant column) and y the response:
scotland is the classic Gamma GLM example (Gill 2001), randhie a large over-dispersed count
response (Cameron & Trivedi), cpunish the small classic Poisson example.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from genmodels._validation import as_tensor, make_generator


@dataclass
class Dataset:
    """A data set as tensors.

    X: (N, D) observations (rows are samples; the book writes samples as columns).
    y: (N,) labels or targets, if any.
    image_shape: (H, W) or (H, W, C) when each row of X is an image.
    """

    name: str
    X: Tensor
    y: Tensor | None = None
    description: str = ""
    feature_names: list[str] = field(default_factory=list)
    image_shape: tuple[int, ...] | None = None
    index: Tensor | None = None  # e.g. the years of a time series
    target_name: str | None = None  # the name of y's column, when it was split off a file


def _require(module: str, extra: str = "peers") -> Any:
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        pkg = module.split(".")[0]
        raise ModuleNotFoundError(
            f"this data set needs the package '{pkg}', which is not installed; install it with "
            f"`pip install 'genmodels[{extra}]'` (or `pip install {pkg}`)."
        ) from err


def _sklearn(loader: str, name: str, image_shape: tuple[int, ...] | None = None) -> Dataset:
    datasets = _require("sklearn.datasets")
    b = getattr(datasets, loader)()
    return Dataset(
        name=name,
        X=torch.as_tensor(np.asarray(b.data, dtype=np.float64)),
        y=torch.as_tensor(np.asarray(b.target)),
        description=str(b.DESCR).split("\n\n")[0].strip(),
        feature_names=[str(f) for f in getattr(b, "feature_names", [])],
        image_shape=image_shape,
    )


def _sample_image(filename: str) -> Dataset:
    datasets = _require("sklearn.datasets")
    img = np.asarray(datasets.load_sample_image(filename), dtype=np.float64) / 255.0
    h, w, c = img.shape
    return Dataset(
        name=filename.removesuffix(".jpg"),
        X=torch.as_tensor(img.reshape(h * w, c)),
        description=f"scikit-learn sample photograph {filename}: {h}×{w} RGB, pixels as rows "
        "scaled to [0, 1].",
        feature_names=["red", "green", "blue"],
        image_shape=(h, w, c),
    )


def _nile() -> Dataset:
    nile = _require("statsmodels.api").datasets.nile.load_pandas().data
    return Dataset(
        name="nile",
        X=torch.tensor(nile["volume"].to_numpy(dtype=np.float64)[:, None]),
        description="Annual flow of the Nile at Aswan, 1871–1970, in 10⁸ m³ (Durbin & Koopman).",
        feature_names=["volume"],
        index=torch.tensor(nile["year"].to_numpy(dtype=np.int64)),
    )


def _statsmodels_regression(name: str, description: str) -> Dataset:
    ds = getattr(_require("statsmodels.api").datasets, name).load_pandas()
    return Dataset(
        name=name,
        X=torch.tensor(ds.exog.to_numpy(dtype=np.float64)),
        y=torch.tensor(ds.endog.to_numpy(dtype=np.float64)),
        description=description,
        feature_names=[str(c) for c in ds.exog.columns],
    )


_LOADERS: dict[str, Callable[[], Dataset]] = {
    "digits": lambda: _sklearn("load_digits", "digits", (8, 8)),
    "iris": lambda: _sklearn("load_iris", "iris"),
    "wine": lambda: _sklearn("load_wine", "wine"),
    "breast_cancer": lambda: _sklearn("load_breast_cancer", "breast_cancer"),
    "china": lambda: _sample_image("china.jpg"),
    "flower": lambda: _sample_image("flower.jpg"),
    "nile": _nile,
    "scotland": lambda: _statsmodels_regression(
        "scotland", "Scottish devolution referendum 1997: 'yes' vote % of 32 council areas "
        "(Gamma response) on 7 covariates."),
    "randhie": lambda: _statsmodels_regression(
        "randhie", "RAND Health Insurance Experiment: doctor visits (count) of 20,190 "
        "participants on 9 covariates."),
    "cpunish": lambda: _statsmodels_regression(
        "cpunish", "US executions in 1997 (count) in 17 states on 6 covariates."),
    # text corpora (genmodels.data.text): X the word ids, feature_names the vocabulary
    "enwiki": lambda: importlib.import_module("genmodels.data.text").corpus_dataset("enwiki"),
    "lee": lambda: importlib.import_module("genmodels.data.text").corpus_dataset("lee"),
    # natural-image patches (genmodels.data.images): 20,000 ZCA-whitened 8×8 patches
    "images": lambda: importlib.import_module("genmodels.data.images").whitened_patches(8)[0],
}


def available_datasets() -> list[str]:
    """Names accepted by ``load_dataset``."""
    return sorted(_LOADERS)


def register_dataset(name: str, loader: Callable[[], Dataset]) -> None:
    """Add a named data set (used by the modules that need more real data)."""
    _LOADERS[name] = loader


def load_dataset(name: str) -> Dataset:
    """Load a bundled real data set by name, or a ``.csv``/``.npy`` file by path."""
    if name in _LOADERS:
        return _LOADERS[name]()
    if Path(name).suffix in (".csv", ".npy", ".txt"):
        return load_file(name)
    raise ValueError(
        f"unknown data set {name!r}; choose one of {available_datasets()} or give a path to a "
        ".csv or .npy file."
    )


def load_file(path: str | Path, *, target_column: int | None = None) -> Dataset:
    """Load a numeric ``.csv`` (comma separated, optional header row) or ``.npy`` file.

    target_column: a column to split off as ``y`` (negative counts from the end); its header
        name, if any, moves from ``feature_names`` to ``target_name``.
    """
    p = Path(path)
    if not p.exists():
        raise ValueError(f"data file {p} does not exist.")
    names: list[str] = []
    if p.suffix == ".npy":
        arr = np.load(p, allow_pickle=False)
    else:
        with p.open() as f:
            first = f.readline()
        try:
            [float(v) for v in first.strip().split(",")]
            skip = 0
        except ValueError:
            names = [v.strip() for v in first.strip().split(",")]
            skip = 1
        arr = np.loadtxt(p, delimiter=",", skiprows=skip, ndmin=2)
    if arr.ndim == 1:
        arr = arr[:, None]
    X = as_tensor(arr, name=str(p), dtype=torch.float64)
    y = None
    target_name = None
    if target_column is not None:
        d = X.shape[1]
        if (not isinstance(target_column, (int, np.integer)) or isinstance(target_column, bool)
                or not -d <= target_column < d):
            raise ValueError(
                f"target_column must be an integer column index in [-{d}, {d}) for the {d} "
                f"columns of {p}, got {target_column!r}."
            )
        j = int(target_column) % d
        y = X[:, j]
        X = torch.cat([X[:, :j], X[:, j + 1 :]], dim=1)
        if names:
            target_name = names.pop(j)
    return Dataset(name=p.stem, X=X, y=y, description=f"loaded from {p}", feature_names=names,
                   target_name=target_name)


#: The density table's held-out split: a fixed permutation of digits' 1,797 images, the last
#: 360 (20%) held out. Every density model in the README's table scores these same images.
DENSITY_SPLIT_SEED = 0
DENSITY_TEST_SIZE = 360


def density_split(kind: str = "binary") -> tuple[Tensor, Tensor]:
    """The training and held-out images of the README's density table (scikit-learn's digits).

    kind: ``"binary"`` — pixels binarised as X/16 > 0.5, scored in nats per image;
        ``"grey"`` — the 17 integer grey levels 0..16, scored in bits per dimension (a
        continuous model dequantises, y = x + u with u ~ U[0, 1)^64, and reports
        −E_u log₂ p(x + u) / 64, an upper bound on the discrete model's bits/dim).
    Returns (train, test): float64 tensors (1437, 64) and (360, 64).
    """
    if kind not in ("binary", "grey"):
        raise ValueError(f"kind must be 'binary' or 'grey', got {kind!r}.")
    X = load_dataset("digits").X
    perm = torch.randperm(X.shape[0], generator=torch.Generator().manual_seed(DENSITY_SPLIT_SEED))
    X = X[perm]
    if kind == "binary":
        X = (X / 16 > 0.5).to(torch.float64)
    return X[:-DENSITY_TEST_SIZE], X[-DENSITY_TEST_SIZE:]


def bars_and_stripes(side: int = 4) -> Tensor:
    """Every distinct bars-and-stripes image of ``side × side`` binary pixels (MacKay 2003).

    An image is all horizontal stripes or all vertical bars: each of the ``side`` rows (or
    columns) is on or off. The all-off and all-on images are both kinds, so there are
    2^(side+1) − 2 distinct images. The usual small test set for undirected and Helmholtz
    models: the uniform distribution over these patterns is the target.
    Returns float64 (2^(side+1) − 2, side²), rows flattened row-major, the stripes first.
    """
    if not isinstance(side, int) or isinstance(side, bool) or side < 1:
        raise ValueError(f"side must be a positive integer, got {side!r}.")
    codes = torch.arange(2**side)
    bits = ((codes[:, None] >> torch.arange(side)) & 1).to(torch.float64)  # (2^side, side)
    stripes = bits[:, :, None].expand(-1, side, side)  # row i on when bit i is set
    bars = stripes.transpose(1, 2)
    # The constant images are both stripes and bars: keep them once (among the stripes).
    images = torch.cat([stripes, bars[1:-1]])
    return images.reshape(-1, side * side).contiguous()


def synthetic(model: Any, n: int, *, seed: int | None = 0) -> Dataset:
    """Sample ``n`` observations from any genmodels model with ``sample(n, generator=...)``.

    The model's ``sample`` may return the observations or a (latents, observations) pair; the
    latents become ``y``. seed: an int or a ``torch.Generator`` for a reproducible draw; None
    draws a fresh nondeterministic seed (as everywhere in genmodels).
    """
    g = make_generator(seed)
    out = model.sample(n, generator=g)
    if isinstance(out, tuple):
        latents, obs = out
        return Dataset(name=f"synthetic-{type(model).__name__}", X=obs, y=latents)
    return Dataset(name=f"synthetic-{type(model).__name__}", X=out)


__all__ = [
    "Dataset",
    "available_datasets",
    "bars_and_stripes",
    "density_split",
    "load_dataset",
    "load_file",
    "register_dataset",
    "synthetic",
]
