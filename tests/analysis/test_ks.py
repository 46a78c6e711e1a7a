"""The vectorised KS statistic against scipy.stats.ks_2samp, row by row."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from perceptiongap.analysis import ks_statistic

from .analysis_helpers import reference_ks


def test_equals_scipy_on_many_rows_with_ties() -> None:
    rng = np.random.default_rng(0)
    values = rng.integers(0, 6, size=(4, 7, 60)).astype(float) / 5  # many ties, within and across samples
    positive = rng.random(60) < 0.3
    negative = ~positive & (rng.random(60) < 0.8)  # some cases in neither sample
    statistic = ks_statistic(values, positive, negative)
    assert statistic.shape == (4, 7)
    expected = np.array([[reference_ks(row, positive, negative) for row in block] for block in values])
    np.testing.assert_array_equal(statistic, expected)


def test_equals_scipy_on_continuous_values() -> None:
    rng = np.random.default_rng(1)
    values = rng.normal(size=(30, 101))
    positive = np.arange(101) % 3 == 0
    negative = np.arange(101) % 3 == 1
    expected = [reference_ks(row, positive, negative) for row in values]
    np.testing.assert_array_equal(ks_statistic(values, positive, negative), expected)


def test_equals_scipy_beyond_its_exact_regime() -> None:
    # Above 10,000 values per sample scipy's default switches to the asymptotic method and no
    # longer rounds the statistic to a multiple of 1 / lcm.
    rng = np.random.default_rng(2)
    values = np.round(rng.normal(size=(2, 10_050)), 2)
    positive = np.arange(10_050) < 10_001
    expected = [reference_ks(row, positive, ~positive) for row in values]
    np.testing.assert_array_equal(ks_statistic(values, positive, ~positive), expected)


@settings(max_examples=200, deadline=None)
@given(
    values=hnp.arrays(np.float64, st.integers(2, 25), elements=st.sampled_from([0.0, 0.1, 0.5, 0.9, 1.0])),
    data=st.data(),
)
def test_equals_scipy_for_any_small_sample(values: np.ndarray, data) -> None:
    n = values.shape[0]
    membership = np.asarray(data.draw(st.lists(st.sampled_from([0, 1, 2]), min_size=n, max_size=n)))
    positive, negative = membership == 1, membership == 2
    assert ks_statistic(values, positive, negative) == pytest.approx(
        reference_ks(values, positive, negative), abs=0, nan_ok=True
    )


def test_empty_sample_gives_nan() -> None:
    values = np.arange(12.0).reshape(2, 6)
    none = np.zeros(6, dtype=bool)
    some = np.array([True, True, False, False, False, False])
    assert np.isnan(ks_statistic(values, none, some)).all()
    assert np.isnan(ks_statistic(values, some, none)).all()


def test_nan_in_a_row_gives_nan_for_that_row_only() -> None:
    values = np.array([[0.1, 0.2, 0.8, 0.9], [0.1, np.nan, 0.8, 0.9]])
    positive = np.array([False, False, True, True])
    statistic = ks_statistic(values, positive, ~positive)
    assert statistic[0] == 1.0 and np.isnan(statistic[1])


def test_mask_of_wrong_length_is_refused() -> None:
    with pytest.raises(ValueError, match="do not match"):
        ks_statistic(np.zeros((2, 5)), np.ones(4, dtype=bool), np.ones(5, dtype=bool))
