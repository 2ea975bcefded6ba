"""The thread and work-size policy (genmodels._threads): its decisions, not timings."""

from __future__ import annotations

import pytest
import torch

from genmodels import _threads
from genmodels._threads import (
    MIN_FLOPS_PER_THREAD,
    choose_threads,
    idle_cores,
    own_running_threads,
    single_threaded,
    thread_ceiling,
    work_sized,
    work_threads,
)


@pytest.fixture
def two_threads(monkeypatch: pytest.MonkeyPatch):
    """torch at 2 threads (the default on a 2-core machine) and every core idle."""
    monkeypatch.delenv("GENMODELS_NUM_THREADS", raising=False)
    monkeypatch.setattr(_threads, "idle_cores", lambda *a, **k: 8)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_small_work_runs_single_threaded() -> None:
    assert choose_threads(0.0, ceiling=8) == 1
    assert choose_threads(8**3 * 10_000, ceiling=8) == 1  # a Kalman recursion's steps
    assert choose_threads(MIN_FLOPS_PER_THREAD - 1, ceiling=8) == 1


def test_threads_grow_with_the_work_up_to_the_ceiling() -> None:
    assert choose_threads(2 * MIN_FLOPS_PER_THREAD, ceiling=8) == 2
    assert choose_threads(5.5 * MIN_FLOPS_PER_THREAD, ceiling=8) == 5
    assert choose_threads(1e15, ceiling=8) == 8
    assert choose_threads(1e15, ceiling=1) == 1


def test_busy_cores_are_not_used() -> None:
    assert choose_threads(1e15, ceiling=8, idle=3) == 3
    assert choose_threads(1e15, ceiling=2, idle=1) == 1
    assert choose_threads(1e15, ceiling=2, idle=0) == 1  # never fewer than one


def test_idle_cores_reads_the_running_count() -> None:
    assert idle_cores(2, "0.5 0.4 0.3 1/120 999\n", own=1) == 2  # only this task runs
    assert idle_cores(2, "1.5 0.4 0.3 2/120 999\n", own=1) == 1  # one competitor
    assert idle_cores(2, "7.5 6.4 5.3 9/120 999\n", own=1) == 1  # oversubscribed: still one
    assert idle_cores(16, "1 1 1 5/120 999\n", own=1) == 12
    # this process's own spinning OpenMP workers are not competitors
    assert idle_cores(2, "1.5 0.4 0.3 3/120 999\n", own=3) == 2
    assert idle_cores(2, "1.5 0.4 0.3 4/120 999\n", own=3) == 1
    assert idle_cores(4, "garbage") == 4  # unreadable: assume idle
    assert 1 <= idle_cores() <= 1024


def test_region_sets_and_restores(two_threads: None) -> None:
    with work_threads(0.0) as n:
        assert n == 1 and torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2
    with work_threads(1e12) as n:
        assert n == 2 and torch.get_num_threads() == 2
    assert torch.get_num_threads() == 2


def test_restored_after_an_exception(two_threads: None) -> None:
    with pytest.raises(RuntimeError, match="inside"), work_threads(0.0):
        raise RuntimeError("inside")
    assert torch.get_num_threads() == 2


def test_user_setting_is_the_ceiling(two_threads: None) -> None:
    torch.set_num_threads(1)  # the user's choice
    with work_threads(1e15) as n:
        assert n == 1 and thread_ceiling() == 1
    assert torch.get_num_threads() == 1


def test_nested_regions_decide_within_the_outer_ceiling(two_threads: None) -> None:
    with work_threads(0.0):
        assert torch.get_num_threads() == 1
        assert thread_ceiling() == 2  # not the outer region's own choice
        with work_threads(1e12) as inner:
            assert inner == 2 and torch.get_num_threads() == 2
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2


