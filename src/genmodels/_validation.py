"""Input checks shared by every user-facing entry point.

Each raises ``ValueError`` saying what was wrong and where, so nothing downstream fails
silently as NaN.
"""

from __future__ import annotations

import contextlib
import math
import numbers
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor


def as_tensor(
    x: Any,
    *,
    name: str = "X",
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    allow_nan: bool = False,
    detach: bool = True,
) -> Tensor:
    """Convert a NumPy array, pandas object, list or tensor to a floating tensor.

    Integer and boolean input becomes ``dtype`` (default float64; float tensors keep their dtype
    unless ``dtype`` is given). Raises ``ValueError`` for object/string data and complex
    numbers and, unless ``allow_nan``, for NaN or infinite entries (reporting the first
    offending index). ``detach=False`` keeps a tensor's autograd graph (for differentiable
    kernels).
    """
    if hasattr(x, "to_numpy") and not isinstance(x, Tensor):  # pandas DataFrame / Series
        x = x.to_numpy()
    if isinstance(x, Tensor):
        t = x.detach() if detach else x
        if t.is_complex():  # casting would drop the imaginary part without a word
            raise ValueError(f"{name} must be real, got a complex tensor of dtype {t.dtype}.")
    else:
        arr = np.asarray(x)
        if arr.dtype.kind not in "biuf":
            raise ValueError(f"{name} must be numeric, got an array of dtype {arr.dtype}.")
        arr = np.ascontiguousarray(arr)
        if not arr.flags.writeable:  # e.g. pandas' copy-on-write views; torch needs writable
            arr = arr.copy()
        t = torch.from_numpy(arr)
    if not (t.is_floating_point()):
        t = t.to(dtype or torch.float64)
    elif dtype is not None:
        t = t.to(dtype)
    if device is not None:
        t = t.to(device)
    if not allow_nan:
        check_finite(t, name)
    return t


def check_finite(t: Tensor, name: str = "X", *, overflow: bool = True) -> None:
    """Raise ``ValueError`` naming the first NaN/inf entry of ``t``, or, when every entry is
    finite but the sum of their squares overflows ``t``'s dtype (entries near 1e154 in float64,
    1e19 in float32), naming the largest: distances, variances and exponentials of such data
    overflow, so every model would return NaN or ±inf on it instead of a number.
    ``overflow=False`` checks the entries only (for callers whose own guard reports what the
    overflow breaks, as the trainer's non-finite-loss check does)."""
    if not t.is_floating_point() or t.numel() == 0:
        return
    if not overflow:
        bad_only = ~torch.isfinite(t)
        if not bool(bad_only.any()):
            return
    flat = t.reshape(-1)
    if t.dtype in (torch.float32, torch.float64):
        total = torch.dot(flat, flat)  # one BLAS pass: NaN, ±inf and overflow all end non-finite
    else:
        total = flat.sum()
    if bool(torch.isfinite(total)):
        return
    bad = ~torch.isfinite(t)
    if bool(bad.any()):
        idx = tuple(int(i) for i in torch.nonzero(bad)[0])
        kind = "NaN" if bool(torch.isnan(t[idx])) else "infinite"
        raise ValueError(
            f"{name} contains {int(bad.sum())} non-finite value(s); the first is {kind} at "
            f"index {idx}. Remove or impute missing values before fitting."
        )
    if t.dtype in (torch.float32, torch.float64):
        flat_idx = int(flat.abs().argmax())
        idx = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat_idx), t.shape))
        raise ValueError(
            f"{name} is too large to compute with in {str(t.dtype).removeprefix('torch.')}: "
            f"the sum of its squares overflows (its largest magnitude is "
            f"{float(flat[flat_idx]):.3g}, at index {idx}). Rescale it (e.g. standardise the "
            f"columns) first."
        )


