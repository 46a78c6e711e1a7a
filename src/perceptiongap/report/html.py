"""The self-contained HTML report of a results folder, rendered from a jinja2 template.

``build_report(results_dir)`` re-renders ``figures/`` and writes ``report.html`` from the saved
tables and posteriors (nothing is refitted). Figures are embedded as data URIs, the stylesheet is
inline: the file opens offline and references nothing outside itself.
"""

from __future__ import annotations

import datetime as dt
import math
import shlex
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from perceptiongap.analysis.comparison import preferred_model, preferred_models
from perceptiongap.analysis.conclusions import conclusions_from_table
from perceptiongap.analysis.ppc import failed_checks
from perceptiongap.analysis.summary import NO_MODEL
from perceptiongap.analysis.tables import for_model, table_models
from perceptiongap.files import PARTIAL_SUFFIX, atomic_write_text
from perceptiongap.analysis.fits import warning_groups
from perceptiongap.formatting import format_p_relation, format_p_value
from perceptiongap.locks import output_lock
from perceptiongap.model.diagnostics import ESS_PER_CHAIN, PARETO_K_LIMIT, RHAT_LIMIT
from perceptiongap.report.findings import (
    conclusion_disagreements,
    method_disagreements,
    model_methods,
    observed_vs_model,
    seed_disagreements,
)
from perceptiongap.report.render import install_figures, render_figures
from perceptiongap.results.layout import ResultsFolder
from perceptiongap.results.record import add_outputs
from perceptiongap.results.store import Results, conclusions_of_model, read_results

__all__ = ["build_report", "format_value", "html_table", "main_view", "render_html", "report_context", "write_report"]

from perceptiongap.analysis.margins import CONFIDENCE_MARGIN, EVIDENCE_LEVEL, SEPARABILITY_MARGIN

TEMPLATE = "report.html.j2"
VERDICTS = {True: ("supported", "yes"), False: ("not supported", "no"), None: ("not evaluated", "na")}

def _table_captions(results: Results) -> dict[str, str]:
    merged = " and ".join(results.merged_subgroups) if results.merged_subgroups else "the merged subgroups"
    return {
        "perturbation_study": "tables/perturbation_study.csv: predictive confidence and class separability per "
                              "inference method, observer group, subgroup and severity (observed: the networks' own "
                              "predictions, no model). The evidence of no effect: p_confidence_above_margin = "
                              f"P(γ > -{CONFIDENCE_MARGIN:g} | D), separability_drop_upper = the one-sided "
                              f"{EVIDENCE_LEVEL:.0%} upper bound of the mean drop from severity 0 (margin "
                              f"{SEPARABILITY_MARGIN:g}).",
        "merged_subgroups": f"tables/merged_subgroups.csv: the same with {merged} as one subgroup, refitted "
                            "(merged_by refit) and as the release did it, pooling the separate fit's draws "
                            "(merged_by pooled).",
        "annotation_study": "tables/annotation_study.csv: class separability of the networks with the ROI interior, "
                            "the ROI exterior or the entire image filtered (no model).",
    }


# --------------------------------------------------------------------------------------------
# Formatting


def format_value(value, column: str = "") -> str:
    """A table cell: p-values to 3 decimals (or <0.001), other floats to 3 decimals, NaN empty."""
    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(value):
            return ""
        if column.startswith("p_") or column == "median_p":
            return format_p_value(float(value))
        if column == "severity_mm":
            return f"{value:g}"
        if float(value).is_integer() and column in ("fits", "seed", "iterations", "divergences", "converged"):
            return str(int(value))
        return f"{value:.3f}" if abs(value) < 1000 else f"{value:.0f}"
    text = str(value)
    return "" if text == "nan" else text


