"""The model's log density as a pure JAX function of one flat parameter vector.

Both ADVI implementations work on the unconstrained flat vector theta (all latent variables of
this model are unconstrained reals). ``data`` is passed as an argument rather than closed over, so
one compiled function serves every observer group whose arrays have the same shapes.

The density is written out here (normal priors plus :func:`log_likelihood`) rather than traced
through NumPyro's effect handlers, whose stack is global: ADVI fits run in several threads at
once, one per device, and must not share it. It equals NumPyro's log density of
:func:`perception_model` (tested), which NUTS uses.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from jax.scipy.stats import norm

from perceptiongap.model.data import ModelData
from perceptiongap.model.hierarchical import LATENT_SITES, case_effects, severity_effects
from perceptiongap.model.likelihood import log_likelihood

__all__ = ["FlatModel", "device_data", "draws_to_sites", "flat_model", "flat_model_for"]


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
        log_prior = sum(jnp.sum(norm.logpdf(params[site])) for site in LATENT_SITES)
        effects = case_effects(params["b"], params["mu"], severity_effects(params["delta"]), params["nu"],
                               data["case_subgroup"])
        return log_prior + log_likelihood(*effects, data["prediction"], data["observed"], data["severity_index"])

    return FlatModel(log_density=log_density, unravel=unravel, dim=int(flat.shape[0]), static=static)


_flat_model_lock = threading.Lock()


def flat_model_for(data: ModelData) -> FlatModel:
    # Under a lock: fits in parallel threads must get the same function, or each compiles its own.
    with _flat_model_lock:
        return flat_model(data.n_cases, data.n_observers, data.n_severities, data.n_subgroups)


def device_data(data: ModelData) -> dict:
    """The model's arrays as JAX arrays, floating point in the current default precision."""
    arrays = data.arrays()
    return {k: None if v is None else jnp.asarray(v) for k, v in arrays.items()}


def draws_to_sites(model: FlatModel, theta_draws: np.ndarray) -> dict[str, np.ndarray]:
    """Flat draws (..., dim) -> named latent draws (..., *site shape), gamma included."""
    leading = theta_draws.shape[:-1]
    flat = jnp.asarray(theta_draws).reshape(-1, model.dim)
    sites = jax.vmap(model.unravel)(flat)
    sites["gamma"] = jax.vmap(severity_effects)(sites["delta"])
    return {k: np.asarray(v).reshape(*leading, *v.shape[1:]) for k, v in sites.items()}
