"""The ``fits`` table: one row per fit with its run time and the diagnostics that say whether to trust it."""

from __future__ import annotations

from collections.abc import Sequence

import arviz as az
import numpy as np
import pandas as pd

__all__ = ["FITS_COLUMNS", "fits_table"]

#: The columns of ``tables/fits.csv``.
FITS_COLUMNS = (
    "model", "inference", "observer_group", "observer_kind", "merged", "seed", "fit_seconds", "iterations", "converged",
    "pareto_k", "max_r_hat", "min_ess_bulk", "divergences", "warnings",
)


def fits_table(posteriors: Sequence[az.InferenceData]) -> pd.DataFrame:
    """One row per fit (columns :data:`FITS_COLUMNS`): method, group, seed, run time and diagnostics.

    R-hat, bulk ESS and divergences are those of the severity effects of NUTS fits; iterations,
    convergence and Pareto k-hat those of ADVI fits; ``warnings`` joins the fit's warnings with `` | ``.
    """
    from perceptiongap.model import severity_effect_summary, warnings_for

    rows = []
    for posterior in posteriors:
        attrs = posterior.posterior.attrs
        row = {
            "model": str(attrs.get("model", "release")),
            "inference": attrs["inference"],
            "observer_group": attrs["observer_group"],
            "observer_kind": attrs.get("observer_kind", ""),
            "merged": bool(attrs.get("merged", 0)),
            "seed": int(attrs["seed"]),
            "fit_seconds": attrs.get("fit_seconds", np.nan),
            "iterations": attrs.get("iterations", np.nan),
            "converged": attrs.get("converged", np.nan),
            "pareto_k": attrs.get("pareto_k", np.nan),
            "max_r_hat": np.nan,
            "min_ess_bulk": np.nan,
            "divergences": np.nan,
        }
        if attrs["inference"] == "nuts":
            summary = severity_effect_summary(posterior)
            row.update(max_r_hat=summary["r_hat"].max(), min_ess_bulk=summary["ess_bulk"].min(),
                       divergences=int(posterior.sample_stats["diverging"].sum()))
        row["warnings"] = " | ".join(warnings_for(posterior))
        rows.append(row)
    return pd.DataFrame(rows, columns=list(FITS_COLUMNS))
