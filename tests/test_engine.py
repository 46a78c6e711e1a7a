"""The engine of many independent tasks: every task run once, results in task order, saved as they come,
finished ones skipped on a rerun, and the same results on a real 2-worker Dask cluster as in this process."""

from __future__ import annotations

import operator
from pathlib import Path

import numpy as np
import pytest

from perceptiongap.analysis.subgroups import choose_subgroups
from perceptiongap.engine import TaskStore, parse_cluster, run_tasks
from perceptiongap.errors import InputError
from perceptiongap.files import atomic_write_text
from perceptiongap.model import NUTSSettings, build_model_data, fit, load_posterior
from perceptiongap.results.fitting import fit_study, model_data_for, plan_fits
from perceptiongap.study import validate_cases, validate_observations

from .model.simulate import simulate_study


def text_store(folder: Path) -> TaskStore:
    return TaskStore(path=lambda task: folder / f"{task}.txt",
                     save=lambda result, path: atomic_write_text(path, str(result)),
                     load=lambda path: int(path.read_text()))


@pytest.mark.parametrize("threads", [1, 3])
def test_every_task_runs_once_and_results_come_in_task_order(tmp_path, threads):
    done = []
    results = run_tasks(list(range(7)), operator.neg, store=text_store(tmp_path), threads=threads,
                        on_done=lambda task, seconds: done.append((task, seconds)))
    assert results == [0, -1, -2, -3, -4, -5, -6]
    assert sorted(task for task, _ in done) == list(range(7))
    assert all(seconds is not None and seconds >= 0 for _, seconds in done)
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(f"{i}.txt" for i in range(7))


def test_results_on_disk_are_read_back_not_recomputed(tmp_path):
    store = text_store(tmp_path)
    (tmp_path / "2.txt").write_text("99")  # a result an earlier run left: kept as it is
    done = []
    results = run_tasks([1, 2, 3], operator.neg, store=store, on_done=lambda task, seconds: done.append((task, seconds)))
    assert results == [-1, 99, -3]
    assert (2, None) in done and (tmp_path / "2.txt").read_text() == "99"


def test_a_failing_task_stops_the_run_and_results_finished_before_are_kept(tmp_path):
    def fails_on_three(task: int) -> int:
        if task == 3:
            raise ValueError("task three failed")
        return task

    with pytest.raises(ValueError, match="task three failed"):
        run_tasks([1, 2, 3, 4], fails_on_three, store=text_store(tmp_path))
    assert (tmp_path / "1.txt").read_text() == "1" and (tmp_path / "2.txt").read_text() == "2"
    assert not (tmp_path / "3.txt").exists()


@pytest.mark.parametrize("address", ["local:0", "local:two", "local:"])
def test_a_bad_local_cluster_is_one_line_naming_the_option(address):
    with pytest.raises(InputError, match=r"expected local:N with N >= 1 worker processes") as info:
        parse_cluster(address)
    assert info.value.source == "cluster"


def test_a_scheduler_address_is_not_a_local_cluster():
    assert parse_cluster("tcp://10.0.0.1:8786") is None
    assert parse_cluster("local:2") == 2


@pytest.mark.slow
def test_fits_on_a_two_worker_dask_cluster_equal_fits_in_this_process_array_for_array(tmp_path):
    observations, cases, _ = simulate_study(seed=3, n_exams=30)
    observations, cases = validate_observations(observations), validate_cases(cases)
    jobs = plan_fits(["readers", "networks"], ["stan-advi"], advi_seeds=1, merged=False,
                     models=("release", "label_specific"))
    data = model_data_for(observations, cases, jobs, choose_subgroups(cases))
    here = fit_study(data, jobs, tmp_path / "here", workers=1)
    finished = []
    on_dask = fit_study(data, jobs, tmp_path / "dask", cluster="local:2",
                        on_fit=lambda job, seconds: finished.append((job, seconds)))

    assert sorted(job.describe() for job, _ in finished) == sorted(job.describe() for job in jobs)
    assert all(seconds is not None for _, seconds in finished)
    for local_path, dask_path in zip(here, on_dask, strict=True):
        assert local_path.relative_to(tmp_path / "here") == dask_path.relative_to(tmp_path / "dask")
        local, remote = load_posterior(local_path), load_posterior(dask_path)
        assert set(local.posterior.data_vars) == set(remote.posterior.data_vars)
        for name in local.posterior.data_vars:
            np.testing.assert_array_equal(local.posterior[name].values, remote.posterior[name].values)
    # Resumed on the cluster: nothing is refitted.
    again = []
    fit_study(data, jobs, tmp_path / "dask", cluster="local:2", on_fit=lambda job, seconds: again.append(seconds))
    assert again == [None] * len(jobs)


#: Short chains: the test is about where the fits run, not about their quality.
DASK_NUTS = NUTSSettings(num_warmup=60, num_samples=40, num_chains=2, log_likelihood=True, evidence=False)


def nuts_fit_arrays(task: tuple) -> dict[str, np.ndarray]:
    """Every array of a small NUTS fit of ``task`` = (model data, seed): the posterior's sites, the
    sample statistics and the pointwise log-likelihood (a top-level function: Dask pickles it)."""
    data, seed = task
    posterior = fit(data, "nuts", seed, settings=DASK_NUTS)
    arrays = {f"sample_stats.{name}": posterior.sample_stats[name].values for name in posterior.sample_stats.data_vars}
    arrays.update({name: posterior.posterior[name].values for name in posterior.posterior.data_vars})
    arrays["log_likelihood"] = posterior.log_likelihood["prediction"].values
    return arrays


@pytest.mark.slow
def test_nuts_fits_on_a_two_worker_dask_cluster_equal_nuts_fits_in_this_process_array_for_array():
    observations, cases, _ = simulate_study(seed=5, n_exams=20)
    observations = validate_observations(observations)
    groups = {group: build_model_data(observations, cases, group) for group in ("readers", "networks")}
    tasks = [(groups[group], seed) for group in ("readers", "networks") for seed in (0, 1)]
    here = run_tasks(tasks, nuts_fit_arrays)
    ran = []
    on_dask = run_tasks(tasks, nuts_fit_arrays, cluster="local:2", on_done=lambda task, seconds: ran.append(seconds))

    assert len(ran) == len(tasks) and all(seconds is not None for seconds in ran)
    for local, remote in zip(here, on_dask, strict=True):
        assert local.keys() == remote.keys()
        for name in local:
            assert local[name].dtype == remote[name].dtype, name  # same precision on the workers
            np.testing.assert_array_equal(local[name], remote[name], err_msg=name)
    # Different seeds and groups really are different fits (the comparison is not of constants).
    assert not np.array_equal(here[0]["gamma"], here[1]["gamma"])
