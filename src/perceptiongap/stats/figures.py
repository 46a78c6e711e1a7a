"""Figures of the reader-study statistics, from their tables; each function returns a matplotlib ``Figure``.

- :func:`accuracy_figure`: sensitivity, specificity and AUC against severity, one panel column per
  subgroup, each observer group's mean over its observers ± 1 sd (``accuracy_summary``).
- :func:`error_consistency_figure`: error consistency (kappa) against severity per subgroup, the mean
  over human-human, human-network and network-network pairs with its bootstrap interval.

Severities are categories on the x axis, labelled in mm, as in the report's figures; every plotted
statistic is an ``errorbar`` series labelled by what it shows, so the numbers can be read back.
Files are written by :func:`perceptiongap.report.figures.save_figure`, as every figure of the report.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = ["accuracy_figure", "error_consistency_figure"]

_KIND_STYLES = {
    "human-human": {"colour": "#000000", "marker": "o", "linestyle": "-"},
    "human-network": {"colour": "#CC79A7", "marker": "s", "linestyle": "--"},
    "network-network": {"colour": "#0072B2", "marker": "^", "linestyle": ":"},
}
_STATISTICS = (("sensitivity", "sensitivity"), ("specificity", "specificity"), ("auc", "AUC (empirical)"))


def _subgroup_order(subgroups: Sequence[str]) -> list[str]:
    ends = ["merged", "all"]
    return [g for g in subgroups if g not in ends] + [g for g in ends if g in subgroups]


def _new_figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _severity_axis(axis, severities: Sequence[float]) -> None:
    from perceptiongap.report.figures import SEVERITY_AXIS_LABEL, severity_label

    axis.set_xticks(np.arange(len(severities)), [severity_label(s) for s in severities])
    axis.set_xlim(-0.6, len(severities) - 0.4)
    axis.set_xlabel(SEVERITY_AXIS_LABEL)


def accuracy_figure(summary: pd.DataFrame, *, operating_point: str | None = None, scheme: str = "entire",
                    colours: Mapping[str, str] | None = None):
    """Sensitivity, specificity (and AUC where any) against severity, per subgroup and observer group.

    ``summary``: :func:`~perceptiongap.stats.accuracy.accuracy_summary`. Humans are drawn at their
    own decisions, networks at ``operating_point`` (default: the readers' mean specificity if in the
    table, else the first one). ``colours``: observer group -> colour (the report passes its own, so
    that a group keeps its colour in every figure); default from the report's palette.
    """
    import matplotlib

    from perceptiongap.report.figures import STYLE, pretty
    from perceptiongap.report.palette import group_colours
    from perceptiongap.vocabulary import PAPER_OBSERVER_GROUPS

    annotator = summary["annotator"]  # empty, or NaN as read back from CSV
    rows = summary[(summary["scheme"] == scheme) & (annotator.isna() | (annotator.astype(str) == ""))]
    machine_points = [p for p in dict.fromkeys(rows.loc[rows["observer_kind"] == "machine", "operating_point"])]
    if operating_point is None:
        operating_point = ("readers_mean_specificity" if "readers_mean_specificity" in machine_points
                           else (machine_points[0] if machine_points else None))
    rows = rows[(rows["observer_kind"] == "human") | (rows["operating_point"] == operating_point)]
    subgroups = _subgroup_order(list(dict.fromkeys(rows["subgroup"])))
    severities = sorted(rows["severity_mm"].unique())
    statistics = [(column, label) for column, label in _STATISTICS if rows[f"{column}_mean"].notna().any()]
    present = list(dict.fromkeys(rows["observer_group"]))
    groups = [g for g in PAPER_OBSERVER_GROUPS if g in present] + [g for g in present if g not in PAPER_OBSERVER_GROUPS]
    colours = {**group_colours(groups), **(colours or {})}
    position = {s: k for k, s in enumerate(severities)}
    offsets = (np.arange(len(groups)) - (len(groups) - 1) / 2) * min(0.12, 0.6 / max(len(groups), 1))

    with matplotlib.rc_context(STYLE):
        figure = _new_figure(2.6 * max(len(subgroups), 1) + 0.6, 2.3 * max(len(statistics), 1) + 0.8)
        axes = figure.subplots(max(len(statistics), 1), max(len(subgroups), 1), squeeze=False, sharey="row")
        for column_index, subgroup in enumerate(subgroups):
            for row_index, (statistic, label) in enumerate(statistics):
                axis = axes[row_index, column_index]
                for offset, group in zip(offsets, groups):
                    series = rows[(rows["subgroup"] == subgroup) & (rows["observer_group"] == group)]
                    series = series[series[f"{statistic}_mean"].notna()].sort_values("severity_mm")
                    if series.empty:
                        continue
                    axis.errorbar(series["severity_mm"].map(position).to_numpy(dtype=float) + offset,
                                  series[f"{statistic}_mean"].to_numpy(dtype=float),
                                  yerr=series[f"{statistic}_sd"].fillna(0.0).to_numpy(dtype=float),
                                  color=colours[group], marker="o",
                                  markersize=3.5, linestyle="-", elinewidth=0.8, label=group)
                axis.set_ylim(-0.03, 1.03)
                _severity_axis(axis, severities)
                axis.set_ylabel(label)
                if row_index == 0:
                    axis.set_title(pretty(subgroup))
        handles, labels = [], []
        for axis in axes.ravel():
            for handle, name in zip(*axis.get_legend_handles_labels()):
                if name not in labels:
                    handles.append(handle)
                    labels.append(name)
        point = f"networks at {pretty(operating_point)}" if operating_point else "no networks"
        figure.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 6) or 1,
                      title=f"mean ± 1 sd over observers; readers at their own decisions, {point}")
    return figure


def error_consistency_figure(summary: pd.DataFrame, *, scheme: str = "entire"):
    """Mean error consistency (kappa) of human-human, human-network and network-network pairs per severity.

    ``summary``: the ``summary`` of :func:`~perceptiongap.stats.consistency.error_consistency_tables`;
    error bars are its bootstrap intervals.
    """
    import matplotlib

    from perceptiongap.report.figures import STYLE, pretty

    rows = summary[summary["scheme"] == scheme]
    subgroups = _subgroup_order(list(dict.fromkeys(rows["subgroup"])))
    severities = sorted(rows["severity_mm"].unique())
    position = {s: k for k, s in enumerate(severities)}
    kinds = [k for k in _KIND_STYLES if k in set(rows["pair_kind"])]
    offsets = (np.arange(len(kinds)) - (len(kinds) - 1) / 2) * 0.15
    with matplotlib.rc_context(STYLE):
        figure = _new_figure(2.8 * max(len(subgroups), 1) + 0.6, 3.2)
        axes = figure.subplots(1, max(len(subgroups), 1), squeeze=False, sharey="row")[0]
        for axis, subgroup in zip(axes, subgroups):
            axis.axhline(0.0, color="#888888", linewidth=0.6)
            for offset, kind in zip(offsets, kinds):
                series = rows[(rows["subgroup"] == subgroup) & (rows["pair_kind"] == kind)]
                series = series[series["kappa_mean"].notna()].sort_values("severity_mm")
                if series.empty:
                    continue
                mean = series["kappa_mean"].to_numpy(dtype=float)
                spread = np.vstack([mean - series["kappa_low"].to_numpy(), series["kappa_high"].to_numpy() - mean])
                style = _KIND_STYLES[kind]
                axis.errorbar(series["severity_mm"].map(position).to_numpy(dtype=float) + offset, mean,
                              yerr=np.nan_to_num(spread),
                              color=style["colour"], marker=style["marker"], linestyle=style["linestyle"],
                              markersize=3.5, elinewidth=0.8, label=kind)
            axis.set_title(pretty(subgroup))
            axis.set_ylabel("error consistency (Cohen's kappa)")
            _severity_axis(axis, severities)
        handles, labels = axes[0].get_legend_handles_labels()
        for axis in axes[1:]:
            for handle, name in zip(*axis.get_legend_handles_labels()):
                if name not in labels:
                    handles.append(handle)
                    labels.append(name)
        figure.legend(handles, labels, loc="outside lower center", ncols=3,
                      title="mean over pairs of observers on the breasts both saw; 95 % bootstrap interval")
    return figure
