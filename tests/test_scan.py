"""The one associative scan (genmodels.inference.scan) against a sequential fold."""

import pytest
import torch

from genmodels.inference.scan import associative_scan


@pytest.mark.parametrize("T", [1, 2, 3, 7, 8, 13])
def test_matrix_product_scan_equals_the_sequential_fold(T):
    g = torch.Generator().manual_seed(T)
    E = torch.randn(2, T, 3, 3, generator=g, dtype=torch.float64)  # scanned along dim 1
    out = associative_scan(lambda a, b: a @ b, E, 1)
    acc = E[:, 0]
    torch.testing.assert_close(out[:, 0], acc)
    for t in range(1, T):
        acc = acc @ E[:, t]  # non-commutative: the order earlier∘later matters
        torch.testing.assert_close(out[:, t], acc)


@pytest.mark.parametrize("T", [1, 2, 5, 6])
def test_tuple_elements_scan_together_with_broadcasting(T):
    # The affine maps x ↦ A x + b composed in time order, the first element smaller.
    g = torch.Generator().manual_seed(10 + T)
    A = torch.randn(T, 2, 2, generator=g, dtype=torch.float64)
    b = torch.randn(T, 4, 2, generator=g, dtype=torch.float64)  # a batch of 4 offsets

    def fn(earlier, later):
        return later[0] @ earlier[0], earlier[1] @ later[0].mT + later[1]

    As, bs = associative_scan(fn, (A, b))
    x = b[0]
    torch.testing.assert_close(bs[0], x)
    for t in range(1, T):
        x = x @ A[t].mT + b[t]
        torch.testing.assert_close(bs[t], x)
    assert As.shape == (T, 2, 2)
