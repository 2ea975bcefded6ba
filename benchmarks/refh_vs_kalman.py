"""The recurrent EFH against the Kalman filter on the Poisson-observed LDS (Makin, Dichter &
Sabes 2015): held-out one-step prediction error of the position, as a ratio.

Data: ``genmodels.data.sequences.poisson_lds`` (a damped noise-driven spring seen through 15
Gaussian-tuned Poisson neurons), 200 training and 100 held-out sequences of 50 steps. The rEFH
(``models.temporal.RecurrentEFH``, K hidden units, CD-1 on [y_t; r_{t−1}] through the trainer)
is read out by ridge regression from r_t to the next position z_{t+1}, fitted on the training
sequences. The Kalman filter runs on the *true* dynamics with the population-decoded positions
as observations (``kalman_one_step``) — the optimal linear-Gaussian filter for this model up to
the Gaussian approximation of the population code. A ratio of 1 would match it.

    python benchmarks/refh_vs_kalman.py [--hidden 150] [--epochs 40] [--lr 2e-2] [--quick]
"""

from __future__ import annotations

import argparse
import time

import torch

from genmodels.data.sequences import kalman_one_step, poisson_lds
from genmodels.estimators.linear_model import Ridge
from genmodels.learning.trainer import Trainer
from genmodels.models.temporal import RecurrentEFH


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--hidden", type=int, default=150)
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--lr", type=float, default=2e-2)
    p.add_argument("--quick", action="store_true", help="40 hidden units, 10 epochs")
    args = p.parse_args()
    if args.quick:
        args.hidden, args.epochs = 40, 10
    torch.set_num_threads(1)
    train, test = poisson_lds(200, 50, seed=0), poisson_lds(100, 50, seed=1)
    model = RecurrentEFH(15, args.hidden, seed=0)
    t0 = time.perf_counter()
    Trainer(model, epochs=args.epochs, batch_size=10, lr=args.lr, progress=False,
            seed=0).fit(train.counts)
    secs = time.perf_counter() - t0
    with torch.no_grad():
        r_tr, r_te = model.filter(train.counts), model.filter(test.counts)
    reg = Ridge(alpha=1e-6).fit(r_tr[:, :-1].flatten(0, 1), train.states[:, 1:, 0].flatten())
    pred = torch.as_tensor(reg.predict(r_te[:, :-1].flatten(0, 1)))
    target = test.states[:, 1:, 0].flatten()
    err_refh = float(((pred - target) ** 2).mean())
    err_kf = float(((kalman_one_step(test)[..., 0].flatten() - target) ** 2).mean())
    print(f"rEFH, {args.hidden} hidden, {args.epochs} epochs (lr {args.lr}, {secs:.0f} s)")
    print(f"  one-step position MSE: rEFH {err_refh:.5f}, Kalman filter {err_kf:.5f}, "
          f"ratio {err_refh / err_kf:.2f}")


if __name__ == "__main__":
    main()
