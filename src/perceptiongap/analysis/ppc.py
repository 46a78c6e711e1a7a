"""Posterior predictive checks of class separability, per observer group, subgroup and severity.

The statistic T is the one the paper is about (METHOD §6), computed on the observers' own
predictions: at severity s, the two-sample KS statistic between the predictions of the malignant
breasts of subgroup g and of all non-malignant breasts, for each observer on the cells that
observer predicted (a reader's own cells in a reader study: about one severity in nine of each
breast; every breast for a network), averaged over the observers. For dense networks T(y) is the
``observed`` separability of the perturbation-study table.

T(y_rep) is the same statistic on predictions replicated from posterior draws: a human's binary
answer is drawn Bernoulli(p) at each observed cell; a network's soft label is the model's
probability p itself (the soft-label likelihood has no sampling distribution of its own, and p
is what the model says the network would output). The tail probability is
P(T(y_rep) > T(y)) + P(T(y_rep) = T(y)) / 2 over the draws. A check fails when it is below
:data:`LOW` or above :data:`HIGH`: the model's replications rarely come as low (or as high) as
the data. A model that cannot express a change in separability with filtering fails where the
observers' separability changes.
"""

from __future__ import annotations

from collections.abc import Sequence

import arviz as az
import numpy as np
import pandas as pd
from scipy.special import expit

from perceptiongap.analysis.posterior import (
    case_bias_draws,
    draws,
    fit_key,
    posterior_cases,
    posterior_group,
    severity_effect_draws,
    subgroup_bias_draws,
    subgroup_index,
)
from perceptiongap.errors import InputError
from perceptiongap.vocabulary import ANALYSED_SUBGROUPS

__all__ = ["HIGH", "LOW", "PPC_CASE_DRAWS_GROUP", "PPC_COLUMNS", "checked_draws", "failed_checks", "masked_ks_statistic", "posterior_predictive_check",
           "ppc_table", "separability_statistic"]

#: The columns of ``tables/ppc.csv``.
PPC_COLUMNS = ("model", "inference", "observer_group", "subgroup", "severity_mm", "observed", "replicated_mean",
               "replicated_low", "replicated_high", "tail_probability")
#: Tail probabilities outside [LOW, HIGH] flag a check as failed.
LOW, HIGH = 0.05, 0.95
#: Posterior draws replicated per fit (evenly spaced over chains and draws).
DEFAULT_DRAWS = 200
#: Draws replicated at once (bounds the memory: draws x observers x severities x cases).
_CHUNK = 20


def masked_ks_statistic(values: np.ndarray, positive: np.ndarray, negative: np.ndarray) -> np.ndarray:
    """Two-sample KS statistic along the last axis, each row with its own two samples.

    ``values`` (..., n); ``positive`` and ``negative`` boolean masks broadcastable to it select
    each row's samples. Equal to ``scipy.stats.ks_2samp(...).statistic`` row by row (ties
    included: each ECDF is evaluated after the last of its ties; computed on integer counts).
    NaN where a row's sample is empty.
    """
    values = np.asarray(values, dtype=np.float64)
    positive = np.broadcast_to(positive, values.shape)
    negative = np.broadcast_to(negative, values.shape)
    order = np.argsort(values, axis=-1, kind="stable")
    ordered = np.take_along_axis(values, order, axis=-1)
    positives = np.cumsum(np.take_along_axis(positive, order, axis=-1), axis=-1, dtype=np.int64)
    negatives = np.cumsum(np.take_along_axis(negative, order, axis=-1), axis=-1, dtype=np.int64)
    n_positive, n_negative = positives[..., -1:], negatives[..., -1:]
    last_of_ties = np.ones(ordered.shape, dtype=bool)
    last_of_ties[..., :-1] = ordered[..., 1:] != ordered[..., :-1]
    difference = np.abs(positives * n_negative - negatives * n_positive)
    largest = np.max(np.where(last_of_ties, difference, 0), axis=-1)
    denominator = (n_positive * n_negative)[..., 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, largest / np.where(denominator > 0, denominator, 1), np.nan)


