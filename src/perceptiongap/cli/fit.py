"""``perceptiongap fit``, ``analyse`` and ``reproduce``: from Observations to posteriors to tables."""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import typer

from perceptiongap.cli import app
from perceptiongap.cli.progress import console, progress_bar
from perceptiongap.errors import InputError

INFERENCE_HELP = "Comma-separated inference methods: stan-advi (the release's), advi (converged), nuts (exact)."
OWNED_OUTPUTS = ("study", "posteriors", "tables", "figures", "report.html", "run.json")


def parse_inference(text: str) -> list[str]:
    from perceptiongap.model import INFERENCE_METHODS

    methods = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in methods if m not in INFERENCE_METHODS]
    if unknown or not methods:
        raise InputError(f"unknown inference method {unknown[0] if unknown else text!r}; choose from "
                         f"{', '.join(INFERENCE_METHODS)}", source="--inference")
    return methods


def check_out_dir(out: Path, *, force: bool, resume: bool) -> None:
    """Refuse a file, or a non-empty folder unless --force (start afresh) or --resume (keep finished fits)."""
    if out.exists() and not out.is_dir():
        raise InputError("is a file, not a folder", source=out)
    if out.is_dir() and any(out.iterdir()) and not (force or resume):
        raise InputError("output folder is not empty; use --resume to continue it or --force to overwrite",
                         source=out)


def prepare_out_dir(out: Path, *, force: bool, resume: bool) -> None:
    """Check the results folder (see :func:`check_out_dir`); with --force remove what an earlier run wrote."""
    check_out_dir(out, force=force, resume=resume)
    if force and not resume and out.is_dir():
        for name in OWNED_OUTPUTS:
            target = out / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    out.mkdir(parents=True, exist_ok=True)


def run_fits(observations, cases, out: Path, inference: list[str], seed: int, advi_seeds: int, merged: bool) -> None:
    from perceptiongap.workflow import fit_study, model_groups, plan_fits

    jobs = plan_fits(model_groups(observations), inference, seed=seed, advi_seeds=advi_seeds, merged=merged)
    with progress_bar() as progress:
        task = progress.add_task("fitting", total=len(jobs))

        def on_fit(job, seconds):
            note = "kept from an earlier run" if seconds is None else f"{seconds:.1f} s"
            progress.console.log(f"{job.describe()}: {note}")
            progress.advance(task)

        fit_study(observations, cases, jobs, out, on_fit=on_fit)


def run_analysis(out: Path) -> dict:
    from perceptiongap.analysis.conclusions import (
        evaluate_conclusions,
        observer_kinds,
        observer_roles,
        print_conclusions,
    )
    from perceptiongap.workflow import analyse_results

    with console.status("analysing posteriors"):
        tables = analyse_results(out)
    conclusions = evaluate_conclusions(tables, **observer_roles(observer_kinds(tables)))
    print_conclusions(conclusions, console)
    warnings = [w for w in tables["fits"]["warnings"] if w]
    if warnings:
        console.print(f"[yellow]{len(warnings)} fit(s) have diagnostic warnings; see {out / 'tables' / 'fits.csv'}")
    return tables


def run_report(out: Path) -> None:
    try:
        from perceptiongap.report import build_report
    except ModuleNotFoundError:
        console.print("Figures and the HTML report come with `perceptiongap report` (not installed yet).")
        return
    path = build_report(out)
    console.print(f"report: {path}")


@app.command()
def fit(
    observations: Path = typer.Argument(..., help="Observations file (Parquet or CSV)."),
    cases: Path = typer.Argument(..., help="Cases file (Parquet or CSV)."),
    out: Path = typer.Option(..., "--out", help="Results folder to write posteriors into."),
    inference: str = typer.Option("stan-advi,nuts", help=INFERENCE_HELP),
    seed: int = typer.Option(0, help="Seed of the first fit; stan-advi uses seed .. seed + advi-seeds - 1."),
    advi_seeds: int = typer.Option(5, "--advi-seeds", min=1, help="How many seeds stan-advi runs."),
    merged: bool = typer.Option(True, "--merged/--no-merged",
                                help="Also refit with microcalcifications and soft tissue lesions merged."),
    force: bool = typer.Option(False, "--force", help="Overwrite a non-empty results folder."),
    resume: bool = typer.Option(False, "--resume", help="Continue a results folder, keeping finished fits."),
) -> None:
    """Fit the model to every observer group of a study; one netCDF posterior per fit."""
    from perceptiongap.provenance import write_run_record
    from perceptiongap.study import read_study
    from perceptiongap.workflow import write_study

    methods = parse_inference(inference)
    observation_table, case_table = read_study(observations, cases)
    prepare_out_dir(out, force=force, resume=resume)
    start = time.perf_counter()
    write_study(observation_table, case_table, out)
    run_fits(observation_table, case_table, out, methods, seed, advi_seeds, merged)
    write_run_record(out, command=["perceptiongap", *sys.argv[1:]], seed=seed, advi_seeds=advi_seeds,
                     inference=methods, inputs=[observations, cases], seconds=time.perf_counter() - start)


@app.command()
def analyse(
    results: Path = typer.Argument(..., help="Results folder written by `perceptiongap fit`."),
    report: bool = typer.Option(True, "--report/--no-report", help="Render figures and the HTML report."),
) -> None:
    """Predictive confidence, class separability and their tests from the fits: tables/*.csv."""
    run_analysis(results)
    if report:
        run_report(results)


@app.command()
def reproduce(
    data: Path | None = typer.Option(None, "--data", help="Folder holding the authors' release "
                                     "(else $PERCEPTIONGAP_DATA, else the user cache, else download)."),
    out: Path = typer.Option(Path("perceptiongap-results"), "--out", help="Results folder."),
    inference: str = typer.Option("stan-advi,nuts", help=INFERENCE_HELP),
    seed: int = typer.Option(0, help="Seed of the first fit; stan-advi uses seed .. seed + advi-seeds - 1."),
    advi_seeds: int = typer.Option(5, "--advi-seeds", min=1, help="How many seeds stan-advi runs."),
    force: bool = typer.Option(False, "--force", help="Overwrite a non-empty results folder."),
    resume: bool = typer.Option(False, "--resume", help="Continue a results folder, keeping finished fits."),
) -> None:
    """Reproduce every number of the paper from the authors' released predictions."""
    from perceptiongap.provenance import write_run_record
    from perceptiongap.release import import_release, locate_release
    from perceptiongap.workflow import write_study

    methods = parse_inference(inference)
    check_out_dir(out, force=force, resume=resume)
    start = time.perf_counter()
    release_dir = locate_release(data)
    observations, cases = import_release(release_dir)
    prepare_out_dir(out, force=force, resume=resume)
    write_study(observations, cases, out)
    run_fits(observations, cases, out, methods, seed, advi_seeds, merged=True)
    run_analysis(out)
    write_run_record(out, command=["perceptiongap", *sys.argv[1:]], seed=seed, advi_seeds=advi_seeds,
                     inference=methods, data_dir=release_dir, seconds=time.perf_counter() - start)
    run_report(out)
    console.print(f"results: {out}")
