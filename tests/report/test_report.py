"""The HTML report and `perceptiongap report`: conclusions, figures, provenance, no external references."""

from __future__ import annotations

import json
import re
from html import unescape
from html.parser import HTMLParser
from pathlib import Path

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
        "annotation_study_gmic",
        "inference_comparison_microcalcifications", "inference_comparison_soft_tissue_lesions",
        "filtering_preview", "elbo_stan-advi", "nuts_diagnostics",
        *(f"ppc_{group}" for group in ("radiologists", "gmic", "gmic_filtered")),  # a check per observer group
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
    assert " ".join(run["command"]) in text
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
