"""One image perturbed at every cut-off and in every region: read -> filter -> ROI weight -> blend.

This is the one perturbation path. ``perceptiongap perturb`` writes what it yields, ``compose``
lays out what it yields for the four views of an exam, and ``predict`` hands what it yields to the
network (as float32), so the network sees exactly the pixels that the written images hold.

:func:`perturb_image` reads the image (DICOM or PNG) and low-pass filters it at every cut-off
from one forward FFT (:func:`~perceptiongap.perturb.filters.lowpass`). The returned
:class:`PerturbedImage` then gives each (region, cut-off) version: the filtered image itself for
the ``entire`` scheme; for the ROI schemes the blend ``original * (1 - w) + filtered * w`` with the
weight ``w`` of :func:`~perceptiongap.perturb.roi.scheme_weight` (1 inside the union of one
annotator's boxes for ``roi_interior``, outside for ``roi_exterior``, with an optional soft edge).
The unperturbed version (cut-off ``inf``) is the image as read, whatever the region.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from perceptiongap.errors import InputError
from perceptiongap.perturb.filters import VARIANTS, lowpass
from perceptiongap.perturb.images import Mammogram, read_image
from perceptiongap.perturb.roi import RoiBox, blend, check_box, scheme_weight
from perceptiongap.vocabulary import SCHEMES

__all__ = ["ENTIRE", "PerturbedImage", "Region", "perturb_image"]


@dataclass(frozen=True)
class Region:
    """Where the filter applies: ``entire`` (everywhere), or inside (``roi_interior``) or
    outside (``roi_exterior``) the union of one annotator's ``boxes`` on this view.

    An ROI region without boxes on this view filters nothing (interior) or everything (exterior).
    """

    scheme: str = "entire"
    annotator: str = ""
    boxes: tuple[RoiBox, ...] = ()

    def __post_init__(self) -> None:
        if self.scheme not in SCHEMES:
            raise InputError(f"{self.scheme!r} is not one of {', '.join(SCHEMES)}", source="scheme")
        if self.scheme == "entire" and self.boxes:
            raise InputError("the entire scheme takes no ROI boxes; use roi_interior or roi_exterior", source="scheme")
        object.__setattr__(self, "boxes", tuple(self.boxes))


#: The whole image filtered.
ENTIRE = Region()


class PerturbedImage:
    """One image filtered once at every cut-off; gives each (region, cut-off) version.

    Attributes: ``original`` (the :class:`~perceptiongap.perturb.images.Mammogram` as read:
    pixels (H, W) in the file's dtype, bright = dense, and ``pixel_mm`` (row, column) in mm),
    ``cutoffs_per_mm`` and ``regions`` (what iteration yields, in that order), ``variant``,
    ``feather_mm``, and ``filtered``: the read-only stack (len(cutoffs), H, W) of the whole image
    filtered at each cut-off (``uint16`` in the 12-bit range for the release variant, the input's
    dtype for the physical one).
    """

    def __init__(
        self,
        original: Mammogram,
        cutoffs_per_mm: tuple[float, ...],
        filtered: np.ndarray,
        *,
        regions: tuple[Region, ...],
        variant: str,
        feather_mm: float,
    ):
        self.original = original
        self.cutoffs_per_mm = cutoffs_per_mm
        self.filtered = filtered
        self.regions = regions
        self.variant = variant
        self.feather_mm = feather_mm
        self._layer = {cutoff: index for index, cutoff in enumerate(cutoffs_per_mm)}
        # The weight of the last ROI region asked for: iteration goes region by region, so one is
        # enough, and keeping every region's (H, W) float32 weight would cost memory for nothing.
        self._last_weight: tuple[Region, np.ndarray] | None = None

    def weight(self, region: Region) -> np.ndarray:
        """The filtered image's weight ``w`` (H, W) float32 in [0, 1] in the region's blend."""
        if self._last_weight is not None and self._last_weight[0] == region:
            return self._last_weight[1]
        try:
            weight = scheme_weight(self.original.pixels.shape, region.boxes, region.scheme, self.original.pixel_mm,
                                   self.feather_mm)
        except InputError as error:
            raise InputError(str(error), source=self.original.source) from None
        self._last_weight = (region, weight)
        return weight

    def pixels(self, cutoff_per_mm: float, region: Region = ENTIRE) -> np.ndarray:
        """The version at one of :attr:`cutoffs_per_mm` in ``region``: (H, W), dtype of :attr:`filtered`."""
        try:
            layer = self.filtered[self._layer[float(cutoff_per_mm)]]
        except KeyError:
            raise InputError(f"cut-off {cutoff_per_mm!r} was not filtered; choose from {list(self.cutoffs_per_mm)}",
                             source="cutoff_per_mm") from None
        if region.scheme == "entire" or math.isinf(cutoff_per_mm):
            return layer
        return blend(self.original.pixels, layer, self.weight(region))

    def __iter__(self) -> Iterator[tuple[Region, float, np.ndarray]]:
        """``(region, cutoff, pixels)`` for every region of :attr:`regions`, then every cut-off."""
        for region in self.regions:
            for cutoff in self.cutoffs_per_mm:
                yield region, cutoff, self.pixels(cutoff, region)

    def __len__(self) -> int:
        return len(self.regions) * len(self.cutoffs_per_mm)


def perturb_image(
    source: str | Path | Mammogram,
    cutoffs_per_mm: Sequence[float],
    *,
    pixel_mm: float | Sequence[float] | None = None,
    variant: str = "physical",
    regions: Sequence[Region] = (ENTIRE,),
    feather_mm: float = 0.0,
    fft_workers: int = -1,
) -> PerturbedImage:
    """Read an image and low-pass filter it at every cut-off (one forward FFT); see the module docstring.

    Parameters
    ----------
    source : path or Mammogram
        A DICOM or 8/16-bit greyscale PNG file (read with :func:`~perceptiongap.perturb.read_image`),
        or an image already read.
    cutoffs_per_mm : sequence of float
        Gaussian cut-offs ``D0`` in cycles/mm (``inf`` = unperturbed), in the order wanted; at
        least one. (Validate a user's list first with :func:`perceptiongap.vocabulary.validate_cutoffs`.)
    pixel_mm : float or (row_mm, col_mm), optional
        Pixel size in mm for files that carry none (PNG); DICOM spacing wins.
    variant : "physical" or "release"
        The filter (:mod:`perceptiongap.perturb.filters`).
    regions : sequence of Region
        Where the filter applies; iteration yields every region at every cut-off.
    feather_mm : float
        Width in mm of the ROI regions' soft edge (0 = hard edge).
    fft_workers : int
        FFT threads (``scipy.fft`` semantics; -1 = all cores, 1 inside a pool of processes).

    Returns
    -------
    PerturbedImage
        Iterate for ``(region, cutoff, pixels)``; ``pixels`` is (H, W), ``uint16`` in the 12-bit
        range for the release variant and the input's dtype (``uint8`` or ``uint16`` for PNG) for
        the physical one; ``.original.pixel_mm`` is the pixel size. Treat the arrays as read-only.

    Raises
    ------
    InputError
        Naming the file: it cannot be read, a cut-off is not positive or cannot be represented at
        this pixel size, a box lies outside the image; or naming the field: an unknown variant.
    """
    if variant not in VARIANTS:
        raise InputError(f"{variant!r} is not one of {', '.join(VARIANTS)}", source="variant")
    if not (math.isfinite(feather_mm) and feather_mm >= 0):
        raise InputError(f"{feather_mm!r} is not a non-negative number of mm", source="feather_mm")
    cutoffs = tuple(float(cutoff) for cutoff in cutoffs_per_mm)
    if not cutoffs:
        raise InputError("no cut-offs given", source="cutoffs_per_mm")
    original = source if isinstance(source, Mammogram) else read_image(source, pixel_mm)
    regions = tuple(regions)
    try:
        for region in regions:
            for box in region.boxes:
                check_box(box, original.pixels.shape)
        filtered = lowpass(original.pixels, original.pixel_mm, cutoffs, variant=variant, workers=fft_workers)
    except InputError as error:
        raise InputError(str(error), source=original.source) from None
    filtered.flags.writeable = False
    return PerturbedImage(original, cutoffs, filtered, regions=regions, variant=variant, feather_mm=feather_mm)
