"""``perceptiongap fit``, ``analyse`` and ``reproduce``: the stages of :mod:`perceptiongap.results` from the shell."""

from __future__ import annotations

from pathlib import Path

import typer

from perceptiongap.cli import app
from perceptiongap.cli.progress import TerminalProgress, console

INFERENCE_HELP = "Comma-separated inference methods: stan-advi (the release's), advi (converged), nuts (exact)."
SEED_HELP = "Seed of the first fit; stan-advi uses seed .. seed + advi-seeds - 1."
SUBGROUPS_HELP = ("Subgroups to analyse, comma-separated; join two with + to also refit them merged "
                  "(e.g. mass+calcification,distortion). Default: microcalcifications+soft_tissue_lesions when "
                  "present, else every subgroup with a malignant breast.")
MODEL_HELP = ("Comma-separated model variants: release (the paper's), label_specific, independent, "
              "observer_slopes (see the README).")
CLUSTER_HELP = ("Run the fits on Dask: 'local:N' for a local cluster of N processes, or a scheduler address "
                "'tcp://HOST:PORT'.")
SHARED_HELP = "Shared data folder holding the sample mammograms for the filtering figure."
KEEP_ALL_DRAWS_HELP = ("Keep every draw of every parameter in the posteriors (about 4x the size on the release); "
                       "by default the per-case draws are replaced by their posterior predictive mean.")
BOOTSTRAP_HELP = ("Case-bootstrap replicates for the intervals of the reader-study statistics (accuracy, error "
                  "consistency), seeded by the run's seed; `perceptiongap accuracy` uses 2000.")


def print_conclusions(results: Path) -> None:
    """The paper's conclusions as `analyse` judged them (tables/conclusions.csv): one row each, a column per method."""
    from rich.table import Table

    from perceptiongap.results import read_conclusions

    conclusions = read_conclusions(results)
    methods = list(dict.fromkeys(method for c in conclusions for method in c.verdicts))
    table = Table(title="The paper's conclusions (METHOD §7) under each inference method", show_lines=True)
    table.add_column("conclusion", max_width=48)
    for method in methods:
        table.add_column(method, max_width=40)
    marks = {True: "[green]supported[/]", False: "[red]not supported[/]", None: "[dim]not evaluated[/]"}
    for conclusion in conclusions:
        cells = [f"{marks[conclusion.verdicts.get(m)]}\n[dim]{conclusion.evidence.get(m, '')}[/]" for m in methods]
        table.add_row(conclusion.statement, *cells)
    console.print(table)


def print_statistics(results: Path) -> None:
    """Where the reader-study statistics are (tables/), or why `analyse` skipped them (run.json)."""
    from perceptiongap.results import ResultsFolder, read_run_record
    from perceptiongap.results.layout import STATISTICS_TABLE_NAMES

    folder = ResultsFolder(results)
    paths = [folder.table_path(name) for name in STATISTICS_TABLE_NAMES]
    if all(path.is_file() for path in paths):
        console.print("reader-study statistics (sensitivity, specificity and AUC per observer; error consistency):")
        for path in paths:
            console.print(f"  {path}", markup=False, highlight=False, soft_wrap=True)
        return
    record, _, _ = read_run_record(folder)
    why = ((record.statistics or {}).get("skipped") if record is not None else None) or "not computed"
    console.print(f"reader-study statistics: none ({why})", markup=False, highlight=False, soft_wrap=True)


