"""The model's log-likelihood over the observed cells, with its gradient computed in the same pass.

Observations sit in *cells* (observer, slot, case). A dense group (networks: every breast at every
severity) has one slot per severity, so slot k is severity k and ``severity_index`` is None. A
reader study, where a reader sees a breast at one severity, has a single slot and
``severity_index`` (observer, slot, case) names the severity of each cell; the grid it replaces
would be nine-tenths empty. See :meth:`perceptiongap.model.data.ModelData.cells`.

For cell (r, k, n) with severity s::

    logit = case_bias[n] + severity_effect[s, n] + observer_effect[r, n]
    log L = sum over observed cells of  y * logit - softplus(logit)

The severity effect may also differ by observer (shape (observer, severity, case) instead of
(severity, case)): ``severity_effect[r, s, n]``, for models in which readers differ in how much
filtering affects them.

The gradient with respect to the logit is the residual y - sigmoid(logit). Both softplus and
sigmoid come from one exp(-|logit|) per cell, and the residual is summed straight into the three
effects; autodiff of the same expression walks the cells several times (measured 1.4x slower on
the release's network groups, 0.48 vs 0.35 ms per gradient on one core).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["case_log_likelihood", "cell_logits", "effect_gradients", "log_likelihood"]


def cell_logits(case_bias, severity_effect, observer_effect, severity_index=None) -> jnp.ndarray:
    """logit (observer, slot, case) from case_bias (case,), severity_effect (severity, case) or
    (observer, severity, case), observer_effect (observer, case) and ``severity_index``
    (observer, slot, case) or None."""
    by_observer = severity_effect if severity_effect.ndim == 3 else severity_effect[None, :, :]
    if severity_index is None:
        severity_cells = by_observer
    else:
        severity_cells = jnp.take_along_axis(by_observer, severity_index, axis=1)
    return case_bias + severity_cells + observer_effect[:, None, :]


def effect_gradients(d_logit, severity_effect, severity_index=None):
    """Sum per-cell derivatives d_logit (observer, slot, case) into the gradients of the three effects
    (case,), the severity effect's shape ((severity, case) or (observer, severity, case)) and
    (observer, case)."""
    if severity_index is None:
        d_severity = d_logit if severity_effect.ndim == 3 else d_logit.sum(axis=0)
    else:
        # A scatter-add over the cells; measured 4x faster than contracting with a one-hot (cell, severity).
        case = jnp.broadcast_to(jnp.arange(severity_index.shape[-1]), severity_index.shape)
        if severity_effect.ndim == 3:
            observer = jnp.broadcast_to(jnp.arange(severity_index.shape[0])[:, None, None], severity_index.shape)
            d_severity = jnp.zeros_like(severity_effect).at[observer, severity_index, case].add(d_logit)
        else:
            d_severity = jnp.zeros_like(severity_effect).at[severity_index, case].add(d_logit)
    return d_logit.sum(axis=(0, 1)), d_severity, d_logit.sum(axis=1)


def _forward(case_bias, severity_effect, observer_effect, prediction, observed, severity_index=None):
    """The value and, as residuals for :func:`_backward`, its gradients with respect to the three effects."""
    logit = cell_logits(case_bias, severity_effect, observer_effect, severity_index)
    e = jnp.exp(-jnp.abs(logit))
    softplus = jnp.maximum(logit, 0.0) + jnp.log1p(e)
    sigmoid = jnp.where(logit >= 0.0, 1.0, e) / (1.0 + e)
    value = jnp.sum(jnp.where(observed, prediction * logit - softplus, 0.0))
    residual = jnp.where(observed, prediction - sigmoid, 0.0)
    return value, effect_gradients(residual, severity_effect, severity_index)


@jax.custom_vjp
def log_likelihood(case_bias, severity_effect, observer_effect, prediction, observed, severity_index=None):
    """Sum over observed cells of y log p + (1 - y) log(1 - p), p = sigmoid(:func:`cell_logits`).

    ``prediction`` and ``observed`` have the cell shape (observer, slot, case); y may be soft.
    """
    logit = cell_logits(case_bias, severity_effect, observer_effect, severity_index)
    return jnp.sum(jnp.where(observed, prediction * logit - jax.nn.softplus(logit), 0.0))


def _backward(gradients, cotangent):
    d_case, d_severity, d_observer = gradients
    return cotangent * d_case, cotangent * d_severity, cotangent * d_observer, None, None, None


log_likelihood.defvjp(_forward, _backward)


def case_log_likelihood(case_bias, severity_effect, observer_effect, prediction, observed, severity_index=None
                        ) -> jnp.ndarray:
    """The log-likelihood of each case (case,): its observed cells summed over observers and slots.

    Leave-one-breast-out needs it: a breast's cells share its bias mu[n], so they leave together.
    The sum over cases is :func:`log_likelihood`.
    """
    logit = cell_logits(case_bias, severity_effect, observer_effect, severity_index)
    return jnp.sum(jnp.where(observed, prediction * logit - jax.nn.softplus(logit), 0.0), axis=(0, 1))
