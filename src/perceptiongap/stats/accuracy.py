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
from perceptiongap.stats.bootstrap import derived_rng, one_blas_thread, percentile_interval, stratified_counts
from perceptiongap.stats.breasts import (
    analysed_subgroups,
    attach_cases,
    key_columns_as_categories,
    positive_mask,
    positive_sets,
    strata,
)
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


@one_blas_thread
def accuracy_table(
    observations: pd.DataFrame,
    cases: pd.DataFrame,
    *,
    seed: int = 0,
    n_bootstrap: int = 2000,
    operating_points: Sequence[OperatingPoint] = DEFAULT_OPERATING_POINTS,
    subgroups: Sequence[str] | None = None,
    merged_subgroups: Sequence[str] | None = None,
    auc_score: str = "auto",
    confidence: float = 0.95,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """The accuracy table (columns :data:`ACCURACY_COLUMNS`), one row per observer x scheme x annotator x
    severity x subgroup x operating point.

    ``observations`` and ``cases`` are validated tables (``perceptiongap.study``); optional reader
    columns ``pom``/``birads`` are used when present. ``subgroups`` and ``merged_subgroups``: see
    :func:`~perceptiongap.stats.breasts.positive_sets`. ``progress(done, total)`` is called after
    each block of breasts.
    """
    _check_bootstrap(n_bootstrap, confidence, seed)
    if not operating_points:
        raise InputError("no operating point given", source="operating_points")
    rows = key_columns_as_categories(attach_cases(observations, cases).reset_index(drop=True))
    sets = positive_sets(analysed_subgroups(cases, subgroups), merged_subgroups)
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
    scoring = rows[[c for c in ("observer_kind", "prediction", "pom", "birads") if c in rows.columns]]
    for observer, positions in rows.groupby("observer", sort=False, observed=True).indices.items():
        source = score_source(scoring.iloc[positions], auc_score)
        sources[str(observer)] = source or ""
        scores[positions] = score_values(scoring.iloc[positions], source)

    malignant_all = rows["malignant"].to_numpy()
    subgroup_all = rows["subgroup"].to_numpy(dtype=object)
    human = (rows["observer_kind"] == "human").to_numpy()
    # Observer group, observer and kind of a row, from the categories' codes (no string per row).
    meta_codes = [rows[c].cat.codes.to_numpy() for c in ("observer_group", "observer", "observer_kind")]
    meta_names = [rows[c].cat.categories.to_numpy(dtype=object) for c in ("observer_group", "observer", "observer_kind")]
    blocks = _blocks(rows)
    records = []
    for done, ((scheme, annotator, severity, signature), members) in enumerate(blocks.items(), start=1):
        first = members[0]
        malignant, subgroup = malignant_all[first], subgroup_all[first]
        counts = stratified_counts(strata(malignant, subgroup), n_bootstrap,
                                   derived_rng(seed, "accuracy", scheme, annotator, severity, signature))
        negative = ~malignant
        n_negative = int(negative.sum())
        positives = {name: positive_mask(malignant, subgroup, member_set) for name, member_set in sets.items()}
        n_positives = {name: int(mask.sum()) for name, mask in positives.items()}
        for positions in members:
            group, observer, kind = (names[codes[positions[0]]] for codes, names in zip(meta_codes, meta_names))
            if human[positions[0]]:
                points = [(READER_DECISION, np.nan, human_decision[positions])]
            else:
                points = [(name, float(threshold[positions[0]]), decision[positions])
                          for name, (decision, threshold) in decisions.items()]
            decided = np.stack([d for _, _, d in points], axis=1).astype(np.float32)  # (breasts, points)
            n_points = len(points)

            # Every statistic of this observer as one column of values and one of replicates, so that
            # one sort gives all their intervals: specificity per point, sensitivity per subgroup and
            # point, AUC per subgroup. A statistic with no breasts to count is NaN.
            values, replicates = [], []
            if n_negative:
                values.append(1.0 - decided[negative].mean(axis=0, dtype=float))
                replicates.append(1.0 - (counts[negative].T @ decided[negative]).astype(float) / n_negative)
            else:
                values.append(np.full(n_points, np.nan))
                replicates.append(np.full((n_bootstrap, n_points), np.nan))
            for name, positive in positives.items():
                if n_positives[name]:
                    values.append(decided[positive].mean(axis=0, dtype=float))
                    replicates.append((counts[positive].T @ decided[positive]).astype(float) / n_positives[name])
                else:
                    values.append(np.full(n_points, np.nan))
                    replicates.append(np.full((n_bootstrap, n_points), np.nan))
            score = scores[positions]
            scored = np.isfinite(score)
            if scored.any():
                scored_negative = negative & scored
                auc_pairs = [(score[mask & scored], counts[mask & scored]) for mask in positives.values()]
                auc_points = weighted_aucs(score[scored_negative], np.ones((int(scored_negative.sum()), 1)),
                                           [(s, np.ones((s.size, 1))) for s, _ in auc_pairs])
                values.append(np.array([point[0] for point in auc_points], dtype=float))
                replicates.append(np.column_stack(weighted_aucs(score[scored_negative], counts[scored_negative],
                                                                auc_pairs)))
            else:
                values.append(np.full(len(positives), np.nan))
                replicates.append(np.full((n_bootstrap, len(positives)), np.nan))
            value = np.concatenate(values)
            low, high = percentile_interval(np.concatenate(replicates, axis=1), confidence)
            specificity = slice(0, n_points)
            for k, name in enumerate(positives):
                sensitivity = n_points * (k + 1)
                auc = n_points * (len(positives) + 1) + k
                for p, (point_name, threshold, _) in enumerate(points):
                    records.append((
                        group, observer, kind, scheme, annotator, severity,
                        name, point_name, threshold, n_positives[name], n_negative,
                        value[sensitivity + p], low[sensitivity + p], high[sensitivity + p],
                        value[specificity][p], low[specificity][p], high[specificity][p],
                        sources[str(observer)], value[auc], low[auc], high[auc],
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
