"""The stages after Observations as functions: ``fit``, ``analyse``, ``report`` and ``reproduce``.

Each takes the options of its command (``perceptiongap fit --advi-seeds 2`` is
``fit(..., advi_seeds=2)``), holds the output lock of its results folder while it writes, and
reports through callbacks: ``on_progress(task, done, total)`` (``total`` None when unknown) and
``on_message(text)``, one line each. Bad input raises :class:`~perceptiongap.errors.InputError`
before anything is written.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import pandas as pd

from perceptiongap.analysis.fits import warning_summary
from perceptiongap.analysis.subgroups import SubgroupChoice, choose_subgroups
from perceptiongap.errors import InputError
from perceptiongap.files import (
    PARTIAL_SUFFIX,
    check_out_dir,
    check_writable,
    partial_files,
    remove_paths,
    same_file,
)
from perceptiongap.locks import output_lock
from perceptiongap.results.fitting import (
    dense_groups,
    fit_study,
    model_data_for,
    model_groups,
    plan_fits,
    read_failure,
)
from perceptiongap.results.layout import MERGED_SUFFIX, STATISTICS_TABLE_NAMES, ResultsFolder, failure_path
from perceptiongap.results.record import (
    RunRecord,
    add_outputs,
    check_resumable,
    finish_run,
    input_checksums,
    read_run_record,
    record_statistics,
    subgroup_record,
    write_run_record,
)
from perceptiongap.results.store import (
    posterior_files,
    read_posteriors,
    read_results,
    read_study_of,
    write_results_table,
    write_study_into,
)

__all__ = [
    "DEFAULT_INFERENCE",
    "DEFAULT_MODEL",
    "DEFAULT_RESULTS_DIR",
    "STATISTICS_BOOTSTRAP",
    "analyse",
    "fit",
    "parse_inference",
    "parse_models",
    "report",
    "reproduce",
]

#: ``on_progress(task, done, total)``: ``total`` is None while unknown.
Progress = Callable[[str, int, "int | None"], None]
#: ``on_message(text)``: one line for the person running the stage.
Message = Callable[[str], None]

DEFAULT_INFERENCE = "stan-advi,nuts"
DEFAULT_MODEL = "release"
DEFAULT_RESULTS_DIR = Path("perceptiongap-results")
#: Bootstrap replicates of the reader-study statistics' intervals in a results folder: fewer than
#: `perceptiongap accuracy`'s 2,000, so that they add seconds, not a minute, to `reproduce`.
STATISTICS_BOOTSTRAP = 500
SHARED_ENV = "PERCEPTIONGAP_SHARED"
_LOCK_WHAT = "results folder"


def _quiet_progress(task: str, done: int, total: int | None) -> None:
    return None


def _quiet_message(text: str) -> None:
    return None


def _parse_choices(value: str | Sequence[str], allowed: Sequence[str], what: str, source: str) -> list[str]:
    """A comma-separated string (or a list) -> its distinct items in order, each one of ``allowed``."""
    items = value.split(",") if isinstance(value, str) else list(value)
    chosen = list(dict.fromkeys(str(m).strip() for m in items if str(m).strip()))
    unknown = [m for m in chosen if m not in allowed]
    if unknown or not chosen:
        shown = unknown[0] if unknown else value
        raise InputError(f"unknown {what} {shown!r}; choose from {', '.join(allowed)}", source=source)
    return chosen


def parse_inference(inference: str | Sequence[str]) -> list[str]:
    """``"stan-advi,nuts"`` (or a list) -> the inference methods, checked against ``INFERENCE_METHODS``."""
    from perceptiongap.model import INFERENCE_METHODS

    return _parse_choices(inference, INFERENCE_METHODS, "inference method", "inference")


def parse_models(model: str | Sequence[str]) -> list[str]:
    """``"release,label_specific"`` (or a list) -> the model variants, checked against ``MODEL_NAMES``."""
    from perceptiongap.model.variants import MODEL_NAMES

    return _parse_choices(model, MODEL_NAMES, "model", "model")


def _check_cluster(cluster: str | None, workers: int | None) -> None:
    if cluster is None:
        return
    from perceptiongap.engine import parse_cluster

    parse_cluster(cluster)
    if workers not in (None, 1):
        raise InputError(f"give either workers ({workers}) or a cluster ({cluster!r}), not both", source="cluster")


def _check_bootstrap(bootstrap: int) -> None:
    if isinstance(bootstrap, bool) or not isinstance(bootstrap, int) or bootstrap < 1:
        raise InputError(f"{bootstrap!r} is not a number of bootstrap replicates (a whole number >= 1)",
                         source="bootstrap")


def _check_options(*, seed: int, advi_seeds: int, force: bool, resume: bool) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InputError(f"{seed!r} is not a whole number >= 0", source="seed")
    if isinstance(advi_seeds, bool) or not isinstance(advi_seeds, int) or advi_seeds < 1:
        raise InputError(f"{advi_seeds!r} is not a whole number >= 1", source="advi_seeds")
    if force and resume:
        raise InputError("`force` (start afresh) and `resume` (keep finished fits) exclude each other",
                         source="resume")


def _use_host_devices_for_nuts(methods: Sequence[str]) -> None:
    """Let NUTS run its chains in parallel: one CPU device per chain, asked for before JAX starts its backend.

    Once JAX has started (an earlier fit in the same process), the count is fixed and NUTS runs its
    chains one after the other.
    """
    if "nuts" not in methods:
        return
    from perceptiongap.model import NUTSSettings, use_host_devices

    use_host_devices(max(1, min(os.cpu_count() or 1, NUTSSettings().num_chains)))


# --------------------------------------------------------------------------------------------
# fit


def fit(
    observations: str | Path,
    cases: str | Path,
    *,
    out: str | Path,
    inference: str | Sequence[str] = DEFAULT_INFERENCE,
    model: str | Sequence[str] = DEFAULT_MODEL,
    seed: int = 0,
    advi_seeds: int = 5,
    merged: bool = True,
    subgroups: str | Sequence[str] | None = None,
    force: bool = False,
    resume: bool = False,
    keep_all_draws: bool = False,
    workers: int | None = None,
    cluster: str | None = None,
    on_progress: Progress | None = None,
    on_message: Message | None = None,
) -> Path:
    """Fit the model to every observer group of a study; one netCDF posterior per fit in ``out``.

    ``observations`` and ``cases`` are the study's files (Parquet or CSV); ``inference`` the
    methods (``stan-advi``, ``advi``, ``nuts``); ``stan-advi`` runs seeds ``seed .. seed +
    advi_seeds - 1``, the others ``seed``. ``subgroups`` chooses the analysed subgroups and the
    merged pair (``"a+b,c"``; default: see :func:`~perceptiongap.analysis.subgroups.choose_subgroups`);
    ``merged`` False skips the merged refit. A non-empty ``out`` is refused unless ``force``
    (remove what earlier runs wrote there, never anything else) or ``resume`` (keep the fits
    already on disk; the folder's settings and inputs must be the same). ``model`` the model
    variants (:data:`~perceptiongap.model.variants.MODEL_NAMES`, comma-separated or a list), each
    fitted with every method. ``cluster`` (``local:N`` or a Dask scheduler address) runs the fits on
    dask.distributed instead of ``workers`` local threads. Posteriors are saved without the
    per-case draws, which only the posterior predictive reads (its mean is saved instead,
    :mod:`perceptiongap.results.compact`), unless ``keep_all_draws``. Returns ``out``.
    """
    methods = parse_inference(inference)
    models = parse_models(model)
    _check_options(seed=seed, advi_seeds=advi_seeds, force=force, resume=resume)
    _check_cluster(cluster, workers)
    _use_host_devices_for_nuts(methods)  # first: before any JAX computation
    folder = ResultsFolder(Path(out))
    with output_lock(folder.root, what=_LOCK_WHAT):
        check_out_dir(folder.root, force=force, resume=resume)
        check_writable(folder.root)
        start = time.perf_counter()
        from perceptiongap.study import read_study

        observation_table, case_table = read_study(observations, cases)
        if observation_table.empty:
            raise InputError("has no rows (a header only?), so there is nothing to fit", source=observations)
        _fit_into(
            folder, observation_table, case_table, stage="fit", methods=methods, models=models, seed=seed,
            advi_seeds=advi_seeds, cluster=cluster,
            merged=merged, subgroups=subgroups, force=force, resume=resume,
            inputs={"observations": Path(observations), "cases": Path(cases)}, record_inputs=True,
            observations_source=str(observations), cases_source=str(cases), data_dir=None, workers=workers,
            keep_all_draws=keep_all_draws,
            on_progress=on_progress or _quiet_progress, on_message=on_message or _quiet_message,
        )
        finish_run(folder, time.perf_counter() - start)
    return folder.root


def _fit_into(
    folder: ResultsFolder,
    observations: pd.DataFrame,
    cases: pd.DataFrame,
    *,
    stage: str,
    methods: Sequence[str],
    models: Sequence[str],
    cluster: str | None,
    seed: int,
    advi_seeds: int,
    merged: bool,
    subgroups: str | Sequence[str] | None,
    force: bool,
    resume: bool,
    inputs: Mapping[str, Path],
    record_inputs: bool,
    observations_source: str,
    cases_source: str,
    data_dir: Path | None,
    workers: int | None,
    keep_all_draws: bool,
    on_progress: Progress,
    on_message: Message,
) -> None:
    """Check everything, then record, write the study and run every fit not on disk yet (lock held)."""
    choice = choose_subgroups(cases, subgroups, merged=merged, source=cases_source)
    groups = model_groups(observations)
    if not groups:
        raise InputError("no observations with scheme 'entire', so there is nothing to fit", source=observations_source)
    jobs = plan_fits(groups, methods, seed=seed, advi_seeds=advi_seeds, merged=choice.merged is not None,
                     models=models)
    model_data = model_data_for(observations, cases, jobs, choice, source=observations_source,
                                cases_source=cases_source)

    record = RunRecord(
        stage=stage, inference=list(methods), seed=int(seed), advi_seeds=int(advi_seeds), merged=bool(merged),
        subgroups=subgroup_record(choice.analysed, choice.merged, choice.how),
        input_sha256=input_checksums(inputs), keep_all_draws=bool(keep_all_draws),
        data_dir=str(data_dir) if data_dir else None,
        inputs={name: str(path) for name, path in inputs.items()} if record_inputs else {},
        fits=[job.relative_path for job in jobs], models=list(models),
    )
    old, _, problem = read_run_record(folder)
    # A run killed before it wrote run.json left at most a half-written file: nothing to resume, nothing to refuse.
    has_content = folder.root.is_dir() and any(not path.name.endswith(PARTIAL_SUFFIX)
                                               for path in folder.root.iterdir())
    if resume and has_content:
        check_resumable(old, record, folder, problem)

    study_paths = [folder.observations_path.absolute(), folder.cases_path.absolute()]
    kept_inputs = [path for path in study_paths if any(same_file(path, p) for p in inputs.values())]
    planned = [folder.run_record_path, *[p for p in study_paths if p not in kept_inputs],
               *[folder.posterior_path(job) for job in jobs],
               *[job.failure_path(folder.root) for job in jobs if job.inference == "stan-advi"]]
    if force:
        earlier = [folder.resolve(relative) for relative in (old.outputs or [])] if old is not None else []
        # never reuse a posterior (or a failure record) under `force`
        overwritten = [path for job in jobs for path in (folder.posterior_path(job), job.failure_path(folder.root))]
        remove_paths(_removable([*earlier, *overwritten], protected=inputs.values()))
        _remove_empty_folders(folder)
    if force or resume:
        remove_paths(partial_files(folder.root))
    earlier_outputs = list(old.outputs or []) if (resume and old is not None) else []
    outputs = [*earlier_outputs, *(folder.relative(path) for path in planned)]
    outputs = [relative for relative in dict.fromkeys(outputs)
               if folder.resolve(relative) not in kept_inputs]
    write_run_record(folder, replace(record, outputs=outputs))
    write_study_into(folder, observations, cases, keep=kept_inputs)
    on_message(choice.how)
    # One bar per inference method: a NUTS fit takes 5-20 times as long as a stan-advi fit, so one count of all
    # fits would promise the end far too early.
    planned_per_method = {method: sum(job.inference == method for job in jobs) for method in methods}
    done = dict.fromkeys(planned_per_method, 0)

    def on_fit(job, seconds: float | None) -> None:
        done[job.inference] += 1
        on_message(f"{job.describe()}: " + ("kept from an earlier run" if seconds is None else f"{seconds:.1f} s"))
        on_progress(f"fitting {job.inference}", done[job.inference], planned_per_method[job.inference])

    for method, planned in planned_per_method.items():
        on_progress(f"fitting {method}", 0, planned)
    fit_study(model_data, jobs, folder.root, on_fit=on_fit, workers=workers, cluster=cluster,
              source=observations_source, keep_all_draws=keep_all_draws)


def _removable(paths: Sequence[Path], *, protected) -> list[Path]:
    """``paths`` that exist, less any that is (or holds) a protected file (an input being read)."""
    protected = [Path(p) for p in protected]
    keep = []
    for path in dict.fromkeys(paths):
        if not (path.exists() or path.is_symlink()):
            continue
        if any(same_file(path, p) or Path(p).absolute().is_relative_to(path.absolute()) for p in protected):
            continue
        keep.append(path)
    return keep


def _remove_empty_folders(folder: ResultsFolder) -> None:
    """Remove folders of the layout that an earlier run's outputs leave empty (never a user's non-empty one)."""
    for top in (folder.posteriors_dir, folder.study_dir, folder.tables_dir, folder.figures_dir):
        if not top.is_dir():
            continue
        for path in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
            if not any(path.iterdir()):
                path.rmdir()
        if not any(top.iterdir()):
            top.rmdir()


# --------------------------------------------------------------------------------------------
# analyse


def analyse(
    results: str | Path,
    *,
    report: bool = True,
    model: str | Sequence[str] | None = None,
    bootstrap: int = STATISTICS_BOOTSTRAP,
    shared_dir: str | Path | None = None,
    on_progress: Progress | None = None,
    on_message: Message | None = None,
) -> dict[str, pd.DataFrame]:
    """Every table of a results folder from its study and posteriors, written to ``tables/``; returns them.

    ``model`` analyses only the fits of those model variants (default: every variant fitted).

    The conclusions of the paper are judged here, once, and written to ``tables/conclusions.csv``.
    The reader-study statistics (:mod:`perceptiongap.stats`: accuracy, error consistency) are computed
    from the study with ``bootstrap`` case-bootstrap replicates, seeded by the run's seed.
    ``report`` also renders the figures and ``report.html`` (see :func:`report`).
    """
    _check_bootstrap(bootstrap)
    folder = ResultsFolder(Path(results))
    models = None if model is None else parse_models(model)
    on_progress, on_message = on_progress or _quiet_progress, on_message or _quiet_message
    with output_lock(folder.root, what=_LOCK_WHAT):
        tables = _analyse(folder, on_progress, on_message, models, bootstrap=bootstrap)
        if report:
            _report(folder, shared_dir, on_progress, on_message)
    return tables


def _recorded_choice(record: RunRecord | None, cases: pd.DataFrame, source: str) -> SubgroupChoice:
    """The subgroups the fits were planned with (run.json), else the default choice for the study."""
    recorded = (record.subgroups or {}) if record is not None else {}
    if recorded.get("analysed"):
        merged = recorded.get("merged")
        return SubgroupChoice(tuple(recorded["analysed"]), tuple(merged) if merged else None, recorded.get("how", ""))
    return choose_subgroups(cases, None, source=source)


def _analyse(folder: ResultsFolder, on_progress: Progress, on_message: Message,
             models: Sequence[str] | None = None, *, bootstrap: int) -> dict[str, pd.DataFrame]:
    from perceptiongap.analysis.posterior import fit_model
    from perceptiongap.analysis.tables import study_tables

    if not folder.root.is_dir():
        raise InputError("not a results folder (no such folder)", source=folder.root)
    observations, cases = read_study_of(folder)
    record, _, _ = read_run_record(folder)
    choice = _recorded_choice(record, cases, str(folder.cases_path))
    paths = posterior_files(folder, record)
    if not paths:
        raise InputError("no posteriors found; run `perceptiongap fit` first", source=folder.posteriors_dir)
    failed = [failure_path(path) for path in paths if not path.is_file() and failure_path(path).is_file()]
    missing = [path for path in paths if not path.is_file() and not failure_path(path).is_file()]
    if missing:
        raise InputError(f"{len(missing)} of the {len(paths)} planned fits are not on disk (the first: "
                         f"{folder.relative(missing[0])}); finish them with `perceptiongap fit ... --resume`",
                         source=folder.root)
    check_writable(folder.tables_dir)
    paths = [path for path in paths if path.is_file()]
    if not paths:
        raise InputError(f"every planned fit failed (the first: {folder.relative(failed[0])}); nothing to analyse",
                         source=folder.root)
    posteriors = []
    for done, path in enumerate(paths, start=1):
        posteriors.extend(read_posteriors([path]))
        on_progress("reading posteriors", done, len(paths))
    failures = [failure for failure in map(read_failure, failed)
                if models is None or str(failure.get("model", "release")) in models]
    for failure in failures:
        on_message(f"{failure.get('model', 'release')} {failure['inference']} {failure['observer_group']} (seed {failure['seed']}"
                   f"{', merged subgroups' if failure.get('merged') else ''}) failed, as Stan's ADVI fails: "
                   f"{failure['error']}; the tables use the other seeds")
    is_merged = [path.parent.name.endswith(MERGED_SUFFIX) for path in paths]
    if models is not None:
        fitted = list(dict.fromkeys(fit_model(p) for p in posteriors))
        chosen = [fit_model(p) in models for p in posteriors]
        if not any(chosen):
            raise InputError(f"has no fits of {', '.join(models)} (fitted: {', '.join(fitted)})", source="model")
        posteriors = [p for p, keep in zip(posteriors, chosen) if keep]
        is_merged = [m for m, keep in zip(is_merged, chosen) if keep]
    separate = [p for p, m in zip(posteriors, is_merged) if not m]
    merged = [p for p, m in zip(posteriors, is_merged) if m]
    on_progress("analysing", 0, None)
    tables = study_tables(observations, cases, separate, merged, subgroups=choice.analysed,
                          merged_subgroups=choice.merged, dense_groups=dense_groups(observations),
                          failures=failures, source=str(folder.observations_path))
    add_outputs(folder, [folder.table_path(name) for name in tables])
    for name, table in tables.items():
        write_results_table(folder, name, table)
    on_progress("analysing", 1, 1)
    lines = warning_summary(tables["fits"])
    if lines:
        on_message(f"diagnostic warnings (each fit in {folder.table_path('fits')}, grouped in the report):")
        for line in lines:
            on_message(f"- {line}")
    seed = record.seed if record is not None and record.seed is not None else 0
    statistics = _reader_study_statistics(folder, observations, cases, choice, seed=seed, bootstrap=bootstrap,
                                          on_progress=on_progress, on_message=on_message)
    return {**tables, **statistics}


def _reader_study_statistics(folder: ResultsFolder, observations: pd.DataFrame, cases: pd.DataFrame,
                             choice: SubgroupChoice, *, seed: int, bootstrap: int, on_progress: Progress,
                             on_message: Message) -> dict[str, pd.DataFrame]:
    """Accuracy and error consistency of the study (``perceptiongap.stats``) into ``tables/``, recorded in run.json.

    A study the statistics cannot take (e.g. no reader read a non-malignant breast unperturbed, so
    the readers' operating point is undefined) keeps its other tables: the statistics are skipped
    with a message saying why, recorded as such, and earlier ones are removed rather than left stale.
    """
    from perceptiongap.stats.operating_point import default_operating_points
    from perceptiongap.stats.outputs import statistics_tables

    points = default_operating_points(observations)
    task = "reader-study statistics"
    on_progress(task, 0, None)
    try:
        tables = statistics_tables(
            observations, cases, seed=seed, n_bootstrap=bootstrap, operating_points=points,
            subgroups=choice.analysed, merged_subgroups=choice.merged,
            progress=lambda stage, done, total: on_progress(f"{task}: {stage}", done, total))
    except InputError as error:
        remove_paths([p for p in (folder.table_path(n) for n in STATISTICS_TABLE_NAMES) if p.exists()])
        record_statistics(folder, {"skipped": error.message})
        on_message(f"reader-study statistics skipped: {error.message}")
        return {}
    add_outputs(folder, [folder.table_path(name) for name in STATISTICS_TABLE_NAMES])
    for name in STATISTICS_TABLE_NAMES:
        write_results_table(folder, name, tables[name])
    record_statistics(folder, {"seed": int(seed), "bootstrap": int(bootstrap),
                               "operating_points": [point.name for point in points],
                               "subgroups": list(choice.analysed),
                               "merged_subgroups": list(choice.merged) if choice.merged else None})
    on_progress(task, 1, 1)
    return {name: tables[name] for name in STATISTICS_TABLE_NAMES}


# --------------------------------------------------------------------------------------------
# report


def report(
    results: str | Path,
    *,
    shared_dir: str | Path | None = None,
    on_progress: Progress | None = None,
    on_message: Message | None = None,
) -> Path:
    """Render ``figures/`` and ``report.html`` of an analysed results folder (nothing is refitted).

    ``shared_dir`` is the folder holding the sample mammograms for the filtering figure (default
    ``$PERCEPTIONGAP_SHARED``; without either the figure is skipped with a note). Returns the
    report's path.
    """
    folder = ResultsFolder(Path(results))
    with output_lock(folder.root, what=_LOCK_WHAT):
        return _report(folder, shared_dir, on_progress or _quiet_progress, on_message or _quiet_message)


def _shared_dir(shared_dir: str | Path | None) -> Path | None:
    if shared_dir is not None:
        return Path(shared_dir)
    configured = os.environ.get(SHARED_ENV)
    return Path(configured) if configured else None


def _report(folder: ResultsFolder, shared_dir, on_progress: Progress, on_message: Message) -> Path:
    from perceptiongap.report.html import write_report

    results = read_results(folder.root)
    check_writable(folder.root)
    rendered = 0
    on_message("rendering the figures and the report (about a minute)")
    on_progress("rendering figures", 0, None)

    def on_figure(name: str) -> None:
        nonlocal rendered
        rendered += 1
        on_progress("rendering figures", rendered, None)

    return write_report(results, shared_dir=_shared_dir(shared_dir), on_figure=on_figure)


# --------------------------------------------------------------------------------------------
# reproduce


def reproduce(
    *,
    data: str | Path | None = None,
    out: str | Path = DEFAULT_RESULTS_DIR,
    inference: str | Sequence[str] = DEFAULT_INFERENCE,
    model: str | Sequence[str] = DEFAULT_MODEL,
    seed: int = 0,
    advi_seeds: int = 5,
    force: bool = False,
    resume: bool = False,
    bootstrap: int = STATISTICS_BOOTSTRAP,
    shared_dir: str | Path | None = None,
    keep_all_draws: bool = False,
    workers: int | None = None,
    cluster: str | None = None,
    on_progress: Progress | None = None,
    on_message: Message | None = None,
) -> Path:
    """Reproduce every number of the paper from the authors' released predictions into ``out``.

    Finds the release (``data``, else ``$PERCEPTIONGAP_DATA``, else the user cache, else a
    checksum-verified download), converts it, fits every observer group (separate and merged
    subgroups), analyses the fits, computes the reader-study statistics (``bootstrap`` replicates,
    see :func:`analyse`) and renders the report. Options as in :func:`fit`. Returns ``out``.
    """
    from perceptiongap.release import REQUIRED_FILES, import_release, locate_release

    methods = parse_inference(inference)
    models = parse_models(model)
    _check_options(seed=seed, advi_seeds=advi_seeds, force=force, resume=resume)
    _check_cluster(cluster, workers)
    _check_bootstrap(bootstrap)
    _use_host_devices_for_nuts(methods)  # first: before any JAX computation
    on_progress, on_message = on_progress or _quiet_progress, on_message or _quiet_message
    folder = ResultsFolder(Path(out))
    with output_lock(folder.root, what=_LOCK_WHAT):
        check_out_dir(folder.root, force=force, resume=resume)
        check_writable(folder.root)
        start = time.perf_counter()
        release_dir = locate_release(data, on_progress=lambda done, total: on_progress("downloading", done, total))
        on_message(f"data: {release_dir} ({_release_origin(data)}; SHA-256 of all {len(REQUIRED_FILES)} release "
                   "files verified)")
        observations, cases = import_release(release_dir)
        _fit_into(
            folder, observations, cases, stage="reproduce", methods=methods, models=models, seed=seed,
            advi_seeds=advi_seeds, cluster=cluster,
            merged=True, subgroups=None, force=force, resume=resume,
            inputs={name: release_dir / name for name in REQUIRED_FILES}, record_inputs=False,
            observations_source=str(release_dir), cases_source=str(release_dir / "exam_info.csv"),
            data_dir=release_dir, workers=workers, keep_all_draws=keep_all_draws, on_progress=on_progress,
            on_message=on_message,
        )
        _analyse(folder, on_progress, on_message, bootstrap=bootstrap)
        finish_run(folder, time.perf_counter() - start)  # what the report shows: fits and analysis
        _report(folder, shared_dir, on_progress, on_message)
        finish_run(folder, time.perf_counter() - start)  # the whole run, report included
    return folder.root


def _release_origin(data: str | Path | None) -> str:
    """Where :func:`~perceptiongap.release.locate_release` took the release from, in words."""
    from perceptiongap.release.source import DATA_ENV

    if data is not None:
        return "the folder given as --data"
    if os.environ.get(DATA_ENV):
        return f"${DATA_ENV}"
    return "the user cache (downloaded there if it was missing)"
