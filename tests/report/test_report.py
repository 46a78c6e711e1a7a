"""The HTML report and `perceptiongap report`: conclusions, figures, provenance, no external references."""

from __future__ import annotations

import json
import re
import shlex
from html import unescape
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from perceptiongap.analysis.conclusions import evaluate_conclusions
from perceptiongap.report.html import render_html, report_context
from perceptiongap.report.render import _preview_section
from perceptiongap.results import read_results

from ..cli.helpers import run_cli


class Elements(HTMLParser):
    """Every start tag with its attributes, and the text."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def parse(html: str) -> Elements:
    elements = Elements()
    elements.feed(html)
    return elements


@pytest.fixture(scope="module")
def report(reported) -> tuple[Path, str, Elements]:
    folder, _, code = reported
    assert code == 0
    html = (folder / "report.html").read_text(encoding="utf-8")
    return folder, html, parse(html)


def plain_text(elements: Elements) -> str:
    return re.sub(r"\s+", " ", "".join(elements.text))


def test_report_rerenders_without_refitting(reported) -> None:
    folder, before, code = reported
    assert code == 0
    after = {p: p.stat().st_mtime_ns for p in (folder / "posteriors").rglob("*.nc")}
    assert after == before
    assert (folder / "report.html").is_file()


def test_every_conclusion_is_stated_with_a_verdict_per_method(report, simulated_results) -> None:
    folder, html, elements = report
    text = plain_text(elements)
    tables = {name: pd.read_csv(folder / "tables" / f"{name}.csv")
              for name in ("perturbation_study", "merged_subgroups", "annotation_study")}
    conclusions = evaluate_conclusions(tables, human_groups=["radiologists"], network_groups=["gmic"],
                                       filtered_groups=["gmic_filtered"])
    assert len(conclusions) == 4
    for conclusion in conclusions:
        assert conclusion.statement in text
        row = unescape(re.search(rf'<tr id="conclusion-{conclusion.key}">(.*?)</tr>', html, re.S).group(1))
        for method in ("stan-advi", "nuts"):
            verdict = {True: "supported", False: "not supported", None: "not evaluated"}[conclusion.verdicts[method]]
            assert f">{verdict}<" in row
            assert conclusion.evidence[method] in re.sub(r"\s+", " ", row)


def test_every_figure_is_written_and_embedded(report) -> None:
    folder, html, elements = report
    pngs = sorted(p.stem for p in (folder / "figures").glob("*.png"))
    svgs = sorted(p.stem for p in (folder / "figures").glob("*.svg"))
    assert pngs == svgs
    expected = {
        *(f"perturbation_study_gmic_{s}_{m}" for s in ("microcalcifications", "soft_tissue_lesions")
          for m in ("stan-advi", "nuts")),
        "merged_subgroups_gmic_stan-advi",  # nuts was not run on the merged subgroups here
        # the release's pooled analysis needs no refit, so it exists for every method of the separate fits
        "merged_subgroups_pooled_gmic_stan-advi", "merged_subgroups_pooled_gmic_nuts",
        "annotation_study_gmic",
        "inference_comparison_microcalcifications", "inference_comparison_soft_tissue_lesions",
        "filtering_preview", "elbo_stan-advi", "nuts_diagnostics",
        *(f"ppc_{group}" for group in ("radiologists", "gmic", "gmic_filtered")),  # a check per observer group
        "accuracy", "error_consistency",  # the reader-study statistics
    }
    assert set(pngs) == expected
    embedded = [attrs["src"] for tag, attrs in elements.tags if tag == "img"]
    assert len(embedded) == len(expected)
    assert all(src.startswith(("data:image/svg+xml;base64,", "data:image/png;base64,")) for src in embedded)
    for name in expected:
        assert f'id="figure-{name}"' in html


def test_cells_where_the_methods_disagree_are_listed(report) -> None:
    folder, html, _ = report
    table = pd.read_csv(folder / "tables" / "perturbation_study.csv")
    section = unescape(html.split('id="disagreements"')[1].split('class="section"')[0])
    listed = 0
    for p_column in ("p_confidence_positive", "p_separability_drop"):
        wide = table.pivot_table(index=["observer_group", "subgroup", "severity_mm"], columns="inference",
                                 values=p_column)[["stan-advi", "nuts"]].dropna()
        split = wide[(wide["stan-advi"] < 0.05) != (wide["nuts"] < 0.05)]
        for (group, subgroup, severity), p in split.iterrows():
            shown = ["<0.001" if v < 0.001 else f"{v:.3f}" for v in (p["stan-advi"], p["nuts"])]
            cells = [group, subgroup, f"{severity:g}", *shown]
            assert re.search(r"</td>\s*<td[^>]*>".join(re.escape(c) for c in cells[:3]), section), cells
            assert all(f">{c}<" in section for c in cells[3:]), cells  # unescaped: '<0.001' reads as-is
            listed += 1
    if listed == 0:  # the methods happened to agree everywhere: the report must say so
        assert "No severity where the inference methods disagree on significance." in section


def test_pngs_are_300_dpi(report) -> None:
    from PIL import Image

    folder, _, _ = report
    with Image.open(folder / "figures" / "perturbation_study_gmic_microcalcifications_nuts.png") as image:
        assert image.info["dpi"] == pytest.approx((300, 300), abs=0.01)


def test_provenance_is_shown(report) -> None:
    folder, html, elements = report
    run = json.loads((folder / "run.json").read_text())
    text = plain_text(elements)
    assert shlex.join(run["command"]) in text  # as a shell would take it: arguments with spaces quoted
    for name, digest in run["input_sha256"].items():
        assert name in text and digest in text
    for package, version in run["packages"].items():
        assert re.search(rf"<td>{re.escape(package)}</td><td[^>]*>{re.escape(version)}</td>", html)
    assert f"{run['run_seconds']} s" in text


def test_diagnostics_and_their_warnings_are_shown(report) -> None:
    folder, html, elements = report
    fits = pd.read_csv(folder / "tables" / "fits.csv")
    text = plain_text(elements)
    warnings = [w for cell in fits["warnings"].dropna() for w in cell.split(" | ")]
    assert warnings  # short NUTS chains and stan-advi's early stop give some here
    for warning in warnings:
        assert warning in text


def test_the_report_references_nothing_outside_itself(report) -> None:
    _, html, elements = report
    for tag, attrs in elements.tags:
        for attribute in ("src", "href", "srcset", "data", "action", "poster"):
            value = attrs.get(attribute)
            if value is None:
                continue
            assert value.startswith(("data:", "#")), f"<{tag} {attribute}={value[:60]!r}>"
        assert tag not in ("link", "script", "iframe", "object", "embed"), tag
    assert not re.search(r"https?://", html)
    assert "@import" not in html and not re.search(r"url\(\s*['\"]?(?!data:)", html)


def test_a_missing_run_record_is_said(simulated_results) -> None:
    results = read_results(simulated_results)
    results.run, results.run_problem = None, "run.json is missing"
    html = render_html(report_context(results, []))
    assert "No provenance:" in html and "run.json is missing" in html


def test_missing_sample_mammograms_skip_the_filtering_figure_with_a_note(tmp_path) -> None:
    section = _preview_section(lambda *args, **kwargs: pytest.fail("must not render"), tmp_path / "nowhere")
    assert section.figures == []
    assert "not found" in section.notes[0] and "PERCEPTIONGAP_SHARED" in section.notes[0]


@pytest.mark.parametrize("make", [
    lambda tmp: tmp,  # an empty folder
    lambda tmp: tmp / "missing",
    lambda tmp: (tmp / "posteriors").mkdir() or tmp,  # fits but no tables
])
def test_report_refuses_a_folder_that_is_not_a_results_folder(make, tmp_path, capsys) -> None:
    folder = make(tmp_path)
    code, _, err = run_cli(["report", folder], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "not a results folder" in lines[0]
    assert not (tmp_path / "report.html").exists() and not (tmp_path / "figures").exists()


# --------------------------------------------------------------------------------------------
# Issue 17: the report's text states this run's numbers


def _prose(html: str) -> str:
    """The report's own sentences (its opening, the conclusions and where the methods disagree), without tables; the
    later sections print tables' numbers through code (figures, diagnostics summary, provenance)."""
    body = html.split('class="section"', 1)[0]
    body = re.sub(r'<p class="meta">.*?</p>', " ", body, flags=re.S)  # folder, date and version
    body = re.sub(r"<(table|figure|details|style|nav)\b.*?</\1>", " ", body, flags=re.S)
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", body)))


