"""Finding and downloading the release, against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import http.server
import os
import shutil
import socket
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import platformdirs
import pytest

from perceptiongap.errors import InputError
from perceptiongap.release import (
    RELEASE_FILES,
    RELEASE_URL_ENV,
    REQUIRED_FILES,
    default_cache_dir,
    locate_release,
)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Server:
    """A static file server in a thread; ``requests`` lists the paths asked for."""

    def __init__(self, root: Path):
        self.requests: list[str] = []
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's naming)
                server.requests.append(self.path.lstrip("/"))
                super().do_GET()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(root)))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/data/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path) -> Path:
    """No real cache, no environment overrides, and never the real network."""
    monkeypatch.delenv("PERCEPTIONGAP_DATA", raising=False)
    monkeypatch.delenv(RELEASE_URL_ENV, raising=False)
    cache_root = tmp_path / "user-cache"
    monkeypatch.setattr(platformdirs, "user_cache_dir", lambda appname=None, *a, **k: str(cache_root / appname))
    return cache_root


@pytest.fixture
def published(release_dir, tmp_path) -> Path:
    """A site root laid out as the repository: <root>/data/... linking to the shared release."""
    root = tmp_path / "site"
    root.mkdir()
    (root / "data").symlink_to(release_dir, target_is_directory=True)
    return root


@pytest.fixture
def server(published) -> Iterator[Server]:
    running = Server(published)
    yield running
    running.stop()


def copy_release(release_dir: Path, target: Path) -> None:
    """A writable copy of the required files (copytree would keep shared/'s read-only modes)."""
    for name in REQUIRED_FILES:
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(release_dir / name, target / name)


def corrupted_site(release_dir: Path, tmp_path: Path, name: str) -> Path:
    """A copy of the release under <tmp>/bad/data/ with one byte of ``name`` changed."""
    root = tmp_path / "bad"
    copy_release(release_dir, root / "data")
    path = root / "data" / name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    return root


def cache_contents(cache: Path) -> list[str]:
    return sorted(p.relative_to(cache).as_posix() for p in cache.rglob("*") if p.is_file())


def test_checksums_in_the_code_are_the_published_ones(release_dir):
    published = {}
    for line in (release_dir / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split()
        published[name.removeprefix("./")] = digest
    assert {name: digest for name, (digest, _) in RELEASE_FILES.items()} == published
    assert {name: size for name, (_, size) in RELEASE_FILES.items()} == {
        name: (release_dir / name).stat().st_size for name in published
    }
    assert set(RELEASE_FILES) - set(REQUIRED_FILES) == {"perturbation_study_instructions.pdf"}


def test_download_fills_the_cache_with_verified_files_and_is_then_reused(server, release_dir, isolated):
    cache = locate_release(base_url=server.url)
    assert cache == default_cache_dir()
    assert cache.is_relative_to(isolated)
    assert cache_contents(cache) == sorted(REQUIRED_FILES)  # the instructions PDF is not fetched
    for name in REQUIRED_FILES:
        assert (cache / name).read_bytes() == (release_dir / name).read_bytes()
    assert sorted(server.requests) == sorted(f"data/{name}" for name in REQUIRED_FILES)

    server.stop()  # a verified cache needs no network
    assert locate_release(base_url=server.url) == cache
    assert locate_release(download=False) == cache


def test_base_url_comes_from_the_environment(server, monkeypatch):
    monkeypatch.setenv(RELEASE_URL_ENV, server.url.rstrip("/"))  # with or without the trailing slash
    reports = []
    cache = locate_release(on_progress=lambda done, total: reports.append((done, total)))
    assert cache_contents(cache) == sorted(REQUIRED_FILES)
    total = sum(RELEASE_FILES[name][1] for name in REQUIRED_FILES)
    assert reports[-1] == (total, total)  # progress in bytes, up to every byte of the release
    assert [done for done, _ in reports] == sorted(done for done, _ in reports)


def test_corrupt_download_is_refused_and_leaves_nothing_half_written(release_dir, tmp_path, published):
    bad_name = "observed_predictions/perturbation_study/dnns/gmic/filtered.pkl"
    bad = Server(corrupted_site(release_dir, tmp_path, bad_name))
    try:
        with pytest.raises(InputError) as info:
            locate_release(base_url=bad.url)
    finally:
        bad.stop()
    message = str(info.value)
    assert "checksum mismatch" in message and bad_name in message and "\n" not in message

    cache = default_cache_dir()
    left = cache_contents(cache)
    assert bad_name not in left
    assert not [name for name in left if name not in REQUIRED_FILES]  # no temporary or partial files
    for name in left:  # whatever stayed was verified
        assert sha256(cache / name) == RELEASE_FILES[name][0]

    good = Server(published)  # a later run downloads only what is missing
    try:
        assert locate_release(base_url=good.url) == cache
    finally:
        good.stop()
    assert sorted(good.requests) == sorted(f"data/{name}" for name in REQUIRED_FILES if name not in left)
    assert cache_contents(cache) == sorted(REQUIRED_FILES)


def test_altered_file_in_the_cache_is_downloaded_again(server, release_dir):
    cache = default_cache_dir()
    copy_release(release_dir, cache)
    altered = "exam_info.csv"
    (cache / altered).write_text((release_dir / altered).read_text().replace("benign", "Benign", 1))
    assert locate_release(base_url=server.url) == cache
    assert server.requests == [f"data/{altered}"]
    assert sha256(cache / altered) == RELEASE_FILES[altered][0]


def test_network_failure_is_one_line_and_leaves_no_file():
    with socket.socket() as probe:  # a port on which nothing listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(InputError, match="download failed") as info:
        locate_release(base_url=f"http://127.0.0.1:{port}/data/")
    assert "\n" not in str(info.value)
    assert cache_contents(default_cache_dir()) == []
    # Issue 17: it says how to go on without network (`data` is shown as --data by the command line).
    assert "without network, point `data` (or $PERCEPTIONGAP_DATA) at a folder holding the release" in str(info.value)


def test_missing_file_on_the_server_is_an_http_error(tmp_path):
    (tmp_path / "empty-site").mkdir()
    empty = Server(tmp_path / "empty-site")
    try:
        with pytest.raises(InputError, match="HTTP 404"):
            locate_release(base_url=empty.url)
    finally:
        empty.stop()


def test_empty_cache_without_download_is_refused():
    with pytest.raises(InputError, match="not in the cache; run `perceptiongap release fetch`"):
        locate_release(download=False)


def link_release(release_dir: Path, target: Path, skip: str | None = None) -> None:
    for name in REQUIRED_FILES:
        if name != skip:
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            (target / name).symlink_to(release_dir / name)


def test_given_folder_must_hold_the_whole_release(release_dir, tmp_path, monkeypatch):
    assert locate_release(release_dir) == release_dir
    clone = tmp_path / "clone"  # a clone of the authors' repository: the files are under data/
    link_release(release_dir, clone / "data")
    assert locate_release(clone) == clone / "data"
    monkeypatch.setenv("PERCEPTIONGAP_DATA", str(clone))
    assert locate_release() == clone / "data"

    partial_copy = tmp_path / "partial"
    link_release(release_dir, partial_copy, skip="annotation_study_idxs.pkl")
    with pytest.raises(InputError, match="`data`: missing release file annotation_study_idxs.pkl"):
        locate_release(partial_copy)
    monkeypatch.setenv("PERCEPTIONGAP_DATA", str(partial_copy))
    with pytest.raises(InputError, match=r"\$PERCEPTIONGAP_DATA: missing release file"):
        locate_release()
    with pytest.raises(InputError, match="no such directory"):
        locate_release(tmp_path / "absent")


def test_altered_file_in_a_given_folder_is_a_checksum_mismatch(release_dir, tmp_path):
    altered = tmp_path / "altered"
    name = "observed_predictions/perturbation_study/radiologists.pkl"
    link_release(release_dir, altered, skip=name)
    data = bytearray((release_dir / name).read_bytes())
    data[-10] ^= 1
    (altered / name).write_bytes(bytes(data))
    with pytest.raises(InputError) as info:
        locate_release(altered, download=True)
    assert str(info.value).startswith(f"{altered / name}: checksum mismatch")
    assert os.path.getsize(altered / name) == RELEASE_FILES[name][1]  # the user's file is left alone
