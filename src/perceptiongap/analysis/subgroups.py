"""Merging subgroups, for the Simpson's-paradox check (METHOD §6).

The check refits the model with microcalcifications and soft tissue lesions relabelled as one
subgroup (the release only pooled the two subgroups' posterior draws of the separate fit). The
merged subgroup is named by joining the merged names with ``+``.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from perceptiongap.errors import InputError
from perceptiongap.vocabulary import ANALYSED_SUBGROUPS


def merged_subgroup_name(subgroups: Sequence[str] = ANALYSED_SUBGROUPS) -> str:
    """The name of the merged subgroup: ``microcalcifications+soft_tissue_lesions`` for the paper's."""
    return "+".join(subgroups)


def merge_subgroups(
    cases: pd.DataFrame, subgroups: Sequence[str] = ANALYSED_SUBGROUPS, name: str | None = None
) -> pd.DataFrame:
    """A copy of Cases with every breast of ``subgroups`` relabelled as one subgroup.

    The merged subgroup is called ``name``, by default :func:`merged_subgroup_name` of ``subgroups``.
    """
    if len(subgroups) < 2:
        raise InputError(f"merging needs at least two subgroups, got {list(subgroups)}", source="cases")
    absent = [name for name in subgroups if not (cases["subgroup"] == name).any()]
    if absent:
        raise InputError(f"column 'subgroup': no case has subgroup {absent[0]!r}", source="cases")
    merged = cases.copy()
    merged.loc[merged["subgroup"].isin(list(subgroups)), "subgroup"] = name or merged_subgroup_name(subgroups)
    return merged