def altered(results, *, stops: tuple[int, int], significant: int, fits: int, median_p: float):
    """``results`` with stan-advi's stopping iterations, gmic's soft-tissue drop at the most severe filter
    (significant in ``significant`` of ``fits`` seeds, median p): numbers no simulated run gives."""
    tables = {name: table.copy() for name, table in results.tables.items()}
    fit_rows = tables["fits"]["inference"] == "stan-advi"
    tables["fits"].loc[fit_rows, "iterations"] = np.linspace(stops[0], stops[1], int(fit_rows.sum())).round()
    table = tables["perturbation_study"]
    rows = table["inference"] == "stan-advi"
    table.loc[rows, "fits"] = fits
    table.loc[rows, ["frac_separability_significant"]] = 0.0
    cell = rows & (table["observer_group"] == "gmic") & (table["subgroup"] == "soft_tissue_lesions") & (
        table["severity_mm"] == table["severity_mm"].max())
    assert cell.sum() == 1
    table.loc[cell, "frac_separability_significant"] = significant / fits
    table.loc[cell, "p_separability_drop"] = median_p
    results.tables = tables
    return results


@pytest.mark.parametrize(("stops", "significant", "fits", "median_p"), [((321, 654), 1, 5, 0.0371),
                                                                        ((777, 778), 4, 7, 0.0004)])
