"""The paper's conclusions (METHOD §7), each checked against the tables of one run.

Every conclusion is turned into a rule on the tables, stated in its ``rule`` text, and judged
separately for each inference method. "Significant" means p < 0.05, judged on the numbers of
the table (medians over seeds where several were run). The most severe filter is the largest
severity in the table (4 mm in the paper). A claim of *no* effect ("almost no effect on
radiologists", "networks trained on filtered data recover") needs evidence that the effect stays
within a margin (:mod:`perceptiongap.analysis.margins`), not merely p >= 0.05; a claim of an
effect needs a significant drop, so tables with no drop at all support neither.

The conclusions are the paper's: they are about microcalcifications and soft tissue lesions,
radiologists and networks. A study without those subgroups or observer groups gets each
conclusion it cannot judge as "not evaluated", with the reason (``this study has no ...``).
They are evaluated once, by ``analyse``, and written to ``tables/conclusions.csv``
(:func:`conclusions_table`); the terminal summary and the report read them back from there
(:func:`conclusions_from_table`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from perceptiongap.analysis.margins import CONFIDENCE_MARGIN, EVIDENCE_LEVEL, SEPARABILITY_MARGIN
from perceptiongap.formatting import format_p_relation
from perceptiongap.vocabulary import ANALYSED_SUBGROUPS, FILTERED_SUFFIX, MERGED_SUBGROUP

__all__ = [
    "ALPHA",
    "CONCLUSIONS",
    "CONCLUSION_COLUMNS",
    "Conclusion",
    "conclusions_from_table",
    "conclusions_table",
    "evaluate_conclusions",
    "observer_kinds",
    "observer_roles",
]

ALPHA = 0.05
PAPER_HUMAN_GROUPS = ("radiologists",)
PAPER_NETWORK_GROUPS = ("gmic", "dmv")
PAPER_FILTERED_GROUPS = ("gmic_filtered", "dmv_filtered")


#: The columns of ``tables/conclusions.csv``.
CONCLUSION_COLUMNS = ("conclusion", "inference", "supported", "evidence")
MICROCALCIFICATIONS, SOFT_TISSUE_LESIONS = ANALYSED_SUBGROUPS


@dataclass
class Conclusion:
    """One conclusion of the paper and, per inference method, whether this run supports it."""

    key: str
    statement: str
    rule: str
    verdicts: dict[str, bool | None] = field(default_factory=dict)
    evidence: dict[str, str] = field(default_factory=dict)


def _rows(table: pd.DataFrame, inference: str, group: str, subgroup: str) -> pd.DataFrame:
    rows = table[(table["inference"] == inference) & (table["observer_group"] == group)
                 & (table["subgroup"] == subgroup)]
    return rows.sort_values("severity_mm")


def _at_most_severe(rows: pd.DataFrame) -> pd.Series:
    return rows.iloc[-1]


def _fmt(p: float) -> str:
    """``= 0.004``, ``< 0.001`` or ``n/a``, to follow a p-value's name."""
    return format_p_relation(p, missing="n/a")


def _affected(table, inference, group, subgroup) -> tuple[bool | None, str]:
    """Significant drop in confidence and separability at the most severe filter."""
    rows = _rows(table, inference, group, subgroup)
    if rows.empty:
        return None, f"{group}: not fitted"
    worst = _at_most_severe(rows)
    p_conf, p_sep = worst["p_confidence_positive"], worst["p_separability_drop"]
    verdict = bool(p_conf < ALPHA and p_sep < ALPHA)
    return verdict, f"{group} at {worst['severity_mm']:g} mm: P(gamma>0) {_fmt(p_conf)}, separability p {_fmt(p_sep)}"


def _missing(rows: pd.DataFrame, *columns: str) -> str | None:
    absent = [c for c in columns if c not in rows]
    return f"not evaluated (the table has no column {', '.join(absent)}; run `perceptiongap analyse` again)" if absent \
        else None


def _unaffected(table, inference, group, subgroup) -> tuple[bool | None, str]:
    """Evidence of no lowering at every perturbed severity: P(gamma > -margin) >= the evidence level,
    and the upper bound of the separability drop below its margin."""
    rows = _rows(table, inference, group, subgroup).iloc[1:]
    if rows.empty:
        return None, f"{group}: not fitted"
    lacking = _missing(rows, "p_confidence_above_margin", "separability_drop_upper")
    if lacking:
        return None, f"{group}: {lacking}"
    confidence = rows.set_index("severity_mm")["p_confidence_above_margin"]
    drop = rows.set_index("severity_mm")["separability_drop_upper"]
    # NaN (no posterior spread, fewer than two observers) is no evidence: it fails the comparisons.
    verdict = bool((confidence >= EVIDENCE_LEVEL).all() and (drop < SEPARABILITY_MARGIN).all())
    worst_confidence = confidence.fillna(-np.inf).idxmin()
    worst_drop = drop.fillna(np.inf).idxmax()
    return verdict, (f"{group}: smallest P(gamma>-{CONFIDENCE_MARGIN:g}) = {confidence[worst_confidence]:.3f} "
                     f"(at {worst_confidence:g} mm, needs >= {EVIDENCE_LEVEL:g}), largest upper bound of the "
                     f"separability drop {drop[worst_drop]:.3f} (at {worst_drop:g} mm, needs < "
                     f"{SEPARABILITY_MARGIN:g})")


