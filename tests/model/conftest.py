"""A simulated study with known parameters, shared by the inference tests."""

from __future__ import annotations

import pytest

from perceptiongap.study import validate_observations

from .simulate import simulate_study


@pytest.fixture(scope="session")
def study():
    """(observations, cases, truth): 120 exams, readers (sparse, binary) and networks (dense, soft)."""
    observations, cases, truth = simulate_study(seed=11)
    return validate_observations(observations), cases, truth
