"""The release as Observations + Cases, checked cell by cell against the raw arrays."""

from __future__ import annotations

import csv
import pickle
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from perceptiongap.errors import InputError
from perceptiongap.release import REQUIRED_FILES, import_release
from perceptiongap.vocabulary import PAPER_SEVERITIES_MM

PERTURBATION = "observed_predictions/perturbation_study"
ANNOTATION = "observed_predictions/annotation_study"
KEY = ["observer_group", "observer", "exam", "breast", "severity_mm", "scheme", "annotator"]


def raw(release_dir: Path, name: str):
    with (release_dir / name).open("rb") as stream:
        return pickle.load(stream)  # the shared files are trusted: plain pickle is the reference


@pytest.fixture(scope="module")
def imported(release_dir):
    return import_release(release_dir)


@pytest.fixture(scope="module")
def exam_info(release_dir) -> list[dict[str, str]]:
    with (release_dir / "exam_info.csv").open(newline="") as stream:
        return list(csv.DictReader(stream))


@pytest.fixture(scope="module")
def indexed(imported) -> pd.Series:
    return imported[0].set_index(KEY)["prediction"].sort_index()


def test_row_counts_per_group_and_scheme(imported, release_dir):
    observations, _ = imported
    counts = observations.groupby(["observer_group", "scheme"]).size().to_dict()
    _, read = raw(release_dir, f"{PERTURBATION}/radiologists.pkl")
    assert read.sum() == 6720
    dense, annotation = 5 * 9 * 720 * 2, 7 * 5 * 9 * 120 * 2
    assert counts == {
        ("radiologists", "entire"): 6720 * 2,
        **{(group, "entire"): dense for group in ("gmic", "gmic_filtered", "dmv", "dmv_filtered")},
        **{(arch, scheme): annotation for arch in ("gmic", "dmv") for scheme in ("roi_interior", "roi_exterior")},
    }
    kinds = observations.groupby("observer_group")["observer_kind"].unique()
    assert {group: list(kind) for group, kind in kinds.items()} == {
        "radiologists": ["human"],
        **{group: ["machine"] for group in ("gmic", "gmic_filtered", "dmv", "dmv_filtered")},
    }


def test_radiologist_rows_are_exactly_the_read_cells(imported, release_dir, exam_info):
    observations, _ = imported
    _, read = raw(release_dir, f"{PERTURBATION}/radiologists.pkl")
    readers, severities, exams = np.nonzero(read)
    expected = {
        (f"reader{r + 1:02d}", PAPER_SEVERITIES_MM[s], exam_info[e]["test_set_idx"], breast)
        for r, s, e in zip(readers, severities, exams)
        for breast in "LR"
    }
    rows = observations[observations["observer_group"] == "radiologists"]
    got = set(zip(rows["observer"], rows["severity_mm"], rows["exam"], rows["breast"]))
    assert got == expected
    assert set(rows["annotator"]) == {""}


def test_random_cells_match_the_raw_arrays(indexed, release_dir, exam_info):
    rng = np.random.default_rng(20220421)
    breast = "LR"
    severity = PAPER_SEVERITIES_MM

    prediction, read = raw(release_dir, f"{PERTURBATION}/radiologists.pkl")
    cells = np.argwhere(read)[rng.choice(int(read.sum()), 25, replace=False)]
    for r, s, e in cells:
        b = rng.integers(2)
        key = ("radiologists", f"reader{r + 1:02d}", exam_info[e]["test_set_idx"], breast[b], severity[s], "entire", "")
        assert indexed[key] == prediction[r, s, e, b]

    for arch in ("gmic", "dmv"):
        for training, group in (("unperturbed", arch), ("filtered", f"{arch}_filtered")):
            prediction, _ = raw(release_dir, f"{PERTURBATION}/dnns/{arch}/{training}.pkl")
            for seed, s, e, b in zip(*(rng.integers(0, n, 25) for n in prediction.shape)):
                key = (group, f"{group}_seed{seed}", exam_info[e]["test_set_idx"], breast[b], severity[s], "entire", "")
                assert indexed[key] == prediction[seed, s, e, b]

    rows = raw(release_dir, "annotation_study_idxs.pkl")
    for arch in ("gmic", "dmv"):
        for scheme in ("roi_interior", "roi_exterior"):
            prediction = raw(release_dir, f"{ANNOTATION}/{arch}/{scheme}.pkl")
            for a, seed, s, j, b in zip(*(rng.integers(0, n, 25) for n in prediction.shape)):
                exam = exam_info[rows[j]]["test_set_idx"]
                key = (arch, f"{arch}_seed{seed}", exam, breast[b], severity[s], scheme, f"annotator{a + 1}")
                assert indexed[key] == prediction[a, seed, s, j, b]