def _separability_kept(table, inference, group, subgroup) -> tuple[bool | None, str]:
    """Evidence that separability does not drop by more than its margin at the most severe filter."""
    rows = _rows(table, inference, group, subgroup)
    if rows.empty:
        return None, f"{group}: not fitted"
    lacking = _missing(rows, "separability_drop_upper")
    if lacking:
        return None, f"{group}: {lacking}"
    worst = _at_most_severe(rows)
    bound = worst["separability_drop_upper"]
    return bool(bound < SEPARABILITY_MARGIN), (
        f"{group} at {worst['severity_mm']:g} mm: upper bound of the separability drop {bound:.3f} "
        f"(needs < {SEPARABILITY_MARGIN:g}), separability p {_fmt(worst['p_separability_drop'])}")


def _all(parts: Sequence[tuple[bool | None, str]]) -> tuple[bool | None, str]:
    verdicts = [v for v, _ in parts]
    verdict = None if any(v is None for v in verdicts) or not verdicts else all(verdicts)
    return verdict, "; ".join(text for _, text in parts)


def _annotation_verdict(annotation: pd.DataFrame, group: str, subgroup: str) -> tuple[bool | None, str]:
    """At the most severe filter: the entire image and the exterior both lower separability
    significantly, the exterior's drop is at least half the entire image's, the interior's at most
    half the exterior's."""
    rows = annotation[(annotation["observer_group"] == group) & (annotation["subgroup"] == subgroup)]
    if rows.empty:
        return None, f"{group}: no annotation study"
    worst = rows["severity_mm"].max()
    drop, p = {}, {}
    for scheme in ("entire", "roi_exterior", "roi_interior"):
        scheme_rows = rows[rows["scheme"] == scheme].set_index("severity_mm")
        drop[scheme] = scheme_rows.loc[0.0, "separability_mean"] - scheme_rows.loc[worst, "separability_mean"]
        p[scheme] = scheme_rows.loc[worst, "p_separability_drop"]
    significant = {scheme: bool(drop[scheme] > 0 and p[scheme] < ALPHA) for scheme in ("entire", "roi_exterior")}
    verdict = bool(significant["entire"] and significant["roi_exterior"]
                   and drop["roi_exterior"] >= 0.5 * drop["entire"]
                   and drop["roi_interior"] <= 0.5 * drop["roi_exterior"])
    text = (f"{group} separability drop at {worst:g} mm: entire {drop['entire']:.2f} (p {_fmt(p['entire'])}), "
            f"exterior {drop['roi_exterior']:.2f} (p {_fmt(p['roi_exterior'])}), "
            f"interior {drop['roi_interior']:.2f} (p {_fmt(p['roi_interior'])})")
    return verdict, text


def observer_kinds(tables: Mapping[str, pd.DataFrame]) -> dict[str, str]:
    """Each observer group's kind (from ``tables["fits"]``), in the order of the perturbation-study table."""
    fits = tables["fits"]
    kinds = dict(zip(fits["observer_group"].astype(str), fits["observer_kind"].astype(str)))
    order = [str(g) for g in pd.unique(tables["perturbation_study"]["observer_group"])]
    return {g: kinds[g] for g in [*order, *kinds] if g in kinds}


def observer_roles(observer_kinds: Mapping[str, str]) -> dict[str, list[str]]:
    """The roles of :func:`evaluate_conclusions` from each observer group's kind (``human``/``machine``).

    Humans play the radiologists; machine groups whose name ends in ``_filtered`` the networks
    trained on filtered images, the other machine groups the networks. For the release this gives
    the paper's groups.
    """
    humans = [g for g, kind in observer_kinds.items() if kind == "human"]
    machines = [g for g, kind in observer_kinds.items() if kind == "machine"]
    return {
        "human_groups": humans,
        "network_groups": [g for g in machines if not g.endswith(FILTERED_SUFFIX)],
        "filtered_groups": [g for g in machines if g.endswith(FILTERED_SUFFIX)],
    }


