"""A fit takes a JAX key or an int seed; the same key gives the same numbers, and the posterior says which."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from perceptiongap.model import StanADVISettings, build_model_data, fit_stan_advi
from perceptiongap.model.keys import fit_key

from .simulate import SUBGROUPS


def test_a_seed_is_the_key_prngkey_of_that_seed(study):
    observations, cases, _ = study
    data = build_model_data(observations, cases, "readers", subgroup_order=SUBGROUPS)
    settings = StanADVISettings(max_iterations=300, output_samples=50)
    by_seed = fit_stan_advi(data, seed=5, settings=settings)
    by_key = fit_stan_advi(data, settings=settings, key=jax.random.PRNGKey(5))
    by_typed_key = fit_stan_advi(data, settings=settings, key=jax.random.key(5))
    for other in (by_key, by_typed_key):
        np.testing.assert_array_equal(other.posterior["gamma"].values, by_seed.posterior["gamma"].values)
        assert other.posterior.attrs["seed"] == -1
        assert list(other.posterior.attrs["prng_key"]) == [0, 5]
    assert by_seed.posterior.attrs["seed"] == 5 and "prng_key" not in by_seed.posterior.attrs
    other_seed = fit_stan_advi(data, seed=6, settings=settings)
    assert not np.array_equal(other_seed.posterior["gamma"].values, by_seed.posterior["gamma"].values)


def test_exactly_one_of_seed_and_key():
    with pytest.raises(TypeError):
        fit_key(None, None)
    with pytest.raises(TypeError):
        fit_key(1, jax.random.PRNGKey(1))
    with pytest.raises(TypeError):
        fit_key(1.5, None)
    key, seed, attrs = fit_key(np.int64(4), None)
    assert seed == 4 and attrs == {} and list(np.asarray(key)) == [0, 4]
