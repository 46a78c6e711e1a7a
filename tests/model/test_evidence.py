"""Bridge sampling recovers the closed-form evidence of two nested Gaussian models and their Bayes factor."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from perceptiongap.model.evidence import bridge_sampling, fit_proposal


def linear_gaussian(rng, *, n_obs: int, dim: int, used: int, noise: float = 1.0, prior: float = 1.0):
    """y = A theta + e, e ~ N(0, noise^2), theta ~ N(0, prior^2); the model uses the first ``used`` columns."""
    design = rng.normal(0.0, 1.0, (n_obs, dim))
    truth = np.zeros(dim)
    truth[: min(used, 3)] = [0.8, -0.5, 0.3][: min(used, 3)]
    y = design @ truth + rng.normal(0.0, noise, n_obs)
    a = design[:, :used]

    def log_joint(theta: np.ndarray) -> np.ndarray:
        residual = y[None, :] - theta @ a.T
        return (stats.norm.logpdf(residual, 0.0, noise).sum(axis=1)
                + stats.norm.logpdf(theta, 0.0, prior).sum(axis=1))

    evidence = stats.multivariate_normal(np.zeros(n_obs), noise**2 * np.eye(n_obs) + prior**2 * a @ a.T).logpdf(y)
    precision = a.T @ a / noise**2 + np.eye(used) / prior**2
    covariance = np.linalg.inv(precision)
    mean = covariance @ a.T @ y / noise**2
    return log_joint, evidence, mean, covariance


def exact_draws(rng, mean, covariance, chains=2, draws=1000):
    return rng.multivariate_normal(mean, covariance, size=(chains, draws))


@pytest.mark.parametrize("used", [3, 6])
def test_bridge_sampling_recovers_the_closed_form_evidence_of_a_small_gaussian_model(used):
    rng = np.random.default_rng(1)
    log_joint, truth, mean, covariance = linear_gaussian(rng, n_obs=30, dim=6, used=used)
    estimate = bridge_sampling(log_joint, exact_draws(rng, mean, covariance), rng=np.random.default_rng(2))
    assert estimate.log_marginal_likelihood == pytest.approx(truth, abs=max(0.02, 4 * estimate.error))
    assert 0 < estimate.error < 0.05


def test_the_nested_models_bayes_factor_matches_the_closed_form():
    """The data come from the smaller model; the evidence penalises the three superfluous parameters."""
    rng = np.random.default_rng(4)
    small = linear_gaussian(np.random.default_rng(5), n_obs=40, dim=6, used=3)
    large = linear_gaussian(np.random.default_rng(5), n_obs=40, dim=6, used=6)
    true_log_bayes_factor = small[1] - large[1]
    assert true_log_bayes_factor > 1.0  # the closed form prefers the model that generated the data
    estimates = [bridge_sampling(log_joint, exact_draws(rng, mean, covariance), rng=rng)
                 for log_joint, _, mean, covariance in (small, large)]
    log_bayes_factor = estimates[0].log_marginal_likelihood - estimates[1].log_marginal_likelihood
    assert log_bayes_factor == pytest.approx(true_log_bayes_factor, abs=0.05)


def random_intercepts(rng, *, n_cases: int, n_groups: int, replicates: int, noise: float = 0.7):
    """A linear analogue of the release's model: y[n, k] = b[g(n)] + mu[n] + e, b and mu ~ N(0, 1).

    b[g] and the mu of its cases trade off against each other (the data fix their sum), the
    low-rank-plus-diagonal posterior correlation of the release's b and mu.
    """
    group = rng.integers(0, n_groups, n_cases)
    a = np.zeros((n_cases * replicates, n_groups + n_cases))
    rows = np.arange(n_cases * replicates)
    case = np.repeat(np.arange(n_cases), replicates)
    a[rows, group[case]] = 1.0
    a[rows, n_groups + case] = 1.0
    truth = rng.normal(0.0, 1.0, n_groups + n_cases)
    y = a @ truth + rng.normal(0.0, noise, len(rows))

    def log_joint(theta: np.ndarray) -> np.ndarray:
        return (stats.norm.logpdf(y[None, :] - theta @ a.T, 0.0, noise).sum(axis=1)
                + stats.norm.logpdf(theta).sum(axis=1))

    evidence = stats.multivariate_normal(np.zeros(len(y)), noise**2 * np.eye(len(y)) + a @ a.T).logpdf(y)
    covariance = np.linalg.inv(a.T @ a / noise**2 + np.eye(a.shape[1]))
    return log_joint, evidence, covariance @ a.T @ y / noise**2, covariance


@pytest.mark.slow
def test_with_more_parameters_than_draws_the_factor_proposal_still_recovers_the_evidence():
    """305 parameters, 400 draws to fit the proposal: a full covariance would be singular."""
    rng = np.random.default_rng(7)
    log_joint, truth, mean, covariance = random_intercepts(rng, n_cases=300, n_groups=5, replicates=3)
    draws = exact_draws(rng, mean, covariance, chains=2, draws=400)
    assert fit_proposal(draws[:, :200].reshape(-1, 305)).covariance is None  # the factor form is used
    estimate = bridge_sampling(log_joint, draws, rng=np.random.default_rng(8))
    assert estimate.log_marginal_likelihood == pytest.approx(truth, abs=max(0.1, 4 * estimate.error))
    assert estimate.error < 0.3


def test_a_proposal_that_misses_the_posterior_shows_a_large_error():
    """Negative control: draws far from the posterior cannot give a small error."""
    rng = np.random.default_rng(9)
    log_joint, truth, mean, covariance = linear_gaussian(rng, n_obs=30, dim=6, used=6)
    wrong = exact_draws(rng, mean + 3.0 * np.sqrt(np.diag(covariance)), covariance)
    estimate = bridge_sampling(log_joint, wrong, rng=rng)
    assert abs(estimate.log_marginal_likelihood - truth) > 1.0 or estimate.error > 0.5


def test_the_factor_proposals_density_is_the_gaussian_density_of_its_covariance():
    rng = np.random.default_rng(3)
    draws = rng.normal(size=(400, 120)) @ rng.normal(size=(120, 120)) * 0.1
    proposal = fit_proposal(draws, factors=5)
    covariance = proposal.factors.T @ proposal.factors + np.diag(proposal.noise)
    x = proposal.sample(rng, 7)
    expected = stats.multivariate_normal(proposal.mean, covariance).logpdf(x)
    np.testing.assert_allclose(proposal.log_density(x), expected, rtol=1e-9)