def check_data_matrix(
    X: Any,
    *,
    name: str = "X",
    min_samples: int = 1,
    n_features: int | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    allow_nan: bool = False,
) -> Tensor:
    """Validate a design matrix: 2-D, finite, at least ``min_samples`` rows, and (when given)
    ``n_features`` columns. Returns it as a tensor of shape (N, D).

    ``allow_nan=True`` leaves out the finiteness check (one pass over the data), for a caller
    that fuses it into a pass of its own (``check_finite`` on a reduction, e.g. the trace of
    XᵀX, which is non-finite exactly when ``check_finite`` would raise)."""
    t = as_tensor(X, name=name, dtype=dtype, device=device, allow_nan=allow_nan)
    if t.dim() != 2:
        raise ValueError(
            f"{name} must be 2-dimensional (n_samples, n_features), got shape {tuple(t.shape)}. "
            "Reshape a single feature with X.reshape(-1, 1) or a single sample with "
            "X.reshape(1, -1)."
        )
    if t.shape[0] < min_samples:
        raise ValueError(
            f"{name} has {t.shape[0]} sample(s), but at least {min_samples} are required."
        )
    if t.shape[1] == 0:
        raise ValueError(f"{name} has 0 features; at least one is required.")
    if n_features is not None and t.shape[1] != n_features:
        raise ValueError(
            f"{name} has {t.shape[1]} features, but the model was fitted with {n_features}."
        )
    return t


def check_positive_int(value: Any, name: str, *, minimum: int = 1) -> int:
    """``value`` as an int ≥ ``minimum`` (bools rejected)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    return int(value)


def check_nonnegative_float(value: Any, name: str, *, strictly: bool = False) -> float:
    """``value`` as a finite float ≥ 0 (or > 0 when ``strictly``)."""
    ok = (isinstance(value, numbers.Real) and not isinstance(value, bool)
          and math.isfinite(float(value)))
    if not ok or value < 0 or (strictly and value == 0):
        rel = "> 0" if strictly else ">= 0"
        raise ValueError(f"{name} must be a finite number {rel}, got {value!r}.")
    return float(value)


def check_bool(value: Any, name: str) -> bool:
    """``value`` must be a bool (NumPy's included); 0, 1, 2 or 'yes' are refused."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}.")
    return bool(value)


def check_choice(value: Any, name: str, choices: tuple[str, ...]) -> str:
    """``value`` must be one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}.")
    return str(value)


def resolve_dtype(dtype: Any) -> torch.dtype:
    """Accept ``torch.float64``, ``"float64"``, ``np.float32`` ... and return a torch dtype."""
    out: Any = None
    if isinstance(dtype, torch.dtype):
        out = dtype
    elif dtype is not None:
        out = getattr(torch, np.dtype(dtype).name, None)
    if out not in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        raise ValueError(f"dtype must be a floating dtype, got {dtype!r}.")
    return out


def make_generator(
    seed: Any, device: torch.device | str = "cpu", *, name: str = "random_state"
) -> torch.Generator:
    """A ``torch.Generator`` from a seed: None (a nondeterministic seed drawn from torch), a
    non-negative integer, a NumPy ``RandomState`` (scikit-learn's style) or a generator
    itself. Anything else is refused naming ``name``."""
    seed = check_seed(seed, name)
    if isinstance(seed, torch.Generator):
        return seed
    g = torch.Generator(device=device)
    if seed is None:
        g.seed()
        return g
    if isinstance(seed, np.random.RandomState):
        seed = int(seed.randint(0, 2**31 - 1))
    g.manual_seed(int(seed))
    return g


def check_seed(seed: Any, name: str = "random_state") -> Any:
    """``seed`` unchanged if it is None, a non-negative integer, a NumPy ``RandomState`` or a
    ``torch.Generator``; anything else (2.5, −1, 'a', NaN, True) is refused naming ``name``."""
    if seed is None or isinstance(seed, (np.random.RandomState, torch.Generator)):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"{name} must be None, a non-negative integer, a numpy RandomState or "
                         f"a torch.Generator, got {seed!r}.")
    return seed


@contextlib.contextmanager
def global_rng_from(generator: torch.Generator | int | None) -> Iterator[None]:
    """Run code that draws from torch's *global* generator (``torch.distributions`` samplers,
    ``nn.Linear`` initialisation) reproducibly from ``generator`` (or an int seed), leaving the
    caller's global random state untouched. With ``None`` it does nothing.

    One seed is drawn from ``generator`` per use, so successive uses give different draws.
    """
    if generator is None:
        yield
        return
    if isinstance(generator, torch.Generator):
        seed = int(torch.randint(0, 2**62, (), generator=generator, device=generator.device))
        devices = [generator.device] if generator.device.type == "cuda" else []
    else:
        seed, devices = int(generator), []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield
