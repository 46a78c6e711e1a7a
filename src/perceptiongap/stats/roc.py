"""The empirical ROC area (Mann-Whitney), weighted for the bootstrap and left-one-out for the jackknife.

The empirical AUC of scores ``x`` (positives) against ``y`` (negatives) is the share of
(positive, negative) pairs that the score orders correctly, a tie counting one half:
``mean(psi(x_i, y_j))`` with ``psi = 1`` if ``x > y``, ``1/2`` if equal, ``0`` otherwise. It equals
``sklearn.metrics.roc_auc_score`` (tested).

Both functions here are vectorised: :func:`weighted_auc` takes a matrix of case weights (one row
per bootstrap replicate) and never loops over replicates; :func:`auc_jackknife` computes every
leave-one-case-out AUC of every reader and modality at once from midranks, in O(n log n) per
reader instead of refitting the AUC n times.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse
from scipy.stats import rankdata

__all__ = ["auc_jackknife", "weighted_auc", "weighted_aucs"]


def weighted_auc(
    positive_scores: np.ndarray,
    negative_scores: np.ndarray,
    positive_weights: np.ndarray | None = None,
    negative_weights: np.ndarray | None = None,
) -> np.ndarray | float:
    """Empirical AUC with case weights (ties count one half).

    ``positive_scores`` (n1,) and ``negative_scores`` (n0,); ``positive_weights`` (B, n1) and
    ``negative_weights`` (B, n0) are non-negative case weights, one row per replicate (bootstrap
    resampling counts). Returns the B weighted AUCs
    ``sum_ij w1_i w0_j psi(x_i, y_j) / (sum_i w1_i * sum_j w0_j)`` (NaN where a row has no positive
    or no negative weight), or one float when no weights are given.
    """
    single = positive_weights is None and negative_weights is None
    positive_scores = np.asarray(positive_scores, dtype=float)
    negative_scores = np.asarray(negative_scores, dtype=float)
    if positive_weights is None:
        positive_weights = np.ones((1, positive_scores.size))
    if negative_weights is None:
        negative_weights = np.ones((1, negative_scores.size))
    positive_weights = np.atleast_2d(np.asarray(positive_weights, dtype=float)).T
    negative_weights = np.atleast_2d(np.asarray(negative_weights, dtype=float)).T
    (auc,) = weighted_aucs(negative_scores, negative_weights, [(positive_scores, positive_weights)])
    return float(auc[0]) if single else auc


def weighted_aucs(
    negative_scores: np.ndarray,
    negative_weights: np.ndarray,
    positives: list[tuple[np.ndarray, np.ndarray]],
) -> list[np.ndarray]:
    """:func:`weighted_auc` of several positive sets against the same negatives, sharing their sort.

    Weights here are case-major: ``negative_weights`` (n0, B); ``positives`` holds (scores (n1,),
    weights (n1, B)) pairs. Returns one (B,) array per pair.
    """
    negative_scores = np.asarray(negative_scores, dtype=float)
    negative_weights = np.asarray(negative_weights)
    positives = [(np.asarray(scores, dtype=float), np.asarray(weights)) for scores, weights in positives]
    # The distinct positive scores ("levels") are all the comparisons need. Each negative falls in a
    # slot: 2k if its score lies strictly between levels k-1 and k, 2k + 1 if it equals level k.
    levels = np.unique(np.concatenate([scores for scores, _ in positives])) if positives else np.empty(0)
    n_levels, n_slots = levels.size, 2 * levels.size + 1
    below = np.searchsorted(levels, negative_scores, side="left")
    tied = (below < n_levels) & (levels[np.minimum(below, max(n_levels - 1, 0))] == negative_scores
                                 if n_levels else np.zeros(below.size, dtype=bool))
    slot = 2 * below + tied
    # Negative weight per slot and replicate: one sparse one-hot product, which reads each
    # negative's row of weights once (no sort of the weights, no running sum over all negatives).
    one_hot = sparse.csc_array((np.ones(slot.size, dtype=negative_weights.dtype), slot, np.arange(slot.size + 1)),
                               shape=(n_slots, slot.size))  # column j: a single 1 in row slot[j]
    slot_weights = np.asarray(one_hot @ negative_weights)  # (slots, B)
    total_negative = slot_weights.sum(axis=0, dtype=float)
    # Twice the placement of level k: 2 x (weight strictly below it: slots 0 .. 2k) + (weight tied: slot 2k + 1).
    # Whole numbers for integer weights, so exact in float32 (below 2**24).
    slots = np.arange(n_slots)
    twice = (2 * (slots[None, :] <= 2 * np.arange(n_levels)[:, None])
             + (slots[None, :] == 2 * np.arange(n_levels)[:, None] + 1)).astype(slot_weights.dtype)
    twice_placement_by_level = twice @ slot_weights  # (levels, B)
    results = []
    for positive_scores, positive_weights in positives:
        twice_placement = twice_placement_by_level[np.searchsorted(levels, positive_scores)]
        numerator = np.einsum("ib,ib->b", positive_weights, twice_placement, dtype=float) / 2.0
        denominator = positive_weights.sum(axis=0, dtype=float) * total_negative
        defined = denominator > 0
        results.append(np.where(defined, numerator / np.where(defined, denominator, 1.0), np.nan))
    return results


def auc_jackknife(truth: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUCs and their leave-one-case-out values, for any number of readers, modalities and studies.

    ``truth`` (cases,) in {0, 1}; ``scores`` (..., cases) with the case axis last (leading axes:
    studies, readers, modalities, in any arrangement). Returns ``auc`` (...,) and ``loo`` (...,
    cases), where ``loo[..., k]`` is the AUC with case k left out.

    From midranks: a positive's placement ``V10`` (share of negatives below it, ties one half) is its
    rank among all cases minus its rank among positives, over n0; a negative's placement ``V01``
    (share of positives above it) likewise. The AUC is the mean of either, and leaving out positive
    i gives ``(n1 AUC - V10_i) / (n1 - 1)``, negative j ``(n0 AUC - V01_j) / (n0 - 1)``.
    """
    truth = np.asarray(truth).astype(bool)
    scores = np.asarray(scores, dtype=float)
    n1, n0 = int(truth.sum()), int((~truth).sum())
    ranks = rankdata(scores, axis=-1)
    positive_ranks = rankdata(scores[..., truth], axis=-1)
    negative_ranks = rankdata(scores[..., ~truth], axis=-1)
    placement_positive = (ranks[..., truth] - positive_ranks) / n0
    placement_negative = 1.0 - (ranks[..., ~truth] - negative_ranks) / n1
    auc = placement_positive.mean(axis=-1)
    loo = np.empty_like(scores)
    loo[..., truth] = (n1 * auc[..., None] - placement_positive) / (n1 - 1)
    loo[..., ~truth] = (n0 * auc[..., None] - placement_negative) / (n0 - 1)
    return auc, loo
