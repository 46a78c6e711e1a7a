"""``perceptiongap perturb`` and ``perceptiongap compose`` end to end, through ``main``."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from PIL import Image

from perceptiongap.files import atomic_path
from perceptiongap.perturb import lowpass

from .helpers import run_cli

VIEWS = ("L-CC", "L-MLO", "R-CC", "R-MLO")


run = run_cli


def only_error_line(err: str) -> str:
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in err, err
    return errors[0]


def view_pixels(seed: int, shape=(48, 40)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (np.linspace(3000, 300, shape[1])[None, :] + rng.normal(0, 200, size=shape)).clip(0, 4095).astype(np.uint16)


@pytest.fixture
def png_exam(tmp_path) -> Path:
    folder = tmp_path / "pngs"
    folder.mkdir()
    for seed, view in enumerate(VIEWS):
        pixels = view_pixels(seed)
        Image.fromarray(pixels if view[0] == "L" else pixels[:, ::-1].copy()).save(folder / f"ex1_{view}.png")
    return folder


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_perturb_writes_every_cutoff_and_a_manifest(png_exam, tmp_path, capsys):
    out = tmp_path / "out"
    code, stdout, _ = run(["perturb", png_exam, "--out", out, "--pixel-mm", "0.1", "--cutoffs-per-mm", "2,0.5,inf"], capsys)
    assert code == 0 and "12 outputs" in stdout
    manifest = pd.read_csv(out / "manifest.csv", dtype=str, keep_default_na=False)
    for column in ("source", "output", "cutoff_per_mm", "severity_mm", "scheme", "annotator", "sha256"):
        assert column in manifest.columns
    assert len(manifest) == 12 and set(manifest.scheme) == {"entire"} and set(manifest.annotator) == {""}
    assert set(zip(manifest.cutoff_per_mm, manifest.severity_mm)) == {("2", "0.5"), ("0.5", "2"), ("inf", "0")}
    for row in manifest.itertuples():
        assert sha(out / row.output) == row.sha256
        source = np.asarray(Image.open(row.source))
        written = np.asarray(Image.open(out / row.output))
        np.testing.assert_array_equal(written, lowpass(source, 0.1, [float(row.cutoff_per_mm)])[0])
    assert (out / "entire" / "cutoff-0.5" / "ex1_R-MLO.png").is_file()
    assert not list(out.rglob("*.partial"))


def test_rerun_skips_complete_outputs_and_redoes_damaged_ones(png_exam, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    args = ["perturb", png_exam, "--out", out, "--pixel-mm", "0.1", "--cutoffs-per-mm", "2,0.5"]
    assert run(args, capsys)[0] == 0
    first = {p: (sha(p), p.stat().st_mtime_ns) for p in out.rglob("*.png")}

    (out / "entire/cutoff-2/ex1_L-CC.png").unlink()  # lost
    (out / "entire/cutoff-0.5/ex1_L-MLO.png").write_bytes(b"garbage")  # damaged
    filtered = []
    import perceptiongap.perturb.perturbation as perturbation

    def counting_lowpass(image, *args, **kwargs):
        filtered.append(image.shape)
        return lowpass(image, *args, **kwargs)

    monkeypatch.setattr(perturbation, "lowpass", counting_lowpass)
    assert run(args, capsys)[0] == 0
    assert len(filtered) == 2  # only the two damaged images were filtered again
    for path, (digest, mtime) in first.items():
        assert sha(path) == digest  # same bytes as the first run
        if "ex1_R-" in path.name:
            assert path.stat().st_mtime_ns == mtime  # untouched

    filtered.clear()
    assert run(args, capsys)[0] == 0
    assert filtered == []  # all complete now


def test_interrupted_run_leaves_no_partial_file_and_resumes(png_exam, tmp_path, capsys, monkeypatch):
    import perceptiongap.perturb.batch as batch

    clean = tmp_path / "clean"
    args = ["perturb", png_exam, "--pixel-mm", "0.1", "--cutoffs-per-mm", "3,1,0.5"]
    assert run([*args, "--out", clean], capsys)[0] == 0

    calls = []

    def write_then_die(path, data):
        calls.append(path)
        with atomic_path(path) as tmp:
            if len(calls) == 6:  # killed half-way through writing the 6th file
                tmp.write_bytes(data[: len(data) // 2])
                raise KeyboardInterrupt
            tmp.write_bytes(data)

    monkeypatch.setattr(batch, "atomic_write_bytes", write_then_die)
    out = tmp_path / "out"
    code, _, _ = run([*args, "--out", out], capsys)
    assert code == 130
    assert not list(out.rglob("*.partial")) and not Path(calls[5]).exists()
    assert len(list(out.rglob("*.png"))) == 5
    manifest = pd.read_csv(out / "manifest.csv", dtype=str)
    assert len(manifest) == 3  # the first image, the only one complete

    monkeypatch.undo()
    assert run([*args, "--out", out], capsys)[0] == 0
    written = {p.relative_to(out): sha(p) for p in out.rglob("*.png")}
    assert written == {p.relative_to(clean): sha(p) for p in clean.rglob("*.png")}
    assert len(pd.read_csv(out / "manifest.csv")) == 12


def test_a_different_request_into_the_same_folder_needs_force(png_exam, tmp_path, capsys):
    out = tmp_path / "out"
    base = ["perturb", png_exam, "--out", out, "--pixel-mm", "0.1", "--cutoffs-per-mm", "2"]
    assert run(base, capsys)[0] == 0
    code, _, err = run([*base, "--variant", "release"], capsys)
    assert code == 2 and "different request" in only_error_line(err) and "set force" in err
    assert run([*base, "--variant", "release", "--force"], capsys)[0] == 0
    manifest = pd.read_csv(out / "manifest.csv", dtype=str)
    assert set(manifest.variant) == {"release"}


def test_roi_schemes_filter_inside_or_outside_per_annotator(png_exam, tmp_path, capsys):
    rois = tmp_path / "rois.csv"
    rois.write_text(
        "exam,view,annotator,x0,y0,x1,y1\n"
        "ex1,L-CC,dr a,5,6,20,30\n"
        "ex1,L-CC,dr a,15,25,35,40\n"
        "ex1,R-MLO,dr_b,0,0,10,10\n"
        "other,L-CC,dr_c,0,0,10,10\n"
    )
    inside = np.zeros((48, 40), bool)
    inside[6:30, 5:20] = inside[25:40, 15:35] = True
    source = np.asarray(Image.open(png_exam / "ex1_L-CC.png"))
    entire = lowpass(source, 0.1, [0.5])[0]
    for scheme, changed in (("roi_interior", inside), ("roi_exterior", ~inside)):
        out = tmp_path / scheme
        code, _, _ = run(["perturb", png_exam, "--out", out, "--pixel-mm", "0.1", "--cutoffs-per-mm", "0.5",
                          "--rois", rois, "--scheme", scheme], capsys)  # fmt: skip
        assert code == 0
        manifest = pd.read_csv(out / "manifest.csv", dtype=str, keep_default_na=False)
        assert len(manifest) == 8 and set(manifest.annotator) == {"dr a", "dr_b"}  # 4 views x 2 annotators
        row = manifest[(manifest.annotator == "dr a") & (manifest.view == "L-CC")].iloc[0]
        assert row.output == f"{scheme}/dr_a/cutoff-0.5/ex1_L-CC.png" and row.rois == "5 6 20 30;15 25 35 40"
        written = np.asarray(Image.open(out / row.output))
        np.testing.assert_array_equal(written[~changed], source[~changed])
        np.testing.assert_array_equal(written[changed], entire[changed])
        # dr_b drew nothing on L-CC: interior leaves it alone, exterior filters all of it.
        other = np.asarray(Image.open(out / f"{scheme}/dr_b/cutoff-0.5/ex1_L-CC.png"))
        np.testing.assert_array_equal(other, source if scheme == "roi_interior" else entire)


def test_dicom_in_dicom_out(tmp_path, capsys):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    folder = tmp_path / "dicoms"
    folder.mkdir()
    for seed, view in enumerate(VIEWS):
        dataset = Dataset()
        dataset.file_meta = FileMetaDataset()
        dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        dataset.SOPClassUID = "1.2.840.10008.5.1.4.1.1.1.2"
        dataset.SOPInstanceUID = generate_uid()
        dataset.PatientID, dataset.AccessionNumber = "P1", "ACC1"
        dataset.ImageLaterality, dataset.ViewPosition = view.split("-")
        dataset.Rows, dataset.Columns = 48, 40
        dataset.SamplesPerPixel, dataset.PhotometricInterpretation = 1, "MONOCHROME2"
        dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit, dataset.PixelRepresentation = 16, 12, 11, 0
        dataset.PixelSpacing = [0.1, 0.1]
        dataset.PixelData = view_pixels(seed).tobytes()
        dataset.save_as(folder / f"img{seed}.dcm", enforce_file_format=True)
    out = tmp_path / "out"
    code, _, _ = run(["perturb", folder, "--out", out, "--cutoffs-per-mm", "2", "--format", "dicom"], capsys)
    assert code == 0
    written = pydicom.dcmread(out / "entire/cutoff-2/img1.dcm")
    np.testing.assert_array_equal(written.pixel_array, lowpass(view_pixels(1), 0.1, [2.0])[0])
    assert "cut-off 2 cycles/mm (severity 0.5 mm)" in written.DerivationDescription
    manifest = pd.read_csv(out / "manifest.csv", dtype=str)
    assert set(manifest.exam) == {"ACC1"} and set(manifest.view) == set(VIEWS)

    code, _, _ = run(["compose", folder, "--out", tmp_path / "composite", "--cutoffs-per-mm", "inf"], capsys)
    assert code == 0 and (tmp_path / "composite/ACC1/cutoff-inf.png").is_file()


def test_preview_writes_png_and_svg(png_exam, tmp_path, capsys):
    out = tmp_path / "out"
    code, stdout, _ = run(["perturb", png_exam / "ex1_L-CC.png", "--out", out, "--pixel-mm", "0.1",
                           "--cutoffs-per-mm", "2,0.5", "--preview"], capsys)  # fmt: skip
    assert code == 0 and "preview" in stdout
    assert Image.open(out / "preview.png").info["dpi"] == pytest.approx((300, 300), abs=0.5)
    assert (out / "preview.svg").read_text().lstrip().startswith("<?xml")


def test_compose_writes_the_reading_picture_per_severity(png_exam, tmp_path, capsys):
    out = tmp_path / "composite"
    code, stdout, _ = run(["compose", png_exam, "--out", out, "--pixel-mm", "0.1", "--cutoffs-per-mm", "inf,1"], capsys)
    assert code == 0 and "2 composites" in stdout
    picture = np.asarray(Image.open(out / "ex1" / "cutoff-inf.png"))
    assert picture.shape == (96, 80)
    # The fixture stores right views facing left and left views facing right, as read.
    np.testing.assert_array_equal(picture[:48, :40], np.asarray(Image.open(png_exam / "ex1_R-CC.png")))
    np.testing.assert_array_equal(picture[48:, 40:], np.asarray(Image.open(png_exam / "ex1_L-MLO.png")))
    blurred = np.asarray(Image.open(out / "ex1" / "cutoff-1.png"))
    np.testing.assert_array_equal(blurred[:48, 40:], lowpass(view_pixels(0), 0.1, [1.0])[0])
    manifest = pd.read_csv(out / "manifest.csv", dtype=str)
    assert list(manifest.output) == ["ex1/cutoff-1.png", "ex1/cutoff-inf.png"]


@pytest.mark.slow
def test_shared_exam_release_variant_through_the_cli(exam_dir, tmp_path, capsys):
    out = tmp_path / "out"
    code, _, _ = run(["perturb", exam_dir, "--out", out, "--pixel-mm", "0.1", "--variant", "release",
                      "--cutoffs-per-mm", "6,0.25"], capsys)  # fmt: skip
    assert code == 0
    source = np.asarray(Image.open(exam_dir / "0_R-CC.png"))
    written = np.asarray(Image.open(out / "entire/cutoff-0.25/0_R-CC.png"))
    np.testing.assert_array_equal(written, lowpass(source, 0.1, [0.25], variant="release")[0])
    assert len(pd.read_csv(out / "manifest.csv")) == 8
    code, _, _ = run(["compose", exam_dir, "--out", tmp_path / "c", "--pixel-mm", "0.07", "--cutoffs-per-mm", "1"], capsys)
    assert code == 0 and (tmp_path / "c/0/cutoff-1.png").is_file()


def _bad_inputs(tmp_path: Path, png_exam: Path):
    rgb = tmp_path / "rgb"
    rgb.mkdir()
    Image.new("RGB", (8, 8)).save(rgb / "c.png")
    rois = tmp_path / "outside.csv"
    rois.write_text("exam,view,annotator,x0,y0,x1,y1\nex1,L-CC,dr_a,30,10,41,20\n")
    base = ["--out", tmp_path / "out"]
    return [
        (["perturb", rgb, *base, "--pixel-mm", "0.1"], "c.png: is a colour image (mode RGB)"),
        (["perturb", png_exam, *base], "PNG files carry no pixel spacing; give the pixel size in mm (pixel_mm)"),
        (["perturb", png_exam, *base, "--pixel-mm", "0.1", "--cutoffs-per-mm", "6"], "above the Nyquist frequency 5"),
        (["perturb", png_exam, *base, "--pixel-mm", "0.1", "--cutoffs-per-mm", "2,x"], "'x' is not a number"),
        (["perturb", png_exam, *base, "--pixel-mm", "0.1", "--cutoffs-per-mm", "0"], "positive"),
        (["perturb", png_exam, *base, "--pixel-mm", "abc"], "--pixel-mm: 'abc'"),
        (["perturb", png_exam, *base, "--pixel-mm", "0.1", "--scheme", "roi_interior"], "ROI schemes need ROI boxes"),
        (["perturb", png_exam, *base, "--pixel-mm", "0.1", "--variant", "exact"], "'exact' is not one of physical, release"),
        (["perturb", png_exam, *base, "--pixel-mm", "0.1", "--format", "dicom"], "is not DICOM"),
        (["perturb", tmp_path / "nowhere", *base], "nowhere: no such file or folder"),
        (
            ["perturb", png_exam, *base, "--pixel-mm", "0.1", "--cutoffs-per-mm", "2", "--rois", rois, "--scheme",
             "roi_exterior"],  # fmt: skip
            "ROI exam 'ex1' view L-CC annotator 'dr_a' [30, 10, 41, 20] (outside.csv row 1) is outside the 40 x 48",
        ),
        (["compose", rgb, *base, "--pixel-mm", "0.1"], "cannot tell this image's exam and view"),
        (["compose", png_exam / "ex1_L-CC.png", *base, "--pixel-mm", "0.1"], "lacks the view(s) R-CC, R-MLO, L-MLO"),
    ]


def test_bad_inputs_give_one_error_line_and_exit_2(png_exam, tmp_path, capsys):
    for args, message in _bad_inputs(tmp_path, png_exam):
        code, _, err = run(args, capsys)
        assert code == 2, (args, err)
        assert message in only_error_line(err), (args, err)


def test_parallel_workers_write_the_same_files(png_exam, tmp_path, capsys):
    args = ["perturb", png_exam, "--pixel-mm", "0.1", "--cutoffs-per-mm", "2,0.5"]
    assert run([*args, "--out", tmp_path / "one"], capsys)[0] == 0
    assert run([*args, "--out", tmp_path / "two", "--workers", "3"], capsys)[0] == 0
    one = pd.read_csv(tmp_path / "one/manifest.csv", dtype=str)
    two = pd.read_csv(tmp_path / "two/manifest.csv", dtype=str)
    pd.testing.assert_frame_equal(one, two)
