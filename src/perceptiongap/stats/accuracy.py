"""Per-observer sensitivity, specificity and AUC, with case-bootstrap confidence intervals.

For every observer (reader or network), scheme, annotator, severity and reported subgroup (each
analysed subgroup, ``merged`` and ``all``; see :mod:`perceptiongap.stats.breasts`):

- sensitivity = share of the subgroup's malignant breasts decided malignant; specificity = share of
  the non-malignant breasts decided not malignant. A reader's decision is their yes/no answer
  (operating point ``reader_decision``); a network's is its probability at or above the threshold
  of each operating point (:mod:`perceptiongap.stats.operating_point`), named in ``operating_point``
  with its value in ``threshold``.
- AUC (empirical, ties one half) of a score where one exists: a network's probability, a reader's
  POM or BI-RADS (:mod:`perceptiongap.stats.scores`); ``auc_score`` names it.
- 95 % (``confidence``) percentile intervals from a case bootstrap stratified by label and subgroup
  (:mod:`perceptiongap.stats.bootstrap`), ``n_bootstrap`` replicates. Observers who read the same
  breasts at a severity share their replicates, so their intervals are paired.

The unit is the breast, as in the paper's class separability; the two breasts of an exam are
resampled independently.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from perceptiongap.errors import InputError
from perceptiongap.stats.bootstrap import derived_rng, percentile_interval, stratified_counts
from perceptiongap.stats.breasts import analysed_subgroups, attach_cases, positive_mask, positive_sets, strata
from perceptiongap.stats.operating_point import (
    DEFAULT_OPERATING_POINTS,
    READER_DECISION,
    OperatingPoint,
    binary_decisions,
    readers_mean_specificity,
)
from perceptiongap.stats.roc import weighted_aucs
from perceptiongap.stats.scores import score_source, score_values

__all__ = ["ACCURACY_COLUMNS", "ACCURACY_SUMMARY_COLUMNS", "accuracy_summary", "accuracy_table"]

ACCURACY_COLUMNS: tuple[str, ...] = (
    "observer_group", "observer", "observer_kind", "scheme", "annotator", "severity_mm", "subgroup",
    "operating_point", "threshold", "n_positive", "n_negative",
    "sensitivity", "sensitivity_low", "sensitivity_high",
    "specificity", "specificity_low", "specificity_high",
    "auc_score", "auc", "auc_low", "auc_high",
)

ACCURACY_SUMMARY_COLUMNS: tuple[str, ...] = (
    "observer_group", "observer_kind", "scheme", "annotator", "severity_mm", "subgroup", "operating_point",
    "n_observers", "sensitivity_mean", "sensitivity_sd", "specificity_mean", "specificity_sd",
    "auc_mean", "auc_sd",
)

Progress = Callable[[int, int], None]


def _check_bootstrap(n_bootstrap: int, confidence: float, seed: int = 0) -> None:
    if int(seed) < 0:
        raise InputError(f"{seed} is not a seed (an integer >= 0)", source="seed")
    if int(n_bootstrap) < 1:
        raise InputError(f"{n_bootstrap} is not a number of bootstrap replicates (>= 1)", source="n_bootstrap")
    if not 0.0 < float(confidence) < 1.0:
        raise InputError(f"{confidence} is not a confidence level in (0, 1)", source="confidence")


def _blocks(rows: pd.DataFrame) -> dict[tuple, list[np.ndarray]]:
    """(scheme, annotator, severity, breasts) -> row positions of each observer who read exactly those breasts.

    Observers who read the same breasts at a severity share bootstrap replicates (a block).
    """
    blocks: dict[tuple, list[np.ndarray]] = defaultdict(list)
    keys = ["scheme", "annotator", "severity_mm", "observer"]
    for (scheme, annotator, severity, _), positions in rows.groupby(keys, sort=True, observed=True).indices.items():
        positions = positions[np.argsort(rows["case"].to_numpy()[positions], kind="stable")]
        signature = rows["case"].to_numpy()[positions].astype(np.int64).tobytes()
        blocks[(str(scheme), str(annotator), float(severity), signature)].append(positions)
    return dict(blocks)


def accuracy_table(
    observations: pd.DataFrame,
    cases: pd.DataFrame,
    *,
    seed: int = 0,
    n_bootstrap: int = 2000,
    operating_points: Sequence[OperatingPoint] = DEFAULT_OPERATING_POINTS,
    subgroups: Sequence[str] | None = None,
    auc_score: str = "auto",
    confidence: float = 0.95,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """The accuracy table (columns :data:`ACCURACY_COLUMNS`), one row per observer x scheme x annotator x
    severity x subgroup x operating point.

    ``observations`` and ``cases`` are validated tables (``perceptiongap.study``); optional reader
    columns ``pom``/``birads`` are used when present. ``progress(done, total)`` is called after each
    block of breasts.
    """
    _check_bootstrap(n_bootstrap, confidence, seed)
    if not operating_points:
        raise InputError("no operating point given", source="operating_points")
    rows = attach_cases(observations, cases).reset_index(drop=True)
    sets = positive_sets(analysed_subgroups(cases, subgroups))
    has_machines = bool((rows["observer_kind"] == "machine").any())
    target = None
    if has_machines and any(point.kind == "readers" for point in operating_points):
        target = readers_mean_specificity(rows)
    decisions = {}  # operating point name -> (decision, threshold) per row
    if has_machines:
        for point in operating_points:
            decisions[point.name] = binary_decisions(rows, point, target_specificity=target)
    human_decision = rows["prediction"].to_numpy(dtype=float) >= 0.5

    scores = np.full(len(rows), np.nan)
    sources: dict[str, str] = {}
    for observer, positions in rows.groupby("observer", sort=False, observed=True).indices.items():
        source = score_source(rows.iloc[positions], auc_score)
        sources[str(observer)] = source or ""
        scores[positions] = score_values(rows.iloc[positions], source)

    malignant_all = rows["malignant"].to_numpy()
    subgroup_all = rows["subgroup"].to_numpy(dtype=object)
    kinds = rows["observer_kind"].to_numpy(dtype=object)
    blocks = _blocks(rows)
    records = []
    for done, ((scheme, annotator, severity, signature), members) in enumerate(blocks.items(), start=1):
        first = members[0]
        malignant, subgroup = malignant_all[first], subgroup_all[first]
        counts = stratified_counts(strata(malignant, subgroup), n_bootstrap,
                                   derived_rng(seed, "accuracy", scheme, annotator, severity, signature))
        negative = ~malignant
        positives = {name: positive_mask(malignant, subgroup, member_set) for name, member_set in sets.items()}
        for positions in members:
            meta = rows.iloc[positions[0]]
            if kinds[positions[0]] == "human":
                points = [(READER_DECISION, np.nan, human_decision[positions])]
            else:
                points = [(name, float(threshold[positions[0]]), decision[positions])
                          for name, (decision, threshold) in decisions.items()]
            decided = np.stack([d for _, _, d in points], axis=1).astype(np.float32)  # (breasts, points)

            n_negative = int(negative.sum())
            if n_negative:
                specificity = 1.0 - decided[negative].mean(axis=0, dtype=float)
                specificity_reps = 1.0 - (counts[negative].T @ decided[negative]).astype(float) / n_negative
                specificity_ci = percentile_interval(specificity_reps, confidence)
            else:
                specificity = np.full(len(points), np.nan)
                specificity_ci = (specificity, specificity)

            score = scores[positions]
            scored = np.isfinite(score)
            auc_by_subgroup: dict[str, tuple[float, float, float]] = {}
            if scored.any():
                scored_negative = negative & scored
                auc_pairs = [(score[mask & scored], counts[mask & scored]) for mask in positives.values()]
                auc_points = weighted_aucs(score[scored_negative], np.ones((int(scored_negative.sum()), 1)),
                                           [(s, np.ones((s.size, 1))) for s, _ in auc_pairs])
                auc_reps = weighted_aucs(score[scored_negative], counts[scored_negative], auc_pairs)
                for name, point, reps in zip(positives, auc_points, auc_reps):
                    low, high = percentile_interval(reps, confidence)
                    auc_by_subgroup[name] = (float(point[0]), float(low), float(high))

            for name, positive in positives.items():
                n_positive = int(positive.sum())
                if n_positive:
                    sensitivity = decided[positive].mean(axis=0, dtype=float)
                    sensitivity_reps = (counts[positive].T @ decided[positive]).astype(float) / n_positive
                    sensitivity_low, sensitivity_high = percentile_interval(sensitivity_reps, confidence)
                else:
                    sensitivity = sensitivity_low = sensitivity_high = np.full(len(points), np.nan)
                auc, auc_low, auc_high = auc_by_subgroup.get(name, (np.nan, np.nan, np.nan))
                for k, (point_name, threshold, _) in enumerate(points):
                    records.append((
                        meta["observer_group"], meta["observer"], meta["observer_kind"], scheme, annotator, severity,
                        name, point_name, threshold, n_positive, n_negative,
                        sensitivity[k], sensitivity_low[k], sensitivity_high[k],
                        specificity[k], specificity_ci[0][k], specificity_ci[1][k],
                        sources[str(meta["observer"])], auc, auc_low, auc_high,
                    ))
        if progress is not None:
            progress(done, len(blocks))
    table = pd.DataFrame.from_records(records, columns=list(ACCURACY_COLUMNS))
    for column in ("observer_group", "observer", "observer_kind", "scheme", "annotator", "subgroup",
                   "operating_point", "auc_score"):
        table[column] = table[column].astype(str)
    return table.sort_values(["observer_group", "observer", "scheme", "annotator", "severity_mm", "subgroup",
                              "operating_point"], kind="stable").reset_index(drop=True)


def accuracy_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Mean and sd (ddof 0, as the paper's separability) over the observers of each group, per severity.

    Columns :data:`ACCURACY_SUMMARY_COLUMNS`; NaNs (e.g. a reader with no positive at a severity)
    are left out of the mean.
    """
    keys = ["observer_group", "observer_kind", "scheme", "annotator", "severity_mm", "subgroup", "operating_point"]
    grouped = table.groupby(keys, sort=True, observed=True)
    summary = grouped.agg(
        n_observers=("observer", "nunique"),
        sensitivity_mean=("sensitivity", "mean"),
        sensitivity_sd=("sensitivity", lambda v: float(np.nanstd(v)) if np.isfinite(v).any() else np.nan),
        specificity_mean=("specificity", "mean"),
        specificity_sd=("specificity", lambda v: float(np.nanstd(v)) if np.isfinite(v).any() else np.nan),
        auc_mean=("auc", "mean"),
        auc_sd=("auc", lambda v: float(np.nanstd(v)) if np.isfinite(v).any() else np.nan),
    ).reset_index()
    return summary[list(ACCURACY_SUMMARY_COLUMNS)]
