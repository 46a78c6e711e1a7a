"""A study folder: what ``perceptiongap study design`` writes and every other command reads.

::

    STUDY/
      study.sqlite      readers, exams, cases, images, readings (design and answers), events, links
      study.json        the design's record: request, seed and generator, balance, inputs' SHA-256
      images/<id>.png   16-bit greyscale PNG, as sent to readers
      images/<id>.json  its sidecar

The folder is self-contained: it needs none of the input files after design. The database is the
source of truth (its ``meta`` table holds the request and the record); ``study.json`` is a readable
copy. Design is resumable: the database is written first (atomically), then the images one view at
a time, each recorded with its SHA-256 once it is on disk; re-running the same command finishes the
images that are missing.
"""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from perceptiongap import __version__
from perceptiongap.errors import InputError
from perceptiongap.files import PARTIAL_SUFFIX, atomic_path, atomic_write_text, partial_files, remove_paths, sha256_file
from perceptiongap.locks import output_lock
from perceptiongap.readers import db
from perceptiongap.readers.design import GENERATOR, Design, make_design
from perceptiongap.readers.images import IMAGE_FOLDER, ImageJob, WindowPreset, image_id, prepare_exam
from perceptiongap.study import read_cases, read_table
from perceptiongap.vocabulary import VIEWS, severity_mm, validate_cutoffs

__all__ = [
    "STUDY_JSON",
    "StudyInfo",
    "create_study",
    "open_study",
    "read_readers",
    "reading_id",
]

STUDY_JSON = "study.json"
#: Progress callback: ``progress(done, total)`` in exams whose images are prepared.
Progress = Callable[[int, int], None]


def reading_id(seed: int, reader: str, exam: str) -> str:
    """The opaque id of one reading: 32 hex characters of a SHA-256."""
    return hashlib.sha256(f"reading\0{seed}\0{reader}\0{exam}".encode()).hexdigest()[:32]


def read_readers(path: str | Path) -> list[tuple[str, str]]:
    """``readers.csv``: columns ``reader`` (id) and optional ``name`` (display name) -> [(id, name)]."""
    table = read_table(path)
    if "reader" not in table.columns:
        raise InputError("missing column 'reader'", source=path)
    ids = table["reader"].astype("string").fillna("").str.strip()
    names = (table["name"].astype("string").fillna("").str.strip() if "name" in table.columns else ids)
    for row, reader in enumerate(ids, start=1):
        if reader == "":
            raise InputError(f"column 'reader', row {row}: empty value", source=path)
    duplicated = ids.duplicated().to_numpy()
    if duplicated.any():
        row = int(np.flatnonzero(duplicated)[0]) + 1
        raise InputError(f"column 'reader', row {row}: reader {ids.iloc[row - 1]!r} is listed twice", source=path)
    if ids.empty:
        raise InputError("no readers", source=path)
    return [(str(i), str(n) or str(i)) for i, n in zip(ids, names)]


@dataclass(frozen=True)
class StudyInfo:
    """What the server and the commands need to know of a study (from the database's meta table)."""

    folder: Path
    record: dict

    @property
    def database(self) -> Path:
        return self.folder / db.DB_NAME

    @property
    def images(self) -> Path:
        return self.folder / IMAGE_FOLDER

    @property
    def mode(self) -> str:
        return self.record["mode"]

    @property
    def title(self) -> str:
        return self.record["title"]


def open_study(folder: str | Path, *, require_ready: bool = True) -> StudyInfo:
    """Read a study folder's record; refuses a folder that is not a (finished) study."""
    folder = Path(folder)
    if not (folder / db.DB_NAME).is_file():
        raise InputError("not a study folder (no study.sqlite); run `perceptiongap study design` first", source=folder)
    connection = db.connect(folder / db.DB_NAME, readonly=True)
    try:
        meta = dict(connection.execute("SELECT key, value FROM meta").fetchall())
    finally:
        connection.close()
    if require_ready and meta.get("ready") != "1":
        raise InputError(
            "the study's images are not all prepared; re-run the same `perceptiongap study design` command to finish",
            source=folder,
        )
    return StudyInfo(folder=folder, record=json.loads(meta["record"]))


