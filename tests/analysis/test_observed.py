"""Class separability of observed (dense) predictions, with no model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from perceptiongap.analysis import observed_predictions, observed_separability
from perceptiongap.errors import InputError

from .analysis_helpers import reference_drop_pvalue
from .raw_release import NETWORK_GROUPS, load_pickle


@pytest.fixture(scope="module")
def gmic(release_observations_table: pd.DataFrame, release_cases_table: pd.DataFrame) -> pd.DataFrame:
    return observed_separability(release_observations_table, release_cases_table, "gmic")


def test_gmic_soft_tissue_separability_falls_from_055_to_027(gmic: pd.DataFrame) -> None:
    # Issue 2 / METHOD §5a: KS of the raw GMIC predictions on soft tissue lesions, 0.55 -> 0.27 at 4 mm.
    soft = gmic[gmic["subgroup"] == "soft_tissue_lesions"].set_index("severity_mm")
    assert soft.loc[0.0, "separability_mean"] == pytest.approx(0.55, abs=0.005)
    assert soft.loc[4.0, "separability_mean"] == pytest.approx(0.27, abs=0.005)
    assert soft.loc[4.0, "p_separability_drop"] == pytest.approx(1 / 252)  # all 5 seeds drop


@pytest.mark.parametrize("group", ["gmic", "dmv_filtered"])
def test_equals_a_plain_loop_over_the_raw_arrays(
    group: str, release_dir: Path, release_observations_table: pd.DataFrame, release_cases_table: pd.DataFrame
) -> None:
    table = observed_separability(release_observations_table, release_cases_table, group)
    assert list(table.columns) == ["inference", "observer_group", "subgroup", "severity_mm", "separability_mean",
                                   "separability_sd", "p_separability_drop", "separability_drop_upper"]
    assert (table["inference"] == "observed").all() and (table["observer_group"] == group).all()
    architecture, training = NETWORK_GROUPS[group]
    pred, _ = load_pickle(release_dir / "observed_predictions" / "perturbation_study" / "dnns" / architecture
                          / f"{training}.pkl")
    info = pd.read_csv(release_dir / "exam_info.csv")
    for subgroup in ("microcalcifications", "soft_tissue_lesions"):
        labels = np.concatenate([info.y_l, info.y_r])
        subgroups = np.concatenate([info.subgroup_l, info.subgroup_r])
        positive = (labels == "malignant") & (subgroups == subgroup)
        negative = labels != "malignant"
        ks = np.array([[stats.ks_2samp(np.concatenate([p[:, 0], p[:, 1]])[positive],
                                       np.concatenate([p[:, 0], p[:, 1]])[negative]).statistic
                        for p in seed] for seed in pred])  # (seed, severity)
        rows = table[table["subgroup"] == subgroup]
        np.testing.assert_allclose(rows["separability_mean"], ks.mean(axis=0), rtol=0, atol=1e-12)
        np.testing.assert_allclose(rows["separability_sd"], ks.std(axis=0), rtol=0, atol=1e-12)
        expected_p = [np.nan] + [reference_drop_pvalue(ks[:, 0], ks[:, s]) for s in range(1, 9)]
        np.testing.assert_allclose(rows["p_separability_drop"], expected_p, rtol=0, atol=1e-12)


def _small_study() -> tuple[pd.DataFrame, pd.DataFrame]:
    cases = pd.DataFrame({"exam": ["1", "1", "2", "2"], "breast": ["L", "R", "L", "R"],
                          "label": ["malignant", "benign", "nonbiopsied", "malignant"],
                          "subgroup": ["microcalcifications", "mixed", "nonbiopsied", "soft_tissue_lesions"]})
    rows = [
        {"observer_group": "net", "observer": f"seed{o}", "observer_kind": "machine", "exam": exam, "breast": breast,
         "severity_mm": severity, "scheme": "entire", "annotator": "", "prediction": 0.1 * (o + 1) + 0.05 * i}
        for o in range(2) for severity in (0.0, 4.0) for i, (exam, breast) in enumerate(zip(cases.exam, cases.breast))
    ]
    return pd.DataFrame(rows), cases


def test_dense_array_has_named_dims_and_case_attributes() -> None:
    observations, cases = _small_study()
    predictions = observed_predictions(observations.iloc[::-1], cases, "net")  # row order does not matter
    assert predictions.dims == ("observer", "severity", "case")
    assert list(predictions["observer"].values) == ["seed0", "seed1"]
    assert list(predictions["severity"].values) == [0.0, 4.0]
    assert list(predictions["label"].values) == list(cases["label"])
    assert predictions.sel(observer="seed1", severity=4.0).values[3] == pytest.approx(0.2 + 0.15)


def test_missing_cell_is_refused_with_its_name() -> None:
    observations, cases = _small_study()
    missing = observations.drop(index=5)  # seed0, 4 mm, exam 1 breast R
    with pytest.raises(InputError, match=r"no prediction for observer 'seed0', severity 4 mm, exam '1' breast 'R'"):
        observed_separability(missing, cases, "net")


def test_duplicate_cell_is_refused() -> None:
    observations, cases = _small_study()
    duplicate = "several predictions for observer 'seed0', severity 0 mm, exam '1' breast 'L'"
    with pytest.raises(InputError, match=duplicate):
        observed_separability(pd.concat([observations, observations.iloc[[0]]]), cases, "net")


def test_unknown_breast_group_or_missing_reference_is_refused() -> None:
    observations, cases = _small_study()
    with pytest.raises(InputError, match="exam '2' breast 'R' is not in Cases"):
        observed_separability(observations, cases.iloc[:3], "net")
    with pytest.raises(InputError, match="no observations of observer_group 'radiologists'"):
        observed_separability(observations, cases, "radiologists")
    with pytest.raises(InputError, match="no severity 0"):
        observed_separability(observations[observations["severity_mm"] > 0], cases, "net")
