"""Error consistency (Geirhos, Meding & Wichmann, NeurIPS 2020): do two observers fail on the same breasts?

For two observers on the same trials, with ``p_a`` and ``p_b`` their shares of correct answers:

- ``c_obs``: the share of trials on which both are right or both are wrong;
- ``c_exp = p_a p_b + (1 - p_a)(1 - p_b)``: what ``c_obs`` would be if they erred independently at
  their own accuracies;
- ``kappa = (c_obs - c_exp) / (1 - c_exp)``: 0 for independent errors, 1 for identical answers,
  negative when one fails where the other succeeds. Undefined (NaN) when ``c_exp = 1`` (both always
  right, or both always wrong).

A trial is a breast at one severity (and, for the ROI schemes, one annotator's ROIs); an answer is
correct when the decision (a reader's yes/no, a network's probability at an operating point of
:mod:`perceptiongap.stats.operating_point`) matches the label, malignant against non-malignant.
Every pair of observers is compared on the trials both saw, per scheme, severity and reported
subgroup (that subgroup's malignant breasts with every non-malignant breast, as in
:mod:`perceptiongap.stats.breasts`). Pairs are human-human, human-network or network-network; the
summary averages kappa over the pairs of each kind, the layout of model-vs-human (bethgelab).
Intervals are percentile intervals of a case bootstrap stratified by label and subgroup, the same
resampled breasts for every pair at a severity, so the interval of a mean over pairs is valid too.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from perceptiongap.errors import InputError
from perceptiongap.stats.bootstrap import derived_rng, one_blas_thread, percentile_interval, stratified_counts
from perceptiongap.stats.breasts import (
    NEGATIVE_STRATUM,
    analysed_subgroups,
    attach_cases,
    key_columns_as_categories,
    positive_sets,
    strata,
)
from perceptiongap.stats.operating_point import DEFAULT_OPERATING_POINTS, OperatingPoint, binary_decisions

__all__ = [
    "CONSISTENCY_PAIR_COLUMNS",
    "CONSISTENCY_SUMMARY_COLUMNS",
    "PAIR_KINDS",
    "ErrorConsistency",
    "ErrorConsistencyTables",
    "error_consistency",
    "error_consistency_tables",
]

#: Kinds of pairs, in the order tables and figures list them.
PAIR_KINDS: tuple[str, ...] = ("human-human", "human-network", "network-network")
_KIND_NAMES = {"human": "human", "machine": "network"}

CONSISTENCY_PAIR_COLUMNS: tuple[str, ...] = (
    "scheme", "severity_mm", "subgroup", "pair_kind", "observer_a", "observer_group_a", "observer_b",
    "observer_group_b", "n_trials", "accuracy_a", "accuracy_b", "c_obs", "c_exp", "kappa", "kappa_low", "kappa_high",
)
CONSISTENCY_SUMMARY_COLUMNS: tuple[str, ...] = (
    "scheme", "severity_mm", "subgroup", "pair_kind", "n_pairs", "n_trials_mean", "c_obs_mean", "c_exp_mean",
    "kappa_mean", "kappa_sd", "kappa_low", "kappa_high",
)


@dataclass(frozen=True)
class ErrorConsistency:
    """Error consistency of two observers on the same trials."""

    kappa: float
    c_obs: float
    c_exp: float
    accuracy_a: float
    accuracy_b: float
    n_trials: int


def _as_correct(values, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise InputError(f"must be one-dimensional (one entry per trial), got shape {array.shape}", source=name)
    if array.dtype != bool:
        if not np.isin(array, (0, 1)).all():
            raise InputError("must be boolean (correct or not), or 0/1", source=name)
        array = array.astype(bool)
    return array


def _kappa(c_obs, c_exp):
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(c_exp < 1.0, (c_obs - c_exp) / np.where(c_exp < 1.0, 1.0 - c_exp, 1.0), np.nan)


def error_consistency(correct_a, correct_b) -> ErrorConsistency:
    """Cohen's kappa of the errors of two observers on the same trials (Geirhos et al. 2020).

    ``correct_a``, ``correct_b``: boolean (or 0/1) arrays of the same length, trial by trial, True
    where the observer answered correctly.
    """
    a, b = _as_correct(correct_a, "correct_a"), _as_correct(correct_b, "correct_b")
    if a.size != b.size:
        raise InputError(f"correct_a has {a.size} trials and correct_b {b.size}: they must be the same trials",
                         source="correct_b")
    if a.size == 0:
        raise InputError("no trials", source="correct_a")
    c_obs = float(np.mean(a == b))
    p_a, p_b = float(a.mean()), float(b.mean())
    c_exp = p_a * p_b + (1.0 - p_a) * (1.0 - p_b)
    return ErrorConsistency(float(_kappa(c_obs, c_exp)), c_obs, c_exp, p_a, p_b, int(a.size))


@dataclass(frozen=True)
class ErrorConsistencyTables:
    """``pairs``: one row per pair of observers (:data:`CONSISTENCY_PAIR_COLUMNS`); ``summary``: per
    pair kind (:data:`CONSISTENCY_SUMMARY_COLUMNS`)."""

    pairs: pd.DataFrame
    summary: pd.DataFrame


def _pair_kind(kind_a: str, kind_b: str) -> str:
    names = sorted((_KIND_NAMES[kind_a], _KIND_NAMES[kind_b]), key=("human", "network").index)
    return "-".join(names)


def _block_tables(rows: pd.DataFrame, scheme: str, severity: float, sets: dict, counts_for, confidence: float):
    """Pair and summary records of one scheme x severity."""
    observer_codes, observers = pd.factorize(rows["observer"], sort=True)
    observers = np.asarray(observers, dtype=object).astype(str).astype(object)
    # A trial is a breast under one annotator's ROIs, ordered by (breast, annotator).
    annotator_codes, annotators = pd.factorize(rows["annotator"], sort=True)
    trial_keys = rows["case"].to_numpy(dtype=np.int64) * max(len(annotators), 1) + annotator_codes
    trials, trial_codes = np.unique(trial_keys, return_inverse=True)
    n_observers, n_trials = len(observers), len(trials)
    seen = np.zeros((n_observers, n_trials), dtype=bool)
    correct = np.zeros((n_observers, n_trials), dtype=bool)
    seen[observer_codes, trial_codes] = True
    correct[observer_codes, trial_codes] = rows["correct"].to_numpy()
    first = np.full(n_trials, -1)
    first[trial_codes[::-1]] = np.arange(len(rows))[::-1]
    malignant = rows["malignant"].to_numpy()[first]
    subgroup = rows["subgroup"].to_numpy(dtype=object)[first]
    trial_strata = strata(malignant, subgroup)
    counts = counts_for(trial_strata)  # (trials, B)

    meta = rows.groupby("observer", observed=True)[["observer_group", "observer_kind"]].first().loc[observers]
    group = meta["observer_group"].astype(str).to_numpy()
    kind = meta["observer_kind"].astype(str).to_numpy()
    first_index, second_index = np.triu_indices(n_observers, k=1)
    kinds = np.array([_pair_kind(kind[i], kind[j]) for i, j in zip(first_index, second_index)], dtype=object)

    # Per pair (columns), per trial (rows): both saw it; they agree; a right; b right.
    both = (seen[first_index] & seen[second_index]).T
    agree = both & (correct[first_index] == correct[second_index]).T
    right_a = both & correct[first_index].T
    right_b = both & correct[second_index].T
    stacked = np.concatenate([both, agree, right_a, right_b], axis=1).astype(np.float32)  # (trials, 4 P)
    n_pairs = first_index.size
    partial_points, partial_reps = {}, {}
    for stratum in np.unique(trial_strata):  # sums per stratum; a subgroup adds up its strata
        members = trial_strata == stratum
        partial_points[stratum] = stacked[members].sum(axis=0, dtype=float)
        partial_reps[stratum] = (counts[members].T @ stacked[members]).astype(float)  # (B, 4 P)

    pair_records, summary_records = [], []
    for name, member_set in sets.items():
        wanted = [NEGATIVE_STRATUM] + [s for s in partial_points if s != NEGATIVE_STRATUM and
                                       (not member_set or s.split("|", 1)[1] in member_set)]
        wanted = [s for s in wanted if s in partial_points]
        if not wanted:
            continue
        point = sum(partial_points[s] for s in wanted).reshape(4, n_pairs)
        reps = sum(partial_reps[s] for s in wanted).reshape(-1, 4, n_pairs)
        with np.errstate(invalid="ignore", divide="ignore"):
            shares = point[1:] / point[0]
            shares_reps = reps[:, 1:] / reps[:, :1]
        c_obs, accuracy_a, accuracy_b = shares
        c_exp = accuracy_a * accuracy_b + (1 - accuracy_a) * (1 - accuracy_b)
        kappa = _kappa(c_obs, c_exp)
        c_exp_reps = shares_reps[:, 1] * shares_reps[:, 2] + (1 - shares_reps[:, 1]) * (1 - shares_reps[:, 2])
        kappa_reps = _kappa(shares_reps[:, 0], c_exp_reps)  # (B, P)
        kappa_low, kappa_high = percentile_interval(kappa_reps, confidence)
        shared = point[0] > 0
        for p in np.flatnonzero(shared):
            i, j = first_index[p], second_index[p]
            pair_records.append((scheme, severity, name, kinds[p], observers[i], group[i], observers[j], group[j],
                                 int(point[0, p]), accuracy_a[p], accuracy_b[p], c_obs[p], c_exp[p], kappa[p],
                                 kappa_low[p], kappa_high[p]))
        for pair_kind in PAIR_KINDS:
            chosen = shared & (kinds == pair_kind)
            if not chosen.any():
                continue
            defined = chosen & np.isfinite(kappa)
            with warnings.catch_warnings():  # a replicate where no pair of the kind has a defined kappa
                warnings.simplefilter("ignore", RuntimeWarning)
                mean_reps = np.nanmean(np.where(chosen, kappa_reps, np.nan), axis=1)
            low, high = percentile_interval(mean_reps, confidence)
            summary_records.append((
                scheme, severity, name, pair_kind, int(defined.sum()), float(point[0, chosen].mean()),
                float(np.nanmean(c_obs[chosen])), float(np.nanmean(c_exp[chosen])),
                float(np.mean(kappa[defined])) if defined.any() else np.nan,
                float(np.std(kappa[defined])) if defined.any() else np.nan, float(low), float(high),
            ))
    return pair_records, summary_records


@one_blas_thread
def error_consistency_tables(
    observations: pd.DataFrame,
    cases: pd.DataFrame,
    *,
    seed: int = 0,
    n_bootstrap: int = 2000,
    operating_point: OperatingPoint = DEFAULT_OPERATING_POINTS[0],
    subgroups: Sequence[str] | None = None,
    merged_subgroups: Sequence[str] | None = None,
    confidence: float = 0.95,
    progress: Callable[[int, int], None] | None = None,
) -> ErrorConsistencyTables:
    """Error consistency of every pair of observers, and its mean per pair kind, per scheme x severity x subgroup.

    Networks decide at ``operating_point`` (default: the readers' mean specificity at severity 0).
    ``subgroups`` and ``merged_subgroups``: see :func:`~perceptiongap.stats.breasts.positive_sets`.
    ``progress(done, total)`` is called after each scheme x severity.
    """
    if int(seed) < 0:
        raise InputError(f"{seed} is not a seed (an integer >= 0)", source="seed")
    if int(n_bootstrap) < 1:
        raise InputError(f"{n_bootstrap} is not a number of bootstrap replicates (>= 1)", source="n_bootstrap")
    rows = key_columns_as_categories(attach_cases(observations, cases).reset_index(drop=True))
    sets = positive_sets(analysed_subgroups(cases, subgroups), merged_subgroups)
    decision, _ = binary_decisions(rows, operating_point)
    rows["correct"] = decision == rows["malignant"].to_numpy()
    blocks = rows.groupby(["scheme", "severity_mm"], sort=True, observed=True).indices
    pair_records, summary_records = [], []
    for done, ((scheme, severity), positions) in enumerate(blocks.items(), start=1):
        scheme, severity = str(scheme), float(severity)

        def counts_for(trial_strata, scheme=scheme, severity=severity):
            rng = derived_rng(seed, "error_consistency", scheme, severity)
            return stratified_counts(trial_strata, n_bootstrap, rng)

        pairs, summary = _block_tables(rows.iloc[positions], scheme, severity, sets, counts_for, confidence)
        pair_records += pairs
        summary_records += summary
        if progress is not None:
            progress(done, len(blocks))
    pairs = pd.DataFrame.from_records(pair_records, columns=list(CONSISTENCY_PAIR_COLUMNS))
    summary = pd.DataFrame.from_records(summary_records, columns=list(CONSISTENCY_SUMMARY_COLUMNS))
    order = {kind: k for k, kind in enumerate(PAIR_KINDS)}
    summary = summary.sort_values(["scheme", "subgroup", "severity_mm", "pair_kind"],
                                  key=lambda c: c.map(order) if c.name == "pair_kind" else c, kind="stable")
    return ErrorConsistencyTables(pairs.reset_index(drop=True), summary.reset_index(drop=True))
