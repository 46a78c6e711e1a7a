"""Durable, resumable storage of a prediction run's Observations.

While a run is in progress its rows live in a folder beside the output, ``OUT.parts/``: a
``manifest.json`` with the run's settings and numbered Parquet part files. Each part holds whole
jobs only and is written atomically (temporary file, fsync, rename), so after a crash or a kill
every part on disk is complete and every job is either entirely in one part or absent. A re-run
with the same settings reads which jobs are done and skips them; a re-run with other settings is
refused (``force`` starts over). At the end the parts are consolidated into ``OUT`` atomically,
validated as Observations (which refuses any duplicate row: none can exist, since a job is written
once and skipped thereafter) and the folder is removed.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from perceptiongap.errors import InputError
from perceptiongap.files import atomic_path, atomic_write_text
from perceptiongap.study import OBSERVATION_COLUMNS, validate_observations, write_table
from perceptiongap.vocabulary import SCHEMES

__all__ = ["MANIFEST", "PART_GLOB", "ObservationStore"]

MANIFEST = "manifest.json"
PART_GLOB = "part-*.parquet"


def _fsync(path: Path) -> None:
    """Flush a file, or a folder's entries, to disk (survives a power cut, not only a kill)."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class ObservationStore:
    """Append Observations rows durably, job by job, and consolidate them at the end.

    ``settings`` is any JSON-serialisable mapping that identifies the run (model, cut-offs,
    digests of the input files...): a run resumes only parts written under equal settings.
    """

    def __init__(self, out: str | Path, settings: Mapping, *, force: bool = False):
        self.out = Path(out)
        self.parts_dir = self.out.with_name(self.out.name + ".parts")
        self.settings = json.loads(json.dumps(dict(settings)))
        self.force = force
        self._next_part = 0

    def open(self) -> set[tuple[str, str, str]]:
        """Prepare the parts folder; return the (exam, scheme, annotator) keys of completed jobs."""
        manifest = self.parts_dir / MANIFEST
        if self.parts_dir.exists() and not manifest.is_file():
            if not self.force:
                raise InputError(
                    f"{self.parts_dir.name} exists but is not a prediction run's folder; move it away", source=self.out
                )
        if self.parts_dir.exists() and manifest.is_file() and not self.force:
            earlier = json.loads(manifest.read_text())
            if earlier != self.settings:
                changed = sorted(k for k in set(earlier) | set(self.settings) if earlier.get(k) != self.settings.get(k))
                raise InputError(
                    f"an unfinished run with other settings ({', '.join(changed)}) is in {self.parts_dir.name}; "
                    "re-run it with its own settings to finish it, or set force to start over",
                    source=self.out,
                )
        elif self.out.exists() and not self.force:
            raise InputError("output exists; set force to overwrite it", source=self.out)
        else:
            if self.parts_dir.exists():
                shutil.rmtree(self.parts_dir)
            self.parts_dir.mkdir(parents=True)
            atomic_write_text(manifest, json.dumps(self.settings, indent=2, sort_keys=True) + "\n")
        # A kill during a write leaves a temporary file, never a part nor the output: remove those (the caller
        # holds the output's lock, so no other run is writing them).
        half_written = self.out.parent.glob(f".{glob.escape(self.out.name)}.*.partial")
        for leftover in [*self.parts_dir.glob(".*.partial"), *half_written]:
            leftover.unlink(missing_ok=True)
        parts = self.parts()
        self._next_part = 1 + max((int(p.stem.split("-")[1]) for p in parts), default=0)
        return self.completed_jobs()

    def parts(self) -> list[Path]:
        return sorted(self.parts_dir.glob(PART_GLOB))

    def completed_jobs(self) -> set[tuple[str, str, str]]:
        keys: set[tuple[str, str, str]] = set()
        for part in self.parts():
            table = pq.read_table(part, columns=["exam", "scheme", "annotator"]).to_pandas()
            keys.update(zip(table["exam"], table["scheme"], table["annotator"]))
        return keys

    def append(self, rows: pd.DataFrame) -> None:
        """Write ``rows`` (whole jobs, Observations columns) as the next part, durably."""
        if rows.empty:
            return
        part = self.parts_dir / f"part-{self._next_part:06d}.parquet"
        with atomic_path(part) as tmp:
            rows[list(OBSERVATION_COLUMNS)].to_parquet(tmp, index=False)
            _fsync(tmp)
        _fsync(self.parts_dir)
        self._next_part += 1

    def rows(self) -> pd.DataFrame:
        """All rows written so far, in part order."""
        parts = self.parts()
        if not parts:
            return pd.DataFrame({c: pd.Series(dtype=t) for c, t in OBSERVATION_COLUMNS.items()})
        return pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)

    def consolidate(self, exam_order: Sequence[str]) -> pd.DataFrame:
        """Validate all rows, sort them (exam order given, scheme, annotator, severity, breast),
        write ``out`` atomically and remove the parts folder. Returns the Observations."""
        table = validate_observations(self.rows(), source=self.parts_dir)
        rank = {exam: index for index, exam in enumerate(exam_order)}
        order = pd.DataFrame(
            {
                "exam": table["exam"].map(rank).astype("int64"),
                "scheme": table["scheme"].map({s: i for i, s in enumerate(SCHEMES)}).astype("int64"),
                "annotator": table["annotator"],
                "severity_mm": table["severity_mm"],
                "breast": table["breast"],
            }
        )
        table = table.loc[order.sort_values(list(order.columns), kind="stable").index].reset_index(drop=True)
        write_table(table, self.out)
        shutil.rmtree(self.parts_dir)
        return table
