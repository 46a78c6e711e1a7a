"""ADVI run to convergence finds a known optimum and recovers simulated severity effects."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from perceptiongap.model import ConvergedADVISettings, build_model_data, fit_advi
from perceptiongap.model.advi import converged_meanfield_advi

from .simulate import SUBGROUPS, coverage


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
