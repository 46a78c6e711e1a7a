"""Posterior predictive probabilities (METHOD §6) for every observer x severity x case.

For observer r, severity s and case n in subgroup g, the posterior predictive probability is the
mean over all posterior draws of ``sigmoid(b[g] + mu[n] + gamma[s, g] + nu[r, g])``, computed
for every cell whether or not it was observed.

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

from perceptiongap.analysis.posterior import draws, posterior_cases, posterior_group, subgroup_index
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
    """A jitted function (b, mu, gamma, nu, case_subgroup) -> mean sigmoid, shape (O, S, C)."""
    import jax
    import jax.numpy as jnp

    def draw_term(b, mu, gamma, nu, case_subgroup):
        # One draw: b (G,), mu (C,), gamma (S, G), nu (O, G) -> (O, S, C).
        case_logit = b[case_subgroup] + mu  # (C,)
        observer_logit = case_logit[None, :] + nu[:, case_subgroup]  # (O, C)
        if factored:
            severity_factor = jnp.exp(gamma)[:, case_subgroup]  # (S, C)
            observer_factor = jnp.exp(-observer_logit)  # (O, C)
            return severity_factor[None] / (severity_factor[None] + observer_factor[:, None])
        return jax.nn.sigmoid(observer_logit[:, None] + gamma[:, case_subgroup][None])

    @jax.jit
    def kernel(b, mu, gamma, nu, case_subgroup):
        n_draws = b.shape[0]
        shape = (nu.shape[1], gamma.shape[1], mu.shape[1])

        def add_draws(first, count, total):
            for offset in range(count):
                i = first + offset
                total = total + draw_term(b[i], mu[i], gamma[i], nu[i], case_subgroup)
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
    b: np.ndarray, mu: np.ndarray, gamma: np.ndarray, nu: np.ndarray, case_subgroup: np.ndarray
) -> np.ndarray:
    """Mean over draws of sigmoid(b[g] + mu[n] + gamma[s, g] + nu[r, g]) on NumPy arrays.

    Shapes: b (draw, G), mu (draw, C), gamma (draw, S, G), nu (draw, O, G); ``case_subgroup``
    (C,) holds each case's subgroup index g. Returns float64 (O, S, C), accurate to ~1e-6
    (float32 arithmetic).
    """
    import jax

    n_draws, n_subgroups = b.shape
    if not (gamma.shape[2] == nu.shape[2] == n_subgroups and mu.shape[0] == gamma.shape[0] == nu.shape[0] == n_draws):
        raise ValueError(f"inconsistent shapes b {b.shape}, mu {mu.shape}, gamma {gamma.shape}, nu {nu.shape}")
    # Pad subgroups and cut observers into fixed blocks, so that fits of different sizes (5 or 10
    # observers, merged subgroups) reuse one compiled kernel; padded subgroups are never indexed.
    padded = -(-n_subgroups // _SUBGROUP_PADDING) * _SUBGROUP_PADDING

    def pad(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        return np.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, padded - n_subgroups)])

    kernel = _kernel(bool(np.all(np.abs(gamma) <= _MAX_FACTORED_GAMMA)))
    # device_put, unlike jnp.asarray, compiles nothing.
    shared = jax.device_put((pad(b), np.asarray(mu, dtype=np.float32), pad(gamma)))
    nu = pad(nu)
    index = jax.device_put(np.asarray(case_subgroup, dtype=np.int32))
    blocks = [
        kernel(*shared, jax.device_put(np.ascontiguousarray(nu[:, first:first + _OBSERVER_BLOCK])), index)
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
    values = mean_sigmoid(
        draws(dataset, "b", np.float32),
        draws(dataset, "mu", np.float32),
        draws(dataset, "gamma", np.float32),
        draws(dataset, "nu", np.float32),
        subgroup_index(dataset, cases.subgroup),
    )
    keep = {"observer", "severity", "case"}
    coords = {name: coord for name, coord in dataset.coords.items() if set(coord.dims) <= keep and coord.dims}
    return xr.DataArray(
        values, dims=("observer", "severity", "case"), coords=coords, name="posterior_predictive",
        attrs=dict(dataset.attrs),
    )
