"""Power curves (power against readers, one line per exam count and design) and the HTML page."""

from __future__ import annotations

import html
import io

import numpy as np
import pandas as pd

from perceptiongap.report.palette import OKABE_ITO

__all__ = ["design_comparison", "plan_page", "power_curves"]

_CRITERION_TITLES = {
    "confidence_drop": "confidence drop: P(gamma > 0) < 0.05",
    "separability_drop": "separability drop: one-sided KS p < 0.05",
    "separability_effect": "separability effect: P(delta < 0) > 0.95",
}
_EXAM_COLOURS = (OKABE_ITO["blue"], OKABE_ITO["vermillion"], OKABE_ITO["bluish_green"], OKABE_ITO["orange"],
                 OKABE_ITO["reddish_purple"], OKABE_ITO["sky_blue"], OKABE_ITO["black"])
_DESIGN_LINES = {"balanced": "-", "release": "--"}
#: The grid's axes beyond readers, exams and design (columns of power.csv).
_LEVEL_KEYS = ("severity_set", "prevalence")


def design_comparison(gamma_sd: pd.DataFrame) -> pd.DataFrame:
    """Posterior sd of each severity effect, balanced vs release, per (readers, exams, subgroup, severity),
    and per severity set and case mix when ``gamma_sd`` has those columns.

    ``gamma_sd`` has a row per (readers, exams, design, rep, subgroup, severity_mm). The ratio is
    release over balanced mean sd; its Monte Carlo standard error is the delta method's,
    ratio * sqrt((se_r / m_r)^2 + (se_b / m_b)^2), the two designs' replications being independent.
    """
    keys = [key for key in _LEVEL_KEYS if key in gamma_sd.columns] + ["readers", "exams", "subgroup", "severity_mm"]
    summary = gamma_sd.groupby([*keys, "design"])["gamma_sd"].agg(["mean", "std", "size"]).reset_index()
    summary["se"] = summary["std"] / np.sqrt(summary["size"])
    wide = summary.pivot_table(index=keys, columns="design", values=["mean", "se"])
    if ("mean", "balanced") not in wide.columns or ("mean", "release") not in wide.columns:
        return pd.DataFrame(columns=[*keys, "sd_balanced", "sd_release", "ratio", "ratio_se"])
    out = pd.DataFrame({
        "sd_balanced": wide[("mean", "balanced")], "sd_release": wide[("mean", "release")],
    })
    out["ratio"] = out["sd_release"] / out["sd_balanced"]
    out["ratio_se"] = out["ratio"] * np.sqrt((wide[("se", "release")] / out["sd_release"]) ** 2
                                             + (wide[("se", "balanced")] / out["sd_balanced"]) ** 2)
    return out.reset_index()


def _mix_title(label: str) -> str:
    """``microcalcifications=0.2:0.25,...`` -> ``breasts (malignant): m 20% (25%), ...`` (subgroups by initials)."""
    parts = []
    for entry in label.split(","):
        name, _, shares = entry.partition("=")
        share, _, malignant = shares.partition(":")
        parts.append(f"{''.join(word[0] for word in name.split('_'))} {float(share):.3g}"
                     f" ({float(malignant):.2g})")
    return "share of breasts (malignant): " + ", ".join(parts)


def _level_title(level: tuple, keys: list[str]) -> str:
    parts = {"severity_set": lambda v: f"severities {v} mm", "prevalence": _mix_title}
    return "\n".join(parts[key](value) for key, value in zip(keys, level))


