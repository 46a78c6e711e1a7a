"""The schema holds the reading rules: direct SQL that would break them fails."""

from __future__ import annotations

import sqlite3

import pytest

from perceptiongap.errors import InputError
from perceptiongap.readers import db


@pytest.fixture()
def connection(study):
    connection = db.connect(study / db.DB_NAME)
    yield connection
    connection.close()


def _reading(connection, position: int = 1, reader: str = "reader01"):
    return connection.execute("SELECT * FROM readings WHERE reader_id = ? AND position = ?",
                              (reader, position)).fetchone()


def _open(connection, reading) -> None:
    connection.execute("UPDATE readings SET status = 'open', opened_at = 1.0 WHERE id = ?", (reading["id"],))


def _answer(connection, reading, breast="L", birads="1", malignant=0, pom=0.0) -> None:
    connection.execute(
        "INSERT INTO answers (reading_id, reader_id, exam, breast, birads, malignant, pom) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (reading["id"], reading["reader_id"], reading["exam"], breast, birads, malignant, pom),
    )


def _submit(connection, reading) -> None:
    connection.execute(
        "UPDATE readings SET status = 'submitted', submitted_at = 2.0, active_seconds = 1.0, idempotency_key = 'k', "
        "request_sha256 = 'h' WHERE id = ?", (reading["id"],),
    )


def _submitted(connection):
    reading = _reading(connection)
    _open(connection, reading)
    _answer(connection, reading, "L")
    _answer(connection, reading, "R")
    _submit(connection, reading)
    return reading


def test_the_database_runs_with_the_settings_the_issue_requires(connection):
    assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert connection.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert connection.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert connection.execute("PRAGMA user_version").fetchone()[0] == db.SCHEMA_VERSION


def test_a_database_of_another_schema_version_is_refused(study):
    raw = sqlite3.connect(study / db.DB_NAME)
    raw.execute(f"PRAGMA user_version = {db.SCHEMA_VERSION + 1}")
    raw.close()
    with pytest.raises(InputError, match="schema version"):
        db.connect(study / db.DB_NAME)


def test_one_reading_per_reader_and_exam(connection):
    reading = _reading(connection)
    with pytest.raises(sqlite3.IntegrityError):
        connection.execute(
            "INSERT INTO readings (id, reader_id, exam, severity_mm, position, practice) VALUES (?, ?, ?, 0, 99, 0)",
            ("f" * 32, reading["reader_id"], reading["exam"]),
        )


def test_one_answer_per_reader_exam_and_breast(connection):
    reading = _reading(connection)
    _open(connection, reading)
    _answer(connection, reading, "L")
    with pytest.raises(sqlite3.IntegrityError):
        _answer(connection, reading, "L", birads="2")


def test_answers_must_follow_the_birads_rules(connection):
    reading = _reading(connection)
    _open(connection, reading)
    with pytest.raises(sqlite3.IntegrityError):
        _answer(connection, reading, "L", birads="4B", malignant=1, pom=60.0)
    with pytest.raises(sqlite3.IntegrityError):
        _answer(connection, reading, "L", birads="3", malignant=1, pom=1.0)


def test_answers_are_written_only_to_an_open_reading(connection):
    reading = _reading(connection)
    with pytest.raises(sqlite3.IntegrityError, match="open reading"):
        _answer(connection, reading)
    submitted = _submitted(connection)
    with pytest.raises(sqlite3.IntegrityError):
        _answer(connection, submitted, "L", birads="2")


def test_an_answer_is_never_changed_or_deleted(connection):
    _submitted(connection)
    with pytest.raises(sqlite3.IntegrityError, match="final"):
        connection.execute("UPDATE answers SET birads = '2'")
    with pytest.raises(sqlite3.IntegrityError, match="final"):
        connection.execute("DELETE FROM answers")


def test_an_answer_must_belong_to_its_reading(connection):
    reading = _reading(connection)
    _open(connection, reading)
    other = _reading(connection, reader="reader02")
    with pytest.raises(sqlite3.IntegrityError):  # reading of reader01 filed under reader02
        connection.execute(
            "INSERT INTO answers (reading_id, reader_id, exam, breast, birads, malignant, pom) "
            "VALUES (?, ?, ?, 'L', '1', 0, 0)", (reading["id"], other["reader_id"], reading["exam"]),
        )


