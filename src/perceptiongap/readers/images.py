"""The images a reader sees: decoded, perturbed and stored once, at design time.

Each view of each (exam, severity) that some reader needs becomes two files in ``STUDY/images/``:
``<id>.png``, a 16-bit greyscale PNG (bright = dense), and ``<id>.json``, its sidecar (view,
laterality, which way it faces, rows and columns, pixel size, default window, window presets). The
server sends these bytes as they are. Ids are opaque (a hash); the database maps them to exam and
severity, which the sidecar does not reveal.

Decoding (server side, so the browser needs no DICOM support):

- DICOM with pydicom: the modality LUT (``RescaleSlope``/``RescaleIntercept`` or a LUT), then
  MONOCHROME1 inverted so that bright means dense, laterality (``ImageLaterality``/``Laterality``)
  and view (``ViewPosition``) checked against the exams file, the default window from
  ``WindowCenter``/``WindowWidth`` (inverted with the pixels for MONOCHROME1);
- PNG (8 or 16 bit) as :func:`perceptiongap.perturb.read_image` reads it; its default window is
  the range of the unperturbed image.

Perturbation goes through :func:`perturb_view`, the one adapter to the project's perturbation
function. Values that are whole numbers in 0-65535 are stored as they are; other values (a
negative intercept, a fractional slope) are mapped affinely onto 0-65535, and the sidecar's
``rescale`` gives the map back (``value = stored * slope + intercept``). Every severity of a view
shares the unperturbed view's mapping and default window (physical variant), so a perturbed image
is displayed exactly as its original would be.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from perceptiongap import perturb
from perceptiongap.errors import InputError
from perceptiongap.files import atomic_write_bytes, atomic_write_text

__all__ = [
    "IMAGE_FOLDER",
    "Decoded",
    "ImageJob",
    "WindowPreset",
    "decode_view",
    "image_id",
    "parse_window",
    "perturb_view",
    "prepare_exam",
    "sidecar",
]

IMAGE_FOLDER = "images"
_UINT16_MAX = 65535


@dataclass(frozen=True)
class WindowPreset:
    """A named window in the original image's values (modality units for DICOM)."""

    name: str
    center: float
    width: float


def parse_window(text: str, source: str = "--window") -> WindowPreset:
    """``NAME:CENTER:WIDTH`` -> :class:`WindowPreset` (one-line InputError otherwise)."""
    parts = text.split(":")
    try:
        if len(parts) != 3 or not parts[0].strip():
            raise ValueError
        center, width = float(parts[1]), float(parts[2])
    except ValueError:
        raise InputError(f"{text!r} is not NAME:CENTER:WIDTH, e.g. soft:2000:1500", source=source) from None
    if not (math.isfinite(center) and math.isfinite(width) and width > 0):
        raise InputError(f"{text!r}: centre must be finite and width positive", source=source)
    return WindowPreset(parts[0].strip(), center, width)


@dataclass(frozen=True)
class Decoded:
    """One view as readers will see it: values (H, W), bright = dense, and what is known of it."""

    values: np.ndarray
    pixel_mm: tuple[float, float]
    laterality: str | None
    view_position: str | None
    patient_orientation: tuple[str, ...] | None
    #: Default window (centre, width) in the units of ``values``, or None (use the range).
    window: tuple[float, float] | None


def image_id(seed: int, exam: str, severity_mm: float, view: str) -> str:
    """The opaque id of one stored image: 32 hex characters of a SHA-256."""
    return hashlib.sha256(f"image\0{seed}\0{exam}\0{severity_mm!r}\0{view}".encode()).hexdigest()[:32]


def _first_number(value) -> float | None:
    """The first of a DICOM value that may be multi-valued (``WindowCenter``), or None."""
    if value is None:
        return None
    try:
        if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
            value = value[0]
        number = float(value)
    except (TypeError, ValueError, IndexError):
        return None
    return number if math.isfinite(number) else None


