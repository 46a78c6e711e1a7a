"""``perceptiongap release fetch`` and ``perceptiongap release import``."""

from __future__ import annotations

import pytest

from perceptiongap.study import read_study

from .helpers import run_cli

run = run_cli


@pytest.fixture(autouse=True)
def no_environment(monkeypatch):
    monkeypatch.delenv("PERCEPTIONGAP_DATA", raising=False)
    monkeypatch.delenv("PERCEPTIONGAP_RELEASE_URL", raising=False)


def test_import_writes_valid_tables_and_refuses_to_overwrite_without_force(release_dir, tmp_path, capsys):
    out = tmp_path / "study"
    code, stdout, _ = run(["release", "import", str(release_dir), "--out", str(out)], capsys)
    assert code == 0
    assert "wrote 575040 observations" in stdout and "1440 cases" in stdout
    observations, cases = read_study(out / "observations.parquet", out / "cases.parquet")
    assert len(observations) == 13440 + 4 * 64800 + 4 * 75600
    assert len(cases) == 1440

    before = (out / "cases.parquet").read_bytes()
    code, stdout, stderr = run(["release", "import", str(release_dir), "--out", str(out), "--format", "csv"], capsys)
    assert code == 2 and stdout == ""
    assert stderr == f"error: {out}: output folder is not empty; use --force to overwrite\n"
    assert sorted(p.name for p in out.iterdir()) == ["cases.parquet", "observations.parquet"]
    assert (out / "cases.parquet").read_bytes() == before


def test_import_without_a_folder_locates_the_release_and_writes_csv(release_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PERCEPTIONGAP_DATA", str(release_dir))
    out = tmp_path / "study"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    code, _, _ = run(["release", "import", "--out", str(out), "--format", "csv", "--force"], capsys)
    assert code == 0
    assert (out / "notes.txt").read_text() == "mine"
    observations, cases = read_study(out / "observations.csv", out / "cases.csv")
    assert len(observations) == 575040 and len(cases) == 1440


def test_out_dir_that_is_a_file_is_one_line_and_exit_2(release_dir, tmp_path, capsys):
    out = tmp_path / "taken"
    out.write_text("x")
    code, _, stderr = run(["release", "import", str(release_dir), "--out", str(out), "--force"], capsys)
    assert code == 2
    assert stderr == f"error: {out}: is a file, not a folder\n"


def test_fetch_prints_where_the_release_is(release_dir, tmp_path, capsys, monkeypatch):
    code, stdout, _ = run(["release", "fetch", "--data", str(release_dir)], capsys)
    assert (code, stdout) == (0, f"{release_dir}\n")
    monkeypatch.setenv("PERCEPTIONGAP_DATA", str(release_dir))
    code, stdout, _ = run(["release", "fetch"], capsys)
    assert (code, stdout) == (0, f"{release_dir}\n")

    code, stdout, stderr = run(["release", "fetch", "--data", str(tmp_path)], capsys)
    assert code == 2 and stdout == ""
    assert stderr == f"error: {tmp_path}: --data: missing release file annotation_study_idxs.pkl\n"


def test_import_of_a_named_folder_verifies_every_checksum(release_dir, tmp_path, capsys):
    """Issue 16: `release import DIR` imported a release with a flipped bit silently; `fetch --data` refused it."""
    from perceptiongap.release import REQUIRED_FILES

    altered = tmp_path / "altered"
    name = "observed_predictions/perturbation_study/dnns/gmic/filtered.pkl"
    for other in REQUIRED_FILES:
        (altered / other).parent.mkdir(parents=True, exist_ok=True)
        if other != name:
            (altered / other).symlink_to(release_dir / other)
    data = bytearray((release_dir / name).read_bytes())
    data[len(data) // 2] ^= 1
    (altered / name).write_bytes(bytes(data))
    out = tmp_path / "study"
    code, stdout, stderr = run(["release", "import", str(altered), "--out", str(out)], capsys)
    assert code == 2 and stdout == ""
    assert stderr.startswith(f"error: {altered / name}: checksum mismatch: SHA-256 ")
    assert len(stderr.strip().splitlines()) == 1
    assert not out.exists() or not any(out.iterdir())
