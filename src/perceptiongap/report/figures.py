"""The report's figures: one function per figure, each taking tables (or posterior summaries) and
returning a matplotlib ``Figure``.

Every plotted statistic is an ``errorbar`` series whose label names what it shows (an observer
group, a scheme or an inference method), on axes whose label names the panel; severities are
categories on the x axis, labelled in mm. So the numbers behind a figure can be read back from
its artists. p-values are printed above each panel, one row per series, in the series' colour.

Figures are built on a bare Agg canvas (no pyplot): no GUI backend, no global figure state.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from perceptiongap.formatting import format_p_value
from perceptiongap.report.palette import INFERENCE_STYLES, SCHEME_STYLES, group_colours, inference_style
from perceptiongap.vocabulary import FILTERED_SUFFIX

SEVERITY_AXIS_LABEL = "filter severity: wavelength 1/D0 (mm)"
CONFIDENCE_AXIS_LABEL = "predictive confidence E[γ | D] (log-odds)"
SEPARABILITY_AXIS_LABEL = "class separability (KS statistic, 0-1)"
SIGNIFICANCE_LEVEL = 0.05
#: Resolution of every figure's PNG file.
PNG_DPI = 300

STYLE = {
    "font.family": "DejaVu Sans",
    "font.size": 8,
    "axes.titlesize": 9,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.grid.axis": "y",
    "grid.color": "#dddddd",
    "grid.linewidth": 0.5,
    "lines.linewidth": 1.0,
    "errorbar.capsize": 2,
    # Deterministic SVG ids, so the same tables give the same files.
    "svg.hashsalt": "perceptiongap",
}

def _styled(function: Callable) -> Callable:
    """Build the figure under :data:`STYLE` (rcParams are read when artists are created)."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        import matplotlib

        with matplotlib.rc_context(STYLE):
            return function(*args, **kwargs)

    return wrapper


def _new_figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def severity_label(severity: float) -> str:
    return f"{severity:g}"


def pretty(name: str) -> str:
    """'soft_tissue_lesions' -> 'soft tissue lesions'."""
    return str(name).replace("_", " ")


# --------------------------------------------------------------------------------------------
# Which groups go together


def architectures(observer_kinds: Mapping[str, str]) -> list[tuple[str, list[str]]]:
    """(architecture, groups to show) for every machine group whose name does not end in ``_filtered``.

    ``observer_kinds`` maps observer group -> ``human`` / ``machine`` (``tables/fits.csv``). The
    groups shown are every human group, the architecture and its ``<name>_filtered`` partner.
    """
    humans = [g for g, kind in observer_kinds.items() if kind == "human"]
    machines = [g for g, kind in observer_kinds.items() if kind == "machine"]
    result = []
    for machine in machines:
        if machine.endswith(FILTERED_SUFFIX):
            continue
        partner = machine + FILTERED_SUFFIX
        result.append((machine, [*humans, machine, *([partner] if partner in machines else [])]))
    orphans = [m for m in machines if m.endswith(FILTERED_SUFFIX) and m[: -len(FILTERED_SUFFIX)] not in machines]
    result += [(m, [*humans, m]) for m in orphans]
    if not machines and humans:
        result.append((humans[0], humans))
    return result


# --------------------------------------------------------------------------------------------
# Drawing helpers


def _offsets(n_series: int) -> np.ndarray:
    """Horizontal dodge of ``n_series`` series within one severity category."""
    step = min(0.14, 0.6 / max(n_series, 1))
    return (np.arange(n_series) - (n_series - 1) / 2) * step


def _category_axis(axis, severities: Sequence[float]) -> None:
    axis.set_xticks(np.arange(len(severities)), [severity_label(s) for s in severities])
    axis.set_xlim(-0.6, len(severities) - 0.4)
    axis.set_xlabel(SEVERITY_AXIS_LABEL)


def _series(axis, positions, mean, sd, *, colour, marker="o", linestyle="-", filled=True, label, offset=0.0):
    """One errorbar series (mean +- 1 sd) at category ``positions``; NaN means are left out."""
    mean = np.asarray(mean, dtype=float)
    sd = np.nan_to_num(np.asarray(sd, dtype=float))
    keep = np.isfinite(mean)
    positions = np.asarray(positions, dtype=float)[keep] + offset
    return axis.errorbar(
        positions, mean[keep], yerr=sd[keep], color=colour, marker=marker, markersize=4, linestyle=linestyle,
        markerfacecolor=colour if filled else "white", markeredgecolor=colour, ecolor=colour, elinewidth=0.8,
        label=label,
    )


