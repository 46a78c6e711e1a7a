"""The fits table's warnings grouped by kind, method and observer group, with counts, expected kinds first."""

from __future__ import annotations

import pandas as pd

from perceptiongap.analysis.fits import FITS_COLUMNS, warning_groups, warning_summary


def fits(rows):
    return pd.DataFrame([{column: None for column in FITS_COLUMNS} | row for row in rows], columns=list(FITS_COLUMNS))


TABLE = fits(
    [{"inference": "stan-advi", "observer_group": "gmic", "merged": False, "seed": s,
      "warnings": f"stan-advi fit of gmic (seed {s}): Pareto k-hat 1.{s}0 > 0.7: the mean-field approximation is poor"}
     for s in range(3)]
    + [{"inference": "stan-advi", "observer_group": "gmic", "merged": True, "seed": 0,
        "warnings": "stan-advi fit of gmic (seed 0, merged subgroups): Pareto k-hat 2.00 > 0.7: poor"},
       {"inference": "nuts", "observer_group": "dmv", "merged": True, "seed": 0,
        "warnings": "nuts fit of dmv (seed 0, merged subgroups): R-hat of the severity effects up to 1.0192 (> 1.01), "
                    "gamma of occult at 0.5 mm, not an analysed subgroup: it enters no table, figure or conclusion"
                    " | nuts fit of dmv (seed 0, merged subgroups): 3 divergent transitions"},
       {"inference": "nuts", "observer_group": "gmic", "merged": False, "seed": 0, "warnings": ""}]
)


def test_warnings_are_grouped_by_kind_method_and_group_with_counts():
    groups = warning_groups(TABLE)
    assert list(zip(groups["kind"], groups["observer_group"], groups["merged"], groups["fits"])) == [
        ("Pareto k-hat", "gmic", False, 3), ("Pareto k-hat", "gmic", True, 1),
        ("R-hat", "dmv", True, 1), ("divergences", "dmv", True, 1)]
    assert list(groups["expected"]) == [True, True, False, False]
    assert groups["warnings"][0][1].startswith("stan-advi fit of gmic (seed 1)")


def test_the_same_warnings_under_two_models_are_two_groups():
    row = {"inference": "nuts", "observer_group": "gmic", "merged": False, "seed": 0,
           "warnings": "nuts fit of gmic (seed 0): 2 divergent transitions"}
    groups = warning_groups(fits([row | {"model": "release"}, row | {"model": "label_specific"},
                                  row | {"model": "label_specific"}]))
    assert list(zip(groups["model"], groups["fits"])) == [("release", 1), ("label_specific", 2)]


def test_the_terminal_summary_says_what_is_expected_and_lists_the_rest():
    lines = warning_summary(TABLE)
    assert len(lines) == 3
    assert lines[0].startswith("4 stan-advi fit(s) with Pareto k-hat warnings (gmic 3, gmic (merged) 1): expected")
    assert "not expected" in lines[1] and "gamma of occult at 0.5 mm" in lines[1] and "enters no" in lines[1]
    assert "3 divergent transitions" in lines[2]


def test_a_table_without_warnings_has_no_groups():
    assert warning_groups(fits([{"inference": "nuts", "observer_group": "g", "merged": False,
                                 "warnings": float("nan")}])).empty
    assert warning_summary(fits([])) == []
