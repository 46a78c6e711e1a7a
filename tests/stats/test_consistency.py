"""Error consistency (Geirhos et al. 2020): hand-computed values, limiting cases, the pair table."""

from __future__ import annotations

import numpy as np
import pytest

from perceptiongap.errors import InputError
from perceptiongap.stats import OperatingPoint, error_consistency, error_consistency_tables
from tests.stats.study_builders import make_cases, make_observations, observation_rows


def test_kappa_by_hand():
    # c_obs = 3/5 (trials 1, 3, 5 agree); p_a = p_b = 3/5, c_exp = 0.36 + 0.16 = 0.52; kappa = 0.08 / 0.48.
    result = error_consistency([1, 1, 0, 0, 1], [1, 0, 0, 1, 1])
    assert (result.c_obs, result.accuracy_a, result.accuracy_b) == (0.6, 0.6, 0.6)
    assert result.c_exp == pytest.approx(0.52)
    assert result.kappa == pytest.approx(1 / 6)
    assert result.n_trials == 5


def test_identical_observers_agree_perfectly_and_opposite_ones_perfectly_disagree():
    answers = np.array([True, False, True, True, False, False])
    assert error_consistency(answers, answers).kappa == 1.0
    assert error_consistency(answers, ~answers).kappa == -1.0


def test_independent_observers_have_kappa_near_zero():
    rng = np.random.default_rng(0)
    a, b = rng.random(20_000) < 0.7, rng.random(20_000) < 0.85
    result = error_consistency(a, b)
    assert abs(result.kappa) < 0.03  # standard error about 0.008
    assert result.c_exp == pytest.approx(0.7 * 0.85 + 0.3 * 0.15, abs=0.01)


def test_kappa_is_undefined_when_both_are_always_right():
    assert np.isnan(error_consistency([1, 1, 1], [1, 1, 1]).kappa)


@pytest.mark.parametrize(("a", "b", "message"), [
    ([1, 0], [1, 0, 1], "same trials"),
    ([[1, 0]], [1, 0], "one-dimensional"),
    ([1, 2], [1, 0], "boolean"),
    ([], [], "no trials"),
])
def test_bad_input_is_refused(a, b, message):
    with pytest.raises(InputError, match=message):
        error_consistency(a, b)


@pytest.fixture
def paired_study():
    """Two readers who read disjoint halves at severity 0 and overlap at 1 mm; two networks read all."""
    labels = [("malignant", "microcalcifications")] * 6 + [("malignant", "soft_tissue_lesions")] * 4 + \
             [("benign", "microcalcifications")] * 10
    cases = make_cases(labels)
    truth = (cases["label"] == "malignant").to_numpy()
    rng = np.random.default_rng(1)
    parts = []
    for severity in (0.0, 1.0):
        for name in ("r1", "r2"):
            correct = rng.random(20) < 0.75
            parts.append(observation_rows(cases, name, "radiologists", "human",
                                          np.where(correct, truth, ~truth).astype(float), severity=severity))
        for name in ("n1", "n2"):
            parts.append(observation_rows(cases, name, "cnn", "machine", rng.random(20), severity=severity))
    return make_observations(*parts), cases


def test_each_pairs_kappa_is_the_kappa_of_its_shared_trials(paired_study):
    observations, cases = paired_study
    point = OperatingPoint("threshold", 0.5)
    tables = error_consistency_tables(observations, cases, n_bootstrap=200, operating_point=point)
    truth = (cases["label"] == "malignant").to_numpy()
    for _, row in tables.pairs[tables.pairs["subgroup"] == "all"].iterrows():
        at = observations[observations["severity_mm"] == row["severity_mm"]]
        answers = []
        for name in (row["observer_a"], row["observer_b"]):
            prediction = at.loc[at["observer"] == name, "prediction"].to_numpy()
            answers.append((prediction >= 0.5) == truth)
        expected = error_consistency(*answers)
        assert row["kappa"] == pytest.approx(expected.kappa, nan_ok=True)
        assert row["c_obs"] == pytest.approx(expected.c_obs)
        assert row["n_trials"] == 20
        assert row["kappa_low"] <= row["kappa"] <= row["kappa_high"] or np.isnan(row["kappa"])
    kinds = tables.pairs.groupby(["severity_mm", "subgroup"])["pair_kind"].value_counts()
    assert kinds.loc[(0.0, "all", "human-network")] == 4 and kinds.loc[(0.0, "all", "network-network")] == 1


