"""The study database: SQLite, with the reading rules written into the schema.

One file, ``STUDY/study.sqlite``, opened in WAL mode with ``synchronous=FULL`` (a committed
transaction survives a crash of the process or the machine) and foreign keys on; every write is
one ``BEGIN IMMEDIATE`` transaction (:func:`write`). The schema is versioned with
``PRAGMA user_version`` (:data:`SCHEMA_VERSION`); a database of another version is refused.

Invariants held by the schema itself, so no code path can break them:

- one reading per (reader, exam), one position per (reader, position);
- one answer per (reader, exam, breast), consistent with the BI-RADS rules
  (:data:`~perceptiongap.readers.answers.SQL_ANSWER_CHECK`), written only while its reading is
  open, never changed or deleted;
- at most three ROIs per (reading, view), boxes inside the image, written only while the reading
  is open, never changed or deleted;
- a reading's status only moves forward, ``assigned -> open -> submitted``, one step at a time;
  it becomes ``submitted`` only with both breasts answered; a submitted reading never changes;
- the event log is append-only.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

from perceptiongap.errors import InputError
from perceptiongap.readers.answers import BIRADS, SQL_ANSWER_CHECK
from perceptiongap.vocabulary import VIEWS

__all__ = [
    "DB_NAME",
    "EVENT_KINDS",
    "MAX_ROIS_PER_VIEW",
    "SCHEMA_VERSION",
    "connect",
    "create_schema",
    "log_event",
    "now",
    "write",
]

DB_NAME = "study.sqlite"
SCHEMA_VERSION = 1
MAX_ROIS_PER_VIEW = 3

#: Event kinds: the server's own, and the page's pause button (``paused``/``unpaused``).
EVENT_KINDS: tuple[str, ...] = (
    "link_issued", "link_opened", "opened", "resumed", "preloaded", "paused", "unpaused",
    "submitted", "submit_replayed", "submit_refused",
)  # fmt: skip

_VIEW_LIST = ", ".join(f"'{v}'" for v in VIEWS)
_BIRADS_LIST = ", ".join(f"'{b}'" for b in BIRADS)
_EVENT_LIST = ", ".join(f"'{k}'" for k in EVENT_KINDS)

SCHEMA = f"""
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE readers (
    id TEXT PRIMARY KEY CHECK (length(id) > 0),
    name TEXT NOT NULL,
    list_order INTEGER NOT NULL UNIQUE
);
-- Link tokens and sessions: only SHA-256 hashes are stored. reader_id NULL = the admin.
CREATE TABLE tokens (
    hash TEXT PRIMARY KEY CHECK (length(hash) = 64),
    role TEXT NOT NULL CHECK (role IN ('reader', 'admin')),
    reader_id TEXT REFERENCES readers(id),
    issued_at REAL NOT NULL,
    CHECK ((role = 'reader') = (reader_id IS NOT NULL))
);
CREATE UNIQUE INDEX one_reader_token ON tokens(reader_id) WHERE role = 'reader';
CREATE UNIQUE INDEX one_admin_token ON tokens(role) WHERE role = 'admin';
CREATE TABLE sessions (
    hash TEXT PRIMARY KEY CHECK (length(hash) = 64),
    token_hash TEXT NOT NULL REFERENCES tokens(hash) ON DELETE CASCADE,
    created_at REAL NOT NULL
);
CREATE TABLE exams (
    id TEXT PRIMARY KEY CHECK (length(id) > 0),
    practice INTEGER NOT NULL CHECK (practice IN (0, 1))
);
-- Labels and subgroups: used by the export, never sent to a reader.
CREATE TABLE cases (
    exam TEXT NOT NULL REFERENCES exams(id),
    breast TEXT NOT NULL CHECK (breast IN ('L', 'R')),
    label TEXT NOT NULL,
    subgroup TEXT NOT NULL,
    PRIMARY KEY (exam, breast)
);
CREATE TABLE images (
    id TEXT PRIMARY KEY CHECK (length(id) = 32),
    exam TEXT NOT NULL REFERENCES exams(id),
    severity_mm REAL NOT NULL CHECK (severity_mm >= 0),
    cutoff_per_mm REAL NOT NULL CHECK (cutoff_per_mm > 0),
    view TEXT NOT NULL CHECK (view IN ({_VIEW_LIST})),
    source TEXT NOT NULL,
    rows INTEGER,
    columns INTEGER,
    sha256 TEXT,
    UNIQUE (exam, severity_mm, view)
);
CREATE TABLE readings (
    id TEXT PRIMARY KEY CHECK (length(id) = 32),
    reader_id TEXT NOT NULL REFERENCES readers(id),
    exam TEXT NOT NULL REFERENCES exams(id),
    severity_mm REAL NOT NULL CHECK (severity_mm >= 0),
    position INTEGER NOT NULL CHECK (position >= 1),
    practice INTEGER NOT NULL CHECK (practice IN (0, 1)),
    status TEXT NOT NULL DEFAULT 'assigned' CHECK (status IN ('assigned', 'open', 'submitted')),
    opened_at REAL,
    submitted_at REAL,
    active_seconds REAL CHECK (active_seconds IS NULL OR active_seconds >= 0),
    idempotency_key TEXT,
    request_sha256 TEXT,
    UNIQUE (reader_id, exam),
    UNIQUE (reader_id, position),
    UNIQUE (id, reader_id, exam),
    CHECK ((status = 'assigned') = (opened_at IS NULL)),
    CHECK ((status = 'submitted') = (submitted_at IS NOT NULL)),
    CHECK ((status = 'submitted') = (idempotency_key IS NOT NULL)),
    CHECK ((status = 'submitted') = (active_seconds IS NOT NULL))
);
CREATE INDEX readings_by_status ON readings(reader_id, status, position);
CREATE TABLE answers (
    reading_id TEXT NOT NULL,
    reader_id TEXT NOT NULL,
    exam TEXT NOT NULL,
    breast TEXT NOT NULL CHECK (breast IN ('L', 'R')),
    birads TEXT NOT NULL CHECK (birads IN ({_BIRADS_LIST})),
    malignant INTEGER NOT NULL,
    pom REAL NOT NULL,
    UNIQUE (reader_id, exam, breast),
    FOREIGN KEY (reading_id, reader_id, exam) REFERENCES readings(id, reader_id, exam),
    CHECK ({SQL_ANSWER_CHECK})
);
CREATE TABLE rois (
    id INTEGER PRIMARY KEY,
    reading_id TEXT NOT NULL REFERENCES readings(id),
    view TEXT NOT NULL CHECK (view IN ({_VIEW_LIST})),
    x0 INTEGER NOT NULL, y0 INTEGER NOT NULL, x1 INTEGER NOT NULL, y1 INTEGER NOT NULL,
    CHECK (0 <= x0 AND x0 < x1 AND 0 <= y0 AND y0 < y1)
);
CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ({_EVENT_LIST})),
    reader_id TEXT REFERENCES readers(id),
    reading_id TEXT REFERENCES readings(id),
    detail TEXT NOT NULL DEFAULT ''
);