def test_cases_follow_exam_info(imported, exam_info):
    _, cases = imported
    assert len(cases) == 1440 == 2 * len(exam_info)
    by_breast = cases.set_index(["exam", "breast"])
    for row in exam_info:
        for breast, side in (("L", "l"), ("R", "r")):
            assert tuple(by_breast.loc[(row["test_set_idx"], breast)]) == (row[f"y_{side}"], row[f"subgroup_{side}"])
    malignant = sum((row["y_l"] == "malignant") + (row["y_r"] == "malignant") for row in exam_info)
    assert (cases["label"] == "malignant").sum() == malignant
    subgroups = Counter(row[f"subgroup_{side}"] for row in exam_info for side in "lr")
    assert Counter(cases["subgroup"]) == subgroups


def linked_release(release_dir: Path, target: Path, replace: str) -> Path:
    """The release as symlinks under ``target``, except ``replace``, which the caller writes."""
    for name in REQUIRED_FILES:
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        if name != replace:
            (target / name).symlink_to(release_dir / name)
    return target / replace


def radiologists_with(change):
    def make(release_dir):
        prediction, mask = raw(release_dir, f"{PERTURBATION}/radiologists.pkl")
        return change(prediction.copy(), mask.copy())
    return make


def set_first_read_prediction(prediction, mask, value):
    r, s, e = np.argwhere(mask)[0]
    prediction[r, s, e, 0] = value
    return prediction, mask


@pytest.mark.parametrize(
    ("name", "make", "message"),
    [
        (f"{PERTURBATION}/radiologists.pkl", radiologists_with(lambda p, m: (p[:9], m[:9])),
         r"expected a tuple \(prediction, mask\) of shapes \(10, 9, 720, 2\) and \(10, 9, 720\), "
         r"got tuple\(array \(9, 9, 720, 2\), array \(9, 9, 720\)\)"),
        (f"{PERTURBATION}/radiologists.pkl", radiologists_with(lambda p, m: p),
         r"expected a tuple \(prediction, mask\)"),
        (f"{PERTURBATION}/radiologists.pkl", radiologists_with(lambda p, m: set_first_read_prediction(p, m, 2)),
         r"prediction\[0, \d, \d+, 0\] = 2\.0: human predictions must be 0 or 1"),
        (f"{PERTURBATION}/dnns/dmv/filtered.pkl", lambda d: (np.full((5, 9, 720, 2), 1.5), np.ones((5, 9, 720))),
         r"prediction\[0, 0, 0, 0\] = 1\.5: outside \[0, 1\]"),
        (f"{ANNOTATION}/gmic/roi_exterior.pkl", lambda d: np.zeros((7, 5, 9, 119, 2)),
         r"expected an array of shape \(7, 5, 9, 120, 2\), got array \(7, 5, 9, 119, 2\)"),
        ("annotation_study_idxs.pkl", lambda d: list(range(119)), "expected a list of 120 integers, got list"),
        ("annotation_study_idxs.pkl", lambda d: list(range(601, 721)), r"distinct row indices in \[0, 720\)"),
    ],
)
def test_wrong_structure_is_refused_naming_file_and_expectation(release_dir, tmp_path, name, make, message):
    path = linked_release(release_dir, tmp_path / "release", name)
    path.write_bytes(pickle.dumps(make(release_dir)))
    with pytest.raises(InputError, match=message) as info:
        import_release(tmp_path / "release")
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith(f"{path}: ")


def test_bad_exam_info_is_refused(release_dir, tmp_path):
    path = linked_release(release_dir, tmp_path / "release", "exam_info.csv")
    lines = (release_dir / "exam_info.csv").read_text().splitlines()
    second_exam_as_first = lines[1].split(",", 1)[0] + "," + lines[2].split(",", 1)[1]
    path.write_text("\n".join([lines[0], lines[1], second_exam_as_first, *lines[3:]]))
    with pytest.raises(InputError, match=r"exam_info.csv: column 'test_set_idx', row 2: duplicate exam"):
        import_release(tmp_path / "release")
    path.write_text("\n".join(lines[:-1]))
    with pytest.raises(InputError, match=r"exam_info.csv: expected 720 exams \(rows\), got 719"):
        import_release(tmp_path / "release")
    path.write_text("\n".join([lines[0], lines[1].replace("nonbiopsied", "unknown", 1), *lines[2:]]))
    with pytest.raises(InputError, match=r"column 'y_l', row 1: 'unknown' is not one of"):
        import_release(tmp_path / "release")
