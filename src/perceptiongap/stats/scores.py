"""Scores for ROC analysis: networks' probabilities, readers' probability of malignancy or BI-RADS.

A reader-study export (``perceptiongap.readers``) adds optional columns to Observations:
``birads`` (text: ``0, 1, 2, 3, 4A, 4B, 4C, 5``) and ``pom`` (probability of malignancy, 0-100),
beside ``seconds`` and ``reading_order``. A human's binary answer is their ``prediction``; a score
for the AUC is their POM (finest), else their BI-RADS category as an ordinal score (1 < 2 < 3 <
4A < 4B < 4C < 5; category 0, "incomplete, needs further imaging", has no place on that scale and
is left out of the AUC). A network's score is its probability.

``perceptiongap.study`` keeps and checks these optional columns when it reads Observations.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from perceptiongap.errors import InputError
from perceptiongap.vocabulary import BIRADS_CATEGORIES

__all__ = [
    "BIRADS_CATEGORIES",
    "BIRADS_RANK",
    "SCORE_CHOICES",
    "birads_rank",
    "score_source",
    "score_values",
]

#: BI-RADS as an ordinal score; "0" (incomplete) has no rank.
BIRADS_RANK: dict[str, int] = {"1": 1, "2": 2, "3": 3, "4A": 4, "4B": 5, "4C": 6, "5": 7}
#: What a score may be: ``auto`` picks per observer (probability, else POM, else BI-RADS).
SCORE_CHOICES: tuple[str, ...] = ("auto", "pom", "birads", "prediction")
#: Names of the score sources, as tables and file headers write them.
SCORE_NAMES = {"prediction": "prediction", "probability": "probability", "pom": "pom", "birads": "birads"}


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
