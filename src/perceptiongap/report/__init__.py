"""Figures and the self-contained HTML report of a results folder.

``build_report(results_dir)`` renders ``figures/`` (PNG at 300 dpi and SVG) and ``report.html``
from the saved tables and posteriors; :mod:`perceptiongap.report.figures` has one function per
figure, each returning a matplotlib ``Figure``.

``perceptiongap.report`` is also the report stage: ``perceptiongap.report(results_dir)`` calls
:func:`perceptiongap.results.report`. (A package and a function of the same name cannot both be
attributes of ``perceptiongap``; this package is made callable instead, by giving the module object
a class with ``__call__``, which Python allows for modules.)
"""

import sys
import types

from perceptiongap.report.html import build_report

__all__ = ["build_report"]


class _ReportStage(types.ModuleType):
    def __call__(self, results, **options):
        """Run the report stage: see :func:`perceptiongap.results.report`."""
        from perceptiongap.results.stages import report

        return report(results, **options)


sys.modules[__name__].__class__ = _ReportStage
