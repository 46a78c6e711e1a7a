"""The study folder: self-contained, resumable design, nothing a reader wrote is ever replaced."""

from __future__ import annotations

import json
import shutil
import sqlite3

import pandas as pd
import pytest

from perceptiongap.errors import InputError
from perceptiongap.readers import create_study, db, open_study
from perceptiongap.readers.readings import open_reading

CUTOFFS = (float("inf"), 1.0, 0.5)


def _design(inputs, out, **options):
    return create_study(inputs["exams"], inputs["cases"], inputs["readers"], out,
                        **{"cutoffs_per_mm": CUTOFFS, "practice": 1, "seed": 3, **options})


def test_the_study_folder_is_self_contained(tmp_path, template_study):
    moved = tmp_path / "elsewhere"
    shutil.copytree(template_study, moved)
    info = open_study(moved)
    with sqlite3.connect(moved / db.DB_NAME) as connection:
        images = connection.execute("SELECT id, sha256 FROM images").fetchall()
    assert images and all((moved / "images" / f"{i}.png").is_file() for i, _ in images)
    record = json.loads((moved / "study.json").read_text())
    assert record == info.record
    assert record["seed"] == 3 and "PCG64" in record["generator"] and "SeedSequence" in record["generator"]
    assert record["inputs"]["exams"]["sha256"] and record["balance"]["per_exam"] <= 1


def test_an_interrupted_design_resumes_where_it_stopped(tmp_path, study_inputs):
    calls = []

    def interrupt_after_two(done, total):
        calls.append(done)
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _design(study_inputs, tmp_path / "study", progress=interrupt_after_two)
    with pytest.raises(InputError, match="not all prepared"):
        open_study(tmp_path / "study")
    with sqlite3.connect(tmp_path / "study" / db.DB_NAME) as connection:
        first = dict(connection.execute("SELECT id, sha256 FROM images WHERE sha256 IS NOT NULL").fetchall())
    kept = {i: (tmp_path / "study" / "images" / f"{i}.png").stat().st_mtime_ns for i in first}
    resumed = []
    _design(study_inputs, tmp_path / "study", progress=lambda done, total: resumed.append((done, total)))
    assert resumed[0] == (2, 8) and resumed[-1] == (8, 8)
    assert {i: (tmp_path / "study" / "images" / f"{i}.png").stat().st_mtime_ns for i in first} == kept
    assert open_study(tmp_path / "study").record["seed"] == 3


def test_another_design_is_refused_then_replaced_with_force(tmp_path, study_inputs):
    _design(study_inputs, tmp_path / "study")
    with pytest.raises(InputError, match="--force"):
        _design(study_inputs, tmp_path / "study", seed=4)
    assert _design(study_inputs, tmp_path / "study", seed=4, force=True).record["seed"] == 4


def test_a_started_study_is_never_replaced(tmp_path, study_inputs):
    info = _design(study_inputs, tmp_path / "study")
    connection = db.connect(info.database)
    (reading,) = connection.execute("SELECT id FROM readings WHERE reader_id = 'reader01' AND position = 1").fetchone()
    open_reading(connection, "reader01", reading)
    connection.close()
    with pytest.raises(InputError, match="readers have started"):
        _design(study_inputs, tmp_path / "study", seed=4, force=True)


def test_a_folder_holding_something_else_is_refused(tmp_path, study_inputs):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not empty"):
        _design(study_inputs, tmp_path / "busy")
    assert (tmp_path / "busy" / "notes.txt").read_text() == "mine"
    with pytest.raises(InputError, match="is a file"):
        _design(study_inputs, tmp_path / "busy" / "notes.txt")


def test_every_exam_needs_both_breasts_in_cases(tmp_path, study_inputs):
    cases = pd.read_csv(study_inputs["cases"])
    broken = tmp_path / "cases.csv"
    cases[~((cases["exam"] == "synthetic-3") & (cases["breast"] == "R"))].to_csv(broken, index=False)
    with pytest.raises(InputError, match=r"cases.csv: exam 'synthetic-3' breast R has no row"):
        _design({**study_inputs, "cases": broken}, tmp_path / "study")


def test_annotation_mode_takes_no_cutoffs(tmp_path, study_inputs):
    with pytest.raises(InputError, match="--cutoffs-per-mm"):
        _design(study_inputs, tmp_path / "study", mode="annotation")


def test_design_and_export_are_reachable_from_the_package():
    import perceptiongap
    import perceptiongap.readers as readers

    assert perceptiongap.create_study is readers.create_study
    assert perceptiongap.export_study is readers.export_study
