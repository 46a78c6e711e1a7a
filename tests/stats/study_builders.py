"""Small Observations + Cases tables with known answers, built row by row."""

from __future__ import annotations

import numpy as np
import pandas as pd

from perceptiongap.study import validate_cases, validate_observations


def make_cases(labels: list[tuple[str, str]]) -> pd.DataFrame:
    """Cases for breasts ``(label, subgroup)``, exam ``E<k>`` breast L (one breast per exam keeps ids simple)."""
    return validate_cases(pd.DataFrame({
        "exam": [f"E{k:03d}" for k in range(len(labels))],
        "breast": "L",
        "label": [label for label, _ in labels],
        "subgroup": [subgroup for _, subgroup in labels],
    }))


def observation_rows(cases: pd.DataFrame, observer: str, group: str, kind: str, predictions, *,
                     severity: float = 0.0, scheme: str = "entire", annotator: str = "", breasts=None,
                     **extra) -> pd.DataFrame:
    """One observer's rows: ``predictions`` for ``breasts`` (row positions in Cases; default all)."""
    breasts = np.arange(len(cases)) if breasts is None else np.asarray(breasts)
    rows = pd.DataFrame({
        "observer_group": group, "observer": observer, "observer_kind": kind,
        "exam": cases["exam"].to_numpy()[breasts], "breast": cases["breast"].to_numpy()[breasts],
        "severity_mm": severity, "scheme": scheme, "annotator": annotator,
        "prediction": np.asarray(predictions, dtype=float),
    })
    for column, values in extra.items():
        rows[column] = values
    return rows


def make_observations(*parts: pd.DataFrame) -> pd.DataFrame:
    """Validated Observations from :func:`observation_rows` parts (extra columns kept as given)."""
    raw = pd.concat(parts, ignore_index=True)
    clean = validate_observations(raw)
    for column in raw.columns.difference(clean.columns):
        clean[column] = raw[column].to_numpy()
    return clean
