"""The paper's conclusions judged on hand-built tables with known answers: each holds on paper-like
tables and fails on altered copies (negative controls); what a study without the paper's subgroups
or groups is told, and the round trip through tables/conclusions.csv."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from perceptiongap.analysis.conclusions import (
    CONCLUSIONS,
    conclusions_from_table,
    conclusions_table,
    evaluate_conclusions,
)

SEVERITIES = (0.0, 1.0, 4.0)
ROLES = {"human_groups": ["radiologists"], "network_groups": ["gmic"], "filtered_groups": ["gmic_filtered"]}


@dataclass(frozen=True)
class Profile:
    """A group's numbers at 1 and 4 mm (severity 0 has none): the two p-values of an effect, and the
    two measures of its absence (P(gamma > -0.5) and the upper bound of the separability drop)."""

    p_confidence: tuple[float, float]
    p_separability: tuple[float, float]
    above_margin: tuple[float, float]
    drop_upper: tuple[float, float]


AFFECTED = Profile((0.2, 0.001), (0.3, 0.01), (0.6, 0.0), (0.05, 0.4))
#: No effect, shown: tight posteriors inside the margins.
UNAFFECTED = Profile((0.4, 0.5), (0.5, 0.6), (0.99, 0.98), (0.03, 0.05))
#: No significant effect, but no evidence of its absence either: what a noisy fit gives.
INCONCLUSIVE = Profile((0.2, 0.3), (0.2, 0.3), (0.8, 0.7), (0.15, 0.25))


def rows(group: str, subgroup: str, profile: Profile, *, inference="nuts") -> list[dict]:
    """One block of a perturbation table."""
    return [{"inference": inference, "observer_group": group, "subgroup": subgroup, "severity_mm": severity,
             "p_confidence_positive": p_c, "p_confidence_above_margin": above, "p_separability_drop": p_s,
             "separability_drop_upper": upper, "separability_mean": 0.5}
            for severity, p_c, p_s, above, upper in zip(
                SEVERITIES, (np.nan, *profile.p_confidence), (np.nan, *profile.p_separability),
                (np.nan, *profile.above_margin), (np.nan, *profile.drop_upper))]


def paper_like(radiologists_soft=UNAFFECTED, networks_soft=AFFECTED, filtered_soft=UNAFFECTED,
               networks_micro=AFFECTED, radiologists_merged=AFFECTED, pooled=AFFECTED) -> dict[str, pd.DataFrame]:
    """The paper's findings: everyone affected on microcalcifications; on soft tissue lesions only gmic,
    and gmic trained on filtered images keeps its separability; merged, everyone looks affected."""
    table = [*rows("radiologists", "microcalcifications", AFFECTED), *rows("gmic", "microcalcifications", networks_micro),
             *rows("gmic_filtered", "microcalcifications", AFFECTED),
             *rows("radiologists", "soft_tissue_lesions", radiologists_soft),
             *rows("gmic", "soft_tissue_lesions", networks_soft),
             *rows("gmic_filtered", "soft_tissue_lesions", filtered_soft)]
    refit = [*rows("radiologists", "merged", radiologists_merged), *rows("gmic", "merged", AFFECTED)]
    pooled_rows = [*rows("radiologists", "merged", pooled), *rows("gmic", "merged", AFFECTED)]
    merged = pd.concat([pd.DataFrame(refit).assign(merged_by="refit"), pd.DataFrame(pooled_rows).assign(merged_by="pooled")],
                       ignore_index=True)
    return {"perturbation_study": pd.DataFrame(table), "merged_subgroups": merged}


def verdicts(conclusions) -> dict[str, bool | None]:
    return {c.key: c.verdicts["nuts"] for c in conclusions}


def test_the_paper_findings_support_the_paper_conclusions() -> None:
    found = verdicts(evaluate_conclusions(paper_like(), **ROLES))
    assert found == {"microcalcifications": True, "soft_tissue_lesions": True, "annotation_study": None,
                     "merged_subgroups": True}


NO_DROP = Profile((0.5, 0.5), (1.0, 1.0), (1.0, 1.0), (0.0, 0.0))


@pytest.mark.parametrize("altered, refuted", [
    ({"networks_micro": NO_DROP}, {"microcalcifications"}),
    ({"networks_micro": INCONCLUSIVE}, {"microcalcifications"}),
    ({"radiologists_soft": AFFECTED}, {"soft_tissue_lesions", "merged_subgroups"}),
    # p >= 0.05 everywhere is not evidence of no effect:
    ({"radiologists_soft": INCONCLUSIVE}, {"soft_tissue_lesions", "merged_subgroups"}),
    ({"filtered_soft": INCONCLUSIVE}, {"soft_tissue_lesions"}),
    ({"filtered_soft": AFFECTED}, {"soft_tissue_lesions"}),
    ({"networks_soft": NO_DROP}, {"soft_tissue_lesions", "merged_subgroups"}),
    ({"radiologists_merged": UNAFFECTED}, {"merged_subgroups"}),
    ({"radiologists_merged": NO_DROP}, {"merged_subgroups"}),
], ids=["microcalcifications: a network without a drop", "microcalcifications: a network's drop not significant",
        "soft tissue: radiologists affected", "soft tissue: radiologists inconclusive",
        "soft tissue: filtered networks inconclusive", "soft tissue: filtered networks affected",
        "soft tissue: networks without a drop", "merged: radiologists unaffected in the refit",
        "merged: no drop at all in the refit"])
def test_altered_tables_refute_exactly_the_conclusions_they_touch(altered, refuted) -> None:
    """Negative controls: each altered copy of the paper-like tables must fail the conclusions it breaks."""
    found = verdicts(evaluate_conclusions(paper_like(**altered), **ROLES))
    assert {key for key, verdict in found.items() if verdict is False} == refuted
    assert {key for key, verdict in found.items() if verdict is True} == \
           {"microcalcifications", "soft_tissue_lesions", "merged_subgroups"} - refuted


def test_an_unaffected_verdict_shows_its_margins() -> None:
    soft = evaluate_conclusions(paper_like(radiologists_soft=INCONCLUSIVE), **ROLES)[1]
    assert ("radiologists: smallest P(gamma>-0.5) = 0.700 (at 4 mm, needs >= 0.95), largest upper bound of the "
            "separability drop 0.250 (at 4 mm, needs < 0.1)") in soft.evidence["nuts"]


def test_the_merged_verdict_is_the_refits_and_reports_the_pooled_analysis() -> None:
    """The release's pooled analysis is shown beside the refit; changing it does not change the verdict."""
    alike = evaluate_conclusions(paper_like(), **ROLES)[3]
    apart = evaluate_conclusions(paper_like(pooled=UNAFFECTED), **ROLES)[3]
    assert alike.verdicts["nuts"] is True and apart.verdicts["nuts"] is True
    assert "Pooled as the release did (alike)" in alike.evidence["nuts"]
    assert "Pooled as the release did (not alike)" in apart.evidence["nuts"]


