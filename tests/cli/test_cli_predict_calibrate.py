"""The `predict` and `calibrate` commands: what they write, and one-line errors with exit code 2."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from perceptiongap.calibrate import calibrate_observations, classwise_ece
from perceptiongap.reference import write_synthetic_exams
from perceptiongap.study import read_observations, write_table

from .helpers import run_cli


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


def simulated_study(tmp_path, name, n_exams, seed):
    """Observations of an over- and an under-confident network, and the Cases of their exams."""
    rng = np.random.default_rng(seed)
    exams = [f"{name}{i}" for i in range(n_exams)]
    malignant = rng.random((n_exams, 2)) < 0.3
    cases = pd.DataFrame({"exam": np.repeat(exams, 2), "breast": ["L", "R"] * n_exams,
                          "label": np.where(malignant.ravel(), "malignant", "benign"), "subgroup": "x"})
    frames = []
    for observer, sharpness in (("seed0", 6.0), ("seed1", 0.8)):  # true slope 2.5
        true_logit = rng.normal(np.where(malignant.ravel(), 1.0, -1.5), 1.0)
        frames.append(pd.DataFrame({
            "observer_group": "net", "observer": observer, "observer_kind": "machine", "exam": cases["exam"],
            "breast": cases["breast"], "severity_mm": 0.0, "scheme": "entire", "annotator": "",
            "prediction": 1 / (1 + np.exp(-sharpness * true_logit)),
        }))
    write_table(pd.concat(frames, ignore_index=True), tmp_path / f"{name}.parquet")
    write_table(cases, tmp_path / f"{name}_cases.csv")
    return tmp_path / f"{name}.parquet", tmp_path / f"{name}_cases.csv"


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