#: Heights (inches) of one p-value row above a panel, and of a panel's plotting area.
_P_ROW_INCHES = 0.2  # with 7.5 pt text: a row stays readable when the figure is shrunk to a page's width
_PANEL_INCHES = 3.0


def _panel_grid(figure, n_rows: int, n_cols: int, p_rows: int, **subplot_options):
    """(axes, p_axes): ``n_rows`` x ``n_cols`` panels, each under a strip for ``p_rows`` p-value rows.

    The strip (axis off) shares the panel's x axis, so p-values sit over their severity.
    """
    strip = _P_ROW_INCHES * (p_rows + 2)
    grid = figure.add_gridspec(n_rows, n_cols)
    axes = np.empty((n_rows, n_cols), dtype=object)
    p_axes = np.empty((n_rows, n_cols), dtype=object)
    for row in range(n_rows):
        for column in range(n_cols):
            inner = grid[row, column].subgridspec(2, 1, height_ratios=[strip, _PANEL_INCHES], hspace=0.0)
            share = {"sharey": axes[row, 0]} if subplot_options.get("sharey") and column else {}
            axes[row, column] = figure.add_subplot(inner[1], **share)
            p_axes[row, column] = figure.add_subplot(inner[0], sharex=axes[row, column])
            p_axes[row, column].set_ylim(0, p_rows + 2)
            p_axes[row, column].axis("off")
    return axes, p_axes


def _figure_height(n_rows: int, p_rows: int, extra: float = 1.1) -> float:
    return n_rows * (_PANEL_INCHES + _P_ROW_INCHES * (p_rows + 2) + 0.5) + extra


def _pvalue_rows(p_axis, rows: Sequence[tuple], heading: str, title: str, panel: str) -> None:
    """Print rows (label, colour, positions, p-values[, marker, filled]) in the strip ``p_axis`` over a panel.

    The first row is the top one. Each p-value is a text artist with gid ``p|<panel>|<series label>``
    at its severity category.
    """
    from matplotlib.transforms import blended_transform_factory

    top = p_axis.get_ylim()[1]
    left = blended_transform_factory(p_axis.transAxes, p_axis.transData)
    p_axis.text(0.0, top - 0.5, title, transform=left, ha="left", va="center", fontsize=9, fontweight="bold")
    if rows:
        p_axis.text(0.0, top - 1.5, heading, transform=left, ha="left", va="center", fontsize=7.5, style="italic",
                    color="#444444")
    for index, (label, colour, positions, pvalues, *marker) in enumerate(rows):
        if marker:  # the series' marker in the first column (severity 0 never has a p-value)
            symbol, filled = marker
            p_axis.plot([0], [top - 2.5 - index], marker=symbol, markersize=4.5, color=colour,
                        markerfacecolor=colour if filled else "white", linestyle="none")
        for position, p in zip(positions, pvalues):
            text = format_p_value(p, compact=True)
            if text:
                p_axis.text(position, top - 2.5 - index, text, ha="center", va="center", fontsize=7.5, color=colour,
                            gid=f"p|{panel}|{label}")


def _legend_columns(figure, columns: Sequence[Sequence[str | None]], handles: Mapping[str, object]) -> None:
    """A figure legend below the panels laid out in ``columns`` of labels (None leaves a gap)."""
    from matplotlib.lines import Line2D

    depth = max(len(column) for column in columns)
    if all(column[-1] is None for column in columns):
        depth = 1
    blank = Line2D([], [], linestyle="none")
    flat = [label for column in columns for label in (list(column) + [None] * depth)[:depth]]
    figure.legend([handles[label] if label else blank for label in flat], [label or "" for label in flat],
                  loc="outside lower center", ncols=len(columns), frameon=False)


def _rows(table: pd.DataFrame, **where) -> pd.DataFrame:
    mask = np.ones(len(table), dtype=bool)
    for column, value in where.items():
        mask &= (table[column] == value).to_numpy()
    return table[mask]


