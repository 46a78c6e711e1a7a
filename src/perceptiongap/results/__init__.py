"""The results folder: its layout, its record (``run.json``), what it holds, and the stages that fill it.

- :mod:`~perceptiongap.results.layout`: where each output lives (:class:`ResultsFolder`, :class:`FitJob`).
- :mod:`~perceptiongap.results.record`: ``run.json`` (settings, inputs' SHA-256, planned fits, outputs).
- :mod:`~perceptiongap.results.store`: reading and writing the study, posteriors and tables.
- :mod:`~perceptiongap.results.fitting`: every fit of a study, validated up front, run side by side.
- :mod:`~perceptiongap.results.stages`: :func:`fit`, :func:`analyse`, :func:`report`, :func:`reproduce`,
  the functions behind the commands of the same names.
"""

from perceptiongap.results.layout import FitJob, ResultsFolder
from perceptiongap.results.record import RunRecord, read_run_record
from perceptiongap.results.stages import analyse, fit, parse_inference, report, reproduce
from perceptiongap.results.store import Results, read_conclusions, read_results

__all__ = [
    "FitJob",
    "Results",
    "ResultsFolder",
    "RunRecord",
    "analyse",
    "fit",
    "parse_inference",
    "read_conclusions",
    "read_results",
    "read_run_record",
    "report",
    "reproduce",
]
