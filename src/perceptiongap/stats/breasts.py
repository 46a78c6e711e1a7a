"""Which breasts each statistic counts: a subgroup's positives against all non-malignant breasts.

As for class separability (METHOD §6), the task is malignant vs non-malignant: for a subgroup g the
positives are the malignant breasts whose subgroup is g, the negatives every non-malignant breast
(benign and non-biopsied, whatever their subgroup). Beside each analysed subgroup, ``merged`` pools
the positives of the analysed pair (the Simpson's-paradox check) and ``all`` every malignant breast.

Bootstrap strata (see :mod:`perceptiongap.stats.bootstrap`) are the malignant breasts of each
subgroup and the non-malignant breasts, so every replicate keeps each subgroup's number of
positives and the number of negatives.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from perceptiongap.errors import InputError
from perceptiongap.study import check_observations_have_cases
from perceptiongap.vocabulary import ANALYSED_SUBGROUPS, MERGED_SUBGROUP

__all__ = [
    "ALL_MALIGNANT",
    "NEGATIVE_STRATUM",
    "analysed_subgroups",
    "attach_cases",
    "key_columns_as_categories",
    "positive_mask",
    "positive_sets",
    "strata",
]

#: The pseudo-subgroup of every malignant breast.
ALL_MALIGNANT = "all"
#: The bootstrap stratum of the non-malignant breasts.
NEGATIVE_STRATUM = "non-malignant"


def analysed_subgroups(cases: pd.DataFrame, subgroups: Sequence[str] | None = None) -> tuple[str, ...]:
    """The subgroups to report one by one.

    Default: the paper's analysed pair where the cases have malignant breasts in it, otherwise every
    subgroup with a malignant breast. Named subgroups must have a malignant breast.
    """
    malignant = cases.loc[cases["label"] == "malignant", "subgroup"].astype(str)
    present = list(dict.fromkeys(sorted(malignant)))
    if subgroups is None:
        paper = [g for g in ANALYSED_SUBGROUPS if g in present]
        return tuple(paper or present)
    missing = [g for g in subgroups if g not in present]
    if missing:
        raise InputError(f"no malignant breast has subgroup {missing[0]!r} (subgroups with malignant breasts: "
                         f"{', '.join(present) or 'none'})", source="subgroups")
    return tuple(dict.fromkeys(subgroups))


def positive_sets(subgroups: Sequence[str],
                  merged_subgroups: Sequence[str] | None = None) -> dict[str, tuple[str, ...]]:
    """Reported subgroup -> the subgroups whose malignant breasts are its positives.

    Each analysed subgroup alone; ``merged``: the subgroups of ``merged_subgroups`` together (a
    results folder's merged refit), by default every analysed subgroup when two or more are analysed
    (the paper merges its pair); ``all`` (every malignant breast, ``()`` meaning no restriction).
    """
    sets: dict[str, tuple[str, ...]] = {g: (g,) for g in subgroups}
    merged = tuple(merged_subgroups) if merged_subgroups else tuple(subgroups)
    if len(merged) >= 2:
        sets[MERGED_SUBGROUP] = merged
    sets[ALL_MALIGNANT] = ()
    return sets


def attach_cases(observations: pd.DataFrame, cases: pd.DataFrame, source: str = "observations") -> pd.DataFrame:
    """Observations with each breast's ``case`` index into Cases, ``malignant`` flag and ``subgroup``."""
    check_observations_have_cases(observations, cases, source=source)
    index = pd.MultiIndex.from_arrays([cases["exam"].astype(str), cases["breast"].astype(str)])
    rows = pd.MultiIndex.from_arrays([observations["exam"].astype(str), observations["breast"].astype(str)])
    case = index.get_indexer(rows)
    out = observations.copy()
    out["case"] = case
    out["malignant"] = (cases["label"].astype(str).to_numpy() == "malignant")[case]
    out["subgroup"] = cases["subgroup"].astype(str).to_numpy()[case]
    return out


def key_columns_as_categories(rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` with the observer and scheme columns as categories: selecting, grouping and mapping them
    then costs an integer operation per row, not a string one (Arrow-backed strings are slow to take)."""
    columns = [c for c in ("observer_group", "observer", "observer_kind", "scheme", "annotator") if c in rows.columns]
    return rows.astype({column: "category" for column in columns})


def strata(malignant: np.ndarray, subgroup: np.ndarray) -> np.ndarray:
    """Bootstrap stratum of each breast: ``malignant|<subgroup>`` or the non-malignant stratum."""
    subgroup = np.asarray(subgroup, dtype=object)
    return np.where(np.asarray(malignant, dtype=bool), "malignant|" + subgroup, NEGATIVE_STRATUM)


def positive_mask(malignant: np.ndarray, subgroup: np.ndarray, members: tuple[str, ...]) -> np.ndarray:
    """Breasts that are positives for a reported subgroup whose positives come from ``members``."""
    malignant = np.asarray(malignant, dtype=bool)
    if not members:
        return malignant
    return malignant & np.isin(np.asarray(subgroup, dtype=object), list(members))
