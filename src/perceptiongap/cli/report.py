"""``perceptiongap report``: figures and the HTML report of a results folder, from its saved outputs."""

from __future__ import annotations

from pathlib import Path

import typer

from perceptiongap.cli import app
from perceptiongap.cli.fit import SHARED_HELP
from perceptiongap.cli.progress import TerminalProgress, console


@app.command()
def report(
    results: Path = typer.Argument(..., help="Results folder written by `reproduce` or `fit` + `analyse`."),
    shared_dir: Path | None = typer.Option(None, "--shared", envvar="PERCEPTIONGAP_SHARED", help=SHARED_HELP),
) -> None:
    """Re-render figures/ and report.html from the saved tables and posteriors (nothing is refitted)."""
    from perceptiongap.results import ResultsFolder
    from perceptiongap.results import report as report_stage

    with TerminalProgress() as terminal:
        path = report_stage(results, shared_dir=shared_dir, on_progress=terminal.progress, on_message=terminal.message)
    console.print(f"report: {path}")
    console.print(f"figures: {ResultsFolder(results).figures_dir}")
