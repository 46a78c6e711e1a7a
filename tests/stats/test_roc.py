"""The empirical AUC: equal to scikit-learn's, weighted for the bootstrap, left-one-out for the jackknife."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from perceptiongap.stats.roc import auc_jackknife, weighted_auc, weighted_aucs

scores = st.lists(st.integers(0, 6), min_size=1, max_size=25)  # small integers: many ties


@settings(max_examples=60, deadline=None)
@given(positives=scores, negatives=scores)
def test_auc_equals_sklearn_with_ties(positives, negatives):
    truth = np.r_[np.ones(len(positives)), np.zeros(len(negatives))]
    expected = roc_auc_score(truth, np.r_[positives, negatives])
    assert weighted_auc(np.array(positives, float), np.array(negatives, float)) == pytest.approx(expected, abs=1e-12)


def test_weights_count_cases_as_if_repeated():
    rng = np.random.default_rng(0)
    positives, negatives = rng.integers(0, 4, 7).astype(float), rng.integers(0, 4, 9).astype(float)
    w1, w0 = rng.integers(0, 3, (4, 7)), rng.integers(0, 3, (4, 9))
    w1[:, 0] += 1
    w0[:, 0] += 1  # every replicate keeps a positive and a negative
    aucs = weighted_auc(positives, negatives, w1, w0)
    for b in range(4):
        repeated_p, repeated_n = np.repeat(positives, w1[b]), np.repeat(negatives, w0[b])
        truth = np.r_[np.ones(repeated_p.size), np.zeros(repeated_n.size)]
        assert aucs[b] == pytest.approx(roc_auc_score(truth, np.r_[repeated_p, repeated_n]))


def test_a_replicate_without_negatives_has_no_auc():
    aucs = weighted_auc(np.array([1.0, 2.0]), np.array([0.0]), np.ones((2, 2)), np.array([[1.0], [0.0]]))
    assert aucs[0] == 1.0 and np.isnan(aucs[1])


def test_jackknife_works_over_leading_axes():
    rng = np.random.default_rng(1)
    truth = np.r_[np.zeros(6, int), np.ones(5, int)]
    many = rng.normal(size=(2, 3, truth.size)) + truth
    aucs, loo = auc_jackknife(truth, many)
    assert aucs.shape == (2, 3) and loo.shape == (2, 3, truth.size)
    for i in range(2):
        for j in range(3):
            assert aucs[i, j] == pytest.approx(roc_auc_score(truth, many[i, j]))
            assert loo[i, j, 0] == pytest.approx(roc_auc_score(truth[1:], many[i, j, 1:]))


@settings(max_examples=40, deadline=None)
@given(sets=st.lists(scores, min_size=1, max_size=3), negatives=scores, seed=st.integers(0, 2**16))
def test_several_positive_sets_against_shared_negatives_equal_sklearn_on_the_repeated_cases(sets, negatives, seed):
    """The bootstrap's form: many positive sets, one set of negatives, integer weights per replicate."""
    rng = np.random.default_rng(seed)
    negative_scores = np.array(negatives, float)
    negative_weights = rng.integers(0, 3, (negative_scores.size, 3)).astype(np.float32)
    negative_weights[0] += 1  # every replicate keeps a negative
    positives = []
    for values in sets:
        weights = rng.integers(0, 3, (len(values), 3)).astype(np.float32)
        weights[0] += 1
        positives.append((np.array(values, float), weights))
    for (positive_scores, positive_weights), aucs in zip(positives, weighted_aucs(negative_scores, negative_weights,
                                                                                  positives)):
        for b in range(3):
            repeated_p = np.repeat(positive_scores, positive_weights[:, b].astype(int))
            repeated_n = np.repeat(negative_scores, negative_weights[:, b].astype(int))
            truth = np.r_[np.ones(repeated_p.size), np.zeros(repeated_n.size)]
            assert aucs[b] == pytest.approx(roc_auc_score(truth, np.r_[repeated_p, repeated_n]), abs=1e-12)
