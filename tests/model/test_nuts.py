"""NUTS recovers known severity effects, misses them on scrambled data, and runs its chains in
parallel when it was given the devices (and one after another, with a warning, when not)."""

from __future__ import annotations

import dataclasses
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from perceptiongap.model import NUTSSettings, build_model_data, fit_nuts, load_posterior, use_host_devices, warnings_for

from .simulate import SUBGROUPS, coverage, simulate_study

SMALL_NUTS = NUTSSettings(num_warmup=500, num_samples=500, num_chains=2)
TINY_NUTS = NUTSSettings(num_warmup=60, num_samples=40, num_chains=2)
REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.parametrize("group", ["readers", "networks"])
def test_nuts_recovers_severity_effects_within_credible_intervals(study, group):
    observations, cases, truth = study
    data = build_model_data(observations, cases, group, subgroup_order=SUBGROUPS)
    posterior = fit_nuts(data, seed=0, settings=SMALL_NUTS)
    # 9 effects at 90%: the expected count is 8.1; 7 or more happens with probability 0.95.
    assert coverage(posterior, truth["gamma"]) >= 7 / 9
    assert warnings_for(posterior) == []


@pytest.mark.slow
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


def small_group():
    observations, cases, _ = simulate_study(seed=5, n_exams=20)
    return build_model_data(observations, cases, "readers", subgroup_order=SUBGROUPS)


@pytest.mark.slow
def test_a_fresh_process_that_asks_for_two_devices_runs_two_chains_in_parallel(tmp_path):
    script = textwrap.dedent(f"""
        from perceptiongap.model import use_host_devices
        assert use_host_devices(2)                      # before any JAX work
        import jax
        from perceptiongap.model import NUTSSettings, build_model_data, fit_nuts, save_posterior
        from tests.model.test_nuts import TINY_NUTS, small_group
        print("devices", jax.local_device_count())
        save_posterior(fit_nuts(small_group(), seed=7, settings=TINY_NUTS), {str(tmp_path / "parallel.nc")!r})
    """)
    run = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True,
                         env={**os.environ, "XLA_FLAGS": ""}, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "devices 2" in run.stdout
    parallel = load_posterior(tmp_path / "parallel.nc")
    assert parallel.posterior.attrs["chain_method"] == "parallel"
    # The chains' draws do not depend on where they ran: this process runs them one after the other
    # (it has one CPU device unless XLA_FLAGS says otherwise) and gets the same numbers.
    here = fit_nuts(small_group(), seed=7, settings=TINY_NUTS)
    for site in ("gamma", "mu", "nu"):
        np.testing.assert_array_equal(here.posterior[site].values, parallel.posterior[site].values)


@pytest.mark.slow
def test_too_few_devices_run_the_chains_one_after_another_with_a_warning(caplog):
    chains = jax.local_device_count() + 1
    with caplog.at_level(logging.WARNING, logger="perceptiongap.model.nuts"):
        posterior = fit_nuts(small_group(), seed=0,
                             settings=NUTSSettings(num_warmup=20, num_samples=10, num_chains=chains))
    assert posterior.posterior.attrs["chain_method"] == "sequential"
    assert posterior.posterior.sizes["chain"] == chains
    assert f"use_host_devices({chains})" in caplog.text


def test_asking_for_devices_after_jax_started_says_it_is_too_late(caplog):
    jnp.zeros(1).block_until_ready()  # JAX's backend is running now
    have = jax.local_device_count()
    assert use_host_devices(have)
    with caplog.at_level(logging.WARNING, logger="perceptiongap.model.nuts"):
        assert not use_host_devices(have + 1)
    assert "must run before any JAX work" in caplog.text
    assert jax.local_device_count() == have
    with pytest.raises(ValueError):
        use_host_devices(0)


@pytest.mark.slow
def test_the_compiled_chain_draws_what_numpyros_mcmc_run_draws():
    """fit_nuts runs NumPyro's NUTS kernel in its own compiled loop (compiled once per shape, where
    MCMC.run compiles its loop again every run). Same kernel, keys and transitions: in double
    precision the draws agree with MCMC.run's to rounding (in single precision, rounding differences
    of the two compiled loops grow along the chain, so the comparison is made in float64)."""
    from numpyro.infer import MCMC, NUTS

    from perceptiongap.model.density import device_data
    from perceptiongap.model.hierarchical import numpyro_model

    data = small_group()
    with jax.enable_x64(True):
        ours = fit_nuts(data, seed=7, settings=TINY_NUTS)
        mcmc = MCMC(NUTS(numpyro_model("release")), num_warmup=TINY_NUTS.num_warmup,
                    num_samples=TINY_NUTS.num_samples, num_chains=2, chain_method="sequential",
                    progress_bar=False, jit_model_args=True)
        mcmc.run(jax.random.PRNGKey(7), **device_data(data), extra_fields=("num_steps",))
        reference = mcmc.get_samples(group_by_chain=True)
        n_steps = np.asarray(mcmc.get_extra_fields(group_by_chain=True)["num_steps"])
    for site in ("b", "mu", "nu", "gamma"):
        assert ours.posterior[site].values.dtype == np.float64
        np.testing.assert_allclose(ours.posterior[site].values, np.asarray(reference[site]), rtol=0, atol=1e-9)
    np.testing.assert_array_equal(ours.sample_stats["n_steps"].values, n_steps)
    # A second fit on other data of the same shapes reuses the compiled chain and still follows the data.
    other = dataclasses.replace(data, prediction=1.0 - data.prediction)
    with jax.enable_x64(True):
        flipped = fit_nuts(other, seed=7, settings=TINY_NUTS)
    assert np.mean(flipped.posterior["b"].values) < np.mean(ours.posterior["b"].values)
