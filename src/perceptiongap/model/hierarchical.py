"""The hierarchical model of METHOD §5 in NumPyro.

For breast n in subgroup g = g(n), observer r and severity s::

    logit p[n, r, s] = b[g] + mu[n] + gamma[s, g] + nu[r, g]
    gamma[0, g] = 0,  gamma[s, g] = delta[1, g] + ... + delta[s, g]
    b, mu, delta, nu ~ Normal(0, 1)

Humans' binary predictions are Bernoulli(p). Networks' calibrated probabilities y enter as soft
labels with log-likelihood ``y log p + (1 - y) log(1 - p)``, which for y in {0, 1} *is* the
Bernoulli log-likelihood, so one expression serves both kinds of observer. Constants are kept
(full normal densities), as Stan's ADVI evaluates them, so ELBO values and their relative changes
match Stan's scale.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist

#: The latent variables, in the order they are drawn.
LATENT_SITES = ("b", "mu", "delta", "nu")


def severity_effects(delta: jnp.ndarray) -> jnp.ndarray:
    """gamma (S, G) from the increments delta (S - 1, G): zero at severity 0, then cumulative sums."""
    zero = jnp.zeros((1, delta.shape[-1]), dtype=delta.dtype)
    return jnp.concatenate([zero, jnp.cumsum(delta, axis=0)], axis=0)


def perception_model(
    prediction: jnp.ndarray | None,
    observed: jnp.ndarray,
    case_subgroup: jnp.ndarray,
    *,
    n_observers: int,
    n_severities: int,
    n_subgroups: int,
) -> None:
    """NumPyro model of one observer group on the dense grid.

    ``prediction`` and ``observed`` have shape (n_observers, n_severities, n_cases); only observed
    cells enter the likelihood. ``case_subgroup`` (n_cases,) holds subgroup indices. With
    ``prediction=None`` the model draws binary predictions for every cell (prior predictive).
    """
    n_cases = case_subgroup.shape[0]
    b = numpyro.sample("b", dist.Normal(0.0, 1.0).expand([n_subgroups]).to_event(1))
    mu = numpyro.sample("mu", dist.Normal(0.0, 1.0).expand([n_cases]).to_event(1))
    delta = numpyro.sample("delta", dist.Normal(0.0, 1.0).expand([n_severities - 1, n_subgroups]).to_event(2))
    nu = numpyro.sample("nu", dist.Normal(0.0, 1.0).expand([n_observers, n_subgroups]).to_event(2))
    gamma = numpyro.deterministic("gamma", severity_effects(delta))
    logit = grid_logit(b, mu, gamma, nu, case_subgroup)
    if prediction is None:
        numpyro.sample("prediction", dist.Bernoulli(logits=logit).mask(observed).to_event(3))
    else:
        # y log p + (1 - y) log(1 - p) with p = sigmoid(logit), written with one softplus.
        log_likelihood = prediction * logit - jax.nn.softplus(logit)
        numpyro.factor("prediction", jnp.sum(jnp.where(observed, log_likelihood, 0.0)))


def grid_logit(b, mu, gamma, nu, case_subgroup) -> jnp.ndarray:
    """logit p on the grid (observer, severity, case): b[g] + mu + gamma[s, g] + nu[r, g], g = g(case).

    Subgroup lookups are products with the one-hot matrix (case, subgroup), so the gradient is a
    dense matrix product instead of a scatter.
    """
    one_hot = jax.nn.one_hot(case_subgroup, b.shape[-1], dtype=mu.dtype)  # (case, subgroup)
    case_bias = one_hot @ b + mu  # (case,)
    severity_effect = gamma @ one_hot.T  # (severity, case)
    observer_effect = nu @ one_hot.T  # (observer, case)
    return case_bias + severity_effect[None, :, :] + observer_effect[:, None, :]
