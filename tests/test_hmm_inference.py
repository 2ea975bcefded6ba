"""Exact HMM inference (B10–B12): brute-force enumeration, form equivalence, stress, bad input."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from genmodels.inference.hmm import (
    alpha_gamma,
    backward_smooth,
    forward_backward,
    forward_filter,
    hmm_log_marginal,
    sample_posterior,
    viterbi,
)

torch.set_default_dtype(torch.float64)


def random_hmm(K, T, batch=(), seed=0, scale=1.0, time_varying=False):
    g = torch.Generator().manual_seed(seed)
    log_init = torch.log_softmax(torch.randn(K, generator=g), -1)
    shape = (T - 1, K, K) if time_varying else (K, K)
    log_trans = torch.log_softmax(torch.randn(*shape, generator=g), -1)
    log_lik = scale * torch.randn(*batch, T, K, generator=g)
    return log_init, log_trans, log_lik


def brute_force(log_init, log_trans, log_lik):
    """All K^T paths of one sequence: log joint of each, then exact marginals."""
    T, K = log_lik.shape
    paths = torch.tensor(list(itertools.product(range(K), repeat=T)))  # (K^T, T)
    lj = log_init[paths[:, 0]] + log_lik[torch.arange(T), paths].sum(-1)
    for t in range(1, T):
        lt = log_trans if log_trans.dim() == 2 else log_trans[t - 1]
        lj = lj + lt[paths[:, t - 1], paths[:, t]]
    log_marg = torch.logsumexp(lj, 0)
    w = torch.exp(lj - log_marg)
    smoothed = torch.zeros(T, K)
    pair = torch.zeros(max(T - 1, 0), K, K)
    filtered = torch.zeros(T, K)
    for t in range(T):
        smoothed[t].index_add_(0, paths[:, t], w)
        # filter at t: marginalise the joint of y_1..t (drop later emissions and transitions)
        lj_t = log_init[paths[:, 0]] + log_lik[torch.arange(t + 1), paths[:, : t + 1]].sum(-1)
        for s in range(1, t + 1):
            lt = log_trans if log_trans.dim() == 2 else log_trans[s - 1]
            lj_t = lj_t + lt[paths[:, s - 1], paths[:, s]]
        # each prefix is repeated K^(T-t-1) times: the weights still normalise correctly
        wt = torch.softmax(lj_t, 0)
        filtered[t].index_add_(0, paths[:, t], wt)
        if t > 0:
            pair[t - 1].index_put_((paths[:, t - 1], paths[:, t]), w, accumulate=True)
    best = int(torch.argmax(lj))
    return log_marg, filtered, smoothed, pair, paths[best], lj[best]


@pytest.mark.parametrize("T", [1, 2, 5, 6])
@pytest.mark.parametrize("time_varying", [False, True])
def test_brute_force(T, time_varying):
    K = 3
    li, lt, ll = random_hmm(K, T, seed=T, time_varying=time_varying)
    log_marg, filtered, smoothed, pair, best, best_lj = brute_force(li, lt, ll)
    methods = ["sequential", "scan", "compiled"] + ([] if time_varying else ["chunked", "sweeps"])
    for method in methods:
        post = forward_backward(li, lt, ll, pairwise=True, method=method, chunk_size=2)
        torch.testing.assert_close(post.log_marginal, log_marg, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(post.filtered_probs, filtered, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(post.smoothed_probs, smoothed, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(post.pairwise_probs, pair, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(post.expected_transitions, pair.sum(0), rtol=1e-10,
                                   atol=1e-10)
    ag = alpha_gamma(li, lt, ll)
    torch.testing.assert_close(ag.log_marginal, log_marg, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(ag.smoothed_probs, smoothed, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(ag.pairwise_probs, pair, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(ag.pairwise_probs_alt, pair, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(torch.softmax(ag.log_alpha, -1), filtered, rtol=1e-10,
                               atol=1e-10)
    for method in ["sequential", "compiled"] + ([] if time_varying else ["chunked"]):
        vp = viterbi(li, lt, ll, method=method, chunk_size=2)
        assert vp.states.tolist() == best.tolist()
        torch.testing.assert_close(vp.log_joint, best_lj, rtol=1e-12, atol=1e-12)


def test_invariants_and_emission_scaling():
    K, T = 4, 30
    li, lt, ll = random_hmm(K, T, seed=3)
    post = forward_backward(li, lt, ll, pairwise=True, method="sequential")
    torch.testing.assert_close(post.smoothed_probs[-1], post.filtered_probs[-1])  # γ_T = f_T
    pair = post.pairwise_probs
    torch.testing.assert_close(pair.sum(-1), post.smoothed_probs[:-1])  # rows → γ_{t−1}
    torch.testing.assert_close(pair.sum(-2), post.smoothed_probs[1:])  # columns → γ_t
    shift = torch.randn(T, 1) * 50
    post2 = forward_backward(li, lt, ll + shift, method="sequential")
    torch.testing.assert_close(post2.smoothed_probs, post.smoothed_probs)
    torch.testing.assert_close(post2.log_marginal, post.log_marginal + shift.sum())


@pytest.mark.parametrize(("batch", "T"), [((), 7), ((5,), 64), ((2, 3), 41), ((), 1)])
def test_forms_agree(batch, T):
    K = 4
    li, lt, ll = random_hmm(K, T, batch, seed=T + len(batch), scale=3.0)
    ref = forward_backward(li, lt, ll, pairwise=True, method="sequential")
    for method, cs in [("scan", None), ("chunked", None), ("chunked", 5), ("chunked", 1000),
                       ("sweeps", None), ("sweeps", 16), ("sweeps", 3), ("compiled", None)]:
        out = forward_backward(li, lt, ll, pairwise=True, method=method, chunk_size=cs)
        for a, b in zip(out, ref):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)
    vs = viterbi(li, lt, ll, method="sequential")
    for method, cs in (("chunked", None), ("chunked", 3), ("chunked", 8), ("compiled", None)):
        vc = viterbi(li, lt, ll, method=method, chunk_size=cs)
        assert torch.equal(vc.states, vs.states)
        torch.testing.assert_close(vc.log_joint, vs.log_joint)
    for method in ("chunked", "sweeps", "scan", "compiled"):
        filt = forward_filter(li, lt, ll, method=method)
        torch.testing.assert_close(filt.filtered_probs, ref.filtered_probs)
        torch.testing.assert_close(filt.log_marginal, ref.log_marginal)
    torch.testing.assert_close(hmm_log_marginal(li, lt, ll), ref.log_marginal)
    for method in ("sequential", "compiled"):
        sm = backward_smooth(forward_filter(li, lt, ll, method=method), lt, pairwise=True)
        torch.testing.assert_close(sm.smoothed_probs, ref.smoothed_probs)
        torch.testing.assert_close(sm.expected_transitions, ref.expected_transitions)


def test_sweeps_converge_without_fallback():
    import genmodels.inference.hmm as H

    K, T = 4, 256
    li, lt, ll = random_hmm(K, T, (3,), seed=9, scale=2.0)
    c = H._check_chain(li, lt, ll)
    out = H._forward_backward_sweeps(c, 32)
    assert out is not None  # a well-mixing chain settles within the sweep budget
    ref = forward_backward(li, lt, ll, method="sequential")
    torch.testing.assert_close(out[0], ref.filtered_probs, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(out[3], ref.smoothed_probs, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(out[2].sum(-1), ref.log_marginal, rtol=1e-10, atol=1e-10)


def test_sticky_viterbi_chunked_needs_many_iterations():
    # Nearly deterministic chain with uninformative emissions: best paths coalesce slowly.
    K, T = 3, 60
    li = torch.log(torch.full((K,), 1 / K))
    P = torch.full((K, K), 1e-6) + torch.eye(K)
    lt = torch.log(P / P.sum(-1, keepdim=True))
    ll = 1e-3 * torch.randn(T, K, generator=torch.Generator().manual_seed(0))
    vs = viterbi(li, lt, ll, method="sequential")
    vc = viterbi(li, lt, ll, method="chunked", chunk_size=7)
    assert torch.equal(vc.states, vs.states)


def test_lengths_and_mask():
    K, T = 3, 9
    li, lt, ll = random_hmm(K, T, (4,), seed=11)
    lengths = torch.tensor([9, 5, 1, 7])
    mask = torch.rand(4, T, generator=torch.Generator().manual_seed(1)) > 0.3
    ll_nan = ll.clone()
    ll_nan[~mask] = float("nan")
    for method in ("sequential", "scan", "compiled"):
        post = forward_backward(li, lt, ll_nan, mask=mask, lengths=lengths, pairwise=True,
                                method=method)
        vp = viterbi(li, lt, ll_nan, mask=mask, lengths=lengths,
                     method="sequential" if method == "scan" else method)
        for b in range(4):
            n = int(lengths[b])
            llb = torch.where(mask[b, :n, None], ll[b, :n], torch.zeros(()))
            ref = forward_backward(li, lt, llb, pairwise=True, method="sequential")
            torch.testing.assert_close(post.log_marginal[b], ref.log_marginal)
            torch.testing.assert_close(post.smoothed_probs[b, :n], ref.smoothed_probs)
            torch.testing.assert_close(post.filtered_probs[b, :n], ref.filtered_probs)
            assert bool((post.smoothed_probs[b, n:] == 0).all())
            torch.testing.assert_close(post.expected_transitions[b], ref.expected_transitions)
            vref = viterbi(li, lt, llb, method="sequential")
            assert vp.states[b, :n].tolist() == vref.states.tolist()
            assert bool((vp.states[b, n:] == -1).all())


@pytest.mark.slow
def test_stress_long_large_scale():
    K, T = 100, 10_000
    g = torch.Generator().manual_seed(0)
    li = torch.log_softmax(torch.randn(K, generator=g), -1)
    lt = torch.log_softmax(3 * torch.randn(K, K, generator=g), -1)
    ll = 1e3 * torch.randn(T, K, generator=g)
    for method in ("sequential", "chunked", "sweeps", "compiled"):
        post = forward_backward(li, lt, ll, method=method)
        assert bool(torch.isfinite(post.smoothed_probs).all())
        assert bool(torch.isfinite(post.log_marginal))
        torch.testing.assert_close(post.smoothed_probs.sum(-1), torch.ones(T))
        torch.testing.assert_close(post.filtered_probs.sum(-1), torch.ones(T))
        torch.testing.assert_close(post.expected_transitions.sum(), torch.tensor(T - 1.0))


def test_compiled_kernels_where_they_apply():
    K, T = 4, 50
    li, lt, ll = random_hmm(K, T, (3,), seed=21, scale=2.0)
    ref = forward_backward(li, lt, ll, method="sequential")
    # float32 compiles its own kernels and agrees to float32 rounding
    out = forward_backward(li.float(), lt.float(), ll.float(), method="compiled")
    torch.testing.assert_close(out.smoothed_probs, ref.smoothed_probs.float(), rtol=1e-4,
                               atol=1e-5)
    vp = viterbi(li.float(), lt.float(), ll.float(), method="compiled")
    assert torch.equal(vp.states, viterbi(li, lt, ll, method="sequential").states)
    # a gradient: "auto" takes the differentiable torch form, "compiled" refuses clearly
    llg = ll.clone().requires_grad_()
    with pytest.raises(ValueError, match=r"compiled.*gradient"):
        forward_backward(li, lt, llg, method="compiled")
    hmm_log_marginal(li, lt, llg).sum().backward()
    # ∂ log p(y) / ∂ ll_t(k) = γ_t(k), the smoothed marginal
    torch.testing.assert_close(llg.grad, ref.smoothed_probs)


def test_compiled_filter_underflow_takes_log_space():
    # a near-impossible state meets an overwhelming likelihood: the scaled normaliser
    # underflows to 0, and the kernel redoes that step in log space
    li = torch.log(torch.tensor([1.0 - 1e-300, 1e-300]))
    lt = torch.log(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    ll = torch.tensor([[-2000.0, 0.0], [-2000.0, 0.0], [0.0, -5.0]])
    ref = forward_backward(li, lt, ll, method="sequential")
    out = forward_backward(li, lt, ll, method="compiled")
    torch.testing.assert_close(out.log_marginal, ref.log_marginal, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out.smoothed_probs, ref.smoothed_probs)
    torch.testing.assert_close(out.smoothed_probs, torch.tensor([[0.0, 1.0]] * 3))


def test_posterior_samples_match_smoother():
    K, T, S = 3, 6, 20000
    li, lt, ll = random_hmm(K, T, seed=5)
    post = forward_backward(li, lt, ll, pairwise=True)
    x = sample_posterior(li, lt, ll, num_samples=S, generator=torch.Generator().manual_seed(0))
    assert x.shape == (S, T)
    freq = torch.nn.functional.one_hot(x, K).double().mean(0)
    se = torch.sqrt(post.smoothed_probs * (1 - post.smoothed_probs) / S)
    assert bool(((freq - post.smoothed_probs).abs() <= 6 * se + 1e-12).all())
    pair = torch.zeros(T - 1, K, K)
    for t in range(T - 1):
        pair[t].index_put_((x[:, t], x[:, t + 1]), torch.ones(S), accumulate=True)
    pair /= S
    se2 = torch.sqrt(post.pairwise_probs * (1 - post.pairwise_probs) / S)
    assert bool(((pair - post.pairwise_probs).abs() <= 6 * se2 + 1e-12).all())


def test_bad_input():
    K, T = 3, 5
    li, lt, ll = random_hmm(K, T)
    with pytest.raises(ValueError, match="row-stochastic"):
        forward_backward(li, lt + 0.1, ll)
    with pytest.raises(ValueError, match="log_init"):
        forward_backward(li + 0.1, lt, ll)
    with pytest.raises(ValueError, match="log_trans must have shape"):
        forward_backward(li, lt[:2], ll)
    with pytest.raises(ValueError, match="log_init must have shape"):
        forward_backward(li[:2], lt, ll)
    bad = ll.clone()
    bad[2, 1] = float("nan")
    with pytest.raises(ValueError, match=r"NaN.*\(0, 2, 1\)"):
        forward_backward(li, lt, bad)
    mask = torch.ones(T, dtype=torch.bool)
    mask[2] = False
    forward_backward(li, lt, bad, mask=mask)  # NaN where masked is fine
    bad = ll.clone()
    bad[1, 0] = math.inf
    with pytest.raises(ValueError, match=r"\+inf.*\(0, 1, 0\)"):
        forward_backward(li, lt, bad)
    bad[3, 2] = -math.inf  # +inf beside −inf (their sum is NaN): still found and named
    with pytest.raises(ValueError, match=r"\+inf.*\(0, 1, 0\)"):
        forward_backward(li, lt, bad)
    impossible = ll.clone()
    impossible[1, 0] = -math.inf  # a state that cannot emit y_t is legitimate
    assert torch.isfinite(forward_backward(li, lt, impossible).log_marginal)
    with pytest.raises(ValueError, match="T = 0"):
        forward_backward(li, lt, torch.zeros(0, K))
    with pytest.raises(ValueError, match="length >= 1"):
        forward_backward(li, lt, ll[None], lengths=torch.tensor([0]))
    with pytest.raises(ValueError, match="method"):
        forward_backward(li, lt, ll, method="magic")
    zero = torch.full((T, K), -math.inf)
    with pytest.raises(ValueError, match="zero probability"):
        forward_backward(li, lt, zero)
    with pytest.raises(ValueError, match="zero probability"):
        viterbi(li, lt, zero)


@pytest.mark.parametrize("K", [3, 17])
def test_viterbi_sequential_variants_agree_with_lengths(K):
    # K ≥ 16 takes the values-only forward pass with an O(NK) backtrack, K < 16 backpointers.
    T = 12
    li, lt, ll = random_hmm(K, T, (3,), seed=K)
    lengths = torch.tensor([12, 7, 1])
    vp = viterbi(li, lt, ll, lengths=lengths, method="sequential")
    ag = None
    for b in range(3):
        n = int(lengths[b])
        ref = viterbi(li, lt, ll[b, :n], method="sequential")
        assert vp.states[b, :n].tolist() == ref.states.tolist()
        torch.testing.assert_close(vp.log_joint[b], ref.log_joint)
        if n <= 4 and K == 3:
            ag = brute_force(li, lt, ll[b, :n])
            assert vp.states[b, :n].tolist() == ag[4].tolist()
    # the two sequential variants agree with each other on full-length sequences
    import genmodels.inference.hmm as H

    c = H._check_chain(li, lt, ll)
    psi, d = H._viterbi_forward(c.log_init + c.log_lik[:, 0], c.log_trans, c.log_lik, None)
    by_pointers = H._backtrack(psi, d.max(-1)[1])
    by_values, _ = H._viterbi_values_backtrack(c)
    assert torch.equal(by_pointers, by_values)


def test_compiled_batch_split_over_threads(monkeypatch):
    from genmodels.inference import _hmm_compiled

    K, T = 5, 40
    li, lt, ll = random_hmm(K, T, (7,), seed=31, scale=2.0)
    lengths = torch.tensor([40, 3, 17, 40, 1, 22, 39])
    ref = forward_backward(li, lt, ll, lengths=lengths, method="sequential")
    vref = viterbi(li, lt, ll, lengths=lengths, method="sequential")
    monkeypatch.setattr(_hmm_compiled, "_MIN_PARALLEL_WORK", 0)
    monkeypatch.setattr(_hmm_compiled, "idle_cores", lambda: 8)  # as if the cores were free
    threads = torch.get_num_threads()
    torch.set_num_threads(3)  # 7 sequences cut into 3 uneven parts
    try:
        out = forward_backward(li, lt, ll, lengths=lengths, method="compiled")
        vp = viterbi(li, lt, ll, lengths=lengths, method="compiled")
    finally:
        torch.set_num_threads(threads)
    for a, b in zip(out, ref):
        if a is not None:
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    assert torch.equal(vp.states, vref.states)


def test_compiled_smoother_underflow_falls_back(monkeypatch):
    # the compiled smoother reports an underflow by returning no γ: the torch form serves
    from genmodels.inference import _hmm_compiled

    li, lt, ll = random_hmm(3, 20, (2,), seed=4)
    ref = forward_backward(li, lt, ll, method="sequential")
    real = _hmm_compiled.forward_backward

    def underflowing(*args, **kwargs):
        filt, pred, log_norm, _, _ = real(*args, **kwargs)
        return filt, pred, log_norm, None, None

    monkeypatch.setattr(_hmm_compiled, "forward_backward", underflowing)
    out = forward_backward(li, lt, ll, method="compiled")
    torch.testing.assert_close(out.smoothed_probs, ref.smoothed_probs)
    torch.testing.assert_close(out.expected_transitions, ref.expected_transitions)


@pytest.mark.parametrize("method", ["sequential", "scan", "compiled"])
def test_without_the_filter(method):
    # filtered=False leaves the filtered marginals out (the compiled smoother then writes γ over
    # the filter); everything else is what the full call gives
    K, T = 4, 30
    li, lt, ll = random_hmm(K, T, (5,), seed=41, scale=2.0)
    lengths = torch.tensor([30, 1, 12, 29, 30])
    for transitions in (False, True):
        full = forward_backward(li, lt, ll, lengths=lengths, transitions=transitions,
                                method=method)
        part = forward_backward(li, lt, ll, lengths=lengths, transitions=transitions,
                                filtered=False, method=method)
        assert part.filtered_probs is None
        for name in ("smoothed_probs", "log_marginal", "log_normalizers",
                     "expected_transitions"):
            a, b = getattr(part, name), getattr(full, name)
            assert (a is None) == (b is None) == (name == "expected_transitions"
                                                  and not transitions)
            if a is not None:
                torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    # the pairwise marginals need the filter: asking for both still gives them
    both = forward_backward(li, lt, ll, lengths=lengths, pairwise=True, filtered=False,
                            method=method)
    torch.testing.assert_close(both.pairwise_probs, forward_backward(
        li, lt, ll, lengths=lengths, pairwise=True, method=method).pairwise_probs)


def test_compiled_kernels_can_be_cached_on_disk():
    # Numba keys its disk cache on a closure's contents, which differ from process to process:
    # a kernel defined in a closure is compiled anew in every process (seconds). The kernels
    # must be module-level functions, cached.
    import numba

    from genmodels.inference import _hmm_numba

    kernels = [v for v in vars(_hmm_numba).values()
               if isinstance(v, numba.core.registry.CPUDispatcher)]
    assert {"fb_kernel", "viterbi_kernel", "filter_one", "smooth_one"} <= {
        k.py_func.__name__ for k in kernels}
    for k in kernels:
        assert k.py_func.__closure__ is None, k.py_func.__name__
        assert type(k._cache).__name__ == "FunctionCache", k.py_func.__name__  # cache=True


@pytest.mark.parametrize("time_varying", [False, True])
def test_compiled_viterbi_lanes_equal_per_sequence_kernel(monkeypatch, time_varying):
    # many sequences of few states take the lane-batched kernel: the same paths and log joints
    # as the per-sequence kernel and the torch form, across ragged lengths, a batch that is not
    # a multiple of the lane count, ties and float32
    from genmodels.inference import _hmm_compiled

    K, T, B = 5, 23, 71
    li, lt, ll = random_hmm(K, T, (B,), seed=51, scale=2.0, time_varying=time_varying)
    lengths = torch.randint(1, T + 1, (B,), generator=torch.Generator().manual_seed(2))
    assert _hmm_compiled._use_lanes(B, T, K, _hmm_compiled._VITERBI_LANES_MAX_K)
    ref = viterbi(li, lt, ll, lengths=lengths, method="sequential")
    lanes = viterbi(li, lt, ll, lengths=lengths, method="compiled")
    monkeypatch.setattr(_hmm_compiled, "_VITERBI_LANES_MAX_K", 0)
    per_seq = viterbi(li, lt, ll, lengths=lengths, method="compiled")
    for out in (lanes, per_seq):
        assert torch.equal(out.states, ref.states)
        torch.testing.assert_close(out.log_joint, ref.log_joint, rtol=1e-12, atol=1e-12)
    monkeypatch.undo()
    f32 = viterbi(li.float(), lt.float(), ll.float(), lengths=lengths, method="compiled")
    assert (f32.states == ref.states).float().mean() > 0.99  # float32 rounding may flip a tie
    # a uniform chain with uninformative observations: every path ties, the first index wins
    flat = torch.full((K,), -math.log(K)), torch.full((K, K), -math.log(K))
    tied = viterbi(*flat, torch.zeros(B, T, K), lengths=lengths, method="compiled")
    assert torch.equal(tied.states, viterbi(*flat, torch.zeros(B, T, K), lengths=lengths,
                                            method="sequential").states)
    assert bool((tied.states[tied.states >= 0] == 0).all())


@pytest.mark.parametrize("time_varying", [False, True])
def test_compiled_forward_backward_lanes_equal_per_sequence_kernel(monkeypatch, time_varying):
    # the lane-batched forward–backward (many sequences, few states) against the per-sequence
    # kernel and the torch form: filtered and smoothed marginals, normalisers, expected
    # transitions, with and without γ written over the filter, ragged lengths, float32
    from genmodels.inference import _hmm_compiled

    K, T, B = 6, 19, 45
    li, lt, ll = random_hmm(K, T, (B,), seed=61, scale=3.0, time_varying=time_varying)
    lengths = torch.randint(1, T + 1, (B,), generator=torch.Generator().manual_seed(3))
    lengths[4] = T
    assert _hmm_compiled._use_lanes(B, T, K, _hmm_compiled._FB_LANES_MAX_K)
    ref = forward_backward(li, lt, ll, lengths=lengths, method="sequential")
    outs = [forward_backward(li, lt, ll, lengths=lengths, method="compiled"),
            forward_backward(li, lt, ll, lengths=lengths, method="compiled", filtered=False)]
    monkeypatch.setattr(_hmm_compiled, "_FB_LANES_MAX_K", 0)
    outs.append(forward_backward(li, lt, ll, lengths=lengths, method="compiled"))
    monkeypatch.undo()
    for out in outs:
        for name in ("filtered_probs", "smoothed_probs", "log_marginal", "log_normalizers",
                     "expected_transitions"):
            a = getattr(out, name)
            if a is not None:
                torch.testing.assert_close(a, getattr(ref, name), rtol=1e-10, atol=1e-12)
    f32 = forward_backward(li.float(), lt.float(), ll.float(), lengths=lengths,
                           method="compiled")
    torch.testing.assert_close(f32.smoothed_probs, ref.smoothed_probs.float(), rtol=1e-4,
                               atol=1e-5)


def test_compiled_forward_backward_lanes_redo_an_underflowing_sequence():
    # one sequence of a lane group underflows (a near-impossible state meets an overwhelming
    # likelihood): that sequence alone is redone by the careful kernel, in log space
    li = torch.log(torch.tensor([1.0 - 1e-300, 1e-300]))
    lt = torch.log(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    hard = torch.tensor([[-2000.0, 0.0], [-2000.0, 0.0], [0.0, -5.0]])
    _, _, easy = random_hmm(2, 3, (9,), seed=5)
    ll = torch.cat([easy[:4], hard[None], easy[4:]])
    out = forward_backward(li, lt, ll, method="compiled")
    for b in range(10):
        ref = forward_backward(li, lt, ll[b], method="sequential")
        torch.testing.assert_close(out.log_marginal[b], ref.log_marginal, rtol=1e-12,
                                   atol=1e-12)
        torch.testing.assert_close(out.smoothed_probs[b], ref.smoothed_probs)
        torch.testing.assert_close(out.expected_transitions[b], ref.expected_transitions)
    torch.testing.assert_close(out.smoothed_probs[4], torch.tensor([[0.0, 1.0]] * 3))
