"""The one associative scan of genmodels (used by the HMM and the Kalman parallel forms).

``associative_scan(fn, elems)`` returns the inclusive prefix combinations
out[t] = e[0] ∘ e[1] ∘ … ∘ e[t] of an associative operator ``fn(earlier, later)``, in depth
O(log T) and work O(T): the odd–even recursion of Blelloch (1990, "Prefix sums and their
applications"), the form of ``jax.lax.associative_scan``. Combine the even–odd pairs, scan the
half-length sequence of pairs recursively (those are the prefixes ending at odd indices), then
each prefix ending at an even index t ≥ 2 is (prefix at t − 1) ∘ e[t].

The elements are one tensor or a tuple of tensors scanned together (the Kalman filtering
operator carries five); ``fn`` must broadcast over leading dimensions, and the element shapes
may broadcast against each other (the first element of a scan is often smaller).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, overload

import torch
from torch import Tensor

Elems = tuple[Tensor, ...]


@overload
def associative_scan(fn: Callable[[Tensor, Tensor], Tensor], elems: Tensor, dim: int = 0
                     ) -> Tensor: ...


@overload
def associative_scan(fn: Callable[[Elems, Elems], Elems], elems: Elems, dim: int = 0
                     ) -> Elems: ...


def associative_scan(fn: Callable[..., Any], elems: Tensor | Elems, dim: int = 0
                     ) -> Tensor | Elems:
    """Inclusive scan of the associative ``fn(earlier, later)`` along ``dim``.

    elems: a tensor (T, ...) or a tuple of tensors with the same length T along ``dim``.
    Returns the same structure, out[t] = e[0] ∘ … ∘ e[t] (shapes broadcast across elements).
    """
    single = isinstance(elems, Tensor)
    tup: Elems = (elems,) if isinstance(elems, Tensor) else tuple(elems)
    if dim != 0:
        tup = tuple(e.movedim(dim, 0) for e in tup)
    op: Callable[[Elems, Elems], Elems] = (lambda a, b: (fn(a[0], b[0]),)) if single else fn
    out = _scan0(op, tup)
    if dim != 0:
        out = tuple(o.movedim(0, dim) for o in out)
    return out[0] if single else out


def _scan0(fn: Callable[[Elems, Elems], Elems], elems: Elems) -> Elems:
    """The recursion along dim 0."""
    n = elems[0].shape[0]
    if n < 2:
        return elems
    pairs = fn(tuple(e[0:-1:2] for e in elems), tuple(e[1::2] for e in elems))  # e0∘e1, e2∘e3..
    odd = _scan0(fn, pairs)  # the prefixes ending at odd indices
    if n % 2 == 0:
        even = fn(tuple(o[:-1] for o in odd), tuple(e[2::2] for e in elems))
    else:
        even = fn(odd, tuple(e[2::2] for e in elems))  # prefixes ending at even indices ≥ 2
    out = []
    for e, ev, od in zip(elems, even, odd):
        evens = cat_broadcast(e[:1], ev)
        shape = torch.broadcast_shapes(evens.shape[1:], od.shape[1:])
        res = evens.new_empty((n, *shape))
        res[0::2] = evens
        res[1::2] = od
        out.append(res)
    return tuple(out)


def cat_broadcast(a: Tensor, b: Tensor) -> Tensor:
    """Concatenate along dim 0 after broadcasting the trailing dims."""
    shape = torch.broadcast_shapes(a.shape[1:], b.shape[1:])
    return torch.cat([a.expand(a.shape[0], *shape), b.expand(b.shape[0], *shape)], 0)
