"""From image files to a model fit with no manual step: the shared exam and synthetic exams ->
the reference network at every severity and scheme -> Dirichlet calibration -> `perceptiongap fit`."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from perceptiongap.model import load_posterior
from perceptiongap.predict.plugin import VIEWS
from perceptiongap.reference import write_synthetic_exams
from perceptiongap.study import read_study
from perceptiongap.vocabulary import PAPER_SEVERITIES_MM

from ..cli.helpers import run_cli
from .predict_helpers import write_cases, write_rois

# The sample exam's spacing is not recorded; 0.07 mm is typical of screening mammograms
# (and fine enough for the paper's 6 cycles/mm).
SAMPLE_PIXEL_MM = 0.07


def cli(capsys, *args):
    code, _, stderr = run_cli(args, capsys)
    assert code == 0, stderr


@pytest.mark.slow
def test_exams_to_calibrated_observations_to_the_model_fit(exam_dir, tmp_path, capsys):
    # Test set: ten synthetic exams (odd ones with specks in the left breast) and the real exam,
    # read in place from the shared folder.
    test_csv = write_synthetic_exams(tmp_path / "test", 10, shape=(160, 128), seed=1, prefix="test")
    with test_csv.open("a") as handle:
        for view in VIEWS:
            handle.write(f"sample,{view},{exam_dir / f'0_{view}.png'},{SAMPLE_PIXEL_MM}\n")
    test_exams = [f"test-{i}" for i in range(10)] + ["sample"]
    speckled = {f"test-{i}" for i in range(1, 10, 2)}
    test_cases = write_cases(tmp_path / "test_cases.csv", test_exams, speckled)
    rois = write_rois(tmp_path / "rois.csv", [
        *(("test-1", view, "r1", 10, 40, 70, 110) for view in VIEWS),
        *(("test-2", view, "r2", 30, 20, 110, 90) for view in VIEWS),
        ("sample", "L-CC", "r1", 300, 800, 550, 1050), ("sample", "R-MLO", "r1", 400, 1200, 650, 1450),
    ])
    # Validation set: more synthetic exams, unperturbed only, to fit the calibration on.
    validation_csv = write_synthetic_exams(tmp_path / "validation", 40, shape=(160, 128), seed=2, prefix="val")
    validation_cases = write_cases(tmp_path / "validation_cases.csv", [f"val-{i}" for i in range(40)],
                                   {f"val-{i}" for i in range(1, 40, 2)})

    common = ["--model", "perceptiongap.reference:network", "--observer-group", "reference", "--observer", "seed0"]
    cli(capsys, "predict", *common, "--exams", str(test_csv), "--out", str(tmp_path / "test.parquet"),
        "--rois", str(rois), "--schemes", "entire,roi_interior,roi_exterior")
    cli(capsys, "predict", *common, "--exams", str(validation_csv), "--out", str(tmp_path / "validation.parquet"),
        "--cutoffs-per-mm", "inf")
    cli(capsys, "calibrate", "--validation", str(tmp_path / "validation.parquet"), "--validation-cases",
        str(validation_cases), "--test", str(tmp_path / "test.parquet"), "--cases", str(test_cases),
        "--out", str(tmp_path / "calibrated.parquet"), "--unperturbed-only")

    observations, cases = read_study(tmp_path / "calibrated.parquet", test_cases)
    jobs = observations.drop_duplicates(["exam", "scheme", "annotator"])
    assert len(jobs) == 11 + 2 * 3  # every exam entire; test-1, test-2 and the sample exam in both ROI schemes
    assert len(observations) == len(jobs) * len(PAPER_SEVERITIES_MM) * 2

    cli(capsys, "fit", str(tmp_path / "calibrated.parquet"), str(test_cases), "--out", str(tmp_path / "results"),
        "--inference", "stan-advi", "--advi-seeds", "1", "--no-merged")
    posterior = load_posterior(tmp_path / "results" / "posteriors" / "release" / "stan-advi" / "reference" / "seed0.nc")
    gamma = posterior.posterior["gamma"].sel(subgroup="microcalcifications")
    # The reference network loses the specks as the filter removes high frequencies: its
    # confidence in the speckled (malignant) breasts falls, which the model's severity effect shows.
    assert float(gamma.sel(severity=4.0).mean()) < -1.0
    assert float((gamma.sel(severity=4.0) < 0).mean()) > 0.95
    # ...and the rows of the ROI schemes, the annotation study's input, are there per annotator.
    exterior = observations[observations["scheme"] == "roi_exterior"]
    assert set(zip(exterior["exam"], exterior["annotator"])) == {("test-1", "r1"), ("test-2", "r2"), ("sample", "r1")}
    assert pd.api.types.is_float_dtype(observations["prediction"]) and np.isfinite(observations["prediction"]).all()
