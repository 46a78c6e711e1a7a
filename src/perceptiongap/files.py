"""Files and output folders: atomic writes, checksums, and the checks every command makes on its output.

A reader never sees a half-written file: :func:`atomic_path` writes to ``.<name>.<random>.partial``
beside the target and renames it on success. A killed process can leave such a file behind;
:func:`partial_files` finds them so that a resumed run removes them.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from perceptiongap.errors import InputError

__all__ = [
    "PARTIAL_SUFFIX",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "check_out_dir",
    "check_writable",
    "os_error_message",
    "partial_files",
    "remove_paths",
    "same_file",
    "sha256_file",
]

#: Suffix of the temporary files (and staging folders) that become outputs once complete.
PARTIAL_SUFFIX = ".partial"


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``.

    On an exception the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=PARTIAL_SUFFIX, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp creates the file as 0600; give it the mode a plain open() would (0666 less umask).
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes, read in blocks."""
    with open(path, "rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def os_error_message(error: OSError) -> str:
    """An OSError as a short phrase: ``permission denied``, ``read-only file system``, ..."""
    text = error.strerror or (errno.errorcode.get(error.errno, "") if error.errno else "") or str(error)
    return text[:1].lower() + text[1:]


def check_out_dir(out: str | Path, *, force: bool, resume: bool = False, resumable: bool = True) -> None:
    """Refuse an output folder that is a file, or that is not empty unless ``force`` or ``resume``.

    ``resumable`` says whether the command can continue a folder (the refusal then suggests it).
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError("is a file, not a folder", source=out)
    if out.is_dir() and any(out.iterdir()) and not (force or resume):
        hint = "use `resume` to continue it or `force` to overwrite" if resumable else "use `force` to overwrite"
        raise InputError(f"output folder is not empty; {hint}", source=out)


def check_writable(folder: str | Path) -> None:
    """Check that files can be written in ``folder``, or created with it (else a one-line InputError).

    Made before long work starts, so that a read-only output is refused at once, not after hours.
    A folder that does not exist yet is not created: its nearest existing parent is checked.
    """
    folder = Path(folder)
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise InputError(f"cannot create it: {existing} is a file", source=folder)
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-check.", suffix=PARTIAL_SUFFIX, dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as error:
        raise InputError(f"cannot write here ({os_error_message(error)})", source=folder) from None


def partial_files(folder: str | Path) -> list[Path]:
    """Temporary files and staging folders (``.*.partial``) that killed runs left in ``folder`` or below it."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(folder.rglob(f".*{PARTIAL_SUFFIX}"))


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether two paths name one existing file (links included); False if either does not exist."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def remove_paths(paths: Iterable[Path]) -> None:
    """Remove files and folders (recursively); absent ones are skipped."""
    for path in paths:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
