"""The one exception type that the CLI turns into a one-line message and exit code 2.

Library code names what is wrong in the words of its own API: a file, a field, a value, or a
parameter by its Python name (``source="advi_seeds"``). A message that refers to another
parameter writes its name in backticks (``use `resume` to continue it``); the command line
shows both as its flags (``--advi-seeds``, ``--resume``).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["InputError"]


class InputError(ValueError):
    """Bad user input: a file, a field, a value.

    The message is a single line meant for a person, e.g.
    ``observations.csv: column 'prediction', row 17: 1.3 is outside [0, 1]``.
    ``message`` and ``source`` are kept apart so that a caller can name the source differently.
    """

    def __init__(self, message: str, *, source: str | Path | None = None):
        self.message = message
        self.source = None if source is None else str(source)
        super().__init__(f"{source}: {message}" if source is not None else message)

    def with_source(self, source: str | Path | None) -> InputError:
        """The same error, attributed to ``source`` (e.g. the file a table was read from)."""
        return type(self)(self.message, source=source)