def _exam_subgroups(cases: pd.DataFrame, exams: Sequence[str], source: str) -> np.ndarray:
    lookup = {(e, b): g for e, b, g in zip(cases["exam"], cases["breast"], cases["subgroup"])}
    subgroups = np.empty((len(exams), 2), dtype=object)
    for index, exam in enumerate(exams):
        for column, breast in enumerate(("L", "R")):
            if (exam, breast) not in lookup:
                raise InputError(f"exam {exam!r} breast {breast} has no row (every exam needs both breasts)",
                                 source=source)
            subgroups[index, column] = lookup[exam, breast]
    return subgroups


def _format_cutoff(cutoff: float) -> str | float:
    return "inf" if math.isinf(cutoff) else cutoff


def _request(
    exams_csv: Path, cases_csv: Path, readers_csv: Path, *, mode: str, design: str, seed: int,
    cutoffs: Sequence[float], practice: int, variant: str, pixel_mm, windows: Sequence[WindowPreset],
    title: str, observer_group: str,
) -> dict:
    return {
        "mode": mode,
        "design": design,
        "seed": seed,
        "cutoffs_per_mm": [_format_cutoff(c) for c in cutoffs],
        "practice": practice,
        "variant": variant,
        "pixel_mm": pixel_mm if pixel_mm is None or isinstance(pixel_mm, float) else list(pixel_mm),
        "window_presets": [{"name": w.name, "center": w.center, "width": w.width} for w in windows],
        "title": title,
        "observer_group": observer_group,
        "inputs": {
            name: {"path": str(path.absolute()), "sha256": sha256_file(path)}
            for name, path in (("exams", exams_csv), ("cases", cases_csv), ("readers", readers_csv))
        },
    }


def _same_request(record: dict, request: dict) -> bool:
    """True if a study's record was made by ``request`` (the same options and input files' bytes)."""
    def key(values: dict) -> dict:
        inputs = {name: value["sha256"] for name, value in values["inputs"].items()}
        return {**{k: values.get(k) for k in request if k != "inputs"}, "inputs": inputs}

    return key(record) == key(request)


def _build_database(
    path: Path, request: dict, plan: Design, exam_images: dict, cases: pd.DataFrame, readers: Sequence[tuple[str, str]],
    cutoffs: Sequence[float],
) -> None:
    """Write the design into a new database at ``path`` (a temporary name; the caller renames it)."""
    connection = db.connect(path, create=True)
    try:
        db.create_schema(connection)
        severities = [float(severity_mm(c)) for c in cutoffs]
        with db.write(connection):
            record = {
                "format": "perceptiongap reader study",
                "format_version": db.SCHEMA_VERSION,
                **request,
                "severities_mm": severities,
                "generator": GENERATOR,
                "readers": [{"id": r, "name": n} for r, n in readers],
                "study_exams": list(plan.study_exams),
                "practice_exams": list(plan.practice_exams),
                "balance": plan.balance.as_dict() if plan.balance else None,
                "perceptiongap_version": __version__,
            }
            connection.executemany("INSERT INTO meta (key, value) VALUES (?, ?)",
                                   [("record", json.dumps(record)), ("ready", "0")])
            connection.executemany(
                "INSERT INTO readers (id, name, list_order) VALUES (?, ?, ?)",
                [(r, n, i) for i, (r, n) in enumerate(readers)],
            )
            connection.executemany(
                "INSERT INTO exams (id, practice) VALUES (?, ?)",
                [(e, 0) for e in plan.study_exams] + [(e, 1) for e in plan.practice_exams],
            )
            design_exams = set(plan.study_exams) | set(plan.practice_exams)
            connection.executemany(
                "INSERT INTO cases (exam, breast, label, subgroup) VALUES (?, ?, ?, ?)",
                [row for row in cases[["exam", "breast", "label", "subgroup"]].itertuples(index=False, name=None)
                 if row[0] in design_exams],
            )
            needed = sorted({(exam, level) for levels in plan.severity for exam, level in levels.items()})
            images = []
            for exam, level in needed:
                sources, spacings = exam_images[exam]
                for view, source, spacing in zip(VIEWS, sources, spacings):
                    images.append((image_id(plan.seed, exam, severities[level], view), exam, severities[level],
                                   cutoffs[level], view, json.dumps({"path": source, "pixel_mm": spacing})))
            connection.executemany(
                "INSERT INTO images (id, exam, severity_mm, cutoff_per_mm, view, source) VALUES (?, ?, ?, ?, ?, ?)",
                images,
            )
            readings = []
            practice = set(plan.practice_exams)
            for reader, order, levels in zip(plan.readers, plan.order, plan.severity):
                for position, exam in enumerate(order, start=1):
                    readings.append((reading_id(plan.seed, reader, exam), reader, exam, severities[levels[exam]],
                                     position, int(exam in practice)))
            connection.executemany(
                "INSERT INTO readings (id, reader_id, exam, severity_mm, position, practice) VALUES (?, ?, ?, ?, ?, ?)",
                readings,
            )
    finally:
        connection.close()


