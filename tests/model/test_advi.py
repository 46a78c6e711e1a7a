"""ADVI run to convergence: its stop is a bound on the ELBO's trend that neither a fixed schedule nor
noise can meet; it finds a known optimum and recovers simulated severity effects."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from perceptiongap.model import ConvergedADVISettings, build_model_data, fit_advi
from perceptiongap.model.advi import converged_meanfield_advi, elbo_trend_bound
from scipy.stats import linregress

from .simulate import SUBGROUPS, coverage


def test_trend_bound_is_the_upper_end_of_the_slope_over_the_window():
    rng = np.random.default_rng(0)
    elbo = -1000 + 0.3 * np.arange(8) + rng.normal(0, 0.2, 8)
    fit = linregress(np.arange(8), elbo)
    assert elbo_trend_bound(elbo) == pytest.approx((fit.slope + 2 * fit.stderr) * 7, rel=1e-10)


def test_a_rising_elbo_never_meets_the_bound_however_smooth():
    rising = -1000 + 0.05 * np.arange(8)  # 0.35 nats over the window, no noise
    assert elbo_trend_bound(rising) == pytest.approx(0.35)
    assert elbo_trend_bound(rising) > ConvergedADVISettings().rel_tol * 1000


def test_noise_widens_the_bound_instead_of_passing_it():
    rng = np.random.default_rng(1)
    flat = -1000 + rng.normal(0, 1.0, 8)
    quiet = -1000 + rng.normal(0, 0.001, 8)
    assert elbo_trend_bound(flat) > elbo_trend_bound(quiet)
    assert elbo_trend_bound(flat) > ConvergedADVISettings().rel_tol * 1000 > elbo_trend_bound(quiet)


def test_fixed_iterations_run_exactly_that_long():
    def log_density(theta, data):
        return -0.5 * jnp.sum(theta**2)

    settings = ConvergedADVISettings(fixed_iterations=4_000)
    result = converged_meanfield_advi(log_density, 3, {}, jax.random.PRNGKey(0), settings)
    assert result.iterations == 4_000 and not result.converged
    with pytest.raises(ValueError):
        ConvergedADVISettings(fixed_iterations=100)


def test_converged_advi_finds_a_gaussian():
    """Known answer: for N(centre, diag(sd^2)) the mean-field optimum is exact."""
    centre = jnp.linspace(-1.0, 1.0, 6)
    sd = jnp.array([0.5, 1.0, 2.0, 0.5, 1.0, 2.0])

    def log_density(theta, data):
        return -0.5 * jnp.sum(((theta - data["centre"]) / data["sd"]) ** 2)

    settings = ConvergedADVISettings(max_iterations=20_000, step_size=0.02)
    result = converged_meanfield_advi(log_density, 6, {"centre": centre, "sd": sd}, jax.random.PRNGKey(0), settings)
    assert result.converged
    np.testing.assert_allclose(result.mean, np.asarray(centre), atol=0.1)
    np.testing.assert_allclose(np.exp(result.log_sd), np.asarray(sd), rtol=0.1)
    assert result.draws.shape == (settings.output_samples, 6)


@pytest.mark.slow
def test_converged_advi_recovers_severity_effects(study):
    observations, cases, truth = study
    data = build_model_data(observations, cases, "networks", subgroup_order=SUBGROUPS)
    posterior = fit_advi(data, seed=0, settings=ConvergedADVISettings(max_iterations=20_000))
    assert posterior.posterior.attrs["converged"] == 1
    assert coverage(posterior, truth["gamma"]) >= 7 / 9
    elbo = posterior.posterior.attrs["elbo"]
    assert elbo[-1] > elbo[0]
