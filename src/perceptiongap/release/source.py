"""Where the authors' release lives: the pinned files and their checksums, finding, downloading.

The release is the folder ``data/`` of the public repository nyukat/perception_comparison at a
pinned commit (GNU AGPLv3; perceptiongap never redistributes it). Each file's SHA-256 is carried
here, so a folder counts as the release only if it is byte for byte the published one.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path

import platformdirs

from perceptiongap.errors import InputError
from perceptiongap.files import atomic_path, sha256_file
from perceptiongap.locks import output_lock

#: ``on_progress(done, total)`` of a download, in bytes.
DownloadProgress = Callable[[int, int], None]

__all__ = [
    "DATA_ENV",
    "DOWNLOAD_TIMEOUT_S",
    "INSTRUCTIONS_FILE",
    "OFFLINE_HINT",
    "RELEASE_COMMIT",
    "RELEASE_FILES",
    "RELEASE_REPOSITORY",
    "RELEASE_URL",
    "RELEASE_URL_ENV",
    "REQUIRED_FILES",
    "default_cache_dir",
    "download_release",
    "locate_release",
    "release_root",
]

RELEASE_REPOSITORY = "nyukat/perception_comparison"
RELEASE_COMMIT = "5d7deb0e361e1c477b7ae3127ce7590ae1e0ba1f"
RELEASE_URL = f"https://raw.githubusercontent.com/{RELEASE_REPOSITORY}/{RELEASE_COMMIT}/data/"
#: Environment variable overriding :data:`RELEASE_URL` (a mirror, or a local server in tests).
RELEASE_URL_ENV = "PERCEPTIONGAP_RELEASE_URL"
#: Environment variable naming a folder that holds the release (used when ``--data`` is not given).
DATA_ENV = "PERCEPTIONGAP_DATA"

#: Path under ``data/`` -> (SHA-256, size in bytes) of every file of the pinned release.
RELEASE_FILES: dict[str, tuple[str, int]] = {
    "annotation_study_idxs.pkl": (
        "822f0be2d71c664020d29ad203fd0b56b52fe55b4a8c7a5d30b7c89c62af6337", 334),
    "exam_info.csv": (
        "15359712f1cf358289e546082e780666e2af0b83ff9fe303d378ef21305ef78a", 37278),
    "observed_predictions/annotation_study/dmv/roi_exterior.pkl": (
        "46335d290c8ffef5975d6dfddee53475dbd380b6eb2bbd8f9ec3b5970f191356", 604967),
    "observed_predictions/annotation_study/dmv/roi_interior.pkl": (
        "0a4937a99fecc137f8da1183efd4a3adaef3df12a33cd5dd4f37000145baa196", 604967),
    "observed_predictions/annotation_study/gmic/roi_exterior.pkl": (
        "807e8c91f1d8e609de5217a8c090370a4957e46ca0679c63d3357569f74f12f6", 604967),
    "observed_predictions/annotation_study/gmic/roi_interior.pkl": (
        "05e0dce619a19575ed6a9c4b7e69a20b66d7251264203b66bd1d3e4f2378df93", 604967),
    "observed_predictions/perturbation_study/dnns/dmv/filtered.pkl": (
        "6087dec58dfe308b10970dd54d603bf0b4838568c52aab78881151d77c2aed81", 777856),
    "observed_predictions/perturbation_study/dnns/dmv/unperturbed.pkl": (
        "c26f8403be9e110706302337f63d5823ea6fa07a8c6f467e2c3ee8a90b1b90c9", 777856),
    "observed_predictions/perturbation_study/dnns/gmic/filtered.pkl": (
        "fde3f65cb6b7356c1bfa4ad9149442a052f6720c14f4a5c7f6907aa3f099df11", 777856),
    "observed_predictions/perturbation_study/dnns/gmic/unperturbed.pkl": (
        "504674d31f0841d09818f723dbb4d93ee01c7dd9a55e2755835433d99b6b237a", 777856),
    "observed_predictions/perturbation_study/radiologists.pkl": (
        "f669311eda6fb634cec146a0dd8f5090dac8e561b15d3dbb8fd5b8637ae8ac35", 1555413),
    "perturbation_study_instructions.pdf": (
        "f8ad8ff6e016914005debfa3b69cdb156ce0348bbc449dd0250793c59004be6c", 74354),
}
#: The readers' instructions are documentation, not data: never required, never downloaded.
INSTRUCTIONS_FILE = "perturbation_study_instructions.pdf"
#: The files the analysis needs; a folder counts as the release only if all are present and intact.
REQUIRED_FILES: tuple[str, ...] = tuple(name for name in RELEASE_FILES if name != INSTRUCTIONS_FILE)

DOWNLOAD_TIMEOUT_S = 60.0
#: What a failed download suggests: the release from a folder instead (`data` is shown as the command's flag).
OFFLINE_HINT = ("; without network, point `data` (or $PERCEPTIONGAP_DATA) at a folder holding the release, "
                "e.g. the nyu-release folder of the project's shared data ($PERCEPTIONGAP_SHARED/nyu-release)")


def default_cache_dir() -> Path:
    """The user cache folder for the pinned release, e.g. ``~/.cache/perceptiongap/nyu-release-5d7deb0``."""
    return Path(platformdirs.user_cache_dir("perceptiongap")) / f"nyu-release-{RELEASE_COMMIT[:7]}"


def release_root(directory: Path) -> Path:
    """``directory`` itself, or its ``data/`` when given a clone of the authors' repository."""
    if not (directory / "exam_info.csv").exists() and (directory / "data" / "exam_info.csv").exists():
        return directory / "data"
    return directory


