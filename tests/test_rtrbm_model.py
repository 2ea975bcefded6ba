"""The recurrent temporal RBM and the recurrent EFH: recursions, gradients, reductions."""

import pytest
import torch

from genmodels.io import load, save
from genmodels.learning.contrastive import CDNegative, boltzmann_gradient
from genmodels.models.harmonium import BernoulliLayer, PoissonLayer
from genmodels.models.temporal import RTRBM, RecurrentEFH, StackedLayer


def _sequences(B=3, T=5, D=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.bernoulli(torch.full((B, T, D), 0.4), generator=g)


def test_mean_field_hidden_is_the_recursion():
    m = RTRBM(6, 4, init_scale=0.7, seed=0)
    with torch.no_grad():
        m.initial_shift.normal_(generator=torch.Generator().manual_seed(1))
    V = _sequences()
    R = m.mean_field_hidden(V)
    W, b, Wr, u = m.rbm.weight, m.rbm.b_x, m.recurrent, m.initial_shift
    r = torch.sigmoid(V[:, 0] @ W.T + b + u)
    torch.testing.assert_close(R[:, 0], r)
    for t in range(1, V.shape[1]):
        r = torch.sigmoid(V[:, t] @ W.T + b + r @ Wr.T)
        torch.testing.assert_close(R[:, t], r)


def test_zero_recurrent_weights_give_independent_rbms():
    m = RTRBM(6, 4, init_scale=0.7, seed=1)
    with torch.no_grad():
        m.recurrent.zero_()
    V = _sequences(seed=2)
    grads, _ = m.cd_bptt_grad(V, torch.Generator().manual_seed(5))
    ref = boltzmann_gradient(m.rbm, V.flatten(0, 1), CDNegative(1),
                             torch.Generator().manual_seed(5))
    for name, g in ref.items():
        torch.testing.assert_close(grads["rbm." + name], g, rtol=0, atol=1e-15)


def test_bptt_gradient_matches_finite_differences_of_the_surrogate():
    m = RTRBM(5, 3, init_scale=0.8, seed=3)
    V = _sequences(B=2, T=4, D=5, seed=4)
    grads, V_neg = m.cd_bptt_grad(V, torch.Generator().manual_seed(6))
    assert grads["recurrent"].abs().max() > 1e-3  # the BPTT path carries gradient
    # the trainer's loss has the same gradient (same negatives from the same seed)
    names, params = zip(*m.named_parameters(), strict=True)
    via_loss = torch.autograd.grad(m.loss(V, torch.Generator().manual_seed(6)), params)
    for name, g in zip(names, via_loss, strict=True):
        torch.testing.assert_close(g, grads[name])
    eps = 1e-6
    for name, p in m.named_parameters():
        flat = p.data.view(-1)
        fd = torch.zeros_like(flat)
        for i in range(flat.numel()):
            old = float(flat[i])
            flat[i] = old + eps
            up = float(m.cd_surrogate(V, V_neg).detach())
            flat[i] = old - eps
            down = float(m.cd_surrogate(V, V_neg).detach())
            flat[i] = old
            fd[i] = (up - down) / (2 * eps)
        torch.testing.assert_close(grads[name].view(-1), fd, rtol=1e-6, atol=1e-8)


def test_sampling_prediction_shapes_seeding_and_errors(tmp_path):
    m = RTRBM(6, 4, init_scale=0.5, seed=0)
    s1 = m.sample_sequence(3, 7, gibbs_steps=4, generator=torch.Generator().manual_seed(0))
    s2 = m.sample_sequence(3, 7, gibbs_steps=4, generator=torch.Generator().manual_seed(0))
    assert s1.shape == (3, 7, 6) and torch.equal(s1, s2)
    V = _sequences()
    assert m.predict_next(V, generator=torch.Generator().manual_seed(0)).shape == (3, 4, 6)
    with pytest.raises(ValueError, match=r"\(B, T, 6\)"):
        m.mean_field_hidden(torch.ones(3, 6))
    with pytest.raises(ValueError, match="n_hidden"):
        RTRBM(6, 0)
    save(m, tmp_path / "rtrbm")
    back = load(tmp_path / "rtrbm")
    torch.testing.assert_close(back.mean_field_hidden(V), m.mean_field_hidden(V))


def test_stacked_layer_is_its_parts():
    pois, bern = PoissonLayer(3), BernoulliLayer(2)
    with torch.no_grad():
        pois.bias.normal_(generator=torch.Generator().manual_seed(0))
        bern.bias.normal_(generator=torch.Generator().manual_seed(1))
    st = StackedLayer([pois, bern])
    x = torch.tensor([[2.0, 0.0, 5.0, 1.0, 0.0]])
    eta = torch.randn(1, 5, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(st.bias, torch.cat([pois.bias, bern.bias]))
    torch.testing.assert_close(st.log_partition(eta),
                               pois.log_partition(eta[:, :3]) + bern.log_partition(eta[:, 3:]))
    torch.testing.assert_close(st.log_base(x), pois.log_base(x[:, :3]) + bern.log_base(x[:, 3:]))
    torch.testing.assert_close(st.self_energy(x),
                               pois.self_energy(x[:, :3]) + bern.self_energy(x[:, 3:]))
    with pytest.raises(ValueError, match="binary"):
        st.check(torch.tensor([[2.0, 0.0, 5.0, 1.0, 0.5]]), "y")
    with pytest.raises(ValueError, match="mixes families"):
        st.distribution(eta)


def test_recurrent_efh_filter_and_its_cd_gradient(tmp_path):
    m = RecurrentEFH(5, 3, init_scale=0.3, seed=0)
    Y = torch.poisson(torch.full((2, 4, 5), 1.5), generator=torch.Generator().manual_seed(0))
    R = m.filter(Y)
    W, b = m.efh.weight, m.efh.b_x
    r = torch.zeros(2, 3)
    for t in range(4):
        r = torch.sigmoid(torch.cat([Y[:, t], r], -1) @ W.T + b)
        torch.testing.assert_close(R[:, t], r)
    X = m.inputs(Y)
    torch.testing.assert_close(X[:, 1:, 5:], R[:, :-1])
    # the loss is the harmonium's own CD-1 surrogate on the vectors [y_t; r_{t−1}]
    loss = m.loss(Y, torch.Generator().manual_seed(1))
    grads = torch.autograd.grad(loss, [m.efh.weight])
    ref = boltzmann_gradient(m.efh, X.flatten(0, 1), CDNegative(1),
                             torch.Generator().manual_seed(1))
    torch.testing.assert_close(grads[0], ref["weight"])
    save(m, tmp_path / "refh")
    torch.testing.assert_close(load(tmp_path / "refh").filter(Y), R)
    a = m.sample_sequence(4, 6, gibbs_steps=3, generator=torch.Generator().manual_seed(2))
    b = m.sample_sequence(4, 6, gibbs_steps=3, generator=torch.Generator().manual_seed(2))
    assert a.shape == (4, 6, 5) and torch.equal(a, b) and (a >= 0).all()
    assert torch.equal(a, a.round())  # Poisson counts


def test_trbm_states_are_filtered_samples_and_carry_no_bptt():
    from genmodels.models.temporal import TRBM

    m = TRBM(4, 3, init_scale=1.0, seed=2)
    V = _sequences(B=1, T=2, D=4, seed=3).expand(20000, 2, 4)
    H = m.hidden_states(V, torch.Generator().manual_seed(0))
    assert H.shape == (20000, 2, 3) and not H.requires_grad
    # h_2 | h_1 ~ Bern(σ(W v_2 + b + W′ h_1)): check the frequency given h_1 = each state seen
    p = torch.sigmoid(V[:, 1] @ m.rbm.weight.T + m.rbm.b_x + H[:, 0] @ m.recurrent.T).detach()
    assert ((H[:, 1].mean(0) - p.mean(0)).abs() < 6 * (0.25 / 20000) ** 0.5).all()
    # the gradient in W′ is the CD estimate at the fixed states: −⟨(σ(η(v)) − σ(η(ṽ))) h_{t−1}ᵀ⟩
    Vs = _sequences(B=3, T=4, D=4, seed=5)
    g = torch.Generator().manual_seed(7)
    loss = m.loss(Vs, g)
    (grad,) = torch.autograd.grad(loss, [m.recurrent])
    g = torch.Generator().manual_seed(7)
    H = m.hidden_states(Vs, g)
    shifts = m.hidden_shifts(H)
    neg = m.negative.negative(m.step_harmonium(shifts), Vs, g).states
    eta = lambda v: v @ m.rbm.weight.T + m.rbm.b_x + shifts  # noqa: E731
    prev = torch.cat([torch.zeros(3, 1, 3), H[:, :-1]], 1)
    diff = (torch.sigmoid(eta(Vs)) - torch.sigmoid(eta(neg))).detach()
    expect = -(diff[..., :, None] * prev[..., None, :]).mean((0, 1))
    torch.testing.assert_close(grad, expect)
