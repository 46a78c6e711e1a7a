"""The annotation study equals the release's algorithm, re-implemented here plainly on the raw arrays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from perceptiongap.analysis import ANNOTATION_COLUMNS, annotation_study
from perceptiongap.errors import InputError
from perceptiongap.vocabulary import PAPER_SEVERITIES_MM

from .raw_release import load_pickle


def _release_breasts(info: pd.DataFrame, subgroup: str) -> tuple[list[int], list[int], np.ndarray]:
    """The release's selection: a breast is in if its subgroup is the query or it is not malignant."""
    left = [i for i in range(len(info)) if info.subgroup_l.iloc[i] == subgroup or info.y_l.iloc[i] != "malignant"]
    right = [i for i in range(len(info)) if info.subgroup_r.iloc[i] == subgroup or info.y_r.iloc[i] != "malignant"]
    y = np.concatenate([info.y_l.iloc[left].to_numpy(), info.y_r.iloc[right].to_numpy()]) == "malignant"
    return left, right, y


def _reference(release_dir: Path, architecture: str, subgroup: str) -> dict[str, tuple[np.ndarray, ...]]:
    """scheme -> (mean, sd, p-values) over the nine severities, following METHOD §6 step by step."""
    info = pd.read_csv(release_dir / "exam_info.csv")
    annotated = load_pickle(release_dir / "annotation_study_idxs.pkl")
    info = info.iloc[annotated]
    predictions = release_dir / "observed_predictions"
    entire, _ = load_pickle(predictions / "perturbation_study" / "dnns" / architecture / "unperturbed.pkl")
    arrays = {
        "roi_interior": load_pickle(predictions / "annotation_study" / architecture / "roi_interior.pkl"),
        "roi_exterior": load_pickle(predictions / "annotation_study" / architecture / "roi_exterior.pkl"),
        "entire": entire[None][:, :, :, annotated, :],
    }
    left, right, y = _release_breasts(info, subgroup)
    result = {}
    for scheme, pred in arrays.items():
        statistics = []
        for annotator in range(pred.shape[0]):
            for seed in range(pred.shape[1]):
                row = []
                for severity in range(pred.shape[2]):
                    cell = pred[annotator, seed, severity]
                    both = np.concatenate([cell[left, 0], cell[right, 1]])
                    row.append(stats.ks_2samp(both[y], both[~y]).statistic)
                statistics.append(row)
        statistics = np.array(statistics)
        p_values = [np.nan] + [
            stats.ks_2samp(statistics[:, 0], statistics[:, s], alternative="less").pvalue
            for s in range(1, statistics.shape[1])
        ]
        result[scheme] = (statistics.mean(axis=0), statistics.std(axis=0), np.array(p_values))
    return result


@pytest.fixture(scope="module")
def table(release_observations_table: pd.DataFrame, release_cases_table: pd.DataFrame) -> pd.DataFrame:
    return annotation_study(release_observations_table, release_cases_table)


def test_layout(table: pd.DataFrame) -> None:
    assert list(table.columns) == list(ANNOTATION_COLUMNS)
    assert len(table) == 2 * 2 * 3 * 9
    assert list(pd.unique(table["observer_group"])) == ["gmic", "dmv"]
    assert list(pd.unique(table["subgroup"])) == ["microcalcifications", "soft_tissue_lesions"]
    assert list(pd.unique(table["scheme"])) == ["roi_interior", "roi_exterior", "entire"]
    assert list(table["severity_mm"].iloc[:9]) == list(PAPER_SEVERITIES_MM)


@pytest.mark.parametrize("architecture", ["gmic", "dmv"])
@pytest.mark.parametrize("subgroup", ["microcalcifications", "soft_tissue_lesions"])
def test_equals_the_release_algorithm(table: pd.DataFrame, release_dir: Path, architecture: str, subgroup: str) -> None:
    reference = _reference(release_dir, architecture, subgroup)
    for scheme, (mean, sd, p_values) in reference.items():
        rows = table[(table["observer_group"] == architecture) & (table["subgroup"] == subgroup)
                     & (table["scheme"] == scheme)]
        np.testing.assert_allclose(rows["separability_mean"], mean, rtol=0, atol=1e-12)
        np.testing.assert_allclose(rows["separability_sd"], sd, rtol=0, atol=1e-12)
        np.testing.assert_allclose(rows["p_separability_drop"], p_values, rtol=0, atol=1e-12)


def test_soft_tissue_exterior_filtering_hurts_gmic_more_than_interior(table: pd.DataFrame) -> None:
    # METHOD §7: for soft tissue lesions, filtering the ROI exterior hurts the networks more than the interior.
    at_4mm = table[(table["observer_group"] == "gmic") & (table["subgroup"] == "soft_tissue_lesions")
                   & (table["severity_mm"] == 4.0)].set_index("scheme")["separability_mean"]
    assert at_4mm["roi_exterior"] < at_4mm["roi_interior"]


def test_entire_scheme_missing_an_annotated_exam_is_refused(release_observations_table, release_cases_table) -> None:
    observations = release_observations_table
    annotated_exam = observations.loc[observations["scheme"] == "roi_interior", "exam"].iloc[0]
    gmic = observations[observations["observer_group"] == "gmic"]
    without = gmic[~((gmic["scheme"] == "entire") & (gmic["exam"] == annotated_exam))]
    with pytest.raises(InputError, match=f"scheme 'entire': no predictions for annotated exam '{annotated_exam}'"):
        annotation_study(without, release_cases_table)


def test_no_roi_observations_is_refused(release_observations_table, release_cases_table) -> None:
    entire_only = release_observations_table[release_observations_table["scheme"] == "entire"]
    with pytest.raises(InputError, match="no observations with scheme roi_interior or roi_exterior"):
        annotation_study(entire_only, release_cases_table)