def _flag(column: str, value, chains: int | None = None) -> str:
    """CSS class for a diagnostics cell that breaches its limit."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "bad" if column == "warnings" and value else ""
    if not math.isfinite(number):
        return ""
    if column == "pareto_k" and number > PARETO_K_LIMIT:
        return "bad"
    if column == "max_r_hat" and number > RHAT_LIMIT:
        return "bad"
    if column == "min_ess_bulk" and number < ESS_PER_CHAIN * (chains or 1):
        return "bad"
    if column == "converged" and number == 0:
        return "bad"
    if column == "divergences" and number > 0:
        return "bad"
    return ""


def html_table(frame: pd.DataFrame, *, caption: str = "", flag: Callable[[str, object], str] | None = None,
               id: str = "") -> dict:
    """A table for the template: html id, caption, columns and rows of (text, css class) cells."""
    columns = [str(c) for c in frame.columns]
    rows = []
    for record in frame.itertuples(index=False):
        rows.append([(format_value(value, column), flag(column, value) if flag else "")
                     for column, value in zip(columns, record)])
    numeric = [pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])
               for c in frame.columns]
    return {"id": id, "caption": caption, "columns": columns, "numeric": numeric, "rows": rows}


# --------------------------------------------------------------------------------------------
# Context


def _conclusions_context(results: Results, methods: Sequence[str], model: str | None = None
                         ) -> tuple[list[dict], list]:
    """The verdicts as ``analyse`` wrote them to ``tables/conclusions.csv`` (not judged again here),
    under ``model`` (default: the view's own model)."""
    table = results.tables["conclusions"]
    if model is not None:
        table = conclusions_of_model((results.all_tables or results.tables)["conclusions"], model)
    conclusions = conclusions_from_table(table)
    rows = []
    for conclusion in conclusions:
        cells = []
        for method in methods:
            verdict = conclusion.verdicts.get(method)
            text, css = VERDICTS[verdict]
            cells.append({"method": method, "verdict": text, "css": css,
                          "evidence": conclusion.evidence.get(method, "")})
        rows.append({"key": conclusion.key, "statement": conclusion.statement, "rule": conclusion.rule,
                     "cells": cells})
    return rows, conclusions


def main_view(results: Results) -> tuple[Results, str]:
    """(``results`` with its tables cut to one model, that model): ``release`` where it was fitted,
    else the first model; the report's sections on the paper's analyses show that model, and the
    section "Which model" compares them all (``all_tables``)."""
    models = table_models(results.tables["perturbation_study"])
    main = "release" if "release" in models or not models else models[0]
    own = [str(attrs.get("model", "release")) == main for attrs in results.fit_attrs]
    return replace(results, tables=for_model(results.tables, main), all_tables=results.tables,
                   fit_attrs=[a for a, keep in zip(results.fit_attrs, own) if keep],
                   fit_paths=[p for p, keep in zip(results.fit_paths, own) if keep]), main


def _which_model_context(results: Results, main: str, methods: Sequence[str]) -> dict:
    """The section "Which model": comparison per group, the preferred model, failed checks, delta, verdicts."""
    tables = results.all_tables or results.tables
    comparison = tables.get("model_comparison", pd.DataFrame())
    ppc = tables.get("ppc", pd.DataFrame())
    effects = tables.get("separability_effects", pd.DataFrame())
    models = table_models(tables["perturbation_study"])
    context = {"models": models, "main": main, "comparison": None, "preferences": None, "preferred": main,
               "why": "", "ppc_counts": None, "failed": None, "effects": None, "conclusions": None}
    if len(comparison):
        context["comparison"] = html_table(comparison, caption="tables/model_comparison.csv: PSIS-LOO (leave one "
                                           "breast out) and the bridge-sampling log marginal likelihood per observer "
                                           "group; elpd_diff is each model's elpd below the best one's.")
        context["preferences"] = html_table(preferred_models(comparison), caption="The model each criterion "
                                            "prefers per observer group, and by how much.")
        context["preferred"], context["why"] = preferred_model(comparison, models or [main])
    if len(ppc):
        flagged = failed_checks(ppc)
        counts = (ppc.assign(failed=ppc.index.isin(ppc.index[(ppc["tail_probability"] < 0.05)
                                                              | (ppc["tail_probability"] > 0.95)]))
                  .groupby(["model", "inference", "observer_group"], sort=False)["failed"]
                  .agg(checks="size", failed="sum").reset_index())
        context["ppc_counts"] = html_table(counts, caption="Posterior predictive checks per fit: how many "
                                           "(subgroup, severity) checks fail (tail probability < 0.05 or > 0.95).")
        if len(flagged):
            context["failed"] = html_table(flagged, caption="Every failed check (tables/ppc.csv).")
    if len(effects):
        context["effects"] = html_table(effects, caption="tables/separability_effects.csv: delta[s, g], the change "
                                        "in class separability as a parameter of label_specific (mean, 90 % "
                                        "interval, P(delta < 0)).")
    if context["preferred"] != main and context["preferred"] in models:
        context["conclusions"], _ = _conclusions_context(results, methods, context["preferred"])
    return context


def _stan_advi_stops(fits: pd.DataFrame) -> str | None:
    rows = fits[fits["inference"] == "stan-advi"]
    if rows.empty or rows["iterations"].isna().all():
        return None
    low, high = int(rows["iterations"].min()), int(rows["iterations"].max())
    return f"{low}" if low == high else f"{low}-{high}"


def _warning_groups(fits: pd.DataFrame) -> list[dict]:
    """The warnings of tables/fits.csv grouped by kind, model, method and observer group (merged refits apart), with
    counts; each group keeps its warnings' texts for a <details> list."""
    groups = []
    for row in warning_groups(fits).itertuples(index=False):
        merged = " (merged-subgroup refits)" if row.merged else ""
        model = "" if row.model == "release" else f" under the {row.model} model"
        groups.append({"kind": row.kind, "expected": bool(row.expected), "meaning": row.meaning,
                       "title": f"{row.kind}: {row.fits} {row.inference} fit{'s' if row.fits > 1 else ''} of "
                                f"{row.observer_group}{merged}{model}",
                       "warnings": list(row.warnings)})
    return groups


def _stan_advi_seed_example(perturbation: pd.DataFrame, observer_kinds: dict[str, str]) -> dict | None:
    """A separability drop at the most severe filter on which this run's stan-advi seeds disagree, from the table.

    The paper's example (GMIC, soft tissue lesions) when it is among them, else the first such cell of a network,
    else of any group. None when the seeds agree everywhere or fewer than two were run.
    """
    rows = perturbation[(perturbation["inference"] == "stan-advi") & (perturbation["fits"] > 1)]
    if rows.empty:
        return None
    most_severe = rows[rows["severity_mm"] == rows["severity_mm"].max()]
    split = most_severe[(most_severe["frac_separability_significant"] > 0)
                        & (most_severe["frac_separability_significant"] < 1)]
    if split.empty:
        return None
    paper = split[(split["observer_group"] == "gmic") & (split["subgroup"] == "soft_tissue_lesions")]
    networks = split[split["observer_group"].map(observer_kinds).eq("machine")]
    row = (paper if len(paper) else networks if len(networks) else split).iloc[0]
    fits = int(row["fits"])
    nuts = perturbation[(perturbation["inference"] == "nuts") & (perturbation["observer_group"] == row["observer_group"])
                        & (perturbation["subgroup"] == row["subgroup"])
                        & (perturbation["severity_mm"] == row["severity_mm"])]
    return {
        "observer_group": row["observer_group"], "subgroup": row["subgroup"],
        "severity": f"{row['severity_mm']:g}", "fits": fits,
        "significant": int(round(row["frac_separability_significant"] * fits)),
        "median_p": format_p_relation(row["p_separability_drop"]),
        "nuts_p": format_p_relation(nuts["p_separability_drop"].iloc[0]) if len(nuts) else None,
        "is_papers": bool(len(paper)) and float(row["severity_mm"]) == 4.0,
    }


def _diagnostics_summary(fits: pd.DataFrame) -> list[str]:
    """One line per inference method: how many fits breach which limit."""
    lines = []
    for method, rows in fits.groupby("inference", sort=False):
        parts = [f"{len(rows)} fits"]
        if rows["pareto_k"].notna().any():
            poor = int((rows["pareto_k"] > PARETO_K_LIMIT).sum())
            parts.append(f"Pareto k-hat {rows['pareto_k'].min():.2f}-{rows['pareto_k'].max():.2f}, "
                         f"{poor} above {PARETO_K_LIMIT}")
        failed = rows["failed"].astype(str).str.lower().isin(["true", "1"]) if "failed" in rows else \
            pd.Series(False, index=rows.index)
        if failed.any():
            parts.append(f"{int(failed.sum())} failed as Stan's ADVI fails (no posterior; the tables use the other "
                         "seeds)")
        if rows["converged"].notna().any() and method != "nuts":
            parts.append(f"{int(((rows['converged'] == 0) & ~failed).sum())} stopped at their iteration limit")
        if "eta" in rows and rows["eta"].notna().any():
            etas = ", ".join(f"{eta:g} in {count}" for eta, count in rows["eta"].value_counts().sort_index().items())
            parts.append(f"step size eta {etas}")
            for phase, words in (("main", "main loop"), ("adapt", "step-size trials")):
                dropped = rows.get(f"{phase}_elbo_draws_dropped")
                rejected = rows.get(f"{phase}_gradient_draws_rejected")
                if dropped is not None and rejected is not None and dropped.notna().any():
                    parts.append(f"{words}: {int(dropped.sum())} ELBO draws dropped, {int(rejected.sum())} "
                                 f"gradient draws rejected (at most {int(dropped.max())} and {int(rejected.max())} "
                                 "in one fit)")
        if rows["max_r_hat"].notna().any():
            parts.append(f"largest R-hat {rows['max_r_hat'].max():.3f} (limit {RHAT_LIMIT})")
        if rows["min_ess_bulk"].notna().any():
            parts.append(f"smallest bulk ESS {rows['min_ess_bulk'].min():.0f}")
        if rows["divergences"].notna().any():
            parts.append(f"{int(rows['divergences'].sum())} divergent transitions")
        lines.append(f"{method}: " + "; ".join(parts))
    return lines


def _provenance(results: Results) -> dict | None:
    run = results.run
    if run is None:
        return None
    command = run.get("command")
    return {
        "command": shlex.join(str(c) for c in command) if isinstance(command, list) else str(command or ""),
        "seed": run.get("seed"),
        "advi_seeds": run.get("advi_seeds"),
        "inference": ", ".join(run.get("inference") or []),
        "subgroups": (run.get("subgroups") or {}).get("how", "") if isinstance(run.get("subgroups"), dict) else "",
        "data_dir": run.get("data_dir"),
        "run_seconds": run.get("run_seconds"),
        "finished_at": run.get("finished_at"),
        "platform": run.get("platform"),
        "packages": sorted((run.get("packages") or {}).items()),
        "checksums": [(f"{name}: {(run.get('inputs') or {}).get(name)}" if (run.get("inputs") or {}).get(name)
                       else name, digest) for name, digest in sorted((run.get("input_sha256") or {}).items())],
    }


def report_context(results: Results, sections: list, *, rendered_at: str | None = None) -> dict:
    """Everything the template shows, computed from the saved tables."""
    tables = results.tables
    perturbation = tables["perturbation_study"]
    fits = tables["fits"]
    methods = model_methods(perturbation)
    conclusion_rows, conclusions = _conclusions_context(results, methods)
    split = conclusion_disagreements(conclusions)
    cells = method_disagreements(perturbation, methods)
    seeds = seed_disagreements(perturbation)
    observed = observed_vs_model(perturbation, methods) if (perturbation["inference"] == "observed").any() else None
    main = results.tables["perturbation_study"]["model"] if "model" in results.tables["perturbation_study"] else None
    main = next((str(m) for m in pd.unique(main) if str(m) != NO_MODEL), "release") if main is not None else "release"
    which_model = _which_model_context(results, main, methods)
    data_tables = [{**html_table(tables[name], caption=caption), "name": name, "length": len(tables[name])}
                   for name, caption in _table_captions(results).items() if name in tables and len(tables[name])]
    fits_view = fits.drop(columns=["warnings"], errors="ignore")
    return {
        "title": f"perceptiongap report: {results.folder.resolve().name}",
        "folder": str(results.folder.resolve()),
        "rendered_at": rendered_at or dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "version": _version(),
        "methods": methods,
        "has_stan_advi": "stan-advi" in methods,
        "has_nuts": "nuts" in methods,
        "stan_advi_stops": _stan_advi_stops(fits),
        "stan_advi_fits": int(perturbation.loc[perturbation["inference"] == "stan-advi", "fits"].max())
        if "stan-advi" in methods else 0,
        "conclusions": conclusion_rows,
        "split_conclusions": [c.statement for c in split],
        "method_cells": html_table(cells) if len(cells) else None,
        "seed_cells": html_table(seeds) if len(seeds) else None,
        "observed_cells": html_table(observed) if observed is not None and len(observed) else None,
        "has_observed": observed is not None,
        "sections": sections,
        "section_tables": {section.key: [html_table(frame, caption=caption, id=table_id)
                                         for table_id, caption, frame in section.tables] for section in sections},
        "figure_count": sum(len(s.figures) for s in sections if s.key != "diagnostics"),
        "diagnostics": next((s for s in sections if s.key == "diagnostics"), None),
        "diagnostics_summary": _diagnostics_summary(fits),
        "warning_groups": _warning_groups(fits),
        "warning_count": sum(len(group["warnings"]) for group in _warning_groups(fits)),
        "seed_example": _stan_advi_seed_example(perturbation, results.observer_kinds) if "stan-advi" in methods
        else None,
        "fits_table": html_table(fits_view, caption="tables/fits.csv: one row per fit (flagged cells breach a limit).",
                                 flag=lambda column, value: _flag(column, value, _chains(results))),
        "limits": {"rhat": RHAT_LIMIT, "pareto_k": PARETO_K_LIMIT, "ess_per_chain": ESS_PER_CHAIN},
        "data_tables": data_tables,
        "provenance": _provenance(results),
        "provenance_problem": results.run_problem,
        "which_model": which_model,
    }


def _chains(results: Results) -> int:
    counts = [int(a.get("num_chains", 1)) for a in results.fit_attrs if a.get("inference") == "nuts"]
    return min(counts) if counts else 1


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("perceptiongap")
    except metadata.PackageNotFoundError:
        return "unknown"


def breakable(name: str):
    """A column name that may wrap after its underscores (for narrow pages and print)."""
    from markupsafe import Markup, escape

    return Markup(str(escape(name)).replace("_", "_<wbr>"))


def render_html(context: dict) -> str:
    """The report's HTML from the package's jinja2 template."""
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    environment = Environment(
        loader=PackageLoader("perceptiongap.report", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["p"] = format_p_value
    environment.filters["breakable"] = breakable
    return environment.get_template(TEMPLATE).render(**context)


# --------------------------------------------------------------------------------------------
# Entry point


def build_report(
    results_dir: str | Path,
    *,
    shared_dir: Path | None = None,
    on_figure: Callable[[str], None] | None = None,
) -> Path:
    """Render ``figures/`` and ``report.html`` of a results folder from its saved outputs; return the report's path.

    Holds the folder's output lock while it writes. ``shared_dir`` is the folder holding the
    sample mammograms; without it the filtering figure is skipped with a note. Raises
    :class:`~perceptiongap.errors.InputError` if ``results_dir`` is not a results folder.
    """
    with output_lock(results_dir, what="results folder"):
        return write_report(read_results(Path(results_dir)), shared_dir=shared_dir, on_figure=on_figure)


def write_report(
    results: Results,
    *,
    shared_dir: Path | None = None,
    on_figure: Callable[[str], None] | None = None,
) -> Path:
    """Render the figures and the report of ``results`` into its folder (the caller holds its lock).

    Figures are rendered into a staging folder and moved into ``figures/`` once all succeeded;
    the files recorded as outputs in ``run.json`` before they are written. Returns the report's path.
    """
    folder = ResultsFolder(results.folder.absolute())
    staging = Path(tempfile.mkdtemp(prefix=".figures.", suffix=PARTIAL_SUFFIX, dir=folder.root))
    try:
        results, _ = main_view(results)
        sections = render_figures(results, staging, shared_dir=shared_dir, on_figure=on_figure)
        html = render_html(report_context(results, sections))
        rendered = sorted(staging.iterdir())
        earlier = [folder.resolve(relative) for relative in (results.record.outputs or [])] if results.record else []
        add_outputs(folder, [*(folder.figures_dir / path.name for path in rendered), folder.report_path])
        install_figures(staging, folder.figures_dir, earlier)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    atomic_write_text(folder.report_path, html)
    return folder.report_path
