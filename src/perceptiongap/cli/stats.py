"""``perceptiongap accuracy``, ``mrmc`` and ``export``: reader-study statistics and the iMRMC / RJafroc formats."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from perceptiongap.cli import app
from perceptiongap.cli.progress import console, progress_bar
from perceptiongap.errors import InputError

OBSERVATIONS_HELP = "Observations (Parquet or CSV); a reader-study export's pom and birads columns are used."
CASES_HELP = "Cases (Parquet or CSV): exam, breast, label, subgroup."
OPERATING_POINT_HELP = ("Comma-separated operating points for networks: 'readers' (threshold giving the readers' mean "
                        "specificity at severity 0), a threshold such as 0.5, or specificity=0.9. Default: "
                        "readers,0.5 (0.5 without readers). Error consistency uses the first.")
SUBGROUPS_HELP = ("Comma-separated subgroups to report (their malignant breasts against all non-malignant ones). "
                  "Default: the paper's pair where present, else every subgroup with malignant breasts.")


class Score(str, Enum):
    auto = "auto"
    pom = "pom"
    birads = "birads"
    prediction = "prediction"


SCORE_HELP = ("Readers' score: auto (probability of malignancy, else BI-RADS rank, else for exports the binary "
              "answer), pom, birads or prediction. Networks always use their probability.")


def _names(values: list[str] | None) -> list[str] | None:
    """Repeatable options that may also hold comma-separated lists."""
    if not values:
        return None
    return [name.strip() for value in values for name in value.split(",") if name.strip()]


@app.command()
def accuracy(
    observations: Path = typer.Argument(..., help=OBSERVATIONS_HELP),
    cases: Path = typer.Argument(..., help=CASES_HELP),
    out: Path = typer.Option(..., "--out", help="Folder for accuracy.csv, error_consistency.csv and figures/."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the case bootstrap (>= 0)."),
    bootstrap: int = typer.Option(2000, "--bootstrap", min=1, help="Bootstrap replicates per interval (>= 1)."),
    operating_point: str | None = typer.Option(None, "--operating-point", help=OPERATING_POINT_HELP),
    subgroups: str | None = typer.Option(None, "--subgroups", help=SUBGROUPS_HELP),
    score: Score = typer.Option(Score.auto, "--score", help=SCORE_HELP),
    force: bool = typer.Option(False, "--force", help="Overwrite the tables and figures of an earlier run."),
) -> None:
    """Sensitivity, specificity, AUC and error consistency per observer, severity and subgroup (bootstrap CIs)."""
    from perceptiongap.stats.operating_point import parse_operating_points
    from perceptiongap.stats.outputs import write_statistics
    from perceptiongap.study import read_study

    points = parse_operating_points(operating_point) if operating_point is not None else None
    chosen = [g.strip() for g in subgroups.split(",") if g.strip()] if subgroups else None
    observations_table, cases_table = read_study(observations, cases)
    progress = progress_bar()
    tasks: dict[str, int] = {}

    def on_progress(stage: str, done: int, total: int) -> None:
        if not tasks:  # the bar appears with the first progress, not before a refusal
            progress.start()
        if stage not in tasks:
            tasks[stage] = progress.add_task(stage, total=total)
        progress.update(tasks[stage], completed=done)

    try:
        paths = write_statistics(observations_table, cases_table, out, seed=seed, n_bootstrap=bootstrap,
                                 operating_points=points, subgroups=chosen, auc_score=score.value,
                                 overwrite=force, progress=on_progress)
    finally:
        progress.stop()
    for name in ("accuracy.csv", "accuracy_summary.csv", "error_consistency.csv", "error_consistency_pairs.csv"):
        console.print(f"wrote {paths[name]}")
    console.print(f"figures: {out / 'figures'}")


@app.command()
def mrmc(
    observations: Path = typer.Argument(..., help=OBSERVATIONS_HELP),
    cases: Path = typer.Argument(..., help=CASES_HELP),
    readers: list[str] = typer.Option(..., "--readers",
                                      help="Observer groups or observers (repeat, or comma-separate)."),
    severities: str = typer.Option(..., "--severities", help="Two severities in mm (e.g. 0,4) to compare the readers "
                                   "across; one severity with --model."),
    model: str | None = typer.Option(None, "--model",
                                     help="An observer to compare, as a fixed reader, against --readers."),
    scheme: str = typer.Option("entire", "--scheme", help="Scheme of the readings."),
    subgroup: str = typer.Option("all", "--subgroup", help="Positives: malignant breasts of this subgroup ('all', "
                                 "'merged' or a subgroup); negatives: every non-malignant breast."),
    margin: float | None = typer.Option(None, "--margin", help="Non-inferiority margin (an AUC difference >= 0); "
                                        "p is then one-sided."),
    score: Score = typer.Option(Score.auto, "--score", help=SCORE_HELP),
) -> None:
    """MRMC comparison of AUCs (Obuchowski-Rockette-Hillis): two severities, or a model against readers.

    Random readers and random cases; needs a fully crossed design (every reader reads every case at both
    severities), which the paper's reader study is not: export it with `perceptiongap export imrmc`.
    """
    from perceptiongap.stats.mrmc import describe_orh, orh_from_observations
    from perceptiongap.study import read_study

    try:
        levels = [float(s) for s in severities.split(",") if s.strip()]
    except ValueError:
        raise InputError(f"{severities!r} is not a list of severities in mm", source="--severities") from None
    observations_table, cases_table = read_study(observations, cases)
    result = orh_from_observations(observations_table, cases_table, readers=_names(readers) or [],
                                   severities=levels, model=model, scheme=scheme, subgroup=subgroup,
                                   score=score.value, margin=margin, source=str(observations))
    compared = f"{model} vs readers at {levels[0]:g} mm" if model else f"{levels[1]:g} mm vs {levels[0]:g} mm"
    console.print(f"Obuchowski-Rockette-Hillis, random readers and cases: {compared}, {scheme}, positives: {subgroup}")
    typer.echo(describe_orh(result))


export_app = typer.Typer(help="Write the study in the input formats of iMRMC (FDA) and RJafroc.", no_args_is_help=True)
app.add_typer(export_app, name="export")


def _export(kind: str, observations: Path, cases: Path, out: Path, observer_group: list[str] | None,
            scheme: list[str] | None, score: Score, force: bool) -> None:
    from perceptiongap.locks import output_lock
    from perceptiongap.stats.exports import mapping_path, select_observations, write_imrmc, write_rjafroc
    from perceptiongap.study import read_study

    if out.is_dir():
        raise InputError("is a folder; give the file to write", source=out)
    with output_lock(out, what="export file"):
        for path in (out, mapping_path(out)):
            if path.exists() and not force:
                raise InputError("exists; use --force to overwrite", source=path)
        observations_table, cases_table = read_study(observations, cases)
        selected = select_observations(observations_table, observer_groups=_names(observer_group),
                                       schemes=_names(scheme) or ["entire"], source=str(observations))
        with console.status(f"writing {out}"):
            if kind == "imrmc":
                summary = write_imrmc(selected, cases_table, out, score=score.value, source=str(observations))
            else:
                summary = write_rjafroc(selected, cases_table, out, score=score.value, source=str(observations))
    console.print(f"wrote {summary.path}: {summary.n_readings} readings of {summary.n_cases} breasts by "
                  f"{len(summary.readers)} readers in {len(summary.modalities)} modalities")
    console.print(f"case IDs: {summary.mapping}")
    if summary.skipped_by_imrmc:
        reader, modality, negatives, positives = summary.skipped_by_imrmc[0]
        console.print(f"note: iMRMC leaves out reader x modality combinations with fewer than 3 non-diseased or "
                      f"diseased cases: {len(summary.skipped_by_imrmc)} here (e.g. {reader} in {modality}: "
                      f"{negatives} and {positives})")


GROUP_HELP = "Observer groups to export (repeat, or comma-separate); default all."
SCHEME_HELP = "Schemes to export (repeat, or comma-separate): entire, roi_interior, roi_exterior. Default entire."


@export_app.command("imrmc")
def export_imrmc(
    observations: Path = typer.Argument(..., help=OBSERVATIONS_HELP),
    cases: Path = typer.Argument(..., help=CASES_HELP),
    out: Path = typer.Option(..., "--out", help="The .imrmc file to write (its case IDs go to <name>.cases.csv)."),
    observer_group: list[str] | None = typer.Option(None, "--observer-group", help=GROUP_HELP),
    scheme: list[str] | None = typer.Option(None, "--scheme", help=SCHEME_HELP),
    score: Score = typer.Option(Score.auto, "--score", help=SCORE_HELP),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing file."),
) -> None:
    """iMRMC input file: readerID,caseID,modalityID,score rows with one truth row per case; any design."""
    _export("imrmc", observations, cases, out, observer_group, scheme, score, force)


@export_app.command("rjafroc")
def export_rjafroc(
    observations: Path = typer.Argument(..., help=OBSERVATIONS_HELP),
    cases: Path = typer.Argument(..., help=CASES_HELP),
    out: Path = typer.Option(..., "--out", help="The .xlsx workbook to write (its case IDs go to <name>.cases.csv)."),
    observer_group: list[str] | None = typer.Option(None, "--observer-group", help=GROUP_HELP),
    scheme: list[str] | None = typer.Option(None, "--scheme", help=SCHEME_HELP),
    score: Score = typer.Option(Score.auto, "--score", help=SCORE_HELP),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing file."),
) -> None:
    """RJafroc Excel workbook (Truth, NL, LL sheets) of a crossed ROC study: every reader, case and modality."""
    _export("rjafroc", observations, cases, out, observer_group, scheme, score, force)
