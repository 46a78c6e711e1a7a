"""The study data model: what a valid table is, and the one-line errors for bad ones."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from perceptiongap.errors import InputError
from perceptiongap.study import (
    check_observations_have_cases,
    read_cases,
    read_observations,
    read_study,
    validate_cases,
    validate_observations,
    write_table,
)


def make_observations(**overrides) -> pd.DataFrame:
    rows = {
        "observer_group": ["radiologists", "radiologists", "gmic"],
        "observer": ["r1", "r1", "seed0"],
        "observer_kind": ["human", "human", "machine"],
        "exam": ["e1", "e1", "e1"],
        "breast": ["L", "R", "L"],
        "severity_mm": [0.0, 0.0, 4.0],
        "scheme": ["entire", "entire", "entire"],
        "annotator": ["", "", ""],
        "prediction": [1.0, 0.0, 0.37],
    }
    rows.update(overrides)
    return pd.DataFrame(rows)


def make_cases() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "exam": ["e1", "e1"],
            "breast": ["L", "R"],
            "label": ["malignant", "benign"],
            "subgroup": ["microcalcifications", "nonbiopsied"],
        }
    )


def test_valid_tables_round_trip_through_parquet_and_csv(tmp_path):
    observations = validate_observations(make_observations())
    cases = validate_cases(make_cases())
    for suffix in (".parquet", ".csv"):
        write_table(observations, tmp_path / f"obs{suffix}")
        write_table(cases, tmp_path / f"cases{suffix}")
        back, back_cases = read_study(tmp_path / f"obs{suffix}", tmp_path / f"cases{suffix}")
        pd.testing.assert_frame_equal(back, observations)
        pd.testing.assert_frame_equal(back_cases, cases)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"prediction": [1.0, 0.0, 1.3]}, "column 'prediction', row 3: 1.3 is outside [0, 1]"),
        ({"prediction": [1.0, 0.5, 0.2]}, "column 'prediction', row 2: human predictions must be 0 or 1"),
        ({"breast": ["L", "X", "L"]}, "column 'breast', row 2: 'X' is not one of L, R"),
        ({"scheme": ["entire", "whole", "entire"]}, "column 'scheme', row 2"),
        ({"observer_kind": ["human", "robot", "machine"]}, "column 'observer_kind', row 2"),
        ({"breast": ["L", "L", "L"], "observer": ["r1", "r1", "r1"], "severity_mm": [0.0, 0.0, 0.0]},
         "row 2: duplicate observation"),
        ({"severity_mm": [0.0, "abc", 1.0]}, "column 'severity_mm', row 2: 'abc' is not a finite number"),
        ({"scheme": ["entire", "entire", "roi_interior"]}, "column 'annotator', row 3: ROI schemes need an annotator"),
    ],
)
def test_bad_observations_name_file_column_and_first_bad_row(overrides, message):
    with pytest.raises(InputError) as info:
        validate_observations(make_observations(**overrides), source="obs.csv")
    text = str(info.value)
    assert text.startswith("obs.csv: ")
    assert message in text
    assert "\n" not in text


def test_missing_columns_are_named():
    with pytest.raises(InputError, match=r"obs.csv: missing column\(s\) 'prediction'"):
        validate_observations(make_observations().drop(columns="prediction"), source="obs.csv")


def test_unknown_label_is_refused():
    cases = make_cases()
    cases.loc[1, "label"] = "suspicious"
    with pytest.raises(InputError, match="column 'label', row 2: 'suspicious' is not one of"):
        validate_cases(cases, source="cases.csv")


def test_observations_of_unknown_cases_are_refused():
    observations = validate_observations(make_observations(exam=["e1", "e1", "e9"]))
    with pytest.raises(InputError, match="row 3: exam 'e9' breast 'L' is not in Cases"):
        check_observations_have_cases(observations, validate_cases(make_cases()), source="obs.csv")


def test_unreadable_and_missing_files_raise_input_error(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_observations(tmp_path / "absent.csv")
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"not parquet at all")
    with pytest.raises(InputError, match="broken.parquet: cannot read table"):
        read_cases(broken)


def test_exam_ids_that_look_numeric_stay_strings(tmp_path):
    observations = make_observations(exam=["007", "007", "007"])
    cases = make_cases().assign(exam="007")
    write_table(observations, tmp_path / "obs.csv")
    write_table(cases, tmp_path / "cases.csv")
    back, _ = read_study(tmp_path / "obs.csv", tmp_path / "cases.csv")
    assert list(back["exam"]) == ["007", "007", "007"]


def test_messages_print_plain_numbers_not_numpy_reprs(tmp_path):
    """A NaN read from Parquet is a NumPy scalar; the message shows `nan`, as a person would write it."""
    observations = make_observations(prediction=[1.0, 0.0, float("nan")])
    write_table(observations, tmp_path / "obs.parquet")
    with pytest.raises(InputError) as info:
        read_observations(tmp_path / "obs.parquet")
    assert str(info.value).endswith("column 'prediction', row 3: nan is not a finite number")
    duplicated = make_observations(breast=["L", "L", "L"], observer=["r1", "r1", "r1"], severity_mm=[0.0, 0.0, 0.0])
    with pytest.raises(InputError) as info:
        validate_observations(duplicated, source="obs.csv")
    assert "severity_mm=0.0," in str(info.value) and "np." not in str(info.value)


def test_reader_study_columns_are_kept_and_checked_when_present(tmp_path):
    table = make_observations(birads=["4a", "1", ""], pom=[30, 0, None], seconds=[12.5, 12.5, None],
                              reading_order=[3, 3, None])
    clean = validate_observations(table, source="obs.csv")
    assert clean["birads"].tolist()[:2] == ["4A", "1"] and pd.isna(clean["birads"].iloc[2])
    assert clean["pom"].tolist()[:2] == [30.0, 0.0] and pd.isna(clean["pom"].iloc[2])
    assert clean["reading_order"].dtype == "Int64" and clean["reading_order"].tolist()[:2] == [3, 3]
    path = tmp_path / "obs.parquet"
    write_table(clean, path)
    assert read_observations(path)["birads"].tolist()[:2] == ["4A", "1"]
    plain = validate_observations(make_observations(notes=["a", "b", "c"]))
    assert list(plain.columns) == list(make_observations().columns)  # absent stay absent; others dropped


@pytest.mark.parametrize(("column", "values", "message"), [
    ("birads", ["4", "1", ""], "column 'birads', row 1: '4' is not one of 0, 1, 2, 3, 4A, 4B, 4C, 5"),
    ("pom", [30, 101, None], "column 'pom', row 2: 101.0 is not a percentage in [0, 100]"),
    ("seconds", [-1, 1, None], "column 'seconds', row 1: -1.0 is not a number of seconds >= 0"),
    ("reading_order", [1, 2.5, None], "column 'reading_order', row 2: 2.5 is not a whole number >= 1"),
    ("reading_order", [1, "x", None], "column 'reading_order', row 2: 'x' is not a whole number >= 1"),
])
def test_bad_reader_study_columns_name_the_row(column, values, message):
    with pytest.raises(InputError, match="^" + re.escape(f"obs.csv: {message}") + "$"):
        validate_observations(make_observations(**{column: values}), source="obs.csv")
