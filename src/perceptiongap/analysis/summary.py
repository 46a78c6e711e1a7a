"""Tables of the perturbation study: one block per model variant, inference method and observer group.

Each fit (one model, one observer group, one inference method, one seed) gives predictive
confidence and class separability per subgroup and severity. Seeds of the same method are
combined by the median of each number, with the fraction of fits whose p-value is below 0.05.
Rows computed on observed predictions (inference ``observed``) have no model: ``model`` is
``none``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import arviz as az
import numpy as np
import pandas as pd

from perceptiongap.analysis.confidence import predictive_confidence
from perceptiongap.analysis.posterior import fit_key, posterior_cases
from perceptiongap.analysis.predictive import posterior_predictive
from perceptiongap.analysis.separability import class_separability, separability_summary
from perceptiongap.vocabulary import ANALYSED_SUBGROUPS, PAPER_OBSERVER_GROUPS

#: The columns of ``tables/perturbation_study.csv`` (and ``merged_subgroups.csv``).
PERTURBATION_COLUMNS = (
    "model", "inference", "observer_group", "subgroup", "severity_mm",
    "confidence_mean", "confidence_sd", "p_confidence_positive", "p_confidence_above_margin",
    "separability_mean", "separability_sd", "p_separability_drop", "separability_drop_upper",
    "fits", "frac_confidence_significant", "frac_separability_significant",
)
#: The columns of ``tables/merged_subgroups.csv``: ``merged_by`` is ``refit`` (the model refitted with
#: the subgroups merged), ``pooled`` (the release's way: the separate fit's draws pooled) or ``none``
#: (the observed rows, which use no model).
MERGED_COLUMNS = ("merged_by", *PERTURBATION_COLUMNS)
MERGED_BY = ("refit", "pooled", "none")
#: Canonical order of rows; names not listed here follow, alphabetically.
INFERENCE_ORDER = ("stan-advi", "advi", "nuts", "observed")
MODEL_ORDER = ("release", "label_specific", "independent", "observer_slopes")
SIGNIFICANCE_LEVEL = 0.05
#: The ``model`` of rows that no model produced (inference ``observed``).
NO_MODEL = "none"

_KEY = ["model", "inference", "observer_group", "subgroup", "severity_mm"]
_STATISTICS = ["confidence_mean", "confidence_sd", "p_confidence_positive", "p_confidence_above_margin",
               "separability_mean", "separability_sd", "p_separability_drop", "separability_drop_upper"]


def fit_table(posterior: az.InferenceData, subgroups: Sequence[str] = ANALYSED_SUBGROUPS) -> pd.DataFrame:
    """Confidence and separability of one fit, one row per (subgroup, severity).

    Columns: model, inference, observer_group, subgroup, severity_mm and the six statistics.
    """
    model, inference, observer_group = fit_key(posterior)
    cases = posterior_cases(posterior)
    confidence = predictive_confidence(posterior)
    predictive = posterior_predictive(posterior)
    separability = []
    for subgroup in subgroups:
        table = separability_summary(class_separability(predictive, cases.label, cases.subgroup, subgroup))
        table.insert(0, "subgroup", subgroup)
        separability.append(table)
    table = pd.concat(separability, ignore_index=True).merge(
        confidence, on=["subgroup", "severity_mm"], how="left", validate="one_to_one"
    )
    table.insert(0, "observer_group", observer_group)
    table.insert(0, "inference", inference)
    table.insert(0, "model", model)
    return table.loc[:, [*_KEY, *_STATISTICS]]


def pooled_fit_table(posterior: az.InferenceData, pooled: Sequence[str], name: str) -> pd.DataFrame:
    """The release's merged-subgroup analysis of one separate fit, as subgroup ``name``.

    Confidence from the draws of gamma of the ``pooled`` subgroups pooled into one sample
    (``predictive_confidence(..., pooled=...)``); separability from the separate fit's posterior
    predictive with the malignant breasts of every pooled subgroup as positives. Columns as
    :func:`fit_table`.
    """
    model, inference, observer_group = fit_key(posterior)
    cases = posterior_cases(posterior)
    confidence = predictive_confidence(posterior, pooled=pooled, pooled_name=name)
    subgroup = np.where(np.isin(np.asarray(cases.subgroup).astype(str), list(pooled)), name,
                        np.asarray(cases.subgroup).astype(str))
    separability = separability_summary(class_separability(posterior_predictive(posterior), cases.label, subgroup,
                                                            name))
    separability.insert(0, "subgroup", name)
    table = separability.merge(confidence, on=["subgroup", "severity_mm"], how="left", validate="one_to_one")
    table.insert(0, "observer_group", observer_group)
    table.insert(0, "inference", inference)
    table.insert(0, "model", model)
    return table.loc[:, [*_KEY, *_STATISTICS]]


def combine_fits(tables: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Median of each statistic over fits, with ``fits`` and the fractions of significant p-values.

    ``tables`` are per-fit tables of one inference method and observer group (e.g. from
    :func:`fit_table`, or observed rows with empty confidence columns). A fraction is NaN where
    no fit has a p-value (severity 0, or no confidence columns).
    """
    stacked = pd.concat(tables, ignore_index=True)
    if "model" not in stacked:
        stacked.insert(0, "model", NO_MODEL)
    for column in _STATISTICS:
        if column not in stacked:
            stacked[column] = np.nan
    grouped = stacked.groupby(_KEY, sort=False, dropna=False)
    combined = grouped[_STATISTICS].median()
    combined["fits"] = grouped.size()
    for p_column, fraction in (("p_confidence_positive", "frac_confidence_significant"),
                               ("p_separability_drop", "frac_separability_significant")):
        significant = (stacked[p_column] < SIGNIFICANCE_LEVEL).astype(float).where(stacked[p_column].notna())
        combined[fraction] = significant.groupby([stacked[k] for k in _KEY], sort=False, dropna=False).mean()
    return combined.reset_index().loc[:, list(PERTURBATION_COLUMNS)]


