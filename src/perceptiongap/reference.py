"""A dependency-free reference network with known behaviour, for tests and demos.

:func:`network` follows the model plugin protocol (:mod:`perceptiongap.predict.plugin`) and is
named ``perceptiongap.reference:network``. It is a detector of small bright specks, the way
microcalcifications look: in each view it band-passes the image with a difference of Gaussians
(centre 0.1 mm, surround 0.2 mm, so it responds to detail of about 1-3 cycles/mm), takes the
mean of the strongest 0.01% of responses (at least 16 pixels) away from the image border, and
divides by the image's contrast (99th percentile minus median). A breast's score is the larger
of its two views'; its probability is ``sigmoid(SLOPE * log(score / REFERENCE_SCORE))``.

Known behaviour, tested: a breast with bright 0.1-0.2 mm specks scores higher than one without;
the score falls as a Gaussian low-pass filter removes high frequencies (the band-pass response of
a low-passed image is the same response with every frequency attenuated); the result does not
depend on the intensity unit (a positive affine change of intensities leaves it unchanged); it is
deterministic.
The border margin (2.5 mm) is skipped because an FFT filter wraps the image around, which
creates an artificial edge there when the two sides of an image differ (chest wall vs. air).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy import ndimage
from scipy.special import expit

from perceptiongap.predict.plugin import Exam

CENTRE_MM = 0.1
SURROUND_MM = 0.2
BORDER_MM = 2.5
TOP_FRACTION = 1e-4
MIN_TOP_PIXELS = 16
REFERENCE_SCORE = 0.1
SLOPE = 2.0


def _spacing(pixel_mm: float | tuple[float, float]) -> np.ndarray:
    return np.broadcast_to(np.asarray(pixel_mm, dtype=float), (2,))


def speck_score(image: np.ndarray, pixel_mm: float | tuple[float, float]) -> float:
    """Strength of small bright specks in one view (dimensionless, >= 0). ``image``: (H, W)."""
    image = np.asarray(image, dtype=np.float32)
    spacing = _spacing(pixel_mm)
    band = ndimage.gaussian_filter(image, CENTRE_MM / spacing, truncate=3.0)
    band -= ndimage.gaussian_filter(image, SURROUND_MM / spacing, truncate=3.0)
    margin = np.minimum(np.round(BORDER_MM / spacing).astype(int), np.asarray(image.shape) // 4)
    band = band[margin[0] : image.shape[0] - margin[0], margin[1] : image.shape[1] - margin[1]]
    k = max(MIN_TOP_PIXELS, int(band.size * TOP_FRACTION))
    k = min(k, band.size)
    strongest = np.partition(band.ravel(), band.size - k)[band.size - k :]
    sample = image[::4, ::4]
    contrast = float(np.percentile(sample, 99) - np.median(sample))
    if contrast <= 0:
        return 0.0
    return max(float(strongest.mean()) / contrast, 0.0)


def probability(score: np.ndarray) -> np.ndarray:
    """Map speck scores to malignancy probabilities in (0, 1) (score 0 -> 0)."""
    score = np.asarray(score, dtype=float)
    with np.errstate(divide="ignore"):
        logit = SLOPE * np.log(score / REFERENCE_SCORE)
    return expit(logit)


def network(exams: Sequence[Exam]) -> np.ndarray:
    """Malignancy probability of the (left, right) breast of each exam: shape (len(exams), 2)."""
    scores = np.array(
        [
            [
                max(speck_score(*exam[f"{breast}-CC"]), speck_score(*exam[f"{breast}-MLO"]))
                for breast in ("L", "R")
            ]
            for exam in exams
        ]
    ).reshape(len(exams), 2)
    return probability(scores)


def synthetic_view(
    shape: tuple[int, int], pixel_mm: float, n_specks: int, rng: np.random.Generator
) -> np.ndarray:
    """A mammogram-like uint16 view (12-bit range) with ``n_specks`` bright 0.12 mm specks.

    The breast is a smooth bright region against the chest wall (column 0) on a dark background,
    with low-frequency texture and noise; the specks lie inside the breast. For tests and demos.
    """
    height, width = shape
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    # A smooth (C1) fall-off to the background: a sharp skin line would itself look like detail.
    inside = np.clip((1.0 - ((rows - height / 2) / (0.45 * height)) ** 2 - (cols / (0.8 * width)) ** 2) / 0.3, 0, 1)
    breast = inside * inside * (3.0 - 2.0 * inside)
    # Low-frequency texture: coarse noise (one value per ~2 mm) interpolated up to full size.
    step = max(2.0 / pixel_mm, 1.0)
    coarse = rng.standard_normal((int(height / step) + 2, int(width / step) + 2)).astype(np.float32)
    texture = ndimage.map_coordinates(coarse, [rows / step, cols / step], order=1)
    texture /= max(float(np.abs(texture).max()), 1e-12)
    image = 2000.0 * breast * (1.0 + 0.25 * texture) + 5.0 * rng.standard_normal(shape, dtype=np.float32) * breast
    sigma_px = 0.12 / pixel_mm
    radius = int(np.ceil(4 * sigma_px))
    for _ in range(n_specks):
        centre_row = int(rng.uniform(0.3, 0.7) * height)
        centre_col = int(rng.uniform(0.05, 0.45) * width)
        top, left = max(centre_row - radius, 0), max(centre_col - radius, 0)
        window = (slice(top, centre_row + radius + 1), slice(left, centre_col + radius + 1))
        image[window] += 800.0 * np.exp(
            -((rows[window] - centre_row) ** 2 + (cols[window] - centre_col) ** 2) / (2 * sigma_px**2)
        )
    return np.clip(image, 0, 4095).astype(np.uint16)


def synthetic_exam(
    shape: tuple[int, int], pixel_mm: float, specks: tuple[int, int], rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Four synthetic uint16 views; ``specks`` = (number in each left view, in each right view).

    Right views are mirrored so that the chest wall is on the right, as in a screening exam.
    """
    exam = {}
    for view in ("L-CC", "L-MLO", "R-CC", "R-MLO"):
        image = synthetic_view(shape, pixel_mm, specks[0] if view[0] == "L" else specks[1], rng)
        exam[view] = image if view[0] == "L" else image[:, ::-1].copy()
    return exam


def write_synthetic_exams(
    folder: str | Path,
    n_exams: int,
    *,
    shape: tuple[int, int] = (300, 240),
    pixel_mm: float = 0.07,
    specks: int = 5,
    seed: int = 0,
    prefix: str = "synthetic",
) -> Path:
    """Write ``n_exams`` synthetic exams as 16-bit PNGs and their ``exams.csv``; return its path.

    Exam ``i`` is named ``{prefix}-i``; odd exams have ``specks`` specks in each left view (the
    reference network calls them suspicious), even exams have none. For tests, demos, benchmarks.
    """
    from PIL import Image

    from perceptiongap.files import atomic_path, atomic_write_text

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    lines = ["exam,view,path,pixel_mm"]
    for index in range(n_exams):
        exam = f"{prefix}-{index}"
        for view, image in synthetic_exam(shape, pixel_mm, (specks if index % 2 else 0, 0), rng).items():
            name = f"{exam}_{view}.png"
            with atomic_path(folder / name) as tmp:
                Image.fromarray(image).save(tmp, format="PNG")
            lines.append(f"{exam},{view},{name},{pixel_mm}")
    exams_csv = folder / "exams.csv"
    atomic_write_text(exams_csv, "\n".join(lines) + "\n")
    return exams_csv
