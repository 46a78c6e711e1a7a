"""The study data model: Observations and Cases as validated pandas tables.

Observations hold one row per prediction (see ``OBSERVATION_COLUMNS``); Cases hold one row per
breast with its label and subgroup. Both are read from and written to Parquet or CSV (chosen by
the file suffix). Every validation error is an :class:`~perceptiongap.errors.InputError` whose
one-line message names the file, the column and the first bad row (1-based, data rows only).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from perceptiongap.errors import InputError
from perceptiongap.files import atomic_path
from perceptiongap.formatting import plain
from perceptiongap.vocabulary import BIRADS_CATEGORIES, BREASTS, LABELS, OBSERVER_KINDS, SCHEMES

#: Column -> pandas dtype of a validated Observations table.
OBSERVATION_COLUMNS: dict[str, str] = {
    "observer_group": "string",
    "observer": "string",
    "observer_kind": "string",
    "exam": "string",
    "breast": "string",
    "severity_mm": "float64",
    "scheme": "string",
    "annotator": "string",
    "prediction": "float64",
}

#: Optional columns (reader studies): kept and validated when present, absent otherwise. Empty
#: values are allowed (a machine row has no BI-RADS). ``birads`` is one of 0, 1, 2, 3, 4A, 4B, 4C,
#: 5; ``pom`` a probability of malignancy in percent (0-100); ``seconds`` >= 0 the time spent on the
#: exam; ``reading_order`` >= 1 the exam's position in the reader's list.
OPTIONAL_OBSERVATION_COLUMNS: dict[str, str] = {
    "birads": "string",
    "pom": "float64",
    "seconds": "float64",
    "reading_order": "Int64",
}

#: Column -> pandas dtype of a validated Cases table.
CASE_COLUMNS: dict[str, str] = {
    "exam": "string",
    "breast": "string",
    "label": "string",
    "subgroup": "string",
}

#: The key that identifies one prediction: no two rows of Observations may share it.
OBSERVATION_KEY = ("observer", "exam", "breast", "severity_mm", "scheme", "annotator")


def _first_bad_row(bad: np.ndarray) -> int:
    return int(np.flatnonzero(bad)[0]) + 1


def _require_columns(table: pd.DataFrame, columns: dict[str, str], source: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise InputError(f"missing column(s) {', '.join(repr(c) for c in missing)}", source=source)


def _as_strings(table: pd.DataFrame, column: str, source: str, *, allow_empty: bool) -> pd.Series:
    values = table[column]
    missing = values.isna().to_numpy()
    if allow_empty:
        values = values.where(~missing, "")
    elif missing.any():
        raise InputError(f"column {column!r}, row {_first_bad_row(missing)}: empty value", source=source)
    strings = values.astype(str).str.strip()
    if not allow_empty and (strings == "").any():
        row = _first_bad_row((strings == "").to_numpy())
        raise InputError(f"column {column!r}, row {row}: empty value", source=source)
    return strings.astype("string")


def _check_choices(values: pd.Series, column: str, allowed: tuple[str, ...], source: str) -> None:
    bad = ~values.isin(allowed).to_numpy()
    if bad.any():
        row = _first_bad_row(bad)
        raise InputError(
            f"column {column!r}, row {row}: {plain(values.iloc[row - 1])!r} is not one of {', '.join(allowed)}",
            source=source,
        )


def _as_floats(table: pd.DataFrame, column: str, source: str) -> pd.Series:
    numbers = pd.to_numeric(table[column], errors="coerce").astype("float64")
    bad = ~np.isfinite(numbers.to_numpy())
    if bad.any():
        row = _first_bad_row(bad)
        raise InputError(
            f"column {column!r}, row {row}: {plain(table[column].iloc[row - 1])!r} is not a finite number",
            source=source,
        )
    return numbers


def _optional_column(table: pd.DataFrame, column: str, source: str) -> pd.Series:
    """One optional column, checked (see ``OPTIONAL_OBSERVATION_COLUMNS``); empty values stay NA."""
    raw = table[column]
    empty = raw.isna().to_numpy() | (raw.astype(str).str.strip() == "").to_numpy()
    if column == "birads":
        values = raw.astype(str).str.strip().str.upper().where(~empty, None).astype("string")
        bad = ~empty & ~values.isin(BIRADS_CATEGORIES).fillna(False).to_numpy()
        if bad.any():
            row = _first_bad_row(bad)
            raise InputError(
                f"column 'birads', row {row}: {plain(raw.iloc[row - 1])!r} is not one of {', '.join(BIRADS_CATEGORIES)}",
                source=source,
            )
        return values
    numbers = pd.to_numeric(raw.where(~empty, None), errors="coerce").astype("float64")
    bad = ~empty & ~np.isfinite(numbers.to_numpy())
    limits = {"pom": (0.0, 100.0), "seconds": (0.0, np.inf), "reading_order": (1.0, np.inf)}[column]
    with np.errstate(invalid="ignore"):
        bad |= ~empty & ((numbers.to_numpy() < limits[0]) | (numbers.to_numpy() > limits[1]))
        if column == "reading_order":
            bad |= ~empty & (np.mod(numbers.to_numpy(), 1) != 0)
    if bad.any():
        row = _first_bad_row(bad)
        rule = {"pom": "a percentage in [0, 100]", "seconds": "a number of seconds >= 0",
                "reading_order": "a whole number >= 1"}[column]
        raise InputError(f"column {column!r}, row {row}: {plain(raw.iloc[row - 1])!r} is not {rule}", source=source)
    return numbers.astype(OPTIONAL_OBSERVATION_COLUMNS[column])


def validate_observations(table: pd.DataFrame, source: str | Path = "observations") -> pd.DataFrame:
    """Return a clean copy of an Observations table, or raise :class:`InputError`.

    Checks: required columns; observer kind, breast and scheme from their fixed sets; predictions
    finite and in [0, 1], and exactly 0 or 1 for humans; severities >= 0; the ROI schemes name an
    annotator; no duplicate ``OBSERVATION_KEY``. The ``OPTIONAL_OBSERVATION_COLUMNS`` that are
    present are kept and checked; other extra columns are dropped.
    """
    source = str(source)
    _require_columns(table, OBSERVATION_COLUMNS, source)
    table = table.reset_index(drop=True)
    clean = pd.DataFrame(index=table.index)
    for column in ("observer_group", "observer", "observer_kind", "exam", "breast", "scheme"):
        clean[column] = _as_strings(table, column, source, allow_empty=False)
    clean["annotator"] = _as_strings(table, "annotator", source, allow_empty=True)
    clean["severity_mm"] = _as_floats(table, "severity_mm", source)
    clean["prediction"] = _as_floats(table, "prediction", source)
    clean = clean[list(OBSERVATION_COLUMNS)]
    for column in OPTIONAL_OBSERVATION_COLUMNS:
        if column in table.columns:
            clean[column] = _optional_column(table, column, source)

    _check_choices(clean["observer_kind"], "observer_kind", OBSERVER_KINDS, source)
    _check_choices(clean["breast"], "breast", BREASTS, source)
    _check_choices(clean["scheme"], "scheme", SCHEMES, source)

    negative = (clean["severity_mm"] < 0).to_numpy()
    if negative.any():
        row = _first_bad_row(negative)
        raise InputError(f"column 'severity_mm', row {row}: severity must be >= 0 mm", source=source)

    prediction = clean["prediction"].to_numpy()
    outside = (prediction < 0) | (prediction > 1)
    if outside.any():
        row = _first_bad_row(outside)
        raise InputError(
            f"column 'prediction', row {row}: {float(prediction[row - 1])!r} is outside [0, 1]", source=source
        )
    human = (clean["observer_kind"] == "human").to_numpy()
    non_binary = human & (prediction != 0) & (prediction != 1)
    if non_binary.any():
        row = _first_bad_row(non_binary)
        raise InputError(
            f"column 'prediction', row {row}: human predictions must be 0 or 1, got {float(prediction[row - 1])!r}",
            source=source,
        )
    roi_without_annotator = ((clean["scheme"] != "entire") & (clean["annotator"] == "")).to_numpy()
    if roi_without_annotator.any():
        row = _first_bad_row(roi_without_annotator)
        raise InputError(f"column 'annotator', row {row}: ROI schemes need an annotator", source=source)

    duplicated = clean.duplicated(list(OBSERVATION_KEY)).to_numpy()
    if duplicated.any():
        row = _first_bad_row(duplicated)
        key = ", ".join(f"{k}={plain(clean[k].iloc[row - 1])!r}" for k in OBSERVATION_KEY)
        raise InputError(f"row {row}: duplicate observation ({key})", source=source)
    return clean


def validate_cases(table: pd.DataFrame, source: str | Path = "cases") -> pd.DataFrame:
    """Return a clean copy of a Cases table (one row per breast), or raise :class:`InputError`."""
    source = str(source)
    _require_columns(table, CASE_COLUMNS, source)
    table = table.reset_index(drop=True)
    clean = pd.DataFrame(
        {column: _as_strings(table, column, source, allow_empty=False) for column in CASE_COLUMNS}
    )
    _check_choices(clean["breast"], "breast", BREASTS, source)
    _check_choices(clean["label"], "label", LABELS, source)
    duplicated = clean.duplicated(["exam", "breast"]).to_numpy()
    if duplicated.any():
        row = _first_bad_row(duplicated)
        raise InputError(
            f"row {row}: duplicate case (exam={plain(clean['exam'].iloc[row - 1])!r}, "
            f"breast={plain(clean['breast'].iloc[row - 1])!r})",
            source=source,
        )
    return clean


def check_observations_have_cases(
    observations: pd.DataFrame, cases: pd.DataFrame, source: str | Path = "observations"
) -> None:
    """Raise :class:`InputError` if an observation refers to a breast that Cases does not list."""
    known = pd.MultiIndex.from_frame(cases[["exam", "breast"]])
    observed = pd.MultiIndex.from_frame(observations[["exam", "breast"]])
    absent = ~observed.isin(known)
    if absent.any():
        row = _first_bad_row(absent)
        raise InputError(
            f"column 'exam', row {row}: exam {plain(observations['exam'].iloc[row - 1])!r} breast "
            f"{plain(observations['breast'].iloc[row - 1])!r} is not in Cases",
            source=str(source),
        )


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a Parquet (``.parquet``) or CSV (anything else) file; unreadable files raise InputError."""
    path = Path(path)
    if not path.is_file():
        raise InputError("no such file", source=path)
    try:
        if path.suffix == ".parquet":
            return pd.read_parquet(path)
        return pd.read_csv(path, dtype={"exam": str, "observer": str, "annotator": str, "birads": str}, keep_default_na=False,
                           na_values=[""])
    except Exception as error:  # pandas and pyarrow raise many types for unreadable files
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise InputError(f"cannot read table: {first_line}", source=path) from error


def write_table(table: pd.DataFrame, path: str | Path) -> None:
    """Write a table atomically as Parquet (``.parquet``) or CSV (anything else)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        if path.suffix == ".parquet":
            table.to_parquet(tmp, index=False)
        else:
            table.to_csv(tmp, index=False)


def read_observations(path: str | Path) -> pd.DataFrame:
    """Read and validate an Observations file."""
    return validate_observations(read_table(path), source=path)


def read_cases(path: str | Path) -> pd.DataFrame:
    """Read and validate a Cases file."""
    return validate_cases(read_table(path), source=path)


def read_study(observations_path: str | Path, cases_path: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read Observations and Cases, validate each and check that every observation has its case."""
    observations = read_observations(observations_path)
    cases = read_cases(cases_path)
    check_observations_have_cases(observations, cases, source=observations_path)
    return observations, cases
