"""Scores for ROC analysis: networks' probabilities, readers' probability of malignancy or BI-RADS.

A reader-study export (``perceptiongap.readers``) adds optional columns to Observations:
``birads`` (text: ``0, 1, 2, 3, 4A, 4B, 4C, 5``) and ``pom`` (probability of malignancy, 0-100),
beside ``seconds`` and ``reading_order``. A human's binary answer is their ``prediction``; a score
for the AUC is their POM (finest), else their BI-RADS category as an ordinal score (1 < 2 < 3 <
4A < 4B < 4C < 5; category 0, "incomplete, needs further imaging", has no place on that scale and
is left out of the AUC). A network's score is its probability.

:func:`attach_reader_columns` keeps ``pom`` and ``birads`` from a raw table when the Observations
validator of this version drops them, and checks them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from perceptiongap.errors import InputError

__all__ = [
    "BIRADS_CATEGORIES",
    "BIRADS_RANK",
    "SCORE_CHOICES",
    "attach_reader_columns",
    "birads_rank",
    "read_scored_study",
    "score_source",
    "score_values",
]

BIRADS_CATEGORIES: tuple[str, ...] = ("0", "1", "2", "3", "4A", "4B", "4C", "5")
#: BI-RADS as an ordinal score; "0" (incomplete) has no rank.
BIRADS_RANK: dict[str, int] = {"1": 1, "2": 2, "3": 3, "4A": 4, "4B": 5, "4C": 6, "5": 7}
#: What a score may be: ``auto`` picks per observer (probability, else POM, else BI-RADS).
SCORE_CHOICES: tuple[str, ...] = ("auto", "pom", "birads", "prediction")
#: Names of the score sources, as tables and file headers write them.
SCORE_NAMES = {"prediction": "prediction", "probability": "probability", "pom": "pom", "birads": "birads"}


def _first_bad(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0]) + 1


def _shown(value) -> str:
    """A value as a message shows it: ``'4'`` for text, ``120`` for a number (not NumPy's repr)."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def attach_reader_columns(clean: pd.DataFrame, raw: pd.DataFrame, source: str = "observations") -> pd.DataFrame:
    """``clean`` (validated Observations, same rows as ``raw``) with ``pom`` and ``birads`` of ``raw``.

    Columns already in ``clean`` are left as they are (a validator that keeps them has checked
    them). ``pom`` must be a number in [0, 100] or empty, ``birads`` one of
    :data:`BIRADS_CATEGORIES` or empty; otherwise :class:`InputError` names the row.
    """
    out = clean.copy()
    raw = raw.reset_index(drop=True)
    if "pom" in raw.columns and "pom" not in out.columns:
        text = raw["pom"]
        pom = pd.to_numeric(text, errors="coerce").astype(float).to_numpy()
        given = text.notna().to_numpy() & (text.astype(str).str.strip() != "").to_numpy()
        bad = given & ~((pom >= 0) & (pom <= 100))
        if bad.any():
            row = _first_bad(bad)
            raise InputError(f"column 'pom', row {row}: {_shown(text.iloc[row - 1])} is not a probability of "
                             "malignancy in [0, 100]", source=source)
        out["pom"] = np.where(given, pom, np.nan)
    if "birads" in raw.columns and "birads" not in out.columns:
        text = raw["birads"]
        given = text.notna().to_numpy() & (text.astype(str).str.strip() != "").to_numpy()
        category = text.astype(str).str.strip().str.upper()
        # A whole number read from CSV as 4.0 is still category "4"; keep "4A" etc. as written.
        category = category.str.replace(r"^(\d)\.0$", r"\1", regex=True)
        bad = given & ~category.isin(BIRADS_CATEGORIES).to_numpy()
        if bad.any():
            row = _first_bad(bad)
            raise InputError(f"column 'birads', row {row}: {_shown(text.iloc[row - 1])} is not one of "
                             f"{', '.join(BIRADS_CATEGORIES)}", source=source)
        out["birads"] = pd.Series(np.where(given, category, None), index=out.index, dtype="string")
    return out


def birads_rank(categories: pd.Series | np.ndarray) -> np.ndarray:
    """BI-RADS categories -> ordinal score (1 ... 7); NaN for "0" and missing."""
    series = pd.Series(np.asarray(categories, dtype=object))
    return series.map(BIRADS_RANK).astype(float).to_numpy()


def _complete(rows: pd.DataFrame, column: str) -> bool:
    if column not in rows.columns:
        return False
    if column == "pom":
        return bool(np.isfinite(pd.to_numeric(rows["pom"], errors="coerce").to_numpy(dtype=float)).all())
    return bool(rows["birads"].notna().all())


def score_source(rows: pd.DataFrame, requested: str = "auto") -> str | None:
    """Which score ranks one observer's breasts: ``probability``, ``pom``, ``birads``, ``prediction`` or None.

    ``rows`` are one observer's Observations. ``auto``: a machine's probability; a human's POM when
    every row has one, else BI-RADS when every row has a category, else None (a binary answer has
    no ROC curve worth the name). An explicit choice is returned as asked (missing values become
    NaN scores, see :func:`score_values`).
    """
    if requested not in SCORE_CHOICES:
        raise InputError(f"{requested!r} is not one of {', '.join(SCORE_CHOICES)}", source="score")
    human = bool((rows["observer_kind"] == "human").any())
    if requested == "auto":
        if not human:
            return "probability"
        for column in ("pom", "birads"):
            if _complete(rows, column):
                return column
        return None
    if requested == "prediction" and not human:
        return "probability"
    if requested in ("pom", "birads") and not human:
        return "probability"  # networks have no POM or BI-RADS: their probability is the score
    return requested


def score_values(rows: pd.DataFrame, source: str | None) -> np.ndarray:
    """The scores of ``rows`` from ``source`` (see :func:`score_source`); NaN where there is none."""
    if source is None:
        return np.full(len(rows), np.nan)
    if source in ("probability", "prediction"):
        return rows["prediction"].to_numpy(dtype=float)
    if source not in rows.columns:
        return np.full(len(rows), np.nan)
    if source == "pom":
        return pd.to_numeric(rows["pom"], errors="coerce").to_numpy(dtype=float)
    return birads_rank(rows["birads"])


def read_scored_study(observations_path, cases_path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Observations and Cases read and validated as ``perceptiongap.study.read_study`` does, keeping ``pom``
    and ``birads`` (checked by :func:`attach_reader_columns`) when the file has them."""
    from perceptiongap.study import check_observations_have_cases, read_cases, read_table, validate_observations

    raw = read_table(observations_path)
    observations = attach_reader_columns(validate_observations(raw, source=observations_path), raw,
                                         source=str(observations_path))
    cases = read_cases(cases_path)
    check_observations_have_cases(observations, cases, source=observations_path)
    return observations, cases
