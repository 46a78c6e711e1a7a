"""Which subgroups a study analyses (the user's, the paper's by default) and relabelling them for the
Simpson's-paradox refit."""

from __future__ import annotations

import pandas as pd
import pytest

from perceptiongap.analysis import merge_subgroups, merged_subgroup_name
from perceptiongap.analysis.subgroups import choose_subgroups, parse_subgroups, subgroup_order
from perceptiongap.errors import InputError


def test_merges_the_two_lesion_subgroups_and_leaves_the_rest() -> None:
    cases = pd.DataFrame({"exam": ["1", "1", "2", "2"], "breast": ["L", "R", "L", "R"],
                          "label": ["malignant", "benign", "malignant", "nonbiopsied"],
                          "subgroup": ["microcalcifications", "soft_tissue_lesions", "mixed", "nonbiopsied"]})
    merged = merge_subgroups(cases)
    assert merged_subgroup_name() == "microcalcifications+soft_tissue_lesions"
    assert list(merged["subgroup"]) == [merged_subgroup_name()] * 2 + ["mixed", "nonbiopsied"]
    assert list(cases["subgroup"])[0] == "microcalcifications"  # the input is not modified
    assert merged[["exam", "breast", "label"]].equals(cases[["exam", "breast", "label"]])


def test_absent_subgroup_is_refused() -> None:
    cases = pd.DataFrame({"exam": ["1"], "breast": ["L"], "label": ["malignant"], "subgroup": ["mixed"]})
    with pytest.raises(InputError, match="no case has subgroup 'microcalcifications'"):
        merge_subgroups(cases)


# --------------------------------------------------------------------------------------------
# Which subgroups a study analyses


def cases_with(subgroups_and_labels: list[tuple[str, str]]) -> pd.DataFrame:
    n = len(subgroups_and_labels)
    return pd.DataFrame({"exam": [str(i // 2) for i in range(n)], "breast": ["L", "R"] * (n // 2) + ["L"] * (n % 2),
                         "subgroup": [s for s, _ in subgroups_and_labels],
                         "label": [label for _, label in subgroups_and_labels]})


PAPER_CASES = cases_with([("microcalcifications", "malignant"), ("soft_tissue_lesions", "malignant"),
                          ("mixed", "malignant"), ("nonbiopsied", "nonbiopsied"), ("occult", "benign")])
OWN_CASES = cases_with([("mass", "malignant"), ("calcification", "malignant"), ("distortion", "malignant"),
                        ("mass", "benign"), ("normal", "nonbiopsied")])


def test_the_paper_pair_is_the_default_when_present() -> None:
    choice = choose_subgroups(PAPER_CASES)
    assert choice.analysed == ("microcalcifications", "soft_tissue_lesions")
    assert choice.merged == ("microcalcifications", "soft_tissue_lesions")
    assert "the paper's pair" in choice.how


def test_a_study_of_its_own_analyses_every_subgroup_with_a_malignant_breast() -> None:
    choice = choose_subgroups(OWN_CASES)
    assert choice.analysed == ("mass", "calcification", "distortion")  # 'normal' has no malignant breast
    assert choice.merged is None  # three subgroups: which two to merge is the user's to say
    assert "no merged refit" in choice.how and "a+b" in choice.how


def test_half_the_paper_pair_falls_back_to_the_subgroups_with_malignant_breasts() -> None:
    """The case of issue 9: microcalcifications but no soft tissue lesions is not an error."""
    cases = cases_with([("microcalcifications", "malignant"), ("mixed", "malignant"), ("occult", "benign")])
    choice = choose_subgroups(cases)
    assert choice.analysed == ("microcalcifications", "mixed")
    assert choice.merged == ("microcalcifications", "mixed")  # exactly two analysed: merged by default
    assert choose_subgroups(cases, merged=False).merged is None


def test_the_user_names_the_subgroups_and_the_merged_pair() -> None:
    choice = choose_subgroups(OWN_CASES, "mass+calcification,distortion")
    assert choice.analysed == ("mass", "calcification", "distortion")
    assert choice.merged == ("mass", "calcification")
    assert choose_subgroups(OWN_CASES, ["distortion"]).analysed == ("distortion",)
    assert parse_subgroups(" a + b , c ") == (("a", "b", "c"), ("a", "b"))


@pytest.mark.parametrize(("subgroups", "message"), [
    ("mass,lump", "'lump' is not a subgroup of the cases (they have mass, calcification, distortion, normal)"),
    ("mass,normal", "subgroup 'normal' has no malignant breast"),
    ("mass+calcification,mass", "subgroup 'mass' is given twice"),
    ("mass+calcification,distortion+mass", "only one merged group"),
    (",", "no subgroups given"),
    ("mass+", "empty subgroup name"),
])
def test_bad_subgroup_choices_are_one_line_naming_the_option(subgroups, message) -> None:
    with pytest.raises(InputError) as info:
        choose_subgroups(OWN_CASES, subgroups)
    assert info.value.source == "subgroups" and message in info.value.message


def test_a_merged_pair_without_the_merged_refit_is_refused() -> None:
    with pytest.raises(InputError, match="asks for a merged refit, but `merged` is off"):
        choose_subgroups(OWN_CASES, "mass+calcification", merged=False)


def test_a_study_without_malignant_breasts_has_nothing_to_analyse() -> None:
    cases = cases_with([("mass", "benign"), ("normal", "nonbiopsied")])
    with pytest.raises(InputError, match="^cases.csv: column 'label': no breast is malignant"):
        choose_subgroups(cases, source="cases.csv")


def test_the_model_orders_the_merged_then_the_analysed_then_the_paper_subgroups() -> None:
    assert subgroup_order(choose_subgroups(PAPER_CASES)) == (
        "merged", "microcalcifications", "soft_tissue_lesions", "mixed", "occult", "nonbiopsied")
    assert subgroup_order(choose_subgroups(OWN_CASES, "distortion,mass"))[:3] == ("merged", "distortion", "mass")
