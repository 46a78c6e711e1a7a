"""Reader-study statistics: per-observer accuracy, MRMC analysis, error consistency, and exports.

- :func:`accuracy_table`, :func:`accuracy_summary`: sensitivity, specificity and AUC per observer,
  severity, scheme and subgroup, with case-bootstrap intervals (:mod:`~perceptiongap.stats.accuracy`).
- :func:`dual_modality_orh`, :func:`model_vs_readers_orh`: Obuchowski-Rockette-Hillis comparisons
  of AUCs with random readers and cases (:mod:`~perceptiongap.stats.mrmc`).
- :func:`error_consistency`, :func:`error_consistency_tables`: Geirhos et al.'s kappa of two
  observers' errors, and its table over every pair of observers
  (:mod:`~perceptiongap.stats.consistency`).
- :func:`write_imrmc`, :func:`write_rjafroc`: the study in iMRMC's and RJafroc's input formats
  (:mod:`~perceptiongap.stats.exports`).
- :func:`accuracy_figure`, :func:`error_consistency_figure`: their figures
  (:mod:`~perceptiongap.stats.figures`).
"""

from perceptiongap.stats.accuracy import ACCURACY_COLUMNS, ACCURACY_SUMMARY_COLUMNS, accuracy_summary, accuracy_table
from perceptiongap.stats.consistency import (
    CONSISTENCY_PAIR_COLUMNS,
    CONSISTENCY_SUMMARY_COLUMNS,
    ErrorConsistency,
    ErrorConsistencyTables,
    error_consistency,
    error_consistency_tables,
)
from perceptiongap.stats.mrmc import ORHResult, crossed_scores, dual_modality_orh, model_vs_readers_orh
from perceptiongap.stats.operating_point import (
    DEFAULT_OPERATING_POINTS,
    OperatingPoint,
    default_operating_points,
    parse_operating_points,
)

__all__ = [
    "ACCURACY_COLUMNS",
    "ACCURACY_SUMMARY_COLUMNS",
    "CONSISTENCY_PAIR_COLUMNS",
    "CONSISTENCY_SUMMARY_COLUMNS",
    "DEFAULT_OPERATING_POINTS",
    "ErrorConsistency",
    "ErrorConsistencyTables",
    "ORHResult",
    "OperatingPoint",
    "accuracy_summary",
    "accuracy_table",
    "crossed_scores",
    "default_operating_points",
    "dual_modality_orh",
    "error_consistency",
    "error_consistency_tables",
    "model_vs_readers_orh",
    "parse_operating_points",
]
