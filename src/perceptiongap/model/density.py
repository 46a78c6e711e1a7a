"""The model's log density as a pure JAX function of one flat parameter vector.

Both ADVI implementations work on the unconstrained flat vector theta (all latent variables of
this model are unconstrained reals). ``data`` is passed as an argument rather than closed over, so
one compiled function serves every observer group whose arrays have the same shapes.

The density is written out here (normal priors plus :func:`log_likelihood`) rather than traced
through NumPyro's effect handlers, whose stack is global: ADVI fits run in several threads at
once, one per device, and must not share it. It equals NumPyro's log density of
:func:`perception_model` (tested), which NUTS uses.

The density comes in two numerical forms (:data:`NUMERICS`): ``stable`` (softplus, right in
single precision; ``advi`` and ``nuts``) and ``release`` (the release's Stan programs' own
expressions, saturation included; ``stan-advi``, in double precision; see
:mod:`perceptiongap.model.release_numerics`). Each :class:`FlatModel` also says, cheaply, whether
its value and its gradient are finite at a point (``saturation``), which is what Stan's ADVI
needs to know to drop a draw.
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
from perceptiongap.model.release_numerics import release_log_likelihood, release_saturation, saturation_bounds

__all__ = ["NUMERICS", "FlatModel", "device_data", "draws_to_sites", "flat_model", "flat_model_for", "release_form"]

#: The numerical forms of the density: ``stable`` and ``release`` (see the module docstring).
NUMERICS = ("stable", "release")


@dataclass(frozen=True)
class FlatModel:
    """A model of fixed dimensions: ``log_density(theta, data)``, ``unravel(theta) -> dict``, and
    ``saturation(theta, data) -> (value finite, gradient finite)``, decided without evaluating either."""

    log_density: Callable[[jnp.ndarray, dict], jnp.ndarray]
    unravel: Callable[[jnp.ndarray], dict]
    dim: int
    static: dict
    saturation: Callable[[jnp.ndarray, dict], tuple[jnp.ndarray, jnp.ndarray]]


@functools.lru_cache(maxsize=None)
def flat_model(n_cases: int, n_observers: int, n_severities: int, n_subgroups: int,
               likelihood_form: str = "stable") -> FlatModel:
    """The flat-vector log density for these dimensions (cached: one compile per shape).

    ``likelihood_form``: ``stable`` (:func:`log_likelihood`) or one of the release's statements
    ``bernoulli`` / ``soft_label`` (:func:`release_log_likelihood`, whose data need ``saturation_bounds``).
    """
    static = {"n_observers": n_observers, "n_severities": n_severities, "n_subgroups": n_subgroups}
    template = {
        "b": jnp.zeros(n_subgroups),
        "mu": jnp.zeros(n_cases),
        "delta": jnp.zeros((n_severities - 1, n_subgroups)),
        "nu": jnp.zeros((n_observers, n_subgroups)),
    }
    flat, unravel = ravel_pytree({site: template[site] for site in LATENT_SITES})

    def effects_of(theta: jnp.ndarray, data: dict):
        params = unravel(theta)
        effects = case_effects(params["b"], params["mu"], severity_effects(params["delta"]), params["nu"],
                               data["case_subgroup"])
        return params, effects

    def log_density(theta: jnp.ndarray, data: dict) -> jnp.ndarray:
        params, effects = effects_of(theta, data)
        log_prior = sum(jnp.sum(norm.logpdf(params[site])) for site in LATENT_SITES)
        cells = (data["prediction"], data["observed"], data["severity_index"])
        if likelihood_form == "stable":
            return log_prior + log_likelihood(*effects, *cells)
        return log_prior + release_log_likelihood(*effects, *cells, data["saturation_bounds"], form=likelihood_form)

    def saturation(theta: jnp.ndarray, data: dict):
        finite = jnp.all(jnp.isfinite(theta))
        if likelihood_form == "stable":  # softplus never overflows at finite parameters
            return finite, finite
        _, effects = effects_of(theta, data)
        value_finite, gradient_finite = release_saturation(*effects, data["severity_index"], data["saturation_bounds"])
        return finite & value_finite, finite & gradient_finite

    return FlatModel(log_density=log_density, unravel=unravel, dim=int(flat.shape[0]), static=static,
                     saturation=saturation)


_flat_model_lock = threading.Lock()


def release_form(data: ModelData) -> str:
    """The release's likelihood statement for a group: ``bernoulli`` for humans, ``soft_label`` for networks."""
    return "bernoulli" if data.observer_kind == "human" else "soft_label"


def flat_model_for(data: ModelData, numerics: str = "stable") -> FlatModel:
    """The flat model of ``data``'s dimensions, in one of :data:`NUMERICS`."""
    if numerics not in NUMERICS:
        raise ValueError(f"numerics must be one of {NUMERICS}, got {numerics!r}")
    form = "stable" if numerics == "stable" else release_form(data)
    # Under a lock: fits in parallel threads must get the same function, or each compiles its own.
    with _flat_model_lock:
        return flat_model(data.n_cases, data.n_observers, data.n_severities, data.n_subgroups, form)


def device_data(data: ModelData, numerics: str = "stable") -> dict:
    """The model's arrays as JAX arrays, floating point in the current default precision; the
    ``release`` form also gets each cell's ``saturation_bounds``."""
    arrays = data.arrays()
    if numerics == "release":
        arrays["saturation_bounds"] = saturation_bounds(arrays["prediction"], arrays["observed"], release_form(data))
    return {k: None if v is None else jnp.asarray(v) for k, v in arrays.items()}


def draws_to_sites(model: FlatModel, theta_draws: np.ndarray) -> dict[str, np.ndarray]:
    """Flat draws (..., dim) -> named latent draws (..., *site shape), gamma included."""
    leading = theta_draws.shape[:-1]
    flat = jnp.asarray(theta_draws).reshape(-1, model.dim)
    sites = jax.vmap(model.unravel)(flat)
    sites["gamma"] = jax.vmap(severity_effects)(sites["delta"])
    return {k: np.asarray(v).reshape(*leading, *v.shape[1:]) for k, v in sites.items()}