#: The paper's conclusions (METHOD §7): key -> (statement, the rule by which this run judges it).
CONCLUSIONS: dict[str, tuple[str, str]] = {
    "microcalcifications": (
        "Microcalcifications: filtering lowers predictive confidence and class separability for both "
        "radiologists and networks.",
        "For radiologists and each network trained on unperturbed images: P(gamma>0) < 0.05 and "
        "separability-drop p < 0.05 at the most severe filter.",
    ),
    "soft_tissue_lesions": (
        "Soft tissue lesions: filtering lowers confidence and separability for networks but has almost no "
        "effect on radiologists; networks trained on filtered data largely recover separability.",
        "Networks: as for microcalcifications. Radiologists, evidence of no effect at every severity: "
        f"P(gamma > -{CONFIDENCE_MARGIN:g}) >= {EVIDENCE_LEVEL:g} (confidence lowered by less than "
        f"{CONFIDENCE_MARGIN:g} on the logit scale) and the one-sided {EVIDENCE_LEVEL:.0%} upper bound of the "
        f"mean per-observer separability drop below {SEPARABILITY_MARGIN:g} (KS). Networks trained on "
        f"filtered images: that upper bound below {SEPARABILITY_MARGIN:g} at the most severe filter.",
    ),
    "annotation_study": (
        "Annotation study: for soft tissue lesions, filtering the ROI exterior hurts the networks about as much "
        "as filtering the entire image, filtering the interior much less.",
        "At the most severe filter, for each network: filtering the entire image and filtering the exterior "
        "both lower separability (drop > 0, p < 0.05); the exterior's drop is at least half the entire "
        "image's, and the interior's at most half the exterior's. Model-free: the same under every "
        "inference method.",
    ),
    "merged_subgroups": (
        "Merging the two subgroups makes radiologists and networks look alike (Simpson's paradox).",
        "In the merged refit radiologists and networks both show P(gamma>0) < 0.05 and separability-drop "
        "p < 0.05 at the most severe filter, while the separate analysis finds the soft-tissue difference "
        "(radiologists unaffected by the rule above, networks affected). The release's way (the separate "
        "fit's draws of both subgroups pooled) is judged alike and reported in the evidence.",
    ),
}


def _merged_by(merged: pd.DataFrame, how: str) -> pd.DataFrame:
    """The rows of ``merged_subgroups`` merged ``how`` (tables without ``merged_by`` are refits only)."""
    if "merged_by" not in merged:
        return merged if how == "refit" else merged.iloc[:0]
    return merged[merged["merged_by"] == how]


def _lacking(*needs: tuple[bool, str]) -> str | None:
    """"not evaluated (this study has no A and no B)" for the needs that are not met, else None."""
    missing = [what for present, what in needs if not present]
    return f"not evaluated (this study has no {' and no '.join(missing)})" if missing else None


