"""The annotation study (METHOD §6): class separability when only the ROI interior, only the ROI
exterior, or the entire image is filtered, from the networks' observed predictions (no model).

For the ROI schemes each (annotator, training seed) pair gives one statistic; for the entire image
each seed gives one, restricted to the exams that were annotated. Mean, sd (ddof=0) and the
one-sided drop p-values are taken over those statistics.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from perceptiongap.analysis.observed import observed_predictions
from perceptiongap.analysis.separability import class_separability, separability_summary
from perceptiongap.errors import InputError
from perceptiongap.formatting import plain
from perceptiongap.vocabulary import ANALYSED_SUBGROUPS, ROI_SCHEMES

ANNOTATION_SCHEMES = (*ROI_SCHEMES, "entire")
ANNOTATION_COLUMNS = (
    "observer_group", "subgroup", "scheme", "severity_mm", "separability_mean", "separability_sd",
    "p_separability_drop",
)


def annotation_study(
    observations: pd.DataFrame,
    cases: pd.DataFrame,
    *,
    observer_groups: Sequence[str] | None = None,
    subgroups: Sequence[str] = ANALYSED_SUBGROUPS,
    source: str = "observations",
) -> pd.DataFrame:
    """Separability per observer group, subgroup, scheme and severity (columns ``ANNOTATION_COLUMNS``).

    ``observer_groups`` defaults to every group with ROI-scheme observations, in order of first
    appearance. The entire-image statistics of a group use its ``entire`` observations of the
    exams that appear in its ROI-scheme observations.
    """
    roi_rows = observations[observations["scheme"].isin(ROI_SCHEMES)]
    if observer_groups is None:
        observer_groups = list(pd.unique(roi_rows["observer_group"].astype(str)))
    if not len(observer_groups):
        raise InputError("no observations with scheme roi_interior or roi_exterior", source=source)
    tables = []
    for group in observer_groups:
        annotated_exams = pd.unique(roi_rows.loc[roi_rows["observer_group"] == group, "exam"].astype(str))
        if not len(annotated_exams):
            raise InputError(f"observer_group {group!r} has no ROI-scheme observations", source=source)
        predictions = {
            scheme: observed_predictions(observations, cases, group, scheme, exams=annotated_exams, source=source)
            for scheme in ANNOTATION_SCHEMES
        }
        for scheme, prediction in predictions.items():
            missing = set(annotated_exams) - set(prediction["exam"].values)
            if missing:
                raise InputError(
                    f"observer_group {group!r}, scheme {scheme!r}: no predictions for annotated exam "
                    f"{plain(sorted(missing)[0])!r}",
                    source=source,
                )
        for subgroup in subgroups:
            for scheme, prediction in predictions.items():
                ks = class_separability(prediction, prediction["label"], prediction["subgroup"], subgroup)
                table = separability_summary(ks)
                table.insert(0, "scheme", scheme)
                table.insert(0, "subgroup", subgroup)
                table.insert(0, "observer_group", group)
                tables.append(table)
    return pd.concat(tables, ignore_index=True).loc[:, list(ANNOTATION_COLUMNS)]
