"""The model's log density as a function of one flat parameter vector.

Both ADVI implementations work on the unconstrained flat vector theta (all latent variables of
this model are unconstrained reals). ``data`` is passed as an argument rather than closed over, so
one compiled function serves every observer group whose arrays have the same shapes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from numpyro.infer.util import log_density as numpyro_log_density

from perceptiongap.model.data import ModelData
from perceptiongap.model.hierarchical import LATENT_SITES, perception_model, severity_effects


@dataclass(frozen=True)
class FlatModel:
    """A model of fixed dimensions: ``log_density(theta, data)`` and ``unravel(theta) -> dict``."""

    log_density: Callable[[jnp.ndarray, dict], jnp.ndarray]
    unravel: Callable[[jnp.ndarray], dict]
    dim: int
    static: dict


@functools.lru_cache(maxsize=None)
def flat_model(n_cases: int, n_observers: int, n_severities: int, n_subgroups: int) -> FlatModel:
    """The flat-vector log density for these dimensions (cached: one compile per shape)."""
    static = {"n_observers": n_observers, "n_severities": n_severities, "n_subgroups": n_subgroups}
    template = {
        "b": jnp.zeros(n_subgroups),
        "mu": jnp.zeros(n_cases),
        "delta": jnp.zeros((n_severities - 1, n_subgroups)),
        "nu": jnp.zeros((n_observers, n_subgroups)),
    }
    flat, unravel = ravel_pytree({site: template[site] for site in LATENT_SITES})

    def log_density(theta: jnp.ndarray, data: dict) -> jnp.ndarray:
        params = unravel(theta)
        value, _ = numpyro_log_density(perception_model, (), {**data, **static}, params)
        return value

    return FlatModel(log_density=log_density, unravel=unravel, dim=int(flat.shape[0]), static=static)


def flat_model_for(data: ModelData) -> FlatModel:
    return flat_model(data.n_cases, data.n_observers, data.n_severities, data.n_subgroups)


def device_data(data: ModelData) -> dict:
    """The model's arrays as JAX arrays, floating point in the current default precision."""
    arrays = data.arrays()
    return {k: jnp.asarray(v) for k, v in arrays.items()}


def draws_to_sites(model: FlatModel, theta_draws: np.ndarray) -> dict[str, np.ndarray]:
    """Flat draws (..., dim) -> named latent draws (..., *site shape), gamma included."""
    leading = theta_draws.shape[:-1]
    flat = jnp.asarray(theta_draws).reshape(-1, model.dim)
    sites = jax.vmap(model.unravel)(flat)
    sites["gamma"] = jax.vmap(severity_effects)(sites["delta"])
    return {k: np.asarray(v).reshape(*leading, *v.shape[1:]) for k, v in sites.items()}