def _write_record(folder: Path, connection: sqlite3.Connection) -> dict:
    record = json.loads(connection.execute("SELECT value FROM meta WHERE key = 'record'").fetchone()[0])
    atomic_write_text(folder / STUDY_JSON, json.dumps(record, indent=2) + "\n")
    return record


def _prepare_images(folder: Path, connection: sqlite3.Connection, record: dict, progress: Progress | None) -> None:
    rows = connection.execute(
        "SELECT id, exam, severity_mm, cutoff_per_mm, view, source, sha256 FROM images ORDER BY exam, view, severity_mm"
    ).fetchall()
    by_exam: dict[str, list] = {}
    for row in rows:
        by_exam.setdefault(row["exam"], []).append(row)
    presets = [WindowPreset(w["name"], w["center"], w["width"]) for w in record["window_presets"]]
    image_folder = folder / IMAGE_FOLDER
    image_folder.mkdir(parents=True, exist_ok=True)
    total = len(by_exam)

    def _prepared(row) -> bool:
        png = image_folder / f"{row['id']}.png"
        return row["sha256"] is not None and png.is_file() and (image_folder / f"{row['id']}.json").is_file()

    todo = [exam for exam, group in by_exam.items() if not all(_prepared(r) for r in group)]
    done = total - len(todo)
    if progress:
        progress(done, total)

    def record_image(identifier: str, sha256: str, height: int, width: int) -> None:
        with db.write(connection):
            connection.execute("UPDATE images SET sha256 = ?, rows = ?, columns = ? WHERE id = ?",
                               (sha256, height, width, identifier))

    for exam in todo:
        jobs = []
        for view in VIEWS:
            group = [r for r in by_exam[exam] if r["view"] == view and not _prepared(r)]
            if not group:
                continue
            source = json.loads(group[0]["source"])
            spacing = source["pixel_mm"]
            jobs.append(ImageJob(
                exam=exam, view=view, source=source["path"],
                pixel_mm=tuple(spacing) if isinstance(spacing, list) else spacing,
                levels=tuple((r["severity_mm"], r["cutoff_per_mm"], r["id"]) for r in group),
            ))
        prepare_exam(jobs, image_folder, variant=record["variant"], presets=presets, done=record_image)
        done += 1
        if progress:
            progress(done, total)
    with db.write(connection):
        connection.execute("UPDATE meta SET value = '1' WHERE key = 'ready'")


