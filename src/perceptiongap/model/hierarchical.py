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

from perceptiongap.model.likelihood import cell_logits, log_likelihood

__all__ = ["LATENT_SITES", "case_effects", "perception_model", "severity_effects"]

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
    severity_index: jnp.ndarray | None = None,
    *,
    n_observers: int,
    n_severities: int,
    n_subgroups: int,
) -> None:
    """NumPyro model of one observer group over its observation cells.

    ``prediction`` and ``observed`` have the cell shape (n_observers, slots, n_cases) of
    :meth:`perceptiongap.model.data.ModelData.cells`: slot k is severity k when
    ``severity_index`` is None, else ``severity_index`` holds each cell's severity. Only observed
    cells enter the likelihood. ``case_subgroup`` (n_cases,) holds subgroup indices. With
    ``prediction=None`` the model draws binary predictions for every cell (prior predictive).
    """
    n_cases = case_subgroup.shape[0]
    b = numpyro.sample("b", dist.Normal(0.0, 1.0).expand([n_subgroups]).to_event(1))
    mu = numpyro.sample("mu", dist.Normal(0.0, 1.0).expand([n_cases]).to_event(1))
    delta = numpyro.sample("delta", dist.Normal(0.0, 1.0).expand([n_severities - 1, n_subgroups]).to_event(2))
    nu = numpyro.sample("nu", dist.Normal(0.0, 1.0).expand([n_observers, n_subgroups]).to_event(2))
    gamma = numpyro.deterministic("gamma", severity_effects(delta))
    effects = case_effects(b, mu, gamma, nu, case_subgroup)
    if prediction is None:
        logit = cell_logits(*effects, severity_index)
        numpyro.sample("prediction", dist.Bernoulli(logits=logit).mask(observed).to_event(3))
    else:
        numpyro.factor("prediction", log_likelihood(*effects, prediction, observed, severity_index))


def case_effects(b, mu, gamma, nu, case_subgroup) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray]:
    """The logit's terms per case, g = g(case): b[g] + mu (case,), gamma[:, g] (severity, case) and
    nu[:, g] (observer, case).

    Subgroup lookups are products with the one-hot matrix (case, subgroup), so their gradients are
    dense matrix products instead of scatters.
    """
    one_hot = jax.nn.one_hot(case_subgroup, b.shape[-1], dtype=mu.dtype)  # (case, subgroup)
    return one_hot @ b + mu, gamma @ one_hot.T, nu @ one_hot.T
