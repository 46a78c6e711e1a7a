"""The design of a reader study: balance, the release's uniform draw, seeded orders, practice exams."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from perceptiongap.errors import InputError
from perceptiongap.readers.design import balance, balanced_offsets, make_design

SUBGROUPS = ("microcalcifications", "soft_tissue_lesions", "mixed", "nonbiopsied")


def _severity_matrix(design) -> np.ndarray:
    return np.array([[levels[exam] for exam in design.study_exams] for levels in design.severity])


def _spreads(matrix: np.ndarray, n_severities: int, axis: int) -> np.ndarray:
    counts = np.stack([(matrix == s).sum(axis=axis) for s in range(n_severities)], axis=-1)
    return counts.max(axis=-1) - counts.min(axis=-1)


@settings(max_examples=60, deadline=None)
@given(
    n_exams=st.integers(1, 40),
    n_readers=st.integers(1, 12),
    n_severities=st.integers(1, 9),
    seed=st.integers(0, 2**32 - 1),
    data=st.data(),
)
def test_balanced_design_spreads_severities_as_evenly_as_possible(n_exams, n_readers, n_severities, seed, data):
    subgroups = np.array(data.draw(st.lists(st.tuples(st.sampled_from(SUBGROUPS), st.sampled_from(SUBGROUPS)),
                                            min_size=n_exams, max_size=n_exams)), dtype=object)
    design = make_design([f"e{i}" for i in range(n_exams)], subgroups, [f"r{i}" for i in range(n_readers)],
                         n_severities, seed=seed)
    matrix = _severity_matrix(design)
    # Counted here, not by the module: every exam seen at each severity by as equal a number of
    # readers as possible, and every reader seeing each severity as equally often as possible.
    assert _spreads(matrix, n_severities, axis=0).max() <= 1
    assert _spreads(matrix, n_severities, axis=1).max() <= 1
    # Within subgroups, breasts per severity per reader: an exam whose breasts are in one subgroup
    # adds two breasts at once, so two is the evenness a subgroup can always be held to here.
    for group in SUBGROUPS:
        breasts = (subgroups == group).sum(axis=1)
        counts = np.stack([((matrix == s) * breasts).sum(axis=1) for s in range(n_severities)], axis=-1)
        assert (counts.max(axis=1) - counts.min(axis=1)).max() <= 2
    measured = design.balance
    assert measured.per_exam == _spreads(matrix, n_severities, axis=0).max()
    assert measured.per_reader == _spreads(matrix, n_severities, axis=1).max()


def test_subgroups_are_balanced_exactly_when_each_exam_holds_one_subgroup_breast():
    # 36 exams: 18 of each lesion subgroup in the left breast, the right breast nonbiopsied;
    # 9 severities, 9 readers: each reader sees each severity twice per subgroup.
    subgroups = np.array([("microcalcifications" if i % 2 else "soft_tissue_lesions", "nonbiopsied")
                          for i in range(36)], dtype=object)
    design = make_design([f"e{i}" for i in range(36)], subgroups, [f"r{i}" for i in range(9)], 9, seed=1)
    matrix = _severity_matrix(design)
    for group in ("microcalcifications", "soft_tissue_lesions"):
        in_group = (subgroups[:, 0] == group)
        counts = np.stack([(matrix[:, in_group] == s).sum(axis=1) for s in range(9)], axis=-1)
        assert np.all(counts == 2)
    assert np.all(np.stack([(matrix == s).sum(axis=0) for s in range(9)]) == 1)  # a Latin square per exam


def test_balanced_beats_the_release_draw_on_balance():
    subgroups = np.array([(SUBGROUPS[i % 3], "nonbiopsied") for i in range(90)], dtype=object)
    args = ([f"e{i}" for i in range(90)], subgroups, [f"r{i}" for i in range(10)], 9)
    balanced = make_design(*args, design="balanced", seed=0).balance
    release = make_design(*args, design="release", seed=0).balance
    assert balanced.per_reader <= 1 < release.per_reader
    assert balanced.per_exam <= 1 < release.per_exam


def test_release_design_draws_each_severity_uniformly():
    subgroups = np.array([("nonbiopsied", "nonbiopsied")] * 400, dtype=object)
    design = make_design([f"e{i}" for i in range(400)], subgroups, [f"r{i}" for i in range(10)], 9,
                         design="release", seed=5)
    counts = np.bincount(_severity_matrix(design).ravel(), minlength=9)
    assert counts.sum() == 4000
    assert stats.chisquare(counts).pvalue > 0.001


def test_the_design_is_a_function_of_its_seed():
    subgroups = np.array([(SUBGROUPS[i % 4], SUBGROUPS[(i // 4) % 4]) for i in range(30)], dtype=object)
    args = ([f"e{i}" for i in range(30)], subgroups, ["a", "b", "c"], 5)
    first, again, other = (make_design(*args, seed=s, practice=4) for s in (7, 7, 8))
    assert first.order == again.order and first.severity == again.severity
    assert first.practice_exams == again.practice_exams
    assert first.order != other.order


def test_practice_exams_come_first_and_are_not_study_exams():
    subgroups = np.array([("nonbiopsied", "nonbiopsied")] * 12, dtype=object)
    design = make_design([f"e{i}" for i in range(12)], subgroups, ["a", "b"], 3, seed=2, practice=3)
    assert len(design.practice_exams) == 3
    assert not set(design.practice_exams) & set(design.study_exams)
    for order in design.order:
        assert set(order[:3]) == set(design.practice_exams)
        assert sorted(order[3:]) == sorted(design.study_exams)
        assert len(set(order)) == 12
    # Each reader's order is shuffled on its own.
    assert design.order[0][3:] != design.order[1][3:]


def test_annotation_mode_shows_every_exam_unperturbed():
    subgroups = np.array([("nonbiopsied", "nonbiopsied")] * 5, dtype=object)
    design = make_design([f"e{i}" for i in range(5)], subgroups, ["a", "b"], 1, mode="annotation", practice=1)
    assert all(level == 0 for levels in design.severity for level in levels.values())
    assert design.balance is None


@pytest.mark.parametrize(("options", "message"), [
    ({"mode": "reading"}, "--mode"), ({"design": "latin"}, "--design"), ({"practice": 5}, "--practice"),
    ({"practice": -1}, "--practice"),
])
def test_bad_design_options_are_refused_with_the_option_named(options, message):
    subgroups = np.array([("nonbiopsied", "nonbiopsied")] * 5, dtype=object)
    with pytest.raises(InputError, match=message):
        make_design([f"e{i}" for i in range(5)], subgroups, ["a"], 3, **options)


def test_balance_measures_a_hand_made_design():
    severity = np.array([[0, 1, 2, 0], [1, 2, 0, 0]])  # 2 readers, 4 exams, 3 severities
    subgroups = np.array([("x", "y"), ("x", "x"), ("y", "y"), ("x", "y")], dtype=object)
    measured = balance(severity, subgroups, 3)
    assert measured.per_exam == 2  # exam 3: both readers at severity 0
    assert measured.per_reader == 1  # each reader: severity 0 twice, 1 and 2 once
    # reader 0, subgroup x: severity 0 -> exams 0, 3 (1 + 1), severity 1 -> exam 1 (2), severity 2 -> 0 breasts
    assert measured.per_subgroup["x"] == 2
    assert measured.ideal_subgroup == {"x": 1, "y": 1}


def test_offsets_balance_a_single_subgroup_exactly():
    subgroups = np.array([("g", "h")] * 17, dtype=object)
    offsets = balanced_offsets(subgroups, 4, np.random.default_rng(0))
    assert sorted(np.bincount(offsets, minlength=4).tolist()) == [4, 4, 4, 5]