def _on_grid(rows: pd.DataFrame, severities: Sequence[float], column: str) -> np.ndarray:
    """``column`` of ``rows`` at each of ``severities`` (NaN where missing)."""
    values = rows.set_index("severity_mm")[column]
    return values.reindex(list(severities)).to_numpy(dtype=float)


def observed_label(group: str) -> str:
    return f"{group}: observed predictions (no model)"


# --------------------------------------------------------------------------------------------
# Perturbation study (paper Fig. 4) and merged subgroups (paper Fig. 6)


@_styled
def perturbation_figure(
    table: pd.DataFrame,
    *,
    inference: str,
    groups: Sequence[str],
    subgroup: str,
    colours: Mapping[str, str] | None = None,
    show_observed: bool = True,
    title: str | None = None,
):
    """Confidence (left) and separability (right) of ``groups`` on ``subgroup`` under ``inference``.

    ``table`` has the columns of ``tables/perturbation_study.csv`` (or ``merged_subgroups.csv``).
    Series are labelled by observer group; with ``show_observed`` the separability panel also
    shows the ``observed`` rows (hollow diamonds, dotted) of groups that have them. Axes labels:
    ``confidence`` and ``separability``.
    """
    colours = dict(colours or group_colours(groups))
    rows = table[(table["subgroup"] == subgroup) & table["observer_group"].isin(groups)]
    severities = sorted(rows["severity_mm"].unique())
    positions = np.arange(len(severities))
    model = [g for g in groups if not _rows(rows, inference=inference, observer_group=g).empty]
    observed = [g for g in groups if show_observed and not _rows(rows, inference="observed", observer_group=g).empty]

    p_rows_shown = len(model) + len(observed)
    figure = _new_figure(9.0, _figure_height(1, p_rows_shown, extra=0.9 + 0.2 * bool(observed)))
    axes, p_axes = _panel_grid(figure, 1, 2, p_rows_shown)
    (confidence_axis, separability_axis), (confidence_strip, separability_strip) = axes[0], p_axes[0]
    confidence_axis.set_label("confidence")
    separability_axis.set_label("separability")

    offsets = _offsets(len(model))
    p_rows = []
    for offset, group in zip(offsets, model):
        group_rows = _rows(rows, inference=inference, observer_group=group)
        _series(confidence_axis, positions, _on_grid(group_rows, severities, "confidence_mean"),
                _on_grid(group_rows, severities, "confidence_sd"), colour=colours[group], label=group, offset=offset)
        p_rows.append((group, colours[group], positions, _on_grid(group_rows, severities, "p_confidence_positive"),
                       "o", True))
    confidence_axis.axhline(0.0, color="#888888", linewidth=0.6, zorder=0)
    _category_axis(confidence_axis, severities)
    confidence_axis.set_ylabel(CONFIDENCE_AXIS_LABEL)
    _pvalue_rows(confidence_strip, p_rows, "P(γ > 0 | D), one row per group", "predictive confidence", "confidence")

    series = [(g, inference) for g in model] + [(g, "observed") for g in observed]
    offsets = _offsets(len(series))
    p_rows = []
    for offset, (group, source) in zip(offsets, series):
        group_rows = _rows(rows, inference=source, observer_group=group)
        style = INFERENCE_STYLES["observed"] if source == "observed" else {"marker": "o", "linestyle": "-",
                                                                           "filled": True}
        label = observed_label(group) if source == "observed" else group
        _series(separability_axis, positions, _on_grid(group_rows, severities, "separability_mean"),
                _on_grid(group_rows, severities, "separability_sd"), colour=colours[group], label=label,
                offset=offset, **style)
        p_rows.append((label, colours[group], positions, _on_grid(group_rows, severities, "p_separability_drop"),
                       style["marker"], style["filled"]))
    _category_axis(separability_axis, severities)
    separability_axis.set_ylabel(SEPARABILITY_AXIS_LABEL)
    _pvalue_rows(separability_strip, p_rows, "p of a drop from severity 0 (one-sided KS test), one row per series",
                 "class separability", "separability")

    # One legend column per group: its model series above its observed series (if any).
    by_label = dict(zip(*reversed(separability_axis.get_legend_handles_labels())))
    columns = [[group, observed_label(group) if group in observed else None] for group in model]
    columns += [[None, observed_label(group)] for group in observed if group not in model]
    _legend_columns(figure, columns, by_label)
    if title:
        figure.suptitle(title, fontsize=10, x=0.01, ha="left")
    return figure


