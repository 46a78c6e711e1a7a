"""Every fit of a study: which fits, their model data (validated before anything is written), running them.

``plan_fits`` lists the fits (observer group x inference method x seed, separate and merged
subgroups); a ``stan-advi`` seed that fails as Stan's ADVI fails leaves a failure record
(``write_failure``) instead of a posterior; ``model_data_for`` builds the arrays of every fit up front, so that a study the model
cannot take (no unperturbed observations, human and machine observers in one group) is refused
before a file is written; ``fit_study`` runs the fits that are not on disk yet, side by side
where that is faster, writing each posterior atomically as soon as it is done (so a killed run
resumes where it stopped).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import pandas as pd

from perceptiongap.analysis.subgroups import SubgroupChoice, merge_subgroups, subgroup_order
from perceptiongap.errors import InputError
from perceptiongap.files import atomic_write_text
from perceptiongap.results.layout import FitJob
from perceptiongap.vocabulary import MERGED_SUBGROUP

__all__ = [
    "available_cores",
    "dense_groups",
    "first_of_each_kind_first",
    "fit_study",
    "model_data_for",
    "model_groups",
    "plan_fits",
    "read_failure",
    "write_failure",
]

#: ``on_fit(job, seconds)``: called after each fit (``seconds`` None when it was already on disk).
OnFit = Callable[[FitJob, "float | None"], None]


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


def model_groups(observations: pd.DataFrame) -> list[str]:
    """Observer groups with unperturbed-scheme (``entire``) observations, in order of appearance."""
    entire = observations[observations["scheme"] == "entire"]
    return list(pd.unique(entire["observer_group"].astype(str)))


def dense_groups(observations: pd.DataFrame) -> list[str]:
    """Groups whose every observer predicted every breast at every severity (``entire`` scheme)."""
    entire = observations[observations["scheme"] == "entire"]
    dense = []
    for group, rows in entire.groupby("observer_group", sort=False):
        breasts = rows[["exam", "breast"]].drop_duplicates().shape[0]
        cells = rows["observer"].nunique() * rows["severity_mm"].nunique() * breasts
        if len(rows) == cells and (rows["observer_kind"] == "machine").all():
            dense.append(str(group))
    return dense


def model_data_for(
    observations: pd.DataFrame,
    cases: pd.DataFrame,
    jobs: Sequence[FitJob],
    choice: SubgroupChoice,
    *,
    source: str | Path = "observations",
    cases_source: str | Path = "cases",
) -> dict[tuple[str, bool], object]:
    """The model data of every (observer group, merged) the jobs need, keyed so.

    Building it checks each group against the model; an error names ``source`` (the
    Observations file) instead of the table.
    """
    from perceptiongap.model import build_model_data

    order = subgroup_order(choice)
    merged_cases = None
    if any(job.merged for job in jobs):
        merged_cases = merge_subgroups(cases, choice.merged, MERGED_SUBGROUP, source=str(cases_source))
    data = {}
    for group, merged in dict.fromkeys((job.observer_group, job.merged) for job in jobs):
        try:
            data[group, merged] = build_model_data(observations, merged_cases if merged else cases, group,
                                                   subgroup_order=order)
        except InputError as error:
            raise error.with_source(source) from None
    return data


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


def write_failure(job: FitJob, results_dir: Path, error: str, details: Mapping, observer_kind: str,
                  seconds: float) -> Path:
    """Record a fit that failed as Stan's ADVI fails, in place of its posterior (``seed<k>.failed.json``).

    The record holds the attributes a posterior would (inference, observer group and kind, seed,
    merged, fit_seconds, converged 0, what is known of the run) and ``error``, the reason.
    """
    record = {"inference": job.inference, "observer_group": job.observer_group, "observer_kind": observer_kind,
              "seed": int(job.seed), "merged": int(job.merged), "fit_seconds": float(seconds), "converged": 0,
              **{key: value for key, value in details.items()}, "error": error}
    path = job.failure_path(results_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(record, indent=1) + "\n")
    return path


def read_failure(path: Path) -> dict:
    """A record written by :func:`write_failure`; InputError naming the file if it is not one."""
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise InputError(f"unreadable record of a failed fit ({error})", source=path) from None
    if not isinstance(record, dict) or not {"inference", "observer_group", "seed", "error"} <= set(record):
        raise InputError("not a record of a failed fit (needs inference, observer_group, seed, error)", source=path)
    return record


def fit_study(
    model_data: Mapping[tuple[str, bool], object],
    jobs: Sequence[FitJob],
    results_dir: Path,
    *,
    on_fit: OnFit | None = None,
    workers: int | None = None,
    source: str | Path = "observations",
    keep_all_draws: bool = False,
) -> list[Path]:
    """Run every job whose posterior is not on disk yet; return the paths of all jobs' posteriors.

    ``model_data`` is :func:`model_data_for` of the jobs. ADVI fits (``stan-advi``, ``advi``) run
    ``workers`` at a time in threads (default: one per core); each is mostly single-threaded XLA
    work, and XLA runs the threads' computations side by side. The first fit of each array shape
    goes first, so that no two threads compile the same function. NUTS fits run one at a time,
    since their chains already occupy the cores. A fit's numbers do not depend on the thread that
    ran it. ``on_fit(job, seconds)`` is called after each job, from this thread (``seconds`` None
    when it was already done). Each posterior is written atomically as soon as it is done, in the compact form
    of :mod:`perceptiongap.results.compact` unless ``keep_all_draws``. A ``stan-advi`` fit that fails as
    Stan's ADVI fails (:class:`~perceptiongap.model.ADVIError`) is recorded by :func:`write_failure`
    instead, and counts as done; any other method's failure is an :class:`InputError` naming the fit (and
    ``source``), fits finished before it being kept.
    """
    from perceptiongap.model import fit, save_posterior
    from perceptiongap.model.stan_advi import ADVIError
    from perceptiongap.results.compact import compact_posterior

    todo = []
    for job in jobs:
        if job.path(results_dir).is_file() or job.failure_path(results_dir).is_file():
            if on_fit:
                on_fit(job, None)
        else:
            todo.append(job)

    def run(job: FitJob) -> float:
        start = time.perf_counter()
        data = model_data[job.observer_group, job.merged]
        try:
            posterior = fit(data, job.inference, job.seed)
        except ADVIError as error:
            if job.inference != "stan-advi":
                raise InputError(f"{job.describe()}: {error}", source=source) from error
            # Stan's ADVI fails on some seeds (as Stan's own does, e.g. a gradient that stays
            # non-finite for 10 draws); the failure is the result of this seed, recorded in place
            # of its posterior, and the other seeds go on.
            write_failure(job, results_dir, str(error), error.details, data.observer_kind,
                          time.perf_counter() - start)
            return time.perf_counter() - start
        seconds = time.perf_counter() - start
        posterior.posterior.attrs["fit_seconds"] = seconds
        posterior.posterior.attrs["merged"] = int(job.merged)
        if not keep_all_draws:
            posterior = compact_posterior(posterior)
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
