"""Is a posterior trustworthy? R-hat, ESS and divergences for NUTS; Pareto k-hat for ADVI.

The Pareto k-hat of the importance ratios p(theta, D) / q(theta) over draws from the
approximation q (Yao et al. 2018, "Yes, but did it work?") says how far a variational
approximation is from the posterior: below 0.5 good, 0.5-0.7 usable, above 0.7 unreliable.
"""

from __future__ import annotations

from collections.abc import Sequence

import arviz as az
import numpy as np
import pandas as pd

__all__ = [
    "ESS_PER_CHAIN",
    "PARETO_K_LIMIT",
    "RHAT_LIMIT",
    "pareto_k_hat",
    "severity_effect_summary",
    "warnings_for",
    "worst_severity_effect",
]

RHAT_LIMIT = 1.01
ESS_PER_CHAIN = 100
PARETO_K_LIMIT = 0.7


def pareto_k_hat(log_joint: np.ndarray, log_approximation: np.ndarray) -> float:
    """Pareto shape of the smoothed importance weights log p - log q, both of shape (draws,)."""
    log_ratios = np.asarray(log_joint, dtype=float) - np.asarray(log_approximation, dtype=float)
    _, k_hat = az.psislw(log_ratios)
    return float(k_hat)


def severity_effect_summary(posterior: az.InferenceData) -> pd.DataFrame:
    """R-hat, bulk and tail ESS of gamma at every perturbed severity (severity 0 is fixed at 0)."""
    gamma = posterior.posterior["gamma"].isel(severity=slice(1, None))
    return az.summary(gamma.to_dataset(), kind="diagnostics", round_to="none")


def worst_severity_effect(posterior: az.InferenceData, statistic: str) -> tuple[float, str, float]:
    """(value, subgroup, severity_mm) of the severity effect with the largest R-hat (``"r_hat"``) or the smallest
    bulk ESS (``"ess_bulk"``), over every perturbed severity and subgroup of a fit with chains."""
    gamma = posterior.posterior["gamma"].isel(severity=slice(1, None))
    values = (az.rhat(gamma) if statistic == "r_hat" else az.ess(gamma, method="bulk"))["gamma"]
    flat = values.stack(cell=("severity", "subgroup"))
    index = int(np.nanargmax(flat.values) if statistic == "r_hat" else np.nanargmin(flat.values))
    cell = flat.isel(cell=index)
    return float(cell.values), str(cell["subgroup"].values), float(cell["severity"].values)


def _where(subgroup: str, severity_mm: float, analysed: Sequence[str] | None) -> str:
    """Which parameter, and whether the analysis reads it."""
    where = f"gamma of {subgroup} at {severity_mm:g} mm"
    if analysed is None:
        return where
    if subgroup in analysed:
        return f"{where}, an analysed subgroup: it enters the tables, figures and conclusions"
    return f"{where}, not an analysed subgroup: it enters no table, figure or conclusion"


def warnings_for(posterior: az.InferenceData, analysed_subgroups: Sequence[str] | None = None) -> list[str]:
    """Plain-language warnings about one fit (empty when nothing is wrong).

    A NUTS warning names the worst severity effect (subgroup and severity); given ``analysed_subgroups`` (the
    subgroups the tables and conclusions read), it also says whether that effect enters them.
    """
    attrs = posterior.posterior.attrs
    merged = ", merged subgroups" if attrs.get("merged") else ""
    name = f"{attrs.get('inference')} fit of {attrs.get('observer_group')} (seed {attrs.get('seed')}{merged})"
    found = []
    if attrs.get("inference") == "nuts":
        n_chains = posterior.posterior.sizes["chain"]
        summary = severity_effect_summary(posterior)
        if n_chains > 1 and summary["r_hat"].max() > RHAT_LIMIT:
            value, subgroup, severity = worst_severity_effect(posterior, "r_hat")
            found.append(f"{name}: R-hat of the severity effects up to {value:.4f} (> {RHAT_LIMIT}), "
                         f"{_where(subgroup, severity, analysed_subgroups)}")
        if summary["ess_bulk"].min() < ESS_PER_CHAIN * n_chains:
            value, subgroup, severity = worst_severity_effect(posterior, "ess_bulk")
            found.append(f"{name}: bulk ESS of the severity effects as low as {value:.0f}, "
                         f"{_where(subgroup, severity, analysed_subgroups)}")
        divergences = int(posterior.sample_stats["diverging"].sum()) if "sample_stats" in posterior else 0
        if divergences:
            found.append(f"{name}: {divergences} divergent transitions")
    else:
        k_hat = attrs.get("pareto_k")
        if k_hat is not None and k_hat > PARETO_K_LIMIT:
            found.append(f"{name}: Pareto k-hat {k_hat:.2f} > {PARETO_K_LIMIT}: the mean-field approximation is poor")
        if attrs.get("converged") == 0:
            found.append(f"{name}: stopped at its iteration limit without meeting its convergence rule")
    return found
