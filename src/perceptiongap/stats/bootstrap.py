"""Stratified case bootstrap as resampling counts, and the seeds that make it reproducible.

A replicate resamples each stratum of cases (e.g. malignant breasts of one subgroup; all
non-malignant breasts) with replacement to its own size, so every replicate keeps the numbers of
positives and negatives of the data. A replicate is held as a vector of counts (how often each
case was drawn), so a statistic over all replicates is one matrix product, with no loop over
replicates.

Each block of cases gets its own generator derived from the user's seed and the block's name
(:func:`derived_rng`): its replicates do not depend on which other blocks the study has or in which
order they are processed.
"""

from __future__ import annotations

import functools
import hashlib

import numpy as np

__all__ = ["derived_rng", "one_blas_thread", "percentile_interval", "stratified_counts"]


def one_blas_thread(function):
    """Run ``function`` with BLAS limited to one thread.

    The bootstrap's products are many and small (replicates x a few hundred breasts); OpenBLAS's
    threads cost more than they give there (``perceptiongap accuracy`` on the release, 500
    replicates: 10.6 s of CPU and 13 s wall with its threads on a loaded 2-core machine, 2.8 s and
    3.4 s with one).
    """

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1, user_api="blas"):
            return function(*args, **kwargs)

    return wrapper


def derived_rng(seed: int, *key: object) -> np.random.Generator:
    """A generator seeded by ``seed`` and a stable hash of ``key`` (strings, numbers, bytes)."""
    text = "\x1f".join(k.hex() if isinstance(k, bytes) else repr(k) for k in key).encode("utf-8")
    words = np.frombuffer(hashlib.sha256(text).digest()[:16], dtype=np.uint32)
    return np.random.default_rng(np.random.SeedSequence([int(seed), *(int(w) for w in words)]))


def stratified_counts(strata: np.ndarray, n_bootstrap: int, rng: np.random.Generator) -> np.ndarray:
    """(n, n_bootstrap) resampling counts: each stratum resampled with replacement to its own size.

    ``strata`` (n,) labels the cases; column b says how many times each case was drawn in replicate
    b. Case-major and float32 (counts and their sums up to 2**24 are exact), so that selecting the
    cases of a subgroup copies contiguous rows and products run at single precision speed.
    """
    strata = np.asarray(strata)
    counts = np.zeros((strata.size, n_bootstrap), dtype=np.float32)
    for label in np.unique(strata):  # a loop over the few strata; replicates are drawn at once
        members = np.flatnonzero(strata == label)
        size = members.size
        draws = rng.integers(0, size, size=(n_bootstrap, size))
        draws += np.arange(n_bootstrap)[:, None] * size  # one bincount for all replicates
        drawn = np.bincount(draws.ravel(), minlength=n_bootstrap * size).reshape(n_bootstrap, size)
        counts[members] = drawn.T
    return counts


def percentile_interval(replicates: np.ndarray, confidence: float = 0.95,
                        axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval (low, high) along ``axis``; replicates that are NaN are ignored.

    NaN where every replicate is NaN (a statistic undefined in the data).
    """
    replicates = np.moveaxis(np.asarray(replicates, dtype=float), axis, 0)
    tail = (1.0 - confidence) / 2.0
    # One sort for every statistic at once (NaN sorts last), then numpy's default "linear" quantile
    # of each column's defined replicates: np.nanquantile does the same one column at a time.
    ordered = np.sort(replicates, axis=0)
    defined = (~np.isnan(replicates)).sum(axis=0)
    finite = defined > 0
    bounds = []
    for q in (tail, 1.0 - tail):
        position = (np.maximum(defined, 1) - 1) * q  # numpy's "linear" virtual index
        below = np.floor(position).astype(np.intp)
        above = np.minimum(below + 1, np.maximum(defined, 1) - 1)
        a = np.take_along_axis(ordered, below[None], axis=0)[0]
        b = np.take_along_axis(ordered, above[None], axis=0)[0]
        t = position - below
        value = a + (b - a) * t  # numpy's lerp, including its choice of end for t >= 0.5
        value = np.where(t >= 0.5, b - (b - a) * (1 - t), value)
        bounds.append(np.where(finite, value, np.nan))
    return bounds[0], bounds[1]
