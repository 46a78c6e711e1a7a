"""Relabelling subgroups for the Simpson's-paradox refit."""

from __future__ import annotations

import pandas as pd
import pytest

from perceptiongap.analysis import merge_subgroups, merged_subgroup_name
from perceptiongap.errors import InputError


def test_merges_the_two_lesion_subgroups_and_leaves_the_rest() -> None:
    cases = pd.DataFrame({"exam": ["1", "1", "2", "2"], "breast": ["L", "R", "L", "R"],
                          "label": ["malignant", "benign", "malignant", "nonbiopsied"],
                          "subgroup": ["microcalcifications", "soft_tissue_lesions", "mixed", "nonbiopsied"]})
    merged = merge_subgroups(cases)
    assert merged_subgroup_name() == "microcalcifications+soft_tissue_lesions"
    assert list(merged["subgroup"]) == [merged_subgroup_name()] * 2 + ["mixed", "nonbiopsied"]
    assert list(cases["subgroup"])[0] == "microcalcifications"  # the input is not modified
    assert merged[["exam", "breast", "label"]].equals(cases[["exam", "breast", "label"]])


def test_absent_subgroup_is_refused() -> None:
    cases = pd.DataFrame({"exam": ["1"], "breast": ["L"], "label": ["malignant"], "subgroup": ["mixed"]})
    with pytest.raises(InputError, match="no case has subgroup 'microcalcifications'"):
        merge_subgroups(cases)
