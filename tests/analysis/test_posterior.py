"""Reading a posterior: the variables, dims, case attributes and attrs the analyses rely on."""

from __future__ import annotations

import numpy as np
import pytest

from perceptiongap.analysis import perturbation_study_table, predictive_confidence
from perceptiongap.analysis.posterior import draws, posterior_cases
from perceptiongap.errors import InputError

from .analysis_helpers import random_posterior


def test_draws_flatten_chains_and_follow_named_dims_not_positions() -> None:
    posterior = random_posterior(np.random.default_rng(0), n_chains=3, n_draws=7)
    reordered = posterior.posterior.transpose("draw", "subgroup", "chain", "severity", ...)
    gamma = draws(reordered, "gamma")
    assert gamma.shape == (21, 4, 5)
    expected = posterior.posterior["gamma"].values.reshape(21, 4, 5)
    np.testing.assert_array_equal(gamma, expected)


def test_case_attributes_come_from_constant_data() -> None:
    posterior = random_posterior(np.random.default_rng(1), n_cases=10)
    cases = posterior_cases(posterior)
    assert list(cases.label) == list(posterior.constant_data["case_label"].values)
    assert list(cases.subgroup) == list(posterior.constant_data["case_subgroup"].values)


def test_wrong_dims_missing_constant_data_or_attrs_are_refused() -> None:
    posterior = random_posterior(np.random.default_rng(2))
    renamed = posterior.copy()
    renamed.posterior = renamed.posterior.rename({"severity": "level"})
    with pytest.raises(InputError, match="'gamma' has dims"):
        predictive_confidence(renamed)
    without_cases = posterior.copy()
    del without_cases.constant_data
    with pytest.raises(InputError, match="constant_data"):
        posterior_cases(without_cases)
    without_attrs = posterior.copy()
    without_attrs.posterior.attrs.pop("inference")
    with pytest.raises(InputError, match="attrs lack inference"):
        perturbation_study_table([without_attrs])
