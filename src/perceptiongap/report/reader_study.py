"""The report's reader-study statistics: compact tables and sentences, computed from the saved tables.

Everything here reads ``tables/accuracy_summary.csv`` and ``tables/error_consistency.csv``
(:mod:`perceptiongap.stats`), whole-image scheme only; no number is written into the text by hand.
Readers are scored at their own yes/no answers, networks at one operating point: the readers' mean
specificity at severity 0 when the table has it, else the first operating point of the networks.

- :func:`accuracy_overview`: mean sensitivity (per subgroup and over all malignant breasts) and
  specificity of each observer group, one column per severity.
- :func:`consistency_overview`: mean error consistency of each kind of pair, per subgroup, averaged
  over severities.
- :func:`statistics_sentences`: what those tables say, in two or three sentences.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from perceptiongap.vocabulary import MERGED_SUBGROUP, PAPER_OBSERVER_GROUPS

__all__ = [
    "ALL_MALIGNANT",
    "SCHEME",
    "accuracy_overview",
    "consistency_overview",
    "network_operating_point",
    "operating_point_phrase",
    "severity_column",
    "statistics_sentences",
]

#: The scheme the report shows (ROI schemes stay in the CSV files).
SCHEME = "entire"
#: The pseudo-subgroup of every malignant breast (as :mod:`perceptiongap.stats.breasts` names it).
ALL_MALIGNANT = "all"
READER_DECISION = "reader_decision"
PREFERRED_OPERATING_POINT = "readers_mean_specificity"
_PAIR_KINDS = ("human-human", "human-network", "network-network")
_PAIR_WORDS = {"human-human": "pairs of readers", "human-network": "reader-network pairs",
               "network-network": "pairs of networks"}


def _whole_image(table: pd.DataFrame) -> pd.DataFrame:
    rows = table[table["scheme"].astype(str) == SCHEME]
    if "annotator" in rows.columns:
        annotator = rows["annotator"]
        rows = rows[annotator.isna() | (annotator.astype(str) == "")]  # empty, or NaN as read back from CSV
    return rows


def _subgroup_order(subgroups: Sequence[str]) -> list[str]:
    """Analysed subgroups first, then ``merged`` and ``all``."""
    ends = [MERGED_SUBGROUP, ALL_MALIGNANT]
    return [g for g in subgroups if g not in ends] + [g for g in ends if g in subgroups]


def _subgroup_words(subgroup: str) -> str:
    return "all malignant breasts" if subgroup == ALL_MALIGNANT else str(subgroup).replace("_", " ")


def severity_column(severity: float) -> str:
    """The column of a severity in :func:`accuracy_overview`: ``"0 mm"``, ``"0.17 mm"``."""
    return f"{float(severity):g} mm"


def network_operating_point(summary: pd.DataFrame) -> str | None:
    """The operating point the report shows networks at (None when the study has no network)."""
    points = list(dict.fromkeys(_whole_image(summary).loc[lambda t: t["observer_kind"] == "machine",
                                                          "operating_point"].astype(str)))
    if not points:
        return None
    return PREFERRED_OPERATING_POINT if PREFERRED_OPERATING_POINT in points else points[0]


def operating_point_phrase(name: str | None) -> str:
    """``readers_mean_specificity`` -> words for a caption."""
    if name is None:
        return "no networks"
    if name == PREFERRED_OPERATING_POINT:
        return ("the readers' mean specificity at severity 0 (each network's threshold set once, on its own "
                "unperturbed predictions)")
    kind, _, value = name.partition("_")
    if kind == "threshold":
        return f"a fixed threshold of {value}"
    if kind == "specificity":
        return f"specificity {value} on unperturbed images"
    return name


def _shown(summary: pd.DataFrame) -> pd.DataFrame:
    """Rows the report shows: readers at their decisions, networks at :func:`network_operating_point`."""
    rows = _whole_image(summary)
    point = network_operating_point(summary)
    return rows[(rows["operating_point"].astype(str) == READER_DECISION)
                | ((rows["observer_kind"] == "machine") & (rows["operating_point"].astype(str) == point))]


def _group_order(rows: pd.DataFrame) -> list[str]:
    """Human groups first, then machines; the paper's groups in the paper's order within each."""
    kinds = rows.groupby("observer_group", sort=False)["observer_kind"].first().astype(str)
    present = list(kinds.index.astype(str))
    ordered = [g for g in PAPER_OBSERVER_GROUPS if g in present] + [g for g in present
                                                                   if g not in PAPER_OBSERVER_GROUPS]
    return sorted(ordered, key=lambda g: kinds[g] != "human")


def accuracy_overview(summary: pd.DataFrame) -> pd.DataFrame:
    """Mean sensitivity and specificity over each group's observers, one column per severity.

    ``summary``: ``tables/accuracy_summary.csv``. Rows: per observer group (readers first),
    sensitivity for each analysed subgroup and for all malignant breasts, then specificity (the
    same non-malignant breasts for every subgroup). Columns: ``observer_group``, ``statistic``, then
    :func:`severity_column` of each severity.
    """
    rows = _shown(summary)
    severities = sorted(rows["severity_mm"].astype(float).unique())
    subgroups = [g for g in _subgroup_order(list(dict.fromkeys(rows["subgroup"].astype(str))))
                 if g != MERGED_SUBGROUP]
    records = []
    for group in _group_order(rows):
        mine = rows[rows["observer_group"].astype(str) == group]
        for statistic, subgroup in [*(("sensitivity", g) for g in subgroups), ("specificity", ALL_MALIGNANT)]:
            values = (mine[mine["subgroup"].astype(str) == subgroup]
                      .set_index("severity_mm")[f"{statistic}_mean"].reindex(severities))
            label = f"sensitivity: {_subgroup_words(subgroup)}" if statistic == "sensitivity" else "specificity"
            records.append({"observer_group": group, "statistic": label,
                            **{severity_column(s): float(v) for s, v in zip(severities, values)}})
    return pd.DataFrame.from_records(records, columns=["observer_group", "statistic",
                                                       *(severity_column(s) for s in severities)])


def consistency_overview(summary: pd.DataFrame) -> pd.DataFrame:
    """Mean error consistency (kappa) of each kind of pair, per subgroup, averaged over severities.

    ``summary``: ``tables/error_consistency.csv``. Rows: ``pair_kind`` (human-human, human-network,
    network-network, those present); columns: ``n_severities`` (severities with a kappa, at most),
    then one per subgroup (analysed, ``merged``, ``all``).
    """
    rows = _whole_image(summary)
    subgroups = _subgroup_order(list(dict.fromkeys(rows["subgroup"].astype(str))))
    records = []
    for kind in (k for k in _PAIR_KINDS if k in set(rows["pair_kind"].astype(str))):
        mine = rows[rows["pair_kind"].astype(str) == kind]
        means = mine.groupby("subgroup")["kappa_mean"].mean()
        counts = mine.groupby("subgroup")["kappa_mean"].count()
        records.append({"pair_kind": kind, "n_severities": int(counts.max()) if len(counts) else 0,
                        **{g: float(means.get(g, np.nan)) for g in subgroups}})
    return pd.DataFrame.from_records(records, columns=["pair_kind", "n_severities", *subgroups])


def _two(value: float) -> str:
    return "n/a" if not np.isfinite(value) else f"{value:.2f}"


def _change(frame: pd.DataFrame, first: str, last: str) -> str:
    return f"{_two(frame[first])} → {_two(frame[last])}"


def statistics_sentences(accuracy_summary: pd.DataFrame | None, consistency: pd.DataFrame | None) -> list[str]:
    """Two or three sentences: readers' and networks' sensitivity and specificity from unperturbed to
    the strongest filter, and the error consistency of each kind of pair (numbers to two decimals)."""
    sentences = []
    if accuracy_summary is not None and len(_shown(accuracy_summary)):
        overview = accuracy_overview(accuracy_summary)
        shown = _shown(accuracy_summary)
        severities = sorted(shown["severity_mm"].astype(float).unique())
        first, last = severity_column(severities[0]), severity_column(severities[-1])
        span = f"from {severities[0]:g} mm (unperturbed) to {severities[-1]:g} mm"
        if severities[0] != 0:
            span = f"from {severities[0]:g} mm to {severities[-1]:g} mm"
        kinds = shown.groupby("observer_group")["observer_kind"].first().astype(str)
        for group in (g for g in dict.fromkeys(overview["observer_group"]) if kinds[g] == "human"):
            mine = overview[overview["observer_group"] == group].set_index("statistic")
            readers = int(shown.loc[shown["observer_group"].astype(str) == group, "n_observers"].max())
            parts = [f"{label.removeprefix('sensitivity: ')} {_change(mine.loc[label], first, last)}"
                     for label in mine.index if label.startswith("sensitivity")]
            sentences.append(
                f"{group.capitalize()} (mean over {readers} readers, each scored on the breasts they read), "
                f"{span}: sensitivity on {', '.join(parts)}; specificity "
                f"{_change(mine.loc['specificity'], first, last)}.")
        networks = [g for g in dict.fromkeys(overview["observer_group"]) if kinds[g] == "machine"]
        if networks:
            every = shown[shown["subgroup"].astype(str) == ALL_MALIGNANT]
            parts = []
            for group in networks:
                mine = every[every["observer_group"].astype(str) == group].set_index("severity_mm")
                values = {column: mine[column].reindex([severities[0], severities[-1]]).to_numpy()
                          for column in ("sensitivity_mean", "specificity_mean", "auc_mean")}
                part = (f"{group} sensitivity {_two(values['sensitivity_mean'][0])} → "
                        f"{_two(values['sensitivity_mean'][1])}, specificity {_two(values['specificity_mean'][0])} → "
                        f"{_two(values['specificity_mean'][1])}")
                if np.isfinite(values["auc_mean"]).all():
                    part += f", AUC {_two(values['auc_mean'][0])} → {_two(values['auc_mean'][1])}"
                parts.append(part)
            sentences.append(f"Networks at {operating_point_phrase(network_operating_point(accuracy_summary))}, "
                             f"on all malignant breasts {span}: {'; '.join(parts)}.")
    if consistency is not None and len(_whole_image(consistency)):
        overview = consistency_overview(consistency).set_index("pair_kind")
        rows = _whole_image(consistency)
        subgroup = ALL_MALIGNANT if ALL_MALIGNANT in overview.columns else overview.columns[-1]
        trials = rows[rows["subgroup"].astype(str) == subgroup].groupby("pair_kind")["n_trials_mean"].mean()
        parts = [f"{_two(overview.loc[k, subgroup])} for {_PAIR_WORDS[k]}" for k in overview.index]
        shared = [f"{trials.get(k, np.nan):.0f}" for k in overview.index]
        ranked = overview[subgroup].dropna().sort_values(ascending=False)
        order = (f"; highest for {ranked.index[0]}, lowest for {ranked.index[-1]}" if len(ranked) >= 2
                 and ranked.iloc[0] != ranked.iloc[-1] else "")
        sentences.append(f"Error consistency (Cohen's kappa of two observers' errors, 0 for independent errors), "
                         f"mean over pairs and over the {int(overview['n_severities'].max())} severities, "
                         f"{_subgroup_words(subgroup)} against all non-malignant ones: {', '.join(parts)} (on "
                         f"{', '.join(shared)} shared breasts per pair and severity, on average){order}.")
    return sentences
