"""Render every figure of a results folder (PNG at 300 dpi and SVG) for the report, and put them in ``figures/``.

Figures are rendered into a staging folder first and moved into ``figures/`` once all are done;
only files an earlier report wrote (as ``run.json`` records them) are replaced or removed, so a
user's own file in ``figures/`` stays.
"""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from perceptiongap.report import figures as F
from perceptiongap.report.findings import model_methods
from perceptiongap.report.palette import group_colours
from perceptiongap.results.layout import FIGURES_DIR
from perceptiongap.results.store import Results
from perceptiongap.vocabulary import MERGED_SUBGROUP

__all__ = ["FigureSection", "RenderedFigure", "install_figures", "nuts_summary_from_files", "render_figures"]

#: Resolution of the image-heavy preview figure as embedded in the HTML (the PNG file keeps 300 dpi).
EMBEDDED_PREVIEW_DPI = 110
SAMPLE_EXAM = Path("mammograms") / "gmic-sample-exam0"
PREVIEW_VIEW = "0_L-CC.png"


@dataclass
class RenderedFigure:
    """One figure as written to disk and as embedded in the report."""

    name: str  # file stem in figures/
    title: str
    caption: str
    embed_uri: str  # data: URI (SVG, or PNG for image-heavy figures)
    files: list[str] = field(default_factory=list)  # paths relative to the results folder


