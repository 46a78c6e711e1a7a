"""``advi``: the mean-field family of Stan's ADVI, run until the ELBO has stopped improving.

A decaying step size makes any "the ELBO stopped changing" rule fire whether or not the optimum
is reached, since the steps themselves shrink. Here the step size is constant, so the iterates
keep moving as long as the gradient pulls them, and the stop is a statement about the ELBO's
trend that noise cannot fake:

* Adam with a constant step size and one gradient draw per step.
* The iterates (mean and log sd) are averaged over each block of ``block`` iterations (Polyak
  averaging), and the ELBO of each block's average is evaluated on a fixed set of ``elbo_draws``
  draws (common random numbers, so successive values differ only through the parameters).
* Over the last ``window`` blocks the ELBO's least-squares slope and its standard error are
  computed; the fit has converged when even the upper end of the slope's interval,
  slope + 2 SE, projects a gain below ``rel_tol`` * |ELBO| over a whole window. Noisier ELBO
  values widen the interval and delay the stop; a still-rising ELBO never meets it.
* The result is the average of the iterates over that last window; at ``max_iterations`` the fit
  stops unconverged. ``fixed_iterations`` runs exactly that many iterations instead (to check that
  running longer changes nothing: ``benchmarks/advi_convergence.py``).

The ELBO trace (per block) is kept in the posterior.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
from numpyro.optim import Adam

from perceptiongap.model.data import ModelData
from perceptiongap.model.density import device_data, flat_model_for
from perceptiongap.model.keys import fit_key
from perceptiongap.model.meanfield import MeanFieldResult, estimate_elbo, gaussian_draws, mean_field_posterior
from perceptiongap.model.variants import DEFAULT_MODEL

__all__ = ["ConvergedADVISettings", "converged_meanfield_advi", "elbo_trend_bound", "fit_advi"]


@dataclass(frozen=True, kw_only=True)
class ConvergedADVISettings:
    """The run-to-convergence criterion of ``advi`` (see the module docstring)."""

    step_size: float = 0.01
    grad_draws: int = 1
    block: int = 250
    window: int = 8
    elbo_draws: int = 200
    rel_tol: float = 1e-4
    max_iterations: int = 50_000
    fixed_iterations: int | None = None
    output_samples: int = 1_000
    init_radius: float = 2.0

    def __post_init__(self):
        if self.window < 3:
            raise ValueError("window must hold at least 3 blocks (a slope and its standard error)")
        if self.fixed_iterations is not None and self.fixed_iterations < self.block * self.window:
            raise ValueError(f"fixed_iterations must be at least block * window = {self.block * self.window}")


def elbo_trend_bound(elbo: np.ndarray) -> float:
    """Upper end of the ELBO gain over the window's span: (slope + 2 SE) * (len - 1), per block index.

    ``elbo``: the last ``window`` block ELBOs, in order. Least squares on the block index.
    """
    elbo = np.asarray(elbo, dtype=float)
    n = elbo.size
    x = np.arange(n) - (n - 1) / 2
    slope = float(x @ (elbo - elbo.mean()) / (x @ x))
    residual = elbo - elbo.mean() - slope * x
    se = math.sqrt(float(residual @ residual) / (n - 2) / float(x @ x))
    return (slope + 2.0 * se) * (n - 1)


def _block_runner(log_density: Callable, optimizer: Adam, n_steps: int, grad_draws: int):
    """A compiled block: ``n_steps`` Adam steps and the average of the iterates along the way."""

    def negative_elbo(params, key, data):
        mean, log_sd = params
        eps = jax.random.normal(key, (grad_draws, mean.shape[0]), dtype=mean.dtype)
        values = jax.vmap(lambda e: log_density(mean + jnp.exp(log_sd) * e, data))(eps)
        return -(values.mean() + jnp.sum(log_sd))

    @jax.jit
    def run(opt_state, key, data):
        def step(carry, key):
            state, total_mean, total_log_sd = carry
            grads = jax.grad(negative_elbo)(optimizer.get_params(state), key, data)
            state = optimizer.update(grads, state)
            mean, log_sd = optimizer.get_params(state)
            return (state, total_mean + mean, total_log_sd + log_sd), None

        mean, log_sd = optimizer.get_params(opt_state)
        start = (opt_state, jnp.zeros_like(mean), jnp.zeros_like(log_sd))
        (opt_state, total_mean, total_log_sd), _ = jax.lax.scan(step, start, jax.random.split(key, n_steps))
        return opt_state, total_mean / n_steps, total_log_sd / n_steps

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
    optimizer = Adam(settings.step_size)
    opt_state = optimizer.init((mean, jnp.zeros_like(mean)))
    run = _block_runner(log_density, optimizer, settings.block, settings.grad_draws)

    limit = settings.fixed_iterations or settings.max_iterations
    n_blocks = math.ceil(limit / settings.block)
    averages: list[tuple[jax.Array, jax.Array]] = []
    iterations, trace = [], []
    converged = False
    for index in range(n_blocks):
        opt_state, block_mean, block_log_sd = run(opt_state, jax.random.fold_in(key_run, index), data)
        averages = (averages + [(block_mean, block_log_sd)])[-settings.window:]
        # The same key every time: common random numbers across evaluations.
        elbo = float(estimate_elbo(log_density, block_mean, block_log_sd, key_elbo, data, settings.elbo_draws))
        iterations.append((index + 1) * settings.block)
        trace.append(elbo)
        if settings.fixed_iterations is None and len(trace) >= settings.window:
            recent = np.asarray(trace[-settings.window:])
            if np.all(np.isfinite(recent)) and elbo_trend_bound(recent) < settings.rel_tol * abs(recent[-1]):
                converged = True
                break

    mean = jnp.mean(jnp.stack([m for m, _ in averages]), axis=0)
    log_sd = jnp.mean(jnp.stack([s for _, s in averages]), axis=0)
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
    posterior's attributes hold ``iterations``, ``converged`` (0 at ``max_iterations``, and for a
    ``fixed_iterations`` run), the per-block ELBO trace (``elbo_iteration``, ``elbo``) and ``pareto_k``.
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
               "rel_tol": settings.rel_tol, "max_iterations": settings.max_iterations,
               "fixed_iterations": settings.fixed_iterations or 0, **key_attrs},
    )
