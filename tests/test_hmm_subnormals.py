"""The kernels flush subnormals only while they run and leave the caller's setting alone."""

import torch

from genmodels.inference.hmm import forward_backward


def _flushing() -> bool:
    return bool(torch.tensor(1e-310, dtype=torch.float64) * 1.0 == 0)


def _run() -> None:
    g = torch.Generator().manual_seed(0)
    ll = torch.randn(3, 20, 4, generator=g, dtype=torch.float64) * 300  # extreme scales
    P = torch.full((4, 4), 0.25, dtype=torch.float64)
    post = forward_backward(torch.log(torch.full((4,), 0.25, dtype=torch.float64)),
                            torch.log(P), ll)
    assert bool(torch.isfinite(post.smoothed_probs).all())


def test_flush_setting_restored() -> None:
    assert not _flushing()
    _run()
    assert not _flushing()
    torch.set_flush_denormal(True)
    try:
        _run()
        assert _flushing()  # the caller's choice survives
    finally:
        torch.set_flush_denormal(False)
    assert not _flushing()
