"""Which subgroups a study analyses, and merging two of them for the Simpson's-paradox check (METHOD §6).

Subgroups are the user's: Cases may name them as it likes (mass, calcification, ...), any number
of them. :func:`choose_subgroups` picks the ones analysed and the pair merged for the refit:

- by default the paper's pair (microcalcifications and soft tissue lesions) when both are present,
  else every subgroup that has a malignant breast; the merged refit merges the two analysed
  subgroups when there are exactly two, and is skipped otherwise;
- or as the user writes them: ``"mass,calcification,distortion"`` analyses three subgroups,
  ``"mass+calcification,distortion"`` also merges mass and calcification for the refit.

The check refits the model with the merged subgroups relabelled as one (the release only pooled
the two subgroups' posterior draws of the separate fit), named
:data:`~perceptiongap.vocabulary.MERGED_SUBGROUP`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from perceptiongap.errors import InputError
from perceptiongap.vocabulary import ANALYSED_SUBGROUPS, MERGED_SUBGROUP, PAPER_SUBGROUPS

__all__ = ["SubgroupChoice", "choose_subgroups", "merge_subgroups", "merged_subgroup_name", "parse_subgroups",
           "subgroup_order"]


def merged_subgroup_name(subgroups: Sequence[str] = ANALYSED_SUBGROUPS) -> str:
    """The name of the merged subgroup: ``microcalcifications+soft_tissue_lesions`` for the paper's."""
    return "+".join(subgroups)


def merge_subgroups(
    cases: pd.DataFrame, subgroups: Sequence[str] = ANALYSED_SUBGROUPS, name: str | None = None,
    *, source: str = "cases",
) -> pd.DataFrame:
    """A copy of Cases with every breast of ``subgroups`` relabelled as one subgroup.

    The merged subgroup is called ``name``, by default :func:`merged_subgroup_name` of ``subgroups``.
    """
    if len(subgroups) < 2:
        raise InputError(f"merging needs at least two subgroups, got {list(subgroups)}", source=source)
    absent = [name for name in subgroups if not (cases["subgroup"] == name).any()]
    if absent:
        raise InputError(f"column 'subgroup': no case has subgroup {absent[0]!r}", source=source)
    merged = cases.copy()
    merged.loc[merged["subgroup"].isin(list(subgroups)), "subgroup"] = name or merged_subgroup_name(subgroups)
    return merged


@dataclass(frozen=True)
class SubgroupChoice:
    """The subgroups a study analyses, and those merged for the Simpson's-paradox refit (None: no refit)."""

    analysed: tuple[str, ...]
    merged: tuple[str, ...] | None
    how: str  # one line for the terminal and run.json: what was chosen and why


def parse_subgroups(text: str | Sequence[str]) -> tuple[tuple[str, ...], tuple[str, ...] | None]:
    """``"a+b,c"`` (or ``["a+b", "c"]``) -> analysed ``(a, b, c)`` and merged ``(a, b)``.

    Raises :class:`InputError` (source ``subgroups``) for an empty list, a name given twice or
    more than one merged group.
    """
    items = text.split(",") if isinstance(text, str) else list(text)
    items = [str(item).strip() for item in items if str(item).strip()]
    if not items:
        raise InputError("no subgroups given", source="subgroups")
    analysed: list[str] = []
    merged = None
    for item in items:
        names = tuple(name.strip() for name in item.split("+"))
        if any(not name for name in names):
            raise InputError(f"{item!r}: empty subgroup name", source="subgroups")
        if len(names) > 1:
            if merged is not None:
                raise InputError(f"only one merged group can be refitted; got {'+'.join(merged)!r} and {item!r}",
                                 source="subgroups")
            merged = names
        for name in names:
            if name in analysed:
                raise InputError(f"subgroup {name!r} is given twice", source="subgroups")
            analysed.append(name)
    return tuple(analysed), merged


def _with_malignant(cases: pd.DataFrame) -> list[str]:
    malignant = cases.loc[cases["label"] == "malignant", "subgroup"].astype(str)
    return list(pd.unique(malignant))


def choose_subgroups(
    cases: pd.DataFrame,
    subgroups: str | Sequence[str] | None = None,
    *,
    merged: bool = True,
    source: str = "cases",
) -> SubgroupChoice:
    """The subgroups to analyse and to merge (see the module docstring).

    ``subgroups`` None picks the default; ``merged`` False skips the merged refit. Every subgroup
    named must be in Cases (``source`` names the Cases file) with at least one malignant breast:
    class separability compares the malignant breasts of a subgroup with all non-malignant ones.
    """
    present = list(pd.unique(cases["subgroup"].astype(str)))
    with_malignant = _with_malignant(cases)
    if subgroups is None:
        if all(name in with_malignant for name in ANALYSED_SUBGROUPS):
            analysed, how = ANALYSED_SUBGROUPS, "the paper's pair"
        else:
            analysed, how = tuple(with_malignant), "every subgroup with a malignant breast"
            if not analysed:
                raise InputError("column 'label': no breast is malignant, so no subgroup can be analysed "
                                 "(class separability needs malignant breasts)", source=source)
        pair = analysed if merged and len(analysed) == 2 else None
    else:
        analysed, pair = parse_subgroups(subgroups)
        how = "as chosen"
        for name in analysed:
            if name not in present:
                raise InputError(f"{name!r} is not a subgroup of the cases (they have {', '.join(present)})",
                                 source="subgroups")
            if name not in with_malignant:
                raise InputError(f"subgroup {name!r} has no malignant breast, so its class separability is "
                                 "undefined", source="subgroups")
        if pair is None and merged and len(analysed) == 2:
            pair = analysed
        if pair is not None and not merged:
            raise InputError(f"{'+'.join(pair)!r} asks for a merged refit, but `merged` is off", source="subgroups")
    if pair is not None and MERGED_SUBGROUP in present:
        raise InputError(f"a subgroup is named {MERGED_SUBGROUP!r}, the name of the merged subgroup of the refit; "
                         "rename it, or turn `merged` off", source=source)
    refit = f"merged refit: {'+'.join(pair)}" if pair else (
        "no merged refit" + ("" if not merged else f" (it needs two analysed subgroups, not {len(analysed)}; "
                             "name a pair as a+b in `subgroups`)"))
    return SubgroupChoice(tuple(analysed), tuple(pair) if pair else None,
                          f"subgroups analysed: {', '.join(analysed)} ({how}); {refit}")


def subgroup_order(choice: SubgroupChoice) -> tuple[str, ...]:
    """The order of the model's subgroup index: the merged subgroup, the analysed ones, then the paper's.

    Subgroups not listed follow in order of appearance (see ``build_model_data``). For the
    release this is the paper's order, so its fits are those of earlier versions, draw for draw.
    """
    return tuple(dict.fromkeys((MERGED_SUBGROUP, *choice.analysed, *PAPER_SUBGROUPS)))