def test_tables_without_the_evidence_columns_are_not_judged_on_p_values() -> None:
    """A table written before the margins existed: the no-effect verdicts are not evaluated, not passed."""
    tables = paper_like()
    tables["perturbation_study"] = tables["perturbation_study"].drop(
        columns=["p_confidence_above_margin", "separability_drop_upper"])
    found = verdicts(evaluate_conclusions(tables, **ROLES))
    assert found["microcalcifications"] is True
    assert found["soft_tissue_lesions"] is None and found["merged_subgroups"] is None


def annotation_table(drops: dict[str, float], p_values: dict[str, float]) -> pd.DataFrame:
    """gmic's soft-tissue annotation study: separability 0.8 unfiltered, lower by ``drops`` at 4 mm."""
    return pd.DataFrame([{"observer_group": "gmic", "subgroup": "soft_tissue_lesions", "scheme": scheme,
                          "severity_mm": severity, "separability_mean": 0.8 - (drops[scheme] if severity else 0.0),
                          "separability_sd": 0.02, "p_separability_drop": p_values[scheme] if severity else np.nan}
                         for scheme in ("entire", "roi_exterior", "roi_interior") for severity in (0.0, 4.0)])


PAPER_DROPS = {"entire": 0.30, "roi_exterior": 0.25, "roi_interior": 0.05}
PAPER_P = {"entire": 0.004, "roi_exterior": 0.01, "roi_interior": 0.5}


