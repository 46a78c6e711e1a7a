"""Analyses of a fitted posterior and of observed predictions (METHOD §6).

- :func:`predictive_confidence`: posterior of the severity effect gamma, with P(gamma > 0).
- :func:`posterior_predictive`: predicted probability for every observer x severity x breast.
- :func:`class_separability`, :func:`separability_drop_pvalues`, :func:`separability_summary`:
  KS separability of malignant vs non-malignant breasts and the one-sided test of its drop.
- :func:`observed_separability`: the same on a dense observer group's own predictions (no model).
- :func:`annotation_study`: separability with ROI-interior, ROI-exterior and entire-image filtering.
- :func:`summarise_fits`, :func:`perturbation_study_table`: the tables of the perturbation study;
  :func:`pooled_merged_table`, :func:`merged_subgroups_table`: the merged-subgroup table, refit
  and the release's pooled analysis side by side.
- :mod:`~perceptiongap.analysis.margins`: the margins of the "no effect" verdicts.
- :func:`merge_subgroups`: relabel subgroups as one, for the Simpson's-paradox refit.
"""

from perceptiongap.analysis.annotation import ANNOTATION_COLUMNS, annotation_study
from perceptiongap.analysis.confidence import predictive_confidence, probability_positive
from perceptiongap.analysis.ks import ks_statistic
from perceptiongap.analysis.observed import observed_predictions, observed_separability
from perceptiongap.analysis.predictive import mean_sigmoid, posterior_predictive
from perceptiongap.analysis.separability import (
    class_separability,
    separability_drop_pvalues,
    separability_drop_upper,
    separability_summary,
)
from perceptiongap.analysis.subgroups import merge_subgroups, merged_subgroup_name
from perceptiongap.analysis.summary import (
    MERGED_COLUMNS,
    PERTURBATION_COLUMNS,
    combine_fits,
    fit_table,
    merged_subgroups_table,
    perturbation_study_table,
    pooled_fit_table,
    pooled_merged_table,
    summarise_fits,
)

__all__ = [
    "ANNOTATION_COLUMNS",
    "MERGED_COLUMNS",
    "PERTURBATION_COLUMNS",
    "annotation_study",
    "class_separability",
    "combine_fits",
    "fit_table",
    "ks_statistic",
    "mean_sigmoid",
    "merge_subgroups",
    "merged_subgroup_name",
    "merged_subgroups_table",
    "observed_predictions",
    "observed_separability",
    "perturbation_study_table",
    "pooled_fit_table",
    "pooled_merged_table",
    "posterior_predictive",
    "predictive_confidence",
    "probability_positive",
    "separability_drop_pvalues",
    "separability_drop_upper",
    "separability_summary",
    "summarise_fits",
]
