"""A variant's log density as a pure JAX function of one flat parameter vector, derived from its spec.

Both ADVI implementations work on the unconstrained flat vector theta. A site with a constrained
prior (a scale with a half-normal prior) is mapped from the real line by NumPyro's ``biject_to``
of its support, and the log density gains the log-Jacobian of that map; every site of the
release is unconstrained. ``data`` is passed as an argument rather than closed over, so one
compiled function serves every observer group whose arrays have the same shapes.

The density is derived from the spec here rather than traced through NumPyro's effect handlers,
whose stack is global: ADVI fits run in several threads at once and must not share it. It equals
NumPyro's log density of :func:`perceptiongap.model.hierarchical.numpyro_model` of the same spec
(tested for every variant), which NUTS uses.
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

from perceptiongap.model.data import ModelData
from perceptiongap.model.likelihood import case_log_likelihood, log_likelihood
from perceptiongap.model.spec import ModelSpec
from perceptiongap.model.variants import DEFAULT_MODEL, get_model

__all__ = ["FlatModel", "device_data", "draws_to_sites", "flat_model", "flat_model_for", "unconstrained_draws"]


@dataclass(frozen=True, eq=False)  # hashed by identity: flat_model caches one per shape and variant
class FlatModel:
    """A variant of fixed dimensions on the unconstrained flat vector theta (dim,).

    ``log_density(theta, data)``: log prior + log-likelihood (+ log-Jacobian of constrained sites);
    ``unravel(theta)``: the sites on the unconstrained scale; ``constrain(theta)``: the sites'
    values; ``sites(theta, data)``: the values with the deterministic sites;
    ``case_log_likelihood(theta, data)``: the log-likelihood of each case (case,);
    ``ravel(sites)``: theta from the sites' unconstrained values.
    """

    log_density: Callable[[jnp.ndarray, dict], jnp.ndarray]
    unravel: Callable[[jnp.ndarray], dict]
    dim: int
    static: dict
    spec: ModelSpec
    constrain: Callable[[jnp.ndarray], dict]
    sites: Callable[[jnp.ndarray, dict], dict]
    case_log_likelihood: Callable[[jnp.ndarray, dict], jnp.ndarray]
    ravel: Callable[[dict], jnp.ndarray]


@functools.lru_cache(maxsize=None)
def flat_model(n_cases: int, n_observers: int, n_severities: int, n_subgroups: int,
               model: str = DEFAULT_MODEL) -> FlatModel:
    """The flat-vector log density of variant ``model`` for these dimensions (cached: one compile per shape)."""
    spec = get_model(model)
    sizes = {"case": n_cases, "observer": n_observers, "severity": n_severities,
             "severity_step": n_severities - 1, "subgroup": n_subgroups, "label": 2}
    static = {"n_observers": n_observers, "n_severities": n_severities, "n_subgroups": n_subgroups}
    template = {site.name: jnp.zeros(tuple(sizes[d] for d in site.dims)) for site in spec.sites}
    flat, unravel = ravel_pytree(template)
    constrained_sites = [site for site in spec.sites if site.prior.constrained]

    def constrain_with_jacobian(theta: jnp.ndarray) -> tuple[dict, jnp.ndarray]:
        params = dict(unravel(theta))
        log_jacobian = jnp.zeros((), dtype=theta.dtype)
        for site in constrained_sites:
            transform = site.prior.transform()
            value = transform(params[site.name])
            log_jacobian = log_jacobian + jnp.sum(transform.log_abs_det_jacobian(params[site.name], value))
            params[site.name] = value
        return params, log_jacobian

    def log_density(theta: jnp.ndarray, data: dict) -> jnp.ndarray:
        params, log_jacobian = constrain_with_jacobian(theta)
        log_prior = sum(jnp.sum(site.prior.log_density(params[site.name])) for site in spec.sites)
        effects = spec.derive(params, data).effects
        value = log_prior + log_likelihood(*effects, data["prediction"], data["observed"], data["severity_index"])
        return value + log_jacobian if constrained_sites else value

    def constrain(theta: jnp.ndarray) -> dict:
        return constrain_with_jacobian(theta)[0]

    def sites(theta: jnp.ndarray, data: dict) -> dict:
        params = constrain(theta)
        return {**params, **spec.derive(params, data).deterministic}

    def cases(theta: jnp.ndarray, data: dict) -> jnp.ndarray:
        effects = spec.derive(constrain(theta), data).effects
        return case_log_likelihood(*effects, data["prediction"], data["observed"], data["severity_index"])

    def ravel(values: dict) -> jnp.ndarray:
        raw = {}
        for site in spec.sites:
            value = jnp.asarray(values[site.name])
            raw[site.name] = site.prior.transform().inv(value) if site.prior.constrained else value
        return ravel_pytree(raw)[0]

    return FlatModel(log_density=log_density, unravel=unravel, dim=int(flat.shape[0]), static=static, spec=spec,
                     constrain=constrain, sites=sites, case_log_likelihood=cases, ravel=ravel)


_flat_model_lock = threading.Lock()


def flat_model_for(data: ModelData, model: str = DEFAULT_MODEL) -> FlatModel:
    """The flat model of variant ``model`` for ``data``'s dimensions."""
    # Under a lock: fits in parallel threads must get the same function, or each compiles its own.
    with _flat_model_lock:
        return flat_model(data.n_cases, data.n_observers, data.n_severities, data.n_subgroups, model)


def device_data(data: ModelData) -> dict:
    """The model's arrays as JAX arrays, floating point in the current default precision."""
    arrays = data.arrays()
    return {k: None if v is None else jnp.asarray(v) for k, v in arrays.items()}


def draws_to_sites(model: FlatModel, theta_draws: np.ndarray, data: dict) -> dict[str, np.ndarray]:
    """Flat draws (..., dim) -> named draws (..., *site shape) of every site, deterministic ones included.

    ``data`` are the device arrays (:func:`device_data`) that derived sites may need.
    """
    leading = theta_draws.shape[:-1]
    flat = jnp.asarray(theta_draws).reshape(-1, model.dim)
    sites = jax.vmap(model.sites, in_axes=(0, None))(flat, data)
    return {k: np.asarray(v).reshape(*leading, *v.shape[1:]) for k, v in sites.items()}


def unconstrained_draws(model: FlatModel, sites: dict[str, np.ndarray]) -> np.ndarray:
    """Named draws (..., *site shape) of the latent sites -> flat unconstrained draws (..., dim)."""
    first = np.asarray(sites[model.spec.sites[0].name])
    leading = first.shape[:first.ndim - len(model.spec.sites[0].dims)]
    flat = {site.name: jnp.asarray(sites[site.name]).reshape(-1, *np.shape(sites[site.name])[len(leading):])
            for site in model.spec.sites}
    theta = jax.vmap(model.ravel)(flat)
    return np.asarray(theta).reshape(*leading, model.dim)
