"""Durable append, resume and consolidation of a prediction run's rows."""

from __future__ import annotations

import pandas as pd
import pytest

from perceptiongap.errors import InputError
from perceptiongap.predict.store import ObservationStore
from perceptiongap.study import validate_observations

SETTINGS = {"model": "m", "cutoffs_per_mm": ["inf", "6.0"]}


def job_rows(exam, scheme="entire", annotator=""):
    return pd.DataFrame({
        "observer_group": "g", "observer": "o", "observer_kind": "machine", "exam": exam,
        "breast": ["L", "R", "L", "R"], "severity_mm": [0.0, 0.0, 0.17, 0.17], "scheme": scheme,
        "annotator": annotator, "prediction": [0.1, 0.2, 0.3, 0.4],
    })


def test_rows_survive_a_new_store_and_consolidate_in_a_fixed_order(tmp_path):
    out = tmp_path / "obs.parquet"
    store = ObservationStore(out, SETTINGS)
    assert store.open() == set()
    store.append(pd.concat([job_rows("e2"), job_rows("e1", "roi_interior", "a")]))
    store.append(job_rows("e1"))

    # A new process (after a kill) sees the completed jobs and continues numbering the parts.
    resumed = ObservationStore(out, SETTINGS)
    assert resumed.open() == {("e2", "entire", ""), ("e1", "roi_interior", "a"), ("e1", "entire", "")}
    resumed.append(job_rows("e3"))
    assert [p.name for p in resumed.parts()] == ["part-000001.parquet", "part-000002.parquet", "part-000003.parquet"]

    table = resumed.consolidate(["e1", "e2", "e3"])
    assert not resumed.parts_dir.exists()
    pd.testing.assert_frame_equal(pd.read_parquet(out), table)
    assert len(table) == 16  # every row once: nothing lost, nothing merged away
    assert list(zip(table["exam"], table["scheme"]))[::4] == [
        ("e1", "entire"), ("e1", "roi_interior"), ("e2", "entire"), ("e3", "entire")]
    expected = validate_observations(pd.concat([job_rows("e1"), job_rows("e1", "roi_interior", "a"),
                                                job_rows("e2"), job_rows("e3")], ignore_index=True))
    pd.testing.assert_frame_equal(table, expected)


def test_a_job_written_twice_is_an_error_not_silently_merged(tmp_path):
    store = ObservationStore(tmp_path / "obs.parquet", SETTINGS)
    store.open()
    store.append(job_rows("e1"))
    store.append(job_rows("e1"))
    with pytest.raises(InputError, match="duplicate observation"):
        store.consolidate(["e1"])


def test_leftover_temporary_files_of_a_killed_write_are_removed(tmp_path):
    store = ObservationStore(tmp_path / "obs.parquet", SETTINGS)
    store.open()
    store.append(job_rows("e1"))
    leftover = store.parts_dir / ".part-000002.parquet.abc.partial"
    leftover.write_bytes(b"half a parquet file")
    assert ObservationStore(tmp_path / "obs.parquet", SETTINGS).open() == {("e1", "entire", "")}
    assert not leftover.exists()


def test_other_settings_or_an_existing_output_need_force(tmp_path):
    out = tmp_path / "obs.parquet"
    store = ObservationStore(out, SETTINGS)
    store.open()
    store.append(job_rows("e1"))
    with pytest.raises(InputError, match="an unfinished run with other settings \\(model\\) is in obs.parquet.parts"):
        ObservationStore(out, {**SETTINGS, "model": "other"}).open()
    assert ObservationStore(out, {**SETTINGS, "model": "other"}, force=True).open() == set()

    out.write_text("the user's own file")
    (out.parent / "obs.parquet.parts").rename(tmp_path / "elsewhere")
    with pytest.raises(InputError, match="output exists; set force"):
        ObservationStore(out, SETTINGS).open()
    assert out.read_text() == "the user's own file"