@dataclass
class FigureSection:
    key: str
    title: str
    figures: list[RenderedFigure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    paragraphs: list[str] = field(default_factory=list)  # what the section's tables say, computed from them
    tables: list[tuple[str, str, pd.DataFrame]] = field(default_factory=list)  # (html id, caption, table)


def _embed(figure, paths: Sequence[Path], embed: str) -> str:
    """The data URI that embeds a figure in the report: its SVG file, or for image-heavy figures a lighter PNG."""
    if embed == "svg":
        svg = next(path for path in paths if path.suffix == ".svg")
        return "data:image/svg+xml;base64," + base64.b64encode(svg.read_bytes()).decode("ascii")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=EMBEDDED_PREVIEW_DPI, metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


class _Renderer:
    def __init__(self, folder: Path, results_dir: Path, on_figure: Callable[[str], None] | None):
        self.folder, self.results_dir, self.on_figure = folder, results_dir, on_figure

    def __call__(self, section: FigureSection, name: str, title: str, caption: str, build: Callable, *,
                 embed: str = "svg") -> None:
        figure = build()
        paths = F.save_figure(figure, self.folder, name)
        uri = _embed(figure, paths, embed)
        figure.clear()
        files = [f"{FIGURES_DIR}/{p.name}" for p in paths]
        section.figures.append(RenderedFigure(name, title, caption, uri, files))
        if self.on_figure:
            self.on_figure(name)


def _fits_note(table: pd.DataFrame, method: str) -> str:
    fits = table.loc[table["inference"] == method, "fits"]
    if len(fits) and fits.max() > 1:
        return (f" Under {method} each number is the median over {fits.max()} fits (seeds); the tables give the "
                "fraction of fits whose p-value is below 0.05.")
    return ""


def merged_rows(merged: pd.DataFrame, how: str) -> pd.DataFrame:
    """The rows of ``tables/merged_subgroups.csv`` merged ``how`` (``refit`` or ``pooled``), with the
    observed rows (no model, the same either way); a table without ``merged_by`` is all refit."""
    if "merged_by" not in merged:
        return merged if how == "refit" else merged.iloc[:0]
    return merged[merged["merged_by"].isin([how, "none"])]


def _perturbation_caption(table: pd.DataFrame, method: str, has_observed: bool) -> str:
    text = (f"Left: posterior mean of the severity effect γ under {method}, ±1 posterior sd; above it, "
            "P(γ > 0 | D) per severity (small = filtering lowers confidence). Right: class separability "
            "(KS statistic between the posterior predictive probabilities of malignant breasts of the subgroup "
            "and all non-malignant breasts), mean ±1 sd over observers; above it, the p-value of the one-sided KS "
            "test of a drop from severity 0.")
    if has_observed:
        text += (" Hollow diamonds (dotted): the same statistic on the networks' observed predictions, "
                 "with no model.")
    return text + _fits_note(table, method)


def render_figures(
    results: Results,
    figures_dir: Path,
    *,
    shared_dir: Path | None = None,
    on_figure: Callable[[str], None] | None = None,
) -> list[FigureSection]:
    """Render every figure into ``figures_dir`` (which must exist and be empty); return them by section.

    ``shared_dir`` holds the sample mammograms of the filtering figure (``mammograms/...``); None
    skips that figure with a note.
    """
    tables = results.tables
    perturbation = tables["perturbation_study"]
    merged = tables.get("merged_subgroups")
    annotation = tables.get("annotation_study")
    kinds = results.observer_kinds
    all_groups = [*kinds, *[g for g in pd.unique(perturbation["observer_group"]) if g not in kinds]]
    colours = group_colours(all_groups)
    methods = model_methods(perturbation)
    architectures = F.architectures(kinds)
    subgroups = [s for s in pd.unique(perturbation["subgroup"])]
    render = _Renderer(figures_dir, results.folder, on_figure)
    observed_groups = set(perturbation.loc[perturbation["inference"] == "observed", "observer_group"])

    sections = []
    study = FigureSection("perturbation", "Perturbation study (as the paper's Figure 4)")
    for method in methods:
        for architecture, groups in architectures:
            for subgroup in subgroups:
                title = f"{architecture}, {F.pretty(subgroup)}: perturbation study under {method}"
                render(study, f"perturbation_study_{architecture}_{subgroup}_{method}", title,
                       _perturbation_caption(perturbation, method, bool(observed_groups & set(groups))),
                       lambda: F.perturbation_figure(perturbation, inference=method, groups=groups, subgroup=subgroup,
                                                     colours=colours, title=title))
    sections.append(study)

    if merged is not None and len(merged):
        section = FigureSection("merged", "Merged subgroups: Simpson's paradox (as the paper's Figure 6)")
        merged_subgroup = str(merged["subgroup"].iloc[0])
        which = " and ".join(F.pretty(s) for s in results.merged_subgroups) if results.merged_subgroups else "subgroups"
        ways = {"refit": ("refit", "", " The model is refitted with both subgroups relabelled as one."),
                "pooled": ("pooled as the release did", "pooled_",
                           " The release's way: no refit; the separate fit's draws of γ of both subgroups are pooled, "
                           "and its posterior predictive is scored with the malignant breasts of both as positives.")}
        for method in model_methods(merged):
            for architecture, groups in architectures:
                for how, (words, prefix, note) in ways.items():
                    table = merged_rows(merged, how)
                    if not (table["inference"] == method).any():
                        continue
                    title = f"{architecture}, {which} merged: {words} under {method}"
                    render(section, f"merged_subgroups_{prefix}{architecture}_{method}", title,
                           _perturbation_caption(table, method, bool(observed_groups & set(groups))) + note,
                           lambda table=table, title=title: F.perturbation_figure(
                               table, inference=method, groups=groups, subgroup=merged_subgroup, colours=colours,
                               title=title))
        sections.append(section)

    section = FigureSection("annotation", "Annotation study (as the paper's Figure 5)")
    if annotation is not None and len(annotation):
        for group in pd.unique(annotation["observer_group"]):
            title = f"{group}: annotation study (no model)"
            render(section, f"annotation_study_{group}", title,
                   "Class separability of the network's observed predictions, mean ±1 sd over (annotating "
                   "radiologist, training seed) for the ROI schemes and over training seeds for the entire image, "
                   "on the annotated exams; above it, the p-value of the one-sided KS test of a drop from severity "
                   "0. No model is involved, so this is the same under every inference method.",
                   lambda: F.annotation_figure(annotation, group=group, title=title))
    else:
        section.notes.append("This study has no ROI-scheme observations, so there is no annotation study.")
    sections.append(section)

    section = FigureSection("comparison", "Inference methods side by side")
    if len(methods) >= 2:
        groups = [g for g in all_groups if g in set(perturbation["observer_group"])]
        panels = [(perturbation, s) for s in subgroups]
        if merged is not None and len(merged) and len(model_methods(merged_rows(merged, "refit"))) >= 2:
            panels.append((merged_rows(merged, "refit"), str(merged["subgroup"].iloc[0])))
        for table, subgroup in panels:
            title = f"{F.pretty(subgroup)}: {' vs '.join(methods)}"
            render(section, f"inference_comparison_{subgroup}", title,
                   "Each observer group (rows) under every inference method: severity effect γ (left, ±1 posterior "
                   "sd) and class separability (right, ±1 sd over observers), with each method's p-values above "
                   "(one row per method, in legend order). Shaded: severities where the methods disagree on "
                   "whether p < 0.05." + _fits_note(table, "stan-advi"),
                   lambda: F.inference_comparison_figure(table, subgroup=subgroup, groups=groups,
                                                         methods=model_methods(table), colours=colours, title=title))
    else:
        section.notes.append(f"Only {methods[0] if methods else 'no'} inference was run, so there is nothing to "
                             "compare; run with --inference stan-advi,nuts to see where the published method and "
                             "exact inference part ways.")
    sections.append(section)

    sections.append(_models_section(render, results.all_tables or tables))
    sections.append(_statistics_section(render, results, colours))
    sections.append(_preview_section(render, shared_dir))
    sections.append(_diagnostics_section(render, results, methods, colours))
    return sections


def _models_section(render: _Renderer, tables: dict) -> FigureSection:
    section = FigureSection("models", "Which model: posterior predictive checks of class separability")
    ppc = tables.get("ppc")
    if ppc is None or not len(ppc):
        section.notes.append("No posterior predictive checks (no fits, or a folder analysed before they existed).")
        return section
    for group in pd.unique(ppc["observer_group"]):
        title = f"{group}: posterior predictive check of class separability"
        render(section, f"ppc_{group}", title,
               "The observers' own class separability (black diamonds; for readers on each reader's own cells) "
               "against its posterior predictive distribution under each model (mean and central 90 %); a red ring "
               "marks a tail probability below 0.05 or above 0.95: the model does not reproduce the data there.",
               lambda group=group: F.ppc_figure(ppc, observer_group=group))
    return section


def _statistics_provenance(results: Results) -> str:
    """How the intervals were computed (from run.json), for the captions; empty when unrecorded."""
    settings = (results.record.statistics or {}) if results.record is not None else {}
    if "bootstrap" not in settings:
        return ""
    return f" ({settings['bootstrap']} case-bootstrap replicates stratified by label and subgroup, seed {settings['seed']})"


def _statistics_section(render: _Renderer, results: Results, colours: dict[str, str]) -> FigureSection:
    """Readers' and networks' sensitivity and specificity per severity, and their error consistency."""
    from perceptiongap.report import reader_study as R
    from perceptiongap.stats.figures import accuracy_figure, error_consistency_figure

    section = FigureSection("statistics", "Reader-study statistics: accuracy and error consistency")
    accuracy = results.tables.get("accuracy_summary")
    consistency = results.tables.get("error_consistency")
    missing = [name for name, table in (("accuracy_summary", accuracy), ("error_consistency", consistency))
               if table is None]
    if missing:
        settings = (results.record.statistics or {}) if results.record is not None else {}
        why = (f"they were not computed: {settings['skipped']}" if "skipped" in settings else
               "the folder was analysed before perceptiongap computed them; run perceptiongap analyse on it to "
               "add them")
        section.notes.append(f"No {' or '.join(f'tables/{name}.csv' for name in missing)} in this results folder: "
                             f"{why}.")
    section.paragraphs.extend(R.statistics_sentences(accuracy, consistency))
    intervals = _statistics_provenance(results)
    merged = (" and ".join(F.pretty(s) for s in results.merged_subgroups) if results.merged_subgroups
              else "the analysed subgroups")
    subgroups = (f"Each subgroup: its malignant breasts against every non-malignant breast (merged: {merged} "
                 "together; all: every malignant breast).")
    if accuracy is not None and len(accuracy):
        point = R.operating_point_phrase(R.network_operating_point(accuracy))
        render(section, "accuracy", "Sensitivity, specificity and AUC against severity",
               "Mean ± 1 sd over each group's observers, whole images; readers at their own yes/no answers, networks "
               f"at {point}. AUC where a score exists (the networks' probabilities; readers' probability of "
               f"malignancy or BI-RADS when the study recorded them). {subgroups} Per observer, with 95 % intervals"
               f"{intervals}: tables/accuracy.csv; these means: tables/accuracy_summary.csv.",
               lambda: accuracy_figure(accuracy, operating_point=R.network_operating_point(accuracy),
                                       colours=colours))
        section.tables.append(("table-accuracy", "Mean sensitivity and specificity over each group's observers, per "
                               "severity, whole images; readers at their own answers, networks at the operating point "
                               "of the figure above; tables/accuracy_summary.csv.", R.accuracy_overview(accuracy)))
    if consistency is not None and len(consistency):
        render(section, "error_consistency", "Error consistency of readers and networks against severity",
               "Cohen's kappa of two observers' errors on the breasts both saw at a severity (Geirhos et al. 2020: "
               "0 for independent errors, 1 for the same errors), mean over the pairs of each kind with a 95 % "
               f"bootstrap interval of the mean{intervals}; networks decide at the operating point above. {subgroups} "
               "Per pair: tables/error_consistency_pairs.csv; these means: tables/error_consistency.csv.",
               lambda: error_consistency_figure(consistency))
        section.tables.append(("table-error-consistency", "Mean error consistency (kappa) of each kind of pair, "
                               "averaged over severities, per subgroup (whole images); n_severities: severities "
                               "with a kappa; tables/error_consistency.csv.", R.consistency_overview(consistency)))
    return section


def _preview_section(render: _Renderer, shared_dir: Path | None) -> FigureSection:
    section = FigureSection("filtering", "What filtering does (as the paper's Figure 1)")
    if shared_dir is None:
        section.notes.append("The sample mammograms were not found (no shared data folder given: set "
                             "PERCEPTIONGAP_SHARED, or pass --shared), so this figure is skipped.")
        return section
    exam = Path(shared_dir) / SAMPLE_EXAM
    view = exam / PREVIEW_VIEW
    if not view.is_file():
        section.notes.append(f"The sample mammograms were not found (looked for {view}; set PERCEPTIONGAP_SHARED, "
                             "or pass --shared, to the shared data folder), so this figure is skipped.")
        return section
    title = f"What each severity removes: view {view.stem} of the sample exam"
    render(section, "filtering_preview", title,
           f"The view {view.stem} of {exam.name} (a 16-bit PNG holding 12-bit values) unperturbed and low-pass "
           "filtered at each of the paper's eight cut-offs with the release's filter (METHOD §1), whole (top) and "
           f"as a 20 mm crop (bottom, outlined on the unperturbed view). The PNG does not record its pixel "
           f"spacing: {F.PREVIEW_PIXEL_MM:g} mm is assumed, so the cut-offs in cycles/mm are nominal. Each panel "
           "has its own grey scale, as the release rescales every filtered image to its full range.",
           lambda: F.filtering_preview_figure(view), embed="png")
    return section


def _diagnostics_section(render: _Renderer, results: Results, methods, colours) -> FigureSection:
    section = FigureSection("diagnostics", "Inference diagnostics")
    traces = F.elbo_traces(results.fit_attrs)
    for method in pd.unique(traces["inference"]):
        title = f"{method}: ELBO traces"
        rule = ("Stan's rule: stop when the mean or the median of the last 10 relative changes falls below "
                "tol_rel_obj; dotted red line: the tolerance" if method == "stan-advi" else
                "advi's rule: stop when the averaged severity effects are stationary (split R-hat of the "
                "iterates below 1.1) and known to 0.01 on the logit scale (twice their Monte Carlo standard error "
                "and their change over the last window); the ELBO is not what is judged")
        render(section, f"elbo_{method}", title,
               f"Negative evidence lower bound (top, log scale) and its relative change between evaluations (bottom) "
               f"for every {method} fit, one line per seed (merged-subgroup refits dashed); x marks where the fit "
               f"stopped ({rule}).",
               lambda: F.elbo_figure(traces, inference=method, colours=colours))
    nuts_paths = [p for p, attrs in zip(results.fit_paths, results.fit_attrs) if attrs.get("inference") == "nuts"]
    if nuts_paths:
        summary = nuts_summary_from_files(nuts_paths)
        subgroups = [s for s in pd.unique(summary["subgroup"])
                     if s in set(results.tables["perturbation_study"]["subgroup"]) or s == MERGED_SUBGROUP]
        render(section, "nuts_diagnostics", "nuts: R-hat and effective sample size of the severity effects",
               "Rank-normalised R-hat (top) and bulk effective sample size (bottom) of every severity effect γ of "
               "the analysed subgroups, per NUTS fit (merged-subgroup refits in the column 'merged'). Dotted red "
               "lines: the warning limits (R-hat 1.01; ESS 100 per chain).",
               lambda: F.nuts_diagnostics_figure(summary, subgroups=subgroups, colours=colours))
    if not len(traces) and not nuts_paths:
        section.notes.append("No fit kept an ELBO trace or NUTS draws.")
    return section


def nuts_summary_from_files(paths) -> pd.DataFrame:
    """:func:`~perceptiongap.report.figures.nuts_summary` of saved NUTS posteriors (reads only gamma)."""
    import xarray as xr

    datasets = []
    for path in paths:
        with xr.open_dataset(path, group="posterior", engine="h5netcdf") as dataset:
            gamma = dataset[["gamma"]].load()
            gamma.attrs = dict(dataset.attrs)
        datasets.append(gamma)
    return F.nuts_summary(datasets)


def install_figures(staging: Path, figures_dir: Path, earlier: Sequence[Path]) -> list[Path]:
    """Move every file of ``staging`` into ``figures_dir``; remove the ``earlier`` figures not rendered again.

    ``earlier`` are the figure files a previous report wrote (from ``run.json``); any other file
    in ``figures_dir`` is the user's and stays. Returns the installed paths.
    """
    figures_dir.mkdir(parents=True, exist_ok=True)
    installed = []
    for path in sorted(staging.iterdir()):
        target = figures_dir / path.name
        os.replace(path, target)
        installed.append(target)
    names = {path.name for path in installed}
    for path in earlier:
        if path.parent == figures_dir and path.name not in names and path.is_file():
            path.unlink()
    staging.rmdir()
    return installed