def create_study(
    exams_csv: str | Path,
    cases_csv: str | Path,
    readers_csv: str | Path,
    out: str | Path,
    *,
    mode: str = "perturbation",
    design: str = "balanced",
    seed: int = 0,
    cutoffs_per_mm: Sequence[float] = (),
    practice: int = 0,
    variant: str = "physical",
    pixel_mm=None,
    windows: Sequence[WindowPreset] = (),
    title: str | None = None,
    observer_group: str = "radiologists",
    force: bool = False,
    progress: Progress | None = None,
) -> StudyInfo:
    """Design a study into the folder ``out`` and prepare its images (resumable); return its info.

    ``cutoffs_per_mm`` are the perturbation mode's severities (``inf`` = unperturbed); annotation
    mode reads every exam unperturbed and takes none. A folder that already holds this same request
    is resumed; one that holds another study is refused, or with ``force`` replaced, but never once
    a reader has opened an exam.
    """
    from perceptiongap.predict.jobs import read_exams

    exams_csv, cases_csv, readers_csv, out = Path(exams_csv), Path(cases_csv), Path(readers_csv), Path(out)
    for option, path in (("--exams", exams_csv), ("--cases", cases_csv), ("--readers", readers_csv)):
        if not path.is_file():
            raise InputError(f"no such file {str(path)!r}", source=option)
    if mode == "annotation":
        if cutoffs_per_mm and any(not math.isinf(c) for c in cutoffs_per_mm):
            raise InputError("annotation studies show every exam unperturbed; leave out the cut-offs",
                             source="--cutoffs-per-mm")
        cutoffs: tuple[float, ...] = (math.inf,)
    else:
        cutoffs = validate_cutoffs(cutoffs_per_mm)
        if not cutoffs:
            raise InputError("a perturbation study needs at least one cut-off", source="--cutoffs-per-mm")
    if variant not in ("physical", "release"):
        raise InputError(f"must be physical or release, got {variant!r}", source="--variant")
    if not observer_group.strip():
        raise InputError("must not be empty", source="--observer-group")
    with output_lock(out, what="study folder"):
        database = out / db.DB_NAME
        if out.is_dir():  # a run killed while it built the database left it half-written: not a study yet
            remove_paths(out.glob(f".{db.DB_NAME}.*{PARTIAL_SUFFIX}"))
        request = _request(
            exams_csv, cases_csv, readers_csv, mode=mode, design=design, seed=seed, cutoffs=cutoffs,
            practice=practice, variant=variant, pixel_mm=pixel_mm, windows=windows,
            title=title or out.absolute().name, observer_group=observer_group.strip(),
        )
        if database.is_file():
            connection = db.connect(database)
            try:
                old = json.loads(connection.execute("SELECT value FROM meta WHERE key = 'record'").fetchone()[0])
                opened = connection.execute("SELECT count(*) FROM readings WHERE status != 'assigned'").fetchone()[0]
            finally:
                connection.close()
            if not _same_request(old, request):
                if opened:
                    raise InputError(
                        f"holds another study that readers have started ({opened} exams opened); "
                        "design the new study into another folder", source=out,
                    )
                if not force:
                    raise InputError("holds another study design; pass --force to replace it, or choose another folder",
                                     source=out)
                _remove_study(out)
        elif out.exists() and not out.is_dir():
            raise InputError("is a file; the study needs a folder", source=out)
        elif out.exists() and any(out.iterdir()):
            raise InputError("is not empty and holds no study; choose an empty or new folder", source=out)

        if not database.is_file():
            exams = read_exams(exams_csv, pixel_mm)
            exam_ids = [e.exam for e in exams]
            cases = read_cases(cases_csv)
            subgroups = _exam_subgroups(cases, exam_ids, str(cases_csv))
            readers = read_readers(readers_csv)
            plan = make_design(exam_ids, subgroups, [r for r, _ in readers], len(cutoffs), mode=mode,
                               design=design, seed=seed, practice=practice)
            exam_images = {e.exam: (list(e.paths), [list(p) if isinstance(p, tuple) else p for p in e.pixel_mm])
                           for e in exams}
            out.mkdir(parents=True, exist_ok=True)
            with atomic_path(database) as tmp:
                _build_database(tmp, request, plan, exam_images, cases, readers, cutoffs)
        remove_paths(partial_files(out))  # what a killed run left half-written; we hold the folder
        connection = db.connect(database)
        try:
            record = _write_record(out, connection)
            _prepare_images(out, connection, record, progress)
        finally:
            connection.close()
    return open_study(out)


def _remove_study(folder: Path) -> None:
    """Remove a study that no reader has started (``--force``): its database, record and images."""
    for name in (db.DB_NAME, f"{db.DB_NAME}-wal", f"{db.DB_NAME}-shm", STUDY_JSON):
        (folder / name).unlink(missing_ok=True)
    image_folder = folder / IMAGE_FOLDER
    if image_folder.is_dir():
        for path in image_folder.iterdir():
            if path.suffix in (".png", ".json"):
                path.unlink()
