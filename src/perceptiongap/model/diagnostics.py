"""Is a posterior trustworthy? R-hat, ESS and divergences for NUTS; Pareto k-hat for ADVI.

The Pareto k-hat of the importance ratios p(theta, D) / q(theta) over draws from the
approximation q (Yao et al. 2018, "Yes, but did it work?") says how far a variational
approximation is from the posterior: below 0.5 good, 0.5-0.7 usable, above 0.7 unreliable.
"""

from __future__ import annotations

import arviz as az
import numpy as np
import pandas as pd

__all__ = ["ESS_PER_CHAIN", "PARETO_K_LIMIT", "RHAT_LIMIT", "pareto_k_hat", "severity_effect_summary", "warnings_for"]

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


def warnings_for(posterior: az.InferenceData) -> list[str]:
    """Plain-language warnings about one fit (empty when nothing is wrong)."""
    attrs = posterior.posterior.attrs
    merged = ", merged subgroups" if attrs.get("merged") else ""
    name = f"{attrs.get('inference')} fit of {attrs.get('observer_group')} (seed {attrs.get('seed')}{merged})"
    found = []
    if attrs.get("inference") == "nuts":
        n_chains = posterior.posterior.sizes["chain"]
        summary = severity_effect_summary(posterior)
        if n_chains > 1 and summary["r_hat"].max() > RHAT_LIMIT:
            found.append(f"{name}: R-hat of the severity effects up to {summary['r_hat'].max():.4f} (> {RHAT_LIMIT})")
        if summary["ess_bulk"].min() < ESS_PER_CHAIN * n_chains:
            found.append(f"{name}: bulk ESS of the severity effects as low as {summary['ess_bulk'].min():.0f}")
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
