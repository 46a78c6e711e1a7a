"""The ``fits`` table: one row per fit with its run time and the diagnostics that say whether to trust it."""

from __future__ import annotations

from collections.abc import Sequence

import arviz as az
import numpy as np
import pandas as pd

__all__ = ["FITS_COLUMNS", "STAN_ADVI_COLUMNS", "WARNING_KINDS", "fits_table", "warning_groups", "warning_summary"]

#: The columns of ``tables/fits.csv``.
FITS_COLUMNS = (
    "model", "inference", "observer_group", "observer_kind", "merged", "seed", "failed", "fit_seconds", "iterations",
    "converged", "eta", "main_elbo_draws_dropped", "main_gradient_draws_rejected", "adapt_elbo_draws_dropped",
    "adapt_gradient_draws_rejected", "pareto_k", "max_r_hat", "min_ess_bulk", "divergences", "warnings",
)
#: What Stan's ADVI rules did in a ``stan-advi`` fit (its posterior's attributes; empty for other methods):
#: the step size chosen, and the draws set aside in the main loop and in the step-size trials.
STAN_ADVI_COLUMNS = ("eta", "main_elbo_draws_dropped", "main_gradient_draws_rejected", "adapt_elbo_draws_dropped",
                     "adapt_gradient_draws_rejected")


def fits_table(posteriors: Sequence[az.InferenceData], failures: Sequence[dict] = (),
               analysed_subgroups: Sequence[Sequence[str]] | None = None) -> pd.DataFrame:
    """One row per fit (columns :data:`FITS_COLUMNS`): method, group, seed, run time and diagnostics.

    R-hat, bulk ESS and divergences are those of the severity effects of NUTS fits; iterations,
    convergence and Pareto k-hat those of ADVI fits; :data:`STAN_ADVI_COLUMNS` those of ``stan-advi``
    fits; ``warnings`` joins the fit's warnings with `` | ``. ``failures`` are records of fits that
    failed as Stan's ADVI fails (``results.fitting.write_failure``): each is a row with ``converged``
    0 and the reason as its warning. ``analysed_subgroups`` (one sequence per posterior) lets a warning
    say whether its parameter enters the tables.
    """
    from perceptiongap.model import severity_effect_summary, warnings_for

    rows = []
    for index, posterior in enumerate(posteriors):
        attrs = posterior.posterior.attrs
        row = {
            "model": str(attrs.get("model", "release")),
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
        analysed = analysed_subgroups[index] if analysed_subgroups is not None else None
        row["warnings"] = " | ".join(warnings_for(posterior, analysed))
        rows.append(row)
    for failure in failures:
        merged = ", merged subgroups" if failure.get("merged") else ""
        rows.append({**{column: failure.get(column, np.nan) for column in FITS_COLUMNS},
                     "model": str(failure.get("model", "release")),
                     "merged": bool(failure.get("merged", 0)), "seed": int(failure["seed"]), "failed": True,
                     "converged": 0,
                     "warnings": f"{failure['inference']} fit of {failure['observer_group']} (seed {failure['seed']}"
                                 f"{merged}): failed, as Stan's ADVI fails: {failure['error']}"})
    return pd.DataFrame(rows, columns=list(FITS_COLUMNS))


#: Kinds of diagnostic warning: (the words that mark it in a warning, expected?, what it means).
WARNING_KINDS = {
    "Pareto k-hat": ("Pareto k-hat", True,
                     "expected: a mean-field (independent normal) approximation of ~1,500 correlated parameters is "
                     "far from the posterior by this measure; that is why nuts runs beside it"),
    "iteration limit": ("iteration limit", False,
                        "not expected: the ADVI fit stopped without meeting its convergence rule"),
    "R-hat": ("R-hat", False, "not expected: the NUTS chains disagree about a severity effect"),
    "bulk ESS": ("bulk ESS", False, "not expected: too few effective draws of a severity effect"),
    "divergences": ("divergent transitions", False, "not expected: NUTS met curvature it could not follow"),
}


def _warning_kind(text: str) -> str:
    return next((kind for kind, (marker, _, _) in WARNING_KINDS.items() if marker in text), "other")


def warning_groups(fits: pd.DataFrame) -> pd.DataFrame:
    """The warnings of a ``fits`` table grouped by kind, model, inference method, observer group and merged refit.

    One row per group: ``kind`` (a key of :data:`WARNING_KINDS`, or ``other``), ``expected``, ``model``
    (``release`` for a table written before models had names), ``inference``, ``observer_group``, ``merged``,
    ``fits`` (how many fits of the group have it), ``warnings`` (their texts, in table order) and ``meaning``.
    Expected kinds come first.
    """
    rows = []
    for record in fits.itertuples(index=False):
        text = record.warnings if isinstance(record.warnings, str) else ""
        for warning in (w for w in text.split(" | ") if w):
            kind = _warning_kind(warning)
            merged = str(record.merged).lower() in ("true", "1")
            model = getattr(record, "model", None)
            rows.append({"kind": kind, "model": model if isinstance(model, str) else "release",
                         "inference": record.inference, "observer_group": record.observer_group,
                         "merged": merged, "warning": warning})
    columns = ["kind", "expected", "model", "inference", "observer_group", "merged", "fits", "warnings", "meaning"]
    if not rows:
        return pd.DataFrame(columns=columns)
    frame = pd.DataFrame(rows)
    grouped = frame.groupby(["kind", "model", "inference", "observer_group", "merged"], sort=False)["warning"].agg(list)
    result = grouped.reset_index().rename(columns={"warning": "warnings"})
    result["fits"] = result["warnings"].map(len)
    result["expected"] = result["kind"].map(lambda kind: WARNING_KINDS.get(kind, ("", False, ""))[1])
    result["meaning"] = result["kind"].map(lambda kind: WARNING_KINDS.get(kind, ("", False, "not expected"))[2])
    order = {kind: i for i, kind in enumerate(WARNING_KINDS)}
    result = result.sort_values(["expected", "kind"], key=lambda c: c.map(order) if c.name == "kind" else ~c,
                                kind="stable")
    return result.loc[:, columns].reset_index(drop=True)


def warning_summary(fits: pd.DataFrame) -> list[str]:
    """One line per kind of warning in a ``fits`` table: how many fits of which methods and groups, and whether
    it is expected; an unexpected kind lists its warnings (each names the fit and, for NUTS, the parameter)."""
    groups = warning_groups(fits)
    lines = []
    for kind, rows in groups.groupby("kind", sort=False):
        count = int(rows["fits"].sum())
        methods = ", ".join(dict.fromkeys(rows["inference"]))
        where = ", ".join(f"{g}{' (merged)' if m else ''} {n}" for g, m, n in
                          zip(rows["observer_group"], rows["merged"], rows["fits"]))
        line = f"{count} {methods} fit(s) with {kind} warnings ({where}): {rows['meaning'].iloc[0]}"
        if not rows["expected"].iloc[0]:
            line += "".join(f"\n  - {warning}" for warnings in rows["warnings"] for warning in warnings)
        lines.append(line)
    return lines
