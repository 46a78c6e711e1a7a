"""Fitting a study: side-by-side fits give the numbers of one-at-a-time fits, finished fits are kept, and a study
the model cannot take is refused, naming its file, before anything is written."""

from __future__ import annotations

import numpy as np
import pytest

import perceptiongap.model
from perceptiongap.analysis.subgroups import choose_subgroups
from perceptiongap.errors import InputError
from perceptiongap.model import load_posterior
from perceptiongap.model.stan_advi import ADVIError
from perceptiongap.results.fitting import first_of_each_kind_first, fit_study, model_data_for, plan_fits
from perceptiongap.results.layout import FitJob
from perceptiongap.study import validate_cases, validate_observations

from ..model.simulate import simulate_study


def simulated(seed: int = 2, n_exams: int = 40):
    observations, cases, _ = simulate_study(seed=seed, n_exams=n_exams)
    return validate_observations(observations), validate_cases(cases)


def data_for(observations, cases, jobs):
    return model_data_for(observations, cases, jobs, choose_subgroups(cases))


def test_fits_in_parallel_threads_equal_fits_one_at_a_time(tmp_path):
    observations, cases = simulated()
    jobs = plan_fits(["readers", "networks"], ["stan-advi"], advi_seeds=2)
    data = data_for(observations, cases, jobs)
    finished = []
    one_at_a_time = fit_study(data, jobs, tmp_path / "serial", workers=1)
    side_by_side = fit_study(data, jobs, tmp_path / "parallel", workers=2,
                             on_fit=lambda job, seconds: finished.append((job, seconds)))

    assert sorted(job.describe() for job, _ in finished) == sorted(job.describe() for job in jobs)
    assert all(seconds > 0 for _, seconds in finished)
    for serial_path, parallel_path in zip(one_at_a_time, side_by_side, strict=True):
        serial, parallel = load_posterior(serial_path), load_posterior(parallel_path)
        for site in ("b", "mu", "gamma", "nu"):
            np.testing.assert_array_equal(serial.posterior[site].values, parallel.posterior[site].values)


def test_a_fit_already_on_disk_is_kept_not_redone(tmp_path):
    observations, cases = simulated()
    jobs = plan_fits(["readers"], ["stan-advi"], advi_seeds=2, merged=False)
    data = data_for(observations, cases, jobs)
    paths = fit_study(data, jobs, tmp_path)
    before = [path.stat().st_mtime_ns for path in paths]
    reported = []
    fit_study(data, jobs, tmp_path, on_fit=lambda job, seconds: reported.append(seconds))
    assert reported == [None, None]
    assert [path.stat().st_mtime_ns for path in paths] == before


def test_a_failed_fit_is_one_line_naming_the_fit_and_earlier_fits_are_kept(tmp_path, monkeypatch):
    observations, cases = simulated()
    jobs = plan_fits(["readers", "networks"], ["stan-advi"], advi_seeds=1, merged=False)
    data = data_for(observations, cases, jobs)
    real_fit = perceptiongap.model.fit

    def fit_failing_on_networks(data, inference, seed, **options):
        if data.observer_group == "networks":
            raise ADVIError("all proposed step sizes failed")
        return real_fit(data, inference, seed, **options)

    monkeypatch.setattr(perceptiongap.model, "fit", fit_failing_on_networks)
    with pytest.raises(InputError, match=r"^obs.csv: release stan-advi networks \(seed 0\): all proposed step sizes"):
        fit_study(data, jobs, tmp_path, workers=1, source="obs.csv")
    assert jobs[0].path(tmp_path).is_file()
    assert not jobs[1].path(tmp_path).exists()


def test_the_first_fit_of_each_shape_goes_first_and_the_rest_keep_their_order():
    jobs = [FitJob(group, "stan-advi", seed) for group in ("readers", "networks", "more_networks") for seed in (0, 1)]
    shape = {"readers": "cells", "networks": "grid", "more_networks": "grid"}
    ordered = first_of_each_kind_first(jobs, lambda job: shape[job.observer_group])
    assert [(job.observer_group, job.seed) for job in ordered] == [
        ("readers", 0), ("networks", 0), ("readers", 1), ("networks", 1), ("more_networks", 0), ("more_networks", 1)]


@pytest.mark.parametrize(("break_study", "message"), [
    (lambda obs: obs[~((obs["observer_group"] == "networks") & (obs["severity_mm"] == 0))],
     "observer group 'networks' has no unperturbed (severity 0) observations"),
    (lambda obs: obs.assign(observer_kind=obs["observer_kind"].where(obs.index != obs.index[-1], "human"),
                            prediction=obs["prediction"].where(obs.index != obs.index[-1], 1.0)),
     "observer group 'networks' mixes human and machine observers"),
])
def test_a_group_the_model_cannot_take_is_refused_naming_the_file(break_study, message):
    observations, cases = simulated()
    observations = validate_observations(break_study(observations))
    jobs = plan_fits(["readers", "networks"], ["stan-advi"], advi_seeds=1)
    with pytest.raises(InputError) as info:
        model_data_for(observations, cases, jobs, choose_subgroups(cases), source="study/obs.csv")
    assert str(info.value) == f"study/obs.csv: {message}"


def test_each_model_gets_its_own_posteriors_and_both_layouts_are_found(tmp_path):
    from perceptiongap.results.layout import ResultsFolder

    jobs = plan_fits(["readers"], ["nuts"], merged=True, models=("release", "label_specific"))
    assert [job.relative_path for job in jobs] == [
        "posteriors/release/nuts/readers/seed0.nc", "posteriors/release/nuts/readers__merged/seed0.nc",
        "posteriors/label_specific/nuts/readers/seed0.nc", "posteriors/label_specific/nuts/readers__merged/seed0.nc"]
    older = tmp_path / "posteriors" / "stan-advi" / "readers" / "seed0.nc"
    for path in [older, *(job.path(tmp_path) for job in jobs)]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    separate, merged = ResultsFolder(tmp_path).find_posteriors()
    assert set(separate) == {older, jobs[0].path(tmp_path), jobs[2].path(tmp_path)}
    assert set(merged) == {jobs[1].path(tmp_path), jobs[3].path(tmp_path)}
