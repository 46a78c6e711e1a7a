"""Every table of a study's analysis from its Observations, Cases and posteriors (no file is read or written).

``study_tables`` gives ``perturbation_study`` (every fit summarised, plus ``observed`` rows for
dense machine groups), ``merged_subgroups`` (the merged refits, and the release's pooling of the
separate fits, told apart by ``merged_by``), ``annotation_study`` (when
ROI-scheme observations exist), ``fits``, ``conclusions`` (the paper's, METHOD §7, judged under
each model variant), ``model_comparison`` (PSIS-LOO and marginal likelihood per observer group),
``ppc`` (posterior predictive checks of class separability) and ``separability_effects`` (the
label-specific model's delta). Every table has a ``model`` column.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import arviz as az
import pandas as pd

from perceptiongap.analysis.annotation import annotation_study
from perceptiongap.analysis.comparison import model_comparison_table
from perceptiongap.analysis.conclusions import conclusions_table, evaluate_conclusions, observer_kinds, observer_roles
from perceptiongap.analysis.fits import fits_table
from perceptiongap.analysis.observed import observed_separability
from perceptiongap.analysis.ppc import ppc_table
from perceptiongap.analysis.separability_effects import separability_effects_table
from perceptiongap.analysis.subgroups import merge_subgroups
from perceptiongap.analysis.summary import (
    NO_MODEL,
    merged_subgroups_table,
    perturbation_study_table,
    pooled_merged_table,
)
from perceptiongap.vocabulary import ANALYSED_SUBGROUPS, MERGED_SUBGROUP, ROI_SCHEMES

__all__ = ["for_model", "study_tables", "table_models"]


def table_models(table: pd.DataFrame) -> list[str]:
    """The model variants of a table with a ``model`` column, in table order (``none`` left out)."""
    if "model" not in table:
        return []
    return [str(m) for m in pd.unique(table["model"].dropna()) if str(m) != NO_MODEL]


def for_model(tables: Mapping[str, pd.DataFrame], model: str) -> dict[str, pd.DataFrame]:
    """The tables with only the rows of ``model`` and the rows no model produced (``observed``)."""
    selected = {}
    for name, table in tables.items():
        if "model" in table:
            keep = table["model"].astype(str).isin([model, NO_MODEL])
            table = table[keep].reset_index(drop=True)
        selected[name] = table
    return selected


def study_tables(
    observations: pd.DataFrame,
    cases: pd.DataFrame,
    separate: Sequence[az.InferenceData],
    merged: Sequence[az.InferenceData] = (),
    *,
    subgroups: Sequence[str] = ANALYSED_SUBGROUPS,
    merged_subgroups: Sequence[str] | None = ANALYSED_SUBGROUPS,
    dense_groups: Sequence[str] = (),
    failures: Sequence[dict] = (),
    source: str = "observations",
) -> dict[str, pd.DataFrame]:
    """The tables of one study, keyed by name (see the module docstring).

    ``separate`` and ``merged`` are the posteriors of the separate and merged-subgroup fits;
    ``subgroups`` the analysed subgroups, ``merged_subgroups`` those the merged fits merged;
    ``dense_groups`` the observer groups whose own predictions also get ``observed`` rows;
    ``failures`` the records of fits that failed (rows of ``fits`` with their reason as a warning).
    """
    tables = {}
    observed = [observed_separability(observations, cases, group, subgroups=subgroups, source=source)
                for group in dense_groups]
    tables["perturbation_study"] = perturbation_study_table(separate, observed, subgroups=subgroups)
    if merged:
        merged_cases = merge_subgroups(cases, merged_subgroups, MERGED_SUBGROUP)
        merged_observed = [observed_separability(observations, merged_cases, group, subgroups=(MERGED_SUBGROUP,),
                                                 source=source) for group in dense_groups]
        refit = perturbation_study_table(merged, merged_observed, subgroups=(MERGED_SUBGROUP,))
        pooled = pooled_merged_table(separate, merged_subgroups, MERGED_SUBGROUP)
        tables["merged_subgroups"] = merged_subgroups_table(refit, pooled)
    if observations["scheme"].isin(ROI_SCHEMES).any():
        tables["annotation_study"] = annotation_study(observations, cases, subgroups=subgroups, source=source)
    tables["fits"] = fits_table([*separate, *merged], failures,
                                [tuple(subgroups)] * len(separate) + [(MERGED_SUBGROUP,)] * len(merged))
    judged = []
    for model in table_models(tables["perturbation_study"]):
        own = for_model(tables, model)
        conclusions = conclusions_table(evaluate_conclusions(own, **observer_roles(observer_kinds(own)),
                                                             merged_subgroups=tuple(merged_subgroups or ())))
        conclusions.insert(0, "model", model)
        judged.append(conclusions)
    tables["conclusions"] = pd.concat(judged, ignore_index=True)
    tables["model_comparison"] = model_comparison_table(separate)
    tables["ppc"] = ppc_table(separate, subgroups)
    tables["separability_effects"] = separability_effects_table(separate, subgroups)
    return tables
