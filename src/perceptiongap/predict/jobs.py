"""The work of a prediction run: which (exam, scheme, annotator) jobs exist, and how one is done.

A *job* is one exam under one perturbation scheme (and, for the ROI schemes, one annotator's
boxes), predicted at every severity. Jobs of the same exam are grouped into one *task*, the unit
sent to a worker: the task perturbs each of the exam's four views with
:func:`perceptiongap.perturb.perturb_image` (read once, low-pass filtered once for all cut-offs,
one region per job), and feeds the perturbed exams to the network in batches. Only one task's
filtered stacks and one batch of perturbed exams are in memory at a time.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from perceptiongap import perturb
from perceptiongap.errors import InputError
from perceptiongap.perturb.filters import parse_pixel_mm
from perceptiongap.predict.plugin import VIEWS, Exam, PixelMM, call_model, load_model
from perceptiongap.vocabulary import SCHEMES, severity_mm

__all__ = [
    "TASK_COLUMNS",
    "ExamImages",
    "Job",
    "Task",
    "cached_model",
    "make_jobs",
    "make_tasks",
    "perturbed_exams",
    "read_boxes",
    "read_exams",
    "run_task",
]

#: Columns of the rows a task returns (the per-prediction part of an Observations row).
TASK_COLUMNS = ("exam", "breast", "severity_mm", "scheme", "annotator", "prediction")


@dataclass(frozen=True)
class ExamImages:
    """The four image files of one exam, in the order of ``VIEWS``, with optional pixel spacings."""

    exam: str
    paths: tuple[str, ...]
    pixel_mm: tuple[PixelMM | None, ...]


@dataclass(frozen=True)
class Job:
    """One exam under one scheme (and one annotator's ROIs for the ROI schemes), all severities."""

    exam: str
    scheme: str
    annotator: str = ""

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.exam, self.scheme, self.annotator)


@dataclass(frozen=True)
class Task:
    """The jobs of one exam that are still to do, and what a worker needs to do them."""

    images: ExamImages
    jobs: tuple[Job, ...]
    cutoffs_per_mm: tuple[float, ...]
    variant: str = "physical"
    #: (annotator, view) -> that annotator's ROI boxes on that view of this exam.
    boxes: Mapping[tuple[str, str], tuple[perturb.RoiBox, ...]] = field(default_factory=dict)
    #: Width in mm of the soft edge of the ROI schemes (0 = a hard edge).
    feather_mm: float = 0.0
    #: FFT threads per task: 1 where several worker processes share the cores, else all (-1).
    fft_workers: int = -1


