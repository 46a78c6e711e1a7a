"""Operating points: how a network's probability becomes a decision, stated and reproducible."""

from __future__ import annotations

import pandas as pd
import pytest

from perceptiongap.errors import InputError
from perceptiongap.stats import OperatingPoint, default_operating_points, parse_operating_points
from perceptiongap.stats.breasts import attach_cases
from perceptiongap.stats.operating_point import binary_decisions, machine_thresholds, readers_mean_specificity
from tests.stats.study_builders import make_cases, make_observations, observation_rows


def test_parsing_names_each_kind():
    points = parse_operating_points("readers, 0.5,specificity=0.9,0.5")
    assert points == (OperatingPoint("readers"), OperatingPoint("threshold", 0.5), OperatingPoint("specificity", 0.9))
    assert [p.name for p in points] == ["readers_mean_specificity", "threshold_0.5", "specificity_0.9"]


@pytest.mark.parametrize("text", ["", "half", "sensitivity=0.8", "1.5", "specificity=2"])
def test_bad_operating_points_are_refused(text):
    with pytest.raises(InputError, match="--operating-point"):
        parse_operating_points(text)


def _study():
    cases = make_cases([("malignant", "microcalcifications")] * 2 + [("benign", "microcalcifications")] * 4)
    readers = [
        observation_rows(cases, "r1", "radiologists", "human", [1, 1, 1, 0, 0, 0]),  # specificity 3/4
        observation_rows(cases, "r2", "radiologists", "human", [1, 0, 0, 0, 0, 0]),  # specificity 1
        observation_rows(cases, "r2", "radiologists", "human", [1, 1, 1, 1, 1, 1], severity=4.0),  # not at 0
    ]
    network = [observation_rows(cases, "n", "cnn", "machine", [0.9, 0.2, 0.8, 0.1, 0.4, 0.3]),
               observation_rows(cases, "n", "cnn", "machine", [0.5, 0.5, 0.5, 0.5, 0.5, 0.5], severity=4.0)]
    return attach_cases(make_observations(*readers, *network), cases), cases


def test_readers_mean_specificity_uses_unperturbed_readings_only():
    rows, _ = _study()
    assert readers_mean_specificity(rows) == pytest.approx((3 / 4 + 1) / 2)


def test_the_networks_threshold_matches_the_target_on_unperturbed_negatives():
    rows, _ = _study()
    # Negatives 0.8, 0.1, 0.4, 0.3: specificity 7/8 lies between 3/4 (t = 0.8) and 1 (t = inf); both are
    # 1/8 away, and the more specific one wins.
    assert machine_thresholds(rows, OperatingPoint("readers")) == {"n": float("inf")}
    assert machine_thresholds(rows, OperatingPoint("specificity", 0.5)) == {"n": 0.4}
    decision, threshold = binary_decisions(rows, OperatingPoint("specificity", 0.5))
    network = (rows["observer"] == "n").to_numpy()
    assert list(decision[network]) == [True, False, True, False, True, False] + [True] * 6
    assert set(threshold[network]) == {0.4}
    human = ~network
    assert list(decision[human]) == list(rows.loc[human, "prediction"] == 1)


def test_without_readers_the_default_is_a_fixed_threshold():
    rows, _ = _study()
    assert default_operating_points(rows) == (OperatingPoint("readers"), OperatingPoint("threshold", 0.5))
    networks = rows[rows["observer_kind"] == "machine"]
    assert default_operating_points(networks) == (OperatingPoint("threshold", 0.5),)


def test_a_network_without_unperturbed_predictions_has_no_matched_threshold():
    rows, _ = _study()
    rows = pd.concat([rows, rows[(rows["observer"] == "n") & (rows["severity_mm"] == 4.0)].assign(observer="late")])
    with pytest.raises(InputError, match="'late' has no unperturbed"):
        machine_thresholds(rows, OperatingPoint("readers"))
