"""Stan's ADVI finds a known optimum, stops by Stan's rule, and is deterministic given its seed."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from perceptiongap.model import build_model_data, fit_stan_advi
from perceptiongap.model.stan_advi import StanADVISettings, stan_meanfield_advi

from .simulate import SUBGROUPS


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


def test_same_seed_same_numbers(study):
    observations, cases, _ = study
    data = build_model_data(observations, cases, "readers", subgroup_order=SUBGROUPS)
    first = fit_stan_advi(data, seed=1)
    second = fit_stan_advi(data, seed=1)
    np.testing.assert_array_equal(first.posterior["gamma"].values, second.posterior["gamma"].values)
    assert first.posterior.attrs["seed"] == 1


def test_settings_are_keyword_only_and_frozen():
    with pytest.raises(TypeError):
        StanADVISettings(10_000)  # settings are given by name only
    settings = StanADVISettings(max_iterations=500)
    with pytest.raises(AttributeError):
        settings.max_iterations = 1
