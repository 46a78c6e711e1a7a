"""Posterior predictive probabilities (METHOD §6) for every observer x severity x case.

For observer r, severity s and case n in subgroup g, the posterior predictive probability is the
mean over all posterior draws of ``sigmoid(b[g] + mu[n] + gamma[s, g] + nu[r, g])``, computed
for every cell whether or not it was observed. A variant's severity effect takes the case's
label or the observer into account where its posterior says so
(:func:`~perceptiongap.analysis.posterior.severity_effect_draws`).

The kernel runs in JAX (float32) as a loop over draws compiled by XLA. It uses
``sigmoid(x + y) = exp(x) / (exp(x) + exp(-y))`` with x = gamma[s, g] and y = b[g] + mu[n] +
nu[r, g], so that each draw needs exponentials of S x G and O x C values only, and one addition
and one division per (observer, severity, case) cell. Overflow of exp(-y) gives the correct limit
0; exp(x) is kept finite by falling back to a plain sigmoid when |gamma| is large.
"""

from __future__ import annotations

import functools

import arviz as az
import numpy as np
import xarray as xr

from perceptiongap.analysis.posterior import (
    case_bias_draws,
    draws,
    posterior_cases,
    posterior_group,
    severity_effect_draws,
    subgroup_index,
)
from perceptiongap.model.posterior_io import PREDICTIVE_MEAN_GROUP

#: Draws summed per loop step: fewer, larger steps amortise XLA's per-iteration cost.
_DRAWS_PER_STEP = 2
#: Observers per kernel call (the release's network groups have 5, its radiologists 10).
_OBSERVER_BLOCK = 5
#: The subgroup axis is padded to a multiple of this.
_SUBGROUP_PADDING = 8
#: Above this |gamma| exp(gamma) could overflow float32 (e^88); use the plain sigmoid instead.
_MAX_FACTORED_GAMMA = 40.0


@functools.cache
def _kernel(factored: bool):
    """A jitted function (b, mu, gamma, nu, case_subgroup, case_column) -> mean sigmoid, shape (O, S, C).

    gamma is (draw, S, K) or, per observer, (draw, O, S, K); case n's column of it is case_column[n].
    """
    import jax
    import jax.numpy as jnp

    def draw_term(b, mu, gamma, nu, case_subgroup, case_column):
        # One draw: b (G,), mu (C,), gamma (S, K) or (O, S, K), nu (O, G) -> (O, S, C).
        case_logit = b[case_subgroup] + mu  # (C,)
        observer_logit = case_logit[None, :] + nu[:, case_subgroup]  # (O, C)
        severity = gamma[..., case_column]  # (S, C) or (O, S, C)
        severity = severity if severity.ndim == 3 else severity[None]
        if factored:
            severity_factor = jnp.exp(severity)
            observer_factor = jnp.exp(-observer_logit)  # (O, C)
            return severity_factor / (severity_factor + observer_factor[:, None])
        return jax.nn.sigmoid(observer_logit[:, None] + severity)

    @jax.jit
    def kernel(b, mu, gamma, nu, case_subgroup, case_column):
        n_draws = b.shape[0]
        shape = (nu.shape[1], gamma.shape[-2], mu.shape[1])

        def add_draws(first, count, total):
            for offset in range(count):
                i = first + offset
                total = total + draw_term(b[i], mu[i], gamma[i], nu[i], case_subgroup, case_column)
            return total

        n_steps = n_draws // _DRAWS_PER_STEP
        total = jax.lax.fori_loop(
            0, n_steps, lambda k, t: add_draws(k * _DRAWS_PER_STEP, _DRAWS_PER_STEP, t),
            jnp.zeros(shape, jnp.float32),
        )
        total = jax.lax.fori_loop(n_steps * _DRAWS_PER_STEP, n_draws, lambda i, t: add_draws(i, 1, t), total)
        return total / n_draws

    return kernel


