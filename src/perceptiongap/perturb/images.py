"""Reading and writing mammograms: DICOM (pydicom) and 8- or 16-bit greyscale PNG (Pillow).

A read image is a :class:`Mammogram`: its pixels as a 2-D array in which bright means dense
(MONOCHROME1 DICOMs are inverted on read and inverted back on write), its pixel size on the breast
in mm, and what is known of its exam, laterality and view.

Pixel size: DICOM ``PixelSpacing`` (at the patient); else ``ImagerPixelSpacing`` (at the detector,
so uncorrected for magnification, with a warning); else the ``pixel_mm`` given by the caller.
PNG files carry no usable spacing, so they need ``pixel_mm``.

Exam and view: a file named ``EXAM_L-CC.png`` (also ``EXAM_R_MLO.dcm``, any case) names its exam
and view; DICOM headers give laterality (``ImageLaterality``, else ``Laterality``) and view
(``ViewPosition``), which win over the file name, and the exam (``AccessionNumber``, else
``StudyInstanceUID``) when the name does not give one.
"""

from __future__ import annotations

import copy
import hashlib
import io
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from perceptiongap.errors import InputError
from perceptiongap.files import atomic_write_bytes
from perceptiongap.perturb.filters import pixel_size_mm

__all__ = [
    "DICOM_SUFFIXES",
    "PNG_SUFFIXES",
    "Mammogram",
    "dicom_bytes",
    "identify",
    "is_dicom",
    "is_image_file",
    "png_bytes",
    "read_image",
    "sha256_hex",
    "view_from_name",
    "write_dicom",
    "write_png",
]

#: File suffixes read as DICOM; any other file whose bytes 128-131 are ``DICM`` is DICOM too.
DICOM_SUFFIXES = (".dcm", ".dicom")
PNG_SUFFIXES = (".png",)

#: The four standard screening views, in the names used throughout (laterality-view).

_VIEW_IN_NAME = re.compile(r"^(?P<exam>.+?)[_\-. ](?P<laterality>[LR])[_\- ]?(?P<view>CC|MLO)$", re.IGNORECASE)


@dataclass(frozen=True, eq=False)
class Mammogram:
    """One view: pixels (H, W), bright = dense, and what is known about it."""

    pixels: np.ndarray
    pixel_mm: tuple[float, float]
    source: Path
    exam: str | None = None
    laterality: str | None = None
    view_position: str | None = None
    #: DICOM PatientOrientation (column direction, row direction), e.g. ("A", "R"), if given.
    patient_orientation: tuple[str, ...] | None = None
    #: The DICOM header the pixels came from (None for PNG); used to write a derived DICOM.
    dataset: Any = None
    #: True when the file was MONOCHROME1 and the pixels were inverted on read.
    inverted: bool = False

    @property
    def view(self) -> str | None:
        """``"L-CC"`` etc. when laterality and view position are known."""
        if self.laterality is None or self.view_position is None:
            return None
        return f"{self.laterality}-{self.view_position}"


def is_dicom(path: str | Path) -> bool:
    """True for a ``.dcm``/``.dicom`` file or any file with the DICOM magic at byte 128."""
    path = Path(path)
    if path.suffix.lower() in DICOM_SUFFIXES:
        return True
    try:
        with path.open("rb") as handle:
            handle.seek(128)
            return handle.read(4) == b"DICM"
    except OSError:
        return False


def is_image_file(path: str | Path) -> bool:
    """True for the files :func:`read_image` reads (PNG or DICOM)."""
    return Path(path).suffix.lower() in PNG_SUFFIXES or is_dicom(path)


def view_from_name(path: str | Path) -> tuple[str, str, str] | None:
    """``(exam, laterality, view_position)`` from a name like ``0_L-CC.png``, else None."""
    match = _VIEW_IN_NAME.match(Path(path).stem)
    if match is None:
        return None
    return match["exam"], match["laterality"].upper(), match["view"].upper()