def separability_statistic(prediction: np.ndarray, observed: np.ndarray, positive: np.ndarray,
                           negative: np.ndarray) -> np.ndarray:
    """T: mean over observers of the KS separability on each observer's observed cells.

    ``prediction`` (..., observer, severity, case), ``observed`` (observer, severity, case),
    ``positive`` and ``negative`` (case,). Returns (..., severity); NaN where no observer has both
    samples at a severity.
    """
    ks = masked_ks_statistic(prediction, observed & positive, observed & negative)
    with np.errstate(invalid="ignore"):
        counts = np.sum(~np.isnan(ks), axis=-2)
        total = np.nansum(ks, axis=-2)
    return np.where(counts > 0, total / np.maximum(counts, 1), np.nan)


#: Group of a compact posterior holding ``mu`` at the draws the checks replicate (:func:`checked_draws`).
PPC_CASE_DRAWS_GROUP = "ppc_case_draws"


def checked_draws(n_samples: int, n_draws: int = DEFAULT_DRAWS) -> np.ndarray:
    """The (chain x draw)-flattened indices of the draws a check replicates: ``n_draws`` evenly spaced."""
    return np.unique(np.linspace(0, n_samples - 1, min(n_draws, n_samples)).round().astype(int))


_draw_indices = checked_draws


def _case_bias_at(posterior: az.InferenceData, dataset, cases, chosen: np.ndarray) -> np.ndarray:
    """b[g] + mu[n] at the ``chosen`` draws (draw, case): from the ``mu`` draws, or from the ones a
    compact posterior keeps for the checks (group :data:`PPC_CASE_DRAWS_GROUP`)."""
    if "mu" in dataset.data_vars:
        return case_bias_draws(dataset, cases)[chosen]
    kept = getattr(posterior, PPC_CASE_DRAWS_GROUP)["mu"]
    index = {int(sample): k for k, sample in enumerate(kept["ppc_sample"].values)}
    if not all(int(sample) in index for sample in chosen):
        raise InputError(f"a compact posterior keeps the per-case draws of {len(index)} draws only, not those of "
                         f"this check ({len(chosen)} draws); fit with --keep-all-draws", source="posterior")
    mu = np.asarray(kept.transpose("ppc_sample", "case").values, dtype=np.float64)
    return subgroup_bias_draws(dataset, cases)[chosen] + mu[[index[int(sample)] for sample in chosen]]


