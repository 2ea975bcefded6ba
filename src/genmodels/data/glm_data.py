"""Real data sets for the GLM examples, from statsmodels (registered with ``register_dataset``
when this module is imported; ``genmodels.models.glm`` imports it).

==========  ======================================================================  ==========
name        what                                                                    family
==========  ======================================================================  ==========
scotland    32 Scottish council areas, 1997 devolution referendum: "yes" vote %     Gamma
            (positive, continuous) on 7 socio-economic covariates. The classic
            Gamma GLM example (statsmodels docs; Gill 2001).
randhie     20,190 RAND Health Insurance Experiment participants: outpatient        Poisson
            doctor visits (counts, 0–77) on 9 insurance/health covariates (Cameron
            & Trivedi). Large and a genuine count response; over-dispersed, which
            the Pearson scale shows.
cpunish     17 US states, 1997: executions (counts) on 6 covariates; the small       Poisson
            classic Poisson example of statsmodels.
==========  ======================================================================  ==========

X holds the covariates (no constant column), y the response.
"""

from __future__ import annotations

import numpy as np
import torch

from genmodels.data import Dataset, _require, register_dataset


def _statsmodels(name: str, description: str) -> Dataset:
    ds = getattr(_require("statsmodels.api").datasets, name).load_pandas()
    exog = ds.exog
    return Dataset(
        name=name,
        X=torch.tensor(exog.to_numpy(dtype=np.float64)),
        y=torch.tensor(ds.endog.to_numpy(dtype=np.float64)),
        description=description,
        feature_names=[str(c) for c in exog.columns],
    )


def load_scotland() -> Dataset:
    return _statsmodels("scotland", "Scottish devolution referendum 1997: 'yes' vote % of 32 "
                        "council areas (Gamma response) on 7 covariates.")


def load_randhie() -> Dataset:
    return _statsmodels("randhie", "RAND Health Insurance Experiment: doctor visits (count) "
                        "of 20,190 participants on 9 covariates.")


def load_cpunish() -> Dataset:
    return _statsmodels("cpunish", "US executions in 1997 (count) in 17 states on 6 "
                        "covariates.")


register_dataset("scotland", load_scotland)
register_dataset("randhie", load_randhie)
register_dataset("cpunish", load_cpunish)

__all__ = ["load_cpunish", "load_randhie", "load_scotland"]
