"""The criteria, checked against their definitions, and power with its Monte Carlo error."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from perceptiongap.plan.laplace import StudyFits
from perceptiongap.plan.power import power_table, rejections

SUBGROUPS = ("microcalcifications", "soft_tissue_lesions", "other")
ANALYSED = SUBGROUPS[:2]


def _arrays(n_cases=40):
    subgroup = np.tile([0, 1, 2, 2], n_cases // 4)
    malignant = np.tile([1.0, 1.0, 0.0, 0.0], n_cases // 4)
    return {"case_subgroup": subgroup[None], "case_malignant": malignant[None]}


def _fits(gamma_mean, gamma_sd, predictive):
    return StudyFits(gamma_mean=gamma_mean, gamma_sd=gamma_sd, delta_mean=None, delta_sd=None,
                     predictive=predictive, converged=np.ones(1, bool), last_step=np.zeros(1))


def test_confidence_drop_rejects_exactly_when_the_z_score_is_below_minus_1_645():
    mean = np.array([[[0, 0, 0], [-1.7, -1.6, 0], [-0.5, 1.0, 0]]])  # (B, S, G)
    sd = np.ones_like(mean)
    predictive = np.full((1, 5, 3, 40), 0.5)
    rows = rejections(_fits(mean, sd, predictive), _arrays(), SUBGROUPS, ANALYSED, (0.0, 1.0, 2.0))
    confidence = rows[rows.criterion == "confidence_drop"].set_index(["subgroup", "severity_mm"])
    expected = {("microcalcifications", 1.0): True, ("soft_tissue_lesions", 1.0): False,
                ("microcalcifications", 2.0): False, ("soft_tissue_lesions", 2.0): False}
    for key, reject in expected.items():
        assert confidence.loc[key, "reject"] == reject
        z = mean[0, int(key[1]), ANALYSED.index(key[0])]
        assert confidence.loc[key, "statistic"] == pytest.approx(stats.norm.sf(-z))  # P(gamma > 0)


def test_separability_drop_is_the_one_sided_ks_test_between_readers():
    # 5 readers; at severity 0 malignant breasts of microcalcifications score 0.9, the rest 0.1 (KS 1);
    # at severity 1 every breast scores 0.5 (KS 0): all five statistics fall, p = 1 / C(10, 5).
    arrays = _arrays()
    predictive = np.full((1, 5, 2, 40), 0.1)
    positive = (arrays["case_subgroup"][0] == 0) & (arrays["case_malignant"][0] == 1)
    predictive[0, :, 0, positive] = 0.9
    predictive[0, :, 1, :] = 0.5
    rows = rejections(_fits(np.zeros((1, 2, 3)), np.ones((1, 2, 3)), predictive), arrays, SUBGROUPS, ANALYSED,
                      (0.0, 1.0))
    drop = rows[(rows.criterion == "separability_drop") & (rows.subgroup == "microcalcifications")]
    assert drop["statistic"].item() == pytest.approx(1 / math.comb(10, 5))
    assert drop["reject"].item()


def test_power_and_its_monte_carlo_error():
    rows = pd.DataFrame({"readers": 5, "criterion": "confidence_drop", "subgroup": "x", "severity_mm": 1.0,
                         "reject": [True] * 30 + [False] * 70})
    table = power_table(rows, ["readers"])
    assert table["power"].item() == pytest.approx(0.3)
    assert table["power_se"].item() == pytest.approx(math.sqrt(0.3 * 0.7 / 100))
    assert table["reps"].item() == 100
