"""Inference recovers known parameters, flags a wrong model, and Stan's ADVI stops by its rule."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from perceptiongap.model import (
    ConvergedADVISettings,
    NUTSSettings,
    build_model_data,
    fit_advi,
    fit_nuts,
    fit_stan_advi,
    load_posterior,
    save_posterior,
    warnings_for,
)
from perceptiongap.model.stan_advi import StanADVISettings, stan_meanfield_advi
from perceptiongap.study import validate_observations

from .simulate import SUBGROUPS, simulate_study

SMALL_NUTS = NUTSSettings(num_warmup=500, num_samples=500, num_chains=2)


@pytest.fixture(scope="module")
def study():
    observations, cases, truth = simulate_study(seed=11)
    return validate_observations(observations), cases, truth


def coverage(posterior, true_gamma: np.ndarray, level: float = 0.9) -> float:
    """Fraction of the perturbed severity effects whose central credible interval holds the truth."""
    gamma = posterior.posterior["gamma"].sel(subgroup=list(SUBGROUPS)).isel(severity=slice(1, None))
    tail = (1 - level) / 2
    lower = gamma.quantile(tail, dim=("chain", "draw")).values
    upper = gamma.quantile(1 - tail, dim=("chain", "draw")).values
    truth = true_gamma[1:]
    return float(np.mean((lower <= truth) & (truth <= upper)))


@pytest.mark.parametrize("group", ["readers", "networks"])
def test_nuts_recovers_severity_effects_within_credible_intervals(study, group):
    observations, cases, truth = study
    data = build_model_data(observations, cases, group, subgroup_order=SUBGROUPS)
    posterior = fit_nuts(data, seed=0, settings=SMALL_NUTS)
    # 9 effects at 90%: the expected count is 8.1; 7 or more happens with probability 0.95.
    assert coverage(posterior, truth["gamma"]) >= 7 / 9
    assert warnings_for(posterior) == []


def test_converged_advi_recovers_severity_effects(study):
    observations, cases, truth = study
    data = build_model_data(observations, cases, "networks", subgroup_order=SUBGROUPS)
    posterior = fit_advi(data, seed=0, settings=ConvergedADVISettings(max_iterations=20_000))
    assert posterior.posterior.attrs["converged"] == 1
    assert coverage(posterior, truth["gamma"]) >= 7 / 9
    elbo = posterior.posterior.attrs["elbo"]
    assert elbo[-1] > elbo[0]


def test_a_model_without_the_severity_signal_is_caught(study):
    """Negative control: scramble severity labels, so the fitted effects cannot match the truth."""
    observations, cases, truth = study
    rng = np.random.default_rng(3)
    wrong = observations.copy()
    machines = wrong["observer_group"] == "networks"
    wrong.loc[machines, "severity_mm"] = rng.permutation(wrong.loc[machines, "severity_mm"].to_numpy())
    wrong = wrong[machines | (wrong["observer_group"] == "readers")]
    data = build_model_data(wrong, cases, "networks", subgroup_order=SUBGROUPS)
    posterior = fit_nuts(data, seed=0, settings=SMALL_NUTS)
    assert coverage(posterior, truth["gamma"]) <= 3 / 9


def test_stan_advi_finds_a_gaussian_exactly():
    """Known answer: for a standard normal target the optimum is mean 0, log sd 0."""

    def log_density(theta, data):
        return -0.5 * jnp.sum((theta - data["centre"]) ** 2)

    centre = jnp.linspace(-1.0, 1.0, 8)
    settings = StanADVISettings(tol_rel_obj=1e-4, max_iterations=20_000)
    result = stan_meanfield_advi(log_density, 8, {"centre": centre}, jax.random.PRNGKey(0), settings)
    # One gradient draw per step leaves some noise in each coordinate; on average it is exact.
    np.testing.assert_allclose(result.mean, np.asarray(centre), atol=0.2)
    np.testing.assert_allclose(result.log_sd, 0.0, atol=0.2)
    assert abs(np.mean(result.mean - np.asarray(centre))) < 0.05
    assert abs(np.mean(result.log_sd)) < 0.05


def relative_changes(elbo: np.ndarray) -> np.ndarray:
    return np.concatenate([[np.inf], np.abs((elbo[:-1] - elbo[1:]) / elbo[1:])])


def assert_stopped_by_stan_rule(attrs, settings=StanADVISettings()):
    """The trace ends at the first evaluation whose buffer mean or median is below tol_rel_obj."""
    changes = relative_changes(np.asarray(attrs["elbo"]))
    window = settings.buffer_size

    def met(i):
        buffer = np.sort(changes[max(0, i - window + 1): i + 1])
        upper_median = buffer[len(buffer) // 2]  # Stan's median: no averaging of the middle pair
        return np.mean(buffer) < settings.tol_rel_obj or upper_median < settings.tol_rel_obj

    assert attrs["converged"] == 1
    assert met(len(changes) - 1)
    assert not any(met(i) for i in range(len(changes) - 1))
    np.testing.assert_array_equal(attrs["elbo_iteration"], settings.eval_elbo * np.arange(1, len(changes) + 1))


def test_stan_advi_stops_by_its_relative_tolerance_rule(study):
    observations, cases, _ = study
    data = build_model_data(observations, cases, "networks", subgroup_order=SUBGROUPS)
    posterior = fit_stan_advi(data, seed=4)
    assert_stopped_by_stan_rule(posterior.posterior.attrs)
    assert posterior.posterior.sizes["draw"] == 1000


def test_same_seed_same_numbers_and_netcdf_round_trip(study, tmp_path):
    observations, cases, _ = study
    data = build_model_data(observations, cases, "readers", subgroup_order=SUBGROUPS)
    first = fit_stan_advi(data, seed=1)
    second = fit_stan_advi(data, seed=1)
    np.testing.assert_array_equal(first.posterior["gamma"].values, second.posterior["gamma"].values)
    save_posterior(first, tmp_path / "posterior.nc")
    back = load_posterior(tmp_path / "posterior.nc")
    assert back.posterior["nu"].dims == ("chain", "draw", "observer", "subgroup")
    assert list(back.posterior["gamma"].coords["severity"].values) == [0.0, 0.5, 1.0, 4.0]
    assert list(back.constant_data["case_label"].values[:2]) == list(cases["label"][:2])
    np.testing.assert_array_equal(back.posterior["mu"].values, first.posterior["mu"].values)
