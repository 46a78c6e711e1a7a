"""The likelihood as the release's Stan programs evaluate it, for ``stan-advi`` (METHOD §5a).

The release (``perception_comparison/probabilistic_inference.py``) writes, per observed cell,
``theta = inv_logit(logit)`` in double precision, then ``y ~ bernoulli(theta)`` for radiologists
(form ``bernoulli``) or ``lmultiply(y, theta) + lmultiply(1 - y, 1 - theta)`` for networks (form
``soft_label``). What that does at the extremes, from Stan Math (``inv_logit``, ``lmultiply``,
``bernoulli_lpmf`` and their reverse-mode partials; see ``benchmarks/stan_oracle/STAN_ADVI_RULES.md``):

* theta is exactly 1 once the logit reaches :func:`theta_one_threshold` (about 36.74):
  ``1 + exp(-logit)`` rounds to 1; theta is exactly 0 at or below :data:`THETA_ZERO_LOGIT`
  (about -745.13, where ``exp`` underflows past the smallest subnormal double).
* The value is -inf when a cell's label disagrees with a saturated theta: soft label
  y > 0 with theta = 0, or y < 1 with theta = 1 (``lmultiply(0, 0)`` is 0); Bernoulli y = 1 with
  theta = 0, or y = 0 with theta = 1.
* The gradient (``adjoint * theta * (1 - theta)`` after ``a / b`` or ``1 / theta``,
  ``1 / (theta - 1)``) is non-finite: soft label whenever theta is 0 or 1 (0 / 0 or inf * 0), or
  when ``y / theta`` overflows (logit below log(y) - log(DBL_MAX)); Bernoulli y = 0 with theta = 1,
  or y = 1 with ``1 / theta`` overflowing (logit below -log(DBL_MAX), about -709.78).
* Elsewhere the value is Stan's arithmetic (``log(theta)``, ``log(1 - theta)``, ``log1m(theta)``),
  and the derivative with respect to the logit is y - theta, which Stan's partials equal up to
  rounding.

XLA on CPU flushes subnormal doubles to zero, which C++ (Stan) does not; so where Stan's theta is
``exp(logit)`` (logit below log(machine epsilon)) log(theta) is taken as the logit itself, and the
saturation rules above are decided on the logit against thresholds, not on a flushed theta. The
same masks decide the value, the gradient and :func:`release_saturation`, so a draw that the
cheap saturation check passes has a finite value and gradient, and one it fails does not.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from perceptiongap.model.likelihood import cell_logits, effect_gradients

__all__ = [
    "LOG_DBL_MAX",
    "LOG_EPSILON",
    "RELEASE_FORMS",
    "THETA_ZERO_LOGIT",
    "release_log_likelihood",
    "release_saturation",
    "saturation_bounds",
    "stan_inv_logit",
    "theta_one_threshold",
]

#: The release's two likelihood statements: radiologists' ``bernoulli``, networks' ``soft_label``.
RELEASE_FORMS = ("bernoulli", "soft_label")
#: log(machine epsilon of a double): below it Stan Math's inv_logit returns exp(logit) (about -36.04).
LOG_EPSILON = math.log(float(np.finfo(np.float64).eps))
#: log of the largest double: ``1 / exp(logit)`` overflows below minus this (about 709.78).
LOG_DBL_MAX = math.log(float(np.finfo(np.float64).max))
#: exp(logit) rounds to 0 at or below this: half the smallest subnormal, 2^-1075 (about -745.13).
THETA_ZERO_LOGIT = -1075.0 * math.log(2.0)


def stan_inv_logit(logit: jnp.ndarray) -> jnp.ndarray:
    """Stan Math's ``inv_logit`` (``prim/fun/inv_logit.hpp``), branch for branch.

    logit < 0: exp(logit) / (1 + exp(logit)), or just exp(logit) below :data:`LOG_EPSILON`;
    logit >= 0: 1 / (1 + exp(-logit)), exactly 1.0 from :func:`theta_one_threshold` on.
    """
    e = jnp.exp(-jnp.abs(logit))  # exp(logit) for logit < 0, exp(-logit) otherwise: one exp per cell
    negative = jnp.where(logit < LOG_EPSILON, e, e / (1.0 + e))
    return jnp.where(logit < 0.0, negative, 1.0 / (1.0 + e))


@functools.cache
def theta_one_threshold() -> float:
    """The smallest double logit at which :func:`stan_inv_logit` is exactly 1.0 in this XLA build.

    Found among the doubles around 53 log 2 (where exp(-logit) reaches 2^-53), so that the mask
    ``logit >= threshold`` and the computed theta agree exactly.
    """
    guess = 53.0 * math.log(2.0)
    window = np.array([guess], dtype=np.float64)
    below = above = window
    for _ in range(512):  # 512 doubles either side of the guess
        below = np.nextafter(below, -np.inf)
        above = np.nextafter(above, np.inf)
        window = np.concatenate([below, window, above])
    window = np.sort(window)
    # Evaluated now even when first asked for while a function is being traced.
    with jax.enable_x64(True), jax.ensure_compile_time_eval():
        is_one = np.asarray(jax.jit(stan_inv_logit)(jnp.asarray(window)) == 1.0)
    if not is_one[-1] or is_one[0] or not np.all(np.diff(is_one.astype(int)) >= 0):
        raise RuntimeError("inv_logit does not saturate monotonically near 53 log 2 in this XLA build")
    return float(window[np.argmax(is_one)])


def saturation_bounds(prediction: np.ndarray, observed: np.ndarray, form: str) -> np.ndarray:
    """Per cell, the logits at which the release's value and gradient stop being finite.

    Returns float64 (4, *cell shape): value_low, value_high, gradient_low, gradient_high; a cell's
    value (gradient) is non-finite exactly when its logit is <= the low or >= the high bound (see
    the module docstring for the rules); unobserved cells never are (-inf, inf). Computed once per
    fit from the data, so that checking a draw is a comparison per cell.
    """
    if form not in RELEASE_FORMS:
        raise ValueError(f"form must be one of {RELEASE_FORMS}, got {form!r}")
    y = np.asarray(prediction, dtype=np.float64)
    one, zero = theta_one_threshold(), THETA_ZERO_LOGIT
    shape = y.shape
    never_low, never_high = np.full(shape, -np.inf), np.full(shape, np.inf)
    if form == "bernoulli":
        yes = y == 1.0
        value_low = np.where(yes, zero, -np.inf)
        value_high = np.where(yes, np.inf, one)
        # 1 / theta overflows (to inf, then inf * theta) for logit < -log(DBL_MAX): logit <= the double below.
        gradient_low = np.where(yes, np.nextafter(-LOG_DBL_MAX, -np.inf), -np.inf)
        gradient_high = value_high
    else:
        value_low = np.where(y > 0.0, zero, -np.inf)
        value_high = np.where(y < 1.0, one, np.inf)
        with np.errstate(divide="ignore"):
            overflow = np.nextafter(np.log(y) - LOG_DBL_MAX, -np.inf)  # y / theta overflows below log y - log(DBL_MAX)
        gradient_low = np.maximum(zero, overflow)
        gradient_high = np.full(shape, one)
    bounds = [value_low, value_high, gradient_low, gradient_high]
    keep = np.asarray(observed, dtype=bool)
    bounds = [np.where(keep, b, never_low if i % 2 == 0 else never_high) for i, b in enumerate(bounds)]
    return np.stack(bounds)


def _outside(logit, low, high):
    return (logit <= low) | (logit >= high)


def _cell_values(logit, prediction, bounds, form: str):
    """Per cell: the release's log-likelihood value and theta."""
    theta = stan_inv_logit(logit)
    # Where theta is exp(logit), log(theta) is the logit (theta may be subnormal, which XLA flushes).
    log_theta = jnp.where(logit < LOG_EPSILON, logit, jnp.log(theta))
    if form == "bernoulli":
        value = jnp.where(prediction == 1.0, log_theta, jnp.log1p(-theta))  # log1m(theta) = log1p(-theta)
    else:
        # lmultiply(a, b) = a * log(b), and 0 when a = b = 0; 1 - theta rounded as Stan rounds it.
        value = prediction * log_theta + (1.0 - prediction) * jnp.log(1.0 - theta)
    # 0 * log(0) is lmultiply(0, 0) = 0 in Stan, NaN here; a NaN logit stays NaN.
    value = jnp.where(jnp.isnan(value) & ~jnp.isnan(logit), 0.0, value)
    return jnp.where(_outside(logit, bounds[0], bounds[1]), -jnp.inf, value), theta


