"""A consistent copy of a study database, taken while the study may be being served."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from perceptiongap.errors import InputError
from perceptiongap.files import atomic_path
from perceptiongap.locks import output_lock
from perceptiongap.readers import db

__all__ = ["backup_database"]


def backup_database(database: str | Path, out: str | Path, *, force: bool = False) -> Path:
    """Copy ``database`` to ``out`` with SQLite's online backup (atomic; refuses to overwrite).

    The copy is a complete, self-consistent database of the same schema (readable by ``study
    status``/``export`` when put back as ``study.sqlite`` in the study folder).
    """
    out = Path(out)
    if out.is_dir():
        raise InputError("is a folder; name the backup file, e.g. backup.sqlite", source=out)
    with output_lock(out, what="backup file"):
        if out.exists() and not force:
            raise InputError("exists; pass --force to overwrite it", source=out)
        source = db.connect(database, readonly=True)
        try:
            with atomic_path(out) as tmp:
                target = sqlite3.connect(tmp)
                try:
                    source.backup(target)
                    target.execute("PRAGMA journal_mode = DELETE")
                finally:
                    target.close()
        finally:
            source.close()
    return out
