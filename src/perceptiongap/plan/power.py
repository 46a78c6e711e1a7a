"""The criteria a simulated study is judged by, and power with its Monte Carlo standard error.

For each replication, severity s > 0 and analysed subgroup g:

* ``confidence_drop``: P(gamma[s, g] > 0 | D) < 0.05, with P computed as METHOD §6 does
  (:func:`perceptiongap.analysis.confidence.probability_positive`, normal approximation);
* ``separability_drop``: the one-sided KS test of METHOD §6 between the per-reader class
  separabilities at severity 0 and at s (:func:`perceptiongap.analysis.separability.class_separability`
  on the posterior predictive, then :func:`~perceptiongap.analysis.separability.separability_drop_pvalues`),
  p < 0.05;
* ``separability_effect`` (``label_specific`` only): P(delta[s, g] < 0 | D) > 0.95, delta being
  the malignant breasts' severity effect minus that of all non-malignant breasts.

Power is the share of replications rejecting; its Monte Carlo standard error sqrt(p (1 - p) / reps).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from perceptiongap.analysis.confidence import probability_positive
from perceptiongap.analysis.separability import class_separability, separability_drop_pvalues
from perceptiongap.plan.laplace import StudyFits

__all__ = ["ALPHA", "CRITERIA", "power_table", "rejections"]

ALPHA = 0.05
CRITERIA: tuple[str, ...] = ("confidence_drop", "separability_drop", "separability_effect")
REJECTION_COLUMNS = ("rep", "criterion", "subgroup", "severity_mm", "reject", "statistic")


def _separability_pvalues(predictive: np.ndarray, arrays: dict, subgroups: tuple[str, ...],
                          analysed: tuple[str, ...], severity_mm: np.ndarray) -> np.ndarray:
    """(B, analysed, S) p-values of the drop test, each replication on its own breasts."""
    out = np.full((predictive.shape[0], len(analysed), len(severity_mm)), np.nan)
    names = np.asarray(subgroups)
    for rep in range(predictive.shape[0]):  # each replication has its own breasts and labels
        values = xr.DataArray(predictive[rep], dims=("observer", "severity", "case"),
                              coords={"severity": severity_mm})
        label = np.where(arrays["case_malignant"][rep] > 0.5, "malignant", "benign")
        group = names[arrays["case_subgroup"][rep]]
        for k, subgroup in enumerate(analysed):
            ks = class_separability(values, label, group, subgroup)
            out[rep, k] = separability_drop_pvalues(ks).values
    return out


def rejections(fits: StudyFits, arrays: dict, subgroups: tuple[str, ...], analysed: tuple[str, ...],
               severity_mm: tuple[float, ...]) -> pd.DataFrame:
    """One row per (replication, criterion, analysed subgroup, severity > 0): ``reject`` (bool) and
    the ``statistic`` it was decided on (a posterior probability or a p-value)."""
    severity = np.asarray(severity_mm, dtype=float)
    columns = [subgroups.index(g) for g in analysed]
    statistics = {
        "confidence_drop": (probability_positive(fits.gamma_mean, fits.gamma_sd)[:, :, columns], "below", ALPHA),
        "separability_drop": (_separability_pvalues(fits.predictive, arrays, subgroups, analysed, severity)
                              .transpose(0, 2, 1), "below", ALPHA),
    }
    if fits.delta_mean is not None:
        negative = 1.0 - probability_positive(fits.delta_mean, fits.delta_sd)
        statistics["separability_effect"] = (negative[:, :, columns], "above", 1.0 - ALPHA)
    frames = []
    reps = fits.gamma_mean.shape[0]
    rep, s, g = np.meshgrid(np.arange(reps), np.arange(1, len(severity)), np.arange(len(analysed)), indexing="ij")
    for criterion, (values, side, threshold) in statistics.items():
        value = values[rep, s, g]
        reject = value < threshold if side == "below" else value > threshold
        frames.append(pd.DataFrame({
            "rep": rep.ravel(), "criterion": criterion, "subgroup": np.asarray(analysed)[g.ravel()],
            "severity_mm": severity[s.ravel()], "reject": reject.ravel(), "statistic": value.ravel(),
        }))
    return pd.concat(frames, ignore_index=True)


def power_table(rows: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Power and its Monte Carlo standard error per ``keys`` + (criterion, subgroup, severity_mm).

    A replication whose statistic is NaN (e.g. no malignant breast of the subgroup) counts as not
    rejecting; ``reps`` is the number of replications.
    """
    by = [*keys, "criterion", "subgroup", "severity_mm"]
    grouped = rows.groupby(by, sort=False)
    table = grouped["reject"].agg(power="mean", reps="size").reset_index()
    table["power_se"] = np.sqrt(table["power"] * (1.0 - table["power"]) / table["reps"])
    return table.loc[:, [*by, "power", "power_se", "reps"]]
