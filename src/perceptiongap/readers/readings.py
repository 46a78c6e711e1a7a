"""The reading rules: what a reader may see and do, over the study database.

A reader reads their list in order. The *current* reading is their first one not submitted, the
*next* one the reading after it. The reader is served the current reading (state, open, images,
submit, pause events) and, for preloading only, the next reading's images. Functions here take the
reader id from the caller (the server derives it from the session alone) and raise
:class:`NotFound` (HTTP 404) for anything not the reader's own and :class:`Conflict` (409) for the
reader's own readings that cannot be used now.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import sqlite3
from pathlib import Path

from perceptiongap.readers import db
from perceptiongap.readers.answers import BIRADS, MALIGNANT_BY_BIRADS, POM_RANGES, AnswerError
from perceptiongap.readers.folder import StudyInfo
from perceptiongap.readers.submission import Submission, parse_submission

__all__ = [
    "CLIENT_EVENTS",
    "HANGING_ORDER",
    "Conflict",
    "NotFound",
    "client_event",
    "find_image",
    "iso",
    "log_preload",
    "open_reading",
    "reader_state",
    "study_summary",
    "submit_reading",
]

#: The order of ``current.images``: right breast on the left, CC on top (METHOD §3).
HANGING_ORDER: tuple[str, ...] = ("R-CC", "L-CC", "R-MLO", "L-MLO")
#: Events the page may send.
CLIENT_EVENTS: tuple[str, ...] = ("paused", "unpaused")


class NotFound(Exception):
    """Not the caller's, or does not exist (HTTP 404): the same answer, so ids are not confirmed."""


class Conflict(Exception):
    """The caller's own reading, but not usable now (HTTP 409)."""


