"""Numbers as people read them: one p-value format for tables and verdicts, one for figures; plain values."""

from __future__ import annotations

import numpy as np
import pytest

from perceptiongap.formatting import format_p_value, plain


@pytest.mark.parametrize(("p", "text"), [(0.0004, "<0.001"), (0.001, "0.001"), (0.0041, "0.004"), (0.48, "0.480"),
                                         (1.0, "1.000"), (np.float64(0.2104), "0.210")])
def test_table_p_values_have_three_decimals_and_a_floor(p, text) -> None:
    assert format_p_value(p) == text


@pytest.mark.parametrize(("p", "text"), [(0.0004, "<.001"), (0.004, ".004"), (0.0415, ".042"), (0.48, ".48"),
                                         (0.999, "1")])
def test_figure_p_values_are_compact(p, text) -> None:
    assert format_p_value(p, compact=True) == text


@pytest.mark.parametrize("missing", [None, float("nan"), np.float64("nan"), float("inf")])
def test_a_missing_p_value_prints_what_the_caller_chose(missing) -> None:
    assert format_p_value(missing) == ""
    assert format_p_value(missing, compact=True) == ""
    assert format_p_value(missing, missing="n/a") == "n/a"


def test_numpy_scalars_print_as_plain_python_values() -> None:
    assert f"{plain(np.float64('nan'))!r}" == "nan"
    assert f"{plain(np.float64(0.0))!r}" == "0.0"
    assert f"{plain(np.str_('e1'))!r}" == "'e1'"
    assert f"{plain(np.int64(3))!r}" == "3"
    assert plain("already plain") == "already plain"


def test_a_p_value_in_a_sentence_reads_equals_or_less_than():
    from perceptiongap.formatting import format_p_relation

    assert format_p_relation(0.0004) == "< 0.001"
    assert format_p_relation(0.004) == "= 0.004"
    assert format_p_relation(float("nan")) == "n/a"