def test_forced_count_overrides_the_policy(two_threads: None,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENMODELS_NUM_THREADS", "2")
    with work_threads(0.0) as n:
        assert n == 2
    monkeypatch.setenv("GENMODELS_NUM_THREADS", "not a number")
    with work_threads(0.0) as n:
        assert n == 1


def test_the_busy_check_applies_to_large_work(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GENMODELS_NUM_THREADS", raising=False)
    monkeypatch.setattr(_threads, "idle_cores", lambda *a, **k: 1)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with work_threads(1e12) as n:
            assert n == 1
    finally:
        torch.set_num_threads(before)


def test_decorators(two_threads: None) -> None:
    seen: list[int] = []

    @work_sized(lambda a, *, scale=1.0: a * scale)
    def big(a: float, *, scale: float = 1.0) -> int:
        seen.append(torch.get_num_threads())
        return 7

    @single_threaded
    def small() -> None:
        seen.append(torch.get_num_threads())

    assert big(1e12) == 7 and big(1.0, scale=10.0) == 7
    small()
    assert seen == [2, 1, 1]
    assert big.__name__ == "big"


def test_entry_points_use_the_policy(two_threads: None) -> None:
    """Small fits run single-threaded inside, and leave the user's setting as it was."""
    from genmodels.estimators.decomposition import PCA, FactorAnalysis
    from genmodels.estimators.mixture import GaussianMixture

    seen: list[int] = []
    original = torch.linalg.eigh

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(torch.get_num_threads())
        return original(*args, **kwargs)

    X = torch.randn(200, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    try:
        torch.linalg.eigh = spy
        PCA(2, svd_solver="covariance_eigh").fit(X)
        FactorAnalysis(2).fit(X)
    finally:
        torch.linalg.eigh = original
    assert seen and set(seen) == {1}
    GaussianMixture(2, random_state=0, max_iter=3).fit(X)
    assert torch.get_num_threads() == 2


def test_no_minimum_means_the_ceiling() -> None:
    assert choose_threads(1.0, ceiling=3, min_flops_per_thread=0) == 3
    assert choose_threads(1.0, ceiling=3, idle=2, min_flops_per_thread=0) == 2


def test_work_estimates_accept_any_input() -> None:
    """The estimates see the raw arguments before validation: never fail on them."""
    from genmodels._threads import gemm_work, last_dim, numel
    from genmodels.estimators.mixture import GaussianMixture, _gmm_work

    est = GaussianMixture(3)
    for X in ([[1.0, 2.0]], torch.zeros(0, 3), torch.zeros(3, 0), "text", None, 5):
        assert _gmm_work(est, X) >= 0.0
        assert gemm_work(X, 4) >= 0.0 and numel(X) >= 0 and last_dim(X) >= 0
    assert choose_threads(float("inf"), ceiling=2) == 2
    assert choose_threads(float("nan"), ceiling=2) == 1

    @work_sized(lambda k: gemm_work(torch.zeros(10, 3), k))
    def fit(k: object) -> object:
        return k

    for bad in ("a", float("inf"), float("nan"), None):  # the function reports, not the policy
        assert fit(bad) is bad or bad != bad


def _policy_probe() -> dict[str, int]:
    """The thread counts seen inside IRLS, the trainer and InfoNCE, small and large work."""
    from torch import nn

    from genmodels.learning import irls as irls_module
    from genmodels.learning.nce import InfoNCE
    from genmodels.learning.trainer import Trainer
    from genmodels.models.glm_families import Binomial, Logit

    seen: dict[str, int] = {}
    g = torch.Generator().manual_seed(0)
    X = torch.randn(200, 3, generator=g, dtype=torch.float64)
    y = (torch.rand(200, generator=g, dtype=torch.float64) < torch.sigmoid(X[:, 0])).double()
    original = irls_module.weighted_gram

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        seen["irls"] = torch.get_num_threads()
        return original(*args, **kwargs)

    irls_module.weighted_gram = spy
    try:
        irls_module.irls(X, y, Binomial(), Logit(), warn=False)
    finally:
        irls_module.weighted_gram = original

    class Net(nn.Module):
        def __init__(self, width: int) -> None:
            super().__init__()
            self.layer = nn.Linear(width, width)

        def loss(self, batch, generator=None):  # type: ignore[no-untyped-def]
            return self.layer(batch).square().mean()

    for name, width in (("trainer_small", 8), ("trainer_large", 1200)):
        data = torch.randn(128, width, generator=g)
        Trainer(Net(width), epochs=1, batch_size=128, progress=False,
                callback=lambda *a, key=name: seen.__setitem__(key, torch.get_num_threads())
                ).fit(data)

    def critic(yb, zb):  # type: ignore[no-untyped-def]
        seen["infonce"] = torch.get_num_threads()
        return zb @ yb.T

    InfoNCE(critic, 4).loss(torch.randn(64, 8, generator=g))
    seen["after"] = torch.get_num_threads()
    return seen


def test_glm_trainer_and_infonce_use_the_policy(two_threads: None) -> None:
    # small work single-threaded inside, large layers on the ceiling, the setting restored
    seen = _policy_probe()
    assert seen == {"irls": 1, "trainer_small": 1, "trainer_large": 2, "infonce": 1,
                    "after": 2}


def test_the_users_ceiling_is_honoured_by_every_entry_point(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # torch.set_num_threads(1) caps even the large layer; OMP_NUM_THREADS=1 (which sets
    # torch's count at start-up) does the same in a fresh process
    import json
    import os
    import subprocess
    import sys

    monkeypatch.delenv("GENMODELS_NUM_THREADS", raising=False)
    monkeypatch.setattr(_threads, "idle_cores", lambda *a, **k: 8)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert set(_policy_probe().values()) == {1}
    finally:
        torch.set_num_threads(before)
    code = ("import json, tests.test_threads_policy as t, genmodels._threads as th; "
            "th.idle_cores = lambda *a, **k: 8; print(json.dumps(t._policy_probe()))")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("GENMODELS_NUM_THREADS", None)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True, cwd=os.path.dirname(os.path.dirname(__file__)))
    assert set(json.loads(out.stdout.strip().splitlines()[-1]).values()) == {1}


def test_numpy_blas_follows_torchs_count() -> None:
    # NumPy's own BLAS pool (the GLM's Gram products) runs at torch's count inside a region
    from threadpoolctl import threadpool_info

    from genmodels._threads import numpy_blas_threads

    def blas() -> set[int]:
        return {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}

    if not blas():
        pytest.skip("NumPy has no BLAS that threadpoolctl can see")
    before = torch.get_num_threads()
    outside = blas()
    torch.set_num_threads(1)
    try:
        with numpy_blas_threads(1e12):
            assert blas() == {1}
        with numpy_blas_threads(0.0):  # small work: left alone
            assert blas() == outside
    finally:
        torch.set_num_threads(before)
    assert blas() == outside


def test_own_running_threads_counts_this_process_busy_threads() -> None:
    """A second thread of this process computing (torch releases the GIL) is seen as one of
    its own running threads, so ``idle_cores`` does not count it as a competitor."""
    import threading

    assert own_running_threads() >= 1  # the caller itself
    a = torch.ones(600, 600, dtype=torch.float64)
    stop = threading.Event()

    def work() -> None:
        while not stop.is_set():
            a @ a

    t = threading.Thread(target=work)
    t.start()
    try:
        seen = max(own_running_threads() for _ in range(2000))
    finally:
        stop.set()
        t.join()
    assert seen >= 2
