"""Effects files for the plan tests."""

from __future__ import annotations

import pandas as pd

ANALYSED = ("microcalcifications", "soft_tissue_lesions")


def write_effects(path, severity_mm=(0.0, 1.0, 2.0), gamma=(0.0, 0.0, 0.0), delta=None):
    """An effects CSV: the same gamma (and delta) at each severity for both analysed subgroups."""
    rows = []
    for subgroup in ANALYSED:
        for k, severity in enumerate(severity_mm):
            row = {"subgroup": subgroup, "severity_mm": severity, "gamma": gamma[k]}
            if delta is not None:
                row["delta"] = delta[k]
            rows.append(row)
    pd.DataFrame(rows).to_csv(path, index=False)
    return path
