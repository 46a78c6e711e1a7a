"""Stan's mean-field ADVI, step for step, as the authors' release ran it (METHOD §5a).

The release called PyStan 2's ``vb`` with its defaults. Stan's procedure (Stan Reference Manual,
"Variational inference"; ``stan/variational/advi.hpp``):

* Approximation N(m, diag(exp(omega))^2) on the unconstrained space; m drawn uniformly in
  (-init_radius, init_radius), omega = 0.
* ELBO gradient by reparameterisation with ``grad_samples`` draws.
* Adaptive step sequence: s_1 = g_1^2, s_k = 0.1 g_k^2 + 0.9 s_{k-1}; update
  ``eta / sqrt(k) * g_k / (1 + sqrt(s_k))`` element-wise, for m and omega alike.
* eta chosen by trying ``eta_sequence`` for ``adapt_iterations`` each from the start.
* Every ``eval_elbo`` iterations the ELBO is estimated with ``elbo_samples`` draws; the relative
  change goes into a circular buffer; stop when its mean or median falls below ``tol_rel_obj``
  (Stan's median of an even-sized buffer is the upper middle element, not the average of two).

Stan's own random numbers cannot be reproduced, so results match Stan's in distribution over
seeds, not draw for draw. One deviation, for robustness: a non-finite gradient is replaced by zero
in the main loop too (Stan does this during adaptation only and aborts otherwise).

:func:`stan_meanfield_advi` runs the procedure on any log density of a flat vector;
:func:`fit_stan_advi` runs it on one observer group's model and returns the ArviZ posterior.
"""

from __future__ import annotations

import functools
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np

from perceptiongap.model.data import ModelData
from perceptiongap.model.density import device_data, flat_model_for
from perceptiongap.model.keys import fit_key
from perceptiongap.model.meanfield import MeanFieldResult, estimate_elbo, gaussian_draws, mean_field_posterior
from perceptiongap.model.variants import DEFAULT_MODEL

__all__ = ["ADVIError", "ADVIResult", "StanADVISettings", "adapt_eta", "fit_stan_advi", "stan_meanfield_advi"]


@dataclass(frozen=True, kw_only=True)
class StanADVISettings:
    """Stan 2's ``vb`` defaults, as the release used them (see the module docstring)."""

    max_iterations: int = 10_000
    eval_elbo: int = 100
    elbo_samples: int = 100
    grad_samples: int = 1
    tol_rel_obj: float = 0.01
    adapt_iterations: int = 50
    eta_sequence: tuple[float, ...] = (100.0, 10.0, 1.0, 0.1, 0.01)
    output_samples: int = 1000
    init_radius: float = 2.0

    @property
    def buffer_size(self) -> int:
        return int(max(0.1 * self.max_iterations / self.eval_elbo, 2.0))


@dataclass(frozen=True, kw_only=True)
class ADVIResult(MeanFieldResult):
    """A Stan ADVI fit: the approximation, the step size ``eta`` chosen, and the final ELBO of
    each step size tried during adaptation."""

    eta: float
    adaptation_elbo: dict[float, float] = field(default_factory=dict)


class ADVIError(RuntimeError):
    """All step sizes failed during adaptation (Stan's "All proposed step-sizes failed")."""


@functools.partial(jax.jit, static_argnames=("log_density", "grad_samples", "elbo_samples"))
def _advance(log_density: Callable, state, eta, n_steps, key, data, grad_samples: int, elbo_samples: int):
    """``n_steps`` of Stan's stochastic gradient ascent, then the ELBO at the new state.

    state = (mean, log_sd, s_mean, s_log_sd, k). ``n_steps`` is traced, so the adaptation's runs,
    the main loop's chunks and the initial ELBO (``n_steps=0``) share one compiled function.
    """
    grad_log_density = jax.grad(log_density)
    key_steps, key_elbo = jax.random.split(key)

    def step(i, state):
        mean, log_sd, s_mean, s_log_sd, k = state
        eps = jax.random.normal(jax.random.fold_in(key_steps, i), (grad_samples, mean.shape[0]), dtype=mean.dtype)
        grads = jax.vmap(lambda e: grad_log_density(mean + jnp.exp(log_sd) * e, data))(eps)
        g_mean = grads.mean(axis=0)
        g_log_sd = (grads * eps).mean(axis=0) * jnp.exp(log_sd) + 1.0
        finite = jnp.all(jnp.isfinite(g_mean)) & jnp.all(jnp.isfinite(g_log_sd))
        g_mean = jnp.where(finite, g_mean, 0.0)
        g_log_sd = jnp.where(finite, g_log_sd, 0.0)
        k = k + 1
        first = k == 1
        s_mean = jnp.where(first, g_mean**2, 0.9 * s_mean + 0.1 * g_mean**2)
        s_log_sd = jnp.where(first, g_log_sd**2, 0.9 * s_log_sd + 0.1 * g_log_sd**2)
        rate = eta / jnp.sqrt(k.astype(mean.dtype))
        mean = mean + rate * g_mean / (1.0 + jnp.sqrt(s_mean))
        log_sd = log_sd + rate * g_log_sd / (1.0 + jnp.sqrt(s_log_sd))
        return mean, log_sd, s_mean, s_log_sd, k

    state = jax.lax.fori_loop(0, n_steps, step, state)
    return state, estimate_elbo(log_density, state[0], state[1], key_elbo, data, elbo_samples)


