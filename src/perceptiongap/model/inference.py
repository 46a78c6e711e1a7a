"""Fit the model of one observer group and return its posterior as ArviZ ``InferenceData``.

Three methods, each seeded and deterministic:

* ``stan-advi``: Stan's mean-field ADVI with the release's settings, early stop included
  (:mod:`perceptiongap.model.stan_advi`). Reproduces the published figures; seed-dependent.
* ``advi``: the same mean-field family run to convergence. Adam with an exponentially decaying
  step size (halved every 2,000 iterations) and one gradient draw per step; every 500 iterations the ELBO is evaluated on a fixed
  set of 1,000 draws (common random numbers, so successive values differ only through the
  parameters); converged when the relative change between evaluations stays below 1e-5 three
  times in a row, at most 50,000 iterations. The ELBO trace is kept.
* ``nuts``: NumPyro's NUTS, two chains of 500 warm-up + 500 draws (in parallel where JAX sees two CPU devices),
  with R-hat and ESS available through ArviZ.

The posterior layout (the contract with :mod:`perceptiongap.analysis`): group ``posterior`` with
``b`` (subgroup), ``mu`` (case), ``delta`` (severity_step, subgroup), ``gamma`` (severity,
subgroup) and ``nu`` (observer, subgroup); case coordinates ``exam`` and ``breast``; group
``constant_data`` with ``case_subgroup`` and ``case_label``; group ``observed_data`` with the
observed ``prediction`` grid (observer, severity, case; NaN where unobserved); attributes
``observer_group``, ``observer_kind``, ``inference``, ``seed`` and method diagnostics.
"""

from __future__ import annotations

import functools
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
from perceptiongap.model.density import device_data, draws_to_sites, flat_model_for
from perceptiongap.model.diagnostics import pareto_k_hat
from perceptiongap.model.stan_advi import StanADVISettings, estimate_elbo, stan_meanfield_advi

INFERENCE_METHODS = ("stan-advi", "advi", "nuts")

SITE_DIMS = {
    "b": ["subgroup"],
    "mu": ["case"],
    "delta": ["severity_step", "subgroup"],
    "gamma": ["severity", "subgroup"],
    "nu": ["observer", "subgroup"],
}


def to_inference_data(
    data: ModelData,
    sites: dict[str, np.ndarray],
    *,
    inference: str,
    seed: int,
    attrs: dict | None = None,
    sample_stats: dict[str, np.ndarray] | None = None,
) -> az.InferenceData:
    """Named-dimension posterior from draws of shape (chain, draw, *site shape)."""
    coords = {
        "subgroup": list(data.subgroup_names),
        "severity": list(data.severity_mm),
        "severity_step": list(data.severity_mm[1:]),
        "observer": list(data.observer_names),
        "case": np.arange(data.n_cases),
    }
    observed_prediction = np.where(data.observed, data.prediction, np.nan)
    idata = az.from_dict(
        posterior={name: np.asarray(sites[name]) for name in SITE_DIMS},
        sample_stats=sample_stats,
        observed_data={"prediction": observed_prediction},
        constant_data={
            "case_subgroup": np.asarray(data.subgroup_names)[data.case_subgroup],
            "case_label": np.asarray(data.case_label),
        },
        coords=coords,
        dims={**SITE_DIMS, "prediction": ["observer", "severity", "case"],
              "case_subgroup": ["case"], "case_label": ["case"]},
    )
    case_coords = {"exam": ("case", list(data.case_exam)), "breast": ("case", list(data.case_breast))}
    for group in ("posterior", "observed_data", "constant_data"):
        setattr(idata, group, getattr(idata, group).assign_coords(case_coords))
    idata.posterior.attrs.update(
        {"observer_group": data.observer_group, "observer_kind": data.observer_kind, "inference": inference,
         "seed": int(seed), **(attrs or {})}
    )
    return idata


@functools.partial(jax.jit, static_argnames="log_density")
def _log_ratio_terms_jit(log_density: Callable, data: dict, mean, log_sd, draws):
    log_joint = jax.vmap(log_density, in_axes=(0, None))(draws, data)
    log_q = jnp.sum(-0.5 * ((draws - mean) / jnp.exp(log_sd)) ** 2 - log_sd - 0.5 * jnp.log(2 * jnp.pi), axis=-1)
    return log_joint, log_q


def _log_ratio_terms(model, data: dict, mean, log_sd, draws) -> tuple[np.ndarray, np.ndarray]:
    """log p(theta, D) and log q(theta) at the approximation's draws (for Pareto k-hat)."""
    log_joint, log_q = _log_ratio_terms_jit(model.log_density, data, jnp.asarray(mean), jnp.asarray(log_sd),
                                            jnp.asarray(draws))
    return np.asarray(log_joint), np.asarray(log_q)


def _mean_field_posterior(
    data: ModelData, model, arrays: dict, mean, log_sd, draws, *, inference: str, seed: int, attrs: dict
) -> az.InferenceData:
    """The posterior of a mean-field fit from its draws (dim,) -> sites, with Pareto k-hat in its attributes."""
    sites = draws_to_sites(model, np.asarray(draws)[None])
    k_hat = pareto_k_hat(*_log_ratio_terms(model, arrays, mean, log_sd, draws))
    return to_inference_data(data, sites, inference=inference, seed=seed, attrs={"pareto_k": k_hat, **attrs})