# --------------------------------------------------------------------------------------------
# Annotation study (paper Fig. 5)


@_styled
def annotation_figure(
    annotation: pd.DataFrame,
    *,
    group: str,
    subgroups: Sequence[str] | None = None,
    title: str | None = None,
):
    """Separability of ``group`` with the entire image, the ROI exterior or interior filtered.

    ``annotation`` has the columns of ``tables/annotation_study.csv``. One panel per subgroup
    (axes label = subgroup), one series per scheme (label = scheme).
    """
    rows = annotation[annotation["observer_group"] == group]
    subgroups = list(subgroups or pd.unique(rows["subgroup"]))
    severities = sorted(rows["severity_mm"].unique())
    positions = np.arange(len(severities))
    schemes = [s for s in SCHEME_STYLES if s in set(rows["scheme"])]

    figure = _new_figure(4.6 * len(subgroups), _figure_height(1, len(schemes)))
    axes, p_axes = _panel_grid(figure, 1, len(subgroups), len(schemes), sharey=True)
    axes, p_axes = axes[0], p_axes[0]
    for axis, strip, subgroup in zip(axes, p_axes, subgroups):
        axis.set_label(subgroup)
        p_rows = []
        for offset, scheme in zip(_offsets(len(schemes)), schemes):
            style = SCHEME_STYLES[scheme]
            scheme_rows = _rows(rows, subgroup=subgroup, scheme=scheme)
            _series(axis, positions, _on_grid(scheme_rows, severities, "separability_mean"),
                    _on_grid(scheme_rows, severities, "separability_sd"), colour=style["colour"],
                    marker=style["marker"], linestyle=style["linestyle"], label=scheme, offset=offset)
            p_rows.append((scheme, style["colour"], positions, _on_grid(scheme_rows, severities, "p_separability_drop"),
                           style["marker"], True))
        _category_axis(axis, severities)
        _pvalue_rows(strip, p_rows, "p of a drop from severity 0 (one-sided KS test), one row per scheme",
                     pretty(subgroup), subgroup)
    axes[0].set_ylabel(SEPARABILITY_AXIS_LABEL)
    handles, labels = axes[0].get_legend_handles_labels()
    labels = [SCHEME_STYLES[label]["label"] for label in labels]
    figure.legend(handles, labels, loc="outside lower center", ncols=len(labels), frameon=False)
    if title:
        figure.suptitle(title, fontsize=10, x=0.01, ha="left")
    return figure


# --------------------------------------------------------------------------------------------
# Inference methods side by side


def significance_disagreements(
    rows: pd.DataFrame, methods: Sequence[str], severities: Sequence[float], column: str
) -> np.ndarray:
    """Boolean per severity: do ``methods`` disagree on ``column`` < 0.05 (all present, finite)?"""
    calls = []
    for method in methods:
        values = _on_grid(_rows(rows, inference=method), severities, column)
        calls.append(np.where(np.isfinite(values), values < SIGNIFICANCE_LEVEL, np.nan))
    calls = np.asarray(calls)
    if len(calls) < 2:
        return np.zeros(len(severities), dtype=bool)
    finite = np.isfinite(calls).all(axis=0)
    return finite & (calls.max(axis=0) != calls.min(axis=0))


