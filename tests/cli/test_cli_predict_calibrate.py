"""The `predict` and `calibrate` commands: what they write, and one-line errors with exit code 2."""

from __future__ import annotations

import pandas as pd
import pytest

from perceptiongap.calibrate import calibrate_observations, classwise_ece
from perceptiongap.reference import write_synthetic_exams
from perceptiongap.study import read_observations

from .helpers import run_cli, simulated_study


def test_predict_writes_observations(tmp_path, capsys):
    exams = write_synthetic_exams(tmp_path, 2, shape=(96, 80))
    out = tmp_path / "obs.parquet"
    code, stdout, _ = run_cli(["predict", "--model", "perceptiongap.reference:network", "--exams", str(exams),
                               "--observer-group", "reference", "--out", str(out), "--cutoffs-per-mm", "inf,3,0.5"], capsys)
    assert code == 0
    assert stdout.strip() == f"wrote 12 observations to {out}"
    assert sorted(set(read_observations(out)["severity_mm"])) == [0.0, 0.33, 2.0]
    # Running it again would overwrite a finished file: refused without --force.
    code, _, stderr = run_cli(["predict", "--model", "perceptiongap.reference:network", "--exams", str(exams),
                               "--observer-group", "reference", "--out", str(out)], capsys)
    assert code == 2 and stderr == f"error: {out}: output exists; set force to overwrite it\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "perceptiongap.reference:network", "--exams", "{tmp}/none.csv"],
         "error: {tmp}/none.csv: no such file"),
        (["--model", "nonsense", "--exams", "{exams}"], "'nonsense': expected 'package.module:function'"),
        (["--model", "perceptiongap.reference:network", "--exams", "{exams}", "--cutoffs-per-mm", "6,x"],
         "error: --cutoffs-per-mm: 'x' is not a number of cycles/mm"),
        (["--model", "perceptiongap.reference:network", "--exams", "{exams}", "--cutoffs-per-mm", "6,3"],
         "add inf (the unperturbed image): every severity is measured against it"),
        (["--model", "perceptiongap.reference:network", "--exams", "{exams}", "--schemes", "entire,roi_interior"],
         "scheme(s) roi_interior need ROI boxes: give a ROI file (rois)"),
    ],
)
def test_predict_refuses_bad_input_with_one_line(tmp_path, capsys, args, message):
    exams = write_synthetic_exams(tmp_path, 1, shape=(64, 48))
    fill = {"tmp": str(tmp_path), "exams": str(exams)}
    args = [a.format(**fill) for a in args]
    code, _, stderr = run_cli(["predict", *args, "--observer-group", "g", "--out", str(tmp_path / "o.parquet")], capsys)
    assert code == 2 and stderr.startswith("error: ") and stderr.count("\n") == 1
    # The source is an option or a file; the library names fields (e.g. ``schemes``), which the CLI may map to flags.
    message = message.format(**fill)
    assert stderr.startswith(message) if message.startswith("error: ") else message in stderr


def test_calibrate_writes_calibrated_observations_and_a_reliability_diagram(tmp_path, capsys):
    validation, validation_cases = simulated_study(tmp_path, "val", 600, seed=0)
    test, test_cases = simulated_study(tmp_path, "test", 600, seed=1)
    out, figure = tmp_path / "calibrated.parquet", tmp_path / "reliability.png"
    args = ["calibrate", "--validation", str(validation), "--validation-cases", str(validation_cases),
            "--test", str(test), "--cases", str(test_cases), "--out", str(out), "--figure", str(figure)]
    code, stdout, stderr = run_cli(args, capsys)
    assert code == 0, stderr
    assert "net/seed0: C = " in stdout and "net/seed1: C = " in stdout
    assert figure.stat().st_size > 10_000 and figure.with_suffix(".svg").read_text().startswith("<?xml")

    calibrated = read_observations(out)
    expected, _ = calibrate_observations(read_observations(validation), pd.read_csv(validation_cases),
                                         read_observations(test))
    pd.testing.assert_frame_equal(calibrated, expected)
    labels = pd.read_csv(test_cases).set_index(["exam", "breast"])["label"].eq("malignant").astype(int)
    y = labels.reindex(pd.MultiIndex.from_frame(calibrated[["exam", "breast"]])).to_numpy()
    assert classwise_ece(y, calibrated["prediction"]) < 0.5 * classwise_ece(y, read_observations(test)["prediction"])

    code, _, stderr = run_cli(args, capsys)
    assert code == 2 and stderr == f"error: {out}: exists; pass --force to overwrite it\n"
    without_cases = [*args[:-6], "--out", str(tmp_path / "other.parquet"), "--figure", str(tmp_path / "f.png")]
    code, _, stderr = run_cli(without_cases, capsys)
    assert code == 2 and stderr == "error: --figure: a reliability diagram needs the test labels: pass --cases\n"


def test_predict_into_a_folder_is_refused_before_any_work(tmp_path, capsys, monkeypatch):
    """Issue 16: `predict --out DIR --force` ended in an IsADirectoryError traceback after all the work."""
    import perceptiongap.predict.jobs as jobs

    exams = write_synthetic_exams(tmp_path, 1, shape=(64, 48))
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "notes.txt").write_text("the user's")
    predicted = []
    monkeypatch.setattr(jobs, "run_task", lambda *a, **k: predicted.append(a) or pd.DataFrame())
    code, _, stderr = run_cli(["predict", "--model", "perceptiongap.reference:network", "--exams", exams,
                               "--observer-group", "g", "--out", folder, "--force"], capsys)
    assert code == 2
    assert stderr == f"error: {folder}: is a folder; give the Observations file to write (.parquet or .csv)\n"
    assert predicted == [] and sorted(p.name for p in folder.iterdir()) == ["notes.txt"]
    assert not folder.with_name("results.parts").exists()
