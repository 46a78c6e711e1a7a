"""The ``fits`` table: one row per fit with its run time and the diagnostics that say whether to trust it."""

from __future__ import annotations

from collections.abc import Sequence

import arviz as az
import numpy as np
import pandas as pd

__all__ = ["FITS_COLUMNS", "STAN_ADVI_COLUMNS", "fits_table"]

#: The columns of ``tables/fits.csv``.
FITS_COLUMNS = (
    "inference", "observer_group", "observer_kind", "merged", "seed", "failed", "fit_seconds", "iterations",
    "converged", "eta", "main_elbo_draws_dropped", "main_gradient_draws_rejected", "adapt_elbo_draws_dropped",
    "adapt_gradient_draws_rejected", "pareto_k", "max_r_hat", "min_ess_bulk", "divergences", "warnings",
)
#: What Stan's ADVI rules did in a ``stan-advi`` fit (its posterior's attributes; empty for other methods):
#: the step size chosen, and the draws set aside in the main loop and in the step-size trials.
STAN_ADVI_COLUMNS = ("eta", "main_elbo_draws_dropped", "main_gradient_draws_rejected", "adapt_elbo_draws_dropped",
                     "adapt_gradient_draws_rejected")


def fits_table(posteriors: Sequence[az.InferenceData], failures: Sequence[dict] = ()) -> pd.DataFrame:
    """One row per fit (columns :data:`FITS_COLUMNS`): method, group, seed, run time and diagnostics.

    R-hat, bulk ESS and divergences are those of the severity effects of NUTS fits; iterations,
    convergence and Pareto k-hat those of ADVI fits; :data:`STAN_ADVI_COLUMNS` those of ``stan-advi``
    fits; ``warnings`` joins the fit's warnings with `` | ``. ``failures`` are records of fits that
    failed as Stan's ADVI fails (``results.fitting.write_failure``): each is a row with ``converged``
    0 and the reason as its warning.
    """
    from perceptiongap.model import severity_effect_summary, warnings_for

    rows = []
    for posterior in posteriors:
        attrs = posterior.posterior.attrs
        row = {
            "inference": attrs["inference"],
            "observer_group": attrs["observer_group"],
            "observer_kind": attrs.get("observer_kind", ""),
            "merged": bool(attrs.get("merged", 0)),
            "seed": int(attrs["seed"]),
            "failed": False,
            "fit_seconds": attrs.get("fit_seconds", np.nan),
            "iterations": attrs.get("iterations", np.nan),
            "converged": attrs.get("converged", np.nan),
            **{column: attrs.get(column, np.nan) for column in STAN_ADVI_COLUMNS},
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
    for failure in failures:
        merged = ", merged subgroups" if failure.get("merged") else ""
        rows.append({**{column: failure.get(column, np.nan) for column in FITS_COLUMNS},
                     "merged": bool(failure.get("merged", 0)), "seed": int(failure["seed"]), "failed": True,
                     "converged": 0,
                     "warnings": f"{failure['inference']} fit of {failure['observer_group']} (seed {failure['seed']}"
                                 f"{merged}): failed, as Stan's ADVI fails: {failure['error']}"})
    return pd.DataFrame(rows, columns=list(FITS_COLUMNS))
