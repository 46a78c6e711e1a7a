"""The one perturbation path: each version is the filtered image, blended into the original only
inside or outside the ROI boxes, from one forward FFT per image."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.fft
from PIL import Image

from perceptiongap.errors import InputError
from perceptiongap.perturb import ENTIRE, Region, RoiBox, lowpass, perturb_image, read_image

CUTOFFS = (math.inf, 3.0, 1.0, 0.25)


@pytest.fixture
def png(tmp_path, make_breast):
    path = tmp_path / "ex1_L-CC.png"
    Image.fromarray(make_breast((120, 90), seed=3)).save(path)
    return path


def boxes(annotator: str, *corners) -> tuple[RoiBox, ...]:
    return tuple(RoiBox("ex1", "L-CC", annotator, *corner) for corner in corners)


def test_entire_versions_are_the_filter_at_each_cutoff(png):
    image = perturb_image(png, CUTOFFS, pixel_mm=0.1)
    original = read_image(png, 0.1).pixels
    expected = lowpass(original, 0.1, CUTOFFS)
    versions = list(image)
    assert [(region, cutoff) for region, cutoff, _ in versions] == [(ENTIRE, c) for c in CUTOFFS]
    for (_, _, pixels), want in zip(versions, expected):
        assert pixels.dtype == np.uint16 and pixels.shape == (120, 90)
        np.testing.assert_array_equal(pixels, want)
    np.testing.assert_array_equal(image.pixels(math.inf), original)
    assert image.original.pixel_mm == (0.1, 0.1) and len(image) == len(CUTOFFS)


def test_roi_regions_filter_only_inside_or_only_outside_the_union_of_the_boxes(png):
    drawn = boxes("a", (10, 20, 40, 60), (30, 50, 70, 100))  # two overlapping boxes
    regions = [Region("roi_interior", "a", drawn), Region("roi_exterior", "a", drawn)]
    image = perturb_image(png, CUTOFFS, pixel_mm=0.1, variant="release", regions=regions)
    original = read_image(png, 0.1).pixels
    filtered = lowpass(original, 0.1, CUTOFFS, variant="release")
    inside = np.zeros(original.shape, dtype=bool)
    inside[20:60, 10:40] = inside[50:100, 30:70] = True
    seen = 0
    for region, cutoff, pixels in image:
        if math.isinf(cutoff):
            np.testing.assert_array_equal(pixels, original)  # unperturbed whatever the region
            continue
        low = filtered[CUTOFFS.index(cutoff)]
        filtered_part = inside if region.scheme == "roi_interior" else ~inside
        np.testing.assert_array_equal(pixels[filtered_part], low[filtered_part])
        np.testing.assert_array_equal(pixels[~filtered_part], original[~filtered_part])
        seen += 1
    assert seen == 2 * 3


def test_a_feathered_edge_ramps_inside_the_filtered_region_only(png):
    drawn = boxes("a", (20, 30, 60, 90))
    image = perturb_image(png, (1.0,), pixel_mm=0.1, regions=[Region("roi_exterior", "a", drawn)], feather_mm=1.0)
    (_, _, pixels), = list(image)
    original = read_image(png, 0.1).pixels
    low = lowpass(original, 0.1, [1.0])[0]
    np.testing.assert_array_equal(pixels[30:90, 20:60], original[30:90, 20:60])  # kept exactly
    assert np.array_equal(pixels[0:5, :], low[0:5, :])  # 1 mm = 10 pixels away: fully filtered
    mixed = pixels[30:90, 15].astype(float)  # 0.5 mm left of the box: half-way between
    expected = 0.5 * original[30:90, 15] + 0.5 * low[30:90, 15]
    np.testing.assert_allclose(mixed, expected, atol=1.0)


def test_one_forward_fft_per_image_for_every_cutoff_and_region(png, monkeypatch):
    calls = []
    forward = scipy.fft.rfft2

    def counted(*args, **kwargs):
        calls.append(1)
        return forward(*args, **kwargs)

    monkeypatch.setattr(scipy.fft, "rfft2", counted)
    regions = [ENTIRE, Region("roi_interior", "a", boxes("a", (1, 1, 9, 9))), Region("roi_exterior", "b")]
    assert len(list(perturb_image(png, CUTOFFS, pixel_mm=0.1, regions=regions))) == 3 * len(CUTOFFS)
    assert len(calls) == 1


def test_bad_requests_name_the_file_or_the_field(png):
    with pytest.raises(InputError, match=r"ex1_L-CC\.png: ROI exam 'ex1' .* is outside the 90 x 120"):
        perturb_image(png, CUTOFFS, pixel_mm=0.1, regions=[Region("roi_interior", "a", boxes("a", (80, 0, 95, 10)))])
    with pytest.raises(InputError, match=r"ex1_L-CC\.png: cut-off 6 cycles/mm is above the Nyquist frequency 5"):
        perturb_image(png, (6.0,), pixel_mm=0.1)
    with pytest.raises(InputError, match="^variant: 'blur' is not one of physical, release"):
        perturb_image(png, CUTOFFS, pixel_mm=0.1, variant="blur")
    with pytest.raises(InputError, match="^cutoffs_per_mm: no cut-offs given"):
        perturb_image(png, (), pixel_mm=0.1)
    with pytest.raises(InputError, match="^scheme: 'inside' is not one of"):
        Region("inside")
    with pytest.raises(InputError, match="^scheme: the entire scheme takes no ROI boxes"):
        Region("entire", "a", boxes("a", (1, 1, 2, 2)))
    with pytest.raises(InputError, match="^cutoff_per_mm: cut-off 2.0 was not filtered"):
        perturb_image(png, CUTOFFS, pixel_mm=0.1).pixels(2.0)
