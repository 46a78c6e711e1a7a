"""Per-observer sensitivity, specificity and AUC with stratified case-bootstrap intervals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from perceptiongap.errors import InputError
from perceptiongap.stats import OperatingPoint, accuracy_summary, accuracy_table
from perceptiongap.stats.bootstrap import derived_rng, stratified_counts
from perceptiongap.stats.breasts import strata
from perceptiongap.stats.roc import weighted_auc
from tests.stats.study_builders import make_cases, make_observations, observation_rows

# 4 microcalcification and 2 soft-tissue malignant breasts, 6 non-malignant (benign or not biopsied).
LABELS = ([("malignant", "microcalcifications")] * 4 + [("malignant", "soft_tissue_lesions")] * 2
          + [("benign", "microcalcifications")] * 2 + [("benign", "soft_tissue_lesions")] * 1
          + [("nonbiopsied", "nonbiopsied")] * 3)


@pytest.fixture
def small_study():
    cases = make_cases(LABELS)
    reader = observation_rows(cases, "r1", "radiologists", "human", [1, 1, 1, 0, 1, 0, 0, 1, 0, 0, 0, 0])
    network = observation_rows(cases, "net", "cnn", "machine",
                               [0.9, 0.8, 0.4, 0.3, 0.7, 0.2, 0.6, 0.1, 0.3, 0.05, 0.2, 0.15])
    return make_observations(reader, network), cases


def _row(table, observer, subgroup, point):
    chosen = table[(table["observer"] == observer) & (table["subgroup"] == subgroup)
                   & (table["operating_point"] == point)]
    assert len(chosen) == 1
    return chosen.iloc[0]


def test_sensitivity_and_specificity_count_a_subgroups_positives_against_all_negatives(small_study):
    observations, cases = small_study
    table = accuracy_table(observations, cases, n_bootstrap=200)
    micro = _row(table, "r1", "microcalcifications", "reader_decision")
    assert (micro["n_positive"], micro["n_negative"]) == (4, 6)
    assert micro["sensitivity"] == pytest.approx(3 / 4)  # 1, 1, 1, 0
    assert micro["specificity"] == pytest.approx(5 / 6)  # one false positive among six
    soft = _row(table, "r1", "soft_tissue_lesions", "reader_decision")
    assert (soft["n_positive"], soft["sensitivity"], soft["specificity"]) == (2, 0.5, pytest.approx(5 / 6))
    merged = _row(table, "r1", "merged", "reader_decision")
    assert (merged["n_positive"], merged["sensitivity"]) == (6, pytest.approx(4 / 6))
    everything = _row(table, "r1", "all", "reader_decision")
    assert everything["n_positive"] == 6
    assert np.isnan(micro["threshold"]) and micro["auc_score"] == "" and np.isnan(micro["auc"])


def test_a_network_is_read_at_each_stated_operating_point_with_its_threshold(small_study):
    observations, cases = small_study
    table = accuracy_table(observations, cases, n_bootstrap=200)
    # The reader's specificity at severity 0 is 5/6. On the network's six negatives (0.6, 0.1, 0.3,
    # 0.05, 0.2, 0.15), p >= 0.3 calls two positive (4/6) and p >= 0.6 one (5/6): the threshold is 0.6.
    matched = _row(table, "net", "all", "readers_mean_specificity")
    assert matched["threshold"] == 0.6
    assert matched["specificity"] == pytest.approx(5 / 6)
    assert matched["sensitivity"] == pytest.approx(3 / 6)  # 0.9, 0.8, 0.7 of 0.9 0.8 0.4 0.3 0.7 0.2
    half = _row(table, "net", "all", "threshold_0.5")
    assert (half["threshold"], half["sensitivity"]) == (0.5, pytest.approx(0.5))
    assert half["specificity"] == pytest.approx(5 / 6)
    fixed = accuracy_table(observations, cases, n_bootstrap=50, operating_points=[OperatingPoint("specificity", 1.0)])
    assert _row(fixed, "net", "all", "specificity_1")["specificity"] == 1.0


def test_a_networks_auc_is_sklearns(small_study):
    observations, cases = small_study
    table = accuracy_table(observations, cases, n_bootstrap=200)
    network = observations[observations["observer"] == "net"]
    truth = (cases["label"] == "malignant").to_numpy()
    micro = truth & (cases["subgroup"] == "microcalcifications").to_numpy()
    keep = micro | ~truth
    expected = roc_auc_score(truth[keep], network["prediction"].to_numpy()[keep])
    row = _row(table, "net", "microcalcifications", "threshold_0.5")
    assert row["auc_score"] == "probability"
    assert row["auc"] == pytest.approx(expected)
    assert row["auc_low"] <= row["auc"] <= row["auc_high"]


def test_a_bootstrap_replicate_of_the_auc_is_the_auc_of_the_resampled_breasts():
    rng = np.random.default_rng(0)
    positives, negatives = rng.normal(1, 1, 15).round(1), rng.normal(0, 1, 40).round(1)  # rounded: ties
    labels = np.r_[np.ones(15, bool), np.zeros(40, bool)]
    counts = stratified_counts(strata(labels, np.array(["g"] * 55, dtype=object)), 5, derived_rng(1, "x"))
    weights = counts.T  # (replicates, breasts)
    replicate_aucs = weighted_auc(positives, negatives, weights[:, :15], weights[:, 15:])
    scores = np.r_[positives, negatives]
    for b in range(5):
        drawn = np.repeat(np.arange(55), weights[b].astype(int))  # the resampled breasts, explicitly
        assert weights[b, :15].sum() == 15 and weights[b, 15:].sum() == 40  # strata keep their sizes
        assert replicate_aucs[b] == pytest.approx(roc_auc_score(labels[drawn], scores[drawn]), abs=1e-12)


def test_intervals_are_reproducible_from_the_seed(small_study):
    observations, cases = small_study
    first = accuracy_table(observations, cases, seed=3, n_bootstrap=300)
    again = accuracy_table(observations, cases, seed=3, n_bootstrap=300)
    other = accuracy_table(observations, cases, seed=4, n_bootstrap=300)
    pd.testing.assert_frame_equal(first, again)
    pd.testing.assert_series_equal(first["sensitivity"], other["sensitivity"])
    assert not np.allclose(first["auc_low"], other["auc_low"], equal_nan=True)


@pytest.mark.slow
def test_sensitivity_intervals_cover_the_true_sensitivity_about_95_percent_of_the_time():
    # 400 simulated readers, each deciding 120 malignant breasts right with probability 0.8 and 300
    # non-malignant ones right with probability 0.9, independently.
    rng = np.random.default_rng(7)
    cases = make_cases([("malignant", "microcalcifications")] * 120 + [("benign", "microcalcifications")] * 300)
    truth = (cases["label"] == "malignant").to_numpy()
    parts = []
    for k in range(400):
        decision = np.where(truth, rng.random(truth.size) < 0.8, rng.random(truth.size) < 0.1)
        parts.append(observation_rows(cases, f"r{k:03d}", "radiologists", "human", decision.astype(float)))
    table = accuracy_table(make_observations(*parts), cases, n_bootstrap=1000)
    rows = table[table["subgroup"] == "microcalcifications"]
    covered_sensitivity = np.mean((rows["sensitivity_low"] <= 0.8) & (0.8 <= rows["sensitivity_high"]))
    covered_specificity = np.mean((rows["specificity_low"] <= 0.9) & (0.9 <= rows["specificity_high"]))
    assert 0.91 <= covered_sensitivity <= 0.98
    assert 0.91 <= covered_specificity <= 0.98
    # and the intervals have the binomial width, 2 x 1.96 x sqrt(p (1 - p) / n)
    assert (rows["sensitivity_high"] - rows["sensitivity_low"]).mean() == pytest.approx(
        2 * 1.96 * np.sqrt(0.8 * 0.2 / 120), rel=0.1)


def test_readers_pom_or_birads_give_an_auc_and_birads_zero_is_left_out():
    cases = make_cases([("malignant", "microcalcifications")] * 3 + [("benign", "microcalcifications")] * 3)
    pom = observation_rows(cases, "r1", "radiologists", "human", [1, 1, 0, 0, 0, 1],
                           pom=[60.0, 20.0, 5.0, 1.0, 3.0, 30.0])
    birads = observation_rows(cases, "r2", "radiologists", "human", [1, 1, 0, 0, 0, 0],
                              birads=["5", "4B", "3", "0", "2", "3"])
    observations = make_observations(pom, birads)
    table = accuracy_table(observations, cases, n_bootstrap=100)
    r1 = _row(table, "r1", "all", "reader_decision")
    assert r1["auc_score"] == "pom"
    assert r1["auc"] == pytest.approx(roc_auc_score([1, 1, 1, 0, 0, 0], [60, 20, 5, 1, 3, 30]))
    r2 = _row(table, "r2", "all", "reader_decision")
    assert r2["auc_score"] == "birads"
    # BI-RADS 0 (the fourth breast) has no rank: the AUC is over the other five.
    assert r2["auc"] == pytest.approx(roc_auc_score([1, 1, 1, 0, 0], [7, 5, 3, 2, 3]))


def test_summary_averages_observers_per_group_and_severity(small_study):
    observations, cases = small_study
    extra = observation_rows(cases, "r2", "radiologists", "human", [0] * 12)
    observations = make_observations(observations, extra)
    summary = accuracy_summary(accuracy_table(observations, cases, n_bootstrap=50))
    row = summary[(summary["observer_group"] == "radiologists") & (summary["subgroup"] == "all")].iloc[0]
    assert row["n_observers"] == 2
    assert row["sensitivity_mean"] == pytest.approx((4 / 6 + 0) / 2)
    assert row["sensitivity_sd"] == pytest.approx(np.std([4 / 6, 0]))


def test_readers_operating_point_without_readers_is_refused_in_one_line(small_study):
    observations, cases = small_study
    networks = observations[observations["observer_kind"] == "machine"]
    with pytest.raises(InputError, match="needs human observers"):
        accuracy_table(networks, cases, n_bootstrap=10)
    table = accuracy_table(networks, cases, n_bootstrap=10, operating_points=[OperatingPoint("threshold", 0.5)])
    assert set(table["operating_point"]) == {"threshold_0.5"}


def test_on_the_release_radiologists_lose_sensitivity_under_heavy_filtering(release_study):
    observations, cases = release_study
    readers = observations[observations["observer_group"] == "radiologists"]
    summary = accuracy_summary(accuracy_table(readers, cases, n_bootstrap=100))
    rows = summary[summary["subgroup"] == "all"].set_index("severity_mm")
    assert rows.loc[0.0, "n_observers"] == 10
    assert rows.loc[0.0, "sensitivity_mean"] > rows.loc[4.0, "sensitivity_mean"] + 0.15
    assert 0.7 < rows.loc[0.0, "specificity_mean"] < 0.95
