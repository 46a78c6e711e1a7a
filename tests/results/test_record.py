"""run.json: what a resumed run must match, what --force may remove, and records of older versions."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from perceptiongap.errors import InputError
from perceptiongap.results import ResultsFolder, RunRecord, read_run_record
from perceptiongap.results.record import add_outputs, check_resumable, resume_differences, write_run_record


def record(**changes) -> RunRecord:
    base = RunRecord(stage="fit", inference=["stan-advi", "nuts"], seed=0, advi_seeds=5, merged=True,
                     subgroups={"analysed": ["mass", "calcification"], "merged": ["mass", "calcification"], "how": ""},
                     input_sha256={"observations": "a" * 64, "cases": "b" * 64}, command=["perceptiongap", "fit"])
    return replace(base, **changes)


def test_the_same_run_resumes_whatever_the_order_of_its_methods():
    assert resume_differences(record(), record(inference=["nuts", "stan-advi"], command=["other"])) == []


def test_every_difference_is_named_with_the_new_and_the_folders_value():
    changed = record(seed=7, advi_seeds=1, input_sha256={"observations": "c" * 64, "cases": "b" * 64},
                     subgroups={"analysed": ["mass"], "merged": None, "how": ""})
    assert resume_differences(record(), changed) == [
        "`seed` 7 (the folder's: 0)",
        "`advi_seeds` 1 (the folder's: 5)",
        "`subgroups` mass (the folder's: mass,calcification)",
        "merged subgroups none (the folder's: mass,calcification)",
        f"input observations changed (SHA-256 {'c' * 12}..., the folder's {'a' * 12}...)",
    ]


def test_a_folder_without_a_record_cannot_be_resumed(tmp_path):
    folder = ResultsFolder(tmp_path)
    old, raw, problem = read_run_record(folder)
    assert (old, raw, problem) == (None, None, "run.json is missing")
    with pytest.raises(InputError, match="cannot resume: run.json is missing; use `force` to start afresh"):
        check_resumable(old, record(), folder, problem)


def test_outputs_are_recorded_once_each_and_only_where_a_record_exists(tmp_path):
    folder = ResultsFolder(tmp_path)
    add_outputs(folder, [tmp_path / "tables" / "fits.csv"])
    assert not folder.run_record_path.exists()  # no record: nothing claimed
    write_run_record(folder, record(outputs=["run.json"]))
    add_outputs(folder, [tmp_path / "tables" / "fits.csv", tmp_path / "run.json"])
    add_outputs(folder, [tmp_path / "tables" / "fits.csv"])
    assert read_run_record(folder)[0].outputs == ["run.json", "tables/fits.csv"]


def test_a_record_of_an_older_version_reads_with_empty_settings(tmp_path):
    folder = ResultsFolder(tmp_path)
    folder.run_record_path.write_text(json.dumps({"command": ["perceptiongap", "fit"], "seed": 0, "advi_seeds": 5,
                                                  "inference": ["stan-advi"], "input_sha256": {"/x/obs.csv": "d"},
                                                  "run_seconds": 3.0}))
    old = read_run_record(folder)[0]
    assert old.outputs is None and old.fits == [] and old.stage == ""
    assert "`stage` fit (the folder's: )" in resume_differences(old, record(inference=["stan-advi"]))


def test_a_recorded_path_outside_the_folder_is_refused(tmp_path):
    with pytest.raises(InputError, match="records '../elsewhere.txt', which is not inside the results folder"):
        ResultsFolder(tmp_path).resolve("../elsewhere.txt")


def test_a_different_list_of_models_is_named_and_their_order_does_not_matter():
    assert resume_differences(record(models=["release", "label_specific"]),
                              record(models=["label_specific", "release"])) == []
    assert resume_differences(record(), record(models=["release", "independent"])) == [
        "`model` independent,release (the folder's: release)"]


def test_a_record_without_models_is_a_release_run(tmp_path):
    folder = ResultsFolder(tmp_path)
    raw = json.loads(record().to_json())
    del raw["models"]
    (tmp_path / "run.json").write_text(json.dumps(raw))
    assert read_run_record(folder)[0].models == ["release"]


def test_a_folder_of_the_layout_before_model_variants_is_not_resumed_but_named(tmp_path):
    folder = ResultsFolder(tmp_path)
    old = record(fits=["posteriors/nuts/readers/seed0.nc"])
    new = record(fits=["posteriors/release/nuts/readers/seed0.nc"])
    with pytest.raises(InputError, match=r"written before model variants \(its posteriors lie in posteriors/nuts/"):
        check_resumable(old, new, folder, None)
    check_resumable(new, new, folder, None)  # the current layout resumes


def test_keeping_every_draw_or_not_is_a_setting_a_resumed_run_must_match():
    compact, complete = record(keep_all_draws=False), record(keep_all_draws=True)
    assert resume_differences(compact, complete) == ["`keep_all_draws` True (the folder's: False)"]
    # A folder written before the setting existed holds every draw; either choice may resume it.
    assert resume_differences(record(keep_all_draws=None), compact) == []
