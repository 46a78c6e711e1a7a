"""``perceptiongap plan``: simulated power of planned reader studies (readers x exams x design)."""

from __future__ import annotations

from pathlib import Path

import typer

from perceptiongap.cli import app
from perceptiongap.cli.progress import TerminalProgress, console
from perceptiongap.errors import InputError

__all__ = ["plan"]


def _integers(text: str, source: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise InputError(f"expected comma-separated whole numbers, got {text!r}", source=source) from None
    if not values:
        raise InputError("expected at least one number", source=source)
    return values


def _names(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


@app.command()
def plan(
    out: Path = typer.Option(..., "--out",
                             help="Output folder: power.csv, design_comparison.csv, figures/, plan.html."),
    effects: Path | None = typer.Option(None, "--effects", help="CSV of stated effects: subgroup, severity_mm, gamma "
                                        "(and delta for --model label_specific); other parameters from the priors."),
    from_dir: Path | None = typer.Option(None, "--from", help="A results folder (from fit or reproduce): draw the "
                                         "parameters from its posterior, new readers from the fitted spread."),
    observer_group: str = typer.Option("radiologists", "--observer-group",
                                       help="The posterior's observer group (--from)."),
    inference: str | None = typer.Option(None, "--inference", help="Which posterior of --from (nuts, advi, stan-advi) "
                                         "(default: the only one, else nuts, advi, stan-advi in that order)."),
    model: str = typer.Option("release", "--model", help="Model fitted to each simulated study: release, "
                              "label_specific or independent."),
    readers: str = typer.Option("5,10,20", "--readers", help="Reader counts, comma-separated."),
    exams: str = typer.Option("240,480,720", "--exams", help="Exam counts, comma-separated."),
    designs: str = typer.Option("balanced,release", "--designs", help="Designs of `study design`, comma-separated."),
    subgroups: str = typer.Option("microcalcifications,soft_tissue_lesions", "--subgroups",
                                  help="Analysed subgroups, comma-separated."),
    reps: int = typer.Option(100, "--reps", help="Simulated studies per grid cell."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of every random step."),
    batch_size: int = typer.Option(1, "--batch-size", help="Studies fitted together by one jax.vmap; 1 (one at a time) "
                                    "measured fastest on CPU (benchmarks/plan.py)."),
    curve_severity: float | None = typer.Option(None, "--curve-severity", help="Severity (mm) of the power curves "
                                                "(default: the largest)."),
    cluster: str | None = typer.Option(None, "--cluster", help="Dask: 'local:N' for N local worker processes, or a "
                                       "scheduler address 'tcp://HOST:PORT'; each grid cell is one task."),
    force: bool = typer.Option(False, "--force", help="Start afresh: remove the cells an earlier run kept."),
    resume: bool = typer.Option(False, "--resume", help="Continue a plan folder, keeping finished cells."),
) -> None:
    """Plan a reader study: simulated power to detect drops in confidence and separability, per readers x exams x
    design."""
    from perceptiongap.results.plan_stage import plan as plan_stage

    with TerminalProgress() as terminal:
        plan_stage(out, effects=effects, from_dir=from_dir, observer_group=observer_group, inference=inference,
                   model=model, readers=_integers(readers, "readers"), exams=_integers(exams, "exams"),
                   designs=_names(designs), subgroups=_names(subgroups), reps=reps, seed=seed, batch_size=batch_size,
                   curve_severity=curve_severity, cluster=cluster, force=force, resume=resume,
                   on_progress=terminal.progress, on_message=terminal.message)
    console.print(f"power: {out / 'power.csv'}")
    console.print(f"page: {out / 'plan.html'}")
