"""``advi``: the mean-field family of Stan's ADVI, run until the reported quantities have converged.

A decaying step size makes any "the objective stopped changing" rule fire whether or not the
optimum is reached, since the steps themselves shrink; and on the release the ELBO flattens long
before the severity effects stop moving (``benchmarks/advi_convergence.py``). So the step size
here is constant and the stop is judged on the quantities the analysis reports, against their
own noise, treating the iterates of a constant-step optimiser as a Markov chain around the
optimum (Dhaka, Catalina, Andersen, Magnusson, Huggins and Vehtari 2020, "Robust, accurate
stochastic optimization for variational inference", NeurIPS: R-hat of the iterates to detect
stationarity, iterate averaging, Monte Carlo standard error of the average to stop; see also
Welandawe et al. 2022, "Robust, automated, and accurate black-box variational inference"):

* Adam with a constant step size and ``grad_draws`` gradient draws per step (more draws cost
  little more on a CPU and shrink the iterates' noise, so fewer iterations reach a given accuracy).
* The iterates (mean and log sd) are averaged over blocks of ``block`` iterations. The reported
  quantities (``reported(mean)``: for :func:`fit_advi` the severity effects gamma[s, g], on the
  logit scale) of each block's average are the "draws" the rule reads.
* **Stationarity**: the blocks since the averaging start, cut into two halves as two chains, must
  have a rank-normalised split R-hat (ArviZ) below ``max_r_hat`` for every reported quantity; if
  not, the earlier half of those blocks is treated as transient and the averaging start moves to
  the middle (as MCMC warm-up is discarded), so the averaged stretch keeps growing. A trend, however slow, is large against iterates that have stopped moving;
  the ratio of a decaying schedule's drift to its noise does not shrink with the step, and frozen
  iterates (no variance at all) give no R-hat: neither passes.
* **Accuracy**: the Polyak-Ruppert average of the blocks since the start must be known to
  ``tolerance`` (logit scale, METHOD §5's units): twice its Monte Carlo standard error (ArviZ, from
  the blocks' effective sample size) and its change over the last ``window`` blocks must both be
  below min(``tolerance``, ``sd_fraction`` x the quantity's posterior sd under the current
  approximation), for every reported quantity. Noise widens the standard error and moves the
  average, so it delays the stop and cannot fake it.
* The average never includes the first half of the run (as MCMC discards its warm-up).
* Checked every ``check_every`` blocks once ``min_blocks`` blocks have been averaged (split R-hat
  needs that many to be more than noise when dozens of quantities are judged at once: with 40
  quantities of independent noise the largest split R-hat exceeds 1.1 in about a third of
  stretches of 64 blocks and in 4 % of stretches of 128). The result
  is the average of the iterates since the start. At ``max_iterations`` the fit stops
  unconverged (a logged warning; ``converged`` 0 in the posterior and in ``tables/fits.csv``).
  ``fixed_iterations`` runs exactly that many iterations with the same averaging (to check that
  running longer changes nothing: ``benchmarks/advi_convergence.py``).

The posterior keeps the ELBO at every check (of the last block's average, on a fixed set of ``elbo_draws`` draws, for
the report's trace; the rule does not read it) and the rule's last figures.
"""

from __future__ import annotations

import logging
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