def fit_stan_advi(data: ModelData, seed: int, settings: StanADVISettings = StanADVISettings()) -> az.InferenceData:
    """Stan's mean-field ADVI as the release ran it (early stop included)."""
    model = flat_model_for(data)
    arrays = device_data(data)
    result = stan_meanfield_advi(model.log_density, model.dim, arrays, jax.random.PRNGKey(seed), settings)
    return _mean_field_posterior(
        data, model, arrays, result.mean, result.log_sd, result.draws, inference="stan-advi", seed=seed,
        attrs={"eta": result.eta, "iterations": result.iterations, "converged": int(result.converged),
               "elbo_iteration": result.elbo_iteration, "elbo": result.elbo,
               "tol_rel_obj": settings.tol_rel_obj, "max_iterations": settings.max_iterations},
    )


@dataclass(frozen=True)
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


def fit_advi(
    data: ModelData, seed: int, settings: ConvergedADVISettings = ConvergedADVISettings()
) -> az.InferenceData:
    """Mean-field ADVI run to convergence by the criterion of :class:`ConvergedADVISettings`."""
    model = flat_model_for(data)
    arrays = device_data(data)
    key_init, key_run, key_elbo, key_draws = jax.random.split(jax.random.PRNGKey(seed), 4)
    dtype = jnp.result_type(float)
    mean = jax.random.uniform(key_init, (model.dim,), dtype=dtype, minval=-settings.init_radius,
                              maxval=settings.init_radius)
    optimizer = Adam(exponential_decay(settings.step_size, settings.decay_steps, settings.decay_rate))
    opt_state = optimizer.init((mean, jnp.zeros_like(mean)))
    run = _converged_advi_chunk(model.log_density, optimizer, settings.eval_every, settings.grad_draws)

    iterations, trace, calm = [], [], 0
    previous = None
    converged = False
    for chunk in range(math.ceil(settings.max_iterations / settings.eval_every)):
        opt_state = run(opt_state, jax.random.fold_in(key_run, chunk), arrays)
        mean, log_sd = optimizer.get_params(opt_state)
        # The same key every time: common random numbers across evaluations.
        elbo = float(estimate_elbo(model.log_density, mean, log_sd, key_elbo, arrays, settings.elbo_draws))
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

    eps = jax.random.normal(key_draws, (settings.output_samples, model.dim), dtype=mean.dtype)
    draws = mean + jnp.exp(log_sd) * eps
    return _mean_field_posterior(
        data, model, arrays, mean, log_sd, draws, inference="advi", seed=seed,
        attrs={"iterations": iterations[-1], "converged": int(converged),
               "elbo_iteration": np.asarray(iterations), "elbo": np.asarray(trace),
               "rel_tol": settings.rel_tol, "max_iterations": settings.max_iterations},
    )


@dataclass(frozen=True)
class NUTSSettings:
    num_warmup: int = 500
    num_samples: int = 500
    num_chains: int = 2
    target_accept_prob: float = 0.8


def fit_nuts(
    data: ModelData, seed: int, settings: NUTSSettings = NUTSSettings(), *, progress_bar: bool = False
) -> az.InferenceData:
    """NUTS on the same model; chains run in parallel when JAX has one CPU device per chain.

    The command line gives JAX one device per core (``XLA_FLAGS``), so the two chains run side by
    side: measured on the release's GMIC group, two parallel chains took 20 s, one chain alone 29 s.
    """
    from numpyro.infer import MCMC, NUTS

    from perceptiongap.model.hierarchical import perception_model

    model = flat_model_for(data)
    mcmc = MCMC(
        NUTS(perception_model, target_accept_prob=settings.target_accept_prob),
        num_warmup=settings.num_warmup,
        num_samples=settings.num_samples,
        num_chains=settings.num_chains,
        chain_method="parallel" if jax.local_device_count() >= settings.num_chains else "sequential",
        progress_bar=progress_bar,
    )
    mcmc.run(jax.random.PRNGKey(seed), **device_data(data), **model.static,
             extra_fields=("diverging", "num_steps", "accept_prob"))
    samples = mcmc.get_samples(group_by_chain=True)
    sites = {name: np.asarray(samples[name]) for name in SITE_DIMS}
    extra = mcmc.get_extra_fields(group_by_chain=True)
    sample_stats = {
        "diverging": np.asarray(extra["diverging"]),
        "n_steps": np.asarray(extra["num_steps"]),
        "acceptance_rate": np.asarray(extra["accept_prob"]),
    }
    return to_inference_data(
        data, sites, inference="nuts", seed=seed, sample_stats=sample_stats,
        attrs={"num_warmup": settings.num_warmup, "num_samples": settings.num_samples,
               "num_chains": settings.num_chains},
    )


def fit(data: ModelData, inference: str, seed: int) -> az.InferenceData:
    """Fit ``data`` with one of :data:`INFERENCE_METHODS` (default settings)."""
    if inference == "stan-advi":
        return fit_stan_advi(data, seed)
    if inference == "advi":
        return fit_advi(data, seed)
    if inference == "nuts":
        return fit_nuts(data, seed)
    raise ValueError(f"unknown inference method {inference!r}; choose from {', '.join(INFERENCE_METHODS)}")


def save_posterior(posterior: az.InferenceData, path) -> None:
    """Write a posterior as netCDF, atomically."""
    from perceptiongap.files import atomic_path

    with atomic_path(path) as tmp:
        posterior.to_netcdf(str(tmp), engine="h5netcdf")


def load_posterior(path) -> az.InferenceData:
    """Read a posterior written by :func:`save_posterior`."""
    return az.from_netcdf(str(path), engine="h5netcdf")


__all__ = [
    "INFERENCE_METHODS",
    "ConvergedADVISettings",
    "NUTSSettings",
    "StanADVISettings",
    "fit",
    "fit_advi",
    "fit_nuts",
    "fit_stan_advi",
    "load_posterior",
    "save_posterior",
    "to_inference_data",
]
