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


def fitted_posterior(seed: int = 0):
    """A posterior of the release layout (2 chains x 50 draws, 7 readers, 80 breasts, 3 subgroups) whose
    malignant breasts' biases are 2 higher: what a fit of a study with separable classes looks like."""
    import arviz as az
    import numpy as np
    import xarray as xr

    rng = np.random.default_rng(seed)
    subgroups = ["microcalcifications", "soft_tissue_lesions", "nonbiopsied"]
    case_subgroup = np.array(["microcalcifications"] * 20 + ["soft_tissue_lesions"] * 20 + ["nonbiopsied"] * 40)
    case_label = np.array((["malignant"] * 5 + ["benign"] * 15) * 2 + ["nonbiopsied"] * 40)
    mu = rng.normal(0, 1, (2, 50, 80)) + 2.0 * (case_label == "malignant")
    nu = rng.normal(0, 0.5, (2, 50, 7, 3))
    gamma = np.zeros((2, 50, 3, 3))
    gamma[:, :, 1:] = -1.0
    return az.InferenceData(
        posterior=xr.Dataset({
            "b": (("chain", "draw", "subgroup"), rng.normal(size=(2, 50, 3))),
            "mu": (("chain", "draw", "case"), mu),
            "gamma": (("chain", "draw", "severity", "subgroup"), gamma),
            "nu": (("chain", "draw", "observer", "subgroup"), nu),
        }, coords={"subgroup": subgroups, "severity": [0.0, 1.0, 4.0]}),
        constant_data=xr.Dataset({"case_label": ("case", case_label), "case_subgroup": ("case", case_subgroup)}),
    )
