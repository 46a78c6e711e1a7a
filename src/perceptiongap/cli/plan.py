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


def _number(text: str, source: str, what: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise InputError(f"expected {what}, got {text.strip()!r}", source=source) from None


def _severity_sets(text: str | None) -> list[tuple[float, ...]] | None:
    """``"0,1,2,4;0,0.5,1,2,4"``: sets of severities (mm), one grid level each."""
    if text is None:
        return None
    levels = [level for level in text.split(";") if level.strip()]
    return [tuple(_number(part, "severities", "a severity in mm (sets as '0,1,2,4;0,2,4')")
                  for part in level.split(",") if part.strip()) for level in levels]


def _case_mixes(text: str | None) -> list[dict[str, tuple[float, float | None]]] | None:
    """``"microcalcifications=0.2:0.3,soft_tissue_lesions=0.3;..."``: case mixes, one grid level each."""
    if text is None:
        return None
    mixes = []
    for level in (level for level in text.split(";") if level.strip()):
        mix = {}
        for entry in (entry.strip() for entry in level.split(",") if entry.strip()):
            name, equals, value = entry.partition("=")
            if not equals or not name.strip():
                raise InputError(f"expected SUBGROUP=SHARE[:MALIGNANT_SHARE], got {entry!r}", source="prevalence")
            share, colon, malignant = value.partition(":")
            if name.strip() in mix:
                raise InputError(f"subgroup {name.strip()!r} is listed twice in one level", source="prevalence")
            mix[name.strip()] = (_number(share, "prevalence", f"a share of breasts for {name.strip()!r}"),
                                 _number(malignant, "prevalence", f"a malignant share for {name.strip()!r}")
                                 if colon else None)
        mixes.append(mix)
    return mixes


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
                              "label_specific or independent; with --from, the posterior's model (release or "
                              "label_specific)."),
    readers: str = typer.Option("5,10,20", "--readers", help="Reader counts, comma-separated."),
    exams: str = typer.Option("240,480,720", "--exams", help="Exam counts, comma-separated."),
    designs: str = typer.Option("balanced,release", "--designs", help="Designs of `study design`, comma-separated."),
    subgroups: str = typer.Option("microcalcifications,soft_tissue_lesions", "--subgroups",
                                  help="Analysed subgroups, comma-separated."),
    severities: str | None = typer.Option(
        None, "--severities", help="Grid axis of severity sets (mm), ';' between sets, e.g. '0,1,2,4;0,0.5,1,2,4'; "
        "effects between the source's severities are interpolated linearly, beyond its largest refused "
        "(default: the source's severities)."),
    prevalence: str | None = typer.Option(
        None, "--prevalence", help="Grid axis of case mixes, ';' between mixes: SUBGROUP=SHARE[:MALIGNANT] with SHARE "
        "the share of breasts in the subgroup and MALIGNANT the share of those that are malignant, e.g. "
        "'microcalcifications=0.2,soft_tissue_lesions=0.3:0.25'; other subgroups fill the rest in the source's "
        "proportions (default: the source's case mix)."),
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
    design (x severity set x case mix)."""
    from perceptiongap.results.plan_stage import plan as plan_stage

    with TerminalProgress() as terminal:
        plan_stage(out, effects=effects, from_dir=from_dir, observer_group=observer_group, inference=inference,
                   model=model, readers=_integers(readers, "readers"), exams=_integers(exams, "exams"),
                   designs=_names(designs), subgroups=_names(subgroups),
                   severity_sets=_severity_sets(severities), case_mixes=_case_mixes(prevalence), reps=reps, seed=seed, batch_size=batch_size,
                   curve_severity=curve_severity, cluster=cluster, force=force, resume=resume,
                   on_progress=terminal.progress, on_message=terminal.message)
    console.print(f"power: {out / 'power.csv'}")
    console.print(f"page: {out / 'plan.html'}")