def summarise_fits(
    posteriors: Sequence[az.InferenceData], subgroups: Sequence[str] = ANALYSED_SUBGROUPS
) -> pd.DataFrame:
    """The perturbation-study rows of one model, observer group and inference method over its fits (seeds).

    Columns ``PERTURBATION_COLUMNS``; with several fits each statistic is the median over the fits.
    """
    if not posteriors:
        raise ValueError("summarise_fits needs at least one posterior")
    keys = {fit_key(posterior) for posterior in posteriors}
    if len(keys) > 1:
        raise ValueError(f"posteriors of different (model, inference, observer_group) cannot be combined: "
                         f"{sorted(keys)}")
    return combine_fits([fit_table(posterior, subgroups) for posterior in posteriors])


def _rank(values: pd.Series, order: Sequence[str]) -> pd.Series:
    known = {name: i for i, name in enumerate(order)}
    return values.map(lambda name: (known.get(name, len(known)), name))


def pooled_merged_table(posteriors: Iterable[az.InferenceData], pooled: Sequence[str], name: str) -> pd.DataFrame:
    """Rows of the release's merged analysis (:func:`pooled_fit_table`) of the separate fits, combined over
    seeds per (model, inference, observer group) as :func:`combine_fits` does. Columns ``PERTURBATION_COLUMNS``."""
    by_fit: dict[tuple[str, str, str], list[az.InferenceData]] = {}
    for posterior in posteriors:
        by_fit.setdefault(fit_key(posterior), []).append(posterior)
    blocks = [combine_fits([pooled_fit_table(posterior, pooled, name) for posterior in fits])
              for fits in by_fit.values()]
    return pd.concat(blocks, ignore_index=True) if blocks else pd.DataFrame(columns=list(PERTURBATION_COLUMNS))


def merged_subgroups_table(refit: pd.DataFrame, pooled: pd.DataFrame) -> pd.DataFrame:
    """``tables/merged_subgroups.csv``: the refit's rows (observed rows among them) and the pooled rows,
    with ``merged_by`` (:data:`MERGED_BY`). Columns ``MERGED_COLUMNS``."""
    refit = refit.assign(merged_by=np.where(refit["inference"] == "observed", "none", "refit"))
    table = pd.concat([refit, pooled.assign(merged_by="pooled")], ignore_index=True)
    order = table["merged_by"].map({name: i for i, name in enumerate(MERGED_BY)})
    model = _rank(table["model"], (*MODEL_ORDER, NO_MODEL))
    inference = _rank(table["inference"], INFERENCE_ORDER)
    table = table.assign(_model=model, _inference=inference, _by=order).sort_values(
        ["_model", "_inference", "_by"], kind="stable").drop(columns=["_model", "_inference", "_by"])
    return table.loc[:, list(MERGED_COLUMNS)].reset_index(drop=True)


def perturbation_study_table(
    posteriors: Iterable[az.InferenceData],
    observed: Iterable[pd.DataFrame] = (),
    *,
    subgroups: Sequence[str] = ANALYSED_SUBGROUPS,
    subgroup_names: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """The table ``tables/perturbation_study.csv``: every fit summarised, plus ``observed`` rows.

    ``posteriors`` may mix models, observer groups, inference methods and seeds: fits are grouped
    by their (model, inference, observer_group) attrs and combined with :func:`summarise_fits`.
    ``observed`` are tables from :func:`~perceptiongap.analysis.observed.observed_separability`
    (their confidence columns stay empty). ``subgroup_names`` renames subgroups in the output,
    e.g. ``{"microcalcifications+soft_tissue_lesions": "merged"}`` for ``merged_subgroups.csv``.
    Rows are ordered by model, inference, observer group, subgroup (as given) and severity.
    """
    by_fit: dict[tuple[str, str, str], list[az.InferenceData]] = {}
    for posterior in posteriors:
        by_fit.setdefault(fit_key(posterior), []).append(posterior)
    blocks = [summarise_fits(fits, subgroups) for fits in by_fit.values()]
    blocks += [combine_fits([table]) for table in observed]
    if not blocks:
        raise ValueError("perturbation_study_table needs at least one posterior or observed table")
    table = pd.concat(blocks, ignore_index=True)
    table = table.sort_values(
        _KEY,
        key=lambda column: {
            "model": lambda c: _rank(c, (*MODEL_ORDER, NO_MODEL)),
            "inference": lambda c: _rank(c, INFERENCE_ORDER),
            "observer_group": lambda c: _rank(c, PAPER_OBSERVER_GROUPS),
            "subgroup": lambda c: _rank(c, tuple(subgroups)),
            "severity_mm": lambda c: c,
        }[column.name](column),
        kind="stable",
    )
    if subgroup_names:
        table["subgroup"] = table["subgroup"].replace(dict(subgroup_names))
    table["fits"] = table["fits"].astype("int64")
    return table.reset_index(drop=True)
