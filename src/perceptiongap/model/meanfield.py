"""What the two mean-field ADVI methods share: the Gaussian family, its ELBO, and its posterior.

The approximation is N(mean, diag(exp(log_sd))^2) on the model's flat unconstrained vector
(:mod:`perceptiongap.model.density`). Both ``stan-advi`` and ``advi`` return their fit as a
:class:`MeanFieldResult`; :func:`mean_field_posterior` turns it into the ArviZ posterior, with the
Pareto k-hat of the importance ratios p / q at its draws (how far q is from the posterior).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np

from perceptiongap.model.data import ModelData
from perceptiongap.model.density import FlatModel, draws_to_sites
from perceptiongap.model.diagnostics import pareto_k_hat
from perceptiongap.model.posterior_io import to_inference_data

__all__ = ["MeanFieldResult", "estimate_elbo", "gaussian_draws", "mean_field_posterior"]


@dataclass(frozen=True, kw_only=True)
class MeanFieldResult:
    """A fitted mean-field approximation and how the fit went."""

    mean: np.ndarray  # (dim,)
    log_sd: np.ndarray  # (dim,): omega, the log standard deviations
    draws: np.ndarray  # (output_samples, dim)
    iterations: int
    converged: bool
    elbo_iteration: np.ndarray  # iterations at which the ELBO was evaluated
    elbo: np.ndarray  # the ELBO at those iterations
    rule: dict = field(default_factory=dict)  # the stop rule's own figures, kept in the posterior's attributes


def _entropy(log_sd: jnp.ndarray) -> jnp.ndarray:
    return 0.5 * log_sd.shape[0] * (1.0 + jnp.log(2.0 * jnp.pi)) + jnp.sum(log_sd)


@functools.partial(jax.jit, static_argnames=("log_density", "n_draws"))
def estimate_elbo(log_density: Callable, mean, log_sd, key, data, n_draws: int):
    """Monte Carlo ELBO: mean log density over ``n_draws`` draws plus the Gaussian entropy.

    A non-finite estimate is returned as -inf.
    """
    eps = jax.random.normal(key, (n_draws, mean.shape[0]), dtype=mean.dtype)
    values = jax.vmap(lambda z: log_density(z, data))(mean + jnp.exp(log_sd) * eps)
    elbo = jnp.mean(values) + _entropy(log_sd)
    return jnp.where(jnp.isfinite(elbo), elbo, -jnp.inf)


def gaussian_draws(mean: jax.Array, log_sd: jax.Array, key: jax.Array, n_draws: int) -> jax.Array:
    """``n_draws`` draws (n_draws, dim) from N(mean, diag(exp(log_sd))^2)."""
    eps = jax.random.normal(key, (n_draws, mean.shape[0]), dtype=mean.dtype)
    return mean + jnp.exp(log_sd) * eps


#: Draws per step of the log joint for the Pareto k-hat: lax.map in small batches, measured 3x less CPU than
#: one vmap over all 1,000 draws on the release's network groups (0.24 against 0.74 s).
_DRAWS_PER_STEP = 4


@functools.partial(jax.jit, static_argnames="log_density")
def _log_ratio_terms_jit(log_density: Callable, data: dict, mean, log_sd, draws):
    log_joint = jax.lax.map(lambda draw: log_density(draw, data), draws, batch_size=_DRAWS_PER_STEP)
    log_q = jnp.sum(-0.5 * ((draws - mean) / jnp.exp(log_sd)) ** 2 - log_sd - 0.5 * jnp.log(2 * jnp.pi), axis=-1)
    return log_joint, log_q


def mean_field_posterior(
    data: ModelData,
    model: FlatModel,
    arrays: dict,
    result: MeanFieldResult,
    *,
    inference: str,
    seed: int,
    attrs: dict,
) -> az.InferenceData:
    """The posterior of a mean-field fit from its draws, with ``pareto_k`` among its attributes.

    ``arrays`` are the model's device arrays (:func:`perceptiongap.model.density.device_data`).
    """
    sites = draws_to_sites(model, np.asarray(result.draws)[None], arrays)
    log_joint, log_q = _log_ratio_terms_jit(model.log_density, arrays, jnp.asarray(result.mean),
                                            jnp.asarray(result.log_sd), jnp.asarray(result.draws))
    k_hat = pareto_k_hat(np.asarray(log_joint), np.asarray(log_q))
    return to_inference_data(data, sites, inference=inference, seed=seed, attrs={"pareto_k": k_hat, **attrs},
                             model=model.spec.name)