@_styled
def inference_comparison_figure(
    table: pd.DataFrame,
    *,
    subgroup: str,
    groups: Sequence[str],
    methods: Sequence[str],
    colours: Mapping[str, str] | None = None,
    title: str | None = None,
):
    """Each observer group (rows) under every inference method: confidence (left), separability (right).

    Series are labelled by inference method (``observed`` too in the separability panel, where the
    table has it); axes labels are ``<group>|confidence`` and ``<group>|separability``. Severities
    where the model-based methods disagree on significance (p < 0.05) are shaded.
    """
    colours = dict(colours or group_colours(groups))
    rows = table[table["subgroup"] == subgroup]
    groups = [g for g in groups if not _rows(rows, observer_group=g).empty]
    severities = sorted(rows["severity_mm"].unique())
    positions = np.arange(len(severities))

    p_rows_shown = len(methods) + 1
    figure = _new_figure(9.0, _figure_height(len(groups), p_rows_shown, extra=0.8))
    axes, p_axes = _panel_grid(figure, len(groups), 2, p_rows_shown)
    for row, group in enumerate(groups):
        group_rows = _rows(rows, observer_group=group)
        present = [m for m in methods if not _rows(group_rows, inference=m).empty]
        has_observed = not _rows(group_rows, inference="observed").empty
        for column, (panel, mean, sd, p_column, heading) in enumerate((
            ("confidence", "confidence_mean", "confidence_sd", "p_confidence_positive", "P(γ > 0 | D)"),
            ("separability", "separability_mean", "separability_sd", "p_separability_drop", "p of a drop"),
        )):
            axis = axes[row, column]
            axis.set_label(f"{group}|{panel}")
            shown = present + (["observed"] if panel == "separability" and has_observed else [])
            for position in positions[significance_disagreements(group_rows, present, severities, p_column)]:
                axis.axvspan(position - 0.5, position + 0.5, color="#f3e3b5", zorder=0, linewidth=0)
            p_rows = []
            for offset, method in zip(_offsets(len(shown)), shown):
                method_rows = _rows(group_rows, inference=method)
                style = inference_style(method)
                _series(axis, positions, _on_grid(method_rows, severities, mean), _on_grid(method_rows, severities, sd),
                        colour=colours[group], marker=style["marker"], linestyle=style["linestyle"],
                        filled=style["filled"], label=method, offset=offset)
                p_rows.append((method, colours[group], positions, _on_grid(method_rows, severities, p_column),
                               style["marker"], style["filled"]))
            if panel == "confidence":
                axis.axhline(0.0, color="#888888", linewidth=0.6, zorder=0)
            _category_axis(axis, severities)
            axis.set_ylabel(CONFIDENCE_AXIS_LABEL if panel == "confidence" else SEPARABILITY_AXIS_LABEL, fontsize=7)
            _pvalue_rows(p_axes[row, column], p_rows, heading + " (rows: " + ", ".join(shown) + ")",
                         f"{group}: {'predictive confidence' if panel == 'confidence' else 'class separability'}",
                         f"{group}|{panel}")
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    styles = [inference_style(m) for m in [*methods, "observed"]]
    handles = [Line2D([], [], color="#444444", marker=style["marker"], linestyle=style["linestyle"],
                      markerfacecolor="#444444" if style["filled"] else "white") for style in styles]
    labels = [*methods, "observed predictions (no model)"]
    handles.append(Patch(color="#f3e3b5"))
    labels.append("methods disagree on p < 0.05")
    figure.legend(handles, labels, loc="outside lower center", ncols=len(labels), frameon=False)
    if title:
        figure.suptitle(title, fontsize=10, x=0.01, ha="left")
    return figure


# --------------------------------------------------------------------------------------------
# Inference diagnostics


