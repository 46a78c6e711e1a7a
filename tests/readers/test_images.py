"""Images prepared at design time: DICOM decoding, the perturbation of `perturb`, 16-bit PNG + sidecar."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from perceptiongap.errors import InputError
from perceptiongap.perturb.batch import perturb_files
from perceptiongap.readers import create_study
from perceptiongap.readers.images import parse_window
from perceptiongap.reference import synthetic_view


def _write_dicom(path: Path, stored: np.ndarray, *, photometric="MONOCHROME2", slope=1.0, intercept=0.0,
                 window=None, laterality="L", view="CC", spacing=0.1) -> None:
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality = "MG"
    ds.ImageLaterality, ds.ViewPosition = laterality, view
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelSpacing = [spacing, spacing]
    ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    ds.PixelData = stored.astype("<u2").tobytes()
    ds.save_as(path, enforce_file_format=True)


def _inputs(folder: Path, views: dict[str, Path], pixel_mm: str = "", readers: int = 1) -> dict:
    pd.DataFrame({"exam": "e1", "view": list(views), "path": [str(p) for p in views.values()],
                  "pixel_mm": pixel_mm}).to_csv(folder / "exams.csv", index=False)
    pd.DataFrame({"exam": "e1", "breast": ["L", "R"], "label": ["malignant", "nonbiopsied"],
                  "subgroup": ["microcalcifications", "nonbiopsied"]}).to_csv(folder / "cases.csv", index=False)
    pd.DataFrame({"reader": [f"r{i}" for i in range(readers)]}).to_csv(folder / "readers.csv", index=False)
    return {"exams_csv": folder / "exams.csv", "cases_csv": folder / "cases.csv", "readers_csv": folder / "readers.csv"}


def _stored(study: Path, view: str, severity: float = 0.0) -> tuple[np.ndarray, dict]:
    with sqlite3.connect(study / "study.sqlite") as connection:
        (identifier,) = connection.execute(
            "SELECT id FROM images WHERE view = ? AND severity_mm = ?", (view, severity)).fetchone()
    with Image.open(study / "images" / f"{identifier}.png") as picture:
        assert picture.mode == "I;16"
        pixels = np.array(picture)
    return pixels, json.loads((study / "images" / f"{identifier}.json").read_text())


@pytest.fixture()
def stored_views():
    rng = np.random.default_rng(4)
    views = {}
    for view in ("L-CC", "L-MLO", "R-CC", "R-MLO"):
        image = synthetic_view((64, 48), 0.1, 2, rng)  # chest wall at column 0: faces right
        views[view] = image if view[0] == "L" else image[:, ::-1].copy()
    return views


def test_dicom_is_decoded_with_its_modality_lut_and_window(tmp_path, stored_views):
    paths = {}
    for view, stored in stored_views.items():
        paths[view] = tmp_path / f"{view}.dcm"
        _write_dicom(paths[view], stored, slope=2.0, intercept=-100.0, window=(1500.0, 3000.0),
                     laterality=view[0], view=view[2:])
    study = create_study(**_inputs(tmp_path, paths), out=tmp_path / "study", mode="annotation").folder
    pixels, meta = _stored(study, "L-CC")
    values = stored_views["L-CC"].astype(float) * 2 - 100  # the modality LUT, computed here
    # Stored so that value = stored * slope + intercept, in whole numbers.
    assert meta["rescale"]["slope"] == 1.0
    np.testing.assert_array_equal(pixels * meta["rescale"]["slope"] + meta["rescale"]["intercept"], values)
    window = meta["window"]
    assert window["center"] * meta["rescale"]["slope"] + meta["rescale"]["intercept"] == 1500.0
    assert window["width"] == 3000.0
    assert meta["pixel_mm"] == [0.1, 0.1] and (meta["rows"], meta["columns"]) == (64, 48)
    assert meta["facing"] == "right"
    assert _stored(study, "R-CC")[1]["facing"] == "left"


def test_monochrome1_is_inverted_so_that_bright_means_dense(tmp_path, stored_views):
    paths = {}
    for view, stored in stored_views.items():
        paths[view] = tmp_path / f"{view}.dcm"
        _write_dicom(paths[view], 4095 - stored, photometric="MONOCHROME1", window=(4095 - 1000.0, 800.0),
                     laterality=view[0], view=view[2:])
    study = create_study(**_inputs(tmp_path, paths), out=tmp_path / "study", mode="annotation").folder
    pixels, meta = _stored(study, "L-MLO")
    np.testing.assert_array_equal(pixels, stored_views["L-MLO"])  # inverted back to the dense-is-bright image
    assert (meta["window"]["center"], meta["window"]["width"]) == (1000.0, 800.0)
    assert meta["facing"] == "right"


def test_a_dicom_whose_header_contradicts_the_exams_file_is_refused(tmp_path, stored_views):
    paths = {}
    for view, stored in stored_views.items():
        paths[view] = tmp_path / f"{view}.dcm"
        _write_dicom(paths[view], stored, laterality="R" if view == "L-CC" else view[0], view=view[2:])
    with pytest.raises(InputError, match="the exams file says L-CC, but the DICOM header says R-CC"):
        create_study(**_inputs(tmp_path, paths), out=tmp_path / "study", mode="annotation")


def test_perturbed_images_are_exactly_what_perturb_writes(tmp_path, stored_views):
    paths = {}
    for view, stored in stored_views.items():
        paths[view] = tmp_path / "png" / f"e1_{view}.png"
        paths[view].parent.mkdir(exist_ok=True)
        Image.fromarray(stored).save(paths[view])
    # Three readers of the one exam in a balanced design: one at each severity.
    study = create_study(**_inputs(tmp_path, paths, pixel_mm="0.1", readers=3), out=tmp_path / "study",
                         cutoffs_per_mm=[float("inf"), 1.0, 0.25]).folder
    perturb_files([paths["R-MLO"]], tmp_path / "perturbed", cutoffs_per_mm=[1.0, 0.25], pixel_mm=0.1)
    for cutoff, severity in ((1.0, 1.0), (0.25, 4.0)):
        with Image.open(tmp_path / "perturbed" / "entire" / f"cutoff-{cutoff:g}" / "e1_R-MLO.png") as picture:
            expected = np.array(picture)
        pixels, meta = _stored(study, "R-MLO", severity)
        np.testing.assert_array_equal(pixels, expected)
        assert not np.array_equal(pixels, stored_views["R-MLO"])
    original, meta0 = _stored(study, "R-MLO", 0.0)
    np.testing.assert_array_equal(original, stored_views["R-MLO"])
    # Every severity of a view shares the unperturbed view's window: the range of the original.
    low, high = float(stored_views["R-MLO"].min()), float(stored_views["R-MLO"].max())
    assert meta["window"] == meta0["window"] == {"center": (low + high) / 2, "width": high - low}


def test_window_presets_are_given_in_image_values_and_converted_per_image(tmp_path, stored_views):
    paths = {}
    for view, stored in stored_views.items():
        paths[view] = tmp_path / f"{view}.dcm"
        _write_dicom(paths[view], stored, slope=0.5, intercept=10.0, laterality=view[0], view=view[2:])
    study = create_study(**_inputs(tmp_path, paths), out=tmp_path / "study", mode="annotation",
                         windows=[parse_window("soft:400:200")]).folder
    _, meta = _stored(study, "L-CC")
    (preset,) = [w for w in meta["windows"] if w["name"] == "soft"]
    slope, intercept = meta["rescale"]["slope"], meta["rescale"]["intercept"]
    assert preset["center"] * slope + intercept == pytest.approx(400)
    assert preset["width"] * slope == pytest.approx(200)


@pytest.mark.parametrize("text", ["soft", "soft:a:1", "soft:1:0", ":1:2", "soft:1:-3"])
def test_a_bad_window_preset_is_refused(text):
    with pytest.raises(InputError, match="--window"):
        parse_window(text)


def test_the_shared_exam_is_prepared_as_stored(tmp_path, exam_dir):
    paths = {view: exam_dir / f"0_{view}.png" for view in ("L-CC", "L-MLO", "R-CC", "R-MLO")}
    study = create_study(**_inputs(tmp_path, paths, pixel_mm="0.1"), out=tmp_path / "study", mode="annotation").folder
    for view, path in paths.items():
        pixels, meta = _stored(study, view)
        with Image.open(path) as picture:
            np.testing.assert_array_equal(pixels, np.array(picture).astype(np.uint16))
        assert meta["facing"] == ("left" if view[0] == "R" else "right")
