"""Progress of a study, per reader: done / total, time per exam, last activity."""

from __future__ import annotations

import sqlite3

import numpy as np

from perceptiongap.readers.folder import StudyInfo
from perceptiongap.readers.readings import iso

__all__ = ["progress"]


def _median(values: list[float]) -> float | None:
    return float(np.median(values)) if values else None


def progress(connection: sqlite3.Connection, study: StudyInfo) -> dict:
    """Per reader: submitted / total exams (and practice), median wall and active seconds per exam.

    ``median_seconds`` is the median of ``submitted_at - opened_at`` (server clock, breaks
    included); ``median_active_seconds`` the median of the page's active time. ``missing_readings``
    counts study (not practice) readings not yet submitted, over all readers.
    """
    readers = connection.execute("SELECT id, name FROM readers ORDER BY list_order").fetchall()
    rows = connection.execute(
        "SELECT reader_id, practice, status, opened_at, submitted_at, active_seconds FROM readings"
    ).fetchall()
    last = dict(connection.execute("SELECT reader_id, max(at) FROM events GROUP BY reader_id").fetchall())
    issued = dict(connection.execute(
        "SELECT reader_id, issued_at FROM tokens WHERE role = 'reader'").fetchall())
    per_reader = {reader["id"]: [] for reader in readers}
    for row in rows:
        per_reader[row["reader_id"]].append(row)
    table = []
    missing = 0
    for reader in readers:
        mine = per_reader[reader["id"]]
        submitted = [r for r in mine if r["status"] == "submitted"]
        missing += sum(1 for r in mine if not r["practice"] and r["status"] != "submitted")
        table.append({
            "id": reader["id"],
            "name": reader["name"],
            "done": len(submitted),
            "total": len(mine),
            "practice_done": sum(1 for r in submitted if r["practice"]),
            "practice_total": sum(1 for r in mine if r["practice"]),
            "median_seconds": _median([r["submitted_at"] - r["opened_at"] for r in submitted]),
            "median_active_seconds": _median([r["active_seconds"] for r in submitted]),
            "last_activity": iso(last.get(reader["id"])),
            "link_issued_at": iso(issued.get(reader["id"])),
        })
    record = study.record
    return {
        "study": {
            "title": record["title"],
            "mode": record["mode"],
            "design": record["design"],
            "readers": len(readers),
            "exams": len(record["study_exams"]),
            "practice": len(record["practice_exams"]),
        },
        "readers": table,
        "missing_readings": missing,
    }
