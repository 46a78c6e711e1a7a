"""Every model variant is one density: the flat JAX density (ADVI), NumPyro's density of the derived
model (NUTS) and an independent NumPy computation agree, and so do their deterministic sites."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro import handlers
from numpyro.infer.util import potential_energy
from scipy import stats
from scipy.special import log_expit

from perceptiongap.errors import InputError
from perceptiongap.model import build_model_data, fit
from perceptiongap.model.density import device_data, draws_to_sites, flat_model_for, unconstrained_draws
from perceptiongap.model.hierarchical import numpyro_model
from perceptiongap.model.variants import MODEL_NAMES, get_model
from perceptiongap.study import validate_observations

from .simulate import SUBGROUPS, simulate_study


@pytest.fixture(scope="module")
def groups():
    observations, cases, _ = simulate_study(seed=5, n_exams=40)
    observations = validate_observations(observations)
    return {group: build_model_data(observations, cases, group, subgroup_order=SUBGROUPS)
            for group in ("readers", "networks")}


def independent_log_density(model: str, values: dict, data) -> float:
    """log prior + log-likelihood of a variant at the sites' (constrained) values, in NumPy/SciPy,
    from METHOD §5's formulas, cell by observed cell of the grid (observer, severity, case)."""
    v = {name: np.asarray(value, dtype=np.float64) for name, value in values.items()}
    g = data.case_subgroup
    malignant = np.asarray(data.case_label) == "malignant"
    label = np.where(malignant, 0, 1)
    log_prior = sum(stats.norm.logpdf(v[name]).sum() for name in ("mu", "nu"))
    if model == "label_specific":
        log_prior += stats.norm.logpdf(v["b_label"]).sum()
        case_bias = v["b_label"][g, label]
    else:
        log_prior += stats.norm.logpdf(v["b"]).sum()
        case_bias = v["b"][g]
    scale = np.ones(data.n_observers)
    if model in ("release", "observer_slopes"):
        gamma = np.vstack([np.zeros((1, data.n_subgroups)), np.cumsum(v["delta"], axis=0)])
        log_prior += stats.norm.logpdf(v["delta"]).sum()
        severity_effect = gamma[:, g]  # (S, C)
    elif model == "independent":
        gamma = np.vstack([np.zeros((1, data.n_subgroups)), v["gamma_perturbed"]])
        log_prior += stats.norm.logpdf(v["gamma_perturbed"]).sum()
        severity_effect = gamma[:, g]
    else:  # label_specific: label 0 malignant, 1 not
        gamma_label = np.concatenate([np.zeros((1, data.n_subgroups, 2)), np.cumsum(v["delta"], axis=0)])
        log_prior += stats.norm.logpdf(v["delta"]).sum()
        severity_effect = gamma_label[:, g, label]
    if model == "observer_slopes":
        tau = float(v["slope_spread"])
        # tau is sampled on log scale: the density gains log |d tau / d log tau| = log tau.
        log_prior += stats.halfnorm.logpdf(tau) + np.log(tau) + stats.norm.logpdf(v["slope_z"]).sum()
        scale = np.exp(tau * v["slope_z"])
    observer, severity, case = np.nonzero(data.observed)
    logit = (case_bias[case] + v["mu"][case] + scale[observer] * severity_effect[severity, case]
             + v["nu"][observer, g[case]])
    y = data.prediction[observer, severity, case]
    return float(log_prior + np.sum(y * log_expit(logit) + (1 - y) * log_expit(-logit)))


