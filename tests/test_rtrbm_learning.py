"""Learning sequences: the RTRBM on bouncing balls, the recurrent EFH on the Poisson LDS."""

import torch

from genmodels.data.sequences import bouncing_balls, kalman_one_step, poisson_lds
from genmodels.learning.contrastive import BoltzmannLearner, CDNegative
from genmodels.learning.trainer import Trainer
from genmodels.models.harmonium import BernoulliRBM
from genmodels.models.temporal import RTRBM, RecurrentEFH, predict_next_frames


def test_rtrbm_predicts_the_next_frame_better_than_a_per_frame_rbm():
    res, T, B = 10, 15, 20
    train = bouncing_balls(100, T, res=res, n_balls=2, seed=0).frames.flatten(2)
    test = bouncing_balls(40, T, res=res, n_balls=2, seed=1).frames.flatten(2)
    train = torch.bernoulli(train, generator=torch.Generator().manual_seed(0))
    kw = {"epochs": 15, "lr": 5e-3, "progress": False, "seed": 0}
    rtrbm = RTRBM(res * res, 30, seed=0)
    Trainer(rtrbm, batch_size=B, **kw).fit(train)
    rbm = BernoulliRBM(res * res, 30, seed=0)  # the same updates, each on the same frames
    Trainer(BoltzmannLearner(rbm, CDNegative(1)), batch_size=B * T, **kw).fit(
        train.flatten(0, 1))
    g = torch.Generator().manual_seed(2)
    pred_rtrbm = rtrbm.predict_next(test, generator=g)
    pred_rbm = predict_next_frames(rbm, test[:, :-1], generator=g)
    err_rtrbm = float(((pred_rtrbm - test[:, 1:]) ** 2).sum(-1).mean())
    err_rbm = float(((pred_rbm - test[:, 1:]) ** 2).sum(-1).mean())
    assert err_rtrbm < 0.8 * err_rbm


def _readout_error(train_feats, train_pos, test_feats, test_pos):
    """Held-out squared error of a ridge readout features_t → position_{t+1}."""
    from genmodels.estimators.linear_model import Ridge

    reg = Ridge(alpha=1e-6).fit(train_feats.flatten(0, 1), train_pos.flatten())
    pred = torch.as_tensor(reg.predict(test_feats.flatten(0, 1)))
    return float(((pred - test_pos.flatten()) ** 2).mean())


def test_recurrent_efh_learns_to_track_the_poisson_lds():
    train, test = poisson_lds(100, 30, seed=0), poisson_lds(50, 30, seed=1)
    m = RecurrentEFH(15, 40, seed=0)

    def error():
        with torch.no_grad():
            r_tr, r_te = m.filter(train.counts), m.filter(test.counts)
        return _readout_error(r_tr[:, :-1], train.states[:, 1:, 0], r_te[:, :-1],
                              test.states[:, 1:, 0])

    before = error()
    Trainer(m, epochs=20, batch_size=10, lr=1e-2, progress=False, seed=0).fit(train.counts)
    after = error()
    kalman = float(((kalman_one_step(test)[..., 0] - test.states[:, 1:, 0]) ** 2).mean())
    counts_only = _readout_error(train.counts[:, :-1], train.states[:, 1:, 0],
                                 test.counts[:, :-1], test.states[:, 1:, 0])
    # learning helps, the recurrence beats a readout of the current counts, and the Kalman
    # filter on the true model stays the better predictor (the ratio is in the note)
    assert after < 0.7 * before and after < 0.7 * counts_only
    assert kalman < after < 5 * kalman
