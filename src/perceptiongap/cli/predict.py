"""``perceptiongap predict`` (a network over every perturbation) and ``perceptiongap calibrate``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from perceptiongap.cli import app
from perceptiongap.cli.perturb import DEFAULT_CUTOFFS_TEXT, pixel_mm_option
from perceptiongap.cli.progress import console, progress_callback
from perceptiongap.vocabulary import parse_cutoffs


@app.command("predict")
def predict_command(
    model: Annotated[str, typer.Option(
        help="The network: 'package.module:function' or 'package.module:Class'.")],
    exams: Annotated[Path, typer.Option(
        help="CSV, one row per image: exam, view (L-CC, L-MLO, R-CC, R-MLO), path, optional pixel_mm.")],
    observer_group: Annotated[str, typer.Option(help="Observer group of the rows, e.g. 'gmic'.")],
    out: Annotated[Path, typer.Option(help="Observations to write (.parquet or .csv).")],
    observer: Annotated[str | None, typer.Option(
        help="Observer of the rows, e.g. the training seed (default: the model spec).")] = None,
    cutoffs_per_mm: Annotated[str, typer.Option(
        help="Gaussian cut-offs in cycles/mm, comma-separated; must include inf, the unperturbed image.",
    )] = DEFAULT_CUTOFFS_TEXT,
    rois: Annotated[Path | None, typer.Option(
        help="ROI boxes (CSV or JSON: exam, view, annotator, x0, y0, x1, y1) for the ROI schemes.")] = None,
    schemes: Annotated[str, typer.Option(help="Comma-separated: entire, roi_interior, roi_exterior.")] = "entire",
    batch_size: Annotated[int, typer.Option(min=1, help="Perturbed exams per call of the network.")] = 8,
    workers: Annotated[int, typer.Option(min=1, help="Local worker processes.")] = 1,
    cluster: Annotated[str | None, typer.Option(
        help="Dask: 'local:N' for a local cluster of N processes, or a scheduler address 'tcp://HOST:PORT'.")] = None,
    pixel_mm: Annotated[str | None, typer.Option(
        help="Pixel size in mm (0.07 or ROWxCOL) of images without one (PNG) where EXAMS gives none.")] = None,
    variant: Annotated[str, typer.Option(
        help="Low-pass filter: 'physical' (cycles/mm on the breast) or 'release' (the authors' code).")] = "physical",
    feather_mm: Annotated[float, typer.Option(help="Soft edge of the ROI schemes in mm (0 = hard edge).")] = 0.0,
    force: Annotated[bool, typer.Option("--force", help="Overwrite OUT and discard an unfinished run's rows.")] = False,
    flush_seconds: Annotated[float, typer.Option(
        hidden=True, help="Write finished rows to disk at least this often.")] = 10.0,
) -> None:
    """Run a network over every exam at every severity (and scheme); resumable; local or Dask."""
    from perceptiongap.predict import predict

    cutoffs = parse_cutoffs(cutoffs_per_mm, source="--cutoffs-per-mm")
    spacing = pixel_mm_option(pixel_mm)
    with progress_callback("predict") as bar:
        def progress(done: int, total: int) -> None:
            if done and not started:
                console.print(f"resuming: {done} of {total} exams already done")
            started.append(True)
            bar(done, total)

        started: list[bool] = []
        table = predict(
            model,
            exams,
            observer_group,
            out,
            observer=observer,
            cutoffs_per_mm=cutoffs,
            rois=rois,
            schemes=[s.strip() for s in schemes.split(",") if s.strip()],
            batch_size=batch_size,
            workers=workers,
            cluster=cluster,
            pixel_mm=spacing,
            variant=variant,
            feather_mm=feather_mm,
            force=force,
            progress=progress,
            flush_seconds=flush_seconds,
        )
    typer.echo(f"wrote {len(table)} observations to {out}")


@app.command("calibrate")
def calibrate_command(
    validation: Annotated[Path, typer.Option(help="Validation Observations to fit the calibration on.")],
    validation_cases: Annotated[Path, typer.Option(help="Cases (labels) of the validation exams.")],
    test: Annotated[Path, typer.Option(help="Test Observations to calibrate.")],
    out: Annotated[Path, typer.Option(help="Calibrated test Observations to write (.parquet or .csv).")],
    cases: Annotated[Path | None, typer.Option(help="Cases of the test exams (needed for --figure).")] = None,
    figure: Annotated[Path | None, typer.Option(
        help="Reliability diagram on the test set, written as PNG and SVG.")] = None,
    by: Annotated[str, typer.Option(
        help="One calibration map per 'observer' (each trained network) or per 'observer_group'.")] = "observer",
    unperturbed_only: Annotated[bool, typer.Option(
        "--unperturbed-only", help="Fit on the severity-0, entire-image validation rows only.")] = False,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the cross-validation folds.")] = 0,
    force: Annotated[bool, typer.Option("--force", help="Overwrite OUT and the figure.")] = False,
) -> None:
    """Dirichlet-calibrate network predictions: fit on validation, apply to test (METHOD §4)."""
    from perceptiongap.calibrate import write_calibration

    run = write_calibration(validation, validation_cases, test, out, cases=cases, figure=figure, by=by,
                            unperturbed_only=unperturbed_only, seed=seed, force=force)
    for key, calibrator in run.maps.items():
        typer.echo(
            f"{'/'.join(key)}: C = {calibrator.C_:.3g}, logit = {calibrator.coef_[0]:.3f} log p "
            f"+ {calibrator.coef_[1]:.3f} log(1 - p) + {calibrator.intercept_:.3f}"
        )
    typer.echo(f"wrote {len(run.calibrated)} calibrated observations to {out}")
    for path in run.figures:
        typer.echo(f"wrote {path}")