__all__ = ["AveragingVerdict", "ConvergedADVISettings", "averaging_verdict", "converged_meanfield_advi", "fit_advi",
           "fit_advi_and_twice"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class ConvergedADVISettings:
    """The run-to-convergence criterion of ``advi`` (see the module docstring).

    ``step_size`` may be a schedule (iteration -> step size), for tests of the rule only: ``advi``
    itself uses a constant step.
    """

    step_size: float | Callable = 0.01
    grad_draws: int = 8
    block: int = 50
    window: int = 40
    min_blocks: int = 128
    check_every: int = 16
    tolerance: float = 0.01
    sd_fraction: float = 0.1
    max_r_hat: float = 1.1
    sd_draws: int = 100
    elbo_draws: int = 200
    max_iterations: int = 100_000
    fixed_iterations: int | None = None
    output_samples: int = 1_000
    init_radius: float = 2.0

    def __post_init__(self):
        if self.min_blocks < max(2 * self.window, 8):
            raise ValueError("min_blocks must be at least 2 x window and 8 (two chains of two halves for split R-hat)")
        if self.fixed_iterations is not None and self.fixed_iterations < self.block:
            raise ValueError(f"fixed_iterations must be at least one block ({self.block})")


@dataclass(frozen=True)
class AveragingVerdict:
    """What the rule found on the blocks since the averaging start (``k`` reported quantities).

    ``converged``; ``stationary`` (every split R-hat below the limit); ``r_hat``, ``mcse`` and
    ``change`` (k,): split R-hat, Monte Carlo standard error of the average, and the average's change
    over the last window; ``tolerance`` (k,): what 2 x ``mcse`` and ``change`` must stay below.
    """

    converged: bool
    stationary: bool
    r_hat: np.ndarray
    mcse: np.ndarray
    change: np.ndarray
    tolerance: np.ndarray


def averaging_verdict(block_means: np.ndarray, posterior_sd: np.ndarray,
                      settings: ConvergedADVISettings) -> AveragingVerdict:
    """The stop rule on the reported quantities of the blocks since the averaging start.

    ``block_means``: (n_blocks, k), the reported quantities of each block's averaged iterate, in
    order (more than ``settings.window`` and at least 8); ``posterior_sd``: (k,), their sd under the current
    approximation (same units); quantities whose sd is exactly 0 are fixed by the model and left
    out (the verdict's arrays hold the others).
    """
    block_means = np.asarray(block_means, dtype=float)
    posterior_sd = np.asarray(posterior_sd, dtype=float)
    # Quantities fixed by the model (gamma at severity 0: sd exactly 0) have nothing to converge.
    free = posterior_sd > 0
    block_means, posterior_sd = block_means[:, free], posterior_sd[free]
    n_blocks, k = block_means.shape
    if n_blocks <= settings.window or n_blocks < 8:
        raise ValueError(f"the rule needs more than window = {settings.window} blocks and at least 8, got {n_blocks}")
    half = n_blocks // 2
    # The later blocks as two chains (an odd first block is dropped from the diagnostics only).
    chains = az.convert_to_dataset({"q": block_means[n_blocks - 2 * half:].reshape(2, half, k)})
    with np.errstate(invalid="ignore", divide="ignore"):  # frozen iterates: 0 / 0, NaN on purpose
        r_hat = np.asarray(az.rhat(chains, method="rank")["q"].values, dtype=float)
        mcse = np.asarray(az.mcse(chains, method="mean")["q"].values, dtype=float)
    average = block_means.mean(axis=0)
    earlier = block_means[:-settings.window].mean(axis=0)
    change = np.abs(average - earlier)
    tolerance = np.minimum(settings.tolerance, settings.sd_fraction * posterior_sd)
    # Frozen iterates give NaN (no variance to compare with): not stationary.
    stationary = bool(np.all(r_hat < settings.max_r_hat))
    accurate = bool(np.all(2.0 * mcse < tolerance) and np.all(change < tolerance))
    return AveragingVerdict(converged=stationary and accurate, stationary=stationary, r_hat=r_hat, mcse=mcse,
                            change=change, tolerance=tolerance)


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


def _reported_sd(reported: Callable, n_draws: int):
    """sd (k,) of ``reported`` under N(mean, diag(exp(log_sd))^2), on fixed draws ``eps`` (n_draws, dim)."""

    @jax.jit
    def sd(mean, log_sd, eps):
        values = jax.vmap(lambda e: jnp.ravel(reported(mean + jnp.exp(log_sd) * e)))(eps)
        return jnp.std(values, axis=0)

    return sd


def _averaged_result(means, log_sds, start: int, iterations, trace, verdict, converged: bool, key_draws,
                     settings: ConvergedADVISettings) -> MeanFieldResult:
    """The average of the blocks from ``start`` on, as a :class:`MeanFieldResult` with the rule's figures."""
    mean = np.mean(means[start:], axis=0)
    log_sd = np.mean(log_sds[start:], axis=0)
    rule = {"average_start": start * settings.block}
    if verdict is not None:
        finite = np.isfinite(verdict.r_hat)
        rule.update(max_r_hat_iterates=float(np.max(verdict.r_hat[finite])) if finite.any() else float("nan"),
                    max_mcse=float(np.max(verdict.mcse)), max_change=float(np.max(verdict.change)))
    return MeanFieldResult(
        mean=mean,
        log_sd=log_sd,
        draws=np.asarray(gaussian_draws(jnp.asarray(mean), jnp.asarray(log_sd), key_draws, settings.output_samples)),
        iterations=iterations[-1],
        converged=converged,
        elbo_iteration=np.asarray(iterations),
        elbo=np.asarray(trace),
        rule=rule,
    )


def _run(log_density: Callable, dim: int, data: dict, key: jax.Array, settings: ConvergedADVISettings,
         reported: Callable | None, twice: bool) -> tuple[MeanFieldResult, MeanFieldResult | None]:
    """The fit, and with ``twice`` also the same run carried on to twice its iterations (else None)."""
    reported = (lambda theta: theta) if reported is None else reported
    key_init, key_run, key_elbo, key_draws = jax.random.split(key, 4)
    dtype = jnp.result_type(float)
    mean = jax.random.uniform(key_init, (dim,), dtype=dtype, minval=-settings.init_radius,
                              maxval=settings.init_radius)
    optimizer = Adam(settings.step_size)
    opt_state = optimizer.init((mean, jnp.zeros_like(mean)))
    run = _block_runner(log_density, optimizer, settings.block, settings.grad_draws)
    reported_flat = jax.jit(lambda theta: jnp.ravel(reported(theta)))
    reported_sd = _reported_sd(reported, settings.sd_draws)
    sd_eps = jax.random.normal(jax.random.fold_in(key_draws, 1), (settings.sd_draws, dim), dtype=dtype)

    limit = settings.fixed_iterations or settings.max_iterations
    n_blocks = max(math.ceil(limit / settings.block), 1)
    means, log_sds, quantities = [], [], []
    iterations, trace = [], []
    start = 0  # first block of the average
    verdict: AveragingVerdict | None = None
    first: MeanFieldResult | None = None  # the result where the rule was met, when carrying on
    index = 0
    while index < n_blocks:
        opt_state, block_mean, block_log_sd = run(opt_state, jax.random.fold_in(key_run, index), data)
        means.append(np.asarray(block_mean))
        log_sds.append(np.asarray(block_log_sd))
        quantities.append(np.asarray(reported_flat(block_mean)))
        index += 1
        if index % settings.check_every and index < n_blocks:
            continue
        # The same key every time: common random numbers across evaluations.
        elbo = float(estimate_elbo(log_density, block_mean, block_log_sd, key_elbo, data, settings.elbo_draws))
        iterations.append(index * settings.block)
        trace.append(elbo)
        # Like MCMC warm-up, the first half of the run is never averaged: a short transient that a
        # long stretch's R-hat would not see would still bias the average.
        start = max(start, index // 2)
        if index - start < settings.min_blocks:
            continue
        average_mean = np.mean(means[start:], axis=0)
        average_log_sd = np.mean(log_sds[start:], axis=0)
        sd = np.asarray(reported_sd(jnp.asarray(average_mean), jnp.asarray(average_log_sd), sd_eps))
        verdict = averaging_verdict(np.stack(quantities[start:]), sd, settings)
        if not verdict.stationary:
            start += (index - start) // 2  # the earlier half was still a transient
        elif verdict.converged and settings.fixed_iterations is None and first is None:
            first = _averaged_result(means, log_sds, start, iterations, trace, verdict, True, key_draws, settings)
            if not twice:
                return first, None
            # Carry on exactly as a run of fixed_iterations = twice these would (same blocks, same checks).
            n_blocks = 2 * index

    if first is None and settings.fixed_iterations is None:
        logger.warning("advi stopped at its iteration limit (%d) without meeting its convergence rule",
                       iterations[-1])
    last = _averaged_result(means, log_sds, start, iterations, trace, verdict, False, key_draws, settings)
    return (last, None) if first is None else (first, last)


def converged_meanfield_advi(
    log_density: Callable,
    dim: int,
    data: dict,
    key: jax.Array,
    settings: ConvergedADVISettings | None = None,
    reported: Callable[[jax.Array], jax.Array] | None = None,
) -> MeanFieldResult:
    """Mean-field ADVI on ``log_density(theta, data)`` over theta in R^dim, run to convergence.

    ``reported(theta)``: the quantities whose convergence is judged (any shape, logit-scale units;
    default: theta itself). The result's ``rule`` holds the rule's last figures and where the
    average started.
    """
    settings = ConvergedADVISettings() if settings is None else settings
    return _run(log_density, dim, data, key, settings, reported, twice=False)[0]


def _posterior(data: ModelData, model, arrays: dict, result: MeanFieldResult, seed: int,
               settings: ConvergedADVISettings, fixed_iterations: int, key_attrs: dict) -> az.InferenceData:
    return mean_field_posterior(
        data, model, arrays, result, inference="advi", seed=seed,
        attrs={"iterations": result.iterations, "converged": int(result.converged),
               "elbo_iteration": result.elbo_iteration, "elbo": result.elbo,
               "convergence_tolerance": settings.tolerance, "sd_fraction": settings.sd_fraction,
               "max_iterations": settings.max_iterations,
               "fixed_iterations": fixed_iterations, **result.rule, **key_attrs},
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

    Convergence is judged on the severity effects gamma[s, g]. Give ``seed`` (an int) or ``key`` (a
    JAX PRNG key; see :mod:`perceptiongap.model.keys`); ``model`` names the variant
    (:mod:`perceptiongap.model.variants`). The posterior's attributes hold ``iterations``,
    ``converged`` (0 at ``max_iterations``, and for a ``fixed_iterations`` run), the per-block ELBO
    trace (``elbo_iteration``, ``elbo``), the rule's settings and last figures (``average_start``,
    ``max_r_hat_iterates``, ``max_mcse``, ``max_change``) and ``pareto_k``.
    """
    settings = ConvergedADVISettings() if settings is None else settings
    key, seed, key_attrs = fit_key(seed, key)
    model = flat_model_for(data, model)
    arrays = device_data(data)
    result = converged_meanfield_advi(model.log_density, model.dim, arrays, key, settings,
                                      reported=lambda theta: model.sites(theta, arrays)["gamma"])
    return _posterior(data, model, arrays, result, seed, settings, settings.fixed_iterations or 0, key_attrs)


def fit_advi_and_twice(
    data: ModelData,
    seed: int,
    settings: ConvergedADVISettings | None = None,
    *,
    model: str = DEFAULT_MODEL,
) -> tuple[az.InferenceData, az.InferenceData | None]:
    """:func:`fit_advi`'s posterior and that of the same run carried on to twice its iterations
    (None when the first never met the rule).

    The second equals ``fit_advi`` with ``fixed_iterations`` = twice the first's iterations (the
    same blocks and checks; ``converged`` 0), at the cost of one run of that length rather than
    two runs. For ``benchmarks/advi_convergence.py``.
    """
    settings = ConvergedADVISettings() if settings is None else settings
    key, seed, key_attrs = fit_key(seed, None)
    model = flat_model_for(data, model)
    arrays = device_data(data)
    first, last = _run(model.log_density, model.dim, arrays, key, settings,
                       lambda theta: model.sites(theta, arrays)["gamma"], twice=True)
    return (_posterior(data, model, arrays, first, seed, settings, settings.fixed_iterations or 0, key_attrs),
            None if last is None else _posterior(data, model, arrays, last, seed, settings, last.iterations, key_attrs))
