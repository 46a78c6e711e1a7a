"""The change in class separability as a parameter: delta[s, g] of the label-specific model.

Under ``label_specific`` (:mod:`perceptiongap.model.variants`) filtering at severity s shifts the
logits of the malignant breasts of subgroup g by gamma[s, g, malignant] and those of
non-malignant breasts of subgroup g' by gamma[s, g', non-malignant]. Class separability (METHOD
§6) compares the malignant breasts of g with all non-malignant breasts, so its change is

    delta[s, g] = gamma[s, g, malignant] - sum over g' of w[g'] gamma[s, g', non-malignant],

with w[g'] the share of the non-malignant breasts that are in subgroup g'. delta < 0: filtering
moves the malignant breasts of g towards the negatives, and separability falls. It is reported
with its posterior mean, central 90 % credible interval and P(delta < 0); at severity 0 it is 0 by
construction (interval 0, P empty). A posterior without ``gamma_label`` gives no rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import arviz as az
import numpy as np
import pandas as pd

from perceptiongap.analysis.posterior import MALIGNANT, draws, fit_key, posterior_cases, posterior_group
from perceptiongap.vocabulary import ANALYSED_SUBGROUPS

__all__ = ["SEPARABILITY_EFFECT_COLUMNS", "separability_effect_draws", "separability_effects",
           "separability_effects_table"]

#: The columns of ``tables/separability_effects.csv``.
SEPARABILITY_EFFECT_COLUMNS = ("model", "inference", "observer_group", "subgroup", "severity_mm", "delta_mean",
                               "delta_low", "delta_high", "p_delta_negative")
#: Central credible interval of delta.
LEVEL = 0.9


def separability_effect_draws(posterior: az.InferenceData) -> np.ndarray | None:
    """delta draws (sample, severity, subgroup) in the posterior's subgroup order; None without ``gamma_label``."""
    dataset = posterior_group(posterior)
    if "gamma_label" not in dataset:
        return None
    cases = posterior_cases(posterior)
    labels = [str(name) for name in dataset["label"].values]
    positive, negative = labels.index(MALIGNANT), 1 - labels.index(MALIGNANT)
    names = [str(name) for name in dataset["subgroup"].values]
    negatives = np.array([np.sum((cases.subgroup == name) & (cases.label != MALIGNANT)) for name in names], float)
    weights = negatives / negatives.sum()
    gamma_label = draws(dataset, "gamma_label")  # (sample, S, G, L)
    return gamma_label[..., positive] - np.einsum("dsg,g->ds", gamma_label[..., negative], weights)[..., None]


def separability_effects(posterior: az.InferenceData, subgroups: Sequence[str] = ANALYSED_SUBGROUPS
                         ) -> pd.DataFrame:
    """One fit's delta per (subgroup, severity): columns :data:`SEPARABILITY_EFFECT_COLUMNS` (empty
    when the posterior has no label-specific effect)."""
    delta = separability_effect_draws(posterior)
    if delta is None:
        return pd.DataFrame(columns=list(SEPARABILITY_EFFECT_COLUMNS))
    model, inference, observer_group = fit_key(posterior)
    dataset = posterior.posterior
    names = [str(name) for name in dataset["subgroup"].values]
    severities = np.asarray(dataset["severity"].values, dtype=float)
    tail = (1.0 - LEVEL) / 2.0
    rows = []
    for name in subgroups:
        if name not in names:
            continue
        values = delta[:, :, names.index(name)]
        low, high = np.quantile(values, [tail, 1.0 - tail], axis=0)
        for s, severity_mm in enumerate(severities):
            rows.append({"model": model, "inference": inference, "observer_group": observer_group, "subgroup": name,
                         "severity_mm": float(severity_mm), "delta_mean": float(values[:, s].mean()),
                         "delta_low": float(low[s]), "delta_high": float(high[s]),
                         "p_delta_negative": float(np.mean(values[:, s] < 0)) if severity_mm != 0 else np.nan})
    return pd.DataFrame(rows, columns=list(SEPARABILITY_EFFECT_COLUMNS))


def separability_effects_table(posteriors: Sequence[az.InferenceData],
                               subgroups: Sequence[str] = ANALYSED_SUBGROUPS) -> pd.DataFrame:
    """``tables/separability_effects.csv``: every label-specific fit; seeds combined by medians."""
    tables = [separability_effects(posterior, subgroups) for posterior in posteriors]
    tables = [table for table in tables if len(table)]
    if not tables:
        return pd.DataFrame(columns=list(SEPARABILITY_EFFECT_COLUMNS))
    stacked = pd.concat(tables, ignore_index=True)
    key = ["model", "inference", "observer_group", "subgroup", "severity_mm"]
    combined = stacked.groupby(key, sort=False, dropna=False).median(numeric_only=True).reset_index()
    return combined.loc[:, list(SEPARABILITY_EFFECT_COLUMNS)]
