"""The progress bars are drawn (to stderr, by tqdm) when asked for, and not otherwise."""

from __future__ import annotations

import torch
from em_toy import UnitVarianceMixture, toy_data
from torch import nn

from genmodels.learning.em import run_em
from genmodels.learning.trainer import Trainer


class _Quadratic(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(2))

    def loss(self, batch, generator=None):
        return (batch - self.w).square().sum(-1).mean()


def test_em_progress_bar(capsys):
    run_em(UnitVarianceMixture(), [toy_data()], max_iter=3, tol=0.0, warn=False, progress=True)
    err = capsys.readouterr().err
    assert "EM" in err and "3/3" in err and "loglik=" in err
    run_em(UnitVarianceMixture(), [toy_data()], max_iter=3, tol=0.0, warn=False)
    assert capsys.readouterr().err == ""


def test_trainer_progress_bar(capsys):
    data = torch.randn(64, 2, generator=torch.Generator().manual_seed(0))
    Trainer(_Quadratic(), epochs=2, batch_size=16, progress=True).fit(data)
    err = capsys.readouterr().err
    assert "_Quadratic" in err and "2/2" in err and "loss=" in err
    Trainer(_Quadratic(), epochs=2, batch_size=16, progress=False).fit(data)
    assert capsys.readouterr().err == ""