def elbo_traces(attrs: Sequence[Mapping]) -> pd.DataFrame:
    """Long table of the ELBO traces kept by ADVI fits: one row per evaluation.

    ``attrs`` are posteriors' attributes (``posterior.posterior.attrs``); fits without an ELBO
    trace are skipped. Columns: inference, observer_group, merged, seed, iteration, elbo,
    stopped_at (the fit's last iteration), tolerance (``tol_rel_obj``, stan-advi's; NaN otherwise), converged.
    """
    frames = []
    for fit in attrs:
        if "elbo" not in fit or "elbo_iteration" not in fit:
            continue
        iteration = np.atleast_1d(np.asarray(fit["elbo_iteration"], dtype=int))
        frames.append(pd.DataFrame({
            "inference": str(fit["inference"]),
            "observer_group": str(fit["observer_group"]),
            "merged": bool(int(fit.get("merged", 0))),
            "seed": int(fit["seed"]),
            "iteration": iteration,
            "elbo": np.atleast_1d(np.asarray(fit["elbo"], dtype=float)),
            "stopped_at": int(fit.get("iterations", iteration[-1])),
            # Only Stan's rule judges the relative change drawn in the bottom row.
            "tolerance": float(fit.get("tol_rel_obj", np.nan)),
            "converged": bool(int(fit.get("converged", 1))),
        }))
    columns = ["inference", "observer_group", "merged", "seed", "iteration", "elbo", "stopped_at", "tolerance",
               "converged"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def relative_elbo_change(elbo: np.ndarray) -> np.ndarray:
    """|(ELBO_prev - ELBO_k) / ELBO_k| per evaluation, as Stan computes it (ELBO_prev = 0 at the first, so 1)."""
    elbo = np.asarray(elbo, dtype=float)
    change = np.ones(elbo.shape)
    change[1:] = np.abs((elbo[:-1] - elbo[1:]) / elbo[1:])
    return change


@_styled
def elbo_figure(traces: pd.DataFrame, *, inference: str, colours: Mapping[str, str] | None = None):
    """ELBO traces of one ADVI method: -ELBO (top) and its relative change (bottom), one column per group.

    Each fit (seed; merged-subgroup refits dashed) is a line ending where the fit stopped (x);
    the bottom row shows the tolerance of the stop rule. Line labels: ``<group>|seed<k>[|merged]``.
    """
    rows = traces[traces["inference"] == inference]
    present = list(pd.unique(rows["observer_group"]))
    colours = dict(colours or group_colours(present))
    groups = [g for g in colours if g in present] + [g for g in present if g not in colours]
    figure = _new_figure(max(2.4 * len(groups), 5.0), 5.2)
    axes = np.atleast_2d(figure.subplots(2, max(len(groups), 1), squeeze=False, sharex="col"))
    for column, group in enumerate(groups):
        top, bottom = axes[0, column], axes[1, column]
        top.set_label(f"{group}|elbo")
        bottom.set_label(f"{group}|relative change")
        for (merged, seed), fit in rows[rows["observer_group"] == group].groupby(["merged", "seed"], sort=True):
            linestyle = "--" if merged else "-"
            label = f"{group}|seed{seed}" + ("|merged" if merged else "")
            values = -fit["elbo"].to_numpy()
            iteration = fit["iteration"].to_numpy()
            positive = values > 0
            top.plot(iteration[positive], values[positive], color=colours[group], linestyle=linestyle,
                     linewidth=0.9, alpha=0.85, label=label)
            top.plot(iteration[-1:], values[-1:], marker="x", color=colours[group], markersize=5, linestyle="none")
            change = relative_elbo_change(fit["elbo"].to_numpy())
            finite = np.isfinite(change)
            bottom.plot(iteration[finite], change[finite], color=colours[group], linestyle=linestyle,
                        linewidth=0.9, alpha=0.85, marker=".", markersize=3, label=label)
        tolerance = rows.loc[rows["observer_group"] == group, "tolerance"].dropna()
        if len(tolerance):
            bottom.axhline(tolerance.iloc[0], color="#B00000", linewidth=0.8, linestyle=":")
            bottom.text(0.98, tolerance.iloc[0], f"tolerance {tolerance.iloc[0]:g}",
                        transform=bottom.get_yaxis_transform(), ha="right", va="bottom", fontsize=6, color="#B00000")
        stops = rows.loc[rows["observer_group"] == group].groupby(["merged", "seed"])["stopped_at"].first()
        span = f"{stops.min()}" if stops.min() == stops.max() else f"{stops.min()}-{stops.max()}"
        top.set_title(f"{group}\nstopped at {span} iterations", fontsize=8)
        top.set_yscale("log")
        bottom.set_yscale("log")
        bottom.set_xlabel("iteration")
    axes[0, 0].set_ylabel("−ELBO (nats, log scale)")
    axes[1, 0].set_ylabel("relative ELBO change per evaluation")
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color="#444444", linestyle="-"), Line2D([], [], color="#444444", linestyle="--"),
               Line2D([], [], color="#444444", marker="x", linestyle="none")]
    figure.legend(handles, ["separate subgroups (one line per seed)", "merged-subgroup refit", "where the fit stopped"],
                  loc="outside lower center", ncols=3, frameon=False)
    figure.suptitle(f"{inference}: evidence lower bound (ELBO) during optimisation", fontsize=10, x=0.01, ha="left")
    return figure


