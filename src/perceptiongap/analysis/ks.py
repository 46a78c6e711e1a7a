"""The two-sample Kolmogorov-Smirnov statistic for many rows at once."""

from __future__ import annotations

import math

import numpy as np

#: Up to this sample size scipy's default (``method="auto"``) is exact, and rounds the statistic to
#: a multiple of 1 / lcm(n1, n2); beyond it scipy returns the floating-point ECDF difference.
_SCIPY_MAX_EXACT_N = 10_000


def ks_statistic(values: np.ndarray, positive: np.ndarray, negative: np.ndarray) -> np.ndarray:
    """Two-sample KS statistic between ``values[..., positive]`` and ``values[..., negative]``.

    ``values`` has shape (..., n); ``positive`` and ``negative`` are boolean masks of shape (n,)
    selecting the two samples along the last axis. Returns an array of shape ``values.shape[:-1]``
    equal to ``scipy.stats.ks_2samp(sample1, sample2).statistic`` row by row, bit for bit, ties
    included: the largest |ECDF1 - ECDF2| over the pooled values, each ECDF evaluated after the
    last of its ties (computed in integers, as counts over the common denominator).
    NaN where a sample is empty or a row holds NaN.
    """
    values = np.asarray(values, dtype=np.float64)
    positive = np.asarray(positive, dtype=bool)
    negative = np.asarray(negative, dtype=bool)
    if positive.shape != values.shape[-1:] or negative.shape != values.shape[-1:]:
        raise ValueError(f"masks of shape {positive.shape}, {negative.shape} do not match values {values.shape}")
    n_positive, n_negative = int(positive.sum()), int(negative.sum())
    if n_positive == 0 or n_negative == 0:
        return np.full(values.shape[:-1], np.nan)

    pooled = np.concatenate([values[..., positive], values[..., negative]], axis=-1)
    order = np.argsort(pooled, axis=-1, kind="stable")
    ordered = np.take_along_axis(pooled, order, axis=-1)
    positives_so_far = np.cumsum(order < n_positive, axis=-1)
    negatives_so_far = np.arange(1, n_positive + n_negative + 1) - positives_so_far
    # Within a run of tied values only its last position is an ECDF value.
    last_of_ties = np.ones(ordered.shape, dtype=bool)
    last_of_ties[..., :-1] = ordered[..., 1:] != ordered[..., :-1]
    if max(n_positive, n_negative) <= _SCIPY_MAX_EXACT_N:
        # scipy's exact regime returns h / lcm(n1, n2) for the integer h = |k1 n2 - k2 n1| / gcd.
        gcd = math.gcd(n_positive, n_negative)
        numerator = np.abs(positives_so_far * (n_negative // gcd) - negatives_so_far * (n_positive // gcd))
        statistic = np.max(np.where(last_of_ties, numerator, 0), axis=-1) / ((n_positive // gcd) * n_negative)
    else:
        difference = np.abs(positives_so_far / n_positive - negatives_so_far / n_negative)
        statistic = np.max(np.where(last_of_ties, difference, 0.0), axis=-1)
    return np.where(np.isnan(pooled).any(axis=-1), np.nan, statistic)