def _decode_dicom(path: Path, pixel_mm) -> Decoded:
    from pydicom.pixels import apply_modality_lut

    mammogram = perturb.read_image(path, pixel_mm)  # checks, spacing, identity; pixels as stored (inverted if M1)
    dataset = mammogram.dataset
    stored = np.asarray(dataset.pixel_array)
    try:
        values = np.asarray(apply_modality_lut(stored, dataset))
    except Exception as error:  # pydicom raises several types for a malformed LUT
        raise InputError(f"cannot apply the DICOM modality LUT: {error}", source=path) from None
    center = _first_number(dataset.get("WindowCenter"))
    width = _first_number(dataset.get("WindowWidth"))
    window = (center, width) if center is not None and width is not None and width > 0 else None
    if mammogram.inverted:
        # MONOCHROME1: invert within the range the modality LUT maps the stored range onto.
        bits = int(dataset.get("BitsStored", dataset.get("BitsAllocated", 16)))
        signed = int(dataset.get("PixelRepresentation", 0)) == 1
        low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
        ends = np.asarray(apply_modality_lut(np.array([low, high], dtype=stored.dtype), dataset), dtype=np.float64)
        total = float(ends.min() + ends.max())
        values = (total - values.astype(np.float64)) if not np.issubdtype(values.dtype, np.integer) else (
            np.int64(round(total)) - values.astype(np.int64)
        )
        if window is not None:
            window = (total - window[0], window[1])
    return Decoded(
        values=values,
        pixel_mm=mammogram.pixel_mm,
        laterality=mammogram.laterality,
        view_position=mammogram.view_position,
        patient_orientation=mammogram.patient_orientation,
        window=window,
    )


def decode_view(path: str | Path, pixel_mm=None) -> Decoded:
    """Decode a DICOM or PNG view (see the module docstring); InputError naming the file if not."""
    path = Path(path)
    if perturb.images.is_dicom(path):
        return _decode_dicom(path, pixel_mm)
    mammogram = perturb.read_image(path, pixel_mm)
    return Decoded(
        values=mammogram.pixels,
        pixel_mm=mammogram.pixel_mm,
        laterality=mammogram.laterality,
        view_position=mammogram.view_position,
        patient_orientation=None,
        window=None,
    )


def perturb_view(
    values: np.ndarray, pixel_mm: Sequence[float], cutoffs_per_mm: Sequence[float], variant: str, source: Path
) -> np.ndarray:
    """The view perturbed at each cut-off by the project's one perturbation path: (len(cutoffs), H, W).

    ``values`` are the decoded view (modality units, bright = dense); they go through
    :func:`perceptiongap.perturb.perturb_image`, the function ``perturb``, ``compose`` and
    ``predict`` call, so that a reader sees exactly what a network sees.
    """
    view = perturb.images.Mammogram(pixels=values, pixel_mm=tuple(pixel_mm), source=Path(source))
    return perturb.perturb_image(view, list(cutoffs_per_mm), variant=variant).filtered


def _storage_map(values: np.ndarray) -> tuple[float, float]:
    """(slope, intercept) with ``value = stored * slope + intercept`` and stored in 0-65535."""
    low, high = float(values.min()), float(values.max())
    integral = np.issubdtype(values.dtype, np.integer) or bool(np.all(np.mod(values, 1) == 0))
    if integral and low >= 0 and high <= _UINT16_MAX:
        return 1.0, 0.0
    if integral and high - low <= _UINT16_MAX:
        return 1.0, low
    return (high - low) / _UINT16_MAX if high > low else 1.0, low


def _to_stored(values: np.ndarray, slope: float, intercept: float) -> np.ndarray:
    if slope == 1.0 and intercept == 0.0 and values.dtype in (np.uint8, np.uint16):
        return values.astype(np.uint16, copy=False)
    stored = np.rint((values.astype(np.float64) - intercept) / slope)
    return np.clip(stored, 0, _UINT16_MAX).astype(np.uint16)


