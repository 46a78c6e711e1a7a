"""The reference network's known behaviour: specks raise its score, low-pass filtering lowers it."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from perceptiongap.predict.plugin import VIEWS
from perceptiongap.reference import REFERENCE_SCORE, network, probability, speck_score, synthetic_exam
from perceptiongap.vocabulary import PAPER_CUTOFFS_PER_MM

# The sample exam's spacing is not recorded; 0.07 mm is typical of screening mammograms.
SAMPLE_PIXEL_MM = 0.07


def gaussian_lowpasses(image, pixel_mm, cutoffs_per_mm):
    """Plain physical Gaussian low-pass written for the test (real FFT in float64)."""
    height, width = image.shape
    fy = np.fft.fftfreq(height, d=pixel_mm)[:, None]
    fx = np.fft.rfftfreq(width, d=pixel_mm)[None, :]
    spectrum = np.fft.rfft2(image.astype(float))
    for cutoff in cutoffs_per_mm:
        yield np.fft.irfft2(spectrum * np.exp(-(fy**2 + fx**2) / (2 * cutoff**2)), s=image.shape)


def scores_by_severity(image, pixel_mm):
    return [speck_score(image, pixel_mm)] + [
        speck_score(filtered, pixel_mm) for filtered in gaussian_lowpasses(image, pixel_mm, PAPER_CUTOFFS_PER_MM)
    ]


@pytest.mark.slow
def test_score_falls_with_every_severity_on_the_sample_exam(exam_dir):
    for view in VIEWS:
        image = np.asarray(Image.open(exam_dir / f"0_{view}.png")).astype(np.float32)
        scores = np.array(scores_by_severity(image, SAMPLE_PIXEL_MM))
        assert np.all(np.diff(scores) <= 1e-9 * scores[0]), (view, scores)
        assert scores[-1] < 0.3 * scores[0], (view, scores)


def test_specks_raise_the_score_and_low_pass_filtering_removes_them():
    rng = np.random.default_rng(0)
    exam = synthetic_exam((300, 240), 0.07, (6, 0), rng)
    with_specks = np.array(scores_by_severity(exam["L-CC"].astype(np.float32), 0.07))
    without = np.array(scores_by_severity(exam["R-CC"].astype(np.float32), 0.07))
    assert with_specks[0] > 3 * without[0]
    assert np.all(np.diff(with_specks) <= 1e-9 * with_specks[0])
    # At 4 mm the specks are gone: both breasts look alike.
    assert with_specks[-1] == pytest.approx(without[-1], rel=0.5)


def test_network_predicts_per_breast_and_is_invariant_to_the_intensity_unit():
    rng = np.random.default_rng(1)
    left_specks = {v: (a.astype(np.float32), 0.07) for v, a in synthetic_exam((300, 240), 0.07, (6, 0), rng).items()}
    right_specks = {v: (a.astype(np.float32), 0.07) for v, a in synthetic_exam((300, 240), 0.07, (0, 6), rng).items()}
    rescaled = {v: (3.0 * image + 100.0, mm) for v, (image, mm) in left_specks.items()}
    predictions = network([left_specks, right_specks, rescaled])
    assert predictions.shape == (3, 2)
    assert np.all((predictions > 0) & (predictions < 1))
    assert predictions[0, 0] > predictions[0, 1] + 0.3
    assert predictions[1, 1] > predictions[1, 0] + 0.3
    np.testing.assert_allclose(predictions[2], predictions[0], rtol=1e-4)
    np.testing.assert_array_equal(network([left_specks]), predictions[:1])  # deterministic, batch-independent
    assert network([]).shape == (0, 2)


def test_probability_is_a_monotone_logistic_of_the_log_score():
    assert probability(REFERENCE_SCORE) == pytest.approx(0.5)
    assert probability(0.0) == 0.0
    assert np.all(np.diff(probability(np.linspace(0.01, 2, 50))) > 0)


def test_non_square_pixels_scale_the_filters_per_axis():
    rng = np.random.default_rng(2)
    image = synthetic_exam((300, 240), 0.07, (6, 0), rng)["L-CC"].astype(np.float32)
    # Doubling the rows of an image with half the row spacing describes the same breast.
    stretched = np.repeat(image, 2, axis=0)
    assert speck_score(stretched, (0.035, 0.07)) == pytest.approx(speck_score(image, 0.07), rel=0.25)
