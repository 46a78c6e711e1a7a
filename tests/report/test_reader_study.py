"""The report's reader-study statistics: its compact tables and sentences say what the saved tables hold."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from perceptiongap.report.reader_study import (
    accuracy_overview,
    consistency_overview,
    network_operating_point,
    severity_column,
    statistics_sentences,
)

SEVERITIES = (0.0, 1.0, 4.0)
SUBGROUPS = ("microcalcifications", "soft_tissue_lesions", "merged", "all")


def accuracy_summary() -> pd.DataFrame:
    """Readers and one network (two operating points), plus an ROI-scheme row the report must ignore.

    Sensitivity = 0.9 - 0.1 * k (severity index k) - 0.05 * (subgroup index), specificity 0.8 + 0.05 k;
    the network at 0.5 is 0.2 lower, so picking the wrong operating point shows.
    """
    rows = []
    for group, kind, points in (("radiologists", "human", ["reader_decision"]),
                                ("gmic", "machine", ["threshold_0.5", "readers_mean_specificity"])):
        for point in points:
            shift = 0.2 if point == "threshold_0.5" else 0.0
            for k, severity in enumerate(SEVERITIES):
                for j, subgroup in enumerate(SUBGROUPS):
                    rows.append({
                        "observer_group": group, "observer_kind": kind, "scheme": "entire", "annotator": np.nan,
                        "severity_mm": severity, "subgroup": subgroup, "operating_point": point,
                        "n_observers": 10 if kind == "human" else 5,
                        "sensitivity_mean": 0.9 - 0.1 * k - 0.05 * j - shift, "sensitivity_sd": 0.1,
                        "specificity_mean": 0.8 + 0.05 * k - shift, "specificity_sd": 0.02,
                        "auc_mean": np.nan if kind == "human" else 0.85 - 0.1 * k, "auc_sd": 0.01})
    roi = dict(rows[-1], scheme="roi_interior", annotator="annotator1", sensitivity_mean=0.0)
    return pd.DataFrame([*rows, roi])


def consistency_summary() -> pd.DataFrame:
    rows = []
    for kind, kappa, trials in (("human-human", 0.1, 15.0), ("human-network", 0.2, 150.0),
                                ("network-network", 0.5, 1440.0)):
        for k, severity in enumerate(SEVERITIES):
            for j, subgroup in enumerate(SUBGROUPS):
                rows.append({"scheme": "entire", "severity_mm": severity, "subgroup": subgroup, "pair_kind": kind,
                             "n_pairs": 9, "n_trials_mean": trials, "c_obs_mean": 0.8, "c_exp_mean": 0.7,
                             "kappa_mean": kappa + 0.03 * k + 0.01 * j, "kappa_sd": 0.1, "kappa_low": 0.0,
                             "kappa_high": 1.0})
    return pd.DataFrame(rows)


def test_networks_are_shown_at_the_readers_operating_point_when_there_is_one():
    summary = accuracy_summary()
    assert network_operating_point(summary) == "readers_mean_specificity"
    assert network_operating_point(summary[summary["operating_point"] != "readers_mean_specificity"]) == "threshold_0.5"
    assert network_operating_point(summary[summary["observer_kind"] == "human"]) is None


def test_accuracy_overview_has_one_row_per_group_and_statistic_and_one_column_per_severity():
    overview = accuracy_overview(accuracy_summary())
    assert list(overview.columns) == ["observer_group", "statistic", "0 mm", "1 mm", "4 mm"]
    assert list(overview["observer_group"]) == ["radiologists"] * 4 + ["gmic"] * 4
    assert list(overview["statistic"][:4]) == ["sensitivity: microcalcifications", "sensitivity: soft tissue lesions",
                                               "sensitivity: all malignant breasts", "specificity"]
    readers = overview[overview["observer_group"] == "radiologists"].set_index("statistic")
    np.testing.assert_allclose(readers.loc["sensitivity: soft tissue lesions", ["0 mm", "1 mm", "4 mm"]],
                               [0.85, 0.75, 0.65])
    np.testing.assert_allclose(readers.loc["sensitivity: all malignant breasts", ["0 mm", "4 mm"]], [0.75, 0.55])
    network = overview[overview["observer_group"] == "gmic"].set_index("statistic")
    np.testing.assert_allclose(network.loc["specificity", ["0 mm", "1 mm", "4 mm"]], [0.8, 0.85, 0.9])  # not 0.5's
    assert severity_column(0.17) == "0.17 mm"


def test_consistency_overview_averages_each_pair_kind_over_severities_per_subgroup():
    overview = consistency_overview(consistency_summary()).set_index("pair_kind")
    assert list(overview.index) == ["human-human", "human-network", "network-network"]
    assert list(overview.columns) == ["n_severities", *SUBGROUPS]
    # kappa + 0.03 k averages to kappa + 0.03 over k = 0, 1, 2; each subgroup adds 0.01 j
    assert overview.loc["human-network", "microcalcifications"] == pytest.approx(0.23)
    assert overview.loc["network-network", "all"] == pytest.approx(0.56)
    assert overview.loc["human-human", "n_severities"] == 3


def test_sentences_state_the_tables_numbers():
    readers, networks, consistency = statistics_sentences(accuracy_summary(), consistency_summary())
    assert readers.startswith("Radiologists (mean over 10 readers")
    assert "from 0 mm (unperturbed) to 4 mm" in readers
    assert "microcalcifications 0.90 → 0.70" in readers and "all malignant breasts 0.75 → 0.55" in readers
    assert "specificity 0.80 → 0.90" in readers
    assert "gmic sensitivity 0.75 → 0.55, specificity 0.80 → 0.90, AUC 0.85 → 0.65" in networks
    assert "readers' mean specificity" in networks
    assert ("0.16 for pairs of readers, 0.26 for reader-network pairs, 0.56 for pairs of networks (on 15, 150, 1440 "
            "shared breasts") in consistency
    assert "highest for network-network, lowest for human-human" in consistency


def test_missing_tables_give_no_sentence():
    assert statistics_sentences(None, None) == []
    assert len(statistics_sentences(None, consistency_summary())) == 1
