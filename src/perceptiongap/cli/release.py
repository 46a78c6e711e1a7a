"""``perceptiongap release``: fetch the authors' release, convert it to Observations + Cases."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from perceptiongap.cli import app
from perceptiongap.errors import InputError

release_app = typer.Typer(
    help="The authors' released predictions: find or download them (checksum-verified), convert them.",
    no_args_is_help=True,
)
app.add_typer(release_app, name="release")

DATA_HELP = "Folder holding the release (else $PERCEPTIONGAP_DATA, else the user cache, else download)."


class TableFormat(str, Enum):
    parquet = "parquet"
    csv = "csv"


@release_app.command("fetch")
def fetch(data: Path | None = typer.Option(None, "--data", help=DATA_HELP)) -> None:
    """Find the release, or download it into the user cache; print the folder that holds it."""
    from perceptiongap.release import locate_release

    typer.echo(locate_release(data))


def check_out_dir(out: Path, *, force: bool) -> None:
    """Refuse an out dir that is a file, or that is non-empty unless ``force``."""
    if out.exists() and not out.is_dir():
        raise InputError("is a file, not a directory", source=out)
    if out.is_dir() and any(out.iterdir()) and not force:
        raise InputError("output folder is not empty; use --force to overwrite", source=out)


@release_app.command("import")
def import_(
    release: Path | None = typer.Argument(
        None, help="Folder holding the release; if left out, found or downloaded as by `release fetch`."
    ),
    out: Path = typer.Option(..., "--out", help="Folder to write observations and cases to."),
    table_format: TableFormat = typer.Option(TableFormat.parquet, "--format", help="Table file format."),
    force: bool = typer.Option(False, "--force", help="Write into a non-empty output folder."),
) -> None:
    """Convert the release to the study data model: OUT/observations.<format> and OUT/cases.<format>."""
    from perceptiongap.release import import_release, locate_release
    from perceptiongap.study import write_table

    check_out_dir(out, force=force)
    observations, cases = import_release(release if release is not None else locate_release())
    suffix = table_format.value
    write_table(observations, out / f"observations.{suffix}")
    write_table(cases, out / f"cases.{suffix}")
    groups = ", ".join(f"{group} {count}" for group, count in observations["observer_group"].value_counts(
        sort=False).items())
    typer.echo(f"wrote {len(observations)} observations ({groups}) and {len(cases)} cases to {out}")
