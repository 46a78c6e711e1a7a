"""Reading and writing DICOM and PNG mammograms (synthetic DICOMs written with pydicom)."""

from __future__ import annotations

import warnings

import numpy as np
import pydicom
import pytest
from PIL import Image

from perceptiongap.errors import InputError
from perceptiongap.perturb import identify, lowpass, read_image, view_from_name, write_dicom, write_png


@pytest.fixture
def pixels():
    return np.random.default_rng(0).integers(0, 4096, size=(40, 30)).astype(np.uint16)


def test_dicom_monochrome2_with_pixel_spacing(tmp_path, make_dicom, pixels):
    make_dicom(tmp_path / "a.dcm", pixels, PixelSpacing=[0.07, 0.065], ImageLaterality="L", ViewPosition="CC",
               AccessionNumber="ACC9", PatientOrientation=["A", "R"])  # fmt: skip
    image = read_image(tmp_path / "a.dcm", pixel_mm=0.5)  # the header wins over pixel_mm
    np.testing.assert_array_equal(image.pixels, pixels)
    assert image.pixel_mm == (0.07, 0.065)
    assert (image.exam, image.view, image.patient_orientation) == ("ACC9", "L-CC", ("A", "R"))
    assert not image.inverted
    assert identify(tmp_path / "a.dcm") == ("ACC9", "L-CC")


def test_dicom_monochrome1_is_inverted_and_written_back_as_monochrome1(tmp_path, make_dicom, pixels):
    original = make_dicom(tmp_path / "m1.dcm", pixels, photometric="MONOCHROME1", PixelSpacing=[0.1, 0.1],
                          Laterality="R", ViewPosition="MLO")  # fmt: skip
    image = read_image(tmp_path / "m1.dcm")
    assert image.inverted and image.view == "R-MLO"
    np.testing.assert_array_equal(image.pixels, 4095 - pixels)  # 12 bits stored: bright = dense

    filtered = lowpass(image.pixels, image.pixel_mm, [1.0])[0]
    sha = write_dicom(tmp_path / "out.dcm", image, filtered, "test filter, cut-off 1 cycles/mm")
    written = pydicom.dcmread(tmp_path / "out.dcm")
    assert written.PhotometricInterpretation == "MONOCHROME1"
    np.testing.assert_array_equal(written.pixel_array, 4095 - filtered)
    np.testing.assert_array_equal(read_image(tmp_path / "out.dcm").pixels, filtered)
    # Metadata kept, identity new, derivation recorded.
    assert written.PatientID == original.PatientID and written.StudyInstanceUID == original.StudyInstanceUID
    assert written.SOPInstanceUID != original.SOPInstanceUID
    assert written.file_meta.MediaStorageSOPInstanceUID == written.SOPInstanceUID
    assert written.SeriesInstanceUID != original.SeriesInstanceUID
    assert written.DerivationDescription == "test filter, cut-off 1 cycles/mm"
    assert list(written.ImageType)[:2] == ["DERIVED", "SECONDARY"]
    assert written.WindowCenter == original.WindowCenter
    import hashlib

    assert sha == hashlib.sha256((tmp_path / "out.dcm").read_bytes()).hexdigest()
    # Deterministic: the same derivation of the same original gets the same UID.
    write_dicom(tmp_path / "again.dcm", image, filtered, "test filter, cut-off 1 cycles/mm")
    assert pydicom.dcmread(tmp_path / "again.dcm").SOPInstanceUID == written.SOPInstanceUID


def test_release_output_in_dicom_is_12_bit_without_window(tmp_path, make_dicom, pixels):
    make_dicom(tmp_path / "a.dcm", pixels, bits_stored=16, PixelSpacing=[0.1, 0.1])
    image = read_image(tmp_path / "a.dcm")
    filtered = lowpass(image.pixels, image.pixel_mm, [1.0], variant="release")[0]
    write_dicom(tmp_path / "out.dcm", image, filtered, "release", bits_stored=12)
    written = pydicom.dcmread(tmp_path / "out.dcm")
    assert (written.BitsStored, written.HighBit) == (12, 11) and "WindowCenter" not in written
    np.testing.assert_array_equal(written.pixel_array, filtered)


