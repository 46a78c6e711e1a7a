"""Which model the data prefer: PSIS-LOO and the marginal likelihood, per observer group.

Each fit whose posterior holds a ``log_likelihood`` group (NUTS fits: the log-likelihood of each
breast, its observed cells summed) gets its leave-one-breast-out expected log predictive density
by Pareto-smoothed importance sampling (``arviz.loo``), with the largest Pareto k over the breasts
(above 0.7 the estimate of that breast is unreliable). The models of one observer group are
ranked by ``arviz.compare``: ``elpd_diff`` is each model's elpd below the best one's and
``elpd_diff_se`` the standard error of that difference. ``log_marginal_likelihood`` is the
bridge-sampling estimate the fit recorded (the paper's criterion), with its error.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import arviz as az
import numpy as np
import pandas as pd

from perceptiongap.analysis.posterior import fit_key

__all__ = ["COMPARISON_COLUMNS", "model_comparison_table", "preferred_models", "preferred_model"]

#: The columns of ``tables/model_comparison.csv``.
COMPARISON_COLUMNS = ("observer_group", "model", "elpd_loo", "elpd_loo_se", "elpd_diff", "elpd_diff_se",
                      "max_pareto_k", "log_marginal_likelihood", "log_marginal_likelihood_error", "inference")
PARETO_K_LIMIT = 0.7


def model_comparison_table(posteriors: Sequence[az.InferenceData]) -> pd.DataFrame:
    """``tables/model_comparison.csv``: one row per (inference, observer group, model) of the fits
    with a pointwise log-likelihood (the first fit of each, when there are several seeds), best model first."""
    by_group: dict[tuple[str, str], dict[str, az.InferenceData]] = {}
    for posterior in posteriors:
        if "log_likelihood" not in posterior.groups():
            continue
        model, inference, group = fit_key(posterior)
        by_group.setdefault((inference, group), {}).setdefault(model, posterior)
    rows = []
    for (inference, group), fits in by_group.items():
        with warnings.catch_warnings():
            # ArviZ warns once per fit about large Pareto k; the table's max_pareto_k and the report say it instead
            warnings.filterwarnings("ignore", message="Estimated shape parameter of Pareto", category=UserWarning)
            loo = {model: az.loo(posterior, pointwise=True) for model, posterior in fits.items()}
            ranked = az.compare(loo, ic="loo") if len(loo) > 1 else None
        for model in (ranked.index if ranked is not None else loo):
            attrs = fits[model].posterior.attrs
            rows.append({
                "observer_group": group, "model": model, "elpd_loo": float(loo[model]["elpd_loo"]),
                "elpd_loo_se": float(loo[model]["se"]),
                "elpd_diff": float(ranked.loc[model, "elpd_diff"]) if ranked is not None else 0.0,
                "elpd_diff_se": float(ranked.loc[model, "dse"]) if ranked is not None else 0.0,
                "max_pareto_k": float(np.max(loo[model]["pareto_k"])),
                "log_marginal_likelihood": float(attrs.get("log_marginal_likelihood", np.nan)),
                "log_marginal_likelihood_error": float(attrs.get("log_marginal_likelihood_error", np.nan)),
                "inference": inference,
            })
    return pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS))


def preferred_models(table: pd.DataFrame) -> pd.DataFrame:
    """Per (inference, observer group): the model each criterion prefers and by how much.

    Columns: inference, observer_group, loo_best, loo_runner_up, elpd_diff (the runner-up's elpd
    below the best's), elpd_diff_se, evidence_best, evidence_runner_up, log_bayes_factor (best
    over runner-up), log_bayes_factor_error; runner-up columns empty when one model was fitted.
    """
    rows = []
    for (inference, group), models in table.groupby(["inference", "observer_group"], sort=False):
        by_loo = models.sort_values("elpd_loo", ascending=False)
        by_evidence = models.dropna(subset=["log_marginal_likelihood"]).sort_values("log_marginal_likelihood",
                                                                                   ascending=False)
        row = {"inference": inference, "observer_group": group, "loo_best": by_loo["model"].iloc[0],
               "loo_runner_up": None, "elpd_diff": np.nan, "elpd_diff_se": np.nan,
               "evidence_best": by_evidence["model"].iloc[0] if len(by_evidence) else None,
               "evidence_runner_up": None, "log_bayes_factor": np.nan, "log_bayes_factor_error": np.nan}
        if len(by_loo) > 1:
            second = by_loo.iloc[1]
            row.update(loo_runner_up=second["model"], elpd_diff=float(second["elpd_diff"]),
                       elpd_diff_se=float(second["elpd_diff_se"]))
        if len(by_evidence) > 1:
            first, second = by_evidence.iloc[0], by_evidence.iloc[1]
            row.update(evidence_runner_up=second["model"],
                       log_bayes_factor=float(first["log_marginal_likelihood"] - second["log_marginal_likelihood"]),
                       log_bayes_factor_error=float(np.hypot(first["log_marginal_likelihood_error"],
                                                             second["log_marginal_likelihood_error"])))
        rows.append(row)
    return pd.DataFrame(rows)


def preferred_model(table: pd.DataFrame, models: Sequence[str]) -> tuple[str, str]:
    """(model, why): the model with the largest elpd_loo summed over observer groups (the groups are
    independent fits, so their elpds add), among ``models``; the first of ``models`` when the table
    cannot tell (no comparison, or one model)."""
    fitted = table[table["model"].isin(models)]
    groups_per_model = fitted.groupby("model")["observer_group"].nunique()
    complete = [m for m in models if groups_per_model.get(m, 0) == fitted["observer_group"].nunique() > 0]
    if len(complete) < 2:
        return models[0], (f"only {complete[0] if complete else models[0]} has a PSIS-LOO comparison"
                           if len(models) > 1 else "the only model fitted")
    inference = fitted["inference"].iloc[0]
    totals = fitted[fitted["inference"] == inference].groupby("model")["elpd_loo"].sum().reindex(complete)
    best = str(totals.idxmax())
    ordered = totals.sort_values(ascending=False)
    margin = float(ordered.iloc[0] - ordered.iloc[1])
    return best, (f"largest elpd_loo summed over the {fitted['observer_group'].nunique()} observer groups "
                  f"({inference}): {margin:.1f} above {ordered.index[1]}")