def read_image(path: str | Path, pixel_mm: float | Sequence[float] | None = None) -> Mammogram:
    """Read a DICOM or PNG mammogram; ``pixel_mm`` is used when the file carries no spacing.

    Raises :class:`InputError` naming the file for anything that is not one greyscale 2-D image
    with a known pixel size.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("no such file", source=path)
    if is_dicom(path):
        return _read_dicom(path, pixel_mm)
    if path.suffix.lower() in PNG_SUFFIXES:
        return _read_png(path, pixel_mm)
    raise InputError("not a PNG or DICOM file", source=path)


def _spacing_or_refuse(pixel_mm: float | Sequence[float] | None, path: Path, what: str) -> tuple[float, float]:
    if pixel_mm is None:
        raise InputError(f"{what}; give the pixel size in mm (pixel_mm)", source=path)
    try:
        return pixel_size_mm(pixel_mm)
    except InputError as error:
        raise InputError(str(error), source=path) from None


def _name_fields(path: Path) -> dict[str, str | None]:
    named = view_from_name(path)
    if named is None:
        return {"exam": None, "laterality": None, "view_position": None}
    return dict(zip(("exam", "laterality", "view_position"), named))


def _read_png(path: Path, pixel_mm: float | Sequence[float] | None) -> Mammogram:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as picture:
            if getattr(picture, "n_frames", 1) > 1:
                raise InputError(f"has {picture.n_frames} frames; perturb needs one 2-D image", source=path)
            mode = picture.mode
            if mode not in ("L", "I;16", "I;16B", "I;16L", "I"):
                kind = "colour" if mode in ("RGB", "RGBA", "P", "CMYK", "YCbCr", "LA", "PA") else "unsupported"
                raise InputError(
                    f"is a {kind} image (mode {mode}); perturb needs an 8- or 16-bit greyscale image", source=path
                )
            pixels = np.array(picture)
    except InputError:
        raise
    except (OSError, UnidentifiedImageError, ValueError) as error:
        raise InputError(f"cannot read as PNG ({error})", source=path) from None
    if pixels.ndim != 2:
        raise InputError(f"has shape {pixels.shape}; perturb needs one 2-D greyscale image", source=path)
    if pixels.dtype.byteorder == ">":
        pixels = pixels.astype(pixels.dtype.newbyteorder("="))
    if pixels.dtype == np.int32:  # Pillow's mode I; 16-bit data is stored as uint16
        if pixels.min() < 0 or pixels.max() > np.iinfo(np.uint16).max:
            raise InputError("holds values outside 0-65535; perturb reads 8- or 16-bit PNGs", source=path)
        pixels = pixels.astype(np.uint16)
    spacing = _spacing_or_refuse(pixel_mm, path, "PNG files carry no pixel spacing")
    return Mammogram(pixels=pixels, pixel_mm=spacing, source=path, **_name_fields(path))


def _header_text(dataset: Any, keyword: str) -> str | None:
    value = dataset.get(keyword)
    text = "" if value is None else str(value).strip()
    return text or None


def _dicom_spacing(dataset: Any, path: Path, pixel_mm: float | Sequence[float] | None) -> tuple[float, float]:
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        value = dataset.get(keyword)
        if value is None or len(value) == 0:
            continue
        try:
            spacing = pixel_size_mm([float(v) for v in value])
        except (InputError, ValueError, TypeError):
            raise InputError(f"{keyword} {list(value)!r} is not a valid pixel size", source=path) from None
        if keyword == "ImagerPixelSpacing":
            warnings.warn(
                f"{path}: no PixelSpacing; using ImagerPixelSpacing {spacing} mm, which is measured at the "
                "detector and not corrected for magnification",
                stacklevel=3,
            )
        return spacing
    return _spacing_or_refuse(pixel_mm, path, "has neither PixelSpacing nor ImagerPixelSpacing")


def _stored_range(dataset: Any) -> tuple[int, int]:
    bits = int(dataset.get("BitsStored", dataset.get("BitsAllocated", 16)))
    if int(dataset.get("PixelRepresentation", 0)) == 1:
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


def _invert(pixels: np.ndarray, stored_range: tuple[int, int]) -> np.ndarray:
    """MONOCHROME1 <-> MONOCHROME2 within the stored bit range (an involution)."""
    low, high = stored_range
    return (low + high - pixels.astype(np.int64)).astype(pixels.dtype)


def _read_dicom(path: Path, pixel_mm: float | Sequence[float] | None) -> Mammogram:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        dataset = pydicom.dcmread(path)
    except (InvalidDicomError, OSError, ValueError, EOFError) as error:
        raise InputError(f"cannot read as DICOM ({error})", source=path) from None
    if "PixelData" not in dataset:
        raise InputError("DICOM file has no pixel data", source=path)
    frames = int(dataset.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        raise InputError(f"DICOM file has {frames} frames; perturb needs one 2-D image", source=path)
    photometric = _header_text(dataset, "PhotometricInterpretation")
    if int(dataset.get("SamplesPerPixel", 1)) != 1 or photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise InputError(
            f"DICOM image is {photometric or 'of unknown photometric interpretation'}; "
            "perturb needs a MONOCHROME1 or MONOCHROME2 image",
            source=path,
        )
    try:
        pixels = np.array(dataset.pixel_array)
    except Exception as error:  # pydicom raises many types for undecodable pixel data
        syntax = dataset.file_meta.get("TransferSyntaxUID", "unknown") if hasattr(dataset, "file_meta") else "unknown"
        raise InputError(
            f"cannot decode DICOM pixel data (transfer syntax {getattr(syntax, 'name', syntax)}): {error}",
            source=path,
        ) from None
    if pixels.ndim != 2:
        raise InputError(f"DICOM pixel data has shape {pixels.shape}; perturb needs one 2-D image", source=path)
    inverted = photometric == "MONOCHROME1"
    if inverted:
        pixels = _invert(pixels, _stored_range(dataset))
    spacing = _dicom_spacing(dataset, path, pixel_mm)
    orientation = dataset.get("PatientOrientation")
    return Mammogram(
        pixels=pixels,
        pixel_mm=spacing,
        source=path,
        **_dicom_identity(dataset, path),
        patient_orientation=tuple(str(v) for v in orientation) if orientation else None,
        dataset=dataset,
        inverted=inverted,
    )


def _dicom_identity(dataset: Any, path: Path) -> dict[str, str | None]:
    named = _name_fields(path)
    laterality = (_header_text(dataset, "ImageLaterality") or _header_text(dataset, "Laterality") or "").upper()
    if laterality not in ("L", "R"):
        laterality = ""  # "B" (both) or "U" (unpaired) do not name one breast
    view_position = (_header_text(dataset, "ViewPosition") or "").upper()
    return {
        "exam": named["exam"] or _header_text(dataset, "AccessionNumber") or _header_text(dataset, "StudyInstanceUID"),
        "laterality": laterality or named["laterality"],
        "view_position": view_position or named["view_position"],
    }


def identify(path: str | Path) -> tuple[str | None, str | None]:
    """``(exam, view)`` of an image file without decoding its pixels (see the module docstring).

    ``view`` is ``"L-CC"`` etc., or None when laterality or view position is unknown.
    """
    path = Path(path)
    fields = _name_fields(path)
    if is_dicom(path):
        import pydicom
        from pydicom.errors import InvalidDicomError

        try:
            dataset = pydicom.dcmread(path, stop_before_pixels=True)
        except (InvalidDicomError, OSError, ValueError, EOFError) as error:
            raise InputError(f"cannot read as DICOM ({error})", source=path) from None
        fields = _dicom_identity(dataset, path)
    view = f"{fields['laterality']}-{fields['view_position']}" if fields["laterality"] and fields["view_position"] else None
    return fields["exam"], view


def png_bytes(pixels: np.ndarray, pixel_mm: Sequence[float] | None = None, *, source: str | Path | None = None) -> bytes:
    """Encode a 2-D uint8 or uint16 array (or integers within 0-65535) as a greyscale PNG.

    ``pixel_mm`` (row_mm, col_mm), when given, is recorded as the PNG's physical pixel size
    (``pHYs``), which viewers use; :func:`read_image` does not trust it and still asks for a size.
    """
    from PIL import Image

    pixels = np.asarray(pixels)
    if pixels.ndim != 2:
        raise InputError(f"cannot write an array of shape {pixels.shape} as a PNG", source=source)
    if pixels.dtype not in (np.uint8, np.uint16):
        if not np.issubdtype(pixels.dtype, np.integer) or pixels.min() < 0 or pixels.max() > 65535:
            raise InputError(
                f"{pixels.dtype} pixels in this range cannot be stored in a PNG; write DICOM (file_format 'dicom')",
                source=source,
            )
        pixels = pixels.astype(np.uint16)
    options = {}
    if pixel_mm is not None:
        row_mm, col_mm = pixel_size_mm(pixel_mm)
        options["dpi"] = (25.4 / col_mm, 25.4 / row_mm)
    buffer = io.BytesIO()
    # zlib level 1: twice as fast as the default 6 for about 5% larger mammogram files.
    Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, format="PNG", compress_level=1, **options)
    return buffer.getvalue()


def dicom_bytes(original: Mammogram, pixels: np.ndarray, derivation: str, *, bits_stored: int | None = None) -> bytes:
    """A derived DICOM: ``original``'s header with new pixels, UIDs and derivation description.

    The SOP Instance UID is new (derived deterministically from the original's and ``derivation``,
    so a re-run writes the same file); the Series Instance UID is derived from the original
    series and ``derivation``, so all views filtered the same way form one series. ImageType
    becomes ``DERIVED\\SECONDARY``. ``bits_stored`` (e.g. 12 for the release variant's min-max
    output) also drops the window settings, which no longer apply.
    """
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    if original.dataset is None:
        raise InputError("cannot write DICOM: the input was not a DICOM file; write PNG (file_format 'png')",
                         source=original.source)
    pixels = np.asarray(pixels)
    if pixels.shape != original.pixels.shape:
        raise ValueError(f"pixels {pixels.shape} do not match the original {original.pixels.shape}")
    dataset = copy.deepcopy(original.dataset)
    if bits_stored is not None:
        dataset.BitsAllocated = 16 if bits_stored > 8 else 8
        dataset.BitsStored = bits_stored
        dataset.HighBit = bits_stored - 1
        dataset.PixelRepresentation = 0
        for keyword in ("WindowCenter", "WindowWidth", "VOILUTSequence", "VOILUTFunction", "WindowCenterWidthExplanation"):
            if keyword in dataset:
                delattr(dataset, keyword)
    allocated = int(dataset.BitsAllocated)
    signed = int(dataset.get("PixelRepresentation", 0)) == 1
    stored_dtype = np.dtype(f"{'i' if signed else 'u'}{allocated // 8}")
    if original.inverted:
        pixels = _invert(pixels, _stored_range(dataset))
    stored = pixels.astype(stored_dtype.newbyteorder("<"))
    if not np.array_equal(stored, pixels):
        raise InputError(
            f"{pixels.dtype} pixels do not fit the DICOM's {allocated}-bit storage", source=original.source
        )

    dataset.PixelData = stored.tobytes()
    dataset["PixelData"].VR = "OW" if allocated > 8 else "OB"
    if "NumberOfFrames" in dataset:
        delattr(dataset, "NumberOfFrames")
    original_sop = str(dataset.get("SOPInstanceUID", original.source))
    original_series = str(dataset.get("SeriesInstanceUID", original.source))
    dataset.SOPInstanceUID = generate_uid(entropy_srcs=[original_sop, derivation])
    dataset.SeriesInstanceUID = generate_uid(entropy_srcs=[original_series, derivation])
    dataset.DerivationDescription = derivation[:1024]
    image_type = [str(v) for v in dataset.get("ImageType", [])]
    dataset.ImageType = ["DERIVED", "SECONDARY", *image_type[2:]]

    meta = getattr(dataset, "file_meta", None) or FileMetaDataset()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    if "SOPClassUID" in dataset:
        meta.MediaStorageSOPClassUID = dataset.SOPClassUID
    dataset.file_meta = meta
    buffer = io.BytesIO()
    try:
        pydicom.dcmwrite(buffer, dataset, enforce_file_format=True)
    except TypeError:  # pydicom < 3
        dataset.is_little_endian, dataset.is_implicit_VR = True, False
        pydicom.dcmwrite(buffer, dataset, write_like_original=False)
    return buffer.getvalue()


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def write_png(path: str | Path, pixels: np.ndarray, pixel_mm: Sequence[float] | None = None) -> str:
    """Write ``pixels`` as a PNG atomically; returns the file's SHA-256."""
    data = png_bytes(pixels, pixel_mm, source=path)
    atomic_write_bytes(path, data)
    return sha256_hex(data)


def write_dicom(
    path: str | Path, original: Mammogram, pixels: np.ndarray, derivation: str, *, bits_stored: int | None = None
) -> str:
    """Write a derived DICOM (see :func:`dicom_bytes`) atomically; returns the file's SHA-256."""
    data = dicom_bytes(original, pixels, derivation, bits_stored=bits_stored)
    atomic_write_bytes(path, data)
    return sha256_hex(data)