def test_imager_pixel_spacing_is_used_with_a_warning(tmp_path, make_dicom, pixels):
    make_dicom(tmp_path / "a.dcm", pixels, ImagerPixelSpacing=[0.085, 0.085])
    with pytest.warns(UserWarning, match="ImagerPixelSpacing"):
        image = read_image(tmp_path / "a.dcm")
    assert image.pixel_mm == (0.085, 0.085)


def test_dicom_without_spacing_needs_pixel_mm(tmp_path, make_dicom, pixels):
    make_dicom(tmp_path / "a.dcm", pixels)
    with pytest.raises(InputError, match=r"a\.dcm: has neither PixelSpacing nor ImagerPixelSpacing.*\(pixel_mm\)"):
        read_image(tmp_path / "a.dcm")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_image(tmp_path / "a.dcm", pixel_mm=(0.1, 0.12)).pixel_mm == (0.1, 0.12)


@pytest.mark.parametrize("dtype", [np.uint16, np.uint8])
def test_png_round_trip_keeps_dtype_and_values(tmp_path, dtype):
    values = np.random.default_rng(1).integers(0, np.iinfo(dtype).max + 1, size=(33, 21)).astype(dtype)
    sha = write_png(tmp_path / "x_R-CC.png", values, pixel_mm=(0.1, 0.1))
    image = read_image(tmp_path / "x_R-CC.png", pixel_mm=0.1)
    assert image.pixels.dtype == dtype and image.pixel_mm == (0.1, 0.1)
    np.testing.assert_array_equal(image.pixels, values)
    assert (image.exam, image.view) == ("x", "R-CC")
    import hashlib

    assert sha == hashlib.sha256((tmp_path / "x_R-CC.png").read_bytes()).hexdigest()


def test_png_needs_pixel_mm(tmp_path, pixels):
    write_png(tmp_path / "a.png", pixels)
    with pytest.raises(InputError, match=r"a\.png: PNG files carry no pixel spacing; give the pixel size"):
        read_image(tmp_path / "a.png")


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "P", "LA"])
def test_colour_png_is_refused(tmp_path, mode):
    Image.new(mode, (8, 8)).save(tmp_path / "c.png")
    with pytest.raises(InputError, match=rf"c\.png: is a colour image \(mode {mode}\)"):
        read_image(tmp_path / "c.png", pixel_mm=0.1)


def test_other_bad_files_are_refused_naming_the_file(tmp_path, make_dicom, pixels):
    (tmp_path / "junk.png").write_bytes(b"not a png")
    (tmp_path / "junk.dcm").write_bytes(b"not a dicom")
    (tmp_path / "notes.txt").write_text("hello")
    cases = {
        "junk.png": "cannot read as PNG",
        "junk.dcm": "cannot read as DICOM",
        "notes.txt": "not a PNG or DICOM file",
        "missing.png": "no such file",
    }
    frames = np.stack([pixels, pixels])
    make_dicom(tmp_path / "tomo.dcm", frames.reshape(-1, 30), NumberOfFrames=2, Rows=40, PixelSpacing=[0.1, 0.1])
    cases["tomo.dcm"] = "has 2 frames"
    make_dicom(tmp_path / "rgb.dcm", pixels, photometric="RGB", PixelSpacing=[0.1, 0.1])
    cases["rgb.dcm"] = "DICOM image is RGB"
    for name, message in cases.items():
        with pytest.raises(InputError, match=message) as error:
            read_image(tmp_path / name, pixel_mm=0.1)
        assert str(error.value).startswith(f"{tmp_path / name}: ") and "\n" not in str(error.value)


def test_png_cannot_be_written_as_dicom(tmp_path, pixels):
    write_png(tmp_path / "a.png", pixels)
    image = read_image(tmp_path / "a.png", pixel_mm=0.1)
    with pytest.raises(InputError, match="not a DICOM file; write PNG \\(file_format .png.\\)"):
        write_dicom(tmp_path / "a.dcm", image, pixels, "x")


@pytest.mark.parametrize(
    "name, expected",
    [
        ("0_L-CC.png", ("0", "L", "CC")),
        ("exam-12_r_mlo.dcm", ("exam-12", "R", "MLO")),
        ("A.B.RCC.png", ("A.B", "R", "CC")),
        ("scan.png", None),
        ("L-CC.png", None),
    ],
)
def test_view_from_name(name, expected):
    assert view_from_name(name) == expected
