"""`predict` end to end: every exam x severity x scheme, the same rows on 1 or 2 processes or Dask,
and a network error that stops the run without losing what was written."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from perceptiongap.errors import InputError
from perceptiongap.predict import predict
from perceptiongap.predict.store import ObservationStore
from perceptiongap.study import validate_observations
from perceptiongap.vocabulary import PAPER_SEVERITIES_MM

from . import netdoubles

REFERENCE = "perceptiongap.reference:network"
SCHEMES = ("entire", "roi_interior", "roi_exterior")
FLAKY = "tests.predict.netdoubles:Flaky"


@pytest.fixture(scope="module")
def single_process_run(exams_folder, rois_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("single") / "obs.parquet"
    return predict(REFERENCE, exams_folder / "exams.csv", "reference", out, observer="seed0",
                   rois=rois_file, schemes=SCHEMES)


def test_every_exam_severity_scheme_and_annotator_is_predicted_once(single_process_run):
    table = single_process_run
    pd.testing.assert_frame_equal(validate_observations(table), table)
    # 4 exams entire + exam 0 (annotator a) + exam 1 (a, b), each ROI job in both ROI schemes.
    jobs = table.drop_duplicates(["exam", "scheme", "annotator"])
    assert len(jobs) == 4 + 2 * 3
    assert len(table) == len(jobs) * 9 * 2
    assert sorted(set(table["severity_mm"])) == sorted(PAPER_SEVERITIES_MM)
    assert set(table["observer_kind"]) == {"machine"} and set(table["observer"]) == {"seed0"}
    # The reference network's known behaviour survives the pipeline: entire-image filtering lowers
    # the speck-bearing left breasts' predictions from 0 to 4 mm.
    entire = table[(table["scheme"] == "entire") & (table["breast"] == "L")]
    by_severity = entire.pivot(index="exam", columns="severity_mm", values="prediction")
    assert (by_severity[4.0] < by_severity[0.0]).all()
    unperturbed = by_severity[0.0]
    assert unperturbed[["synthetic-1", "synthetic-3"]].min() > unperturbed[["synthetic-0", "synthetic-2"]].max()


def test_two_local_processes_give_identical_observations(single_process_run, exams_folder, rois_file, tmp_path):
    table = predict(REFERENCE, exams_folder / "exams.csv", "reference", tmp_path / "obs.parquet",
                    observer="seed0", rois=rois_file, schemes=SCHEMES, workers=2)
    pd.testing.assert_frame_equal(table, single_process_run)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "obs.parquet"), single_process_run)


@pytest.mark.slow
def test_a_dask_cluster_of_two_worker_processes_gives_identical_observations(
    single_process_run, exams_folder, rois_file, tmp_path
):
    from distributed import LocalCluster

    common = dict(observer="seed0", rois=rois_file, schemes=SCHEMES)
    local = predict(REFERENCE, exams_folder / "exams.csv", "reference", tmp_path / "local.parquet",
                    cluster="local:2", **common)
    pd.testing.assert_frame_equal(local, single_process_run)
    # A running cluster, reached by its scheduler address as a Slurm or Kubernetes one would be.
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        remote = predict(REFERENCE, exams_folder / "exams.csv", "reference", tmp_path / "remote.parquet",
                         cluster=cluster.scheduler_address, **common)
    pd.testing.assert_frame_equal(remote, single_process_run)


def test_a_network_error_stops_the_run_keeps_finished_exams_and_the_fixed_run_resumes(
    single_process_run, exams_folder, rois_file, tmp_path
):
    out = tmp_path / "obs.parquet"
    netdoubles.Flaky.calls, netdoubles.Flaky.fail_on_call = 0, 3
    # One call per job (batch size 9 = all severities): call 3 is exam 0's roi_exterior job.
    kwargs = dict(observer="seed0", rois=rois_file, schemes=SCHEMES, batch_size=9, flush_seconds=0)
    with pytest.raises(InputError) as error:
        predict(FLAKY, exams_folder / "exams.csv", "reference", out, **kwargs)
    assert str(error.value) == (
        "model tests.predict.netdoubles:Flaky: on exam 'synthetic-0' at 0.0 mm (roi_exterior of annotator 'a'): "
        "L breast probability is NaN"
    )
    assert not out.exists()
    kept = ObservationStore(out, {}).rows()
    assert len(kept) == 0  # the failing exam's task was not finished: none of its jobs were written

    # The failure on a later exam keeps the exams finished before it.
    netdoubles.Flaky.calls, netdoubles.Flaky.fail_on_call = 0, 5  # exam 1's first roi job
    with pytest.raises(InputError, match="on exam 'synthetic-1'"):
        predict(FLAKY, exams_folder / "exams.csv", "reference", out, force=True, **kwargs)
    kept = ObservationStore(out, {}).rows()
    assert set(kept["exam"]) == {"synthetic-0"} and len(kept) == 3 * 9 * 2

    netdoubles.Flaky.calls, netdoubles.Flaky.fail_on_call = 0, None  # the user fixes the network
    reports = []
    resumed = predict(FLAKY, exams_folder / "exams.csv", "reference", out, progress=lambda *a: reports.append(a),
                      **kwargs)
    assert netdoubles.Flaky.calls == 10 - 3  # exam 0's three jobs were not recomputed
    assert reports == [(1, 4), (2, 4), (3, 4), (4, 4)]  # progress starts at the exam already done
    pd.testing.assert_frame_equal(resumed, single_process_run)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (dict(workers=2, cluster="local:2"), "cluster: give either workers > 1 (2) or a cluster ('local:2'), not both"),
        (dict(batch_size=0), "batch_size: 0 is less than 1"),
        (dict(cutoffs_per_mm=[math.inf, 6, 6.01]), "cutoffs_per_mm: cut-off 6.01 and 6 share the severity label 0.17 mm"),
        (dict(cutoffs_per_mm=[math.inf, -1.0]), "cutoffs_per_mm: -1 is not a positive number of cycles/mm"),
        (dict(cutoffs_per_mm=[6, 0.5]), "cutoffs_per_mm: add inf (the unperturbed image)"),
        (dict(cutoffs_per_mm=[]), "cutoffs_per_mm: add inf (the unperturbed image)"),
        (dict(variant="blur"), "variant: 'blur' is not one of physical, release"),
        (dict(cluster="local:zero"), "cluster: 'local:zero': expected local:N with N >= 1"),
    ],
)
def test_bad_settings_are_refused_before_any_work(exams_folder, tmp_path, overrides, message):
    with pytest.raises(InputError, match=message.replace("(", "\\(").replace(")", "\\)")):
        predict(REFERENCE, exams_folder / "exams.csv", "g", tmp_path / "obs.parquet", **overrides)
    assert not (tmp_path / "obs.parquet.parts").exists() or "cluster" in overrides


def test_only_the_unperturbed_image_when_it_is_the_only_cutoff(exams_folder, tmp_path):
    reports = []
    table = predict(REFERENCE, exams_folder / "exams.csv", "g", tmp_path / "obs.csv", cutoffs_per_mm=[math.inf],
                    progress=lambda done, total: reports.append((done, total)))
    assert reports == [(0, 4), (1, 4), (2, 4), (3, 4), (4, 4)]
    assert len(table) == 4 * 2 and set(table["severity_mm"]) == {0.0}
    assert table["observer"].iloc[0] == REFERENCE
    np.testing.assert_array_equal(pd.read_csv(tmp_path / "obs.csv")["prediction"], table["prediction"])
