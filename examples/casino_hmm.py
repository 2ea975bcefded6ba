"""The occasionally dishonest casino (Durbin, Eddy, Krogh & Mitchison 1998, §3.2): inference,
then learning.

A casino switches between a fair die and a loaded one (a six half of the time). Hidden state:
which die; observation: the roll. Part 1 (inference, §2.2.1): from the rolls alone, the filter
p̂(loaded | rolls so far), the smoother p̂(loaded | all rolls) and the Viterbi path, scored
against the truth. Part 2 (learning, §7.2): Baum–Welch from a random start on many sequences
recovers the transition and emission probabilities (up to relabelling the two states).

    python examples/casino_hmm.py            # 20 sequences of 300 rolls, plot casino.png
    python examples/casino_hmm.py --tiny     # a few seconds, no plot (the smoke test)
"""

from __future__ import annotations

import argparse

import torch

from genmodels.inference.hmm import forward_backward, forward_filter, viterbi
from genmodels.learning.em import run_em
from genmodels.models.family_emissions import CategoricalEmission
from genmodels.models.hmm import HiddenMarkovModel, pack_sequences

FAIR, LOADED = 0, 1


def casino() -> HiddenMarkovModel:
    """The true casino: P[fair → loaded] = 0.05, P[loaded → fair] = 0.1; faces 1..6 as 0..5."""
    emission = CategoricalEmission(2, 6, probs=torch.tensor(
        [[1 / 6] * 6, [0.1] * 5 + [0.5]], dtype=torch.float64))
    return HiddenMarkovModel(torch.tensor([0.5, 0.5], dtype=torch.float64),
                             torch.tensor([[0.95, 0.05], [0.10, 0.90]], dtype=torch.float64),
                             emission)


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tiny", action="store_true", help="small run for the smoke test")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--plot", default="casino.png", help="figure file ('' for none)")
    args = ap.parse_args(argv)
    g = torch.Generator().manual_seed(args.seed)
    n_seq, T = (4, 100) if args.tiny else (20, 300)
    truth = casino()

    # ---- Part 1: inference with the true parameters -------------------------------------
    states, rolls = truth.sample(T, num_sequences=n_seq, generator=g)  # (B, T), (B, T, 1)
    data = pack_sequences(rolls.reshape(-1, 1), [T] * n_seq, integer=True)
    ll = truth.log_likelihood_table(data)  # (B, T, 2)
    filt = forward_filter(truth.log_initial, truth.log_transition, ll)
    post = forward_backward(truth.log_initial, truth.log_transition, ll)
    path = viterbi(truth.log_initial, truth.log_transition, ll).states
    loaded = states == LOADED
    acc_filter = float(((filt.filtered_probs[..., LOADED] > 0.5) == loaded).double().mean())
    acc_smooth = float(((post.smoothed_probs[..., LOADED] > 0.5) == loaded).double().mean())
    acc_viterbi = float((path == states).double().mean())
    print(f"inference on {n_seq} × {T} rolls, true parameters:")
    print(f"  log p(rolls) = {float(post.log_marginal.sum()):.2f}")
    print(f"  accuracy: filter {acc_filter:.3f}, smoother {acc_smooth:.3f}, "
          f"Viterbi {acc_viterbi:.3f}")

    # ---- Part 2: learning by Baum–Welch from a random start ---------------------------------
    start = torch.softmax(torch.randn(2, 6, generator=g, dtype=torch.float64), -1)
    model = HiddenMarkovModel(torch.tensor([0.5, 0.5], dtype=torch.float64),
                              torch.tensor([[0.8, 0.2], [0.3, 0.7]], dtype=torch.float64),
                              CategoricalEmission(2, 6, probs=start))
    result = run_em(model, [data], max_iter=300, tol=1e-7, warn=False)
    six = model.emission.probs[:, 5]
    loaded_state = int(torch.argmax(six))  # the state that favours sixes is "loaded"
    perm = [1 - loaded_state, loaded_state]
    P = model.transition_matrix[perm][:, perm]
    B = model.emission.probs[perm]
    print(f"Baum–Welch: {result.n_iter} iterations, log-likelihood per roll "
          f"{result.log_likelihood[0]:.4f} → {result.log_likelihood[-1]:.4f}")
    print(f"  P(fair→loaded) = {float(P[0, 1]):.3f} (true 0.05), "
          f"P(loaded→fair) = {float(P[1, 0]):.3f} (true 0.10)")
    print(f"  P(six | loaded) = {float(B[1, 5]):.3f} (true 0.5), "
          f"P(six | fair) = {float(B[0, 5]):.3f} (true 0.167)")

    if args.plot and not args.tiny:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(9, 3))
        t = torch.arange(T)
        ax.fill_between(t, 0, loaded[0].double(), step="mid", color="0.85", label="loaded (truth)")
        ax.plot(t, filt.filtered_probs[0, :, LOADED], lw=1, label="filter")
        ax.plot(t, post.smoothed_probs[0, :, LOADED], lw=1.5, label="smoother")
        ax.plot(t, (path[0] == LOADED).double() * 1.05, ".", ms=2, label="Viterbi")
        ax.set_xlabel("roll")
        ax.set_ylabel("p(loaded)")
        ax.legend(loc="upper right", fontsize=8, ncol=4)
        fig.savefig(args.plot, dpi=120, bbox_inches="tight")
        print(f"wrote {args.plot}")
    return {"acc_viterbi": acc_viterbi, "acc_smooth": acc_smooth,
            "p_six_loaded": float(B[1, 5]), "loglik_first": result.log_likelihood[0],
            "loglik_last": result.log_likelihood[-1]}


if __name__ == "__main__":
    main()
