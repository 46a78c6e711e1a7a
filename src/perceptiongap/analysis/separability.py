"""Class separability (METHOD §6) and the one-sided test for its drop under filtering.

Class separability for subgroup g is the two-sample KS statistic between the predicted
probabilities of the positive breasts (malignant, in subgroup g) and of the negative breasts (all
non-malignant breasts, benign or nonbiopsied, whatever their subgroup). It is computed per
observer (or per any other sample dims) and severity, then summarised over the samples.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats

from perceptiongap.analysis.ks import ks_statistic
from perceptiongap.analysis.margins import EVIDENCE_LEVEL

SEPARABILITY_COLUMNS = ("severity_mm", "separability_mean", "separability_sd", "p_separability_drop",
                        "separability_drop_upper")


def class_separability(
    predictions: xr.DataArray,
    case_label: Sequence[str] | np.ndarray | xr.DataArray,
    case_subgroup: Sequence[str] | np.ndarray | xr.DataArray,
    subgroup: str,
) -> xr.DataArray:
    """KS statistic between positive and negative breasts of ``subgroup``, along dim ``case``.

    ``predictions`` has a ``case`` dim (and any others, e.g. observer and severity);
    ``case_label`` and ``case_subgroup`` give each case's label (malignant | benign |
    nonbiopsied) and subgroup name in the order of that dim. Returns ``predictions`` reduced over
    ``case``; NaN where there are no positive or no negative breasts.
    """
    label = np.asarray(case_label).astype(str)
    group = np.asarray(case_subgroup).astype(str)
    if label.shape != (predictions.sizes["case"],) or group.shape != label.shape:
        raise ValueError(
            f"case_label {label.shape} and case_subgroup {group.shape} must have one entry per case "
            f"({predictions.sizes['case']})"
        )
    malignant = label == "malignant"
    positive = malignant & (group == subgroup)
    negative = ~malignant
    return xr.apply_ufunc(
        ks_statistic,
        predictions,
        kwargs={"positive": positive, "negative": negative},
        input_core_dims=[["case"]],
    ).rename("class_separability")


def _reference_index(ks: xr.DataArray) -> int:
    severity = np.asarray(ks["severity"].values, dtype=float)
    unperturbed = np.flatnonzero(severity == 0)
    if unperturbed.size != 1:
        raise ValueError("class separability needs exactly one severity 0 (unperturbed) as reference")
    return int(unperturbed[0])


def _stack_samples(ks: xr.DataArray) -> xr.DataArray:
    """(sample, severity): every dim other than severity becomes one sample dim."""
    others = [dim for dim in ks.dims if dim != "severity"]
    if not others:
        return ks.expand_dims("sample").transpose("sample", "severity")
    return ks.stack(sample=others).transpose("sample", "severity")


def separability_drop_pvalues(ks: xr.DataArray) -> xr.DataArray:
    """p-value of a drop in separability from severity 0 to each severity, (severity,).

    ``ks`` holds one statistic per sample (observer, or annotator and observer) and severity. At
    each severity s > 0: ``scipy.stats.ks_2samp(ks0, ks_s, alternative='less', method='exact')``
    on the non-NaN values, as the release; NaN at severity 0 or where a sample is empty.
    """
    samples = _stack_samples(ks)
    reference = _reference_index(samples)
    values = samples.values
    unperturbed = values[:, reference]
    unperturbed = unperturbed[~np.isnan(unperturbed)]
    p_values = np.full(values.shape[1], np.nan)
    for s in range(values.shape[1]):  # a handful of severities; each test is exact and cheap
        perturbed = values[:, s][~np.isnan(values[:, s])]
        if s != reference and unperturbed.size and perturbed.size:
            p_values[s] = stats.ks_2samp(unperturbed, perturbed, alternative="less", method="exact").pvalue
    return xr.DataArray(p_values, dims=("severity",), coords={"severity": samples["severity"]},
                        name="p_separability_drop")


def separability_drop_upper(ks: xr.DataArray, level: float = EVIDENCE_LEVEL) -> xr.DataArray:
    """One-sided ``level`` upper bound of the mean drop in separability from severity 0, (severity,).

    Each sample (observer) gives a paired drop ks[severity 0] - ks[s]; the bound is
    mean + t(level, n - 1) * sd / sqrt(n) over the samples with both values (sd with ddof=1).
    NaN at severity 0 and where fewer than two samples have both values. A bound below a margin
    is evidence that the drop is smaller than the margin (:mod:`perceptiongap.analysis.margins`).
    """
    samples = _stack_samples(ks)
    reference = _reference_index(samples)
    values = samples.values
    bounds = np.full(values.shape[1], np.nan)
    for s in range(values.shape[1]):  # a handful of severities
        drops = values[:, reference] - values[:, s]
        drops = drops[~np.isnan(drops)]
        if s != reference and drops.size >= 2:
            sd = drops.std(ddof=1)
            bounds[s] = drops.mean() + stats.t.ppf(level, drops.size - 1) * sd / np.sqrt(drops.size)
    return xr.DataArray(bounds, dims=("severity",), coords={"severity": samples["severity"]},
                        name="separability_drop_upper")


def separability_summary(ks: xr.DataArray) -> pd.DataFrame:
    """Mean and sd (ddof=0, NaN ignored) over samples, the drop p-value and the drop's upper bound
    (:func:`separability_drop_upper`), one row per severity.

    Columns ``SEPARABILITY_COLUMNS``; every dim of ``ks`` other than ``severity`` is a sample dim.
    """
    samples = _stack_samples(ks).values
    with warnings.catch_warnings():  # all-NaN severities give NaN, which is the answer
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(samples, axis=0)
        sd = np.nanstd(samples, axis=0)
    return pd.DataFrame(
        {
            "severity_mm": np.asarray(ks["severity"].values, dtype=float),
            "separability_mean": mean,
            "separability_sd": sd,
            "p_separability_drop": separability_drop_pvalues(ks).values,
            "separability_drop_upper": separability_drop_upper(ks).values,
        }
    )
