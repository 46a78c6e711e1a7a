"""Regions of interest and the three filtering schemes (METHOD.md §2).

An ROI is a box in pixel coordinates of the stored image, drawn by one annotator on one view of
one exam: ``x`` is the column, ``y`` the row, the origin is the top-left pixel and the box covers
the half-open ranges ``x0 <= x < x1``, ``y0 <= y < y1`` (so its area is ``(x1 - x0) * (y1 - y0)``).

ROI files are CSV or JSON with the fields ``exam, view, annotator, x0, y0, x1, y1``; ``view`` is
``L-CC``, ``L-MLO``, ``R-CC`` or ``R-MLO``. A JSON file is a list of such objects (or an object
whose ``"rois"`` member is that list).

Schemes blend the original and the filtered image as ``original * (1 - w) + filtered * w``:
``entire`` (w = 1), ``roi_interior`` (w = 1 inside the union of the boxes, 0 outside) and
``roi_exterior`` (the reverse). With ``feather_mm > 0`` the edge is soft, and the soft band always
lies in the *filtered* region: the region a scheme keeps original stays exactly original.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from perceptiongap.errors import InputError
from perceptiongap.vocabulary import SCHEMES, VIEWS

__all__ = [
    "ROI_COLUMNS",
    "RoiBox",
    "annotators_by_exam",
    "blend",
    "check_box",
    "group_rois",
    "read_rois",
    "roi_mask",
    "scheme_weight",
]

ROI_COLUMNS: tuple[str, ...] = ("exam", "view", "annotator", "x0", "y0", "x1", "y1")


@dataclass(frozen=True)
class RoiBox:
    """One box, in pixels, half-open: columns ``x0 <= x < x1``, rows ``y0 <= y < y1``."""

    exam: str
    view: str
    annotator: str
    x0: int
    y0: int
    x1: int
    y1: int
    #: Where the box came from, e.g. ``rois.csv row 3``, for error messages.
    label: str = ""

    def name(self) -> str:
        where = f" ({self.label})" if self.label else ""
        return f"ROI exam {self.exam!r} view {self.view} annotator {self.annotator!r} [{self.x0}, {self.y0}, {self.x1}, {self.y1}]{where}"


def read_rois(path: str | Path) -> list[RoiBox]:
    """Read ROI boxes from CSV or JSON (chosen by suffix); refuses bad rows with one line."""
    path = Path(path)
    try:
        if path.suffix.lower() == ".json":
            records = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(records, Mapping):
                records = records.get("rois")
            if not isinstance(records, list) or not all(isinstance(r, Mapping) for r in records):
                raise InputError("a JSON ROI file must be a list of objects (or {\"rois\": [...]})", source=path)
            table = pd.DataFrame.from_records(records)
        else:
            table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except InputError:
        raise
    except (OSError, ValueError, pd.errors.ParserError) as error:
        raise InputError(f"cannot read ROI file ({error})", source=path) from None
    missing = [c for c in ROI_COLUMNS if c not in table.columns]
    if missing:
        raise InputError(f"missing column(s) {', '.join(repr(c) for c in missing)}", source=path)

    boxes = []
    for row, record in enumerate(table.to_dict("records"), start=1):
        where = f"row {row}"
        texts = {c: str(record[c]).strip() for c in ("exam", "view", "annotator")}
        for column, text in texts.items():
            if not text or text == "nan":
                raise InputError(f"{where}: column {column!r} is empty", source=path)
        view = texts["view"].upper()
        if view not in VIEWS:
            raise InputError(f"{where}: column 'view': {texts['view']!r} is not one of {', '.join(VIEWS)}", source=path)
        corners = {}
        for column in ("x0", "y0", "x1", "y1"):
            try:
                value = float(record[column])
            except (TypeError, ValueError):
                value = np.nan
            if not np.isfinite(value) or value != round(value):
                raise InputError(f"{where}: column {column!r}: {record[column]!r} is not a whole pixel index", source=path)
            corners[column] = int(value)
        boxes.append(RoiBox(texts["exam"], view, texts["annotator"], **corners, label=f"{path.name} {where}"))
    return boxes


def group_rois(boxes: Iterable[RoiBox]) -> dict[tuple[str, str, str], tuple[RoiBox, ...]]:
    """Boxes by ``(exam, view, annotator)``."""
    groups: dict[tuple[str, str, str], list[RoiBox]] = {}
    for box in boxes:
        groups.setdefault((box.exam, box.view, box.annotator), []).append(box)
    return {key: tuple(value) for key, value in groups.items()}


def annotators_by_exam(boxes: Iterable[RoiBox]) -> dict[str, tuple[str, ...]]:
    """The annotators who drew at least one box on each exam, sorted."""
    found: dict[str, set[str]] = {}
    for box in boxes:
        found.setdefault(box.exam, set()).add(box.annotator)
    return {exam: tuple(sorted(names)) for exam, names in found.items()}


def check_box(box: RoiBox, shape: tuple[int, int]) -> None:
    """Refuse a box with zero (or negative) area or that is not inside an image of ``shape``."""
    height, width = shape
    if box.x1 <= box.x0 or box.y1 <= box.y0:
        raise InputError(f"{box.name()} has zero area (needs x0 < x1 and y0 < y1)")
    if box.x0 < 0 or box.y0 < 0 or box.x1 > width or box.y1 > height:
        raise InputError(f"{box.name()} is outside the {width} x {height} (W x H) image")


def roi_mask(shape: tuple[int, int], boxes: Sequence[RoiBox]) -> np.ndarray:
    """Boolean (H, W) mask of the union of ``boxes`` (no boxes: all False)."""
    mask = np.zeros(shape, dtype=bool)
    for box in boxes:
        check_box(box, shape)
        mask[box.y0 : box.y1, box.x0 : box.x1] = True
    return mask


def scheme_weight(
    shape: tuple[int, int],
    boxes: Sequence[RoiBox],
    scheme: str,
    pixel_mm: float | Sequence[float] = 1.0,
    feather_mm: float = 0.0,
) -> np.ndarray:
    """Weight ``w`` (H, W) float32 of the filtered image in the blend, in [0, 1].

    ``feather_mm > 0`` ramps ``w`` linearly from 0 to 1 over ``feather_mm`` on the breast, measured
    into the filtered region from the region kept original (Euclidean distance, honouring
    non-square pixels), so the kept region stays exactly original.
    """
    from perceptiongap.perturb.filters import pixel_size_mm

    if scheme not in SCHEMES:
        raise InputError(f"scheme must be one of {', '.join(SCHEMES)}, got {scheme!r}")
    if not np.isfinite(feather_mm) or feather_mm < 0:
        raise InputError(f"feather must be a non-negative number of mm, got {feather_mm!r}")
    if scheme == "entire":
        return np.ones(shape, dtype=np.float32)
    inside = roi_mask(shape, boxes)
    filtered_region = inside if scheme == "roi_interior" else ~inside
    if feather_mm == 0 or not filtered_region.any() or filtered_region.all():
        return filtered_region.astype(np.float32)
    from scipy.ndimage import distance_transform_edt

    # Distance (mm) of each filtered pixel to the nearest kept pixel; kept pixels get 0.
    distance = distance_transform_edt(filtered_region, sampling=pixel_size_mm(pixel_mm))
    return np.minimum(distance / feather_mm, 1.0).astype(np.float32)


def blend(original: np.ndarray, filtered: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """``original * (1 - weight) + filtered * weight`` in ``filtered``'s dtype.

    ``filtered`` is (H, W) or (S, H, W) (one image per severity); ``weight`` is (H, W). Where the
    weight is 0 the original pixel is kept exactly (cast to ``filtered``'s dtype), where it is 1 the
    filtered one; integer results are rounded and clipped.
    """
    original = np.asarray(original)
    filtered = np.asarray(filtered)
    if original.shape != weight.shape or filtered.shape[-2:] != weight.shape:
        raise ValueError(f"shapes differ: original {original.shape}, filtered {filtered.shape}, weight {weight.shape}")
    out = np.empty_like(filtered)
    stack = out.reshape(-1, *weight.shape)
    work = np.float64 if filtered.dtype == np.float64 or original.dtype == np.float64 else np.float32
    keep = 1.0 - weight.astype(work)
    base = original.astype(work) * keep
    limits = np.iinfo(out.dtype) if np.issubdtype(out.dtype, np.integer) else None
    for index, layer in enumerate(filtered.reshape(-1, *weight.shape)):
        mixed = base + layer.astype(work) * weight
        if limits is not None:
            np.rint(mixed, out=mixed)
            np.clip(mixed, limits.min, limits.max, out=mixed)
        stack[index] = mixed
    return out