def iso(seconds: float | None) -> str | None:
    """Epoch seconds -> ISO 8601 UTC with milliseconds (``2025-01-31T12:00:00.000Z``)."""
    if seconds is None:
        return None
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@functools.lru_cache(maxsize=4096)
def _sidecar(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def study_summary(study: StudyInfo) -> dict:
    """The study part of the reader state: mode, answer rules, window presets."""
    return {
        "title": study.title,
        "mode": study.mode,
        "max_rois_per_view": db.MAX_ROIS_PER_VIEW,
        "birads": list(BIRADS),
        "pom_ranges": {b: [low, high, text] for b, (low, high, _, _, text) in POM_RANGES.items()},
        "malignant_by_birads": dict(MALIGNANT_BY_BIRADS),
        "window_presets": study.record["window_presets"],
    }


def _pending(connection: sqlite3.Connection, reader_id: str) -> list[sqlite3.Row]:
    """The current and next readings (0, 1 or 2 rows)."""
    return connection.execute(
        "SELECT id, exam, severity_mm, position, practice, status, opened_at FROM readings "
        "WHERE reader_id = ? AND status != 'submitted' ORDER BY position LIMIT 2",
        (reader_id,),
    ).fetchall()


def _images(connection: sqlite3.Connection, study: StudyInfo, reading: sqlite3.Row) -> list[dict]:
    rows = connection.execute(
        "SELECT id, view FROM images WHERE exam = ? AND severity_mm = ?", (reading["exam"], reading["severity_mm"])
    ).fetchall()
    by_view = {row["view"]: row["id"] for row in rows}
    out = []
    for view in HANGING_ORDER:
        identifier = by_view[view]
        out.append({"id": identifier, "url": f"/api/images/{identifier}.png",
                    **_sidecar(study.images / f"{identifier}.json")})
    return out


def _progress(connection: sqlite3.Connection, reader_id: str) -> dict:
    row = connection.execute(
        "SELECT count(*) AS total, coalesce(sum(status = 'submitted'), 0) AS done, "
        "coalesce(sum(practice), 0) AS practice_total, "
        "coalesce(sum(practice AND status = 'submitted'), 0) AS practice_done FROM readings WHERE reader_id = ?",
        (reader_id,),
    ).fetchone()
    total, done = row["total"], row["done"]
    return {"position": min(done + 1, total), "total": total, "done": done,
            "practice_total": row["practice_total"], "practice_done": row["practice_done"]}


def reader_state(connection: sqlite3.Connection, study: StudyInfo, reader_id: str) -> dict:
    """Everything the reading page needs (see ``GET /api/reader/state`` in the API doc)."""
    reader = connection.execute("SELECT id, name FROM readers WHERE id = ?", (reader_id,)).fetchone()
    pending = _pending(connection, reader_id)
    current = None
    if pending:
        reading = pending[0]
        current = {
            "reading": reading["id"],
            "position": reading["position"],
            "practice": bool(reading["practice"]),
            "status": reading["status"],
            "annotate": study.mode == "annotation",
            "images": _images(connection, study, reading),
        }
    following = None
    if len(pending) > 1:
        following = {"reading": pending[1]["id"], "images": _images(connection, study, pending[1])}
    return {
        "study": study_summary(study),
        "reader": {"id": reader["id"], "name": reader["name"]},
        "progress": _progress(connection, reader_id),
        "finished": current is None,
        "current": current,
        "next": following,
    }


def _own_reading(connection: sqlite3.Connection, reader_id: str, reading_id: str) -> sqlite3.Row:
    row = connection.execute(
        "SELECT * FROM readings WHERE id = ? AND reader_id = ?", (reading_id, reader_id)
    ).fetchone()
    if row is None:
        raise NotFound("no such reading")
    return row


def _require_current(connection: sqlite3.Connection, reader_id: str, reading: sqlite3.Row) -> None:
    if reading["status"] == "submitted":
        raise Conflict("this exam is already submitted; it cannot be read or changed again")
    pending = _pending(connection, reader_id)
    if not pending or pending[0]["id"] != reading["id"]:
        raise Conflict("this is not your current exam; finish the current one first")


def open_reading(connection: sqlite3.Connection, reader_id: str, reading_id: str) -> dict:
    """Start the current reading's clock (first call) or log that the reader resumed it."""
    with db.write(connection):
        reading = _own_reading(connection, reader_id, reading_id)
        _require_current(connection, reader_id, reading)
        opened_at = reading["opened_at"]
        if reading["status"] == "assigned":
            opened_at = db.now()
            connection.execute("UPDATE readings SET status = 'open', opened_at = ? WHERE id = ?",
                               (opened_at, reading_id))
            db.log_event(connection, "opened", reader_id=reader_id, reading_id=reading_id, at=opened_at)
        else:
            db.log_event(connection, "resumed", reader_id=reader_id, reading_id=reading_id)
    return {"reading": reading_id, "status": "open", "opened_at": iso(opened_at)}


def _store(connection: sqlite3.Connection, reading: sqlite3.Row, submission: Submission) -> None:
    """Write one submission (inside the caller's transaction): answers, ROIs, status, event."""
    submitted_at = db.now()
    connection.executemany(
        "INSERT INTO answers (reading_id, reader_id, exam, breast, birads, malignant, pom) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(reading["id"], reading["reader_id"], reading["exam"], breast, a.birads, int(a.malignant), a.pom)
         for breast, a in submission.answers.items()],
    )
    connection.executemany(
        "INSERT INTO rois (reading_id, view, x0, y0, x1, y1) VALUES (?, ?, ?, ?, ?, ?)",
        [(reading["id"], r.view, r.x0, r.y0, r.x1, r.y1) for r in submission.rois],
    )
    connection.execute(
        "UPDATE readings SET status = 'submitted', submitted_at = ?, active_seconds = ?, idempotency_key = ?, "
        "request_sha256 = ? WHERE id = ?",
        (submitted_at, submission.active_seconds, submission.idempotency_key, submission.fingerprint, reading["id"]),
    )
    db.log_event(connection, "submitted", reader_id=reading["reader_id"], reading_id=reading["id"], at=submitted_at)