def mean_sigmoid(
    b: np.ndarray, mu: np.ndarray, gamma: np.ndarray, nu: np.ndarray, case_subgroup: np.ndarray,
    case_column: np.ndarray | None = None,
) -> np.ndarray:
    """Mean over draws of sigmoid(b[g] + mu[n] + gamma[s, k] + nu[r, g]) on NumPy arrays.

    Shapes: b (draw, G), mu (draw, C), gamma (draw, S, K) or per observer (draw, O, S, K), nu
    (draw, O, G); ``case_subgroup`` (C,) holds each case's subgroup index g, ``case_column`` (C,)
    its column k of gamma (default: g, K = G). Returns float64 (O, S, C), accurate to ~1e-6
    (float32 arithmetic).
    """
    import jax

    n_draws, n_subgroups = b.shape
    case_column = case_subgroup if case_column is None else case_column
    by_observer = gamma.ndim == 4
    if not (nu.shape[2] == n_subgroups and mu.shape[0] == gamma.shape[0] == nu.shape[0] == n_draws
            and (not by_observer or gamma.shape[1] == nu.shape[1])):
        raise ValueError(f"inconsistent shapes b {b.shape}, mu {mu.shape}, gamma {gamma.shape}, nu {nu.shape}")
    # Pad subgroups (and gamma's columns) and cut observers into fixed blocks, so that fits of
    # different sizes (5 or 10 observers, merged subgroups) reuse one compiled kernel; padded
    # entries are never indexed.
    def pad(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        padded = -(-x.shape[-1] // _SUBGROUP_PADDING) * _SUBGROUP_PADDING
        return np.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, padded - x.shape[-1])])

    kernel = _kernel(bool(np.all(np.abs(gamma) <= _MAX_FACTORED_GAMMA)))
    # device_put, unlike jnp.asarray, compiles nothing.
    shared = jax.device_put((pad(b), np.asarray(mu, dtype=np.float32)))
    gamma, nu = pad(gamma), pad(nu)
    index = jax.device_put((np.asarray(case_subgroup, dtype=np.int32), np.asarray(case_column, dtype=np.int32)))

    def block(array: np.ndarray, first: int) -> object:
        return jax.device_put(np.ascontiguousarray(array[:, first:first + _OBSERVER_BLOCK]))

    blocks = [
        kernel(*shared, block(gamma, first) if by_observer else jax.device_put(gamma), block(nu, first), *index)
        for first in range(0, nu.shape[1], _OBSERVER_BLOCK)
    ]
    return np.concatenate([np.asarray(block, dtype=np.float64) for block in blocks], axis=0)


def posterior_predictive(posterior: az.InferenceData) -> xr.DataArray:
    """Posterior predictive probability for every (observer, severity, case), observed or not.

    Returns a float64 DataArray with dims (observer, severity, case) and the posterior's coordinates
    (including ``exam`` and ``breast`` on case): the mean over all chains and draws. A compact posterior
    (without ``mu`` draws, :mod:`perceptiongap.results.compact`) gives the mean stored with it.
    """
    dataset = posterior_group(posterior)
    if "mu" not in dataset.data_vars and PREDICTIVE_MEAN_GROUP in posterior.groups():
        # A compact posterior of a results folder: the mean was computed by this function when the fit was saved.
        stored = getattr(posterior, PREDICTIVE_MEAN_GROUP)["mean"].astype(np.float64)
        return stored.rename("posterior_predictive").assign_attrs(dict(dataset.attrs))
    cases = posterior_cases(posterior)
    effects, column = severity_effect_draws(dataset, cases, np.float32)
    if "b_label" in dataset:  # a bias per label: pass each case's whole bias as mu, and b = 0
        mu = case_bias_draws(dataset, cases, np.float32)
        b = np.zeros_like(draws(dataset, "b", np.float32))
    else:
        mu, b = draws(dataset, "mu", np.float32), draws(dataset, "b", np.float32)
    values = mean_sigmoid(
        b,
        mu,
        effects,
        draws(dataset, "nu", np.float32),
        subgroup_index(dataset, cases.subgroup),
        column,
    )
    keep = {"observer", "severity", "case"}
    coords = {name: coord for name, coord in dataset.coords.items() if set(coord.dims) <= keep and coord.dims}
    return xr.DataArray(
        values, dims=("observer", "severity", "case"), coords=coords, name="posterior_predictive",
        attrs=dict(dataset.attrs),
    )
