"""Simulation-based calibration (Talts et al. 2018) of an inference method on the release model.

One replication draws the release model's parameters from their priors (b, mu, nu and the
severity increments, each N(0, 1); gamma their cumulative sums, gamma[0] = 0), draws binary
predictions on a template's observed cells (sparse readers or dense observers) from the
likelihood, fits the data with the method and records, for every severity effect gamma[s, g]
(s > 0), the rank of the true value among ``n_ranked`` posterior draws (evenly thinned). For a
calibrated method the ranks are uniform on 0 .. n_ranked. Binary predictions are used for every
observer: the soft-label likelihood of the networks equals the Bernoulli likelihood on 0/1 data,
and has no sampling distribution of its own to simulate soft labels from.

The simulation is written here with NumPy, independently of the model code that the fits use.
A replication is a picklable :class:`SBCReplication`, run by :func:`run_replication`, so that many
run through :func:`perceptiongap.engine.run_tasks` (here or on Dask).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats
from scipy.special import expit

__all__ = ["SBCReplication", "rank_uniformity", "run_replication", "simulate_release_data", "verdict"]


@dataclass(frozen=True)
class SBCReplication:
    """One replication: the template (a ModelData whose observed cells are kept), the method, its
    settings (None: the method's defaults), the replication's seed and the number of draws ranked."""

    template: object
    inference: str
    seed: int
    settings: object = None
    n_ranked: int = 99


def simulate_release_data(template, rng: np.random.Generator) -> tuple[object, dict[str, np.ndarray]]:
    """(data, truth): ``template`` with binary predictions drawn from the release model on its
    observed cells, and the parameters drawn from the priors (b (G,), mu (C,), nu (O, G), gamma (S, G))."""
    n_observers, n_severities, n_cases = template.observed.shape
    n_subgroups = len(template.subgroup_names)
    truth = {"b": rng.normal(size=n_subgroups), "mu": rng.normal(size=n_cases),
             "nu": rng.normal(size=(n_observers, n_subgroups))}
    gamma = np.zeros((n_severities, n_subgroups))
    gamma[1:] = np.cumsum(rng.normal(size=(n_severities - 1, n_subgroups)), axis=0)
    truth["gamma"] = gamma
    g = np.asarray(template.case_subgroup)
    logit = (truth["b"][g] + truth["mu"])[None, None, :] + gamma[:, g][None] + truth["nu"][:, g][:, None, :]
    prediction = (rng.random(logit.shape) < expit(logit)).astype(np.float64) * template.observed
    return dataclasses.replace(template, prediction=prediction), truth


def run_replication(replication: SBCReplication) -> np.ndarray:
    """Ranks (severity - 1, subgroup) of the true gamma[s, g], s > 0, among ``n_ranked`` posterior draws."""
    from perceptiongap.model.inference import fit

    rng = np.random.default_rng([replication.seed, 13])
    data, truth = simulate_release_data(replication.template, rng)
    posterior = fit(data, replication.inference, replication.seed, settings=replication.settings)
    gamma = posterior.posterior["gamma"].transpose("chain", "draw", "severity", "subgroup").values
    gamma = gamma.reshape(-1, *gamma.shape[2:])
    chosen = np.linspace(0, gamma.shape[0] - 1, replication.n_ranked).round().astype(int)
    return np.sum(gamma[chosen, 1:] < truth["gamma"][None, 1:], axis=0).astype(np.int64)


def rank_uniformity(ranks: np.ndarray, n_ranked: int, n_bins: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Chi-square test of uniform ranks per parameter.

    ``ranks`` (replication, *parameter dims) with values in 0 .. ``n_ranked``. Ranks are pooled
    into ``n_bins`` bins of equal width ((n_ranked + 1) must be divisible by ``n_bins``). Returns
    (counts (n_bins, *parameter dims), p-values (*parameter dims)).
    """
    ranks = np.asarray(ranks)
    if (n_ranked + 1) % n_bins:
        raise ValueError(f"{n_ranked + 1} rank values do not split into {n_bins} equal bins")
    bins = ranks // ((n_ranked + 1) // n_bins)
    counts = np.stack([np.sum(bins == k, axis=0) for k in range(n_bins)])
    p_values = stats.chisquare(counts, axis=0).pvalue
    return counts, np.asarray(p_values)


def verdict(p_values: Sequence[float] | np.ndarray, level: float = 0.01) -> str:
    """``calibrated`` unless the smallest p-value, Bonferroni-corrected over the parameters, is below ``level``."""
    p = np.asarray(p_values, dtype=float).ravel()
    return "calibrated" if np.min(p) * p.size >= level else "miscalibrated"
