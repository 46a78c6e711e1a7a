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
    "failure_record",
    "FitFailure",
    "FitTask",
    "first_of_each_kind_first",
    "fit_study",
    "model_data_for",
    "model_groups",
    "plan_fits",
    "read_failure",
    "run_fit_task",
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
    models: Sequence[str] = ("release",),
) -> list[FitJob]:
    """Every fit of a study, per model variant: ``stan-advi`` once per seed ``seed .. seed +
    advi_seeds - 1``, the others once."""
    jobs = []
    for model in models:
        for inference in inference_methods:
            seeds = range(seed, seed + advi_seeds) if inference == "stan-advi" else (seed,)
            for merge in (False, True) if merged else (False,):
                jobs += [FitJob(group, inference, s, merge, model) for group in observer_groups for s in seeds]
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


def failure_record(job: FitJob, error: str, details: Mapping, observer_kind: str, seconds: float) -> dict:
    """What :func:`write_failure` records: the attributes a posterior would have (model, inference,
    observer group and kind, seed, merged, fit_seconds, converged 0, what is known of the run) and
    ``error``, the reason."""
    return {"model": job.model, "inference": job.inference, "observer_group": job.observer_group,
            "observer_kind": observer_kind, "seed": int(job.seed), "merged": int(job.merged),
            "fit_seconds": float(seconds), "converged": 0, **{key: value for key, value in details.items()},
            "error": error}


class FitFailure:
    """A fit that failed as Stan's ADVI fails: its record (:func:`failure_record`), saved in place of a posterior."""

    def __init__(self, record: dict):
        self.record = record


class FitTask:
    """One fit as the engine runs it (picklable: it travels to Dask workers): the job and its model data.

    Calling it fits and returns the posterior (compact unless ``keep_all_draws``; see
    :mod:`perceptiongap.results.compact`), its ``fit_seconds`` and ``merged`` recorded in its attrs;
    or, for a ``stan-advi`` fit that fails as Stan's ADVI fails, a :class:`FitFailure`.
    """

    def __init__(self, job: FitJob, data: object, source: str | Path = "observations", keep_all_draws: bool = False):
        self.job, self.data, self.source, self.keep_all_draws = job, data, str(source), keep_all_draws

    def __call__(self) -> object:
        import perceptiongap.model as model
        from perceptiongap.model.stan_advi import ADVIError
        from perceptiongap.results.compact import compact_posterior

        start = time.perf_counter()
        try:
            posterior = model.fit(self.data, self.job.inference, self.job.seed, model=self.job.model)
        except ADVIError as error:
            if self.job.inference != "stan-advi":
                raise InputError(f"{self.job.describe()}: {error}", source=self.source) from error
            # Stan's ADVI fails on some seeds (as Stan's own does, e.g. a gradient that stays
            # non-finite for 10 draws); the failure is the result of this seed, recorded in place
            # of its posterior, and the other seeds go on.
            return FitFailure(failure_record(self.job, str(error), error.details, self.data.observer_kind,
                                             time.perf_counter() - start))
        posterior.posterior.attrs["fit_seconds"] = time.perf_counter() - start
        posterior.posterior.attrs["merged"] = int(self.job.merged)
        if not self.keep_all_draws:
            posterior = compact_posterior(posterior)
        return posterior


def run_fit_task(task: FitTask) -> object:
    """The engine's function: ``task()``."""
    return task()


def _save_result(result: object, path: Path) -> None:
    """A posterior at ``path``, or a failure's record beside it (``seed<k>.failed.json``)."""
    from perceptiongap.model import save_posterior
    from perceptiongap.results.layout import failure_path

    if isinstance(result, FitFailure):
        target = failure_path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(target, json.dumps(result.record, indent=1) + "\n")
    else:
        save_posterior(result, path)


def write_failure(job: FitJob, results_dir: Path, error: str, details: Mapping, observer_kind: str,
                  seconds: float) -> Path:
    """Record a fit that failed as Stan's ADVI fails, in place of its posterior (``seed<k>.failed.json``,
    :func:`failure_record`)."""
    _save_result(FitFailure(failure_record(job, error, details, observer_kind, seconds)), job.path(results_dir))
    return job.failure_path(results_dir)


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
    cluster: str | None = None,
    source: str | Path = "observations",
    keep_all_draws: bool = False,
) -> list[Path]:
    """Run every job whose posterior is not on disk yet; return the paths of all jobs' posteriors.

    ``model_data`` is :func:`model_data_for` of the jobs. With ``cluster`` (``local:N`` or a Dask
    scheduler address) every fit runs on dask.distributed (:func:`perceptiongap.engine.run_tasks`).
    Otherwise ADVI fits (``stan-advi``, ``advi``) run ``workers`` at a time in threads (default: one
    per core); each is mostly single-threaded XLA work, and XLA runs the threads' computations side by
    side. The first fit of each array shape goes first, so that no two threads compile the same
    function. NUTS fits run one at a time, since their chains already occupy the cores. A fit's
    numbers do not depend on the thread or worker that ran it. ``on_fit(job, seconds)`` is called
    after each job, from this thread (``seconds`` None when it was already done). Each posterior is
    written atomically as soon as it is done, in the compact form of :mod:`perceptiongap.results.compact`
    unless ``keep_all_draws``. A ``stan-advi`` fit that fails as Stan's ADVI fails
    (:class:`~perceptiongap.model.ADVIError`) is recorded by :func:`write_failure` instead, and counts
    as done; any other method's failure is an :class:`InputError` naming the fit (and ``source``),
    fits finished before it being kept.
    """
    from perceptiongap.engine import TaskStore, run_tasks

    store = TaskStore(path=lambda task: task.job.path(results_dir), save=_save_result)
    tasks = []
    for job in jobs:
        if job.failure_path(results_dir).is_file():
            if on_fit:
                on_fit(job, None)
        else:
            tasks.append(FitTask(job, model_data[job.observer_group, job.merged], source, keep_all_draws))
    report = None if on_fit is None else (lambda task, seconds: on_fit(task.job, seconds))
    if cluster is not None:
        run_tasks(tasks, run_fit_task, store=store, cluster=cluster, on_done=report)
        return [job.path(results_dir) for job in jobs]

    array_shapes = {
        key: tuple((name, None if value is None else np.shape(value)) for name, value in data.arrays().items())
        for key, data in model_data.items()
    }
    side_by_side = first_of_each_kind_first(
        [task for task in tasks if task.job.inference != "nuts"],
        lambda task: (task.job.model, task.job.inference, array_shapes[task.job.observer_group, task.job.merged]),
    )
    run_tasks(side_by_side, run_fit_task, store=store, threads=workers or available_cores(), on_done=report)
    run_tasks([task for task in tasks if task.job.inference == "nuts"], run_fit_task, store=store, on_done=report)
    return [job.path(results_dir) for job in jobs]