def sidecar(
    view: str,
    facing: str,
    shape: tuple[int, int],
    pixel_mm: tuple[float, float],
    window: tuple[float, float],
    presets: Sequence[WindowPreset],
    rescale: tuple[float, float],
) -> dict[str, object]:
    """The JSON sidecar of a stored image; windows in stored pixel values (see the API doc)."""
    slope, intercept = rescale
    windows = [{"name": "default", "center": window[0], "width": window[1]}]
    windows += [
        {"name": p.name, "center": (p.center - intercept) / slope, "width": p.width / slope} for p in presets
    ]
    return {
        "view": view,
        "laterality": view[0],
        "view_position": view[2:],
        "facing": facing,
        "rows": int(shape[0]),
        "columns": int(shape[1]),
        "pixel_mm": [float(pixel_mm[0]), float(pixel_mm[1])],
        "bits_stored": 16,
        "window": {"center": window[0], "width": window[1]},
        "windows": windows,
        "rescale": {"slope": slope, "intercept": intercept},
    }


def _range_window(stored: np.ndarray) -> tuple[float, float]:
    low, high = float(stored.min()), float(stored.max())
    return (low + high) / 2.0, max(high - low, 1.0)


@dataclass(frozen=True)
class ImageJob:
    """One view of one exam to prepare at several (severity_mm, cutoff, image id) levels."""

    exam: str
    view: str
    source: str
    pixel_mm: object
    levels: tuple[tuple[float, float, str], ...]


def prepare_exam(
    jobs: Sequence[ImageJob],
    folder: Path,
    *,
    variant: str,
    presets: Sequence[WindowPreset],
    done: Callable[[str, str, int, int], None],
) -> None:
    """Prepare every level of each view job: write ``<id>.png`` and ``<id>.json`` atomically.

    ``done(image_id, sha256, rows, columns)`` is called after each image is on disk (the caller
    records it in the database, which makes preparation resumable).
    """
    for job in jobs:
        decoded = decode_view(job.source, job.pixel_mm)
        if decoded.laterality is not None and decoded.view_position is not None:
            header_view = f"{decoded.laterality}-{decoded.view_position}"
            if header_view != job.view and perturb.images.is_dicom(job.source):
                raise InputError(
                    f"the exams file says {job.view}, but the DICOM header says {header_view}", source=job.source
                )
        facing = perturb.facing(decoded.values, decoded.patient_orientation)
        slope, intercept = _storage_map(decoded.values)
        base = decoded.values
        if slope == 1.0 and intercept == 0.0 and base.dtype not in (np.uint8, np.uint16):
            base = base.astype(np.uint16)  # whole numbers in 0-65535: filter them as uint16 (rounded output)
        stack = perturb_view(base, decoded.pixel_mm, [cutoff for _, cutoff, _ in job.levels], variant, job.source)
        shared_window = None
        if decoded.window is not None:
            shared_window = ((decoded.window[0] - intercept) / slope, decoded.window[1] / slope)
        elif variant == "physical":
            shared_window = _range_window(_to_stored(decoded.values, slope, intercept))
        for (severity, cutoff, identifier), pixels in zip(job.levels, stack):
            # The release variant rescales each perturbed image to 0-4095: it gets its own window.
            stored = _to_stored(pixels, slope, intercept) if variant == "physical" or math.isinf(cutoff) else (
                pixels.astype(np.uint16)
            )
            rescale = (slope, intercept) if variant == "physical" or math.isinf(cutoff) else (1.0, 0.0)
            window = shared_window if (variant == "physical" or math.isinf(cutoff)) and shared_window else (
                _range_window(stored)
            )
            data = perturb.png_bytes(stored, decoded.pixel_mm, source=job.source)
            meta = sidecar(job.view, facing, stored.shape, decoded.pixel_mm, window, presets, rescale)
            atomic_write_bytes(folder / f"{identifier}.png", data)
            atomic_write_text(folder / f"{identifier}.json", json.dumps(meta, indent=1) + "\n")
            done(identifier, hashlib.sha256(data).hexdigest(), int(stored.shape[0]), int(stored.shape[1]))