def evaluate_conclusions(
    tables: Mapping[str, pd.DataFrame],
    *,
    human_groups: Sequence[str] = PAPER_HUMAN_GROUPS,
    network_groups: Sequence[str] = PAPER_NETWORK_GROUPS,
    filtered_groups: Sequence[str] = PAPER_FILTERED_GROUPS,
    merged_subgroups: Sequence[str] = ANALYSED_SUBGROUPS,
) -> list[Conclusion]:
    """Judge the four conclusions of METHOD §7 for each model-based inference method in the tables.

    ``merged_subgroups`` are the subgroups the merged refit (``tables["merged_subgroups"]``)
    merged; the Simpson's-paradox conclusion is about the paper's pair only. A conclusion whose
    subgroups or observer groups the study lacks is not evaluated (verdict None), and its
    evidence says what is missing.
    """
    perturbation = tables["perturbation_study"]
    merged = tables.get("merged_subgroups")
    annotation = tables.get("annotation_study")
    methods = [m for m in pd.unique(perturbation["inference"]) if m != "observed"]
    humans = [g for g in human_groups if g in set(perturbation["observer_group"])]
    networks = [g for g in network_groups if g in set(perturbation["observer_group"])]
    filtered = [g for g in filtered_groups if g in set(perturbation["observer_group"])]
    subgroups = set(perturbation["subgroup"])
    has_micro, has_soft = MICROCALCIFICATIONS in subgroups, SOFT_TISSUE_LESIONS in subgroups
    human_need = (bool(humans), "human observer group")
    network_need = (bool(networks), f"network group (machine observers, not named <network>{FILTERED_SUFFIX})")
    lacking = {
        "microcalcifications": _lacking((has_micro, f"{MICROCALCIFICATIONS} subgroup"), human_need, network_need),
        "soft_tissue_lesions": _lacking(
            (has_soft, f"{SOFT_TISSUE_LESIONS} subgroup"), human_need, network_need,
            (bool(filtered), f"network trained on filtered images, named <network>{FILTERED_SUFFIX}")),
        "annotation_study": _lacking(
            (annotation is not None, "annotation study, which needs ROI-scheme observations"),
            (annotation is None or SOFT_TISSUE_LESIONS in set(annotation["subgroup"]),
             f"{SOFT_TISSUE_LESIONS} subgroup in its annotation study"), network_need),
        "merged_subgroups": _lacking(
            (merged is not None, "merged-subgroup refit"),
            (merged is None or tuple(merged_subgroups) == ANALYSED_SUBGROUPS,
             f"merged refit of {' and '.join(ANALYSED_SUBGROUPS)}; it merged {' and '.join(merged_subgroups)}"),
            (has_soft, f"{SOFT_TISSUE_LESIONS} subgroup"), human_need, network_need),
    }

    conclusions = [Conclusion(key, statement, rule) for key, (statement, rule) in CONCLUSIONS.items()]
    for method in methods:
        results = {}
        if not lacking["microcalcifications"]:
            results["microcalcifications"] = _all(
                [_affected(perturbation, method, g, MICROCALCIFICATIONS) for g in (*humans, *networks)])
        soft_networks = _all([_affected(perturbation, method, g, SOFT_TISSUE_LESIONS) for g in networks])
        soft_humans = _all([_unaffected(perturbation, method, g, SOFT_TISSUE_LESIONS) for g in humans])
        if not lacking["soft_tissue_lesions"]:
            soft_filtered = _all([_separability_kept(perturbation, method, g, SOFT_TISSUE_LESIONS)
                                  for g in filtered])
            results["soft_tissue_lesions"] = _all([soft_networks, soft_humans, soft_filtered])
        if not lacking["annotation_study"]:
            results["annotation_study"] = _all([_annotation_verdict(annotation, g, SOFT_TISSUE_LESIONS)
                                                for g in networks])
        if not lacking["merged_subgroups"]:
            refit, pooled = _merged_by(merged, "refit"), _merged_by(merged, "pooled")
            alike = _all([_affected(refit, method, g, MERGED_SUBGROUP) for g in (*humans, *networks)])
            contrast = _all([soft_humans, soft_networks])
            verdict = None if alike[0] is None or contrast[0] is None else (alike[0] and contrast[0])
            text = f"merged refit: {alike[1]}. Separate soft tissue fits: {contrast[1]}"
            if not pooled.empty:
                pooled_alike = _all([_affected(pooled, method, g, MERGED_SUBGROUP) for g in (*humans, *networks)])
                shown = {True: "alike", False: "not alike", None: "not evaluated"}[pooled_alike[0]]
                text += f". Pooled as the release did ({shown}): {pooled_alike[1]}"
            results["merged_subgroups"] = (verdict, text)
        for conclusion in conclusions:
            verdict, text = results.get(conclusion.key, (None, lacking[conclusion.key]))
            conclusion.verdicts[method] = verdict
            conclusion.evidence[method] = text
    return conclusions


def conclusions_table(conclusions: Sequence[Conclusion]) -> pd.DataFrame:
    """Long table (:data:`CONCLUSION_COLUMNS`): conclusion, inference, supported (True/False/empty), evidence."""
    return pd.DataFrame(
        [{"conclusion": c.key, "inference": method, "supported": c.verdicts[method], "evidence": c.evidence[method]}
         for c in conclusions for method in c.verdicts],
        columns=list(CONCLUSION_COLUMNS),
    )


def _verdict(value) -> bool | None:
    if isinstance(value, str):
        return {"true": True, "false": False}.get(value.strip().lower())
    if value is None or (isinstance(value, float) and value != value):
        return None
    return bool(value)


def conclusions_from_table(table: pd.DataFrame) -> list[Conclusion]:
    """The conclusions as :func:`conclusions_table` wrote them (e.g. read back from ``conclusions.csv``).

    Statements and rules come from :data:`CONCLUSIONS`; a key it does not know keeps its key as statement.
    """
    conclusions: dict[str, Conclusion] = {}
    for row in table.itertuples(index=False):
        key = str(row.conclusion)
        if key not in conclusions:
            statement, rule = CONCLUSIONS.get(key, (key, ""))
            conclusions[key] = Conclusion(key, statement, rule)
        evidence = row.evidence if isinstance(row.evidence, str) else ""
        conclusions[key].verdicts[str(row.inference)] = _verdict(row.supported)
        conclusions[key].evidence[str(row.inference)] = evidence
    return list(conclusions.values())