@pytest.mark.parametrize("model", MODEL_NAMES)
@pytest.mark.parametrize("group", ["readers", "networks"])
def test_flat_density_numpyro_density_and_an_independent_computation_agree(groups, model, group):
    data = groups[group]
    flat = flat_model_for(data, model)
    arrays = device_data(data)
    for seed in range(3):
        theta = 0.7 * jax.random.normal(jax.random.PRNGKey(seed), (flat.dim,))
        # NumPyro's log joint on the unconstrained scale, Jacobian included, is minus its potential energy.
        numpyro_value = -float(potential_energy(numpyro_model(model), (), arrays, flat.unravel(theta)))
        flat_value = float(flat.log_density(theta, arrays))
        expected = independent_log_density(model, flat.constrain(theta), data)
        assert flat_value == pytest.approx(expected, rel=2e-5)
        assert numpyro_value == pytest.approx(expected, rel=2e-5)


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_the_derived_sites_are_numpyros_deterministic_sites(groups, model):
    data = groups["networks"]
    flat = flat_model_for(data, model)
    arrays = device_data(data)
    theta = 0.5 * jax.random.normal(jax.random.PRNGKey(4), (flat.dim,))
    values = flat.constrain(theta)
    trace = handlers.trace(handlers.substitute(numpyro_model(model), data=values)).get_trace(**arrays)
    derived = flat.sites(theta, arrays)
    assert set(derived) == set(get_model(model).posterior_dims)
    for name, dims in get_model(model).posterior_dims.items():
        np.testing.assert_allclose(np.asarray(derived[name]), np.asarray(trace[name]["value"]), rtol=1e-6,
                                   err_msg=name)
        assert np.ndim(derived[name]) == len(dims)


def test_label_specific_gamma_and_b_are_the_subgroups_means_over_its_breasts(groups):
    data = groups["networks"]
    flat = flat_model_for(data, "label_specific")
    arrays = device_data(data)
    sites = flat.sites(jax.random.normal(jax.random.PRNGKey(1), (flat.dim,)), arrays)
    gamma_label = np.asarray(sites["gamma_label"])
    malignant = np.asarray(data.case_label) == "malignant"
    for g in range(data.n_subgroups):
        in_g = data.case_subgroup == g
        share = malignant[in_g].mean()
        expected = share * gamma_label[:, g, 0] + (1 - share) * gamma_label[:, g, 1]
        np.testing.assert_allclose(np.asarray(sites["gamma"])[:, g], expected, rtol=1e-5, atol=1e-6)
        b_label = np.asarray(sites["b_label"])
        np.testing.assert_allclose(np.asarray(sites["b"])[g], share * b_label[g, 0] + (1 - share) * b_label[g, 1],
                                   rtol=1e-5, atol=1e-6)
    assert np.all(gamma_label[0] == 0)  # unperturbed is the reference for both labels


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_each_breasts_log_likelihood_sums_its_observed_cells(groups, model):
    data = groups["readers"]
    flat = flat_model_for(data, model)
    arrays = device_data(data)
    theta = 0.5 * jax.random.normal(jax.random.PRNGKey(2), (flat.dim,))
    per_case = np.asarray(flat.case_log_likelihood(theta, arrays), dtype=np.float64)
    values = flat.constrain(theta)
    total = float(flat.log_density(theta, arrays))
    prior_only = float(flat.log_density(theta, {**arrays, "observed": jnp.zeros_like(arrays["observed"])}))
    assert per_case.sum() == pytest.approx(total - prior_only, rel=1e-5)
    # Breast by breast against the independent computation on that breast's cells alone.
    for case in (0, 7, 33):
        only = _only_case(data, case)
        expected = independent_log_density(model, values, only) - independent_log_density(
            model, values, _only_case(data, None))
        assert per_case[case] == pytest.approx(expected, rel=1e-4, abs=1e-4)


def _only_case(data, case):
    from dataclasses import replace

    keep = np.zeros_like(data.observed)
    if case is not None:
        keep[:, :, case] = data.observed[:, :, case]
    return replace(data, observed=keep)


def test_unconstrained_draws_invert_the_constraint(groups):
    data = groups["readers"]
    flat = flat_model_for(data, "observer_slopes")
    arrays = device_data(data)
    theta = 0.3 * np.asarray(jax.random.normal(jax.random.PRNGKey(0), (2, 3, flat.dim)))
    sites = draws_to_sites(flat, theta, arrays)
    assert np.all(sites["slope_spread"] > 0)
    np.testing.assert_allclose(unconstrained_draws(flat, sites), theta, rtol=1e-5, atol=1e-6)


def test_an_unknown_model_names_the_field_and_the_choices(groups):
    with pytest.raises(InputError) as caught:
        fit(groups["readers"], "stan-advi", 0, model="label-specific")
    assert caught.value.source == "model"
    assert all(name in str(caught.value) for name in MODEL_NAMES)