def _fresh_state(mean, log_sd):
    zeros = jnp.zeros_like(mean)
    return (mean, log_sd, zeros, zeros, jnp.asarray(0, dtype=jnp.int32))


def _upper_median(values) -> float:
    """Stan's circular-buffer median: the element at index n // 2 of the sorted values (no averaging)."""
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def _relative_change(previous: float, current: float) -> float:
    if previous is None:
        return math.inf
    return abs((current - previous) / current)


def adapt_eta(log_density, mean0, log_sd0, key, data, settings: StanADVISettings) -> tuple[float, dict[float, float]]:
    """Stan's step-size adaptation: the last eta before the ELBO got worse (see module docstring)."""
    def run(eta, n_steps, key):
        _, elbo = _advance(log_density, _fresh_state(mean0, log_sd0), eta, n_steps, key, data,
                           settings.grad_samples, settings.elbo_samples)
        elbo = float(elbo)
        return elbo if math.isfinite(elbo) else -math.inf

    key_init, key = jax.random.split(key)
    elbo_init = run(0.0, 0, key_init)
    elbo_best = -math.inf
    eta_best = None
    tried: dict[float, float] = {}
    for index, eta in enumerate(settings.eta_sequence):
        elbo = tried[eta] = run(eta, settings.adapt_iterations, jax.random.fold_in(key, index))
        if elbo < elbo_best and elbo_best > elbo_init:
            return eta_best, tried
        if index < len(settings.eta_sequence) - 1:
            elbo_best, eta_best = elbo, eta
        elif elbo > elbo_init:
            return eta, tried
    raise ADVIError("all proposed step sizes failed: the model may be ill-conditioned or misspecified")


def stan_meanfield_advi(
    log_density: Callable,
    dim: int,
    data: dict,
    key: jax.Array,
    settings: StanADVISettings = StanADVISettings(),
    *,
    on_evaluation: Callable[[int, float], None] | None = None,
) -> ADVIResult:
    """Run Stan's mean-field ADVI on ``log_density(theta, data)`` over theta in R^dim."""
    key_init, key_adapt, key_run, key_draws = jax.random.split(key, 4)
    dtype = jnp.result_type(float)
    mean0 = jax.random.uniform(key_init, (dim,), dtype=dtype, minval=-settings.init_radius,
                               maxval=settings.init_radius)
    log_sd0 = jnp.zeros(dim, dtype=dtype)
    eta, tried = adapt_eta(log_density, mean0, log_sd0, key_adapt, data, settings)

    state = _fresh_state(mean0, log_sd0)
    changes: deque[float] = deque(maxlen=settings.buffer_size)
    elbo_iteration, elbo_trace = [], []
    previous = None
    converged = False
    iteration = 0
    chunk = 0
    while iteration < settings.max_iterations:
        n_steps = min(settings.eval_elbo, settings.max_iterations - iteration)
        state, elbo = _advance(log_density, state, eta, n_steps, jax.random.fold_in(key_run, chunk), data,
                               settings.grad_samples, settings.elbo_samples)
        iteration += n_steps
        chunk += 1
        if iteration % settings.eval_elbo:
            break
        elbo = float(elbo)
        elbo_iteration.append(iteration)
        elbo_trace.append(elbo)
        if on_evaluation is not None:
            on_evaluation(iteration, elbo)
        changes.append(_relative_change(previous, elbo))
        previous = elbo
        if np.mean(changes) < settings.tol_rel_obj or _upper_median(changes) < settings.tol_rel_obj:
            converged = True
            break

    mean, log_sd = state[0], state[1]
    draws = gaussian_draws(mean, log_sd, key_draws, settings.output_samples)
    return ADVIResult(
        mean=np.asarray(mean),
        log_sd=np.asarray(log_sd),
        draws=np.asarray(draws),
        eta=float(eta),
        iterations=iteration,
        converged=converged,
        elbo_iteration=np.asarray(elbo_iteration),
        elbo=np.asarray(elbo_trace),
        adaptation_elbo=tried,
    )


def fit_stan_advi(
    data: ModelData,
    seed: int | None = None,
    settings: StanADVISettings | None = None,
    *,
    key: jax.Array | None = None,
    model: str = DEFAULT_MODEL,
) -> az.InferenceData:
    """Stan's mean-field ADVI as the release ran it (early stop included) on one observer group.

    Give ``seed`` (an int) or ``key`` (a JAX PRNG key; see :mod:`perceptiongap.model.keys`);
    ``model`` names the variant (:mod:`perceptiongap.model.variants`).
    Raises :class:`ADVIError` when every step size fails. The posterior's attributes hold the
    chosen ``eta``, ``iterations``, ``converged`` (1 when Stan's rule stopped it), the ELBO trace
    (``elbo_iteration``, ``elbo``) and ``pareto_k``.
    """
    settings = StanADVISettings() if settings is None else settings
    key, seed, key_attrs = fit_key(seed, key)
    model = flat_model_for(data, model)
    arrays = device_data(data)
    result = stan_meanfield_advi(model.log_density, model.dim, arrays, key, settings)
    return mean_field_posterior(
        data, model, arrays, result, inference="stan-advi", seed=seed,
        attrs={"eta": result.eta, "iterations": result.iterations, "converged": int(result.converged),
               "elbo_iteration": result.elbo_iteration, "elbo": result.elbo,
               "tol_rel_obj": settings.tol_rel_obj, "max_iterations": settings.max_iterations, **key_attrs},
    )