def power_curves(power: pd.DataFrame, severity_mm: float):
    """One panel per (criterion, grid level, analysed subgroup) at ``severity_mm``: power (with 2
    Monte Carlo standard errors) against readers, one line per exam count (colour) and design (line
    style). A grid level is a (severity set, case mix) when ``power`` has more than one of either
    (one row of panels per criterion and level), else the panels are one per criterion."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    rows = power[np.isclose(power["severity_mm"], severity_mm)]
    criteria = [c for c in _CRITERION_TITLES if c in set(rows["criterion"])]
    subgroups = list(pd.unique(rows["subgroup"]))
    keys = [key for key in _LEVEL_KEYS if key in rows.columns and rows[key].nunique() > 1]
    levels = list(rows.loc[:, keys].drop_duplicates().itertuples(index=False, name=None)) if keys else [()]
    panels = [(criterion, level) for criterion in criteria for level in levels]
    figure = Figure(figsize=(3.6 * max(len(subgroups), 1), (2.9 + 0.35 * len(keys)) * max(len(panels), 1)),
                    layout="constrained")
    axes = figure.subplots(max(len(panels), 1), max(len(subgroups), 1), squeeze=False, sharex=True, sharey=True)
    exam_counts = sorted(pd.unique(rows["exams"]))
    for i, (criterion, level) in enumerate(panels):
        in_level = np.ones(len(rows), dtype=bool)
        for key, value in zip(keys, level):
            in_level &= (rows[key] == value).to_numpy()
        for j, subgroup in enumerate(subgroups):
            axis = axes[i, j]
            panel = rows[in_level & (rows["criterion"] == criterion).to_numpy()
                         & (rows["subgroup"] == subgroup).to_numpy()]
            for (exams, design), line in panel.groupby(["exams", "design"]):
                line = line.sort_values("readers")
                colour = _EXAM_COLOURS[exam_counts.index(exams) % len(_EXAM_COLOURS)]
                axis.errorbar(line["readers"], line["power"], yerr=2 * line["power_se"], color=colour,
                              linestyle=_DESIGN_LINES.get(design, ":"), marker="o", markersize=3, capsize=2,
                              label=f"{exams} exams, {design}")
            axis.set_xticks(sorted(pd.unique(rows["readers"])))
            axis.axhline(0.8, color="0.6", linewidth=0.8, linestyle=":")
            axis.set_ylim(-0.02, 1.02)
            title = f"{subgroup.replace('_', ' ')}\n{_CRITERION_TITLES[criterion]}"
            if keys:
                title += "\n" + _level_title(level, keys)
            axis.set_title(title, fontsize=7 if keys else 8)
            if i == len(panels) - 1:
                axis.set_xlabel("readers")
            if j == 0:
                axis.set_ylabel(f"power at {severity_mm:g} mm")
    if panels and subgroups:
        axes[0, -1].legend(fontsize=7, loc="lower right")
    return figure


def _svg(figure) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg")
    text = buffer.getvalue()
    return text[text.index("<svg"):]


def plan_page(power: pd.DataFrame, comparison: pd.DataFrame, figure, settings: dict) -> str:
    """A short self-contained HTML page: settings, the power curves (inline SVG), both tables."""
    from jinja2 import Environment

    template = Environment(autoescape=True).from_string(_PAGE)
    return template.render(
        settings=settings, figure=_svg(figure),
        power=power.round(4).to_html(index=False, border=0),
        comparison=comparison.round(4).to_html(index=False, border=0) if not comparison.empty else "",
        escape=html.escape,
    )


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>perceptiongap plan</title>
<style>body{font-family:sans-serif;max-width:70em;margin:2em auto;color:#222}
table{border-collapse:collapse;font-size:0.8em}td,th{padding:0.2em 0.6em;text-align:right}
tr:nth-child(even){background:#f4f4f4}dt{font-weight:bold}</style></head><body>
<h1>Planned reader study: simulated power</h1>
<p>Each grid cell's studies were simulated from the model (METHOD §5) with the designs of
<code>perceptiongap study design</code>, fitted by the Laplace approximation of the marginal posterior
(each breast's bias integrated out by adaptive Gauss-Hermite quadrature), and judged by the criteria
below. Power is the share of replications that reject; ± is its Monte Carlo standard error.
The columns <code>severity_set</code> (the severities, mm, the study shows) and <code>prevalence</code>
(for each analysed subgroup, its share of breasts and, after the colon, the share of those that are
malignant) name the grid's level; the curves get one row of panels per level when there are several.</p>
<dl>{% for key, value in settings.items() %}<dt>{{ key }}</dt><dd>{{ value }}</dd>{% endfor %}</dl>
<h2>Power curves</h2>
{{ figure | safe }}
{% if comparison %}<h2>What balancing buys</h2>
<p>Posterior sd of each severity effect, mean over replications, under the balanced and the release
designs; ratio release / balanced with its Monte Carlo standard error (above 1: balancing gives
tighter estimates).</p>
{{ comparison | safe }}{% endif %}
<h2>Power table</h2>
{{ power | safe }}
</body></html>
"""