-- A reading's status moves forward one step at a time; a submitted reading never changes.
CREATE TRIGGER reading_status_forward BEFORE UPDATE ON readings
WHEN NOT (
    (OLD.status = 'assigned' AND NEW.status IN ('assigned', 'open'))
    OR (OLD.status = 'open' AND NEW.status IN ('open', 'submitted'))
)
BEGIN SELECT RAISE(ABORT, 'a reading''s status only moves forward: assigned -> open -> submitted'); END;
CREATE TRIGGER reading_frozen BEFORE UPDATE ON readings WHEN OLD.status = 'submitted'
BEGIN SELECT RAISE(ABORT, 'a submitted reading cannot change'); END;
CREATE TRIGGER reading_keys_fixed BEFORE UPDATE OF id, reader_id, exam, severity_mm, position, practice ON readings
WHEN NEW.id IS NOT OLD.id OR NEW.reader_id IS NOT OLD.reader_id OR NEW.exam IS NOT OLD.exam
    OR NEW.severity_mm IS NOT OLD.severity_mm OR NEW.position IS NOT OLD.position OR NEW.practice IS NOT OLD.practice
BEGIN SELECT RAISE(ABORT, 'a reading''s reader, exam, severity and position are fixed by the design'); END;
CREATE TRIGGER reading_submitted_answered BEFORE UPDATE OF status ON readings
WHEN NEW.status = 'submitted' AND (SELECT count(*) FROM answers WHERE reading_id = NEW.id) != 2
BEGIN SELECT RAISE(ABORT, 'a reading is submitted only with both breasts answered'); END;
CREATE TRIGGER reading_kept BEFORE DELETE ON readings WHEN OLD.status != 'assigned'
BEGIN SELECT RAISE(ABORT, 'a reading that was opened is kept'); END;

