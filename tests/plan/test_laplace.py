"""The plan's fit recovers known parameters of simulated studies, and says when it has converged."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from perceptiongap.plan.effects import effects_from_csv
from perceptiongap.plan.laplace import fit_studies
from perceptiongap.plan.simulate import simulate_studies
from tests.plan.helpers import write_effects

pytestmark = pytest.mark.slow


def test_recovers_the_severity_effects_of_simulated_studies(tmp_path):
    truth = (0.0, -0.7, -2.0)
    source = effects_from_csv(write_effects(tmp_path / "e.csv", gamma=truth))
    studies = simulate_studies(source, 8, 400, "balanced", np.random.SeedSequence(11).spawn(3))
    keys = np.stack([np.asarray(jax.random.PRNGKey(i)) for i in range(3)])
    fits = fit_studies("release", studies.arrays, keys)
    assert fits.converged.all()
    assert np.all(fits.gamma_mean[:, 0] == 0) and np.all(fits.gamma_sd[:, 0] == 0)  # the reference
    z = (fits.gamma_mean[:, 1:, :2] - np.asarray(truth)[None, 1:, None]) / fits.gamma_sd[:, 1:, :2]
    assert np.all(np.abs(z) < 4), z
    assert abs(z.mean()) < 1.5  # no shrinkage far beyond the sd (12 estimates)
    # The predictive probabilities are probabilities, and lower where the effect is negative.
    predictive = fits.predictive  # (B, observer, severity, case)
    assert np.all((predictive > 0) & (predictive < 1))
    analysed = studies.arrays["case_subgroup"] < 2  # (B, case)
    mean_at = [np.mean(predictive[:, :, s, :][np.broadcast_to(analysed[:, None, :], predictive[:, :, s, :].shape)])
               for s in (0, 2)]
    assert mean_at[1] < mean_at[0] - 0.1
