"""Fitting a study: side-by-side fits give the numbers of one-at-a-time fits, finished fits are kept, and a study
the model cannot take is refused, naming its file, before anything is written."""

from __future__ import annotations

import numpy as np
import pytest

import perceptiongap.model
from perceptiongap.analysis.subgroups import choose_subgroups
from perceptiongap.errors import InputError
from perceptiongap.analysis.fits import fits_table
from perceptiongap.model import ConvergedADVISettings, load_posterior
from perceptiongap.model.stan_advi import ADVIError
from perceptiongap.results.fitting import first_of_each_kind_first, fit_study, model_data_for, plan_fits, read_failure
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
        for site in ("b", "gamma", "nu"):
            np.testing.assert_array_equal(serial.posterior[site].values, parallel.posterior[site].values)
        # The per-case draws are kept as their posterior predictive mean (results.compact).
        np.testing.assert_array_equal(serial.predictive_mean["mean"].values, parallel.predictive_mean["mean"].values)


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


def test_a_failed_fit_of_another_method_is_one_line_naming_the_fit_and_earlier_fits_are_kept(tmp_path, monkeypatch):
    observations, cases = simulated()
    jobs = plan_fits(["readers", "networks"], ["advi"], advi_seeds=1, merged=False)
    data = data_for(observations, cases, jobs)

    def fit_failing_on_networks(data, inference, seed, **options):
        if data.observer_group == "networks":
            raise ADVIError("all proposed step sizes failed")
        return real_fit(data, inference, seed, settings=ConvergedADVISettings(fixed_iterations=2_000), **options)

    real_fit = perceptiongap.model.fit
    monkeypatch.setattr(perceptiongap.model, "fit", fit_failing_on_networks)
    with pytest.raises(InputError, match=r"^obs.csv: release advi networks \(seed 0\): all proposed step sizes"):
        fit_study(data, jobs, tmp_path, workers=1, source="obs.csv")
    assert jobs[0].path(tmp_path).is_file()
    assert not jobs[1].path(tmp_path).exists()


def test_a_stan_advi_seed_that_fails_as_stans_does_is_recorded_and_the_others_go_on(tmp_path, monkeypatch):
    """Stan's ADVI fails on some seeds (10 non-finite gradient draws in a row in the main loop): that
    seed's result is a failure record; the run goes on, and a rerun counts it as done."""
    observations, cases = simulated()
    jobs = plan_fits(["readers"], ["stan-advi"], advi_seeds=3, merged=False)
    data = data_for(observations, cases, jobs)
    real_fit = perceptiongap.model.fit

    def fit_failing_on_seed_1(data, inference, seed, **options):
        if seed == 1:
            raise ADVIError("the gradient failed at iteration 4: 10 draws with a non-finite gradient",
                            {"eta": 1.0, "iterations": 4, "main_gradient_draws_rejected": 10})
        return real_fit(data, inference, seed)

    monkeypatch.setattr(perceptiongap.model, "fit", fit_failing_on_seed_1)
    reported = []
    fit_study(data, jobs, tmp_path, workers=1, on_fit=lambda job, seconds: reported.append(job.seed))
    assert sorted(reported) == [0, 1, 2]
    assert jobs[0].path(tmp_path).is_file() and jobs[2].path(tmp_path).is_file()
    assert not jobs[1].path(tmp_path).exists()
    record = read_failure(jobs[1].failure_path(tmp_path))
    assert jobs[1].failure_path(tmp_path).name == "seed1.failed.json"
    assert record["error"].startswith("the gradient failed at iteration 4")
    assert (record["observer_group"], record["seed"], record["iterations"], record["eta"]) == ("readers", 1, 4, 1.0)

    again = []
    fit_study(data, jobs, tmp_path, workers=1, on_fit=lambda job, seconds: again.append(seconds))
    assert again == [None, None, None]
    table = fits_table([load_posterior(jobs[0].path(tmp_path)), load_posterior(jobs[2].path(tmp_path))], [record])
    assert list(table["failed"]) == [False, False, True]
    assert "seed 1): failed, as Stan's ADVI fails: the gradient failed at iteration 4" in table["warnings"].iloc[2]
    assert table["iterations"].iloc[2] == 4 and table["converged"].iloc[2] == 0


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
