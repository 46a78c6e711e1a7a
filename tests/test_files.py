"""Atomic writes (all or nothing, with the permissions a plain write would give), the checks every command
makes on its output folder, and the half-written files a killed run leaves."""

from __future__ import annotations

import os

import pytest

from perceptiongap.errors import InputError
from perceptiongap.files import atomic_path, atomic_write_text, check_out_dir, check_writable, partial_files


def test_atomic_write_replaces_whole_file_and_respects_umask(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    atomic_write_text(target, "new")
    assert target.read_text() == "new"
    umask = os.umask(0)
    os.umask(umask)
    assert (target.stat().st_mode & 0o777) == (0o666 & ~umask)


def test_failed_write_leaves_previous_content_and_no_temporary_file(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_an_output_folder_is_refused_when_a_file_or_not_empty_unless_forced_or_resumed(tmp_path):
    check_out_dir(tmp_path / "new", force=False)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(InputError) as info:
        check_out_dir(tmp_path / "full", force=False)
    assert info.value.message == "output folder is not empty; use `resume` to continue it or `force` to overwrite"
    with pytest.raises(InputError, match="not empty; use `force` to overwrite$"):
        check_out_dir(tmp_path / "full", force=False, resumable=False)
    check_out_dir(tmp_path / "full", force=True)
    check_out_dir(tmp_path / "full", force=False, resume=True)
    with pytest.raises(InputError, match="is a file, not a folder"):
        check_out_dir(tmp_path / "full" / "x", force=True)


def test_a_writable_output_is_checked_without_creating_it(tmp_path):
    check_writable(tmp_path / "a" / "b")
    assert list(tmp_path.iterdir()) == []  # nothing created, no probe left behind
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="cannot create it: .*file is a file"):
        check_writable(tmp_path / "file" / "below")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders (tests/cli/test_outputs.py "
                                                "checks this with root's override dropped)")
def test_a_read_only_output_is_one_line(tmp_path):
    (tmp_path / "ro").mkdir(mode=0o555)
    with pytest.raises(InputError) as info:
        check_writable(tmp_path / "ro")
    assert str(info.value) == f"{tmp_path / 'ro'}: cannot write here (permission denied)"


def test_half_written_files_of_killed_runs_are_found(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(tmp_path / "deep" / "posterior.nc") as tmp:
            tmp.write_text("half")
            killed = tmp.with_name(tmp.name + "-copy.partial")  # what a kill -9 would leave: the rename never ran
            killed.write_text("half")
            raise KeyboardInterrupt
    assert partial_files(tmp_path) == [killed]
    assert partial_files(tmp_path / "absent") == []