def test_the_reports_sentences_follow_the_numbers_of_its_tables(simulated_results, stops, significant, fits, median_p):
    """Built from tables with known, altered numbers, the text states those numbers, and no sentence states a
    number that is neither in the tables nor a named constant (the paper's p = 0.004, METHOD's 0.05 and 0.01)."""
    results = read_results(simulated_results)
    subgroups = list(pd.unique(results.tables["perturbation_study"]["subgroup"]))
    # The simulated study names its subgroups a, b: call the second the paper's soft tissue lesions.
    results.tables["perturbation_study"]["subgroup"] = results.tables["perturbation_study"]["subgroup"].replace(
        {subgroups[-1]: "soft_tissue_lesions"})
    results = altered(results, stops=stops, significant=significant, fits=fits, median_p=median_p)
    text = _prose(render_html(report_context(results, [])))
    assert f"after {stops[0]}-{stops[1]} iterations" in text
    severity = f"{results.tables['perturbation_study']['severity_mm'].max():g}"
    expected_p = "< 0.001" if median_p < 0.001 else f"= {median_p:.3f}"
    assert (f"the drop in gmic's separability on soft_tissue_lesions at {severity} mm has p < 0.05 in {significant} "
            f"of {fits} stan-advi seeds (median p {expected_p})") in text
    assert "3 of 5" not in text  # the number measured once with Stan, which the report used to state as this run's
    # Every number in the prose is one of this run's (tables) or a named constant.
    allowed = {str(stops[0]), str(stops[1]), str(significant), str(fits), severity, expected_p.split()[-1],
               "0.05", "0.01", "0.004", "7", "5a", "2022", "300", "0", "1", "2"}
    allowed |= {str(len(results.tables["fits"])), str(results.tables["fits"]["inference"].nunique())}
    table = results.tables["perturbation_study"]
    nuts = table[(table["inference"] == "nuts") & (table["observer_group"] == "gmic")
                 & (table["subgroup"] == "soft_tissue_lesions") & (table["severity_mm"] == table["severity_mm"].max())]
    if len(nuts):  # the same cell under exact inference, stated beside it
        nuts_p = nuts["p_separability_drop"].iloc[0]
        allowed.add("0.001" if nuts_p < 0.001 else f"{nuts_p:.3f}")
        assert f"and p {'<' if nuts_p < 0.001 else '='} {'0.001' if nuts_p < 0.001 else f'{nuts_p:.3f}'} under nuts" in text
    limits = {"1.01", "100", "0.7"}
    stated = set(re.findall(r"(?<![\w.])\d+(?:\.\d+)?[a-z]?(?![\w])", text))
    assert stated <= allowed | limits | _warning_counts(results), stated - allowed - limits


def _warning_counts(results) -> set[str]:
    from perceptiongap.analysis.fits import warning_groups

    groups = warning_groups(results.tables["fits"])
    return {str(int(groups["fits"].sum()) if len(groups) else 0), str(len(groups)),
            *(str(n) for n in groups["fits"])}


def test_warnings_are_grouped_with_counts_and_the_long_tables_fold_away(report) -> None:
    folder, html, elements = report
    fits = pd.read_csv(folder / "tables" / "fits.csv")
    count = sum(len(cell.split(" | ")) for cell in fits["warnings"].dropna() if cell)
    assert f"{count} warning" in plain_text(elements)
    summaries = re.findall(r'<details class="warnings[^"]*">\s*<summary>(.*?)</summary>', html, flags=re.S)
    assert summaries and all(re.match(r"[\w -]+: \d+ [\w-]+ fits? of \w+", s) for s in summaries)
    for name in ("perturbation_study", "fits"):
        assert re.search(rf'<details class="table"><summary>tables/{name}\.csv: \d+ ', html)
    assert "P(gamma>0)=" not in html and "=<" not in html


