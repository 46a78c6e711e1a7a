"""Posterior predictive probabilities against a float64 NumPy reference (loops over observers and severities)."""

from __future__ import annotations

import numpy as np
import pytest

from perceptiongap.analysis import mean_sigmoid, posterior_predictive
from perceptiongap.errors import InputError

from .analysis_helpers import make_posterior, random_posterior, reference_posterior_predictive


@pytest.mark.parametrize("n_observers, n_draws", [(1, 40), (3, 51), (7, 25), (11, 10)])
def test_matches_float64_reference(n_observers: int, n_draws: int) -> None:
    # Odd draw counts exercise the remainder loop; 7 and 11 observers a partial observer block.
    posterior = random_posterior(np.random.default_rng(n_observers), n_observers=n_observers, n_draws=n_draws)
    predictive = posterior_predictive(posterior)
    assert predictive.dims == ("observer", "severity", "case")
    np.testing.assert_allclose(predictive.values, reference_posterior_predictive(posterior), rtol=0, atol=1e-5)


def test_keeps_coordinates_and_covers_every_cell() -> None:
    posterior = random_posterior(np.random.default_rng(0), n_observers=4, severities=(0.0, 0.17, 4.0), n_cases=12)
    predictive = posterior_predictive(posterior)
    assert predictive.shape == (4, 3, 12)
    assert list(predictive["observer"].values) == list(posterior.posterior["observer"].values)
    assert list(predictive["severity"].values) == [0.0, 0.17, 4.0]
    assert list(predictive["exam"].values) == list(posterior.posterior["exam"].values)
    assert list(predictive["breast"].values) == list(posterior.posterior["breast"].values)
    assert np.isfinite(predictive.values).all()


def test_case_subgroup_selects_the_parameters_of_its_subgroup() -> None:
    # Two subgroups with opposite constant effects: every case's probability is known exactly.
    n_chains, n_draws, n_cases = 1, 4, 6
    b = np.broadcast_to([2.0, -1.0], (n_chains, n_draws, 2)).copy()
    gamma = np.zeros((n_chains, n_draws, 2, 2))
    gamma[..., 1, :] = [-3.0, 0.5]
    nu = np.broadcast_to([[0.0, 0.0], [1.0, -1.0]], (n_chains, n_draws, 2, 2)).copy()
    mu = np.zeros((n_chains, n_draws, n_cases))
    groups = np.array(["a", "b", "a", "b", "b", "a"])
    posterior = make_posterior(b=b, mu=mu, gamma=gamma, nu=nu, case_subgroup=groups, case_label=["benign"] * n_cases,
                               subgroups=("a", "b"), severities=(0.0, 1.0))
    predictive = posterior_predictive(posterior).values
    logit = {  # (observer, severity) -> subgroup -> b + gamma + nu
        (0, 0): {"a": 2.0, "b": -1.0}, (0, 1): {"a": -1.0, "b": -0.5},
        (1, 0): {"a": 3.0, "b": -2.0}, (1, 1): {"a": 0.0, "b": -1.5},
    }
    for (r, s), by_group in logit.items():
        expected = [1 / (1 + np.exp(-by_group[g])) for g in groups]
        np.testing.assert_allclose(predictive[r, s], expected, atol=1e-6)


def test_large_severity_effects_use_the_exact_path() -> None:
    # |gamma| = 60 would overflow exp(gamma) in float32; mu cancels it to moderate logits.
    rng = np.random.default_rng(3)
    n_cases = 10
    gamma = np.zeros((1, 30, 2, 1))
    gamma[..., 1, 0] = 60.0 + rng.normal(size=30)
    posterior = make_posterior(
        b=rng.normal(size=(1, 30, 1)), mu=-60.0 + rng.normal(size=(1, 30, n_cases)), gamma=gamma,
        nu=rng.normal(size=(1, 30, 2, 1)), case_subgroup=["a"] * n_cases, case_label=["benign"] * n_cases,
        subgroups=("a",), severities=(0.0, 1.0),
    )
    predictive = posterior_predictive(posterior).values
    np.testing.assert_allclose(predictive, reference_posterior_predictive(posterior), atol=1e-5)
    assert 0.05 < predictive[:, 1].mean() < 0.95  # the cancellation really produced moderate probabilities


def test_extreme_logits_saturate_without_nan() -> None:
    b = np.zeros((1, 2, 1))
    mu = np.array([[[-300.0, 300.0, -90.0, 90.0]]]).repeat(2, axis=1)
    out = mean_sigmoid(b[0], mu[0], np.zeros((2, 1, 1)), np.zeros((2, 1, 1)), np.zeros(4, dtype=int))
    np.testing.assert_allclose(out[0, 0], [0.0, 1.0, 0.0, 1.0], atol=1e-30 + 1e-7)


def test_missing_variable_or_unknown_subgroup_is_refused() -> None:
    posterior = random_posterior(np.random.default_rng(0))
    without_nu = posterior.copy()
    without_nu.posterior = without_nu.posterior.drop_vars("nu")
    with pytest.raises(InputError, match="'nu' is missing"):
        posterior_predictive(without_nu)
    renamed = posterior.copy()
    renamed.constant_data["case_subgroup"].values[0] = "calcified"
    with pytest.raises(InputError, match="'calcified' is not in the subgroup coordinate"):
        posterior_predictive(renamed)


@pytest.mark.parametrize("variant", ["gamma_label", "observer_scale", "both"])
def test_a_variants_severity_effect_follows_the_cases_label_and_the_observer(variant: str) -> None:
    """label_specific's bias and effect depend on whether the breast is malignant; observer_slopes' is scaled
    per observer: the predictive must use the effect of each cell, as the reference loop does."""
    rng = np.random.default_rng(12)
    base = random_posterior(rng, n_observers=7, n_draws=21)
    post = base.posterior
    shape = (post.sizes["chain"], post.sizes["draw"])
    gamma_label = rng.normal(size=(*shape, post.sizes["severity"], post.sizes["subgroup"], 2))
    gamma_label[:, :, 0] = 0.0
    scale = np.exp(rng.normal(size=(*shape, post.sizes["observer"])))
    b_label = rng.normal(size=(*shape, post.sizes["subgroup"], 2))
    posterior = make_posterior(
        b=post["b"].values, mu=post["mu"].values, gamma=post["gamma"].values, nu=post["nu"].values,
        case_subgroup=base.constant_data["case_subgroup"].values, case_label=base.constant_data["case_label"].values,
        subgroups=tuple(post["subgroup"].values), severities=tuple(post["severity"].values),
        gamma_label=gamma_label if variant in ("gamma_label", "both") else None,
        observer_scale=scale if variant in ("observer_scale", "both") else None,
        b_label=b_label if variant in ("gamma_label", "both") else None,
    )
    expected = reference_posterior_predictive(posterior)
    np.testing.assert_allclose(posterior_predictive(posterior).values, expected, rtol=0, atol=1e-5)
    # Negative control: the plain model's predictive differs where the variant's effect does.
    assert np.abs(reference_posterior_predictive(base) - expected).max() > 0.05
