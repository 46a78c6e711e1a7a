"""Time and measure the low-pass filter on the shared exam, against the release's algorithm.

For each of the four views of ``shared/mammograms/gmic-sample-exam0`` (16-bit PNG, no recorded
spacing: 0.1 mm pixels assumed) and all eight non-zero severities of the paper, in the same run:

- straightforward: the release's algorithm as METHOD.md §1 states it, a fresh complex128
  ``fft2`` per severity, ``fftshift``, a full float64 index-space mask, ``ifft2``, min-max, uint16;
- ours: ``perceptiongap.perturb.lowpass(..., variant="release")`` (same output within one grey
  level) and, for information, ``variant="physical"`` at 0.07 mm (0.1 mm cannot represent 6 cycles/mm);
- floor: one forward ``rfft2`` plus eight inverse ``irfft2`` (scipy.fft, float32, all cores),
  the FFT work that any implementation reusing the forward transform must do.

Times are the best of ``--repeats`` runs; peak memory is the peak of Python-traced allocations
(tracemalloc, which sees NumPy's and scipy.fft's arrays) during one call, outputs included.

    python benchmarks/perturb.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import time
import tracemalloc
from pathlib import Path

import numpy as np
import scipy.fft
from PIL import Image

from perceptiongap.perturb import lowpass
from perceptiongap.vocabulary import PAPER_CUTOFFS_PER_MM

PIXEL_MM = 0.1
VIEWS = ("L-CC", "L-MLO", "R-CC", "R-MLO")


def shared_dir() -> Path:
    default = Path(__file__).resolve().parents[1].parent / "shared"
    return Path(os.environ.get("PERCEPTIONGAP_SHARED", default))


def straightforward_release(image: np.ndarray, cutoffs, beta: float) -> list[np.ndarray]:
    """METHOD §1 as the release runs it: everything recomputed per severity, complex128."""
    outputs = []
    height, width = image.shape
    for cutoff in cutoffs:
        spectrum = np.fft.fftshift(np.fft.fft2(image.astype(np.float64))) / np.sqrt(height * width)
        radius = cutoff * min(height, width) * beta
        assert radius < min(height, width)
        rows, cols = np.mgrid[0:height, 0:width]
        mask = np.exp(-((cols - int(width / 2)) ** 2 + (rows - int(height / 2)) ** 2) / (2 * radius**2))
        out = np.real(np.fft.ifft2(np.fft.ifftshift(spectrum * mask))) * np.sqrt(height * width)
        out = (out - out.min()) / (out.max() - out.min())
        outputs.append((out * 4095).astype(np.uint16))
    return outputs


def fft_floor(image: np.ndarray, cutoffs, beta: float) -> None:
    """One forward real FFT and one inverse per severity, nothing else."""
    spectrum = scipy.fft.rfft2(image.astype(np.float32), workers=-1)
    for _ in cutoffs:
        scipy.fft.irfft2(spectrum, s=image.shape, workers=-1)


def best_time(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def peak_mib(function) -> float:
    tracemalloc.start()
    tracemalloc.reset_peak()
    function()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    exam = shared_dir() / "mammograms" / "gmic-sample-exam0"
    cutoffs = list(PAPER_CUTOFFS_PER_MM)
    print(f"{os.cpu_count()} CPUs; 8 severities; best of {args.repeats}; pixel {PIXEL_MM} mm; {exam}")
    header = (
        f"{'view':6} {'H x W':>11} | {'release s':>9} {'ours s':>7} {'ratio':>6} | {'floor s':>7} {'ours/floor':>10} "
        f"| {'physical s':>10} | {'release MiB':>11} {'ours MiB':>8} {'ratio':>6}"
    )
    print(header)
    print("-" * len(header))
    totals = np.zeros(5)
    for view in VIEWS:
        image = np.asarray(Image.open(exam / f"0_{view}.png"))
        ours_out = lowpass(image, PIXEL_MM, cutoffs, variant="release")
        reference = np.stack(straightforward_release(image, cutoffs, PIXEL_MM))
        assert np.abs(ours_out.astype(int) - reference).max() <= 1  # same output before timing it

        release_s = best_time(lambda: straightforward_release(image, cutoffs, PIXEL_MM), args.repeats)
        ours_s = best_time(lambda: lowpass(image, PIXEL_MM, cutoffs, variant="release"), args.repeats)
        floor_s = best_time(lambda: fft_floor(image, cutoffs, PIXEL_MM), args.repeats)
        physical_s = best_time(lambda: lowpass(image, 0.07, cutoffs, variant="physical"), args.repeats)
        release_mib = peak_mib(lambda: straightforward_release(image, cutoffs, PIXEL_MM))
        ours_mib = peak_mib(lambda: lowpass(image, PIXEL_MM, cutoffs, variant="release"))
        totals += (release_s, ours_s, floor_s, physical_s, 0)
        print(
            f"{view:6} {image.shape[0]:>5} x {image.shape[1]:<4}| {release_s:9.3f} {ours_s:7.3f} {release_s / ours_s:5.1f}x "
            f"| {floor_s:7.3f} {ours_s / floor_s:9.2f}x | {physical_s:10.3f} "
            f"| {release_mib:11.1f} {ours_mib:8.1f} {ours_mib / release_mib:6.2f}"
        )
    release_s, ours_s, floor_s, physical_s, _ = totals
    print("-" * len(header))
    print(
        f"{'all':6} {'':11} | {release_s:9.3f} {ours_s:7.3f} {release_s / ours_s:5.1f}x "
        f"| {floor_s:7.3f} {ours_s / floor_s:9.2f}x | {physical_s:10.3f} |"
    )
    print("goals: ratio >= 4x, ours/floor <= 1.5x, memory ratio <= 0.5")


if __name__ == "__main__":
    main()