def nuts_summary(posteriors: Sequence) -> pd.DataFrame:
    """R-hat and bulk/tail ESS of every severity effect gamma[s, g] (s > 0) of NUTS fits.

    ``posteriors`` are ``InferenceData`` (or their ``posterior`` datasets) of NUTS fits. Columns:
    observer_group, merged, subgroup, severity_mm, r_hat, ess_bulk, ess_tail, chains, draws.
    """
    import arviz as az

    frames = []
    for posterior in posteriors:
        dataset = getattr(posterior, "posterior", posterior)
        gamma = dataset["gamma"].isel(severity=slice(1, None)).to_dataset()
        chains, draws = dataset.sizes["chain"], dataset.sizes["draw"]
        statistics = {
            "r_hat": az.rhat(gamma)["gamma"] if chains > 1 else gamma["gamma"].isel(chain=0, draw=0) * np.nan,
            "ess_bulk": az.ess(gamma, method="bulk")["gamma"],
            "ess_tail": az.ess(gamma, method="tail")["gamma"],
        }
        frame = pd.concat({name: value.to_series() for name, value in statistics.items()}, axis=1).reset_index()
        frame = frame.rename(columns={"severity": "severity_mm"})
        frame.insert(0, "merged", bool(int(dataset.attrs.get("merged", 0))))
        frame.insert(0, "observer_group", str(dataset.attrs["observer_group"]))
        frame["chains"], frame["draws"] = chains, draws
        frames.append(frame)
    columns = ["observer_group", "merged", "subgroup", "severity_mm", "r_hat", "ess_bulk", "ess_tail", "chains",
               "draws"]
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)


