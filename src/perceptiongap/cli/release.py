"""``perceptiongap release``: fetch the authors' release, convert it to Observations + Cases."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from perceptiongap.cli import app
from perceptiongap.cli.progress import progress_callback

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
    """Find the release, or download it into the user cache (checksum-verified); print the folder that holds it."""
    from perceptiongap.release import locate_release

    with progress_callback("downloading the release") as progress:
        folder = locate_release(data, on_progress=progress)
    typer.echo(folder)


@release_app.command("import")
def import_(
    release: Path | None = typer.Argument(
        None, help="Folder holding the release; if left out, found or downloaded as by `release fetch`."
    ),
    out: Path = typer.Option(..., "--out", help="Folder to write observations and cases to."),
    table_format: TableFormat = typer.Option(TableFormat.parquet, "--format", help="Table file format."),
    force: bool = typer.Option(False, "--force", help="Write into a non-empty output folder."),
) -> None:
    """Convert the release to the study data model: OUT/observations.<format> and OUT/cases.<format>.

    A folder named here must hold the published release, byte for byte (SHA-256), as for `release fetch`.
    """
    from perceptiongap.release import write_release_study

    with progress_callback("downloading the release") as progress:
        observations, cases = write_release_study(out, release, table_format=table_format.value, force=force,
                                                  on_progress=progress)
    groups = ", ".join(f"{group} {count}" for group, count in observations["observer_group"].value_counts(
        sort=False).items())
    typer.echo(f"wrote {len(observations)} observations ({groups}) and {len(cases)} cases to {out}")
