"""A fit's randomness: a JAX PRNG key, or an integer seed as a convenience.

Every fit takes either ``key`` (a JAX PRNG key, raw ``jax.random.PRNGKey(n)`` or typed
``jax.random.key(n)``) or ``seed`` (an int, used as ``jax.random.PRNGKey(seed)``). The posterior
records which: attribute ``seed`` is the seed, or -1 when a key was given, in which case
attribute ``prng_key`` holds the key's data (two uint32 words for the default generator), so that
the fit can be repeated exactly either way.
"""

from __future__ import annotations

import jax
import numpy as np

__all__ = ["fit_key"]


def fit_key(seed: int | None, key: jax.Array | None) -> tuple[jax.Array, int, dict]:
    """``(key, seed attribute, extra attributes)`` from exactly one of ``seed`` and ``key``."""
    if (seed is None) == (key is None):
        raise TypeError("give a fit either seed (an int) or key (a JAX PRNG key), not both or neither")
    if key is None:
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise TypeError(f"seed must be an int, got {type(seed).__name__}")
        return jax.random.PRNGKey(int(seed)), int(seed), {}
    return key, -1, {"prng_key": np.asarray(jax.random.key_data(key)).astype(np.int64)}