def posterior_predictive_check(
    posterior: az.InferenceData,
    subgroups: Sequence[str] = ANALYSED_SUBGROUPS,
    *,
    n_draws: int = DEFAULT_DRAWS,
    seed: int = 0,
) -> pd.DataFrame:
    """The checks of one fit: one row per (subgroup, severity), columns :data:`PPC_COLUMNS`.

    Replicates ``n_draws`` posterior draws (evenly spaced); ``seed`` seeds the binary draws of
    human observers (with the fit's own seed, so that fits differ).
    """
    model, inference, observer_group = fit_key(posterior)
    dataset = posterior_group(posterior)
    cases = posterior_cases(posterior)
    grid = posterior.observed_data["prediction"].transpose("observer", "severity", "case")
    observed_grid = np.asarray(grid.values, dtype=np.float64)
    observed = ~np.isnan(observed_grid)
    human = str(dataset.attrs.get("observer_kind", "machine")) == "human"
    subgroup = subgroup_index(dataset, cases.subgroup)
    effects, column = severity_effect_draws(dataset, cases)
    nu = draws(dataset, "nu")
    chosen = _draw_indices(nu.shape[0], n_draws)
    case_bias = _case_bias_at(posterior, dataset, cases, chosen)  # (draw, case), in the order of chosen
    effects, nu = effects[chosen], nu[chosen]
    chosen = np.arange(len(chosen))
    rng = np.random.default_rng([int(seed), max(int(dataset.attrs.get("seed", 0)), 0), len(observer_group)])
    malignant = cases.label == "malignant"
    masks = {name: (malignant & (cases.subgroup == name), ~malignant) for name in subgroups}

    replicated = {name: [] for name in subgroups}
    for start in range(0, len(chosen), _CHUNK):
        index = chosen[start:start + _CHUNK]
        observer_logit = case_bias[index][:, None, :] + nu[index][:, :, subgroup]  # (D, O, C)
        severity = effects[index][..., column]  # (D, S, C) or (D, O, S, C)
        severity = severity[:, None] if severity.ndim == 3 else severity
        probability = expit(observer_logit[:, :, None, :] + severity)  # (D, O, S, C)
        values = (rng.random(probability.shape) < probability).astype(np.float64) if human else probability
        values = np.where(observed, values, np.nan)
        for name, (positive, negative) in masks.items():
            replicated[name].append(separability_statistic(values, observed, positive, negative))

    severities = np.asarray(grid["severity"].values, dtype=float)
    rows = []
    for name, (positive, negative) in masks.items():
        actual = separability_statistic(observed_grid, observed, positive, negative)  # (S,)
        samples = np.concatenate(replicated[name], axis=0)  # (D, S)
        with np.errstate(invalid="ignore"):
            tail = np.mean(samples > actual, axis=0) + 0.5 * np.mean(samples == actual, axis=0)
        for s, severity_mm in enumerate(severities):
            valid = not np.isnan(actual[s]) and not np.isnan(samples[:, s]).all()
            column_samples = samples[:, s][~np.isnan(samples[:, s])]
            rows.append({
                "model": model, "inference": inference, "observer_group": observer_group, "subgroup": name,
                "severity_mm": float(severity_mm), "observed": actual[s],
                "replicated_mean": column_samples.mean() if valid else np.nan,
                "replicated_low": np.quantile(column_samples, LOW) if valid else np.nan,
                "replicated_high": np.quantile(column_samples, HIGH) if valid else np.nan,
                "tail_probability": tail[s] if valid else np.nan,
            })
    return pd.DataFrame(rows, columns=list(PPC_COLUMNS))


def ppc_table(
    posteriors: Sequence[az.InferenceData],
    subgroups: Sequence[str] = ANALYSED_SUBGROUPS,
    *,
    n_draws: int = DEFAULT_DRAWS,
    seed: int = 0,
) -> pd.DataFrame:
    """``tables/ppc.csv``: the checks of every fit; fits of one (model, inference, group) (seeds)
    are combined by the median of each number.

    A check replicates predictions from the per-case draws ``mu``; a compact posterior (a results
    folder's default, :mod:`perceptiongap.results.compact`) keeps them at the checked draws only
    (:data:`PPC_CASE_DRAWS_GROUP`); one written before it did (without either) is left out.
    """
    posteriors = [p for p in posteriors
                  if "mu" in p.posterior.data_vars or PPC_CASE_DRAWS_GROUP in p.groups()]
    if not posteriors:
        return pd.DataFrame(columns=list(PPC_COLUMNS))
    tables = pd.concat([posterior_predictive_check(p, subgroups, n_draws=n_draws, seed=seed) for p in posteriors],
                       ignore_index=True)
    key = ["model", "inference", "observer_group", "subgroup", "severity_mm"]
    combined = tables.groupby(key, sort=False, dropna=False).median(numeric_only=True).reset_index()
    return combined.loc[:, list(PPC_COLUMNS)]


def failed_checks(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of a PPC table whose tail probability is below :data:`LOW` or above :data:`HIGH`."""
    tail = table["tail_probability"]
    return table[(tail < LOW) | (tail > HIGH)].reset_index(drop=True)
