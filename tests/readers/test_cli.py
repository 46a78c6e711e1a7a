"""`perceptiongap study design|status|export|backup` and `serve` from the shell: output, refusals."""

from __future__ import annotations

import sqlite3

import pandas as pd

from tests.cli.helpers import run_cli


def test_design_prints_the_balance_achieved(tmp_path, study_inputs, capsys):
    code, out, err = run_cli(["study", "design", "--exams", study_inputs["exams"], "--cases", study_inputs["cases"],
                              "--readers", study_inputs["readers"], "--out", tmp_path / "study",
                              "--cutoffs-per-mm", "inf,1,0.5", "--practice", "1", "--seed", "9",
                              "--window", "soft:1000:800"], capsys)
    assert code == 0, err
    assert "perturbation study (balanced, seed 9), 10 readers x 7 exams after 1 practice exam," in out
    assert "readers per severity, per exam: counts differ by at most 1" in out
    assert "exams per severity, per reader: counts differ by at most 1" in out
    assert "next: perceptiongap serve" in out


def test_bad_input_is_one_line_with_exit_code_2(tmp_path, study_inputs, capsys):
    readers = tmp_path / "readers.csv"
    pd.DataFrame({"reader": ["a", "a"]}).to_csv(readers, index=False)
    code, out, err = run_cli(["study", "design", "--exams", study_inputs["exams"], "--cases", study_inputs["cases"],
                              "--readers", readers, "--out", tmp_path / "study"], capsys)
    assert code == 2 and err.strip() == f"error: {readers}: column 'reader', row 2: reader 'a' is listed twice"
    code, out, err = run_cli(["study", "design", "--exams", study_inputs["exams"], "--cases", study_inputs["cases"],
                              "--readers", study_inputs["readers"], "--out", tmp_path / "s2", "--design", "latin"],
                             capsys)
    assert code == 2 and err.strip() == "error: --design: must be one of balanced, release, got 'latin'"
    code, out, err = run_cli(["study", "design", "--exams", tmp_path / "nope.csv", "--cases", study_inputs["cases"],
                              "--readers", study_inputs["readers"], "--out", tmp_path / "s3"], capsys)
    assert code == 2 and err.startswith("error: --exams: no such file")
    code, out, err = run_cli(["serve", tmp_path], capsys)
    assert code == 2 and "not a study folder" in err and len(err.strip().splitlines()) == 1


def test_status_and_backup(study, tmp_path, capsys):
    code, out, err = run_cli(["study", "status", study], capsys)
    assert code == 0, err
    assert "reader01" in out and "0/8" in out and "70 readings to go" in out
    code, out, err = run_cli(["study", "backup", study, "--out", tmp_path / "copy.sqlite"], capsys)
    assert code == 0, err
    with sqlite3.connect(tmp_path / "copy.sqlite") as copy:
        assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert copy.execute("SELECT count(*) FROM readings").fetchone()[0] == 80
    code, out, err = run_cli(["study", "backup", study, "--out", tmp_path / "copy.sqlite"], capsys)
    assert code == 2 and "--force" in err
    code, out, err = run_cli(["study", "backup", study, "--out", tmp_path], capsys)
    assert code == 2 and err.strip() == f"error: {tmp_path}: is a folder; name the backup file, e.g. backup.sqlite"
    code, out, err = run_cli(["study", "export", study, "--out", tmp_path / "copy.sqlite"], capsys)
    assert code == 2 and "is a file; the export needs a folder" in err


def test_a_served_study_can_be_exported_and_backed_up_but_not_served_twice(shared_server, shared_study, tmp_path,
                                                                           capsys):
    code, out, err = run_cli(["serve", shared_study, "--port", "0"], capsys)  # the server holds the study's lock
    assert code == 2
    assert err.startswith(f"error: {shared_study}: study is being written by another perceptiongap run")
    for command in (["study", "export", shared_study, "--out", tmp_path / "export"],
                    ["study", "backup", shared_study, "--out", tmp_path / "backup.sqlite"],
                    ["study", "status", shared_study]):
        code, out, err = run_cli(command, capsys)
        assert code == 0, err
    assert (tmp_path / "export" / "observations.csv").is_file()
