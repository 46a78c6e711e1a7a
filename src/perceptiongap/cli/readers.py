"""``perceptiongap study design|status|export|backup`` and ``perceptiongap serve``: reader studies."""

from __future__ import annotations

from pathlib import Path

import typer

from perceptiongap.cli import app
from perceptiongap.cli.progress import progress_callback
from perceptiongap.errors import InputError

study_app = typer.Typer(
    name="study",
    help="Reader studies: design one, follow its progress, export its answers, back it up.",
    no_args_is_help=True,
)
app.add_typer(study_app, name="study")


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


@study_app.command("design")
def design_command(
    exams: Path = typer.Option(
        ..., "--exams",
        help="CSV: exam, view (L-CC, L-MLO, R-CC, R-MLO), path, optional pixel_mm; DICOM or PNG.",
    ),
    cases: Path = typer.Option(
        ..., "--cases",
        help="Cases (CSV/Parquet: exam, breast, label, subgroup); never shown to readers.",
    ),
    readers: Path = typer.Option(..., "--readers", help="CSV: reader (id), optional name (display name)."),
    out: Path = typer.Option(..., "--out", help="The study folder to create (self-contained)."),
    mode: str = typer.Option(
        "perturbation", "--mode",
        help="perturbation (each exam once per reader, at one severity) or annotation (unperturbed, ROIs).",
    ),
    design: str = typer.Option(
        "balanced", "--design",
        help="balanced (Latin-square style) or release (uniform draw per reader and exam, as the paper).",
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the design, the practice exams and every reader's order."),
    cutoffs_per_mm: str | None = typer.Option(
        None, "--cutoffs-per-mm",
        help="Severities as Gaussian cut-offs in cycles/mm, inf = unperturbed [default: inf and the paper's eight].",
    ),
    practice: int = typer.Option(
        0, "--practice", min=0,
        help="Practice exams read first by every reader (drawn from the exams; never exported).",
    ),
    variant: str = typer.Option("physical", "--variant", help="Low-pass filter: physical or release (see perturb)."),
    pixel_mm: str | None = typer.Option(
        None, "--pixel-mm",
        help="Pixel size in mm (0.07 or ROWxCOL) for images without one (PNG) where EXAMS gives none.",
    ),
    window: list[str] = typer.Option(
        [], "--window",
        help="A window preset NAME:CENTER:WIDTH in the images' values; repeatable.",
    ),
    title: str | None = typer.Option(
        None, "--title",
        help="Study title shown to readers [default: the folder's name].",
    ),
    observer_group: str = typer.Option(
        "radiologists", "--observer-group",
        help="observer_group of the exported Observations.",
    ),
    force: bool = typer.Option(
        False, "--force",
        help="Replace another design in OUT (never once a reader has opened an exam).",
    ),
) -> None:
    """Design a reader study and prepare its images once (resumable: re-run to finish)."""
    from perceptiongap.perturb.filters import parse_pixel_mm
    from perceptiongap.readers import Balance, create_study
    from perceptiongap.readers.images import parse_window
    from perceptiongap.vocabulary import DEFAULT_CUTOFFS_PER_MM, parse_cutoffs

    if cutoffs_per_mm is None:
        cutoffs = DEFAULT_CUTOFFS_PER_MM if mode == "perturbation" else ()
    else:
        cutoffs = parse_cutoffs(cutoffs_per_mm)
    presets = [parse_window(text) for text in window]
    with progress_callback("preparing images (exams)") as progress:
        study = create_study(
            exams, cases, readers, out, mode=mode, design=design, seed=seed, cutoffs_per_mm=cutoffs,
            practice=practice, variant=variant, pixel_mm=None if pixel_mm is None else parse_pixel_mm(pixel_mm, source="--pixel-mm"), windows=presets, title=title,
            observer_group=observer_group, force=force, progress=progress,
        )
    record = study.record
    typer.echo(
        f"designed {study.folder}: {record['mode']} study ({record['design']}, seed {record['seed']}), "
        f"{_count(len(record['readers']), 'reader')} x {_count(len(record['study_exams']), 'exam')}"
        + (f" after {_count(len(record['practice_exams']), 'practice exam')}" if record["practice_exams"] else "")
        + f", severities {', '.join(f'{s:g}' for s in record['severities_mm'])} mm"
    )
    if record["balance"]:
        for line in Balance(**record["balance"]).lines():
            typer.echo(f"  {line}")
    typer.echo(f"next: perceptiongap serve {study.folder}")


@study_app.command("status")
def status_command(
    study: Path = typer.Argument(..., help="The study folder."),
) -> None:
    """Progress per reader: exams done, median seconds per exam, last activity."""
    from rich.console import Console
    from rich.table import Table

    from perceptiongap.readers import db, open_study, progress

    info = open_study(study)
    connection = db.connect(info.database, readonly=True)
    try:
        summary = progress(connection, info)
    finally:
        connection.close()
    table = Table(title=f"{info.title}: {summary['study']['mode']} study, {summary['missing_readings']} readings to go")
    for column in ("reader", "name", "done", "practice", "median s/exam", "median active s", "last activity (UTC)"):
        numeric = column in ("done", "practice") or column.startswith("median")
        table.add_column(column, justify="right" if numeric else "left")
    for row in summary["readers"]:
        table.add_row(
            row["id"], row["name"], f"{row['done']}/{row['total']}", f"{row['practice_done']}/{row['practice_total']}",
            "-" if row["median_seconds"] is None else f"{row['median_seconds']:.1f}",
            "-" if row["median_active_seconds"] is None else f"{row['median_active_seconds']:.1f}",
            row["last_activity"] or "-",
        )
    Console().print(table)


@study_app.command("export")
def export_command(
    study: Path = typer.Argument(..., help="The study folder (it may be being served)."),
    out: Path = typer.Option(
        ..., "--out",
        help="Folder for observations, cases, readings (and rois in annotation mode).",
    ),
    file_format: str = typer.Option("csv", "--format", help="csv or parquet (for observations and cases)."),
    force: bool = typer.Option(False, "--force", help="Overwrite an earlier export in OUT."),
) -> None:
    """Export the answers as Observations + Cases (+ ROIs), ready for `perceptiongap fit`."""
    from perceptiongap.readers import export_study

    summary = export_study(study, out, file_format=file_format, force=force)
    typer.echo(f"exported {summary.observations} observations ({summary.submitted} readings) to {out}")
    if summary.missing:
        typer.echo(f"the study is in progress: {summary.missing} study readings are not submitted yet")
    for path in summary.files:
        typer.echo(f"  {path}")


@study_app.command("backup")
def backup_command(
    study: Path = typer.Argument(..., help="The study folder (it may be being served)."),
    out: Path = typer.Option(..., "--out", help="The backup file to write (a SQLite database)."),
    force: bool = typer.Option(False, "--force", help="Overwrite OUT."),
) -> None:
    """A consistent copy of the study database (safe while the study is served)."""
    from perceptiongap.readers import backup_database, open_study

    info = open_study(study, require_ready=False)
    backup_database(info.database, out, force=force)
    typer.echo(f"backed up {info.database} to {out}")


@app.command("serve")
def serve_command(
    study: Path = typer.Argument(..., help="The study folder made by `perceptiongap study design`."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0: every interface)."),
    port: int = typer.Option(8000, "--port", min=0, max=65535, help="Port (0: any free port)."),
    new_links: bool = typer.Option(
        False, "--new-links",
        help="Issue new links for every reader and the admin (old ones stop working).",
    ),
) -> None:
    """Serve a reader study; prints each reader's link and the admin link when they are issued."""
    from perceptiongap.readers import serve

    if not study.is_dir():
        raise InputError("no such study folder", source=study)
    serve(study, host=host, port=port, new_links=new_links, echo=lambda line: typer.echo(line))
