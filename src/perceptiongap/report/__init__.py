"""Figures and the self-contained HTML report of a results folder.

``build_report(results_dir)`` renders ``figures/`` (PNG at 300 dpi and SVG) and ``report.html``
from the saved tables and posteriors; :mod:`perceptiongap.report.figures` has one function per
figure, each returning a matplotlib ``Figure``.
"""

from perceptiongap.report.html import build_report

__all__ = ["build_report"]
