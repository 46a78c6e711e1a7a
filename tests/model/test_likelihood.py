"""The likelihood's hand-written gradient, the cell layout, and the flat density agree with the model."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from numpyro.infer.util import log_density as numpyro_log_density
from scipy.special import log_expit

from perceptiongap.model import build_model_data
from perceptiongap.model.density import device_data, flat_model_for
from perceptiongap.model.hierarchical import perception_model
from perceptiongap.model.likelihood import cell_logits, log_likelihood
from perceptiongap.study import validate_observations

from .simulate import SUBGROUPS, simulate_study


def random_cells(seed: int, *, n_observers=4, n_slots=2, n_severities=5, n_cases=30, gather=True,
                 by_observer=False):
    """Effects and cells with soft and hard labels, some cells unobserved; ``by_observer`` gives the
    severity effect an observer axis (observer, severity, case)."""
    rng = np.random.default_rng(seed)
    shape = (n_observers, n_slots if gather else n_severities, n_cases)
    severity_shape = (n_observers, n_severities, n_cases) if by_observer else (n_severities, n_cases)
    effects = (rng.normal(0, 2, n_cases), rng.normal(0, 2, severity_shape),
               rng.normal(0, 2, (n_observers, n_cases)))
    prediction = np.where(rng.random(shape) < 0.5, rng.random(shape), rng.integers(0, 2, shape))
    observed = rng.random(shape) < 0.8
    severity_index = rng.integers(0, n_severities, shape).astype(np.int32) if gather else None
    return effects, prediction, observed, severity_index


def independent_log_likelihood(effects, prediction, observed, severity_index) -> float:
    """The same sum written with NumPy loops over cells (the specification, no JAX)."""
    case_bias, severity_effect, observer_effect = effects
    total = 0.0
    for r, k, n in zip(*np.nonzero(observed)):
        s = k if severity_index is None else severity_index[r, k, n]
        severity = severity_effect[r, s, n] if severity_effect.ndim == 3 else severity_effect[s, n]
        logit = case_bias[n] + severity + observer_effect[r, n]
        y = prediction[r, k, n]
        total += y * log_expit(logit) + (1 - y) * log_expit(-logit)
    return total


@pytest.mark.parametrize("by_observer", [False, True], ids=["shared severity effect", "per-observer severity effect"])
@pytest.mark.parametrize("gather", [True, False], ids=["packed cells", "dense grid"])
def test_log_likelihood_value_matches_a_cell_by_cell_sum(gather, by_observer):
    effects, prediction, observed, severity_index = random_cells(0, gather=gather, by_observer=by_observer)
    value = log_likelihood(*map(jnp.asarray, effects), jnp.asarray(prediction), jnp.asarray(observed),
                           None if severity_index is None else jnp.asarray(severity_index))
    expected = independent_log_likelihood(effects, prediction, observed, severity_index)
    assert float(value) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("by_observer", [False, True], ids=["shared severity effect", "per-observer severity effect"])
@pytest.mark.parametrize("gather", [True, False], ids=["packed cells", "dense grid"])
def test_hand_written_gradient_equals_autodiff_of_the_plain_expression(gather, by_observer):
    effects, prediction, observed, severity_index = random_cells(1, gather=gather, by_observer=by_observer)
    data = (jnp.asarray(prediction), jnp.asarray(observed),
            None if severity_index is None else jnp.asarray(severity_index))

    def plain(case_bias, severity_effect, observer_effect):
        logit = cell_logits(case_bias, severity_effect, observer_effect, data[2])
        return jnp.sum(jnp.where(data[1], data[0] * logit - jax.nn.softplus(logit), 0.0))

    expected = jax.grad(plain, argnums=(0, 1, 2))(*map(jnp.asarray, effects))
    got = jax.grad(lambda *e: log_likelihood(*e, *data), argnums=(0, 1, 2))(*map(jnp.asarray, effects))
    for name, g, e in zip(("case", "severity", "observer"), got, expected):
        np.testing.assert_allclose(np.asarray(g), np.asarray(e), rtol=1e-4, atol=1e-4, err_msg=name)
    # Unobserved cells contribute nothing: a severity nobody was seen at has zero gradient.
    assert np.abs(np.asarray(got[1])).sum() > 0


@pytest.fixture(scope="module")
def study():
    observations, cases, _ = simulate_study(seed=5, n_exams=40)
    return validate_observations(observations), cases


def test_a_reader_study_packs_into_one_slot_per_breast(study):
    observations, cases = study
    data = build_model_data(observations, cases, "readers", subgroup_order=SUBGROUPS)
    cells = data.cells()
    assert cells["prediction"].shape == (data.n_observers, 1, data.n_cases)
    # Unpacking the cells gives back the grid, observation for observation.
    observer, slot, case = np.nonzero(cells["observed"])
    severity = cells["severity_index"][observer, slot, case]
    assert len(observer) == data.n_observations
    assert data.observed[observer, severity, case].all()
    np.testing.assert_array_equal(cells["prediction"][observer, slot, case], data.prediction[observer, severity, case])


def test_a_dense_group_keeps_its_grid(study):
    observations, cases = study
    data = build_model_data(observations, cases, "networks", subgroup_order=SUBGROUPS)
    cells = data.cells()
    assert cells["severity_index"] is None
    np.testing.assert_array_equal(cells["prediction"], data.prediction)


def test_a_reader_seeing_a_breast_twice_gets_two_slots(study):
    observations, cases = study
    readers = observations[observations["observer_group"] == "readers"]
    again = readers.iloc[:5].assign(severity_mm=lambda rows: np.where(rows["severity_mm"] == 0.0, 4.0, 0.0))
    data = build_model_data(validate_observations(pd.concat([observations, again], ignore_index=True)), cases,
                            "readers", subgroup_order=SUBGROUPS)
    cells = data.cells()
    assert cells["prediction"].shape[1] == 2
    assert int(cells["observed"].sum()) == data.n_observations


@pytest.mark.parametrize("group", ["readers", "networks"])
def test_flat_log_density_equals_numpyro_log_density_of_the_model(study, group):
    """ADVI's handler-free density and the NumPyro model NUTS samples are one density."""
    observations, cases = study
    data = build_model_data(observations, cases, group, subgroup_order=SUBGROUPS)
    model = flat_model_for(data)
    arrays = device_data(data)
    for seed in range(3):
        theta = jax.random.normal(jax.random.PRNGKey(seed), (model.dim,))
        expected, _ = numpyro_log_density(perception_model, (), arrays, model.unravel(theta))
        assert float(model.log_density(theta, arrays)) == pytest.approx(float(expected), rel=1e-5)
