"""Simulation-based calibration's pieces: the uniformity test passes uniform ranks and fails the ranks of an
overconfident or biased posterior; replications simulate binary data on the template's observed cells only."""

from __future__ import annotations

import numpy as np

from perceptiongap.model.sbc import rank_uniformity, simulate_release_data, verdict

from .simulate import simulate_study


def ranks_of(posterior_sd: float, bias: float, n_reps: int = 400, n_ranked: int = 99, seed: int = 0) -> np.ndarray:
    """Ranks of a N(0, 1) truth among draws of a normal posterior around the truth's noisy observation."""
    rng = np.random.default_rng(seed)
    truth = rng.normal(size=(n_reps, 4))
    # Exact posterior of theta ~ N(0, 1), x ~ N(theta, 1): N(x / 2, 1 / 2). Scale or shift it to break it.
    x = truth + rng.normal(size=truth.shape)
    draws = x / 2 + bias + posterior_sd * np.sqrt(0.5) * rng.normal(size=(n_ranked, *truth.shape))
    return np.sum(draws < truth[None], axis=0)


def test_the_exact_posterior_is_calibrated():
    counts, p_values = rank_uniformity(ranks_of(1.0, 0.0), 99)
    assert counts.sum(axis=0).tolist() == [400] * 4
    assert verdict(p_values) == "calibrated"


def test_an_overconfident_or_biased_posterior_is_miscalibrated():
    assert verdict(rank_uniformity(ranks_of(0.4, 0.0), 99)[1]) == "miscalibrated"
    assert verdict(rank_uniformity(ranks_of(1.0, 0.5), 99)[1]) == "miscalibrated"


def test_replicated_data_are_binary_on_the_observed_cells_and_follow_the_truth():
    from perceptiongap.model import build_model_data
    from perceptiongap.study import validate_observations

    observations, cases, _ = simulate_study(seed=4, n_exams=60)
    template = build_model_data(validate_observations(observations), cases, "readers")
    data, truth = simulate_release_data(template, np.random.default_rng(1))
    assert set(np.unique(data.prediction[template.observed])) <= {0.0, 1.0}
    assert np.all(data.prediction[~template.observed] == 0)
    assert np.all(truth["gamma"][0] == 0) and truth["gamma"].shape == (template.n_severities, template.n_subgroups)
    # The share of positive answers follows the mean predicted probability of the drawn parameters.
    from scipy.special import expit

    g = template.case_subgroup
    p = expit((truth["b"][g] + truth["mu"])[None, None] + truth["gamma"][:, g][None] + truth["nu"][:, g][:, None])
    observed = template.observed
    assert abs(data.prediction[observed].mean() - p[observed].mean()) < 4 * np.sqrt(0.25 / observed.sum())
