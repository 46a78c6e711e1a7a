"""The paper's conclusions judged on tables with known answers, what a study without the paper's
subgroups or groups is told, and the round trip through tables/conclusions.csv."""

from __future__ import annotations

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


def rows(group: str, subgroup: str, p_confidence: tuple, p_separability: tuple, *, inference="nuts") -> list[dict]:
    """One block of a perturbation table: the p-values at severities 1 and 4 mm (severity 0 has none)."""
    return [{"inference": inference, "observer_group": group, "subgroup": subgroup, "severity_mm": severity,
             "p_confidence_positive": p_c, "p_separability_drop": p_s, "separability_mean": 0.5}
            for severity, p_c, p_s in zip(SEVERITIES, (np.nan, *p_confidence), (np.nan, *p_separability))]


AFFECTED, UNAFFECTED = ((0.2, 0.001), (0.3, 0.01)), ((0.4, 0.3), (0.5, 0.6))


def paper_like(radiologists_soft=UNAFFECTED) -> dict[str, pd.DataFrame]:
    """The paper's findings: everyone affected on microcalcifications; on soft tissue lesions only gmic,
    and gmic trained on filtered images keeps its separability."""
    table = [*rows("radiologists", "microcalcifications", *AFFECTED), *rows("gmic", "microcalcifications", *AFFECTED),
             *rows("gmic_filtered", "microcalcifications", *AFFECTED),
             *rows("radiologists", "soft_tissue_lesions", *radiologists_soft),
             *rows("gmic", "soft_tissue_lesions", *AFFECTED),
             *rows("gmic_filtered", "soft_tissue_lesions", (0.01, 0.01), (0.5, 0.4))]
    merged = [*rows("radiologists", "merged", *AFFECTED), *rows("gmic", "merged", *AFFECTED)]
    return {"perturbation_study": pd.DataFrame(table), "merged_subgroups": pd.DataFrame(merged)}


def verdicts(conclusions) -> dict[str, bool | None]:
    return {c.key: c.verdicts["nuts"] for c in conclusions}


def test_the_paper_findings_support_the_paper_conclusions() -> None:
    found = verdicts(evaluate_conclusions(paper_like(), **ROLES))
    assert found == {"microcalcifications": True, "soft_tissue_lesions": True, "annotation_study": None,
                     "merged_subgroups": True}


def test_radiologists_affected_on_soft_tissue_lesions_refute_the_soft_tissue_and_merged_conclusions() -> None:
    """Negative control: the same tables, but radiologists lose confidence on soft tissue lesions too."""
    found = verdicts(evaluate_conclusions(paper_like(radiologists_soft=AFFECTED), **ROLES))
    assert found["microcalcifications"] is True
    assert found["soft_tissue_lesions"] is False and found["merged_subgroups"] is False


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
