"""Posterior predictive checks of class separability: the statistic is the paper's, computed on each
observer's own cells, and a model that cannot express a label-specific effect fails where there is one."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from perceptiongap.analysis import observed_separability
from perceptiongap.analysis.ppc import (
    HIGH,
    LOW,
    failed_checks,
    masked_ks_statistic,
    posterior_predictive_check,
    ppc_table,
    separability_statistic,
)

ANALYSED = ("microcalcifications", "soft_tissue_lesions")


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), binary=st.booleans())
def test_each_rows_statistic_is_scipys_on_that_rows_own_samples(seed, binary):
    rng = np.random.default_rng(seed)
    values = rng.integers(0, 2, (4, 30)).astype(float) if binary else rng.normal(size=(4, 30)).round(1)
    positive = rng.random((4, 30)) < 0.3
    negative = ~positive & (rng.random((4, 30)) < 0.7)
    got = masked_ks_statistic(values, positive, negative)
    for row in range(4):
        if positive[row].any() and negative[row].any():
            expected = stats.ks_2samp(values[row, positive[row]], values[row, negative[row]]).statistic
            assert got[row] == pytest.approx(expected, abs=1e-12)
        else:
            assert np.isnan(got[row])


def test_the_statistic_averages_observers_over_the_cells_each_observed():
    # Observer 0 saw cases 0-3 at severity 0, observer 1 cases 2-5: each on its own cells.
    prediction = np.array([[[0.9, 0.8, 0.1, 0.2, 0.0, 0.0]], [[0.0, 0.0, 0.7, 0.1, 0.6, 0.3]]])
    observed = np.zeros((2, 1, 6), dtype=bool)
    observed[0, 0, :4] = True
    observed[1, 0, 2:] = True
    positive = np.array([True, False, True, False, True, False])
    negative = ~positive
    # Observer 0: positives {0.9, 0.1} vs negatives {0.8, 0.2}: KS 0.5; observer 1: {0.7, 0.6} vs {0.1, 0.3}: 1.
    assert separability_statistic(prediction, observed, positive, negative) == pytest.approx([0.75])


@pytest.mark.slow
def test_for_dense_networks_the_observed_statistic_is_the_observed_separability(label_effect_fits):
    fits, _, (observations, cases) = label_effect_fits
    checks = posterior_predictive_check(fits["networks"]["release"], ANALYSED)
    expected = observed_separability(observations, cases, "networks", subgroups=ANALYSED)
    merged = checks.merge(expected, on=["subgroup", "severity_mm"])
    assert len(merged) == 8
    np.testing.assert_allclose(merged["observed"], merged["separability_mean"], atol=1e-12)


def soft_tissue_tail(posterior) -> float:
    checks = posterior_predictive_check(posterior, ANALYSED).set_index(["subgroup", "severity_mm"])
    assert 0 <= checks["replicated_low"].min() <= checks["replicated_high"].max() <= 1
    return checks.loc[("soft_tissue_lesions", 4.0), "tail_probability"]


@pytest.mark.slow
def test_the_release_model_fails_where_filtering_changes_separability_and_label_specific_passes(label_effect_fits):
    """Simulated: soft tissue lesions lose separability at 4 mm through a label-specific effect whose
    subgroup mean is 0. The networks' dense predictions show it; the release's gamma[s, g] cannot
    follow it, gamma[s, g, l] can."""
    fits, _, _ = label_effect_fits
    assert not LOW <= soft_tissue_tail(fits["networks"]["release"]) <= HIGH
    assert LOW <= soft_tissue_tail(fits["networks"]["label_specific"]) <= HIGH


@pytest.mark.slow
def test_sparse_readers_checks_run_on_their_own_cells_and_label_specific_passes(label_effect_fits):
    """Six readers seeing each breast once, binary answers: the check has less power (the release
    passes here too, measured 0.34), but the model with the true structure must not fail."""
    fits, _, _ = label_effect_fits
    assert LOW <= soft_tissue_tail(fits["readers"]["label_specific"]) <= HIGH


@pytest.mark.slow
def test_the_table_keeps_one_row_per_check_and_flags_only_the_failed(label_effect_fits):
    fits, _, _ = label_effect_fits
    table = ppc_table([fits["networks"]["release"], fits["networks"]["label_specific"]], ANALYSED)
    assert len(table) == 2 * 2 * 4
    assert set(table["model"]) == {"release", "label_specific"}
    flagged = failed_checks(table)
    assert ((flagged["tail_probability"] < LOW) | (flagged["tail_probability"] > HIGH)).all()
    assert ("release", "soft_tissue_lesions", 4.0) in set(zip(flagged["model"], flagged["subgroup"],
                                                              flagged["severity_mm"]))
