"""Dirichlet calibration on simulated scores whose true calibration map is known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from perceptiongap.calibrate import (
    DirichletCalibrator,
    calibrate_observations,
    classwise_ece,
    fit_logistic_l2,
    reliability_panels,
)
from perceptiongap.errors import InputError

# True map: logit P(y = 1 | p) = A * log p - B * log(1 - p) + C: an over-confident, shifted network.
A, B, C = 0.6, 0.4, 0.5


def true_probability(p):
    logit = A * np.log(p) - B * np.log1p(-p) + C
    return 1.0 / (1.0 + np.exp(-logit))


def simulate(n, seed):
    rng = np.random.default_rng(seed)
    p = rng.beta(0.6, 0.9, size=n).clip(1e-6, 1 - 1e-6)
    y = (rng.random(n) < true_probability(p)).astype(int)
    return p, y


def ece_by_loop(y, p, n_bins):
    """Classwise ECE written out plainly: per class, per bin, weighted |accuracy - confidence|."""
    total = 0.0
    for k, pk in ((0, 1.0 - p), (1, p)):
        for b in range(n_bins):
            lo, hi = b / n_bins, (b + 1) / n_bins
            inside = [i for i in range(len(pk)) if (lo <= pk[i] < hi) or (b == n_bins - 1 and pk[i] == 1.0)]
            if not inside:
                continue
            frequency = sum(y[i] == k for i in inside) / len(inside)
            confidence = sum(pk[i] for i in inside) / len(inside)
            total += len(inside) / len(pk) * abs(frequency - confidence)
    return total / 2


def test_classwise_ece_matches_a_plain_loop():
    rng = np.random.default_rng(1)
    p = rng.random(500)
    p[:3] = [0.0, 1.0, 0.5]  # bin edges
    y = rng.integers(0, 2, 500)
    for n_bins in (1, 10, 15):
        assert classwise_ece(y, p, n_bins) == pytest.approx(ece_by_loop(y, p, n_bins), abs=1e-12)
    # The two-column form gives the same number as the binary shorthand.
    assert classwise_ece(y, np.column_stack([1 - p, p])) == pytest.approx(classwise_ece(y, p))


def test_classwise_ece_of_a_perfectly_calibrated_predictor_is_near_zero():
    rng = np.random.default_rng(2)
    p = rng.random(200_000)
    y = (rng.random(p.size) < p).astype(int)
    assert classwise_ece(y, p) < 0.005


def test_batched_newton_solver_matches_scikit_learn():
    p, y = simulate(3000, seed=9)
    features = np.column_stack([np.log(p), np.log1p(-p)])
    rng = np.random.default_rng(0)
    Cs = np.array([1e-4, 1e-2, 1.0, 1e4])
    masks = (rng.random((4, p.size)) < 0.8).astype(float)
    beta = fit_logistic_l2(features, y, Cs, masks)
    for C, mask, fitted in zip(Cs, masks, beta):
        train = mask.astype(bool)
        reference = LogisticRegression(C=C, tol=1e-10, max_iter=10_000).fit(features[train], y[train])
        np.testing.assert_allclose(fitted[:2], reference.coef_[0], atol=1e-4)
        assert fitted[2] == pytest.approx(reference.intercept_[0], abs=1e-4)


def test_batched_newton_solver_with_a_centre_matches_a_general_optimiser():
    from scipy.optimize import minimize

    p, y = simulate(500, seed=10)
    features = np.column_stack([np.log(p), np.log1p(-p)])
    design = np.column_stack([features, np.ones(p.size)])
    center = np.array([1.0, -1.0, 0.0])
    for C in (1e-3, 0.1, 10.0):
        def objective(beta):
            margin = design @ beta
            return C * np.sum(np.logaddexp(0, margin) - y * margin) + 0.5 * np.sum((beta - center) ** 2)

        reference = minimize(objective, center, method="BFGS", options={"gtol": 1e-9}).x
        fitted = fit_logistic_l2(features, y, np.array([C]), np.ones((1, p.size)), center=center,
                                 penalise_intercept=True)[0]
        np.testing.assert_allclose(fitted, reference, atol=1e-4)


def test_strongest_regularisation_means_identity_or_the_base_rate():
    p, y = simulate(2000, seed=11)
    trust_network = DirichletCalibrator(Cs=[1e-9]).fit(p, y)
    np.testing.assert_allclose(trust_network.predict_proba(p)[:, 1], p, atol=1e-5)
    # Shrinking towards zero instead leaves only the intercept: a constant at the base rate.
    constant = DirichletCalibrator(Cs=[1e-9], shrink_to="zero").fit(p, y)
    np.testing.assert_allclose(constant.predict_proba(p)[:, 1], y.mean(), atol=1e-5)


def test_dirichlet_calibration_recovers_a_known_map():
    p, y = simulate(10_000, seed=3)
    p_test, y_test = simulate(20_000, seed=4)
    calibrator = DirichletCalibrator(seed=0).fit(p, y)

    before = classwise_ece(y_test, p_test)
    after = classwise_ece(y_test, calibrator.predict_proba(p_test)[:, 1])
    assert before > 0.05
    assert after < 0.3 * before

    # The fitted map is close to the true one over the range of p, and so are its coefficients.
    grid = np.linspace(0.01, 0.99, 99)
    assert np.max(np.abs(calibrator.predict_proba(grid)[:, 1] - true_probability(grid))) < 0.03
    np.testing.assert_allclose(calibrator.coef_, [A, -B], atol=0.1)
    assert calibrator.intercept_ == pytest.approx(C, abs=0.1)
    assert calibrator.C_ in calibrator.Cs and calibrator.cv_ece_.shape == (len(calibrator.Cs),)


def test_calibration_is_deterministic_for_a_seed_and_follows_sklearn_conventions():
    p, y = simulate(1000, seed=5)
    first = DirichletCalibrator(seed=7).fit(p, y)
    second = DirichletCalibrator(seed=7).fit(p, y)
    np.testing.assert_array_equal(first.cv_ece_, second.cv_ece_)
    assert first.get_params()["seed"] == 7
    proba = first.predict_proba(p)
    assert proba.shape == (1000, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(first.predict(p), (proba[:, 1] > 0.5).astype(int))


def test_too_few_examples_of_a_class_is_refused():
    with pytest.raises(ValueError, match="at least 10 examples of each class"):
        DirichletCalibrator().fit(np.full(30, 0.5), np.r_[np.ones(5), np.zeros(25)])


def observations(exams, predictions, observer):
    return pd.DataFrame({
        "observer_group": "net", "observer": observer, "observer_kind": "machine", "exam": exams,
        "breast": "L", "severity_mm": 0.0, "scheme": "entire", "annotator": "", "prediction": predictions,
    }).astype({"exam": "string"})


def test_calibrate_observations_fits_one_map_per_observer():
    # Two networks with different miscalibrations: one map each, applied to their own test rows.
    p, y = simulate(1500, seed=6)
    exams = [f"e{i}" for i in range(p.size)]
    cases = pd.DataFrame({"exam": exams, "breast": "L", "label": np.where(y == 1, "malignant", "benign"),
                          "subgroup": "x"})
    squashed = p**3 / (p**3 + (1 - p) ** 3)  # seed1 is over-confident in a different way
    validation = pd.concat([observations(exams, p, "seed0"), observations(exams, squashed, "seed1")])
    test = validation.iloc[::-1].reset_index(drop=True)
    calibrated, maps = calibrate_observations(validation, cases, test)
    assert set(maps) == {("net", "seed0"), ("net", "seed1")}
    for observer in ("seed0", "seed1"):
        rows = (test["observer"] == observer).to_numpy()
        expected = maps[("net", observer)].predict_proba(test["prediction"].to_numpy()[rows])[:, 1]
        np.testing.assert_allclose(calibrated["prediction"].to_numpy()[rows], expected)
    pd.testing.assert_frame_equal(calibrated.drop(columns="prediction"), test.drop(columns="prediction"))


def test_calibrate_observations_names_an_observer_without_validation_rows():
    p, y = simulate(400, seed=8)
    exams = [f"e{i}" for i in range(p.size)]
    cases = pd.DataFrame({"exam": exams, "breast": "L", "label": np.where(y == 1, "malignant", "benign"),
                          "subgroup": "x"})
    validation = observations(exams, p, "seed0")
    with pytest.raises(InputError, match="observer='seed9' has no validation observations"):
        calibrate_observations(validation, cases, observations(exams, p, "seed9"), test_source="t.parquet")
    with pytest.raises(InputError, match="exam 'e0' breast 'L' has no label"):
        calibrate_observations(validation, cases.iloc[1:], validation)


def test_reliability_panels_take_each_groups_unperturbed_rows_with_their_labels():
    p, y = simulate(300, seed=9)
    exams = [f"e{i}" for i in range(p.size)]
    cases = pd.DataFrame({"exam": exams, "breast": "L", "label": np.where(y == 1, "malignant", "benign"),
                          "subgroup": "x"})
    unperturbed = observations(exams, p, "seed0")
    filtered = observations(exams, p / 2, "seed0").assign(severity_mm=4.0)
    other = observations(exams[:50], p[:50], "seed0").assign(observer_group="other")
    human = observations(exams[:10], np.round(p[:10]), "reader").assign(observer_group="readers",
                                                                        observer_kind="human")
    test = pd.concat([filtered, unperturbed, human, other], ignore_index=True)
    calibrated = test.assign(prediction=test["prediction"] ** 2)
    panels = reliability_panels(test, calibrated, cases)
    assert [title for title, *_ in panels] == ["net (unperturbed test images)", "other (unperturbed test images)"]
    _, labels, before, after = panels[0]
    np.testing.assert_array_equal(labels, y)
    np.testing.assert_array_equal(before, p)
    np.testing.assert_array_equal(after, p**2)
    with pytest.raises(InputError, match="^t.csv: column 'exam', row 1: exam 'e0' breast 'L' is not in Cases"):
        reliability_panels(test, calibrated, cases.iloc[1:], test_source="t.csv")
