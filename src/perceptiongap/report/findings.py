"""Where a run's inference methods, seeds and the model-free statistic part ways (pure functions on tables).

"Significant" is p < 0.05 on the numbers of ``tables/perturbation_study.csv`` (medians over seeds
where several were run), as in :mod:`perceptiongap.analysis.conclusions`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from perceptiongap.analysis.conclusions import ALPHA, Conclusion

OBSERVED = "observed"
#: (statistic name, p-value column) of the perturbation-study table.
STATISTICS = (("confidence", "p_confidence_positive"), ("separability", "p_separability_drop"))
_CELL = ["observer_group", "subgroup", "severity_mm"]


def _in_table_order(frame: pd.DataFrame, table: pd.DataFrame, first: Sequence[str] = ()) -> pd.DataFrame:
    """``frame`` sorted by ``first`` columns, then groups and subgroups in their order in ``table``, then severity."""
    ranks = {column: {name: i for i, name in enumerate(pd.unique(table[column]))}
             for column in ("inference", "observer_group", "subgroup")}
    keys = [*first, "observer_group", "subgroup", "severity_mm", *(["statistic"] if "statistic" in frame else [])]

    def key(column: pd.Series) -> pd.Series:
        return column.map(ranks[column.name]) if column.name in ranks else column

    return frame.sort_values(keys, key=key, kind="stable").reset_index(drop=True)


def model_methods(table: pd.DataFrame) -> list[str]:
    """The model-based inference methods of a perturbation-study table, in table order."""
    return [m for m in pd.unique(table["inference"]) if m != OBSERVED]


def method_disagreements(table: pd.DataFrame, methods: Sequence[str] | None = None) -> pd.DataFrame:
    """Cells where the methods disagree on significance.

    One row per (observer_group, subgroup, severity_mm, statistic) where every method has a
    p-value and some but not all are below 0.05. Columns: the cell, ``statistic``
    (confidence / separability) and ``p_<method>`` for each method.
    """
    methods = list(methods if methods is not None else model_methods(table))
    columns = [*_CELL, "statistic", *[f"p_{m}" for m in methods]]
    if len(methods) < 2:
        return pd.DataFrame(columns=columns)
    frames = []
    for statistic, p_column in STATISTICS:
        wide = table[table["inference"].isin(methods)].pivot_table(
            index=_CELL, columns="inference", values=p_column, aggfunc="first", sort=False
        ).reindex(columns=methods)
        complete = wide.dropna()
        significant = complete < ALPHA
        split = complete[significant.any(axis=1) & ~significant.all(axis=1)]
        frame = split.add_prefix("p_").reset_index()
        frame.insert(len(_CELL), "statistic", statistic)
        frames.append(frame)
    result = pd.concat(frames, ignore_index=True)
    result.columns.name = None
    return _in_table_order(result.loc[:, columns], table)


def seed_disagreements(table: pd.DataFrame) -> pd.DataFrame:
    """Cells where fits (seeds) of one method disagree: a fraction significant strictly between 0 and 1.

    Columns: inference, the cell, statistic, fits, fraction_significant, median_p.
    """
    frames = []
    for statistic, p_column in STATISTICS:
        fraction = f"frac_{statistic}_significant"
        rows = table[(table["inference"] != OBSERVED) & (table[fraction] > 0) & (table[fraction] < 1)]
        frames.append(pd.DataFrame({
            "inference": rows["inference"], **{c: rows[c] for c in _CELL}, "statistic": statistic,
            "fits": rows["fits"], "fraction_significant": rows[fraction], "median_p": rows[p_column],
        }))
    columns = ["inference", *_CELL, "statistic", "fits", "fraction_significant", "median_p"]
    result = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)
    return _in_table_order(result.loc[:, columns], table, first=["inference"])


def observed_vs_model(table: pd.DataFrame, methods: Sequence[str] | None = None) -> pd.DataFrame:
    """Separability-drop cells where the observed predictions (no model) and a method disagree.

    One row per (observer_group, subgroup, severity_mm) with an observed p-value where, for some
    method, exactly one of the observed and the model-based p-values is below 0.05. Columns:
    the cell, ``observed_before``, ``observed_after`` (the observed separability at severity 0 and
    at this severity), ``p_observed`` and ``p_<method>`` for each method.
    """
    methods = list(methods if methods is not None else model_methods(table))
    wide = table.pivot_table(index=_CELL, columns="inference", values="p_separability_drop", aggfunc="first",
                             sort=False).reindex(columns=[OBSERVED, *methods])
    wide = wide[wide[OBSERVED].notna()]
    observed_significant = wide[OBSERVED] < ALPHA
    split = np.zeros(len(wide), dtype=bool)
    for method in methods:
        present = wide[method].notna()
        split |= (present & ((wide[method] < ALPHA) != observed_significant)).to_numpy()
    result = wide[split].add_prefix("p_").reset_index()
    result.columns.name = None
    observed = table[table["inference"] == OBSERVED].set_index(_CELL)["separability_mean"]
    baseline = table[(table["inference"] == OBSERVED) & (table["severity_mm"] == 0)].set_index(
        ["observer_group", "subgroup"])["separability_mean"]
    result.insert(3, "observed_before", [baseline.get((g, s), np.nan) for g, s in
                                         zip(result["observer_group"], result["subgroup"])])
    result.insert(4, "observed_after", [observed.get(tuple(key), np.nan) for key in result[_CELL].to_numpy()])
    return _in_table_order(result, table)


def conclusion_disagreements(conclusions: Sequence[Conclusion]) -> list[Conclusion]:
    """The conclusions that the methods judging them (verdict not None) do not all judge alike."""
    return [c for c in conclusions if len({v for v in c.verdicts.values() if v is not None}) > 1]
