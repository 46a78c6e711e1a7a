"""``advi``: the mean-field family of Stan's ADVI, run to convergence.

Adam with an exponentially decaying step size (halved every 2,000 iterations) and one gradient
draw per step. Every 500 iterations the ELBO is evaluated on a fixed set of 1,000 draws (common
random numbers, so successive values differ only through the parameters); the fit has converged
when the relative change between evaluations stays below 1e-5 three times in a row, at most
50,000 iterations. The ELBO trace is kept in the posterior.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
from jax.example_libraries.optimizers import exponential_decay
from numpyro.optim import Adam

from perceptiongap.model.data import ModelData
from perceptiongap.model.density import device_data, flat_model_for
from perceptiongap.model.keys import fit_key
from perceptiongap.model.meanfield import MeanFieldResult, estimate_elbo, gaussian_draws, mean_field_posterior
from perceptiongap.model.variants import DEFAULT_MODEL

__all__ = ["ConvergedADVISettings", "converged_meanfield_advi", "fit_advi"]


@dataclass(frozen=True, kw_only=True)
class ConvergedADVISettings:
    """The run-to-convergence criterion of ``advi`` (see the module docstring)."""

    step_size: float = 0.05
    decay_steps: int = 2_000
    decay_rate: float = 0.5
    grad_draws: int = 1
    eval_every: int = 500
    elbo_draws: int = 1_000
    rel_tol: float = 1e-5
    patience: int = 3
    max_iterations: int = 50_000
    output_samples: int = 1_000
    init_radius: float = 2.0


def _converged_advi_chunk(log_density: Callable, optimizer: Adam, n_steps: int, grad_draws: int):
    def negative_elbo(params, key, data):
        mean, log_sd = params
        eps = jax.random.normal(key, (grad_draws, mean.shape[0]), dtype=mean.dtype)
        values = jax.vmap(lambda e: log_density(mean + jnp.exp(log_sd) * e, data))(eps)
        return -(values.mean() + jnp.sum(log_sd))

    @jax.jit
    def run(opt_state, key, data):
        def step(state, key):
            grads = jax.grad(negative_elbo)(optimizer.get_params(state), key, data)
            return optimizer.update(grads, state), None

        opt_state, _ = jax.lax.scan(step, opt_state, jax.random.split(key, n_steps))
        return opt_state

    return run


def converged_meanfield_advi(
    log_density: Callable,
    dim: int,
    data: dict,
    key: jax.Array,
    settings: ConvergedADVISettings | None = None,
) -> MeanFieldResult:
    """Mean-field ADVI on ``log_density(theta, data)`` over theta in R^dim, run to convergence."""
    settings = ConvergedADVISettings() if settings is None else settings
    key_init, key_run, key_elbo, key_draws = jax.random.split(key, 4)
    dtype = jnp.result_type(float)
    mean = jax.random.uniform(key_init, (dim,), dtype=dtype, minval=-settings.init_radius,
                              maxval=settings.init_radius)
    optimizer = Adam(exponential_decay(settings.step_size, settings.decay_steps, settings.decay_rate))
    opt_state = optimizer.init((mean, jnp.zeros_like(mean)))
    run = _converged_advi_chunk(log_density, optimizer, settings.eval_every, settings.grad_draws)

    iterations, trace, calm = [], [], 0
    previous = None
    converged = False
    for chunk in range(math.ceil(settings.max_iterations / settings.eval_every)):
        opt_state = run(opt_state, jax.random.fold_in(key_run, chunk), data)
        mean, log_sd = optimizer.get_params(opt_state)
        # The same key every time: common random numbers across evaluations.
        elbo = float(estimate_elbo(log_density, mean, log_sd, key_elbo, data, settings.elbo_draws))
        iterations.append((chunk + 1) * settings.eval_every)
        trace.append(elbo)
        if previous is not None and abs((elbo - previous) / elbo) < settings.rel_tol:
            calm += 1
        else:
            calm = 0
        previous = elbo
        if calm >= settings.patience:
            converged = True
            break

    mean, log_sd = optimizer.get_params(opt_state)
    return MeanFieldResult(
        mean=np.asarray(mean),
        log_sd=np.asarray(log_sd),
        draws=np.asarray(gaussian_draws(mean, log_sd, key_draws, settings.output_samples)),
        iterations=iterations[-1],
        converged=converged,
        elbo_iteration=np.asarray(iterations),
        elbo=np.asarray(trace),
    )


def fit_advi(
    data: ModelData,
    seed: int | None = None,
    settings: ConvergedADVISettings | None = None,
    *,
    key: jax.Array | None = None,
    model: str = DEFAULT_MODEL,
) -> az.InferenceData:
    """Mean-field ADVI run to convergence (:class:`ConvergedADVISettings`) on one observer group.

    Give ``seed`` (an int) or ``key`` (a JAX PRNG key; see :mod:`perceptiongap.model.keys`);
    ``model`` names the variant (:mod:`perceptiongap.model.variants`). The
    posterior's attributes hold ``iterations``, ``converged``, the ELBO trace (``elbo_iteration``,
    ``elbo``) and ``pareto_k``.
    """
    settings = ConvergedADVISettings() if settings is None else settings
    key, seed, key_attrs = fit_key(seed, key)
    model = flat_model_for(data, model)
    arrays = device_data(data)
    result = converged_meanfield_advi(model.log_density, model.dim, arrays, key, settings)
    return mean_field_posterior(
        data, model, arrays, result, inference="advi", seed=seed,
        attrs={"iterations": result.iterations, "converged": int(result.converged),
               "elbo_iteration": result.elbo_iteration, "elbo": result.elbo,
               "rel_tol": settings.rel_tol, "max_iterations": settings.max_iterations, **key_attrs},
    )
