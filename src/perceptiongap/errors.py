"""The one exception type that the CLI turns into a one-line message and exit code 2."""

from __future__ import annotations

from pathlib import Path


class InputError(ValueError):
    """Bad user input: a file, a field, a value.

    The message is a single line meant for a person, e.g.
    ``observations.csv: column 'prediction', row 17: 1.3 is outside [0, 1]``.
    """

    def __init__(self, message: str, *, source: str | Path | None = None):
        self.source = None if source is None else str(source)
        super().__init__(f"{source}: {message}" if source is not None else message)
