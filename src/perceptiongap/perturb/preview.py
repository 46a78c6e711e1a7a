"""A preview of what each severity removes: one view at every severity, whole and zoomed.

Like the paper's Figure 1: the top row shows the whole view, unperturbed and then at each cut-off;
the bottom row shows the same square crop (``crop_mm`` on the breast) at full resolution. The
crop is outlined on the unperturbed view. Written as PNG (300 dpi) and SVG.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from perceptiongap.files import atomic_write_bytes
from perceptiongap.perturb.filters import lowpass, pixel_size_mm
from perceptiongap.perturb.images import read_image
from perceptiongap.vocabulary import PAPER_CUTOFFS_PER_MM, severity_mm

__all__ = ["default_crop_center", "preview_figure", "write_input_preview", "write_preview"]

#: Rows of the downsampled whole views in the figure (full resolution only for the crops).
_DISPLAY_ROWS = 600


def _downsample(image: np.ndarray, rows: int) -> tuple[np.ndarray, int]:
    """Block-mean ``image`` by an integer factor so it has at most about ``rows`` rows."""
    factor = max(1, int(np.ceil(image.shape[0] / rows)))
    height, width = (image.shape[0] // factor) * factor, (image.shape[1] // factor) * factor
    blocks = image[:height, :width].astype(np.float32).reshape(height // factor, factor, width // factor, factor)
    return blocks.mean(axis=(1, 3)), factor


def default_crop_center(image: np.ndarray) -> tuple[int, int]:
    """(row, col) of the centroid of the tissue: pixels brighter than the image's mean."""
    rows, cols = np.nonzero(image > image.mean())
    if rows.size == 0:
        return image.shape[0] // 2, image.shape[1] // 2
    return int(rows.mean()), int(cols.mean())


def preview_figure(
    image: np.ndarray,
    pixel_mm: float | Sequence[float],
    cutoffs_per_mm: Sequence[float] = PAPER_CUTOFFS_PER_MM,
    variant: str = "physical",
    *,
    crop_center: tuple[int, int] | None = None,
    crop_mm: float = 20.0,
    title: str | None = None,
):
    """A matplotlib ``Figure`` (2 rows x (1 + len(cutoffs)) panels); see the module docstring."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    row_mm, col_mm = pixel_size_mm(pixel_mm)
    cutoffs = [float(c) for c in cutoffs_per_mm if np.isfinite(c)]
    filtered = lowpass(image, (row_mm, col_mm), [np.inf, *cutoffs], variant=variant)
    labels = ["unperturbed"] + [f"{severity_mm(c):g} mm\n({c:g} cycles/mm)" for c in cutoffs]

    center_row, center_col = crop_center or default_crop_center(image)
    half_rows = max(1, int(round(crop_mm / row_mm / 2)))
    half_cols = max(1, int(round(crop_mm / col_mm / 2)))
    top = int(np.clip(center_row - half_rows, 0, max(0, image.shape[0] - 2 * half_rows)))
    left = int(np.clip(center_col - half_cols, 0, max(0, image.shape[1] - 2 * half_cols)))
    crop = (slice(top, top + 2 * half_rows), slice(left, left + 2 * half_cols))

    # One grey scale for every panel, so that lost contrast shows; the release variant rescales
    # every output to its own full range, so each of its panels gets its own scale.
    shared_range = np.percentile(filtered[0], [0.5, 99.5])
    columns = len(labels)
    whole_aspect = image.shape[0] * row_mm / (image.shape[1] * col_mm)
    figure = Figure(figsize=(1.6 * columns, 1.6 * whole_aspect + 1.9), layout="constrained")
    FigureCanvasAgg(figure)  # Agg, not pyplot: no GUI backend and no global figure state
    axes = figure.subplots(2, columns, squeeze=False, height_ratios=[whole_aspect, 1.0])
    for column, (panel, label) in enumerate(zip(filtered, labels)):
        low, high = shared_range if variant == "physical" else np.percentile(panel, [0.5, 99.5])
        small, factor = _downsample(panel, _DISPLAY_ROWS)
        axes[0, column].imshow(small, cmap="gray", vmin=low, vmax=high, aspect=row_mm / col_mm)
        axes[1, column].imshow(panel[crop], cmap="gray", vmin=low, vmax=high, aspect=row_mm / col_mm)
        axes[0, column].set_title(label, fontsize=7)
        for axis in axes[:, column]:
            axis.set_xticks([])
            axis.set_yticks([])
        if column == 0:
            outline = Rectangle(
                (left / factor - 0.5, top / factor - 0.5),
                2 * half_cols / factor,
                2 * half_rows / factor,
                fill=False,
                edgecolor="tab:orange",
                linewidth=0.8,
            )
            axes[0, 0].add_patch(outline)
            axes[1, 0].set_ylabel(f"{crop_mm:g} mm crop", fontsize=7)
    if title:
        figure.suptitle(title, fontsize=8)
    return figure


def write_preview(path: str | Path, image: np.ndarray, pixel_mm: float | Sequence[float], **options) -> list[Path]:
    """Write :func:`preview_figure` as ``path`` with suffixes ``.png`` (300 dpi) and ``.svg``."""
    import io

    figure = preview_figure(image, pixel_mm, **options)
    written = []
    for suffix, extra in ((".png", {"dpi": 300}), (".svg", {})):
        target = Path(path).with_suffix(suffix)
        buffer = io.BytesIO()
        figure.savefig(buffer, format=suffix[1:], **extra)
        atomic_write_bytes(target, buffer.getvalue())
        written.append(target)
    return written


def write_input_preview(
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    *,
    cutoffs_per_mm: Sequence[float] = PAPER_CUTOFFS_PER_MM,
    variant: str = "physical",
    pixel_mm: float | Sequence[float] | None = None,
) -> list[Path]:
    """The preview of the first image of ``inputs`` (as :func:`~perceptiongap.perturb.perturb_files`
    finds them) at its finite cut-offs, written as ``out_dir/preview.png`` and ``.svg``."""
    from perceptiongap.locks import output_lock
    from perceptiongap.perturb.batch import check_output_folder, find_images

    out_dir = Path(out_dir)
    check_output_folder(out_dir)
    with output_lock(out_dir, what="output folder"):
        first = find_images(inputs, exclude=out_dir)[0]
        image = read_image(first.path, pixel_mm)
        return write_preview(
            out_dir / "preview",
            image.pixels,
            image.pixel_mm,
            cutoffs_per_mm=[c for c in cutoffs_per_mm if np.isfinite(c)],
            variant=variant,
            title=f"{first.path.name}: {variant} variant",
        )