def submit_reading(
    connection: sqlite3.Connection, study: StudyInfo, reader_id: str, reading_id: str, body: object
) -> dict:
    """Store a submission in one transaction; a retry with the same key and answers is a replay.

    Raises NotFound, Conflict, or :class:`~perceptiongap.readers.answers.AnswerError` (422).
    """
    reading = _own_reading(connection, reader_id, reading_id)
    sizes = {
        row["view"]: (row["rows"], row["columns"])
        for row in connection.execute(
            "SELECT view, rows, columns FROM images WHERE exam = ? AND severity_mm = ?",
            (reading["exam"], reading["severity_mm"]),
        )
    }
    submission = parse_submission(body, annotate=study.mode == "annotation", sizes=sizes)
    with db.write(connection):
        reading = _own_reading(connection, reader_id, reading_id)  # again, now that no one else writes
        if reading["status"] == "submitted":
            replayed = (reading["idempotency_key"] == submission.idempotency_key
                        and reading["request_sha256"] == submission.fingerprint)
            db.log_event(connection, "submit_replayed" if replayed else "submit_refused",
                         reader_id=reader_id, reading_id=reading_id)
        else:
            replayed = False
            _require_current(connection, reader_id, reading)
            if reading["status"] != "open":
                raise Conflict("open the exam (POST .../open) before submitting it")
            _store(connection, reading, submission)
        refused = reading["status"] == "submitted" and not replayed
    # Raised after the commit, so that the refusal stays in the event log.
    if refused:
        raise Conflict("this exam is already submitted; the answers given first are kept")
    stored = _own_reading(connection, reader_id, reading_id)
    return {
        "stored": True,
        "replayed": replayed,
        "reading": reading_id,
        "submitted_at": iso(stored["submitted_at"]),
        "state": reader_state(connection, study, reader_id),
    }


def client_event(connection: sqlite3.Connection, reader_id: str, reading_id: str, kind: object,
                 client_time: object = None) -> None:
    """Log the page's pause button (``paused``/``unpaused``) on the current, open reading."""
    if kind not in CLIENT_EVENTS:
        raise AnswerError(f"kind must be one of {', '.join(CLIENT_EVENTS)}, got {kind!r}", rule="event_kind")
    if client_time is not None and not (isinstance(client_time, str) and len(client_time) <= 64):
        raise AnswerError("client_time must be an ISO 8601 string", rule="event_kind")
    with db.write(connection):
        reading = _own_reading(connection, reader_id, reading_id)
        _require_current(connection, reader_id, reading)
        if reading["status"] != "open":
            raise Conflict("open the exam before pausing it")
        db.log_event(connection, kind, reader_id=reader_id, reading_id=reading_id,
                     detail=json.dumps({"client_time": client_time}) if client_time else "")


def find_image(connection: sqlite3.Connection, study: StudyInfo, reader_id: str,
               image_id: str) -> tuple[Path, str, str | None]:
    """(PNG path, SHA-256, preloaded reading) of an image of the reader's current or next reading.

    Reads only. The third item is the next reading's id when the image belongs to it (a preload,
    which the caller logs with :func:`log_preload`), else None. NotFound for anything else.
    """
    if len(image_id) != 32 or any(c not in "0123456789abcdef" for c in image_id):
        raise NotFound("no such image")
    image = connection.execute("SELECT id, exam, severity_mm, sha256 FROM images WHERE id = ?", (image_id,)).fetchone()
    if image is None:
        raise NotFound("no such image")
    pending = _pending(connection, reader_id)
    for index, reading in enumerate(pending):
        if reading["exam"] == image["exam"] and reading["severity_mm"] == image["severity_mm"]:
            return study.images / f"{image_id}.png", image["sha256"], reading["id"] if index == 1 else None
    raise NotFound("no such image")


def log_preload(connection: sqlite3.Connection, reader_id: str, reading_id: str, image_id: str) -> None:
    """Log a fetch of the next reading's image as a ``preloaded`` event (one write transaction)."""
    with db.write(connection):
        db.log_event(connection, "preloaded", reader_id=reader_id, reading_id=reading_id, detail=image_id)

