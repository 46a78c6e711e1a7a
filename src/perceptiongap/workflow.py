"""The stages after Observations, as files in one results folder: fit -> posteriors -> tables.

Layout of a results folder (what ``fit``, ``analyse``, ``reproduce`` and ``report`` share)::

    study/observations.parquet, study/cases.parquet    the study the fits were made on
    posteriors/<inference>/<observer_group>/seed<k>.nc  one netCDF posterior per fit
    posteriors/<inference>/<observer_group>__merged/... the merged-subgroup refits
    tables/perturbation_study.csv, merged_subgroups.csv, annotation_study.csv, fits.csv,
                                                        conclusions.csv
    run.json                                            provenance: command, seeds, versions, times

Fitting is resumable: a posterior already on disk (written atomically, so complete) is kept.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from perceptiongap.errors import InputError
from perceptiongap.study import read_study, write_table
from perceptiongap.vocabulary import ANALYSED_SUBGROUPS, MERGED_SUBGROUP, PAPER_SUBGROUPS

MERGED_SUFFIX = "__merged"


@dataclass(frozen=True)
class FitJob:
    """One model fit: an observer group, an inference method, a seed, separate or merged subgroups."""

    observer_group: str
    inference: str
    seed: int
    merged: bool = False

    def path(self, results_dir: Path) -> Path:
        folder = self.observer_group + (MERGED_SUFFIX if self.merged else "")
        return Path(results_dir) / "posteriors" / self.inference / folder / f"seed{self.seed}.nc"

    def describe(self) -> str:
        merged = ", merged subgroups" if self.merged else ""
        return f"{self.inference} {self.observer_group} (seed {self.seed}{merged})"


def merged_study_cases(cases: pd.DataFrame) -> pd.DataFrame:
    """Cases with microcalcifications and soft tissue lesions relabelled as the one subgroup ``merged``."""
    from perceptiongap.analysis.subgroups import merge_subgroups

    return merge_subgroups(cases, ANALYSED_SUBGROUPS, MERGED_SUBGROUP)


def plan_fits(
    observer_groups: Sequence[str],
    inference_methods: Sequence[str],
    *,
    seed: int = 0,
    advi_seeds: int = 5,
    merged: bool = True,
) -> list[FitJob]:
    """Every fit of a study: ``stan-advi`` once per seed ``seed .. seed + advi_seeds - 1``, the others once."""
    jobs = []
    for inference in inference_methods:
        seeds = range(seed, seed + advi_seeds) if inference == "stan-advi" else (seed,)
        for merge in (False, True) if merged else (False,):
            jobs += [FitJob(group, inference, s, merge) for group in observer_groups for s in seeds]
    return jobs


def study_paths(results_dir: Path) -> tuple[Path, Path]:
    return Path(results_dir) / "study" / "observations.parquet", Path(results_dir) / "study" / "cases.parquet"


def write_study(observations: pd.DataFrame, cases: pd.DataFrame, results_dir: Path) -> None:
    observations_path, cases_path = study_paths(results_dir)
    write_table(observations, observations_path)
    write_table(cases, cases_path)


def read_results_study(results_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    observations_path, cases_path = study_paths(results_dir)
    if not observations_path.is_file():
        raise InputError("not a results folder (no study/observations.parquet); run `perceptiongap fit` first",
                         source=results_dir)
    return read_study(observations_path, cases_path)


def model_groups(observations: pd.DataFrame) -> list[str]:
    """Observer groups with unperturbed-scheme (``entire``) observations, in order of appearance."""
    entire = observations[observations["scheme"] == "entire"]
    return list(pd.unique(entire["observer_group"].astype(str)))


def dense_groups(observations: pd.DataFrame) -> list[str]:
    """Groups whose every observer predicted every breast at every severity (``entire`` scheme)."""
    entire = observations[observations["scheme"] == "entire"]
    dense = []
    for group, rows in entire.groupby("observer_group", sort=False):
        cells = rows["observer"].nunique() * rows["severity_mm"].nunique() * rows[["exam", "breast"]].drop_duplicates().shape[0]
        if len(rows) == cells and (rows["observer_kind"] == "machine").all():
            dense.append(str(group))
    return dense


def available_cores() -> int:
    """CPU cores this process may run on (its affinity where the platform reports one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def first_of_each_kind_first(jobs: Sequence[FitJob], kind: Callable[[FitJob], object]) -> list[FitJob]:
    """``jobs`` with the first job of each ``kind`` moved to the front, otherwise in order.

    With ``kind`` the compiled function a fit needs, threads taking jobs in this order start by
    compiling different functions, and later jobs find theirs compiled.
    """
    first: dict[object, FitJob] = {}
    for job in jobs:
        first.setdefault(kind(job), job)
    leading = list(first.values())
    return leading + [job for job in jobs if job not in leading]


def fit_study(
    observations: pd.DataFrame,
    cases: pd.DataFrame,
    jobs: Sequence[FitJob],
    results_dir: Path,
    *,
    on_fit: Callable[[FitJob, float | None], None] | None = None,
    workers: int | None = None,
) -> list[Path]:
    """Run every job whose posterior is not on disk yet; return the paths of all jobs' posteriors.

    ADVI fits (``stan-advi``, ``advi``) run ``workers`` at a time in threads (default: one per
    core); each is mostly single-threaded XLA work, and XLA runs the threads' computations side
    by side. The first fit of each array shape goes first, so that no two threads compile the
    same function. NUTS fits run one at a time, since their chains already occupy the cores.
    A fit's numbers do not depend on the thread that ran it. ``on_fit(job, seconds)`` is called
    after each job, from this thread (``seconds`` None when it was already done). Each posterior is
    written atomically as soon as it is done.
    """
    from perceptiongap.model import build_model_data, fit, save_posterior
    from perceptiongap.model.stan_advi import ADVIError

    todo = []
    for job in jobs:
        if job.path(results_dir).is_file():
            if on_fit:
                on_fit(job, None)
        else:
            todo.append(job)

    model_data = {}
    merged_cases = merged_study_cases(cases) if any(job.merged for job in todo) else None
    for group, merged in dict.fromkeys((job.observer_group, job.merged) for job in todo):
        model_data[group, merged] = build_model_data(observations, merged_cases if merged else cases, group,
                                                     subgroup_order=(MERGED_SUBGROUP, *PAPER_SUBGROUPS))

    def run(job: FitJob) -> float:
        start = time.perf_counter()
        try:
            posterior = fit(model_data[job.observer_group, job.merged], job.inference, job.seed)
        except ADVIError as error:
            raise InputError(f"{job.describe()}: {error}", source="observations") from error
        seconds = time.perf_counter() - start
        posterior.posterior.attrs["fit_seconds"] = seconds
        posterior.posterior.attrs["merged"] = int(job.merged)
        save_posterior(posterior, job.path(results_dir))
        return seconds

    array_shapes = {
        key: tuple((name, None if value is None else np.shape(value)) for name, value in data.arrays().items())
        for key, data in model_data.items()
    }
    side_by_side = first_of_each_kind_first(
        [job for job in todo if job.inference != "nuts"],
        lambda job: (job.inference, array_shapes[job.observer_group, job.merged]),
    )
    with ThreadPoolExecutor(max_workers=workers or available_cores()) as executor:
        futures = {executor.submit(run, job): job for job in side_by_side}
        try:
            for future in as_completed(futures):
                seconds = future.result()
                if on_fit:
                    on_fit(futures[future], seconds)
        except BaseException:
            # Interrupted or failed: start nothing new; fits in flight finish and are kept.
            executor.shutdown(wait=True, cancel_futures=True)
            raise
    for job in todo:
        if job.inference == "nuts":
            seconds = run(job)
            if on_fit:
                on_fit(job, seconds)
    return [job.path(results_dir) for job in jobs]


def posterior_paths(results_dir: Path) -> tuple[list[Path], list[Path]]:
    """(separate, merged) posterior files of a results folder, sorted."""
    paths = sorted((Path(results_dir) / "posteriors").glob("*/*/seed*.nc"))
    separate = [p for p in paths if not p.parent.name.endswith(MERGED_SUFFIX)]
    merged = [p for p in paths if p.parent.name.endswith(MERGED_SUFFIX)]
    return separate, merged


def fits_table(posteriors: Sequence) -> pd.DataFrame:
    """One row per fit: method, group, seed, run time and the diagnostics that say whether to trust it."""
    from perceptiongap.model import severity_effect_summary, warnings_for

    rows = []
    for posterior in posteriors:
        attrs = posterior.posterior.attrs
        row = {
            "inference": attrs["inference"],
            "observer_group": attrs["observer_group"],
            "observer_kind": attrs.get("observer_kind", ""),
            "merged": bool(attrs.get("merged", 0)),
            "seed": int(attrs["seed"]),
            "fit_seconds": attrs.get("fit_seconds", np.nan),
            "iterations": attrs.get("iterations", np.nan),
            "converged": attrs.get("converged", np.nan),
            "pareto_k": attrs.get("pareto_k", np.nan),
            "max_r_hat": np.nan,
            "min_ess_bulk": np.nan,
            "divergences": np.nan,
        }
        if attrs["inference"] == "nuts":
            summary = severity_effect_summary(posterior)
            row.update(max_r_hat=summary["r_hat"].max(), min_ess_bulk=summary["ess_bulk"].min(),
                       divergences=int(posterior.sample_stats["diverging"].sum()))
        row["warnings"] = " | ".join(warnings_for(posterior))
        rows.append(row)
    return pd.DataFrame(rows)


def analyse_results(results_dir: Path) -> dict[str, pd.DataFrame]:
    """Compute every table of a results folder from its study and posteriors, and write them."""
    from perceptiongap.analysis import annotation_study, observed_separability, perturbation_study_table
    from perceptiongap.analysis.conclusions import (
        conclusions_table,
        evaluate_conclusions,
        observer_kinds,
        observer_roles,
    )
    from perceptiongap.model import load_posterior

    results_dir = Path(results_dir)
    observations, cases = read_results_study(results_dir)
    separate_paths, merged_paths = posterior_paths(results_dir)
    if not separate_paths:
        raise InputError("no posteriors found; run `perceptiongap fit` first", source=results_dir / "posteriors")
    separate = [load_posterior(path) for path in separate_paths]
    merged = [load_posterior(path) for path in merged_paths]
    dense = dense_groups(observations)

    tables = {}
    observed = [observed_separability(observations, cases, group, subgroups=ANALYSED_SUBGROUPS) for group in dense]
    tables["perturbation_study"] = perturbation_study_table(separate, observed, subgroups=ANALYSED_SUBGROUPS)
    if merged:
        merged_cases = merged_study_cases(cases)
        merged_observed = [observed_separability(observations, merged_cases, group, subgroups=(MERGED_SUBGROUP,))
                           for group in dense]
        tables["merged_subgroups"] = perturbation_study_table(merged, merged_observed, subgroups=(MERGED_SUBGROUP,))
    if observations["scheme"].isin(["roi_interior", "roi_exterior"]).any():
        tables["annotation_study"] = annotation_study(observations, cases, subgroups=ANALYSED_SUBGROUPS)
    tables["fits"] = fits_table(separate + merged)
    tables["conclusions"] = conclusions_table(evaluate_conclusions(tables, **observer_roles(observer_kinds(tables))))
    for name, table in tables.items():
        write_table(table, results_dir / "tables" / f"{name}.csv")
    return tables
