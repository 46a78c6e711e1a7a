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

The density comes in two numerical forms (:data:`NUMERICS`): ``stable`` (softplus, right in
single precision; ``advi`` and ``nuts``) and ``release`` (the release's Stan programs' own
expressions, saturation included; ``stan-advi``, in double precision; see
:mod:`perceptiongap.model.release_numerics`). For the release variant that is exactly the Stan
programs' density; other variants get their own effects under the same likelihood statements and
rules. Each :class:`FlatModel` also says, cheaply, whether its value and its gradient are finite
at a point (``saturation``), which is what Stan's ADVI needs to know to drop a draw.
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
from perceptiongap.model.release_numerics import release_log_likelihood, release_saturation, saturation_bounds
from perceptiongap.model.spec import ModelSpec
from perceptiongap.model.variants import DEFAULT_MODEL, get_model

__all__ = ["NUMERICS", "FlatModel", "device_data", "draws_to_sites", "flat_model", "flat_model_for", "release_form",
           "unconstrained_draws"]

#: The numerical forms of the density: ``stable`` and ``release`` (see the module docstring).
NUMERICS = ("stable", "release")


@dataclass(frozen=True, eq=False)  # hashed by identity: flat_model caches one per shape and variant
class FlatModel:
    """A variant of fixed dimensions on the unconstrained flat vector theta (dim,).

    ``log_density(theta, data)``: log prior + log-likelihood (+ log-Jacobian of constrained sites);
    ``unravel(theta)``: the sites on the unconstrained scale; ``constrain(theta)``: the sites'
    values; ``sites(theta, data)``: the values with the deterministic sites;
    ``case_log_likelihood(theta, data)``: the log-likelihood of each case (case,), in the stable form;
    ``ravel(sites)``: theta from the sites' unconstrained values;
    ``saturation(theta, data) -> (value finite, gradient finite)``, decided without evaluating either.
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
    saturation: Callable[[jnp.ndarray, dict], tuple[jnp.ndarray, jnp.ndarray]]


@functools.lru_cache(maxsize=None)
def flat_model(n_cases: int, n_observers: int, n_severities: int, n_subgroups: int,
               model: str = DEFAULT_MODEL, likelihood_form: str = "stable") -> FlatModel:
    """The flat-vector log density of variant ``model`` for these dimensions (cached: one compile per shape).

    ``likelihood_form``: ``stable`` (:func:`log_likelihood`) or one of the release's statements
    ``bernoulli`` / ``soft_label`` (:func:`release_log_likelihood`, whose data need ``saturation_bounds``).
    """
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
        cells = (data["prediction"], data["observed"], data["severity_index"])
        if likelihood_form == "stable":
            value = log_prior + log_likelihood(*effects, *cells)
        else:
            value = log_prior + release_log_likelihood(*effects, *cells, data["saturation_bounds"],
                                                       form=likelihood_form)
        return value + log_jacobian if constrained_sites else value

    def saturation(theta: jnp.ndarray, data: dict):
        finite = jnp.all(jnp.isfinite(theta))
        if likelihood_form == "stable":  # softplus never overflows at finite parameters
            return finite, finite
        effects = spec.derive(constrain(theta), data).effects
        value_finite, gradient_finite = release_saturation(*effects, data["severity_index"], data["saturation_bounds"])
        return finite & value_finite, finite & gradient_finite

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
                     constrain=constrain, sites=sites, case_log_likelihood=cases, ravel=ravel, saturation=saturation)


_flat_model_lock = threading.Lock()


def release_form(data: ModelData) -> str:
    """The release's likelihood statement for a group: ``bernoulli`` for humans, ``soft_label`` for networks."""
    return "bernoulli" if data.observer_kind == "human" else "soft_label"


def flat_model_for(data: ModelData, model: str = DEFAULT_MODEL, numerics: str = "stable") -> FlatModel:
    """The flat model of variant ``model`` for ``data``'s dimensions, in one of :data:`NUMERICS`.

    ``release`` numerics evaluate any variant's effects with the release's likelihood statements
    (the release variant's density is then exactly the Stan programs')."""
    if numerics not in NUMERICS:
        raise ValueError(f"numerics must be one of {NUMERICS}, got {numerics!r}")
    form = "stable" if numerics == "stable" else release_form(data)
    # Under a lock: fits in parallel threads must get the same function, or each compiles its own.
    with _flat_model_lock:
        return flat_model(data.n_cases, data.n_observers, data.n_severities, data.n_subgroups, model, form)


def device_data(data: ModelData, numerics: str = "stable") -> dict:
    """The model's arrays as JAX arrays, floating point in the current default precision; the
    ``release`` form also gets each cell's ``saturation_bounds``."""
    arrays = data.arrays()
    if numerics == "release":
        arrays["saturation_bounds"] = saturation_bounds(arrays["prediction"], arrays["observed"], release_form(data))
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