def verify_release(directory: str | Path, *, setting: str = "`data`") -> Path:
    """The release in a folder the user named (itself or its ``data/``), every file verified by SHA-256.

    Any missing or altered file of :data:`REQUIRED_FILES` is an :class:`InputError`; ``setting``
    names where the folder came from in that message.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise InputError(f"{setting}: no such directory", source=directory)
    root = release_root(directory)
    for name in REQUIRED_FILES:
        path = root / name
        if not path.is_file():
            raise InputError(f"{setting}: missing release file {name}", source=root)
        expected, _ = RELEASE_FILES[name]
        actual = sha256_file(path)
        if actual != expected:
            raise InputError(
                f"checksum mismatch: SHA-256 {actual[:16]}... is not the pinned release's {expected[:16]}...",
                source=path,
            )
    return root


def _stale_files(root: Path) -> list[str]:
    return [
        name for name in REQUIRED_FILES
        if not (root / name).is_file() or sha256_file(root / name) != RELEASE_FILES[name][0]
    ]


def locate_release(
    data: str | Path | None = None,
    *,
    download: bool = True,
    on_progress: DownloadProgress | None = None,
    base_url: str | None = None,
    cache_dir: str | Path | None = None,
) -> Path:
    """Return the folder holding the verified release, downloading it into the cache if needed.

    Looked for in ``data``, else ``$PERCEPTIONGAP_DATA``, else the user cache
    (:func:`default_cache_dir`, or ``cache_dir``). A folder the user named must hold every file
    of :data:`REQUIRED_FILES` with its SHA-256 (else :class:`InputError`); the cache is topped
    up instead: missing or altered files are (re-)downloaded from ``base_url``
    (default ``$PERCEPTIONGAP_RELEASE_URL``, else :data:`RELEASE_URL`), holding the cache's
    output lock, with ``on_progress(bytes done, bytes in all)``.
    """
    if data is not None:
        return verify_release(data)
    if os.environ.get(DATA_ENV):
        return verify_release(os.environ[DATA_ENV], setting=f"${DATA_ENV}")
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    stale = _stale_files(cache)
    if stale and not download:
        raise InputError(
            "the authors' release is not in the cache; run `perceptiongap release fetch` or pass `data`",
            source=cache,
        )
    if stale:
        with output_lock(cache, what="release cache"):
            download_release(cache, stale, base_url=base_url, on_progress=on_progress)
    return cache


def download_release(
    directory: str | Path,
    names: Iterable[str] = REQUIRED_FILES,
    *,
    base_url: str | None = None,
    on_progress: DownloadProgress | None = None,
) -> None:
    """Download release files into ``directory``, each verified by SHA-256 and written atomically.

    A file is renamed onto its final name only once its checksum matches; a failed or corrupt
    download raises :class:`InputError` and leaves no partial file (files verified before it stay).
    ``on_progress(done, total)`` is called in bytes as the download proceeds.
    """
    directory = Path(directory)
    names = list(names)
    base = base_url or os.environ.get(RELEASE_URL_ENV) or RELEASE_URL
    base = base if base.endswith("/") else base + "/"
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(f"cannot create the cache folder: {error.strerror or error}", source=directory) from error

    total = sum(RELEASE_FILES[name][1] for name in names)
    done = 0

    def advance(n_bytes: int) -> None:
        nonlocal done
        done += n_bytes
        if on_progress:
            on_progress(done, total)

    for name in names:
        url = urllib.parse.urljoin(base, urllib.parse.quote(name))
        _download_file(url, directory / name, RELEASE_FILES[name][0], advance)


def _download_file(url: str, destination: Path, expected_sha256: str, advance: Callable[[int], None]) -> None:
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response, atomic_path(destination) as tmp:
            with tmp.open("wb") as out:
                while chunk := response.read(1 << 16):
                    digest.update(chunk)
                    out.write(chunk)
                    advance(len(chunk))
            if digest.hexdigest() != expected_sha256:
                raise InputError(
                    f"checksum mismatch: downloaded SHA-256 {digest.hexdigest()[:16]}... is not the "
                    f"pinned release's {expected_sha256[:16]}...; the file was not kept",
                    source=url,
                )
    except urllib.error.HTTPError as error:
        raise InputError(f"download failed: HTTP {error.code} {error.reason}{OFFLINE_HINT}", source=url) from error
    except urllib.error.URLError as error:
        raise InputError(f"download failed: {error.reason}{OFFLINE_HINT}", source=url) from error
    except (OSError, http.client.HTTPException) as error:
        raise InputError(f"download failed: {error.strerror or error!r}{OFFLINE_HINT}", source=url) from error
