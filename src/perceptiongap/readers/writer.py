"""The server's single writer: one thread, one SQLite connection, writes committed in batches.

Under load a write's cost is its ``COMMIT``: with ``synchronous=FULL`` that is an fsync of the
WAL, a few ms on an idle disk and tens of ms on a busy one. One writer thread running one
transaction per request queues the requests behind each other's fsyncs; SQLite's own
arbitration between several connections is worse still (a connection that finds the database
locked sleeps in steps of up to 100 ms). :class:`Writer` instead takes every write waiting in
its queue, runs them in one ``BEGIN IMMEDIATE`` transaction, each inside its own savepoint
(:func:`~perceptiongap.readers.db.write` nests as one), and commits once: a group commit.

What a caller sees does not change: a write's result (or exception) is handed back only after
the ``COMMIT`` that made it durable returned; a write that fails is undone alone (its savepoint),
the others of its batch are kept; if the ``COMMIT`` itself fails, every write of the batch gets
that error and none is acknowledged.
"""

from __future__ import annotations

import asyncio
import contextvars
import queue
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from perceptiongap.readers import db

__all__ = ["MAX_BATCH", "Writer"]

#: At most this many writes share one COMMIT (bounds the time a batch holds the write lock).
MAX_BATCH = 64

_T = TypeVar("_T")
_STOP = object()


class Writer:
    """``await writer.run(function, *args)`` calls ``function(connection, *args)`` on the writer thread.

    ``function`` does its writes inside :func:`~perceptiongap.readers.db.write` blocks (as every
    writing function of the study does); the caller's context variables travel with the call.
    ``connect`` opens the writer's connection (default: :func:`~perceptiongap.readers.db.connect`).
    """

    def __init__(self, path: Path, *, connect: Callable[[Path], sqlite3.Connection] = db.connect):
        self.path, self.connect = path, connect
        self.jobs: queue.SimpleQueue = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._work, name="study-writer", daemon=True)
        self.thread.start()

    async def run(self, function: Callable[..., _T], *args: Any) -> _T:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.jobs.put((contextvars.copy_context(), function, args, loop, future))
        return await future

    def close(self) -> None:
        """Finish the writes queued so far, then stop the thread and close the connection."""
        self.jobs.put(_STOP)
        self.thread.join()

    def _work(self) -> None:
        connection = None
        try:
            while True:
                batch, stop = self._next_batch()
                if batch:
                    if connection is None:
                        connection = self.connect(self.path)
                    self._run_batch(connection, batch)
                if stop:
                    return
        finally:
            if connection is not None:
                connection.close()

    def _next_batch(self) -> tuple[list, bool]:
        """The writes waiting now (blocks for the first), and whether a stop came after them."""
        job = self.jobs.get()
        if job is _STOP:
            return [], True
        batch = [job]
        while len(batch) < MAX_BATCH:
            try:
                job = self.jobs.get_nowait()
            except queue.Empty:
                break
            if job is _STOP:
                return batch, True
            batch.append(job)
        return batch, False

    def _run_batch(self, connection: sqlite3.Connection, batch: list) -> None:
        outcomes: list[tuple[bool, Any]] = []
        try:
            connection.execute("BEGIN IMMEDIATE")
            for context, function, args, _, _ in batch:
                try:
                    outcomes.append((True, context.run(function, connection, *args)))
                except Exception as error:  # noqa: BLE001 - handed to its caller
                    outcomes.append((False, error))
                if not connection.in_transaction:  # SQLite rolled the whole batch back (e.g. disk full)
                    raise sqlite3.OperationalError("the write batch was rolled back by the database")
            self._commit(connection)
        except Exception as error:  # noqa: BLE001 - every write of the batch gets it
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            outcomes = [(False, error)] * len(batch)
        for (_, _, _, loop, future), outcome in zip(batch, outcomes, strict=True):
            try:
                loop.call_soon_threadsafe(_settle, future, outcome)
            except RuntimeError:  # that event loop is closed: no one waits for this answer any more
                pass

    def _commit(self, connection: sqlite3.Connection) -> None:
        connection.execute("COMMIT")


def _settle(future: asyncio.Future, outcome: tuple[bool, Any]) -> None:
    if future.cancelled():  # the client went away; its write stands (it may retry: a replay)
        return
    ok, value = outcome
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)
