"""Run a network over every exam x severity x scheme: in this process, a process pool, or Dask.

:func:`predict` is the whole ``perceptiongap predict`` command as a function: it lists the jobs,
skips those an earlier (interrupted) run completed, sends one task per exam to the workers,
appends the finished rows durably as they come back, and consolidates them into Observations.
Results come back in completion order; the consolidated table is sorted, so a run on one worker,
on N processes or on a Dask cluster, interrupted or not, gives the same file.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from perceptiongap.engine import dask_client, run_on_dask
from perceptiongap.errors import InputError
from perceptiongap.files import check_writable, sha256_file
from perceptiongap.locks import output_lock
from perceptiongap.perturb import VARIANTS
from perceptiongap.predict.jobs import (
    Task,
    cached_model,
    make_jobs,
    make_tasks,
    read_boxes,
    read_exams,
    run_task,
)
from perceptiongap.predict.plugin import load_model
from perceptiongap.predict.store import ObservationStore
from perceptiongap.vocabulary import DEFAULT_CUTOFFS_PER_MM, validate_cutoffs

__all__ = [
    "Progress",
    "TaskFunction",
    "dask_client",
    "predict",
    "run_cutoffs",
    "run_in_pool",
    "run_in_process",
    "run_on_dask",
]

TaskFunction = Callable[[Task], pd.DataFrame]
Progress = Callable[[int, int], None]
"""Called as ``progress(done, total)`` in exams: once at the start (``done`` > 0 when resuming),
then after each exam."""


# ---------------------------------------------------------------------------------------------
# Executors: each yields (task, rows) as tasks finish, keeping a bounded number in flight so that
# a huge exam list never sits in memory as futures.


def run_in_process(tasks: Iterable[Task], function: TaskFunction) -> Iterator[tuple[Task, pd.DataFrame]]:
    """One worker: the tasks one after another in this process."""
    for task in tasks:
        yield task, function(task)


def run_in_pool(
    tasks: Iterable[Task], function: TaskFunction, workers: int, in_flight: int | None = None
) -> Iterator[tuple[Task, pd.DataFrame]]:
    """``workers`` local processes (started with ``spawn``, so that nothing of this process's
    threads or open files is inherited)."""
    import concurrent.futures as cf
    import multiprocessing

    in_flight = in_flight or 2 * workers
    pending = iter(tasks)
    with cf.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        running: dict[cf.Future, Task] = {}
        try:
            for task in pending:
                running[pool.submit(function, task)] = task
                if len(running) >= in_flight:
                    break
            while running:
                done, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
                for future in done:
                    task = running.pop(future)
                    yield task, future.result()
                    following = next(pending, None)
                    if following is not None:
                        running[pool.submit(function, following)] = following
        finally:
            for future in running:
                future.cancel()
            pool.shutdown(wait=True, cancel_futures=True)


# ---------------------------------------------------------------------------------------------


class _TaskFunction:
    """Picklable ``run_task`` bound to a model and a batch size."""

    def __init__(self, model: str, batch_size: int):
        self.model, self.batch_size = model, batch_size

    def __call__(self, task: Task) -> pd.DataFrame:
        return run_task(task, self.model, self.batch_size)


def run_cutoffs(cutoffs_per_mm: Sequence[float]) -> tuple[float, ...]:
    """The run's cut-offs by the one rule (:func:`perceptiongap.vocabulary.validate_cutoffs`),
    unperturbed first; the unperturbed image (``inf``) must be among them, since the model measures
    every severity against it."""
    cutoffs = validate_cutoffs(cutoffs_per_mm, source="cutoffs_per_mm")
    if math.inf not in cutoffs:
        raise InputError("add inf (the unperturbed image): every severity is measured against it",
                         source="cutoffs_per_mm")
    return cutoffs


def predict(
    model: str,
    exams: str | Path,
    observer_group: str,
    out: str | Path,
    *,
    observer: str | None = None,
    cutoffs_per_mm: Sequence[float] = DEFAULT_CUTOFFS_PER_MM,
    rois: str | Path | None = None,
    schemes: Sequence[str] = ("entire",),
    batch_size: int = 8,
    workers: int = 1,
    cluster: str | None = None,
    pixel_mm: float | tuple[float, float] | None = None,
    variant: str = "physical",
    feather_mm: float = 0.0,
    force: bool = False,
    progress: Progress | None = None,
    flush_seconds: float = 10.0,
) -> pd.DataFrame:
    """Predict with the network ``model`` (``package.module:attribute``) on every exam of
    ``exams`` (``EXAMS.csv``) at every cut-off in ``cutoffs_per_mm`` (cycles/mm; default the
    unperturbed image and the paper's eight; ``inf``, the unperturbed image, must be among them),
    for each scheme (the ROI schemes once per annotator in ``rois``, with a soft edge of
    ``feather_mm``), and write the Observations (``observer_kind`` machine) to ``out``. Each view
    is perturbed by :func:`perceptiongap.perturb.perturb_image`, as ``perturb`` writes it.
    Resumes an interrupted run with the same settings. ``workers`` > 1 uses local processes;
    ``cluster`` (``local:N`` or a scheduler address such as ``tcp://host:8786``) uses
    dask.distributed. Finished rows are written to disk at least every ``flush_seconds``.
    ``progress(done, total)`` reports exams. Returns the Observations.
    """
    if variant not in VARIANTS:
        raise InputError(f"{variant!r} is not one of {', '.join(VARIANTS)}", source="variant")
    if not (math.isfinite(feather_mm) and feather_mm >= 0):
        raise InputError(f"{feather_mm!r} is not a non-negative number of mm", source="feather_mm")
    if batch_size < 1:
        raise InputError(f"{batch_size} is less than 1", source="batch_size")
    if workers < 1:
        raise InputError(f"{workers} is less than 1", source="workers")
    if cluster is not None and workers != 1:
        raise InputError(f"give either workers > 1 ({workers}) or a cluster ({cluster!r}), not both", source="cluster")
    if not observer_group.strip():
        raise InputError("must not be empty", source="observer_group")
    observer = model if observer is None else observer
    if not observer.strip():
        raise InputError("must not be empty", source="observer")
    cutoffs = run_cutoffs(cutoffs_per_mm)
    out = Path(out)
    if out.is_dir():
        raise InputError("is a folder; give the Observations file to write (.parquet or .csv)", source=out)
    with output_lock(out, what="observations file"):
        check_writable(out.parent)
        return _predict_locked(
            model, exams, observer_group, out, observer=observer, cutoffs=cutoffs, rois=rois, schemes=schemes,
            batch_size=batch_size, workers=workers, cluster=cluster, pixel_mm=pixel_mm, variant=variant,
            feather_mm=feather_mm, force=force, progress=progress, flush_seconds=flush_seconds,
        )


def _predict_locked(
    model: str,
    exams: str | Path,
    observer_group: str,
    out: Path,
    *,
    observer: str,
    cutoffs: tuple[float, ...],
    rois: str | Path | None,
    schemes: Sequence[str],
    batch_size: int,
    workers: int,
    cluster: str | None,
    pixel_mm: float | tuple[float, float] | None,
    variant: str,
    feather_mm: float,
    force: bool,
    progress: Progress | None,
    flush_seconds: float,
) -> pd.DataFrame:
    """:func:`predict` once its options are checked and it holds the output."""
    if workers == 1 and cluster is None:
        cached_model(model)  # load it now, so that a bad spec fails before any work
    else:
        _check_importable(model)  # the workers load it; here only check that it imports

    exam_list = read_exams(exams, pixel_mm)
    boxes = read_boxes(rois) if rois is not None else None
    jobs = make_jobs(exam_list, schemes, boxes, source=str(rois) if rois is not None else "rois")
    settings = {
        "model": model,
        "observer_group": observer_group,
        "observer": observer,
        "cutoffs_per_mm": [str(c) for c in cutoffs],
        "schemes": sorted(schemes),
        "variant": variant,
        "feather_mm": feather_mm,
        "pixel_mm": pixel_mm,
        "exams_sha256": sha256_file(exams),
        "rois_sha256": None if rois is None else sha256_file(rois),
    }
    store = ObservationStore(out, settings, force=force)
    done = store.open()
    shared_cores = workers > 1 or cluster is not None
    tasks = make_tasks(exam_list, jobs, cutoffs, variant=variant, boxes=boxes, feather_mm=feather_mm, done=done,
                       fft_workers=1 if shared_cores else -1)
    function = _TaskFunction(model, batch_size)

    buffer: list[pd.DataFrame] = []
    last_flush = time.monotonic()

    def flush() -> None:
        nonlocal last_flush
        if buffer:
            rows = pd.concat(buffer, ignore_index=True)
            rows.insert(0, "observer_kind", "machine")
            rows.insert(0, "observer", observer)
            rows.insert(0, "observer_group", observer_group)
            store.append(rows)
            buffer.clear()
        last_flush = time.monotonic()

    finished = len(exam_list) - len(tasks)  # exams an earlier run completed
    if progress:
        progress(finished, len(exam_list))
    try:
        with _executor(tasks, function, workers, cluster) as results:
            for _, rows in results:
                buffer.append(rows)
                if time.monotonic() - last_flush >= flush_seconds:
                    flush()
                finished += 1
                if progress:
                    progress(finished, len(exam_list))
    finally:
        # Whatever stopped the run (a network error, Ctrl-C), keep every finished job.
        flush()
    return store.consolidate([exam.exam for exam in exam_list])


def _check_importable(spec: str) -> None:
    """Fail early in this process when the network cannot even be imported (without loading it)."""
    import importlib

    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        load_model(spec)  # raises the InputError that explains the spec's form
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise InputError(f"{spec!r}: cannot import module {module_name!r}: {error}", source="model") from None
    target: object = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise InputError(f"{spec!r}: module {module_name!r} has no attribute {attribute!r}", source="model")
        target = getattr(target, part)


@contextmanager
def _executor(tasks: Sequence[Task], function: TaskFunction, workers: int, cluster: str | None):
    if cluster is not None:
        with dask_client(cluster) as client:
            results = run_on_dask(tasks, function, client)
            try:
                yield results
            finally:
                results.close()  # cancel what is still queued before the client closes
        return
    results = run_in_process(tasks, function) if workers == 1 else run_in_pool(tasks, function, workers)
    try:
        yield results
    finally:
        results.close()