@pytest.mark.parametrize("drops, p_values, supported", [
    (PAPER_DROPS, PAPER_P, True),
    ({"entire": 0.0, "roi_exterior": 0.0, "roi_interior": 0.0}, {k: 1.0 for k in PAPER_P}, False),
    ({"entire": -0.1, "roi_exterior": -0.1, "roi_interior": -0.3}, {k: 1.0 for k in PAPER_P}, False),
    (PAPER_DROPS, {**PAPER_P, "roi_exterior": 0.2}, False),
    (PAPER_DROPS, {**PAPER_P, "entire": 0.2}, False),
    ({**PAPER_DROPS, "roi_exterior": 0.10}, PAPER_P, False),
    ({**PAPER_DROPS, "roi_interior": 0.20}, PAPER_P, False),
], ids=["the paper's pattern", "no drops at all", "separability rises", "exterior drop not significant",
        "entire-image drop not significant", "exterior hurts less than half", "interior hurts as much"])
def test_the_annotation_rule_needs_significant_drops_in_the_paper_pattern(drops, p_values, supported) -> None:
    tables = {**paper_like(), "annotation_study": annotation_table(drops, p_values)}
    found = verdicts(evaluate_conclusions(tables, **ROLES))
    assert found["annotation_study"] is supported


def test_the_annotation_evidence_writes_each_p_value_once_with_one_relation() -> None:
    p_values = {"entire": 0.004, "roi_exterior": 0.0004, "roi_interior": 0.5}
    tables = {**paper_like(), "annotation_study": annotation_table(PAPER_DROPS, p_values)}
    evidence = next(c for c in evaluate_conclusions(tables, **ROLES) if c.key == "annotation_study").evidence
    text = next(iter(evidence.values()))
    assert "entire 0.30 (p = 0.004), exterior 0.25 (p < 0.001), interior 0.05 (p = 0.500)" in text, text
    assert "p==" not in text and "p=<" not in text


def test_evidence_prints_plain_p_values() -> None:
    conclusion = evaluate_conclusions(paper_like(), **ROLES)[0]
    assert conclusion.evidence["nuts"] == ("radiologists at 4 mm: P(gamma>0) = 0.001, separability p = 0.010; "
                                          "gmic at 4 mm: P(gamma>0) = 0.001, separability p = 0.010")


def test_a_study_without_the_paper_subgroups_is_told_why_nothing_is_evaluated() -> None:
    tables = paper_like()
    tables["perturbation_study"]["subgroup"] = tables["perturbation_study"]["subgroup"].map(
        {"microcalcifications": "mass", "soft_tissue_lesions": "calcification"})
    conclusions = evaluate_conclusions(tables, **ROLES, merged_subgroups=("mass", "calcification"))
    assert verdicts(conclusions) == dict.fromkeys(CONCLUSIONS)
    evidence = {c.key: c.evidence["nuts"] for c in conclusions}
    assert evidence["microcalcifications"] == "not evaluated (this study has no microcalcifications subgroup)"
    assert evidence["merged_subgroups"].startswith("not evaluated (this study has no merged refit of "
                                                   "microcalcifications and soft_tissue_lesions; it merged mass and "
                                                   "calcification and no soft_tissue_lesions subgroup")


def test_a_study_without_humans_or_filtered_networks_says_so() -> None:
    conclusions = evaluate_conclusions(paper_like(), human_groups=[], network_groups=["gmic"], filtered_groups=[])
    evidence = {c.key: c.evidence["nuts"] for c in conclusions}
    assert verdicts(conclusions) == dict.fromkeys(CONCLUSIONS)
    assert evidence["microcalcifications"] == "not evaluated (this study has no human observer group)"
    assert "no network trained on filtered images" in evidence["soft_tissue_lesions"]
    assert "annotation study" in evidence["annotation_study"]


def test_conclusions_read_back_from_their_csv_are_the_ones_written(tmp_path) -> None:
    written = evaluate_conclusions(paper_like(radiologists_soft=AFFECTED), **ROLES)
    conclusions_table(written).to_csv(tmp_path / "conclusions.csv", index=False)
    back = conclusions_from_table(pd.read_csv(tmp_path / "conclusions.csv"))
    assert [(c.key, c.statement, c.rule, c.verdicts, c.evidence) for c in back] == \
           [(c.key, c.statement, c.rule, c.verdicts, c.evidence) for c in written]
    assert {c.verdicts["nuts"] for c in back} == {True, False, None}


@pytest.mark.parametrize(("cell", "verdict"), [("True", True), ("False", False), ("", None), (np.nan, None)])
def test_a_verdict_cell_reads_as_true_false_or_not_evaluated(cell, verdict) -> None:
    table = pd.DataFrame({"conclusion": ["microcalcifications"], "inference": ["nuts"], "supported": [cell],
                          "evidence": ["x"]})
    assert conclusions_from_table(table)[0].verdicts == {"nuts": verdict}
