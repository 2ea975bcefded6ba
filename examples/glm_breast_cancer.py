"""Logistic regression on the breast-cancer data by IRLS, three ways (book §5.1.2, CATALOGUE E6).

1. The ten "mean" features: a well-posed maximum-likelihood fit, printed as a GLM summary table
   (coefficients, standard errors from the Fisher information, deviance, AIC).
2. All thirty features: the classes are linearly separable, so the maximum-likelihood
   coefficients are infinite; IRLS reports a SeparationWarning instead of a "converged" fit.
3. The same thirty features with an L2 prior (MAP, Eq. 5.6): finite, well-defined coefficients,
   and one-step leave-one-out residuals (App. A.1) of a ridge probability model for comparison.

    python examples/glm_breast_cancer.py [--tiny]
"""

from __future__ import annotations

import argparse
import warnings

import torch

from genmodels.data import load_dataset
from genmodels.estimators.linear_model import LogisticRegression
from genmodels.learning.irls import SeparationWarning
from genmodels.learning.regression import loo_residuals
from genmodels.models.glm import GLM


def main(tiny: bool = False) -> dict[str, float]:
    ds = load_dataset("breast_cancer")
    X, y = ds.X.double(), ds.y.double()
    if tiny:  # a stratified subsample: enough to run every step quickly
        idx = torch.cat([torch.nonzero(y == c).flatten()[:60] for c in (0, 1)])
        X, y = X[idx], y[idx]
    mean_cols = [j for j, n in enumerate(ds.feature_names) if n.startswith("mean")]
    ones = torch.ones(X.shape[0], 1, dtype=X.dtype)

    # 1. ten features: maximum likelihood
    model = GLM(y, torch.cat([ones, X[:, mean_cols]], 1), family="binomial")
    model.exog_names = ["const"] + [ds.feature_names[j] for j in mean_cols]
    res = model.fit()
    print(res.summary())

    # 2. thirty features: separable
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sep = GLM(y, torch.cat([ones, X], 1), family="binomial").fit()
    separated = any(issubclass(w.category, SeparationWarning) for w in caught)
    print(f"\nall 30 features: separated={sep.separated} (warning raised: {separated}); "
          f"the 'coefficients' reach |d| = {float(sep.params.abs().max()):.3g}")

    # 3. thirty standardised features with an L2 prior (C = 1)
    Z = (X - X.mean(0)) / X.std(0)
    clf = LogisticRegression(C=1.0).fit(Z.numpy(), y.numpy())
    acc = float((clf.predict(Z.numpy()) == y.numpy()).mean())
    loo = loo_residuals(torch.cat([ones, Z], 1), y, alpha=1.0)
    loo_acc = float(((y - loo.residuals > 0.5).double() == y).double().mean())
    print(f"L2-penalised logistic regression (C=1), 30 features: training accuracy {acc:.3f}")
    print(f"ridge probability model, one-step leave-one-out accuracy {loo_acc:.3f}")
    return {"deviance_10": res.deviance, "aic_10": res.aic, "separated_30": float(sep.separated),
            "accuracy_l2": acc, "loo_accuracy_ridge": loo_acc}


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tiny", action="store_true", help="a quick run on 120 samples")
    main(p.parse_args().tiny)
