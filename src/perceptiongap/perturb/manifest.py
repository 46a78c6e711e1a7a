"""``DIR/manifest.csv``: one row per written output, which makes a batch resumable.

An output counts as complete when the manifest has its row, made with the same request (the same
source, cut-off, scheme, annotator, ROIs and settings), and the file exists with the SHA-256 the
row records. Files are written atomically before their row is added, so a killed run leaves at
worst a complete file without a row, which the next run simply writes again. The manifest itself
is rewritten atomically, at most every few seconds and once at the end.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pandas as pd

from perceptiongap.errors import InputError
from perceptiongap.files import atomic_write_text, sha256_file

__all__ = ["MANIFEST_NAME", "Manifest"]

MANIFEST_NAME = "manifest.csv"


class Manifest:
    """The rows of ``out_dir/manifest.csv``, keyed by ``output`` (a path relative to ``out_dir``).

    ``columns`` are the manifest's columns in order; ``request_columns`` are those that must match
    for an existing row to stand for a requested output. All values are kept as strings, exactly
    as written, so that comparisons do not depend on float formatting.
    """

    def __init__(
        self, out_dir: str | Path, columns: Sequence[str], request_columns: Sequence[str], *, flush_every_s: float = 2.0
    ):
        self.out_dir = Path(out_dir)
        self.path = self.out_dir / MANIFEST_NAME
        self.columns = tuple(columns)
        self.request_columns = tuple(request_columns)
        self.flush_every_s = flush_every_s
        self.rows: dict[str, dict[str, str]] = {}
        self._dirty = False
        self._last_flush = time.monotonic()
        if self.path.is_file():
            self._load()

    def _load(self) -> None:
        try:
            table = pd.read_csv(self.path, dtype=str, keep_default_na=False)
        except (OSError, ValueError, pd.errors.ParserError) as error:
            raise InputError(f"cannot read the manifest ({error})", source=self.path) from None
        missing = [c for c in self.columns if c not in table.columns]
        if missing:
            raise InputError(
                f"not a manifest of this command (missing {', '.join(missing)}); use another output folder",
                source=self.path,
            )
        for record in table[list(self.columns)].to_dict("records"):
            self.rows[record["output"]] = record

    def status(self, request: Mapping[str, str]) -> str:
        """``"complete"``, ``"todo"`` or ``"conflict"`` (the output was made from another request)."""
        row = self.rows.get(request["output"])
        if row is None:
            return "todo"
        if any(row[c] != request[c] for c in self.request_columns):
            return "conflict"
        target = self.out_dir / request["output"]
        if target.is_file() and sha256_file(target) == row["sha256"]:
            return "complete"
        return "todo"

    def describe_conflict(self, request: Mapping[str, str]) -> str:
        row = self.rows[request["output"]]
        changed = [c for c in self.request_columns if row[c] != request[c]]
        detail = "; ".join(f"{c} was {row[c]!r}, now {request[c]!r}" for c in changed)
        return f"{request['output']} was made from a different request ({detail}); write to another folder or set force"

    def add(self, rows: Iterable[Mapping[str, str]]) -> None:
        for row in rows:
            self.rows[row["output"]] = {c: str(row.get(c, "")) for c in self.columns}
            self._dirty = True
        if time.monotonic() - self._last_flush >= self.flush_every_s:
            self.flush()

    def flush(self) -> None:
        """Rewrite the manifest atomically if rows were added since the last flush."""
        if not self._dirty:
            return
        table = pd.DataFrame(list(self.rows.values()), columns=list(self.columns))
        atomic_write_text(self.path, table.sort_values("output").to_csv(index=False))
        self._dirty = False
        self._last_flush = time.monotonic()

    def table(self) -> pd.DataFrame:
        """The rows as a DataFrame of strings, sorted by output."""
        return pd.DataFrame(list(self.rows.values()), columns=list(self.columns)).sort_values("output", ignore_index=True)
