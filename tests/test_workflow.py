"""Fitting a study: side-by-side fits give the numbers of one-at-a-time fits, and finished fits are kept."""

from __future__ import annotations

import numpy as np
import pytest

import perceptiongap.model
from perceptiongap.errors import InputError
from perceptiongap.model import load_posterior
from perceptiongap.model.stan_advi import ADVIError
from perceptiongap.study import validate_observations
from perceptiongap.workflow import FitJob, first_of_each_kind_first, fit_study, plan_fits

from .model.simulate import simulate_study


def test_fits_in_parallel_threads_equal_fits_one_at_a_time(tmp_path):
    observations, cases, _ = simulate_study(seed=2, n_exams=40)
    observations = validate_observations(observations)
    jobs = plan_fits(["readers", "networks"], ["stan-advi"], advi_seeds=2)
    finished = []
    one_at_a_time = fit_study(observations, cases, jobs, tmp_path / "serial", workers=1)
    side_by_side = fit_study(observations, cases, jobs, tmp_path / "parallel", workers=2,
                             on_fit=lambda job, seconds: finished.append((job, seconds)))

    assert sorted(job.describe() for job, _ in finished) == sorted(job.describe() for job in jobs)
    assert all(seconds > 0 for _, seconds in finished)
    for serial_path, parallel_path in zip(one_at_a_time, side_by_side, strict=True):
        serial, parallel = load_posterior(serial_path), load_posterior(parallel_path)
        for site in ("b", "mu", "gamma", "nu"):
            np.testing.assert_array_equal(serial.posterior[site].values, parallel.posterior[site].values)


def test_a_fit_already_on_disk_is_kept_not_redone(tmp_path):
    observations, cases, _ = simulate_study(seed=2, n_exams=40)
    observations = validate_observations(observations)
    jobs = plan_fits(["readers"], ["stan-advi"], advi_seeds=2, merged=False)
    paths = fit_study(observations, cases, jobs, tmp_path)
    before = [path.stat().st_mtime_ns for path in paths]
    reported = []
    fit_study(observations, cases, jobs, tmp_path, on_fit=lambda job, seconds: reported.append(seconds))
    assert reported == [None, None]
    assert [path.stat().st_mtime_ns for path in paths] == before


def test_a_failed_fit_is_one_line_naming_the_fit_and_earlier_fits_are_kept(tmp_path, monkeypatch):
    observations, cases, _ = simulate_study(seed=2, n_exams=40)
    observations = validate_observations(observations)
    jobs = plan_fits(["readers", "networks"], ["stan-advi"], advi_seeds=1, merged=False)
    real_fit = perceptiongap.model.fit

    def fit_failing_on_networks(data, inference, seed):
        if data.observer_group == "networks":
            raise ADVIError("all proposed step sizes failed")
        return real_fit(data, inference, seed)

    monkeypatch.setattr(perceptiongap.model, "fit", fit_failing_on_networks)
    with pytest.raises(InputError, match=r"^observations: stan-advi networks \(seed 0\): all proposed step sizes"):
        fit_study(observations, cases, jobs, tmp_path, workers=1)
    assert jobs[0].path(tmp_path).is_file()
    assert not jobs[1].path(tmp_path).exists()


def test_the_first_fit_of_each_shape_goes_first_and_the_rest_keep_their_order():
    jobs = [FitJob(group, "stan-advi", seed) for group in ("readers", "networks", "more_networks") for seed in (0, 1)]
    shape = {"readers": "cells", "networks": "grid", "more_networks": "grid"}
    ordered = first_of_each_kind_first(jobs, lambda job: shape[job.observer_group])
    assert [(job.observer_group, job.seed) for job in ordered] == [
        ("readers", 0), ("networks", 0), ("readers", 1), ("networks", 1), ("more_networks", 0), ("more_networks", 1)]
