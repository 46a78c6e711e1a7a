"""``perceptiongap perturb`` and ``perceptiongap compose``: the perturbation stage from the shell."""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import typer

from perceptiongap.cli import app
from perceptiongap.cli.progress import progress_callback
from perceptiongap.vocabulary import DEFAULT_CUTOFFS_PER_MM, parse_cutoffs

#: The default cut-offs as the command line writes them: "inf,6,4.5,3,2,1.5,1,0.5,0.25".
DEFAULT_CUTOFFS_TEXT = ",".join(f"{cutoff:g}" for cutoff in DEFAULT_CUTOFFS_PER_MM)


def pixel_mm_option(text: str | None) -> float | tuple[float, float] | None:
    """``--pixel-mm`` text (0.07 or ROWxCOL) as the library takes it; None stays None."""
    from perceptiongap.perturb.filters import parse_pixel_mm

    return None if text is None else parse_pixel_mm(text, source="--pixel-mm")


@contextlib.contextmanager
def _warnings_as_lines() -> Iterator[None]:
    """Collect warnings and print them as ``warning: ...`` lines once the work is done."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        finally:
            messages = list(dict.fromkeys(str(w.message) for w in caught))
            for message in messages[:20]:
                print(f"warning: {message}", file=sys.stderr)
            if len(messages) > 20:
                print(f"warning: ... and {len(messages) - 20} more", file=sys.stderr)


@app.command("perturb")
def perturb_command(
    inputs: list[Path] = typer.Argument(..., help="PNG or DICOM files, or folders searched recursively."),
    out: Path = typer.Option(..., "--out", help="Output folder; holds manifest.csv."),
    cutoffs_per_mm: str = typer.Option(
        DEFAULT_CUTOFFS_TEXT, "--cutoffs-per-mm",
        help="Gaussian cut-offs D0 in cycles/mm, comma-separated; inf = unperturbed.",
    ),
    variant: str = typer.Option("physical", "--variant", help="physical (cycles/mm per axis, keeps dtype/range) or release (the authors' exact algorithm)."),
    pixel_mm: str | None = typer.Option(None, "--pixel-mm", help="Pixel size in mm (0.07 or ROWxCOL) for files without spacing, e.g. PNG."),
    rois: Path | None = typer.Option(None, "--rois", help="ROI boxes (CSV or JSON: exam, view, annotator, x0, y0, x1, y1)."),
    scheme: str = typer.Option("entire", "--scheme", help="entire, roi_interior or roi_exterior."),
    feather_mm: float = typer.Option(0.0, "--feather-mm", help="Soft ROI edge width in mm (0 = hard edge)."),
    file_format: str = typer.Option("png", "--format", help="png (8/16-bit greyscale) or dicom (inputs must be DICOM)."),
    workers: int = typer.Option(1, "--workers", min=1, help="Images processed at once (threads); each FFT already uses every core."),
    preview: bool = typer.Option(False, "--preview", help="Also write OUT/preview.png and .svg: the first input at every severity."),
    force: bool = typer.Option(False, "--force", help="Rewrite outputs that an earlier run made with other settings."),
) -> None:
    """Low-pass filter mammograms at every cut-off; resumable (re-run to continue)."""
    from perceptiongap.locks import output_lock
    from perceptiongap.perturb import perturb_files, read_rois, write_input_preview
    from perceptiongap.perturb.batch import check_output_folder

    cutoffs = parse_cutoffs(cutoffs_per_mm, source="--cutoffs-per-mm")
    spacing = pixel_mm_option(pixel_mm)
    boxes = read_rois(rois) if rois is not None else None
    check_output_folder(out)
    # One lock over the images and the preview (perturb_files takes it again, re-entrantly).
    with _warnings_as_lines(), output_lock(out, what="output folder"):
        with progress_callback("perturb") as progress:
            table = perturb_files(
                inputs,
                out,
                cutoffs_per_mm=cutoffs,
                variant=variant,
                pixel_mm=spacing,
                rois=boxes,
                scheme=scheme,
                feather_mm=feather_mm,
                file_format=file_format,
                workers=workers,
                force=force,
                progress=progress,
            )
        if preview:
            written = write_input_preview(inputs, out, cutoffs_per_mm=cutoffs, variant=variant, pixel_mm=spacing)
            print(f"preview: {', '.join(str(p) for p in written)}")
    print(f"{len(table)} outputs in {out} (manifest: {out / 'manifest.csv'})")


@app.command("compose")
def compose_command(
    inputs: list[Path] = typer.Argument(..., help="The four views of each exam: files or folders (EXAM_L-CC.png, ... or DICOM)."),
    out: Path = typer.Option(..., "--out", help="Output folder: OUT/EXAM/cutoff-D0.png and manifest.csv."),
    cutoffs_per_mm: str = typer.Option(
        DEFAULT_CUTOFFS_TEXT, "--cutoffs-per-mm", help="Cut-offs in cycles/mm, comma-separated; inf = unperturbed."
    ),
    variant: str = typer.Option("physical", "--variant", help="physical or release."),
    pixel_mm: str | None = typer.Option(None, "--pixel-mm", help="Pixel size in mm for files without spacing."),
    gap_px: int = typer.Option(0, "--gap-px", min=0, help="Background band between the four views, in pixels."),
    force: bool = typer.Option(False, "--force", help="Rewrite composites that an earlier run made with other settings."),
) -> None:
    """The reading composite of each exam (right breast left, CC on top) at each severity."""
    from perceptiongap.perturb.batch import compose_files

    cutoffs = parse_cutoffs(cutoffs_per_mm, source="--cutoffs-per-mm")
    with _warnings_as_lines():
        with progress_callback("compose") as progress:
            table = compose_files(
                inputs,
                out,
                cutoffs_per_mm=cutoffs,
                variant=variant,
                pixel_mm=pixel_mm_option(pixel_mm),
                gap_px=gap_px,
                force=force,
                progress=progress,
            )
    print(f"{len(table)} composites in {out} (manifest: {out / 'manifest.csv'})")
