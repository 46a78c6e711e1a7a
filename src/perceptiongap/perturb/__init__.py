"""Perturbation: Gaussian low-pass filtering in cycles/mm, ROI schemes, image I/O, composites.

The first stage of the data flow (METHOD.md §1-§3): turn mammograms into the perturbed images
that readers and networks see.

- :func:`perturb_image`: the one perturbation path, read -> filter -> ROI weight -> blend, for one
  image at every cut-off and in every :class:`Region` (what ``perturb``, ``compose`` and
  ``predict`` all run).
- :func:`lowpass`: one image array at many cut-offs, ``variant="physical"`` or ``"release"``.
- :func:`read_rois`, :func:`roi_mask`, :func:`scheme_weight`, :func:`blend`: ROI schemes.
- :func:`read_image`, :func:`write_png`, :func:`write_dicom`: DICOM and PNG.
- :func:`compose`: the four views of an exam as one reading picture.
- :func:`perturb_files`, :func:`compose_files`: whole folders, resumable (what the CLI runs).
- :func:`preview_figure`, :func:`write_preview`, :func:`write_input_preview`: one view at every
  severity (imports matplotlib).
"""

from perceptiongap.perturb.batch import compose_files, find_images, perturb_files
from perceptiongap.perturb.compose import compose, facing, orient
from perceptiongap.perturb.filters import VARIANTS, lowpass, parse_pixel_mm, pixel_size_mm
from perceptiongap.perturb.images import (
    Mammogram,
    dicom_bytes,
    identify,
    png_bytes,
    read_image,
    view_from_name,
    write_dicom,
    write_png,
)
from perceptiongap.perturb.perturbation import ENTIRE, PerturbedImage, Region, perturb_image
from perceptiongap.perturb.preview import preview_figure, write_input_preview, write_preview
from perceptiongap.perturb.roi import (
    RoiBox,
    blend,
    check_box,
    group_rois,
    read_rois,
    roi_mask,
    scheme_weight,
)

__all__ = [
    "ENTIRE",
    "VARIANTS",
    "Mammogram",
    "PerturbedImage",
    "Region",
    "RoiBox",
    "blend",
    "check_box",
    "compose",
    "compose_files",
    "dicom_bytes",
    "facing",
    "find_images",
    "group_rois",
    "identify",
    "lowpass",
    "orient",
    "parse_pixel_mm",
    "perturb_files",
    "perturb_image",
    "pixel_size_mm",
    "png_bytes",
    "preview_figure",
    "read_image",
    "read_rois",
    "roi_mask",
    "scheme_weight",
    "view_from_name",
    "write_dicom",
    "write_input_preview",
    "write_png",
    "write_preview",
]
