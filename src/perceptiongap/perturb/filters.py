"""Gaussian low-pass filtering of a 2-D image at several cut-offs, in cycles per millimetre.

Two variants (METHOD.md §1):

``"physical"`` (default)
    The mask is ``exp(-(fy**2 + fx**2) / (2 * D0**2))`` with ``fy``, ``fx`` the true spatial
    frequencies of each axis in cycles/mm (``fftfreq(n, d=pixel_mm)``), so the filter is
    isotropic on the breast for any image shape and for non-square pixels. The output keeps the
    input's dtype and intensity range: the mean is unchanged, and integer images are rounded and
    clipped to their dtype.
``"release"``
    The authors' algorithm, reproduced exactly: an isotropic mask in *index* units of radius
    ``r = D0 * min(H, W) * pixel_mm`` centred on the zero frequency, then min-max normalisation of
    each output to [0, 1], times 4095, truncated to ``uint16`` (a 12-bit image).

Both are linear before their final cast, so the forward transform is computed once per image
(real FFT, float32) and reused for every cut-off; each mask is separable and is applied as two
1-D factors into one reusable half-plane buffer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import scipy.fft

from perceptiongap.errors import InputError
from perceptiongap.vocabulary import PAPER_CUTOFFS_PER_MM

__all__ = ["PIXEL_MM_RANGE", "RELEASE_FULL_SCALE", "VARIANTS", "Variant", "lowpass", "parse_pixel_mm", "pixel_size_mm"]

Variant = Literal["physical", "release"]
VARIANTS: tuple[str, ...] = ("physical", "release")

#: Full scale of the release variant's output (12-bit).
RELEASE_FULL_SCALE = 4095

#: Pixel sizes accepted, in mm: from 1 nm (well below microscopy's) to 1 m. Outside it a size is a
#: typo, and a PNG cannot record it (its pHYs chunk holds whole pixels per metre in 32 bits).
PIXEL_MM_RANGE: tuple[float, float] = (1e-6, 1e3)


def _in_range(value: float) -> bool:
    return bool(np.isfinite(value) and PIXEL_MM_RANGE[0] <= value <= PIXEL_MM_RANGE[1])


def pixel_size_mm(pixel_mm: float | Sequence[float]) -> tuple[float, float]:
    """``(row_mm, col_mm)`` from a scalar or a pair; refuses sizes that are not positive and finite, or outside
    :data:`PIXEL_MM_RANGE`."""
    values = np.atleast_1d(np.asarray(pixel_mm, dtype=float))
    if values.shape not in ((1,), (2,)):
        raise InputError(f"pixel size must be one number or a (row_mm, col_mm) pair, got {pixel_mm!r}")
    if not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise InputError(f"pixel size must be positive and finite, got {pixel_mm!r} mm")
    if not all(_in_range(v) for v in values):
        low, high = PIXEL_MM_RANGE
        shown = "x".join(f"{v:g}" for v in values)
        raise InputError(f"pixel size {shown} mm is outside {low:g} to {high:g} mm")
    row_mm, col_mm = (values[0], values[0]) if values.size == 1 else values
    return float(row_mm), float(col_mm)


def parse_pixel_mm(text: str, *, source: str = "pixel_mm") -> float | tuple[float, float]:
    """A pixel size in mm from text: ``0.07`` (square) -> 0.07, ``0.07x0.065`` (row x column) -> (0.07, 0.065).

    Refuses anything else, or a size that is not positive and finite or lies outside :data:`PIXEL_MM_RANGE`,
    with an InputError naming ``source``.
    """
    try:
        values = tuple(float(part) for part in str(text).lower().split("x"))
    except ValueError:
        values = ()
    if len(values) not in (1, 2) or not all(np.isfinite(v) and v > 0 for v in values):
        raise InputError(f"{text!r} is not a pixel size in mm like 0.07 or 0.07x0.065", source=source)
    if not all(_in_range(v) for v in values):
        low, high = PIXEL_MM_RANGE
        raise InputError(f"{text!r} mm is outside the pixel sizes {low:g} to {high:g} mm", source=source)
    return values[0] if len(values) == 1 else (values[0], values[1])


def _as_cutoffs(cutoffs_per_mm: float | Sequence[float]) -> np.ndarray:
    cutoffs = np.atleast_1d(np.asarray(cutoffs_per_mm, dtype=float))
    if cutoffs.ndim != 1 or cutoffs.size == 0:
        raise InputError(f"cut-offs must be a non-empty list of numbers, got {cutoffs_per_mm!r}")
    bad = np.isnan(cutoffs) | (cutoffs <= 0)
    if bad.any():
        raise InputError(
            f"cut-off {cutoffs[bad][0]:g} cycles/mm is not positive (use inf for the unperturbed image)"
        )
    return cutoffs


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 2:
        raise InputError(f"image must be 2-D (H, W), got shape {image.shape}")
    if min(image.shape) < 2:
        raise InputError(f"image must be at least 2 x 2 pixels, got {image.shape}")
    if image.dtype == bool or not (np.issubdtype(image.dtype, np.integer) or np.issubdtype(image.dtype, np.floating)):
        raise InputError(f"image must hold integer or float pixels, got dtype {image.dtype}")
    if np.issubdtype(image.dtype, np.floating) and not np.all(np.isfinite(image)):
        raise InputError("image holds NaN or infinite pixels")
    return image


def _axis_factors(
    shape: tuple[int, int], cutoff: float, variant: str, row_mm: float, col_mm: float, real_dtype: np.dtype
) -> tuple[np.ndarray, np.ndarray]:
    """The separable mask as ``(rows (H, 1), cols (1, W//2 + 1))`` on the rfft2 half-plane."""
    height, width = shape
    if variant == "physical":
        fy = scipy.fft.fftfreq(height, d=row_mm)
        fx = scipy.fft.rfftfreq(width, d=col_mm)
        scale = 2.0 * cutoff**2
    else:
        # Signed frequency index k = fftfreq(n) * n: after fftshift the zero frequency sits at
        # index n // 2 = int(n / 2), the release's centre pixel, so |k| is its index distance.
        fy = np.fft.fftfreq(height, d=1.0 / height)
        fx = np.fft.rfftfreq(width, d=1.0 / width)
        radius = cutoff * min(height, width) * row_mm
        scale = 2.0 * radius**2
    rows = np.exp(-(fy**2) / scale).astype(real_dtype)[:, None]
    cols = np.exp(-(fx**2) / scale).astype(real_dtype)[None, :]
    return rows, cols


def _refuse_unrepresentable(
    cutoffs: np.ndarray, shape: tuple[int, int], variant: str, row_mm: float, col_mm: float
) -> None:
    finite = cutoffs[np.isfinite(cutoffs)]
    if variant == "physical":
        nyquist = 1.0 / (2.0 * max(row_mm, col_mm))
        too_high = finite[finite > nyquist]
        if too_high.size:
            raise InputError(
                f"cut-off {too_high[0]:g} cycles/mm is above the Nyquist frequency {nyquist:g} cycles/mm "
                f"of {max(row_mm, col_mm):g} mm pixels: the image cannot represent it (leave it out of the cut-offs)"
            )
    else:
        if not np.isclose(row_mm, col_mm, rtol=1e-9, atol=0):
            raise InputError(
                f"the release variant assumes square pixels, got {row_mm:g} x {col_mm:g} mm; use variant 'physical'"
            )
        alpha = min(shape)
        too_high = finite[finite * alpha * row_mm >= alpha]
        if too_high.size:
            raise InputError(
                f"cut-off {too_high[0]:g} cycles/mm gives an index-space radius "
                f"{too_high[0] * alpha * row_mm:g} >= min(H, W) = {alpha} at {row_mm:g} mm pixels, "
                "which the release variant refuses"
            )


def _identity_for(image: np.ndarray, out_dtype: np.dtype, variant: str) -> np.ndarray:
    """The unperturbed image (cut-off ``inf``), refused if ``out_dtype`` cannot hold it exactly."""
    if variant == "release" and not np.array_equal(image.astype(out_dtype).astype(image.dtype), image):
        raise InputError(
            "cut-off inf (unperturbed) with the release variant returns the image as uint16, "
            f"but this {image.dtype} image is not a uint16 image"
        )
    return image


def lowpass(
    image: np.ndarray,
    pixel_mm: float | Sequence[float],
    cutoffs_per_mm: float | Sequence[float] = PAPER_CUTOFFS_PER_MM,
    variant: Variant = "physical",
    *,
    workers: int = -1,
) -> np.ndarray:
    """Gaussian low-pass filter ``image`` at every cut-off.

    Parameters
    ----------
    image : array (H, W)
        Integer or float pixels.
    pixel_mm : float or (row_mm, col_mm)
        Pixel size on the breast in mm.
    cutoffs_per_mm : float or sequence of floats
        Gaussian cut-offs ``D0`` in cycles/mm; ``inf`` (severity 0) returns the image unchanged.
        The default is the paper's eight, 6 ... 0.25.
    variant : "physical" or "release"
        See the module docstring.
    workers : int
        FFT threads (``scipy.fft`` semantics; -1 = all cores). Use 1 inside a pool of processes.

    Returns
    -------
    array (len(cutoffs), H, W)
        ``uint16`` (12-bit range) for the release variant; the input dtype for the physical one.

    Raises
    ------
    InputError
        Non-2-D or non-numeric image; a cut-off that is not positive or that the image cannot
        represent (physical: above the Nyquist frequency ``1 / (2 * pixel_mm)`` of either axis;
        release: index-space radius ``>= min(H, W)``, as the release asserts); a constant image
        with the release variant, whose min-max normalisation is then undefined.
    """
    if variant not in VARIANTS:
        raise InputError(f"variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
    image = _check_image(image)
    row_mm, col_mm = pixel_size_mm(pixel_mm)
    cutoffs = _as_cutoffs(cutoffs_per_mm)
    _refuse_unrepresentable(cutoffs, image.shape, variant, row_mm, col_mm)

    out_dtype = np.dtype(np.uint16) if variant == "release" else image.dtype
    result = np.empty((cutoffs.size, *image.shape), dtype=out_dtype)
    finite = np.isfinite(cutoffs)
    for index in np.flatnonzero(~finite):
        result[index] = _identity_for(image, out_dtype, variant)
    if not finite.any():
        return result

    if variant == "release" and image.min() == image.max():
        raise InputError("image is constant: the release variant's min-max normalisation is undefined")

    # Integers up to 16 bits and float32 are exact enough in float32, which halves memory and time;
    # float64 and wider integers keep float64.
    wide = image.dtype == np.float64 or (np.issubdtype(image.dtype, np.integer) and image.dtype.itemsize > 2)
    real_dtype = np.dtype(np.float64) if wide else np.dtype(np.float32)
    spectrum = scipy.fft.rfft2(image.astype(real_dtype, copy=False), workers=workers)
    buffer = np.empty_like(spectrum)
    round_to = np.iinfo(out_dtype) if variant == "physical" and np.issubdtype(out_dtype, np.integer) else None
    for index in np.flatnonzero(finite):
        rows, cols = _axis_factors(image.shape, cutoffs[index], variant, row_mm, col_mm, real_dtype)
        np.multiply(spectrum, rows, out=buffer)
        np.multiply(buffer, cols, out=buffer)
        filtered = scipy.fft.irfft2(buffer, s=image.shape, workers=workers, overwrite_x=True)
        if variant == "release":
            # Exactly the release's step 5: (x - min) / (max - min) * 4095, cast (truncation).
            low, high = filtered.min(), filtered.max()
            np.subtract(filtered, low, out=filtered)
            if high > low:  # only float underflow could flatten a non-constant image; keep 0, not NaN
                np.divide(filtered, high - low, out=filtered)
            np.multiply(filtered, RELEASE_FULL_SCALE, out=filtered)
        elif round_to is not None:
            np.rint(filtered, out=filtered)
            np.clip(filtered, round_to.min, round_to.max, out=filtered)
        np.copyto(result[index], filtered, casting="unsafe")
    return result