@_styled
def nuts_diagnostics_figure(
    summary: pd.DataFrame,
    *,
    subgroups: Sequence[str],
    colours: Mapping[str, str] | None = None,
    rhat_limit: float = 1.01,
    ess_per_chain: int = 100,
):
    """R-hat (top) and bulk ESS (bottom) of the severity effects, one column per subgroup.

    ``summary`` is :func:`nuts_summary`. Series are labelled by observer group; axes labels
    ``<subgroup>|r_hat`` and ``<subgroup>|ess_bulk``. Dotted lines mark the warning limits.
    """
    present = list(pd.unique(summary["observer_group"]))
    colours = dict(colours or group_colours(present))
    groups = [g for g in colours if g in present] + [g for g in present if g not in colours]
    severities = sorted(summary["severity_mm"].unique())
    positions = np.arange(len(severities))
    figure = _new_figure(max(4.2 * len(subgroups), 5.0), 5.4)
    axes = np.atleast_2d(figure.subplots(2, len(subgroups), squeeze=False))
    chains = int(summary["chains"].min()) if len(summary) else 1
    for column, subgroup in enumerate(subgroups):
        rows = summary[summary["subgroup"] == subgroup]
        present = [g for g in groups if not _rows(rows, observer_group=g).empty]
        for row, (statistic, label, limit) in enumerate((
            ("r_hat", "R-hat of γ (rank-normalised)", rhat_limit),
            ("ess_bulk", "bulk effective sample size of γ (draws)", ess_per_chain * chains),
        )):
            axis = axes[row, column]
            axis.set_label(f"{subgroup}|{statistic}")
            for offset, group in zip(_offsets(len(present)), present):
                values = _on_grid(_rows(rows, observer_group=group), severities, statistic)
                axis.plot(positions + offset, values, color=colours[group], marker="o", markersize=4,
                          linestyle="none", label=group)
            axis.axhline(limit, color="#B00000", linewidth=0.8, linestyle=":")
            axis.text(1.0, limit, f" limit {limit:g}", transform=axis.get_yaxis_transform(), ha="right",
                      va="bottom", fontsize=6, color="#B00000")
            _category_axis(axis, severities)
            if column == 0:
                axis.set_ylabel(label)
            if row == 0:
                axis.set_title(pretty(subgroup))
    handles = {}
    for axis in axes.ravel():
        for handle, label in zip(*axis.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    figure.legend(list(handles.values()), list(handles), loc="outside lower center", ncols=max(len(handles), 1),
                  frameon=False)
    figure.suptitle(f"nuts: convergence of the severity effects ({chains} chain{'s' if chains > 1 else ''})",
                    fontsize=10, x=0.01, ha="left")
    return figure


# --------------------------------------------------------------------------------------------
# What filtering does (paper Fig. 1)


PREVIEW_PIXEL_MM = 0.1


def filtering_preview_figure(image_path: Path, *, pixel_mm: float = PREVIEW_PIXEL_MM):
    """One view at every paper severity, whole and as a 20 mm crop (release variant, ``pixel_mm``)."""
    from perceptiongap.perturb import read_image
    from perceptiongap.perturb.preview import preview_figure

    image = read_image(image_path, pixel_mm=pixel_mm)
    return preview_figure(image.pixels, pixel_mm, variant="release",
                          title=f"{Path(image_path).stem}: Gaussian low-pass filter at each severity "
                                f"(release variant, {pixel_mm:g} mm pixels assumed)")


# --------------------------------------------------------------------------------------------
# Posterior predictive checks


@_styled
def ppc_figure(ppc: pd.DataFrame, *, observer_group: str, colours: Mapping[str, str] | None = None):
    """The posterior predictive checks of one observer group (``tables/ppc.csv``): one panel per subgroup.

    Per severity (x, categorical): the observers' own separability T(y) (black diamond) and, per
    model and inference method, the mean and central 90 % of T(y_rep) (error bar); a red ring marks
    a check whose tail probability is below 0.05 or above 0.95.
    """
    rows = ppc[ppc["observer_group"] == observer_group]
    subgroups = list(pd.unique(rows["subgroup"]))
    fits = list(dict.fromkeys(zip(rows["model"], rows["inference"])))
    colours = dict(colours or group_colours([f"{m}|{i}" for m, i in fits]))
    figure = _new_figure(max(3.2 * len(subgroups), 4.5), 3.6)
    axes = np.atleast_1d(figure.subplots(1, max(len(subgroups), 1), squeeze=False, sharey=True)[0])
    offsets = _offsets(len(fits) + 1)
    for axis, subgroup in zip(axes, subgroups):
        block = rows[rows["subgroup"] == subgroup]
        severities = sorted(pd.unique(block["severity_mm"]))
        positions = np.arange(len(severities), dtype=float)
        observed = block.groupby("severity_mm")["observed"].first().reindex(severities).to_numpy(dtype=float)
        axis.plot(positions + offsets[0], observed, marker="D", color="black", linestyle="none", markersize=4,
                  label="observed T(y)")
        for k, (model, inference) in enumerate(fits, start=1):
            fit = block[(block["model"] == model) & (block["inference"] == inference)]
            fit = fit.set_index("severity_mm").reindex(severities)
            mean = fit["replicated_mean"].to_numpy(dtype=float)
            low, high = fit["replicated_low"].to_numpy(dtype=float), fit["replicated_high"].to_numpy(dtype=float)
            colour = colours[f"{model}|{inference}"]
            axis.errorbar(positions + offsets[k], mean, yerr=[mean - low, high - mean], color=colour, marker="o",
                          markersize=3, linestyle="none", label=f"{model} ({inference}) T(y_rep)")
            tail = fit["tail_probability"].to_numpy(dtype=float)
            failed = (tail < 0.05) | (tail > 0.95)
            axis.plot((positions + offsets[k])[failed], mean[failed], marker="o", markersize=9, markerfacecolor="none",
                      markeredgecolor="#B00000", linestyle="none")
        _category_axis(axis, severities)
        axis.set_title(pretty(subgroup), fontsize=9)
    axes[0].set_ylabel("class separability (KS statistic)")
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 3), frameon=False, fontsize=7)
    figure.suptitle(f"{observer_group}: posterior predictive check of class separability (red ring: tail "
                    "probability < 0.05 or > 0.95)", fontsize=9, x=0.01, ha="left")
    return figure


# --------------------------------------------------------------------------------------------
# Files


def save_figure(figure, folder: str | Path, name: str) -> list[Path]:
    """Write ``name``.png (:data:`PNG_DPI` dpi) and ``name``.svg into ``folder``, each atomically; return their paths.

    Both files are reproducible: no creation date or software tag, deterministic SVG ids.
    """
    import matplotlib

    from perceptiongap.files import atomic_path

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    with matplotlib.rc_context({"svg.hashsalt": "perceptiongap"}):
        for suffix, options in ((".png", {"dpi": PNG_DPI, "metadata": {"Software": None}}),
                                (".svg", {"metadata": {"Date": None}})):
            path = folder / f"{name}{suffix}"
            with atomic_path(path) as tmp:
                figure.savefig(tmp, format=suffix[1:], **options)
            paths.append(path)
    return paths
