"""A study's answers as the project's tables: Observations, Cases, readings, ROIs.

``perceptiongap study export STUDY --out DIR`` writes

- ``observations.csv``: one row per (reader, exam, breast) of every submitted study exam
  (practice exams never), ``observer_kind = human``, ``prediction`` = the malignant answer (0/1),
  ``scheme = entire``, plus ``birads``, ``pom`` (percent), ``seconds`` (the page's active seconds)
  and ``reading_order`` (the exam's position in the reader's list, practice exams included);
- ``cases.csv``: the study exams' breasts with label and subgroup;
- ``readings.csv``: one row per reading, submitted or not, practice included, with the server's
  timestamps (``opened_at``, ``submitted_at``, ``wall_seconds``) and ``active_seconds``;
- ``rois.csv`` (annotation mode): ``exam, view, annotator, x0, y0, x1, y1`` in stored-image
  pixels, the ROI file ``perturb`` and ``predict`` read (annotator = reader id).

Observations and Cases go through the data model's validation, so ``perceptiongap fit`` takes them
as they are. A study in progress can be exported; the summary says how many readings are missing.
The database is read through a read-only connection, so exporting a study being served is safe.
"""

from __future__ import annotations

import io
import sqlite3
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from perceptiongap.errors import InputError
from perceptiongap.locks import output_lock
from perceptiongap.readers import db
from perceptiongap.readers.folder import StudyInfo, open_study
from perceptiongap.readers.readings import iso
from perceptiongap.study import validate_cases, validate_observations, write_table

__all__ = ["EXPORT_FILES", "ExportSummary", "export_study", "export_tables", "export_zip"]

EXPORT_FILES: tuple[str, ...] = ("observations", "cases", "readings", "rois")


@dataclass(frozen=True)
class ExportSummary:
    """What an export holds: readings submitted and missing (study exams only), files written."""

    observations: int
    submitted: int
    missing: int
    files: tuple[Path, ...]


def export_tables(connection: sqlite3.Connection, study: StudyInfo) -> dict[str, pd.DataFrame]:
    """The export's tables (``rois`` only in annotation mode), validated where the data model applies."""
    answers = pd.read_sql_query(
        "SELECT r.reader_id AS observer, a.exam, a.breast, r.severity_mm, a.malignant, a.birads, a.pom, "
        "r.active_seconds AS seconds, r.position AS reading_order "
        "FROM answers a JOIN readings r ON r.id = a.reading_id JOIN readers p ON p.id = r.reader_id "
        "WHERE r.practice = 0 ORDER BY p.list_order, r.position, a.breast",
        connection,
    )
    observations = pd.DataFrame({
        "observer_group": study.record["observer_group"],
        "observer": answers["observer"],
        "observer_kind": "human",
        "exam": answers["exam"],
        "breast": answers["breast"],
        "severity_mm": answers["severity_mm"],
        "scheme": "entire",
        "annotator": "",
        "prediction": answers["malignant"].astype(float),
        "birads": answers["birads"],
        "pom": answers["pom"],
        "seconds": answers["seconds"],
        "reading_order": answers["reading_order"],
    })
    observations = validate_observations(observations, source="observations")
    cases = pd.read_sql_query(
        "SELECT c.exam, c.breast, c.label, c.subgroup FROM cases c JOIN exams e ON e.id = c.exam "
        "WHERE e.practice = 0 ORDER BY c.exam, c.breast",
        connection,
    )
    cases = validate_cases(cases, source="cases")
    readings = pd.read_sql_query(
        "SELECT r.reader_id AS reader, r.exam, r.practice, r.position, r.severity_mm, r.status, "
        "r.opened_at, r.submitted_at, r.active_seconds FROM readings r JOIN readers p ON p.id = r.reader_id "
        "ORDER BY p.list_order, r.position",
        connection,
    )
    readings["wall_seconds"] = readings["submitted_at"] - readings["opened_at"]
    readings["practice"] = readings["practice"].astype(bool)
    readings["opened_at"] = [iso(v) if pd.notna(v) else None for v in readings["opened_at"]]
    readings["submitted_at"] = [iso(v) if pd.notna(v) else None for v in readings["submitted_at"]]
    tables = {"observations": observations, "cases": cases, "readings": readings}
    if study.mode == "annotation":
        tables["rois"] = pd.read_sql_query(
            "SELECT r.exam, o.view, r.reader_id AS annotator, o.x0, o.y0, o.x1, o.y1 FROM rois o "
            "JOIN readings r ON r.id = o.reading_id JOIN readers p ON p.id = r.reader_id "
            "WHERE r.practice = 0 ORDER BY r.exam, o.view, p.list_order, o.id",
            connection,
        )
    return tables


def _counts(readings: pd.DataFrame) -> tuple[int, int]:
    study = readings[~readings["practice"]]
    submitted = int((study["status"] == "submitted").sum())
    return submitted, int(len(study) - submitted)


def export_study(
    folder: str | Path, out: str | Path, *, file_format: str = "csv", force: bool = False
) -> ExportSummary:
    """Write the export's files into ``out`` (refusing to overwrite them unless ``force``)."""
    if file_format not in ("csv", "parquet"):
        raise InputError(f"must be csv or parquet, got {file_format!r}", source="--format")
    study = open_study(folder)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError("is a file; the export needs a folder", source=out)
    with output_lock(out, what="export folder"):
        connection = db.connect(study.database, readonly=True)
        try:
            tables = export_tables(connection, study)
        finally:
            connection.close()
        paths = {name: out / f"{name}.{'csv' if name in ('readings', 'rois') else file_format}" for name in tables}
        existing = [p for p in paths.values() if p.exists()]
        if existing and not force:
            raise InputError(f"{existing[0].name} exists; pass --force to overwrite the export", source=out)
        for name, table in tables.items():
            write_table(table, paths[name])
    submitted, missing = _counts(tables["readings"])
    return ExportSummary(observations=len(tables["observations"]), submitted=submitted, missing=missing,
                         files=tuple(paths.values()))


def export_zip(connection: sqlite3.Connection, study: StudyInfo) -> bytes:
    """The export's tables as CSV files in one zip (the admin page's download)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, table in export_tables(connection, study).items():
            archive.writestr(f"{name}.csv", table.to_csv(index=False))
    return buffer.getvalue()