def table_cells(html: str, table_id: str) -> tuple[list[str], list[list[str]]]:
    """Header and body cells (as shown) of the report's table with ``table_id``."""
    table = re.search(rf'<table id="{table_id}">(.*?)</table>', html, re.S).group(1)
    header = [unescape(re.sub(r"<[^>]+>", "", cell)) for cell in re.findall(r"<th>(.*?)</th>", table, re.S)]
    rows = [[unescape(cell) for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
            for row in re.findall(r"<tr>(.*?)</tr>", table.split("<tbody>")[1], re.S)]
    return header, rows


def test_the_reader_study_section_shows_the_numbers_of_the_statistics_tables(report) -> None:
    folder, html, elements = report
    summary = pd.read_csv(folder / "tables" / "accuracy_summary.csv")
    summary = summary[summary["scheme"] == "entire"]
    header, rows = table_cells(html, "table-accuracy")
    assert header[:2] == ["observer_group", "statistic"]
    severities = [float(column.removesuffix(" mm")) for column in header[2:]]
    assert severities == sorted(summary["severity_mm"].unique())
    shown = {}
    for group, statistic, *cells in rows:
        subgroup = {"sensitivity: microcalcifications": "microcalcifications",
                    "sensitivity: soft tissue lesions": "soft_tissue_lesions"}.get(statistic, "all")
        column = "specificity_mean" if statistic == "specificity" else "sensitivity_mean"
        point = "reader_decision" if group == "radiologists" else "readers_mean_specificity"
        expected = summary[(summary["observer_group"] == group) & (summary["subgroup"] == subgroup)
                           & (summary["operating_point"] == point)].set_index("severity_mm")[column]
        assert cells == [f"{expected[s]:.3f}" for s in severities], (group, statistic)
        shown[group, statistic] = cells
    assert {group for group, _ in shown} == {"radiologists", "gmic", "gmic_filtered"}
    assert len(shown) == 3 * 4

    consistency = pd.read_csv(folder / "tables" / "error_consistency.csv")
    consistency = consistency[consistency["scheme"] == "entire"]
    header, rows = table_cells(html, "table-error-consistency")
    assert header == ["pair_kind", "n_severities", "microcalcifications", "soft_tissue_lesions", "merged", "all"]
    assert [row[0] for row in rows] == ["human-human", "human-network", "network-network"]
    for kind, _, *cells in rows:
        means = consistency[consistency["pair_kind"] == kind].groupby("subgroup")["kappa_mean"].mean()
        assert cells == [f"{means[subgroup]:.3f}" for subgroup in header[2:]], kind

    text = plain_text(elements)
    readers = summary[(summary["observer_group"] == "radiologists") & (summary["subgroup"] == "all")]
    before, after = (readers.set_index("severity_mm")["sensitivity_mean"][s] for s in (0.0, max(severities)))
    assert f"all malignant breasts {before:.2f} → {after:.2f}" in text
    all_pairs = consistency[consistency["subgroup"] == "all"].groupby("pair_kind")["kappa_mean"].mean()
    assert (f"{all_pairs['human-human']:.2f} for pairs of readers, {all_pairs['human-network']:.2f} for "
            f"reader-network pairs, {all_pairs['network-network']:.2f} for pairs of networks") in text
    assert '<a href="#statistics">' in html


def test_a_folder_analysed_before_the_statistics_existed_still_reports_and_says_so(results_copy, capsys) -> None:
    folder = results_copy("older")
    for name in ("accuracy", "accuracy_summary", "error_consistency", "error_consistency_pairs"):
        (folder / "tables" / f"{name}.csv").unlink()
    record = json.loads((folder / "run.json").read_text())
    del record["statistics"]  # as an older version wrote run.json
    (folder / "run.json").write_text(json.dumps(record))
    code, _, err = run_cli(["report", folder], capsys)
    assert code == 0, err
    text = plain_text(parse((folder / "report.html").read_text(encoding="utf-8")))
    assert ("No tables/accuracy_summary.csv or tables/error_consistency.csv in this results folder: the folder was "
            "analysed before perceptiongap computed them; run perceptiongap analyse on it to add them.") in text
    assert not (folder / "figures" / "accuracy.png").exists()
    assert (folder / "figures" / "elbo_stan-advi.png").exists()  # the rest of the report is there
