"""The severity scale of the paper: Gaussian low-pass cut-offs in cycles/mm and their labels in mm.

A severity is a cut-off ``D0`` in cycles per millimetre; the paper labels it by its wavelength
``1 / D0`` rounded to two decimals. Severity 0 means unperturbed (an infinite cut-off).
"""

from __future__ import annotations

import numpy as np

#: The paper's eight cut-offs, mildest first (cycles/mm).
PAPER_CUTOFFS_PER_MM: tuple[float, ...] = (6.0, 4.5, 3.0, 2.0, 1.5, 1.0, 0.5, 0.25)

#: The paper's nine severity labels in mm, 0 = unperturbed, in the order of every released array.
PAPER_SEVERITIES_MM: tuple[float, ...] = (0.0, 0.17, 0.22, 0.33, 0.5, 0.67, 1.0, 2.0, 4.0)


def severity_mm(cutoff_per_mm: float | np.ndarray) -> float | np.ndarray:
    """Wavelength label in mm of a cut-off in cycles/mm (``inf`` -> 0), rounded to 2 decimals."""
    cutoff = np.asarray(cutoff_per_mm, dtype=float)
    with np.errstate(divide="ignore"):
        label = np.where(np.isinf(cutoff), 0.0, np.round(1.0 / cutoff, 2))
    return float(label) if label.ndim == 0 else label


def cutoff_per_mm(severity: float | np.ndarray) -> float | np.ndarray:
    """Cut-off in cycles/mm for a severity label in mm, exact for the paper's labels (0 -> ``inf``)."""
    severity = np.asarray(severity, dtype=float)
    paper = dict(zip(PAPER_SEVERITIES_MM, (np.inf, *PAPER_CUTOFFS_PER_MM)))
    flat = [paper.get(float(s), np.inf if s == 0 else 1.0 / s) for s in severity.ravel()]
    out = np.asarray(flat, dtype=float).reshape(severity.shape)
    return float(out) if out.ndim == 0 else out
