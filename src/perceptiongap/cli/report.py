"""``perceptiongap report``: figures and the HTML report of a results folder, from its saved outputs."""

from __future__ import annotations

from pathlib import Path

import typer

from perceptiongap.cli import app
from perceptiongap.cli.progress import console


@app.command()
def report(
    results: Path = typer.Argument(..., help="Results folder written by `reproduce` or `fit` + `analyse`."),
) -> None:
    """Re-render figures/ and report.html from the saved tables and posteriors (nothing is refitted)."""
    from perceptiongap.report import build_report

    with console.status("rendering figures") as status:
        path = build_report(results, on_figure=lambda name: status.update(f"rendering figures: {name}"))
    console.print(f"report: {path}")
    console.print(f"figures: {results / 'figures'}")