@app.command()
def fit(
    observations: Path = typer.Argument(..., help="Observations file (Parquet or CSV)."),
    cases: Path = typer.Argument(..., help="Cases file (Parquet or CSV)."),
    out: Path = typer.Option(..., "--out", help="Results folder to write posteriors into."),
    inference: str = typer.Option("stan-advi,nuts", metavar="METHODS", help=INFERENCE_HELP),
    model: str = typer.Option("release", "--model", metavar="MODELS", help=MODEL_HELP),
    seed: int = typer.Option(0, min=0, help=SEED_HELP),
    advi_seeds: int = typer.Option(5, "--advi-seeds", min=1, help="How many seeds stan-advi runs."),
    merged: bool = typer.Option(True, "--merged/--no-merged", help="Also refit with the merged pair of subgroups."),
    subgroups: str | None = typer.Option(None, "--subgroups", help=SUBGROUPS_HELP),
    force: bool = typer.Option(False, "--force", help="Start afresh: remove what an earlier run wrote there."),
    resume: bool = typer.Option(False, "--resume", help="Continue a results folder, keeping finished fits."),
    cluster: str | None = typer.Option(None, "--cluster", metavar="local:N|ADDRESS", help=CLUSTER_HELP),
    keep_all_draws: bool = typer.Option(False, "--keep-all-draws", help=KEEP_ALL_DRAWS_HELP),
) -> None:
    """Fit the model to every observer group of a study; one netCDF posterior per fit."""
    from perceptiongap.results import fit as fit_stage

    with TerminalProgress() as terminal:
        fit_stage(observations, cases, out=out, inference=inference, model=model, seed=seed, advi_seeds=advi_seeds,
                  merged=merged, subgroups=subgroups, force=force, resume=resume, cluster=cluster,
                  keep_all_draws=keep_all_draws, on_progress=terminal.progress, on_message=terminal.message)
    console.print(f"results: {out}")


@app.command()
def analyse(
    results: Path = typer.Argument(..., help="Results folder written by `perceptiongap fit`."),
    report: bool = typer.Option(True, "--report/--no-report", help="Render figures and the HTML report."),
    model: str | None = typer.Option(None, "--model", metavar="MODELS", help="Analyse only these comma-separated model variants "
                                     "(default: every variant fitted in the folder)."),
    bootstrap: int = typer.Option(500, "--bootstrap", help=BOOTSTRAP_HELP),
    shared_dir: Path | None = typer.Option(None, "--shared", envvar="PERCEPTIONGAP_SHARED", help=SHARED_HELP),
) -> None:
    """Predictive confidence, class separability and their tests from the fits, and the reader-study
    statistics of the study: tables/*.csv."""
    from perceptiongap.results import analyse as analyse_stage

    with TerminalProgress() as terminal:
        analyse_stage(results, report=report, model=model, bootstrap=bootstrap, shared_dir=shared_dir,
                      on_progress=terminal.progress, on_message=terminal.message)
    from perceptiongap.results import ResultsFolder

    print_conclusions(results)
    print_statistics(results)
    if report:
        console.print(f"report: {ResultsFolder(results).report_path}")


@app.command()
def reproduce(
    data: Path | None = typer.Option(None, "--data", help="Folder holding the authors' release "
                                     "(else $PERCEPTIONGAP_DATA, else the user cache, else download)."),
    out: Path = typer.Option(Path("perceptiongap-results"), "--out", help="Results folder."),
    inference: str = typer.Option("stan-advi,nuts", metavar="METHODS", help=INFERENCE_HELP),
    model: str = typer.Option("release", "--model", metavar="MODELS", help=MODEL_HELP),
    seed: int = typer.Option(0, min=0, help=SEED_HELP),
    advi_seeds: int = typer.Option(5, "--advi-seeds", min=1, help="How many seeds stan-advi runs."),
    force: bool = typer.Option(False, "--force", help="Start afresh: remove what an earlier run wrote there."),
    resume: bool = typer.Option(False, "--resume", help="Continue a results folder, keeping finished fits."),
    bootstrap: int = typer.Option(500, "--bootstrap", help=BOOTSTRAP_HELP),
    shared_dir: Path | None = typer.Option(None, "--shared", envvar="PERCEPTIONGAP_SHARED", help=SHARED_HELP),
    cluster: str | None = typer.Option(None, "--cluster", metavar="local:N|ADDRESS", help=CLUSTER_HELP),
    keep_all_draws: bool = typer.Option(False, "--keep-all-draws", help=KEEP_ALL_DRAWS_HELP),
) -> None:
    """Reproduce every number of the paper from the authors' released predictions."""
    from perceptiongap.results import reproduce as reproduce_stage

    with TerminalProgress() as terminal:
        out = reproduce_stage(data=data, out=out, inference=inference, model=model, seed=seed, advi_seeds=advi_seeds,
                              force=force, resume=resume, bootstrap=bootstrap, shared_dir=shared_dir, cluster=cluster,
                              keep_all_draws=keep_all_draws, on_progress=terminal.progress,
                              on_message=terminal.message)
    from perceptiongap.results import ResultsFolder

    print_conclusions(out)
    print_statistics(out)
    console.print(f"report: {ResultsFolder(out).report_path}")
    console.print(f"results: {out}")
