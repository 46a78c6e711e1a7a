"""Export: Observations + Cases (+ ROIs) that the data model, `fit`, `perturb` and `predict` read."""

from __future__ import annotations

import sqlite3

import pandas as pd
import pytest

from perceptiongap.errors import InputError
from perceptiongap.perturb.roi import read_rois
from perceptiongap.readers import create_study, db, export_study
from perceptiongap.readers.answers import AnswerError
from perceptiongap.readers.folder import open_study
from perceptiongap.readers.readings import open_reading, reader_state, submit_reading
from perceptiongap.study import read_study

ANSWERS = {"L": {"birads": "4C", "malignant": True, "pom": 80}, "R": {"birads": "3", "malignant": False, "pom": 1.5}}


def _read(study, reader: str, count: int, *, rois=None, seconds: float = 20.0) -> list[str]:
    """Open and submit ``reader``'s next ``count`` exams with ANSWERS; return their reading ids."""
    info = open_study(study)
    connection = db.connect(info.database)
    done = []
    try:
        for index in range(count):
            reading = reader_state(connection, info, reader)["current"]["reading"]
            open_reading(connection, reader, reading)
            body = {"idempotency_key": f"key-{reader}-{index}", "active_seconds": seconds + index, "answers": ANSWERS}
            if rois is not None:
                body["rois"] = rois
            submit_reading(connection, info, reader, reading, body)
            done.append(reading)
    finally:
        connection.close()
    return done


def test_export_of_a_study_in_progress(study, tmp_path):
    _read(study, "reader01", 3)  # the practice exam, then two study exams
    _read(study, "reader02", 1)  # the practice exam only
    summary = export_study(study, tmp_path / "out")
    assert (summary.submitted, summary.missing, summary.observations) == (2, 10 * 7 - 2, 4)
    observations, cases = read_study(tmp_path / "out" / "observations.csv", tmp_path / "out" / "cases.csv")
    assert len(cases) == 2 * 7  # the study exams' breasts; the practice exam is not a case
    assert set(observations["observer"]) == {"reader01"}
    assert (observations["observer_group"] == "radiologists").all() and (observations["observer_kind"] == "human").all()
    by_breast = observations.set_index(["exam", "breast"]).sort_index()
    assert by_breast.xs("L", level="breast")["prediction"].eq(1.0).all()
    assert by_breast.xs("R", level="breast")["prediction"].eq(0.0).all()
    assert by_breast.xs("L", level="breast")["birads"].eq("4C").all()
    assert by_breast.xs("R", level="breast")["pom"].eq(1.5).all()
    assert sorted(observations["reading_order"].unique().tolist()) == [2, 3]
    assert sorted(observations["seconds"].unique().tolist()) == [21.0, 22.0]
    with sqlite3.connect(study / db.DB_NAME) as connection:
        truth = dict(connection.execute("SELECT exam, severity_mm FROM readings WHERE reader_id = 'reader01' "
                                        "AND position IN (2, 3)").fetchall())
    assert dict(zip(observations["exam"], observations["severity_mm"])) == truth
    readings = pd.read_csv(tmp_path / "out" / "readings.csv")
    assert len(readings) == 10 * 8 and (readings["status"] == "submitted").sum() == 4
    submitted = readings[readings["status"] == "submitted"]
    assert (submitted["wall_seconds"] >= 0).all() and submitted["opened_at"].str.endswith("Z").all()
    # A second export into the same folder asks first.
    with pytest.raises(InputError, match="--force"):
        export_study(study, tmp_path / "out")
    export_study(study, tmp_path / "out", force=True, file_format="parquet")
    assert (tmp_path / "out" / "observations.parquet").is_file()


@pytest.fixture(scope="module")
def annotation_study(tmp_path_factory, study_inputs):
    out = tmp_path_factory.mktemp("annotation") / "study"
    return create_study(study_inputs["exams"], study_inputs["cases"], study_inputs["readers"], out,
                        mode="annotation", seed=1).folder


def test_annotation_export_writes_the_roi_file_that_perturb_reads(annotation_study, tmp_path):
    rois = [{"view": "L-CC", "x0": 10.4, "y0": 20.6, "x1": 30, "y1": 41.2},
            {"view": "L-CC", "x0": 0, "y0": 0, "x1": 5, "y1": 5},
            {"view": "L-MLO", "x0": 60.0, "y0": 70.0, "x1": 80, "y1": 96}]
    (reading,) = _read(annotation_study, "reader03", 1, rois=rois)
    export_study(annotation_study, tmp_path / "out")
    boxes = read_rois(tmp_path / "out" / "rois.csv")
    with sqlite3.connect(annotation_study / db.DB_NAME) as connection:
        (exam,) = connection.execute("SELECT exam FROM readings WHERE id = ?", (reading,)).fetchone()
    assert sorted((b.exam, b.view, b.annotator, b.x0, b.y0, b.x1, b.y1) for b in boxes) == sorted([
        (exam, "L-CC", "reader03", 10, 21, 30, 41), (exam, "L-CC", "reader03", 0, 0, 5, 5),
        (exam, "L-MLO", "reader03", 60, 70, 80, 96)])
    observations = pd.read_csv(tmp_path / "out" / "observations.csv")
    assert (observations["severity_mm"] == 0).all()


@pytest.mark.parametrize(("rois", "rule"), [
    ([{"view": "R-CC", "x0": 1, "y0": 1, "x1": 9, "y1": 9}], "roi_malignant_only"),  # the right breast: not malignant
    ([{"view": "L-CC", "x0": 1, "y0": 1, "x1": 9, "y1": 9}] * 4, "roi_count"),
    ([{"view": "L-CC", "x0": 1, "y0": 1, "x1": 81, "y1": 9}], "roi_box"),  # the images are 80 columns wide
    ([{"view": "L-CC", "x0": 9, "y0": 1, "x1": 9.2, "y1": 9}], "roi_box"),  # empty once rounded
    ([{"view": "L-XCC", "x0": 1, "y0": 1, "x1": 9, "y1": 9}], "roi_view"),
    ([{"view": "L-CC", "x0": "1", "y0": 1, "x1": 9, "y1": 9}], "roi_box"),
])
def test_rois_breaking_a_rule_are_refused_with_it(annotation_study, rois, rule):
    info = open_study(annotation_study)
    connection = db.connect(info.database)
    try:
        reading = reader_state(connection, info, "reader04")["current"]["reading"]
        open_reading(connection, "reader04", reading)
        with pytest.raises(AnswerError) as caught:
            submit_reading(connection, info, "reader04", reading,
                           {"idempotency_key": "key-roi-0001", "active_seconds": 1, "answers": ANSWERS, "rois": rois})
        assert caught.value.rule == rule
        assert connection.execute("SELECT count(*) FROM rois WHERE reading_id = ?", (reading,)).fetchone()[0] == 0
    finally:
        connection.close()