def read_exams(path: str | Path, pixel_mm: float | tuple[float, float] | None = None) -> list[ExamImages]:
    """Read ``EXAMS.csv``: one row per image, columns ``exam, view, path`` and optional ``pixel_mm``.

    Relative paths are relative to the CSV's folder. Every exam needs each of the four views
    exactly once. ``pixel_mm`` (the column, else the argument) is required for PNG files; DICOM
    files carry their own spacing. Returns the exams in order of first appearance.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("no such file", source=path)
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as error:  # pandas raises several types for unreadable CSV
        raise InputError(f"cannot read CSV: {str(error).strip().splitlines()[0]}", source=path) from None
    missing = [c for c in ("exam", "view", "path") if c not in table.columns]
    if missing:
        raise InputError(f"missing column(s) {', '.join(repr(c) for c in missing)}", source=path)
    if table.empty:
        raise InputError("no rows", source=path)
    table = table.apply(lambda column: column.str.strip())
    for column in ("exam", "path"):
        empty = (table[column] == "").to_numpy()
        if empty.any():
            raise InputError(f"column {column!r}, row {int(np.flatnonzero(empty)[0]) + 1}: empty value", source=path)
    bad_view = ~table["view"].isin(VIEWS).to_numpy()
    if bad_view.any():
        row = int(np.flatnonzero(bad_view)[0])
        raise InputError(
            f"column 'view', row {row + 1}: {table['view'].iloc[row]!r} is not one of {', '.join(VIEWS)}", source=path
        )
    duplicated = table.duplicated(["exam", "view"]).to_numpy()
    if duplicated.any():
        row = int(np.flatnonzero(duplicated)[0])
        raise InputError(
            f"row {row + 1}: exam {table['exam'].iloc[row]!r} has view {table['view'].iloc[row]} twice", source=path
        )

    column = table["pixel_mm"] if "pixel_mm" in table.columns else pd.Series("", index=table.index)
    spacings: list[PixelMM | None] = []
    for row, text in enumerate(column):
        try:
            spacings.append(parse_pixel_mm(text) if text else pixel_mm)
        except InputError as error:
            raise InputError(f"column 'pixel_mm', row {row + 1}: {str(error).removeprefix('pixel_mm: ')}",
                             source=path) from None

    resolved = []
    for row, (text, spacing) in enumerate(zip(table["path"], spacings)):
        image_path = Path(text) if Path(text).is_absolute() else path.parent / text
        if not image_path.is_file():
            raise InputError(f"column 'path', row {row + 1}: no such file {str(image_path)!r}", source=path)
        if spacing is None and not perturb.images.is_dicom(image_path):
            raise InputError(
                f"row {row + 1}: {image_path.name} has no pixel spacing; add a 'pixel_mm' column or give pixel_mm",
                source=path,
            )
        resolved.append(str(image_path))
    files = {(exam, view): (file, spacing)
             for exam, view, file, spacing in zip(table["exam"], table["view"], resolved, spacings)}

    exams = []
    for exam in pd.unique(table["exam"]):
        absent = [view for view in VIEWS if (exam, view) not in files]
        if absent:
            raise InputError(f"exam {exam!r} lacks view(s) {', '.join(absent)}", source=path)
        exams.append(
            ExamImages(
                exam=str(exam),
                paths=tuple(files[exam, view][0] for view in VIEWS),
                pixel_mm=tuple(files[exam, view][1] for view in VIEWS),
            )
        )
    return exams


def read_boxes(path: str | Path) -> dict[str, dict[tuple[str, str], tuple[perturb.RoiBox, ...]]]:
    """ROI boxes (CSV or JSON, see :func:`perceptiongap.perturb.read_rois`) by exam, then by
    (annotator, view)."""
    boxes: dict[str, dict[tuple[str, str], tuple[perturb.RoiBox, ...]]] = {}
    for (exam, view, annotator), group in perturb.group_rois(perturb.read_rois(path)).items():
        boxes.setdefault(exam, {})[(annotator, view)] = group
    return boxes


def make_jobs(
    exams: Sequence[ExamImages],
    schemes: Sequence[str],
    boxes: Mapping[str, Mapping[tuple[str, str], tuple[perturb.RoiBox, ...]]] | None = None,
    source: str = "rois",
) -> list[Job]:
    """Every job of a run, in a fixed order: exams as given; per exam the schemes in ``SCHEMES``
    order; for the ROI schemes, one job per annotator who drew boxes on that exam (sorted)."""
    unknown = [s for s in schemes if s not in SCHEMES]
    if unknown:
        raise InputError(
            f"unknown scheme(s) {', '.join(unknown)}; choose from {', '.join(SCHEMES)}", source="schemes"
        )
    roi_schemes = [s for s in SCHEMES if s in schemes and s != "entire"]
    if roi_schemes and boxes is None:
        raise InputError(f"scheme(s) {', '.join(roi_schemes)} need ROI boxes: give a ROI file (rois)",
                         source="schemes")
    boxes = boxes or {}
    if roi_schemes and not any(exam.exam in boxes for exam in exams):
        raise InputError("no ROI box belongs to an exam of the exams file", source=source)
    jobs = []
    for exam in exams:
        if "entire" in schemes:
            jobs.append(Job(exam.exam, "entire"))
        annotators = sorted({annotator for annotator, _ in boxes.get(exam.exam, {})})
        jobs.extend(Job(exam.exam, scheme, annotator) for scheme in roi_schemes for annotator in annotators)
    return jobs


def make_tasks(
    exams: Sequence[ExamImages],
    jobs: Sequence[Job],
    cutoffs_per_mm: Sequence[float],
    *,
    variant: str = "physical",
    boxes: Mapping[str, Mapping[tuple[str, str], tuple[perturb.RoiBox, ...]]] | None = None,
    feather_mm: float = 0.0,
    done: set[tuple[str, str, str]] = frozenset(),
    fft_workers: int = -1,
) -> list[Task]:
    """Group the jobs not in ``done`` by exam, one task per exam that has any left."""
    boxes = boxes or {}
    pending: dict[str, list[Job]] = {}
    for job in jobs:
        if job.key not in done:
            pending.setdefault(job.exam, []).append(job)
    return [
        Task(
            images=exam,
            jobs=tuple(pending[exam.exam]),
            cutoffs_per_mm=tuple(cutoffs_per_mm),
            variant=variant,
            boxes=dict(boxes.get(exam.exam, {})),
            feather_mm=feather_mm,
            fft_workers=fft_workers,
        )
        for exam in exams
        if exam.exam in pending
    ]


def _describe(job: Job, cutoff: float) -> str:
    where = job.scheme + (f" of annotator {job.annotator!r}" if job.annotator else "")
    return f"exam {job.exam!r} at {severity_mm(cutoff)} mm ({where})"


def _region(task: Task, job: Job, view: str) -> perturb.Region:
    if job.scheme == "entire":
        return perturb.ENTIRE
    return perturb.Region(job.scheme, job.annotator, task.boxes.get((job.annotator, view), ()))


def perturbed_exams(task: Task) -> Iterator[tuple[Job, float, Exam]]:
    """Yield ``(job, cutoff, exam)`` for every job of the task and every cut-off (inf = unperturbed).

    Each view goes through :func:`perceptiongap.perturb.perturb_image` once, with one region per
    job, so the network sees exactly what ``perceptiongap perturb`` writes for the same settings:
    the same pixels, as float32.
    """
    views = {
        view: perturb.perturb_image(
            path, task.cutoffs_per_mm, pixel_mm=pixel_mm, variant=task.variant,
            regions=[_region(task, job, view) for job in task.jobs], feather_mm=task.feather_mm,
            fft_workers=task.fft_workers,
        )
        for view, path, pixel_mm in zip(VIEWS, task.images.paths, task.images.pixel_mm)
    }
    versions = {view: iter(image) for view, image in views.items()}  # job by job, cut-off by cut-off
    for job in task.jobs:
        for cutoff in task.cutoffs_per_mm:
            exam = {}
            for view, image in views.items():
                _, _, pixels = next(versions[view])
                exam[view] = (pixels.astype(np.float32), image.original.pixel_mm)
            yield job, cutoff, exam


_MODELS: dict[str, object] = {}


def cached_model(spec: str):
    """The network named ``spec``, loaded once per process (a class is instantiated once)."""
    if spec not in _MODELS:
        _MODELS[spec] = load_model(spec)
    return _MODELS[spec]


def run_task(task: Task, model_spec: str, batch_size: int) -> pd.DataFrame:
    """Predict every job of ``task`` at every cut-off; rows with columns ``TASK_COLUMNS``.

    Rows come in job order, then cut-off order, then breast (L, R). The network sees batches of
    up to ``batch_size`` perturbed exams; a bad output raises InputError naming the exam.
    """
    model = cached_model(model_spec)
    rows: list[tuple] = []
    batch: list[tuple[Job, float, Exam]] = []

    def flush() -> None:
        labels = [_describe(job, cutoff) for job, cutoff, _ in batch]
        probabilities = call_model(model, [exam for _, _, exam in batch], labels, model_spec)
        for (job, cutoff, _), pair in zip(batch, probabilities):
            for breast, prediction in zip(("L", "R"), pair):
                rows.append((job.exam, breast, severity_mm(cutoff), job.scheme, job.annotator, float(prediction)))
        batch.clear()

    for item in perturbed_exams(task):
        batch.append(item)
        if len(batch) == batch_size:
            flush()
    if batch:
        flush()
    return pd.DataFrame(rows, columns=list(TASK_COLUMNS))
