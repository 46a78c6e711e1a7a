"""Scores for ROC analysis from readers' optional POM and BI-RADS columns."""

from __future__ import annotations

import numpy as np
import pytest

from perceptiongap.errors import InputError
from perceptiongap.stats.scores import birads_rank, score_source, score_values
from tests.stats.study_builders import make_cases, observation_rows


def _raw(**extra):
    cases = make_cases([("malignant", "microcalcifications"), ("benign", "microcalcifications")] * 2)
    return observation_rows(cases, "r1", "radiologists", "human", [1, 0, 1, 0], **extra)


def test_birads_ranks_follow_the_scale_and_zero_has_none():
    np.testing.assert_array_equal(birads_rank(["1", "2", "3", "4A", "4B", "4C", "5", "0", None]),
                                  [1, 2, 3, 4, 5, 6, 7, np.nan, np.nan])


def test_auto_prefers_pom_then_birads_and_networks_use_their_probability():
    full = _raw(pom=[80.0, 1.0, 30.0, 2.0], birads=["5", "2", "4B", "3"])
    assert score_source(full) == "pom"
    assert score_source(full.assign(pom=[80.0, np.nan, 30.0, 2.0])) == "birads"
    assert score_source(_raw()) is None
    network = full.assign(observer_kind="machine", prediction=[0.9, 0.1, 0.6, 0.2])
    assert score_source(network) == "probability" and score_source(network, "pom") == "probability"
    np.testing.assert_array_equal(score_values(full, "birads"), [7, 2, 5, 3])
    np.testing.assert_array_equal(score_values(full, "prediction"), [1, 0, 1, 0])
    with pytest.raises(InputError, match="not one of auto"):
        score_source(full, "rank")
