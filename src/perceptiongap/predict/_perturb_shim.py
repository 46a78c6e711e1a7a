"""TEMPORARY stand-in for the perturbation engine (issue 4), until it is merged into main.

Everything `predict` needs from `perceptiongap.perturb` is imported through this one module, so
that the switch to the real engine touches one place. Delete this file after the merge.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from perceptiongap.errors import InputError


def lowpass(image: np.ndarray, pixel_mm, cutoffs_per_mm, variant: str = "physical") -> np.ndarray:
    """Physical Gaussian low-pass, (len(cutoffs), H, W) float32; inf = unperturbed."""
    if variant != "physical":
        raise NotImplementedError("the shim has only the physical variant")
    height, width = image.shape
    row_mm, col_mm = np.broadcast_to(np.asarray(pixel_mm, dtype=float), (2,))
    spectrum = np.fft.rfft2(image.astype(np.float32))
    fy = np.fft.fftfreq(height, d=row_mm)[:, None]
    fx = np.fft.rfftfreq(width, d=col_mm)[None, :]
    out = np.empty((len(cutoffs_per_mm), height, width), dtype=np.float32)
    for index, cutoff in enumerate(cutoffs_per_mm):
        if np.isinf(cutoff):
            out[index] = image
        else:
            out[index] = np.fft.irfft2(spectrum * np.exp(-(fy**2 + fx**2) / (2 * cutoff**2)), s=(height, width))
    return out


def read_image(path: str | Path, pixel_mm: float | None = None) -> tuple[np.ndarray, float]:
    """A grey-scale PNG and its pixel spacing (required)."""
    if pixel_mm is None:
        raise InputError("no pixel spacing: give pixel_mm", source=path)
    try:
        with Image.open(path) as image:
            return np.asarray(image), float(pixel_mm)
    except (OSError, ValueError) as error:
        raise InputError(f"cannot read image: {error}", source=path) from None


def read_rois(path: str | Path) -> pd.DataFrame:
    """ROI boxes, CSV with exam, view, annotator, x0, y0, x1, y1 (pixels, end exclusive)."""
    return pd.read_csv(path, dtype={"exam": str, "view": str, "annotator": str})


def roi_mask(shape: tuple[int, int], boxes: np.ndarray) -> np.ndarray:
    """Union of boxes (k, 4: x0, y0, x1, y1) as a boolean (H, W) mask."""
    mask = np.zeros(shape, dtype=bool)
    for x0, y0, x1, y1 in np.asarray(boxes, dtype=int).reshape(-1, 4):
        mask[y0:y1, x0:x1] = True
    return mask