def test_a_subgroup_compares_its_malignant_breasts_and_every_non_malignant_one(paired_study):
    observations, cases = paired_study
    tables = error_consistency_tables(observations, cases, n_bootstrap=50,
                                      operating_point=OperatingPoint("threshold", 0.5))
    trials = tables.pairs.groupby("subgroup")["n_trials"].first()
    assert trials["microcalcifications"] == 6 + 10
    assert trials["soft_tissue_lesions"] == 4 + 10
    assert trials["merged"] == trials["all"] == 20


def test_summary_is_the_mean_over_pairs_of_a_kind(paired_study):
    observations, cases = paired_study
    tables = error_consistency_tables(observations, cases, n_bootstrap=300,
                                      operating_point=OperatingPoint("threshold", 0.5))
    pairs, summary = tables.pairs, tables.summary
    for _, row in summary.iterrows():
        chosen = pairs[(pairs["severity_mm"] == row["severity_mm"]) & (pairs["subgroup"] == row["subgroup"])
                       & (pairs["pair_kind"] == row["pair_kind"])]
        assert row["kappa_mean"] == pytest.approx(chosen["kappa"].mean())
        assert row["n_pairs"] == chosen["kappa"].notna().sum()
        assert row["kappa_low"] <= row["kappa_mean"] <= row["kappa_high"]
    assert list(summary.loc[summary["subgroup"] == "all", "pair_kind"])[:3] == [
        "human-human", "human-network", "network-network"]


def test_readers_who_share_no_breast_at_a_severity_form_no_pair():
    cases = make_cases([("malignant", "microcalcifications")] * 4 + [("benign", "microcalcifications")] * 4)
    first = observation_rows(cases, "r1", "radiologists", "human", [1, 0, 1, 0], breasts=[0, 1, 4, 5])
    second = observation_rows(cases, "r2", "radiologists", "human", [1, 1, 0, 0], breasts=[2, 3, 6, 7])
    tables = error_consistency_tables(make_observations(first, second), cases, n_bootstrap=20,
                                      operating_point=OperatingPoint("threshold", 0.5))
    assert tables.pairs.empty and tables.summary.empty


def test_networks_that_make_the_same_mistakes_are_consistent_beyond_their_accuracy():
    # Both networks are driven by one latent difficulty per breast plus a little noise of their own:
    # their errors coincide far more often than their accuracies alone would predict.
    rng = np.random.default_rng(5)
    labels = [("malignant", "microcalcifications")] * 200 + [("benign", "microcalcifications")] * 600
    cases = make_cases(labels)
    truth = (cases["label"] == "malignant").to_numpy()
    difficulty = rng.normal(0, 1, truth.size)
    parts = []
    for name, noise in (("shared_a", 0.3), ("shared_b", 0.3)):
        logit = np.where(truth, 1.0, -1.0) + difficulty + rng.normal(0, noise, truth.size)
        parts.append(observation_rows(cases, name, "cnn", "machine", 1 / (1 + np.exp(-logit))))
    independent = np.where(truth, 1.0, -1.0) + rng.normal(0, 1.04, truth.size)
    parts.append(observation_rows(cases, "independent", "other", "machine", 1 / (1 + np.exp(-independent))))
    tables = error_consistency_tables(make_observations(*parts), cases, n_bootstrap=200,
                                      operating_point=OperatingPoint("threshold", 0.5))
    pairs = tables.pairs[tables.pairs["subgroup"] == "all"].set_index(["observer_a", "observer_b"])
    assert pairs.loc[("shared_a", "shared_b"), "kappa_low"] > 0.6
    assert abs(pairs.loc[("independent", "shared_a"), "kappa"]) < 0.1
