"""The vocabulary: severity labels, and the one rule for a list of cut-offs."""

from __future__ import annotations

import math

import pytest

from perceptiongap.errors import InputError
from perceptiongap.vocabulary import (
    DEFAULT_CUTOFFS_PER_MM,
    PAPER_CUTOFFS_PER_MM,
    PAPER_SEVERITIES_MM,
    cutoff_per_mm,
    parse_cutoffs,
    severity_mm,
    validate_cutoffs,
)


def test_the_paper_labels_its_cutoffs_by_their_wavelength():
    assert [severity_mm(c) for c in (math.inf, *PAPER_CUTOFFS_PER_MM)] == list(PAPER_SEVERITIES_MM)
    assert [cutoff_per_mm(s) for s in PAPER_SEVERITIES_MM] == [math.inf, *PAPER_CUTOFFS_PER_MM]


def test_the_default_is_the_papers_nine_severities_unperturbed_first():
    assert DEFAULT_CUTOFFS_PER_MM == (math.inf, 6.0, 4.5, 3.0, 2.0, 1.5, 1.0, 0.5, 0.25)
    assert validate_cutoffs(DEFAULT_CUTOFFS_PER_MM) == DEFAULT_CUTOFFS_PER_MM


def test_cutoffs_come_back_unperturbed_first_then_mildest_first():
    assert parse_cutoffs("0.5, inf,6") == (math.inf, 6.0, 0.5)
    assert parse_cutoffs("") == ()


@pytest.mark.parametrize(
    "text, message",
    [
        ("abc", "cutoffs_per_mm: 'abc' is not a number of cycles/mm"),
        ("0", "cutoffs_per_mm: 0 is not a positive number"),
        ("-1", "cutoffs_per_mm: -1 is not a positive number"),
        ("nan", "cutoffs_per_mm: nan is not a positive number"),
        ("2,2", "cutoffs_per_mm: cut-off 2 is given twice"),
        ("6,6.01", "cutoffs_per_mm: cut-off 6.01 and 6 share the severity label 0.17 mm"),
    ],
)
def test_bad_cutoffs_are_refused_in_one_line(text, message):
    with pytest.raises(InputError) as refused:
        parse_cutoffs(text)
    assert str(refused.value).startswith(message)
