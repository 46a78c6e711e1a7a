"""The low-pass filters against an independent implementation of METHOD §1 and analytic truth."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from perceptiongap.errors import InputError
from perceptiongap.perturb import lowpass, parse_pixel_mm
from perceptiongap.vocabulary import PAPER_CUTOFFS_PER_MM

#: The shared exam records no pixel spacing; 0.1 mm is a typical mammography pixel and keeps
#: every paper cut-off representable for the release variant (r = 0.6 min(H, W) at 6 cycles/mm).
RELEASE_PIXEL_MM = 0.1


def release_reference(image: np.ndarray, cutoffs: list[float], beta: float) -> np.ndarray:
    """METHOD §1 literally: full complex float64 FFT, shifted spectrum, index-space mask."""
    height, width = image.shape
    spectrum = np.fft.fftshift(np.fft.fft2(image.astype(np.float64))) / np.sqrt(height * width)
    rows, cols = np.mgrid[0:height, 0:width]
    distance_squared = (cols - int(width / 2)) ** 2 + (rows - int(height / 2)) ** 2
    outputs = []
    for cutoff in cutoffs:
        radius = cutoff * min(height, width) * beta
        assert radius < min(height, width)
        mask = np.exp(-distance_squared / (2 * radius**2))
        out = np.real(np.fft.ifft2(np.fft.ifftshift(spectrum * mask))) * np.sqrt(height * width)
        out = (out - out.min()) / (out.max() - out.min())
        outputs.append((out * 4095).astype(np.uint16))
    return np.stack(outputs)


def assert_within_one_grey_level(ours: np.ndarray, reference: np.ndarray, off_by_one_fraction: float) -> None:
    assert ours.dtype == np.uint16 and ours.shape == reference.shape
    difference = np.abs(ours.astype(np.int64) - reference.astype(np.int64))
    assert difference.max() <= 1
    # Off by one only where float32 rounding crosses the release's truncation to an integer.
    assert (difference > 0).mean() < off_by_one_fraction


@pytest.mark.slow
@pytest.mark.parametrize("view", ["L-CC", "L-MLO", "R-CC", "R-MLO"])
def test_release_variant_equals_method_on_the_shared_exam(exam_dir, view):
    image = np.asarray(Image.open(exam_dir / f"0_{view}.png"))
    assert image.dtype == np.uint16
    ours = lowpass(image, RELEASE_PIXEL_MM, PAPER_CUTOFFS_PER_MM, variant="release")
    reference = release_reference(image, list(PAPER_CUTOFFS_PER_MM), RELEASE_PIXEL_MM)
    assert_within_one_grey_level(ours, reference, off_by_one_fraction=2e-3)


@pytest.mark.parametrize("shape", [(32, 48), (33, 47), (47, 33), (31, 31), (64, 63)])
def test_release_variant_equals_method_for_odd_and_even_shapes(shape):
    # White noise has power at every frequency, so a mask off by one index would show.
    image = np.random.default_rng(sum(shape)).integers(0, 4096, size=shape).astype(np.uint16)
    cutoffs = [9.0, 3.0, 1.0, 0.2]
    ours = lowpass(image, 0.1, cutoffs, variant="release")
    # Strong filters on small images leave little contrast, so float32 rounding shows more often.
    assert_within_one_grey_level(ours, release_reference(image, cutoffs, 0.1), off_by_one_fraction=2e-2)


def _sinusoid(shape, pixel_mm, cycles, phase=0.3):
    """1000 + 100 cos(...) with ``cycles`` = (ky, kx) whole periods over the frame (no leakage)."""
    height, width = shape
    rows, cols = np.mgrid[0:height, 0:width]
    image = 1000 + 100 * np.cos(2 * np.pi * (cycles[0] * rows / height + cycles[1] * cols / width) + phase)
    frequency = np.hypot(cycles[0] / (height * pixel_mm[0]), cycles[1] / (width * pixel_mm[1]))
    return image, frequency


def _amplitude(image, cycles):
    """Amplitude of the (ky, kx) Fourier component of ``image``, by projection."""
    height, width = image.shape
    rows, cols = np.mgrid[0:height, 0:width]
    basis = np.exp(-2j * np.pi * (cycles[0] * rows / height + cycles[1] * cols / width))
    return 2 * np.abs(np.sum((image - image.mean()) * basis)) / image.size


@pytest.mark.parametrize(
    "shape, pixel_mm, cycles",
    [
        ((120, 90), (0.1, 0.1), (0, 15)),  # along x: 15 / 9 mm = 1.67 cycles/mm
        ((120, 90), (0.1, 0.1), (20, 0)),  # along y
        ((121, 95), (0.07, 0.1), (17, -11)),  # oblique, odd sizes, non-square pixels
    ],
)
@pytest.mark.parametrize("cutoff", [3.0, 1.5, 0.75])
def test_physical_variant_attenuates_a_sinusoid_by_the_gaussian(shape, pixel_mm, cycles, cutoff):
    image, frequency = _sinusoid(shape, pixel_mm, cycles)
    out = lowpass(image, pixel_mm, [cutoff])[0]
    expected = 100 * np.exp(-(frequency**2) / (2 * cutoff**2))
    assert expected < 90  # the filter does something measurable here
    assert _amplitude(out, cycles) == pytest.approx(expected, rel=0.01)
    assert out.mean() == pytest.approx(image.mean(), rel=1e-9)


def test_physical_variant_keeps_mean_dtype_and_range():
    image = np.random.default_rng(0).integers(100, 4000, size=(97, 130)).astype(np.uint16)
    out = lowpass(image, 0.08)
    assert out.shape == (len(PAPER_CUTOFFS_PER_MM), 97, 130) and out.dtype == np.uint16
    # Rounding to whole grey levels moves the mean by much less than one level.
    np.testing.assert_allclose(out.mean(axis=(1, 2)), image.mean(), atol=0.05)
    assert out.min() >= image.min() and out.max() <= image.max()  # a positive kernel averages
    assert lowpass(image.astype(np.uint8) // 16, 0.08).dtype == np.uint8
    assert lowpass(image.astype(np.float32), 0.08).dtype == np.float32


@pytest.mark.parametrize("variant", ["physical", "release"])
def test_severity_zero_is_the_identity(variant):
    image = np.random.default_rng(1).integers(0, 4096, size=(40, 50)).astype(np.uint16)
    out = lowpass(image, 0.1, [np.inf, 2.0], variant=variant)
    np.testing.assert_array_equal(out[0], image)
    assert not np.array_equal(out[1], image)


def test_physical_variant_is_linear():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(2, 64, 81))
    cutoffs = [3.0, 0.5]
    combined = lowpass(2 * a - 3 * b, 0.1, cutoffs)
    np.testing.assert_allclose(combined, 2 * lowpass(a, 0.1, cutoffs) - 3 * lowpass(b, 0.1, cutoffs), atol=1e-9)


def test_physical_variant_is_isotropic_in_mm_for_non_square_pixels():
    # The same physical frequency along rows and along columns is attenuated alike.
    shape, pixel_mm = (200, 140), (0.05, 0.1)
    along_y, f_y = _sinusoid(shape, pixel_mm, (20, 0))
    along_x, f_x = _sinusoid(shape, pixel_mm, (0, 28))
    assert f_y == pytest.approx(f_x)
    gain_y = _amplitude(lowpass(along_y, pixel_mm, [1.5])[0], (20, 0))
    gain_x = _amplitude(lowpass(along_x, pixel_mm, [1.5])[0], (0, 28))
    assert gain_y == pytest.approx(gain_x, rel=1e-6)


def test_physical_variant_refuses_cutoffs_above_nyquist():
    image = np.zeros((32, 32))
    assert lowpass(image, 0.1, [5.0]).shape == (1, 32, 32)  # exactly Nyquist is representable
    with pytest.raises(InputError, match=r"cut-off 5.01 cycles/mm is above the Nyquist frequency 5"):
        lowpass(image, 0.1, [2.0, 5.01])
    with pytest.raises(InputError, match="Nyquist frequency 4"):
        lowpass(image, (0.1, 0.125), [4.5])  # the coarser axis decides


def test_release_variant_refuses_what_the_release_asserts():
    image = np.random.default_rng(3).integers(0, 4096, size=(30, 40)).astype(np.uint16)
    with pytest.raises(InputError, match=r"radius 30 >= min\(H, W\) = 30"):
        lowpass(image, 0.1, [10.0], variant="release")
    with pytest.raises(InputError, match="square pixels"):
        lowpass(image, (0.1, 0.2), [1.0], variant="release")
    with pytest.raises(InputError, match="constant"):
        lowpass(np.full((30, 40), 7, np.uint16), 0.1, [1.0], variant="release")
    with pytest.raises(InputError, match="not a uint16 image"):
        lowpass(image.astype(float) - 0.5, 0.1, [np.inf], variant="release")


@pytest.mark.parametrize(
    "image, pixel_mm, cutoffs, message",
    [
        (np.zeros((4, 4, 3)), 0.1, [1.0], "must be 2-D"),
        (np.zeros(16), 0.1, [1.0], "must be 2-D"),
        (np.zeros((4, 4), bool), 0.1, [1.0], "dtype bool"),
        (np.full((4, 4), np.nan), 0.1, [1.0], "NaN"),
        (np.zeros((4, 4)), 0.1, [0.0], "not positive"),
        (np.zeros((4, 4)), 0.1, [-1.0], "not positive"),
        (np.zeros((4, 4)), 0.1, [np.nan], "not positive"),
        (np.zeros((4, 4)), 0.1, [], "non-empty"),
        (np.zeros((4, 4)), 0.0, [1.0], "pixel size must be positive"),
        (np.zeros((4, 4)), (0.1, 0.1, 0.1), [1.0], "pair"),
    ],
)
def test_bad_input_is_refused(image, pixel_mm, cutoffs, message):
    with pytest.raises(InputError, match=message):
        lowpass(image, pixel_mm, cutoffs)


def test_unknown_variant_is_refused():
    with pytest.raises(InputError, match="variant must be one of physical, release"):
        lowpass(np.zeros((4, 4)), 0.1, [1.0], variant="exact")


@pytest.mark.parametrize(("text", "size"), [("0.07", 0.07), ("0.07x0.065", (0.07, 0.065)), (" 0.1X0.1 ", (0.1, 0.1))])
def test_pixel_size_text_is_one_number_or_rows_x_columns(text, size):
    assert parse_pixel_mm(text) == size


@pytest.mark.parametrize("text", ["abc", "0", "-1", "0.1x", "0.1x0.1x0.1", "inf", "nan"])
def test_bad_pixel_size_text_names_the_field(text):
    with pytest.raises(InputError) as refused:
        parse_pixel_mm(text, source="--pixel-mm")
    assert str(refused.value) == f"--pixel-mm: {text!r} is not a pixel size in mm like 0.07 or 0.07x0.065"


@pytest.mark.parametrize(("text", "shown"), [("1e-9", "'1e-9'"), ("0.1x1e-7", "'0.1x1e-7'"), ("5000", "'5000'")])
def test_pixel_sizes_no_image_has_are_refused(text, shown):
    """Issue 16: `--pixel-mm 1e-9` ended in an OverflowError traceback when the PNG recorded it."""
    with pytest.raises(InputError) as refused:
        parse_pixel_mm(text, source="--pixel-mm")
    assert str(refused.value) == f"--pixel-mm: {shown} mm is outside the pixel sizes 1e-06 to 1000 mm"
    with pytest.raises(InputError, match="is outside 1e-06 to 1000 mm"):
        lowpass(np.zeros((4, 4)), parse_pixel_mm_unchecked(text), [1.0])


def parse_pixel_mm_unchecked(text: str):
    values = tuple(float(part) for part in text.split("x"))
    return values[0] if len(values) == 1 else values


@pytest.mark.parametrize("pixel_mm", [1e-6, 1e3])
def test_the_extreme_pixel_sizes_are_written_to_png(pixel_mm, tmp_path):
    from perceptiongap.perturb import read_image, write_png

    write_png(tmp_path / "x.png", np.arange(12, dtype=np.uint16).reshape(3, 4), (pixel_mm, pixel_mm))
    assert read_image(tmp_path / "x.png", pixel_mm).pixels.shape == (3, 4)
