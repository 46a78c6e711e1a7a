"""Progress bars and messages on the terminal: the callbacks the library's stages report through.

- :class:`TerminalProgress`: ``progress(task, done, total)`` and ``message(text)`` for the
  stages of :mod:`perceptiongap.results` (one bar per task, messages printed above the bars).
- :func:`progress_callback`: a single bar as a ``progress(done, total)`` callback, the form
  ``perturb``, ``compose`` and ``predict`` report in.
- :func:`progress_bar`: the bar's look (counts, elapsed and remaining time), for anything else.
- :func:`show_log_messages`: log records (warnings and above) as their message alone, above the bars.

A bar appears at the first report, not before: an error found while the inputs are checked
prints alone.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

__all__ = ["TerminalProgress", "console", "progress_bar", "progress_callback", "show_log_messages"]

console = Console(stderr=True)


class _MessageOnly(logging.Handler):
    """A log record as its message alone, one unwrapped line on the bars' console (so above any live bar)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            console.print(self.format(record), markup=False, highlight=False, soft_wrap=True)
        except Exception:  # a handler must not raise: logging's own policy
            self.handleError(record)


def show_log_messages() -> None:
    """Show warnings logged by perceptiongap and its libraries as one plain line each on stderr, above any bar.

    Rich's logging handler adds the time, the level and ``file.py:62`` with terminal hyperlinks to every line;
    a person running a command needs the message alone. Logging configured already (by a program that calls
    :func:`~perceptiongap.cli.main`, or by pytest) is left as it is; calling this again changes nothing.
    """
    root = logging.getLogger()
    if root.handlers:
        return
    handler = _MessageOnly(logging.WARNING)
    handler.setFormatter(logging.Formatter("%(message)s"))
    root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > logging.WARNING:
        root.setLevel(logging.WARNING)


def progress_bar() -> Progress:
    """A bar with counts, elapsed and remaining time, drawn on stderr."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    )


class TerminalProgress:
    """Library callbacks drawn on stderr; use as a context manager (the bars stop when it ends).

    ``progress(task, done, total)``: one bar per task name, created at its first report
    (``total`` None shows a bar without an end). ``message(text)``: one line above the bars.
    """

    def __init__(self) -> None:
        self._bar = progress_bar()
        self._tasks: dict[str, object] = {}

    def progress(self, task: str, done: int, total: int | None) -> None:
        if not self._bar.live.is_started:
            self._bar.start()
        if task not in self._tasks:
            self._tasks[task] = self._bar.add_task(task, total=total)
        self._bar.update(self._tasks[task], completed=done, total=total)

    def message(self, text: str) -> None:
        target = self._bar.console if self._bar.live.is_started else console
        target.print(text, markup=False, highlight=False, soft_wrap=True)

    def __enter__(self) -> TerminalProgress:
        return self

    def __exit__(self, *exc_info) -> None:
        if self._bar.live.is_started:
            self._bar.stop()


@contextlib.contextmanager
def progress_callback(description: str) -> Iterator[Callable[[int, int], None]]:
    """One bar named ``description`` on stderr; yields the ``progress(done, total)`` callback."""
    with TerminalProgress() as terminal:
        yield lambda done, total: terminal.progress(description, done, total)
