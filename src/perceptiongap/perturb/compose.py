"""The reading composite: the four views of an exam as the one picture the readers saw.

METHOD.md §3: the right breast on the left, facing left; the left breast on the right, facing
right; CC views on the top row, MLO views below. The two breasts thus meet back to back at the
chest wall in the middle of the picture::

    +---------+---------+
    |  R-CC  ]|[  L-CC  |
    +---------+---------+
    |  R-MLO ]|[  L-MLO |
    +---------+---------+

A breast "faces" the side its nipple points to, away from the chest wall. Which way a stored
view faces is decided by, in order:

1. the DICOM ``PatientOrientation`` when it is given: its first value is the patient direction
   of increasing column index, so ``A`` (anterior, towards the nipple) means the view faces right
   and ``P`` (posterior, towards the chest wall) means it faces left;
2. otherwise the image itself: the chest-wall half of a mammogram holds more tissue (and, in an
   MLO view, the pectoral muscle), so the view faces away from its brighter half (pixels are
   bright = dense, as :func:`~perceptiongap.perturb.images.read_image` returns them).

Each view is mirrored left-right if it faces the wrong way (never rotated or flipped vertically).
Cells are as wide as the widest view of their column and as tall as the tallest view of their
row; each view is top-aligned against the middle of the picture, and the rest is ``background``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np

from perceptiongap.errors import InputError

__all__ = ["COMPOSITE_VIEWS", "Facing", "compose", "facing", "orient"]

Facing = Literal["left", "right"]
COMPOSITE_VIEWS: tuple[str, ...] = ("R-CC", "L-CC", "R-MLO", "L-MLO")


def facing(image: np.ndarray, patient_orientation: Sequence[str] | None = None) -> Facing:
    """The side a stored view faces: from ``PatientOrientation`` if it says, else from the tissue."""
    if patient_orientation:
        first = str(patient_orientation[0]).upper()
        if "A" in first and "P" not in first:
            return "right"
        if "P" in first and "A" not in first:
            return "left"
    image = np.asarray(image)
    half = image.shape[1] // 2
    left_mass = image[:, :half].astype(np.float64).mean()
    right_mass = image[:, image.shape[1] - half :].astype(np.float64).mean()
    return "right" if left_mass >= right_mass else "left"


def orient(image: np.ndarray, laterality: str, patient_orientation: Sequence[str] | None = None) -> np.ndarray:
    """``image`` mirrored if needed so a right breast (``"R"``) faces left and a left one right."""
    wanted: Facing = "left" if laterality.upper() == "R" else "right"
    return image if facing(image, patient_orientation) == wanted else image[:, ::-1]


def compose(
    views: Mapping[str, np.ndarray],
    orientations: Mapping[str, Sequence[str] | None] | None = None,
    *,
    gap_px: int = 0,
    background: float = 0,
) -> np.ndarray:
    """The four views (keys ``L-CC, L-MLO, R-CC, R-MLO``) as one reading picture (H, W).

    ``orientations`` maps a view to its DICOM ``PatientOrientation`` (or None); ``gap_px`` puts a
    band of ``background`` between the cells. The result has the views' common dtype.
    """
    missing = [view for view in COMPOSITE_VIEWS if view not in views]
    if missing:
        raise InputError(f"the reading composite needs the four views; missing {', '.join(missing)}")
    orientations = orientations or {}
    placed = {}
    for view in COMPOSITE_VIEWS:
        image = np.asarray(views[view])
        if image.ndim != 2:
            raise InputError(f"view {view} has shape {image.shape}; a view is a 2-D image")
        placed[view] = orient(image, view[0], orientations.get(view))
    dtype = np.result_type(*(placed[view].dtype for view in COMPOSITE_VIEWS))

    left_width = max(placed["R-CC"].shape[1], placed["R-MLO"].shape[1])
    right_width = max(placed["L-CC"].shape[1], placed["L-MLO"].shape[1])
    top_height = max(placed["R-CC"].shape[0], placed["L-CC"].shape[0])
    bottom_height = max(placed["R-MLO"].shape[0], placed["L-MLO"].shape[0])
    picture = np.full(
        (top_height + gap_px + bottom_height, left_width + gap_px + right_width), background, dtype=dtype
    )
    for view in COMPOSITE_VIEWS:
        image = placed[view]
        height, width = image.shape
        top = 0 if "CC" in view else top_height + gap_px
        # Right breast: flush with the middle from the left; left breast: from the right.
        left = left_width - width if view[0] == "R" else left_width + gap_px
        picture[top : top + height, left : left + width] = image
    return picture
