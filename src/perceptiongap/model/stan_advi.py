"""Stan's mean-field ADVI, rule for rule, as the authors' release ran it (METHOD §5a).

The release called PyStan 2's ``vb`` with its defaults. Stan's procedure
(``stan/variational/advi.hpp``, ``families/normal_meanfield.hpp``; the rules as read from the
source are written out in ``benchmarks/stan_oracle/STAN_ADVI_RULES.md``):

* Approximation N(m, diag(exp(omega))^2) on the unconstrained space, from q0 = (m0, 0) with m0
  drawn uniformly in (-init_radius, init_radius) (redrawn, up to 100 times, while the log density
  or its gradient there is not finite).
* ELBO gradient by reparameterisation with ``grad_samples`` draws. **A draw whose gradient is not
  finite is dropped and redrawn**; after ``10 * grad_samples`` drops in one call the call fails.
* **ELBO from ``elbo_samples`` finite draws**: a draw whose log density is not finite is dropped
  and redrawn; the sum of the finite ones is divided by ``elbo_samples``; after ``elbo_samples``
  drops in one call the call fails.
* Step sequence: s_1 = g_1^2, s_k = 0.9 s_{k-1} + 0.1 g_k^2; update
  ``eta / sqrt(k) * g_k / (1 + sqrt(s_k))`` element-wise, for m and omega alike.
* eta (:func:`choose_eta`): from q0, each of ``eta_sequence`` for ``adapt_iterations``; a failed
  gradient call there counts as a zero gradient, a failed ELBO as the lowest double. The main loop
  restarts from q0 with the chosen eta; a failed call there fails the fit (:class:`ADVIError`).
* Every ``eval_elbo`` iterations the relative ELBO change ``|(previous - current) / current|``
  (previous = 0 before the first evaluation, so the first change is exactly 1) goes into a
  circular buffer of ``buffer_size``; stop when its mean or its median (the element at n // 2 of
  the sorted buffer, no averaging) is below ``tol_rel_obj`` (:func:`stan_stop`).
* Output: ``output_samples`` draws from q.

With ``numerics="release"`` (the default) the fit evaluates the release's own expressions
(:func:`perceptiongap.model.likelihood.release_log_likelihood`) in double precision, inside a
thread-local ``jax.enable_x64`` context, so other fits in the same process keep their precision.
Stan's random numbers cannot be reproduced, so results match Stan's in distribution over seeds,
not draw for draw.

:func:`stan_meanfield_advi` runs the procedure on any log density of a flat vector;
:func:`fit_stan_advi` runs it on one observer group's model and returns the ArviZ posterior.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import sys
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np

from perceptiongap.model.data import ModelData
from perceptiongap.model.density import NUMERICS, device_data, flat_model_for
from perceptiongap.model.keys import fit_key
from perceptiongap.model.meanfield import MeanFieldResult, gaussian_draws, mean_field_posterior
from perceptiongap.model.variants import DEFAULT_MODEL

__all__ = [
    "FAILED_ELBO",
    "GRADIENT_RETRIES",
    "ADVIError",
    "ADVIResult",
    "StanADVISettings",
    "choose_eta",
    "fit_stan_advi",
    "relative_change",
    "stan_meanfield_advi",
    "stan_stop",
    "upper_median",
]

#: What a failed ELBO call counts as in an eta trial: Stan's ``-std::numeric_limits<double>::max()``.
FAILED_ELBO = -sys.float_info.max
#: Dropped gradient draws allowed per requested draw before a gradient call fails (Stan's ``n_retries``).
GRADIENT_RETRIES = 10
#: Initial points tried before giving up (Stan's ``services::util::initialize``).
INIT_ATTEMPTS = 100


@dataclass(frozen=True, kw_only=True)
class StanADVISettings:
    """Stan 2's ``vb`` defaults, as the release used them (see the module docstring).

    ``numerics``: ``release`` (the release's expressions in double precision, what Stan
    evaluated) or ``stable`` (the softplus form in the process's default precision; a diagnostic).
    """

    max_iterations: int = 10_000
    eval_elbo: int = 100
    elbo_samples: int = 100
    grad_samples: int = 1
    tol_rel_obj: float = 0.01
    adapt_iterations: int = 50
    eta_sequence: tuple[float, ...] = (100.0, 10.0, 1.0, 0.1, 0.01)
    output_samples: int = 1000
    init_radius: float = 2.0
    numerics: str = "release"

    def __post_init__(self):
        if self.numerics not in NUMERICS:
            raise ValueError(f"numerics must be one of {NUMERICS}, got {self.numerics!r}")

    @property
    def buffer_size(self) -> int:
        """Stan's ``cb_size``: max(0.1 * max_iterations / eval_elbo, 2), truncated."""
        return int(max(0.1 * self.max_iterations / self.eval_elbo, 2.0))


@dataclass(frozen=True, kw_only=True)
class ADVIResult(MeanFieldResult):
    """A Stan ADVI fit: the approximation, the step size ``eta`` chosen, the final ELBO of each
    step size tried, and the draws Stan's rules set aside, in the eta trials (``adapt_*``) and in
    the main loop: log-density draws dropped from ELBO estimates, gradient draws rejected."""

    eta: float
    adaptation_elbo: dict[float, float] = field(default_factory=dict)
    elbo_draws_dropped: int = 0
    gradient_draws_rejected: int = 0
    adapt_elbo_draws_dropped: int = 0
    adapt_gradient_draws_rejected: int = 0
    adapt_gradients_zeroed: int = 0


class ADVIError(RuntimeError):
    """Stan's ADVI failed, as Stan's fails: no finite initial point, no usable step size, or a failed
    ELBO or gradient call in the main loop. ``details`` holds what is known of the run (eta, the
    iteration, the draws set aside)."""

    def __init__(self, message: str, details: dict | None = None):
        super().__init__(message)
        self.details = dict(details or {})


# --- the decision rules, pure functions of the numbers they see -------------------------------------------------


def choose_eta(elbo_init: float, run_trial: Callable[[float], float], eta_sequence: Sequence[float]) -> float:
    """Stan's ``adapt_eta`` decision: the step size to use, given the initial ELBO and a trial.

    ``run_trial(eta)`` runs one trial from q0 and returns its final ELBO (:data:`FAILED_ELBO` if
    that ELBO call failed); trials run in order and stop as soon as the choice is made. Stop at
    the first eta whose ELBO is below the previous eta's while the previous one beat
    ``elbo_init``, and take the previous eta (the comparison is with the previous eta only, not
    the best so far); after the last eta, take it if it beat ``elbo_init``; otherwise raise
    :class:`ADVIError`.
    """
    elbo_previous = FAILED_ELBO
    eta_previous = None
    for index, eta in enumerate(eta_sequence):
        elbo = run_trial(eta)
        if elbo < elbo_previous and elbo_previous > elbo_init:
            return eta_previous
        if index < len(eta_sequence) - 1:
            elbo_previous, eta_previous = elbo, eta
        elif elbo > elbo_init:
            return eta
    raise ADVIError("all proposed step sizes failed: the model may be ill-conditioned or misspecified")


def relative_change(previous: float, current: float) -> float:
    """Stan's relative ELBO change ``|(previous - current) / current|`` (previous is 0 before the first)."""
    return abs((previous - current) / current)


def upper_median(values: Sequence[float]) -> float:
    """Stan's circular-buffer median: the element at index n // 2 of the sorted values (no averaging)."""
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def stan_stop(changes: Sequence[float], tol_rel_obj: float) -> bool:
    """Stan's stop: the buffer's mean or its upper median strictly below ``tol_rel_obj``."""
    return sum(changes) / len(changes) < tol_rel_obj or upper_median(changes) < tol_rel_obj


# --- the numerical pieces, compiled --------------------------------------------------------------------------------

#: Draws per step when evaluating an ELBO's log densities (lax.map in batches: measured faster than one vmap).
_ELBO_BATCH = 4


def _entropy(log_sd):
    return 0.5 * log_sd.shape[0] * (1.0 + jnp.log(2.0 * jnp.pi)) + jnp.sum(log_sd)


def _finiteness(log_density: Callable, saturation: Callable | None) -> Callable:
    """``saturation(theta, data) -> (value finite, gradient finite)``; without a model's own cheap
    check, both are found by evaluating the log density and its gradient."""
    if saturation is not None:
        return saturation

    def evaluated(theta, data):
        value, grad = jax.value_and_grad(log_density)(theta, data)
        return jnp.isfinite(value), jnp.all(jnp.isfinite(grad))

    return evaluated


def _elbo(log_density: Callable, saturation: Callable | None, mean, log_sd, draws, data):
    """Stan's ``calc_ELBO``: (ELBO, draws dropped, ok).

    Stan draws until ``n_draws`` finite log densities are in, and fails at the ``n_draws``-th
    drop. Equivalently: of a sequence of 2 n_draws - 1 standard-normal draws (``draws``, in
    order), the first n_draws finite ones are used, and the call fails when fewer than n_draws of
    them are finite. Which draws are finite is decided by the model's saturation check, so only the
    n_draws used are evaluated (none when the call fails).
    """
    finiteness = _finiteness(log_density, saturation)
    scale = jnp.exp(log_sd)
    n_draws = (draws.shape[0] + 1) // 2
    finite = jax.lax.map(lambda one: finiteness(mean + scale * one, data)[0], draws)
    count = jnp.cumsum(finite)
    ok = count[-1] >= n_draws
    dropped = jnp.where(ok, jnp.argmax(count == n_draws) + 1 - n_draws, n_draws).astype(jnp.int32)
    used = draws[jnp.nonzero(finite, size=n_draws, fill_value=0)[0]]  # the first n_draws finite draws, in order

    def total():
        values = jax.lax.map(lambda one: log_density(mean + scale * one, data), used, batch_size=_ELBO_BATCH)
        return jnp.sum(values)

    total = jax.lax.cond(ok, total, lambda: jnp.zeros((), mean.dtype))
    return total / n_draws + _entropy(log_sd), dropped, ok


def _gradient(log_density: Callable, saturation: Callable | None, mean, log_sd, first_z, fresh: Callable, data):
    """Stan's ``normal_meanfield::calc_grad``: (g_mean, g_log_sd, draws rejected, ok).

    ``first_z`` (n_draws, dim) are the first n_draws standard-normal draws, ``fresh(attempt)`` the
    later ones (attempt = 0, 1, ...). A draw whose gradient has a non-finite entry is rejected and
    replaced by the next fresh draw that the model's saturation check passes, those it fails
    counting as rejected too; the call fails at the
    ``GRADIENT_RETRIES * n_draws``-th rejection and returns zeros (Stan's ``set_to_zero``, the
    entropy's +1 included). The omega gradient is mean(grad * z) * exp(omega) + 1.
    """
    finiteness = _finiteness(log_density, saturation)
    scale = jnp.exp(log_sd)
    n_draws = first_z.shape[0]
    limit = GRADIENT_RETRIES * n_draws

    def replace(z, need, rejected, attempt):
        """Fill the rows ``need`` with fresh draws that pass the saturation check."""

        def more(carry):
            _, need, rejected, _ = carry
            return jnp.any(need) & (rejected < limit)

        def draw(carry):
            z, need, rejected, attempt = carry
            candidate = fresh(attempt)
            finite = finiteness(mean + scale * candidate, data)[1]
            row = jnp.argmax(need)
            z = jnp.where(finite, z.at[row].set(candidate), z)
            need = jnp.where(finite, need.at[row].set(False), need)
            return z, need, rejected + (~finite), attempt + 1

        z, _, rejected, attempt = jax.lax.while_loop(more, draw, (z, need, rejected, attempt))
        return z, rejected, attempt

    def unfinished(carry):
        _, _, need, rejected, _ = carry
        return jnp.any(need) & (rejected < limit)

    def evaluate(carry):
        grads, z, need, rejected, attempt = carry
        new = jax.vmap(lambda one: jax.grad(log_density)(mean + scale * one, data))(z)
        finite = jnp.all(jnp.isfinite(new), axis=1)
        grads = jnp.where((need & finite)[:, None], new, grads)
        need = need & ~finite
        rejected = rejected + jnp.sum(need, dtype=jnp.int32)
        z, rejected, attempt = jax.lax.cond(jnp.any(need) & (rejected < limit),
                                            lambda: replace(z, need, rejected, attempt),
                                            lambda: (z, rejected, attempt))
        return grads, z, need, rejected, attempt

    start = (jnp.zeros_like(first_z), first_z, jnp.ones(n_draws, dtype=bool), jnp.int32(0), jnp.int32(0))
    grads, z, need, rejected, _ = jax.lax.while_loop(unfinished, evaluate, start)
    ok = ~jnp.any(need)
    g_mean = jnp.where(ok, grads.mean(axis=0), 0.0)
    g_log_sd = jnp.where(ok, (grads * z).mean(axis=0) * scale + 1.0, 0.0)
    return g_mean, g_log_sd, rejected, ok


@functools.partial(jax.jit, static_argnames=("log_density", "saturation", "max_steps", "grad_samples",
                                             "elbo_samples"))
def _advance(log_density: Callable, saturation: Callable | None, state, eta, n_steps, key, data, adapting,
             max_steps: int, grad_samples: int, elbo_samples: int):
    """Up to ``n_steps`` (at most ``max_steps``) of Stan's stochastic gradient ascent, then the ELBO.

    state = (mean, log_sd, s_mean, s_log_sd, k, gradient draws rejected, gradient calls failed).
    ``adapting``: a failed gradient call is a zero gradient (Stan's eta trials); otherwise it ends
    the run, which the caller reports. ``n_steps`` and ``adapting`` are traced, so the eta trials,
    the main loop's chunks and the initial ELBO (``n_steps=0``) share one compiled function.
    """
    key_steps, key_retries, key_elbo = jax.random.split(key, 3)
    # The steps' first draws in one call: drawn inside the loop, XLA recomputed them per use (measured 1.6x slower).
    first_z = jax.random.normal(key_steps, (max_steps, grad_samples, state[0].shape[0]), dtype=state[0].dtype)

    def go_on(carry):
        i, state = carry
        return (i < n_steps) & (adapting | (state[6] == 0))

    def step(carry):
        i, (mean, log_sd, s_mean, s_log_sd, k, rejected, failures) = carry
        key_step = jax.random.fold_in(key_retries, i)

        def fresh(attempt):
            return jax.random.normal(jax.random.fold_in(key_step, attempt), mean.shape, dtype=mean.dtype)

        g_mean, g_log_sd, n_rejected, ok = _gradient(log_density, saturation, mean, log_sd, first_z[i], fresh, data)
        k = k + 1
        first = k == 1
        s_mean = jnp.where(first, s_mean + g_mean**2, 0.9 * s_mean + 0.1 * g_mean**2)
        s_log_sd = jnp.where(first, s_log_sd + g_log_sd**2, 0.9 * s_log_sd + 0.1 * g_log_sd**2)
        rate = eta / jnp.sqrt(k.astype(mean.dtype))
        mean = mean + rate * g_mean / (1.0 + jnp.sqrt(s_mean))
        log_sd = log_sd + rate * g_log_sd / (1.0 + jnp.sqrt(s_log_sd))
        return i + 1, (mean, log_sd, s_mean, s_log_sd, k, rejected + n_rejected, failures + (~ok))

    _, state = jax.lax.while_loop(go_on, step, (jnp.int32(0), state))
    draws = jax.random.normal(key_elbo, (2 * elbo_samples - 1, state[0].shape[0]), dtype=state[0].dtype)
    return state, _elbo(log_density, saturation, state[0], state[1], draws, data)


def _fresh_state(mean, log_sd):
    zeros = jnp.zeros_like(mean)
    return (mean, log_sd, zeros, zeros, jnp.int32(0), jnp.int32(0), jnp.int32(0))


@functools.partial(jax.jit, static_argnames="log_density")
def _initial_point_ok(log_density: Callable, point, data):
    value, grad = jax.value_and_grad(log_density)(point, data)
    return jnp.isfinite(value) & jnp.isfinite(jnp.sum(grad))


def _initial_point(log_density: Callable, dim: int, key, data, radius: float, dtype):
    """Stan's random initialisation: uniform in (-radius, radius), redrawn while the log density
    or the sum of its gradient is not finite (at most :data:`INIT_ATTEMPTS` tries)."""
    for attempt in range(INIT_ATTEMPTS):
        point = jax.random.uniform(jax.random.fold_in(key, attempt), (dim,), dtype=dtype, minval=-radius,
                                   maxval=radius)
        if bool(_initial_point_ok(log_density, point, data)):
            return point
    raise ADVIError(f"initialization failed: no finite log density in {INIT_ATTEMPTS} random initial points")


# --- the procedure ---------------------------------------------------------------------------------------------------


def stan_meanfield_advi(
    log_density: Callable,
    dim: int,
    data: dict,
    key: jax.Array,
    settings: StanADVISettings = StanADVISettings(),
    *,
    saturation: Callable | None = None,
    on_evaluation: Callable[[int, float], None] | None = None,
) -> ADVIResult:
    """Run Stan's mean-field ADVI on ``log_density(theta, data)`` over theta in R^dim.

    ``saturation(theta, data) -> (value finite, gradient finite)`` is the model's cheap check of
    which draws Stan's rules drop (:attr:`perceptiongap.model.density.FlatModel.saturation`); it
    must agree with the log density and its gradient. Without it both are evaluated to find out.

    Runs in the precision in force (``fit_stan_advi`` chooses it). Raises :class:`ADVIError` when
    Stan would fail: no finite initial point, the initial ELBO not computable, every step size
    failing, or an ELBO or gradient call failing in the main loop.
    """
    key_init, key_adapt, key_run, key_draws = jax.random.split(key, 4)
    dtype = jnp.result_type(float)
    mean0 = _initial_point(log_density, dim, key_init, data, settings.init_radius, dtype)
    log_sd0 = jnp.zeros(dim, dtype=dtype)

    max_steps = max(settings.eval_elbo, settings.adapt_iterations)

    def advance(state, eta, n_steps, key, adapting):
        return _advance(log_density, saturation, state, eta, n_steps, key, data, adapting, max_steps,
                        settings.grad_samples, settings.elbo_samples)

    # Step-size trials, each from q0 with a fresh running average.
    counts = {"elbo_dropped": 0, "gradient_rejected": 0, "zeroed": 0}
    key_elbo_init, key_trials = jax.random.split(key_adapt)
    _, (elbo_init, dropped, ok) = advance(_fresh_state(mean0, log_sd0), 0.0, 0, key_elbo_init, True)
    counts["elbo_dropped"] += int(dropped)
    if not bool(ok):
        raise ADVIError("cannot compute the ELBO of the initial approximation: every draw's log density "
                        "is non-finite")
    tried: dict[float, float] = {}

    def run_trial(eta: float) -> float:
        index = len(tried)
        state, (elbo, dropped, ok) = advance(_fresh_state(mean0, log_sd0), eta, settings.adapt_iterations,
                                             jax.random.fold_in(key_trials, index), True)
        counts["elbo_dropped"] += int(dropped)
        counts["gradient_rejected"] += int(state[5])
        counts["zeroed"] += int(state[6])
        tried[eta] = float(elbo) if bool(ok) else FAILED_ELBO
        return tried[eta]

    eta = choose_eta(float(elbo_init), run_trial, settings.eta_sequence)

    # The main loop, from q0 again.
    state = _fresh_state(mean0, log_sd0)
    changes: deque[float] = deque(maxlen=settings.buffer_size)
    elbo_iteration, elbo_trace = [], []
    previous = 0.0  # Stan's elbo before the first evaluation
    elbo_dropped = 0
    converged = False
    iteration = 0
    chunk = 0
    while iteration < settings.max_iterations:
        n_steps = min(settings.eval_elbo, settings.max_iterations - iteration)
        state, (elbo, dropped, ok) = advance(state, eta, n_steps, jax.random.fold_in(key_run, chunk), False)
        chunk += 1
        failed = {"eta": float(eta), "main_elbo_draws_dropped": elbo_dropped,
                  "main_gradient_draws_rejected": int(state[5]),
                  "adapt_elbo_draws_dropped": counts["elbo_dropped"],
                  "adapt_gradient_draws_rejected": counts["gradient_rejected"]}
        if int(state[6]):
            raise ADVIError(f"the gradient failed at iteration {int(state[4])}: "
                            f"{GRADIENT_RETRIES * settings.grad_samples} draws with a non-finite gradient",
                            {**failed, "iterations": int(state[4])})
        iteration += n_steps
        if iteration % settings.eval_elbo:
            break
        if not bool(ok):
            raise ADVIError(f"the ELBO failed at iteration {iteration}: {settings.elbo_samples} draws with a "
                            f"non-finite log density", {**failed, "iterations": iteration})
        elbo = float(elbo)
        elbo_dropped += int(dropped)
        elbo_iteration.append(iteration)
        elbo_trace.append(elbo)
        if on_evaluation is not None:
            on_evaluation(iteration, elbo)
        changes.append(relative_change(previous, elbo))
        previous = elbo
        if stan_stop(changes, settings.tol_rel_obj):
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
        elbo_draws_dropped=elbo_dropped,
        gradient_draws_rejected=int(state[5]),
        adapt_elbo_draws_dropped=counts["elbo_dropped"],
        adapt_gradient_draws_rejected=counts["gradient_rejected"],
        adapt_gradients_zeroed=counts["zeroed"],
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
    ``model`` names the variant (:mod:`perceptiongap.model.variants`; each under the same numerics
    and draw rules, the release's exactly as its Stan programs).
    Raises :class:`ADVIError` when Stan's procedure fails. The posterior's attributes hold the
    chosen ``eta``, the stop ``iterations``, ``converged`` (1 when Stan's rule stopped it), the
    ELBO trace (``elbo_iteration``, ``elbo``), the final ELBO of each eta tried
    (``adaptation_eta``, ``adaptation_elbo``), the draws Stan's rules set aside
    (``main_elbo_draws_dropped``, ``main_gradient_draws_rejected`` in the main loop, ``adapt_*``
    in the eta trials, ``adapt_gradients_zeroed`` the trial iterations whose gradient call failed), ``numerics`` and ``pareto_k``. Draws are stored in single precision (Stan's output
    CSV, which PyStan read, carries six significant digits).
    """
    settings = StanADVISettings() if settings is None else settings
    key, seed, key_attrs = fit_key(seed, key)
    variant = model
    # Thread-local: fits running in other threads at the same time keep their own precision.
    with jax.enable_x64(True) if settings.numerics == "release" else contextlib.nullcontext():
        flat = flat_model_for(data, variant, settings.numerics)
        arrays = device_data(data, settings.numerics)
        result = stan_meanfield_advi(flat.log_density, flat.dim, arrays, key, settings, saturation=flat.saturation)
    stable = flat_model_for(data, variant)
    result = dataclasses.replace(result, **{name: getattr(result, name).astype(np.float32)
                                            for name in ("mean", "log_sd", "draws")})
    return mean_field_posterior(
        data, stable, device_data(data), result, inference="stan-advi", seed=seed,
        attrs={"eta": result.eta, "iterations": result.iterations, "converged": int(result.converged),
               "elbo_iteration": result.elbo_iteration, "elbo": result.elbo,
               "adaptation_eta": np.asarray(list(result.adaptation_elbo), dtype=float),
               "adaptation_elbo": np.asarray(list(result.adaptation_elbo.values()), dtype=float),
               "main_elbo_draws_dropped": result.elbo_draws_dropped,
               "main_gradient_draws_rejected": result.gradient_draws_rejected,
               "adapt_elbo_draws_dropped": result.adapt_elbo_draws_dropped,
               "adapt_gradient_draws_rejected": result.adapt_gradient_draws_rejected,
               "adapt_gradients_zeroed": result.adapt_gradients_zeroed,
               "numerics": settings.numerics,
               "tol_rel_obj": settings.tol_rel_obj, "max_iterations": settings.max_iterations, **key_attrs},
    )
