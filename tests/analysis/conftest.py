"""The authors' release as Observations + Cases, built with plain pickle (trusted files, tests only).

Stand-in for ``perceptiongap.release`` (being written in parallel), following the same mapping:
exam id = str(test_set_idx); one Cases row per breast; network groups gmic, gmic_filtered, dmv,
dmv_filtered with observers seed0..seed4; annotation arrays as groups gmic/dmv with schemes
roi_interior/roi_exterior, annotators annotator1..annotator7.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from perceptiongap.severities import PAPER_SEVERITIES_MM

NETWORK_GROUPS = {
    "gmic": ("gmic", "unperturbed"),
    "gmic_filtered": ("gmic", "filtered"),
    "dmv": ("dmv", "unperturbed"),
    "dmv_filtered": ("dmv", "filtered"),
}


def load_pickle(path: Path):
    with open(path, "rb") as file:
        return pickle.load(file)  # trusted: the checksummed shared release, in tests only


def release_cases(release_dir: Path) -> pd.DataFrame:
    info = pd.read_csv(release_dir / "exam_info.csv")
    exams = info["test_set_idx"].astype(str)
    per_breast = [
        pd.DataFrame(
            {"exam": exams, "breast": breast, "label": info[f"y_{side}"], "subgroup": info[f"subgroup_{side}"]}
        )
        for breast, side in (("L", "l"), ("R", "r"))
    ]
    # Row order: exam by exam, L then R.
    return pd.concat(per_breast).sort_index(kind="stable").reset_index(drop=True)


def _long(pred: np.ndarray, dims: tuple[str, ...], coords: dict[str, np.ndarray], **constants) -> pd.DataFrame:
    """One row per element of ``pred``, whose axes are named ``dims`` with the given coordinate labels."""
    grids = np.meshgrid(*(np.arange(n) for n in pred.shape), indexing="ij")
    table = {dim: np.asarray(coords[dim])[grid.ravel()] for dim, grid in zip(dims, grids)}
    table["prediction"] = pred.ravel().astype(float)
    frame = pd.DataFrame(table)
    for column, value in constants.items():
        frame[column] = value
    return frame


def release_observations(release_dir: Path, *, radiologists: bool = True) -> pd.DataFrame:
    info = pd.read_csv(release_dir / "exam_info.csv")
    exams = info["test_set_idx"].astype(str).to_numpy()
    severities = np.asarray(PAPER_SEVERITIES_MM)
    breasts = np.array(["L", "R"])
    seeds = np.array([f"seed{i}" for i in range(5)])
    frames = []
    predictions = release_dir / "observed_predictions"
    if radiologists:
        pred, mask = load_pickle(predictions / "perturbation_study" / "radiologists.pkl")
        readers = np.array([f"reader{i + 1}" for i in range(pred.shape[0])])
        frame = _long(pred, ("observer", "severity_mm", "exam", "breast"),
                      {"observer": readers, "severity_mm": severities, "exam": exams, "breast": breasts},
                      observer_group="radiologists", observer_kind="human", scheme="entire", annotator="")
        frames.append(frame[np.repeat(mask.ravel().astype(bool), 2)])
    for group, (architecture, training) in NETWORK_GROUPS.items():
        pred, _ = load_pickle(predictions / "perturbation_study" / "dnns" / architecture / f"{training}.pkl")
        frames.append(_long(pred, ("observer", "severity_mm", "exam", "breast"),
                            {"observer": seeds, "severity_mm": severities, "exam": exams, "breast": breasts},
                            observer_group=group, observer_kind="machine", scheme="entire", annotator=""))
    annotated = exams[np.asarray(load_pickle(release_dir / "annotation_study_idxs.pkl"))]
    annotators = np.array([f"annotator{i + 1}" for i in range(7)])
    for architecture in ("gmic", "dmv"):
        for scheme in ("roi_interior", "roi_exterior"):
            pred = load_pickle(predictions / "annotation_study" / architecture / f"{scheme}.pkl")
            frames.append(_long(pred, ("annotator", "observer", "severity_mm", "exam", "breast"),
                                {"annotator": annotators, "observer": seeds, "severity_mm": severities,
                                 "exam": annotated, "breast": breasts},
                                observer_group=architecture, observer_kind="machine", scheme=scheme))
    columns = ["observer_group", "observer", "observer_kind", "exam", "breast", "severity_mm", "scheme",
               "annotator", "prediction"]
    return pd.concat(frames, ignore_index=True).loc[:, columns]


@pytest.fixture(scope="session")
def release_cases_table(release_dir: Path) -> pd.DataFrame:
    return release_cases(release_dir)


@pytest.fixture(scope="session")
def release_observations_table(release_dir: Path) -> pd.DataFrame:
    return release_observations(release_dir)
