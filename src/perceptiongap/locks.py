"""One writer per output: an exclusive, OS-level lock on an output file or folder.

Every command that writes takes :func:`output_lock` on its output before it touches it. The lock
is ``flock`` on a small file beside the output (``.<name>.lock`` in the same folder), so the
operating system releases it when the process ends, however it ends: a ``kill -9`` leaves no
stale lock. The lock file records who holds it (process id, host, start time, command), so a
second run is refused with a message that names the holder.

The lock is re-entrant within a process: ``reproduce`` locks its results folder and then calls
``fit``, which locks the same folder again.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from perceptiongap.errors import InputError

__all__ = ["OutputLockedError", "lock_path", "output_lock"]


class OutputLockedError(InputError):
    """Another process is writing the output (exit code 2, like any bad input)."""


def lock_path(output: str | Path) -> Path:
    """The lock file of ``output``: ``.<name>.lock`` beside it."""
    output = Path(output).absolute()
    return output.parent / f".{output.name}.lock"


# Depth of each lock this process holds, by lock file (re-entrance); guarded for threads.
_held: dict[Path, int] = {}
_held_guard = threading.Lock()


def _try_lock(stream) -> bool:
    if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
        import msvcrt

        try:
            msvcrt.locking(stream.fileno(), msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(stream.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _holder(path: Path) -> str:
    """Who holds the lock, as recorded in the lock file (best effort: it may be mid-write)."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        command = " ".join(record.get("command", []))
        return f"process {record['pid']} on {record['host']} since {record['started']}: {command}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


def _acquire(path: Path, output: Path, what: str):
    """Open and lock ``path``, record this process in it, and return the open file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        stream = open(path, "a+", encoding="utf-8")
    except OSError as error:
        # The folder that would hold the output (and its lock) is not writable: say so as check_writable does.
        reason = (error.strerror or str(error)).lower()
        raise InputError(f"cannot write here ({reason})", source=path.parent) from None
    if not _try_lock(stream):
        stream.close()
        raise OutputLockedError(
            f"{what} is being written by another perceptiongap run ({_holder(path)}); "
            "wait for it to finish, or write somewhere else",
            source=output,
        )
    record = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": ["perceptiongap", *sys.argv[1:]],
    }
    stream.seek(0)
    stream.truncate()
    stream.write(json.dumps(record))
    stream.flush()
    return stream


@contextlib.contextmanager
def output_lock(output: str | Path, *, what: str = "output") -> Iterator[Path]:
    """Hold the exclusive lock on ``output`` (a file or folder, existing or not) for the block.

    Raises :class:`OutputLockedError` at once, without waiting, when another process holds it.
    ``what`` names the output in that message (e.g. ``"results folder"``). Yields the lock file.
    """
    output = Path(output)
    path = lock_path(output)
    with _held_guard:
        nested = path in _held
        if nested:
            _held[path] += 1
    if nested:
        try:
            yield path
        finally:
            with _held_guard:
                _held[path] -= 1
        return

    stream = _acquire(path, output, what)
    with _held_guard:
        _held[path] = 1
    try:
        yield path
    finally:
        with _held_guard:
            del _held[path]
        stream.close()  # closing the file releases the lock