-- Answers and ROIs are written only while their reading is open, and never changed.
CREATE TRIGGER answer_needs_open_reading BEFORE INSERT ON answers
WHEN (SELECT status FROM readings WHERE id = NEW.reading_id) IS NOT 'open'
BEGIN SELECT RAISE(ABORT, 'answers are written only to an open reading'); END;
CREATE TRIGGER answer_final_update BEFORE UPDATE ON answers
BEGIN SELECT RAISE(ABORT, 'an answer, once given, is final'); END;
CREATE TRIGGER answer_final_delete BEFORE DELETE ON answers
BEGIN SELECT RAISE(ABORT, 'an answer, once given, is final'); END;
CREATE TRIGGER roi_needs_open_reading BEFORE INSERT ON rois
WHEN (SELECT status FROM readings WHERE id = NEW.reading_id) IS NOT 'open'
BEGIN SELECT RAISE(ABORT, 'ROIs are written only to an open reading'); END;
CREATE TRIGGER roi_at_most_three BEFORE INSERT ON rois
WHEN (SELECT count(*) FROM rois WHERE reading_id = NEW.reading_id AND view = NEW.view) >= {MAX_ROIS_PER_VIEW}
BEGIN SELECT RAISE(ABORT, 'at most {MAX_ROIS_PER_VIEW} ROIs per view'); END;
CREATE TRIGGER roi_inside_image BEFORE INSERT ON rois
WHEN EXISTS (
    SELECT 1 FROM readings r JOIN images i ON i.exam = r.exam AND i.severity_mm = r.severity_mm AND i.view = NEW.view
    WHERE r.id = NEW.reading_id AND (NEW.x1 > i.columns OR NEW.y1 > i.rows)
)
BEGIN SELECT RAISE(ABORT, 'an ROI must lie inside its image'); END;
CREATE TRIGGER roi_final_update BEFORE UPDATE ON rois
BEGIN SELECT RAISE(ABORT, 'an ROI, once submitted, is final'); END;
CREATE TRIGGER roi_final_delete BEFORE DELETE ON rois
BEGIN SELECT RAISE(ABORT, 'an ROI, once submitted, is final'); END;

-- The event log is append-only.
CREATE TRIGGER event_append_only_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END;
CREATE TRIGGER event_append_only_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END;
"""


def now() -> float:
    """Server time in seconds since the epoch (UTC)."""
    return time.time()


def connect(path: str | Path, *, readonly: bool = False, create: bool = False) -> sqlite3.Connection:
    """Open the study database with the project's settings; refuses a missing or foreign file.

    The connection is in autocommit mode (``isolation_level=None``): writes go through
    :func:`write`, which opens its own ``BEGIN IMMEDIATE`` transaction. ``readonly`` opens the file
    read-only (``mode=ro``), for export, status and backup of a study that may be being served.
    """
    path = Path(path)
    if not create and not path.is_file():
        raise InputError("no study database here (run `perceptiongap study design` first)", source=path)
    uri = f"{path.absolute().as_uri()}?mode={'ro' if readonly else 'rwc'}"
    try:
        connection = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=30.0, check_same_thread=False)
        connection.row_factory = sqlite3.Row
        connection.execute("PRAGMA foreign_keys = ON")
        connection.execute("PRAGMA busy_timeout = 30000")
        if not readonly:
            mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise InputError(f"cannot put the database in WAL mode (got {mode})", source=path)
        connection.execute("PRAGMA synchronous = FULL")
        version = connection.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.DatabaseError as error:
        raise InputError(f"cannot open the study database: {error}", source=path) from None
    if not create and version != SCHEMA_VERSION:
        connection.close()
        raise InputError(
            f"study database has schema version {version}; this perceptiongap reads version {SCHEMA_VERSION}",
            source=path,
        )
    return connection


def create_schema(connection: sqlite3.Connection) -> None:
    """Create the tables and triggers in an empty database and set ``user_version``."""
    with write(connection):
        for statement in _statements(SCHEMA):
            connection.execute(statement)
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _statements(script: str) -> list[str]:
    """Split a schema script into statements (triggers contain ``;`` inside BEGIN ... END)."""
    statements, current = [], ""
    for line in script.splitlines():
        if line.strip().startswith("--") or not line.strip():
            continue
        current += line + "\n"
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    return statements


@contextlib.contextmanager
def write(connection: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction: ``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on any error).

    Inside a transaction the caller already holds (the server's writer commits a batch of writes
    at once, see :mod:`~perceptiongap.readers.writer`), a savepoint instead: the block's writes
    are kept or undone as a unit, and made durable by the caller's ``COMMIT``.
    """
    if connection.in_transaction:
        connection.execute("SAVEPOINT write")
        try:
            yield connection
        except BaseException:
            connection.execute("ROLLBACK TO write")
            connection.execute("RELEASE write")
            raise
        connection.execute("RELEASE write")
        return
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield connection
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


def log_event(
    connection: sqlite3.Connection,
    kind: str,
    *,
    reader_id: str | None = None,
    reading_id: str | None = None,
    detail: str = "",
    at: float | None = None,
) -> None:
    """Append one event (inside the caller's transaction)."""
    connection.execute(
        "INSERT INTO events (at, kind, reader_id, reading_id, detail) VALUES (?, ?, ?, ?, ?)",
        (now() if at is None else at, kind, reader_id, reading_id, detail),
    )