def test_status_moves_only_forward_one_step_at_a_time(connection):
    reading = _reading(connection)
    with pytest.raises(sqlite3.IntegrityError):  # assigned -> submitted skips open
        _submit(connection, reading)
    _open(connection, reading)
    with pytest.raises(sqlite3.IntegrityError, match="forward"):
        connection.execute("UPDATE readings SET status = 'assigned', opened_at = NULL WHERE id = ?", (reading["id"],))
    with pytest.raises(sqlite3.IntegrityError, match="both breasts"):
        _submit(connection, reading)
    _answer(connection, reading, "L")
    _answer(connection, reading, "R")
    _submit(connection, reading)
    for change in ("status = 'open'", "active_seconds = 99", "submitted_at = 5"):
        with pytest.raises(sqlite3.IntegrityError):
            connection.execute(f"UPDATE readings SET {change} WHERE id = ?", (reading["id"],))
    with pytest.raises(sqlite3.IntegrityError):
        connection.execute("DELETE FROM readings WHERE id = ?", (reading["id"],))


def test_a_reading_keeps_its_design(connection):
    reading = _reading(connection)
    with pytest.raises(sqlite3.IntegrityError, match="fixed by the design"):
        connection.execute("UPDATE readings SET severity_mm = 4 WHERE id = ?", (reading["id"],))


def _roi(connection, reading, view="L-CC", box=(0, 0, 10, 10)) -> None:
    connection.execute("INSERT INTO rois (reading_id, view, x0, y0, x1, y1) VALUES (?, ?, ?, ?, ?, ?)",
                       (reading["id"], view, *box))


def test_at_most_three_rois_per_reading_and_view(connection):
    reading = _reading(connection)
    _open(connection, reading)
    for _ in range(3):
        _roi(connection, reading, "L-CC")
    with pytest.raises(sqlite3.IntegrityError, match="at most 3"):
        _roi(connection, reading, "L-CC")
    _roi(connection, reading, "L-MLO")  # another view has its own three


def test_rois_lie_inside_their_image_and_only_on_open_readings(connection):
    reading = _reading(connection)
    with pytest.raises(sqlite3.IntegrityError, match="open reading"):
        _roi(connection, reading)
    _open(connection, reading)
    rows, columns = connection.execute(
        "SELECT rows, columns FROM images WHERE exam = ? AND severity_mm = ? AND view = 'L-CC'",
        (reading["exam"], reading["severity_mm"]),
    ).fetchone()
    _roi(connection, reading, box=(0, 0, columns, rows))
    with pytest.raises(sqlite3.IntegrityError, match="inside"):
        _roi(connection, reading, box=(0, 0, columns + 1, rows))
    with pytest.raises(sqlite3.IntegrityError):
        _roi(connection, reading, box=(5, 5, 5, 9))  # empty box
    with pytest.raises(sqlite3.IntegrityError, match="final"):
        connection.execute("DELETE FROM rois")


def test_the_event_log_is_append_only(connection):
    db.log_event(connection, "opened", reader_id="reader01")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        connection.execute("UPDATE events SET kind = 'submitted'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        connection.execute("DELETE FROM events")
    with pytest.raises(sqlite3.IntegrityError):
        db.log_event(connection, "deleted_everything")


def test_a_failed_write_leaves_nothing(connection):
    reading = _reading(connection)
    _open(connection, reading)
    with pytest.raises(sqlite3.IntegrityError):
        with db.write(connection):
            _answer(connection, reading, "L")
            _answer(connection, reading, "R", birads="5", malignant=1, pom=10.0)  # breaks the rule
    assert connection.execute("SELECT count(*) FROM answers").fetchone()[0] == 0


@pytest.mark.parametrize("fails", [False, True])
def test_a_write_inside_a_transaction_is_a_savepoint_kept_or_undone_alone(connection, fails):
    reading = _reading(connection)
    _open(connection, reading)
    connection.execute("BEGIN IMMEDIATE")  # as the server's writer does for a batch of writes
    with db.write(connection):
        _answer(connection, reading, "L")
    if fails:
        with pytest.raises(sqlite3.IntegrityError):
            with db.write(connection):
                db.log_event(connection, "opened", reader_id="reader01")
                _answer(connection, reading, "R", birads="5", malignant=1, pom=10.0)  # breaks the rule
    else:
        with db.write(connection):
            db.log_event(connection, "opened", reader_id="reader01")
            _answer(connection, reading, "R")
    assert connection.in_transaction  # the caller's transaction is still open, to commit
    connection.execute("COMMIT")
    breasts = [row[0] for row in connection.execute("SELECT breast FROM answers ORDER BY breast")]
    events = connection.execute("SELECT count(*) FROM events WHERE kind = 'opened'").fetchone()[0]
    assert (breasts, events) == ((["L"], 0) if fails else (["L", "R"], 1))
