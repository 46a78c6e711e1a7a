"""Predictive confidence (METHOD §6): the posterior of the severity effect gamma[s, g].

A negative gamma[s, g] means that filtering at severity s lowers the observers' predicted
probabilities for subgroup g: they become less confident. ``p_confidence_above_margin`` is the
posterior probability (the fraction of draws) that gamma[s, g] > -CONFIDENCE_MARGIN: evidence that
filtering does not lower confidence by more than the margin (:mod:`perceptiongap.analysis.margins`).
"""

from __future__ import annotations

from collections.abc import Sequence

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats

from perceptiongap.analysis.margins import CONFIDENCE_MARGIN
from perceptiongap.analysis.posterior import SAMPLE_DIMS, posterior_group
from perceptiongap.errors import InputError

CONFIDENCE_COLUMNS = ("subgroup", "severity_mm", "confidence_mean", "confidence_sd", "p_confidence_positive",
                      "p_confidence_above_margin")


def probability_positive(mean: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """P(gamma > 0) under a normal approximation, ``1 - Phi(0; mean, sd)``; NaN where sd is 0.

    Computed as the normal survival function, which equals the release's ``1 - norm.cdf`` without
    its cancellation for tiny probabilities.
    """
    mean = np.asarray(mean, dtype=float)
    sd = np.asarray(sd, dtype=float)
    positive_sd = sd > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        p = stats.norm.sf(0.0, loc=mean, scale=np.where(positive_sd, sd, 1.0))
    return np.where(positive_sd, p, np.nan)


def predictive_confidence(
    posterior: az.InferenceData | xr.Dataset, *, pooled: Sequence[str] | None = None, pooled_name: str | None = None
) -> pd.DataFrame:
    """Posterior mean and sd (ddof=0, over all chains and draws) of gamma per subgroup and severity.

    Returns one row per (subgroup, severity) with columns ``CONFIDENCE_COLUMNS``, subgroups in the
    posterior's order and severities ascending; ``p_confidence_positive`` is NaN at severity 0,
    where gamma is 0 by construction.

    ``pooled`` (e.g. ``("microcalcifications", "soft_tissue_lesions")``) instead pools the draws of
    those subgroups into one sample, named ``pooled_name`` or by joining them with ``+``: what the
    release's perturbation-study script does at its pinned commit, for every subgroup it is asked
    about (its merged-subgroup panel pools gamma[:, :2], the two analysed subgroups).
    """
    gamma = posterior_group(posterior)["gamma"]
    if pooled is not None:
        names = [str(name) for name in gamma["subgroup"].values]
        absent = [name for name in pooled if name not in names]
        if absent:
            raise InputError(f"subgroup {absent[0]!r} is not in the posterior ({', '.join(names)})", source="posterior")
        draws = gamma.sel(subgroup=list(pooled)).stack(pooled_sample=(*SAMPLE_DIMS, "subgroup"))
        name = [pooled_name or "+".join(pooled)]
        mean = draws.mean("pooled_sample").expand_dims(subgroup=name)
        sd = draws.std("pooled_sample", ddof=0).expand_dims(subgroup=name)
        above = (draws > -CONFIDENCE_MARGIN).mean("pooled_sample").expand_dims(subgroup=name)
    else:
        mean = gamma.mean(SAMPLE_DIMS)
        sd = gamma.std(SAMPLE_DIMS, ddof=0)
        above = (gamma > -CONFIDENCE_MARGIN).mean(SAMPLE_DIMS)
    above = above.where(sd > 0)  # severity 0: gamma is 0 by construction, nothing to judge
    table = xr.Dataset({"confidence_mean": mean, "confidence_sd": sd, "p_confidence_above_margin": above}
                       ).transpose("subgroup", "severity")
    frame = table.to_dataframe().reset_index()
    frame["p_confidence_positive"] = probability_positive(frame["confidence_mean"], frame["confidence_sd"])
    frame["p_confidence_above_margin"] = frame["p_confidence_above_margin"].astype(float)
    frame = frame.rename(columns={"severity": "severity_mm"})
    frame["subgroup"] = frame["subgroup"].astype(str)
    frame["severity_mm"] = frame["severity_mm"].astype(float)
    return frame.loc[:, list(CONFIDENCE_COLUMNS)]