def _value(case_bias, severity_effect, observer_effect, prediction, observed, severity_index, bounds, form):
    logit = cell_logits(case_bias, severity_effect, observer_effect, severity_index)
    value, _ = _cell_values(logit, prediction, bounds, form)
    return jnp.sum(jnp.where(observed, value, 0.0))


def _forward(case_bias, severity_effect, observer_effect, prediction, observed, severity_index, bounds, form):
    logit = cell_logits(case_bias, severity_effect, observer_effect, severity_index)
    value, theta = _cell_values(logit, prediction, bounds, form)
    d_logit = jnp.where(_outside(logit, bounds[2], bounds[3]), jnp.nan, prediction - theta)
    total = jnp.sum(jnp.where(observed, value, 0.0))
    return total, effect_gradients(jnp.where(observed, d_logit, 0.0), severity_effect, severity_index)


def _backward(form, gradients, cotangent):
    d_case, d_severity, d_observer = gradients
    return cotangent * d_case, cotangent * d_severity, cotangent * d_observer, None, None, None, None


_release = jax.custom_vjp(_value, nondiff_argnums=(7,))
_release.defvjp(_forward, _backward)


def release_log_likelihood(case_bias, severity_effect, observer_effect, prediction, observed, severity_index,
                           bounds, *, form: str):
    """Sum over observed cells of the release's likelihood statement ``form`` (:data:`RELEASE_FORMS`).

    Arguments as :func:`perceptiongap.model.likelihood.log_likelihood`, plus ``bounds``
    (:func:`saturation_bounds` of the same cells). -inf when an observed cell saturates against
    its label, and then a non-finite gradient (the module docstring has the rules). Meant for
    double precision.
    """
    if form not in RELEASE_FORMS:
        raise ValueError(f"form must be one of {RELEASE_FORMS}, got {form!r}")
    return _release(case_bias, severity_effect, observer_effect, prediction, observed, severity_index, bounds, form)


def release_saturation(case_bias, severity_effect, observer_effect, severity_index, bounds
                       ) -> tuple[jnp.ndarray, jnp.ndarray]:
    """(value finite, gradient finite) of :func:`release_log_likelihood` at these effects, without
    computing either: the cells' logits against their :func:`saturation_bounds`."""
    logit = cell_logits(case_bias, severity_effect, observer_effect, severity_index)
    return ~jnp.any(_outside(logit, bounds[0], bounds[1])), ~jnp.any(_outside(logit, bounds[2], bounds[3]))
