"""Stratified case bootstrap as resampling counts, seeded per block of cases."""

from __future__ import annotations

import numpy as np
import pytest

from perceptiongap.stats.bootstrap import derived_rng, percentile_interval, stratified_counts


def test_every_replicate_keeps_each_stratums_size():
    strata = np.array(["a"] * 5 + ["b"] * 3 + ["a"] * 2)
    counts = stratified_counts(strata, 1000, derived_rng(0, "x"))
    assert counts.shape == (10, 1000)
    assert np.all(counts[strata == "a"].sum(axis=0) == 7)
    assert np.all(counts[strata == "b"].sum(axis=0) == 3)
    # each case is drawn once per replicate on average
    np.testing.assert_allclose(counts.mean(axis=1), 1.0, atol=0.1)


def test_seeds_depend_on_the_seed_and_the_block_only():
    first = derived_rng(1, "accuracy", "entire", 0.5).integers(0, 10**9, 4)
    again = derived_rng(1, "accuracy", "entire", 0.5).integers(0, 10**9, 4)
    other_block = derived_rng(1, "accuracy", "entire", 1.0).integers(0, 10**9, 4)
    other_seed = derived_rng(2, "accuracy", "entire", 0.5).integers(0, 10**9, 4)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other_block) and not np.array_equal(first, other_seed)


def test_percentile_interval_ignores_undefined_replicates():
    replicates = np.column_stack([np.arange(101.0), np.full(101, np.nan)])
    replicates[0, 0] = np.nan
    low, high = percentile_interval(replicates, 0.9)
    assert (low[0], high[0]) == pytest.approx(tuple(np.quantile(np.arange(1.0, 101.0), [0.05, 0.95])))
    assert np.isnan(low[1]) and np.isnan(high[1])


def test_percentile_interval_is_numpys_linear_quantile_of_the_defined_replicates():
    """One sort for every column gives what np.nanquantile gives column by column, to the last bit."""
    rng = np.random.default_rng(3)
    for n_replicates in (1, 2, 7, 500):
        replicates = rng.normal(size=(n_replicates, 40))
        replicates[rng.random(replicates.shape) < 0.2] = np.nan
        replicates[:, 5] = np.round(replicates[:, 5])  # ties
        replicates[:, 6] = np.nan  # undefined everywhere
        tail = (1 - 0.95) / 2
        with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):  # numpy warns on the all-NaN column
            expected = np.nanquantile(replicates, [tail, 1 - tail], axis=0)
        low, high = percentile_interval(replicates, 0.95)
        np.testing.assert_array_equal(low, expected[0])
        np.testing.assert_array_equal(high, expected[1])
        low, high = percentile_interval(replicates.T, 0.95, axis=1)
        np.testing.assert_array_equal(low, expected[0])
