"""The server's single writer: writes waiting together share one COMMIT; each is kept or undone alone."""

from __future__ import annotations

import asyncio
import concurrent.futures
import sqlite3
import threading

from perceptiongap.readers import db
from perceptiongap.readers.writer import Writer


def _run(coroutine):
    """asyncio.run in a thread of its own (the browser tests leave an event loop running in this one)."""
    with concurrent.futures.ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, coroutine).result()


class _Recorded:
    """A writer whose connection records every SQL statement it runs (sqlite3's trace callback)."""

    def __init__(self, study):
        self.statements: list[str] = []
        self.path = study / db.DB_NAME

        def connect(path):
            connection = db.connect(path)
            connection.set_trace_callback(self.statements.append)
            return connection

        self.writer = Writer(self.path, connect=connect)

    def commits(self) -> int:
        return sum(1 for s in self.statements if s.strip().upper() == "COMMIT")

    def events(self, kind: str) -> list[str]:
        with sqlite3.connect(self.path) as connection:
            return [row[0] for row in connection.execute("SELECT detail FROM events WHERE kind = ? ORDER BY id",
                                                         (kind,))]


def _log(connection: sqlite3.Connection, detail: str) -> str:
    with db.write(connection):
        db.log_event(connection, "paused", reader_id="reader01", detail=detail)
    return detail


def _log_then_break(connection: sqlite3.Connection, detail: str) -> None:
    with db.write(connection):
        db.log_event(connection, "paused", reader_id="reader01", detail=detail)
        db.log_event(connection, "no such kind")  # the schema refuses it: the whole write is undone


def _wait(connection: sqlite3.Connection, gate: threading.Event) -> None:
    assert gate.wait(10)


def _run_held(recorded: _Recorded, calls: list[tuple]) -> list:
    """Hold the writer on a first write, queue ``calls`` behind it, release, gather the outcomes."""

    async def scenario():
        gate = threading.Event()
        first = asyncio.ensure_future(recorded.writer.run(_wait, gate))
        await asyncio.sleep(0.05)
        queued = [asyncio.ensure_future(recorded.writer.run(function, *args)) for function, *args in calls]
        await asyncio.sleep(0.05)
        gate.set()
        await first
        return await asyncio.gather(*queued, return_exceptions=True)

    try:
        return _run(scenario())
    finally:
        recorded.writer.close()


def test_writes_waiting_together_share_one_commit_and_all_are_stored(study):
    recorded = _Recorded(study)
    outcomes = _run_held(recorded, [(_log, f"w{i}") for i in range(10)])
    assert outcomes == [f"w{i}" for i in range(10)]
    assert recorded.events("paused") == [f"w{i}" for i in range(10)]
    assert recorded.commits() == 2  # the held write alone, then the ten queued behind it at once


def test_a_failing_write_is_undone_alone_and_its_caller_gets_the_error(study):
    recorded = _Recorded(study)
    outcomes = _run_held(recorded, [(_log, "before"), (_log_then_break, "broken"), (_log, "after")])
    assert outcomes[0] == "before" and outcomes[2] == "after"
    assert isinstance(outcomes[1], sqlite3.IntegrityError)
    assert recorded.events("paused") == ["before", "after"]


def test_a_result_comes_back_only_once_its_write_is_committed(study):
    recorded = _Recorded(study)

    async def scenario():
        seen = []
        for i in range(5):
            await recorded.writer.run(_log, f"w{i}")
            seen.append(recorded.events("paused"))  # another connection sees it as soon as we are told
        return seen

    try:
        seen = _run(scenario())
    finally:
        recorded.writer.close()
    assert seen == [[f"w{j}" for j in range(i + 1)] for i in range(5)]


def _orphan_event_checked_at_commit(connection: sqlite3.Connection) -> None:
    connection.execute("PRAGMA defer_foreign_keys = ON")
    with db.write(connection):
        db.log_event(connection, "paused", reader_id="nobody", detail="orphan")


def test_a_failed_commit_fails_every_write_of_its_batch_and_stores_none(study):
    recorded = _Recorded(study)
    outcomes = _run_held(recorded, [(_log, "a"), (_orphan_event_checked_at_commit,), (_log, "b")])
    assert all(isinstance(o, sqlite3.IntegrityError) for o in outcomes), outcomes
    assert recorded.events("paused") == []


def test_writes_from_many_callers_at_once_are_all_stored_once(study):
    recorded = _Recorded(study)

    async def scenario():
        return await asyncio.gather(*(recorded.writer.run(_log, f"w{i:03d}") for i in range(200)))

    try:
        outcomes = _run(scenario())
    finally:
        recorded.writer.close()
    assert sorted(outcomes) == [f"w{i:03d}" for i in range(200)]
    assert sorted(recorded.events("paused")) == [f"w{i:03d}" for i in range(200)]
    assert recorded.commits() < 200


def test_close_finishes_the_writes_already_queued(study):
    recorded = _Recorded(study)

    async def scenario():
        futures = [asyncio.ensure_future(recorded.writer.run(_log, f"w{i}")) for i in range(3)]
        await asyncio.sleep(0)
        await asyncio.to_thread(recorded.writer.close)
        return await asyncio.gather(*futures)

    assert _run(scenario()) == ["w0", "w1", "w2"]
    assert recorded.events("paused") == ["w0", "w1", "w2"]
