"""ADVI run to convergence: it stops when the averaged severity effects are stationary (split R-hat of
the iterates) and known to the tolerance (Monte Carlo standard error, change over the last window),
a rule that a decaying step size cannot satisfy; it finds a known optimum and recovers simulated
severity effects."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from perceptiongap.model import ConvergedADVISettings, build_model_data, fit_advi
from perceptiongap.model.advi import _run, averaging_verdict, converged_meanfield_advi

from .simulate import SUBGROUPS, coverage

SETTINGS = ConvergedADVISettings()  # tolerance 0.01 on the logit scale, sd_fraction 0.1, R-hat < 1.1
POSTERIOR_SD = np.full(3, 0.5)  # tolerance = min(0.01, 0.1 x 0.5) = 0.01


def _stationary(n_blocks: int, noise: float, seed: int) -> np.ndarray:
    """Block means (n_blocks, 3) scattered independently around fixed values."""
    rng = np.random.default_rng(seed)
    return np.array([-0.4, -1.2, 0.3]) + rng.normal(0.0, noise, (n_blocks, 3))


def test_stationary_and_precise_block_means_have_converged():
    verdict = averaging_verdict(_stationary(128, 0.01, seed=0), POSTERIOR_SD, SETTINGS)
    # By hand: the average of 64 independent means of sd 0.01 has a standard error of 0.00125.
    np.testing.assert_allclose(verdict.mcse, 0.01 / 8, rtol=0.5)
    assert verdict.stationary and verdict.converged
    np.testing.assert_allclose(verdict.tolerance, 0.01)


def test_a_drift_is_not_stationary_even_when_every_step_is_small():
    blocks = _stationary(128, 0.01, seed=1)
    blocks[:, 1] += 0.001 * np.arange(128)  # 0.001 a block: far below the tolerance between neighbours
    verdict = averaging_verdict(blocks, POSTERIOR_SD, SETTINGS)
    assert verdict.r_hat[1] > SETTINGS.max_r_hat
    assert not verdict.stationary and not verdict.converged


def test_noisy_block_means_converge_only_once_the_average_is_precise_enough():
    noisy = _stationary(1024, 0.1, seed=2)
    early = averaging_verdict(noisy[:128], POSTERIOR_SD, SETTINGS)  # standard error about 0.1 / 11 = 0.009
    late = averaging_verdict(noisy, POSTERIOR_SD, SETTINGS)  # about 0.1 / 32 = 0.003
    assert early.stationary and not early.converged
    assert np.all(2 * early.mcse > 0.01)
    assert late.converged


def test_iterates_frozen_by_a_decaying_schedule_are_not_converged():
    """A step size decaying to 0 freezes the iterates short of the optimum: they barely move, so their
    change and standard error meet any tolerance, yet the optimum was never reached."""
    decay = np.exp(-np.arange(128.0, 256.0) / 40)  # the run's second half
    rng = np.random.default_rng(3)
    # Still creeping towards a far-away optimum, with noise shrinking as the step does.
    creeping = (2.0 - decay)[:, None] + decay[:, None] * rng.normal(0.0, 0.01, (128, 3))
    verdict = averaging_verdict(creeping, POSTERIOR_SD, SETTINGS)
    assert np.all(verdict.change < 0.01)  # a rule on the change alone would stop here
    assert not verdict.stationary and not verdict.converged
    # Completely frozen: no variance at all, no R-hat, not converged.
    frozen = averaging_verdict(np.full((128, 3), 2.0), POSTERIOR_SD, SETTINGS)
    assert np.all(frozen.mcse == 0) and np.all(frozen.change == 0)
    assert not frozen.stationary and not frozen.converged


def test_the_tolerance_follows_the_posterior_sd_when_that_is_smaller():
    blocks = _stationary(128, 0.01, seed=4)
    narrow = averaging_verdict(blocks, np.full(3, 0.01), SETTINGS)  # tolerance 0.1 x 0.01 = 0.001
    np.testing.assert_allclose(narrow.tolerance, 0.001)
    assert narrow.stationary and not narrow.converged


def test_quantities_fixed_by_the_model_are_left_out():
    blocks = np.column_stack([np.zeros(128), _stationary(128, 0.01, seed=5)])  # gamma at severity 0: always 0
    verdict = averaging_verdict(blocks, np.r_[0.0, POSTERIOR_SD], SETTINGS)
    assert verdict.r_hat.shape == (3,) and verdict.converged


def _gaussian(theta, data):
    return -0.5 * jnp.sum(((theta - data["centre"]) / data["sd"]) ** 2)


@pytest.mark.slow
def test_converged_advi_finds_a_gaussian():
    """Known answer: for N(centre, diag(sd^2)) the mean-field optimum is exact."""
    centre = jnp.linspace(-1.0, 1.0, 6)
    sd = jnp.array([0.5, 1.0, 2.0, 0.5, 1.0, 2.0])
    settings = ConvergedADVISettings(max_iterations=30_000, tolerance=0.03)
    result = converged_meanfield_advi(_gaussian, 6, {"centre": centre, "sd": sd}, jax.random.PRNGKey(0), settings)
    assert result.converged
    np.testing.assert_allclose(result.mean, np.asarray(centre), atol=0.03)
    np.testing.assert_allclose(np.exp(result.log_sd), np.asarray(sd), rtol=0.05)
    assert result.draws.shape == (settings.output_samples, 6)
    assert result.iterations < 30_000 and result.rule["max_mcse"] < 0.015


@pytest.mark.slow
def test_a_step_size_decaying_before_the_optimum_never_converges(caplog):
    """Adam moves each coordinate by at most about the step size per iteration: with 0.01 x 0.998^t
    the iterates travel at most about 5 in all, so an optimum 10 away is never reached."""
    data = {"centre": jnp.full(3, 10.0), "sd": jnp.ones(3)}
    settings = ConvergedADVISettings(max_iterations=16_000, step_size=lambda t: 0.01 * 0.998**t)
    result = converged_meanfield_advi(_gaussian, 3, data, jax.random.PRNGKey(1), settings)
    assert np.all(result.mean < 8.0)  # short of the optimum
    assert not result.converged and result.iterations == 16_000
    assert result.rule["max_change"] < 0.01  # frozen: a rule on the change alone would have stopped
    assert "without meeting its convergence rule" in caplog.text  # never silent


def test_fixed_iterations_run_exactly_that_long():
    settings = ConvergedADVISettings(fixed_iterations=13_000)
    data = {"centre": jnp.zeros(3), "sd": jnp.ones(3)}
    result = converged_meanfield_advi(_gaussian, 3, data, jax.random.PRNGKey(0), settings)
    assert result.iterations == 13_000 and not result.converged
    assert result.rule["average_start"] >= 6_500  # the first half is never averaged
    with pytest.raises(ValueError):
        ConvergedADVISettings(fixed_iterations=10)


@pytest.mark.slow
def test_a_run_carried_on_to_twice_its_length_is_a_fixed_run_of_that_length():
    """benchmarks/advi_convergence.py's shortcut: one run gives both the fit and the twice-as-long fit."""
    data = {"centre": jnp.array([0.5, -0.5]), "sd": jnp.array([0.3, 0.6])}
    settings = ConvergedADVISettings(tolerance=0.05)
    first, twice = _run(_gaussian, 2, data, jax.random.PRNGKey(2), settings, None, twice=True)
    alone = converged_meanfield_advi(_gaussian, 2, data, jax.random.PRNGKey(2), settings)
    fixed = converged_meanfield_advi(_gaussian, 2, data, jax.random.PRNGKey(2),
                                     ConvergedADVISettings(tolerance=0.05, fixed_iterations=2 * first.iterations))
    assert first.converged and first.iterations == alone.iterations
    np.testing.assert_array_equal(first.mean, alone.mean)
    assert twice.iterations == fixed.iterations == 2 * first.iterations and not twice.converged
    np.testing.assert_array_equal(twice.mean, fixed.mean)
    np.testing.assert_array_equal(twice.log_sd, fixed.log_sd)
    assert twice.rule == fixed.rule


@pytest.mark.slow
def test_converged_advi_recovers_severity_effects(study):
    observations, cases, truth = study
    data = build_model_data(observations, cases, "networks", subgroup_order=SUBGROUPS)
    posterior = fit_advi(data, seed=0)
    attrs = posterior.posterior.attrs
    assert attrs["converged"] == 1
    assert attrs["max_mcse"] < 0.005 and attrs["max_r_hat_iterates"] < 1.1
    assert coverage(posterior, truth["gamma"]) >= 7 / 9
    elbo = attrs["elbo"]
    assert elbo[-1] > elbo[0]
