"""The study's vocabulary: views, breasts, labels, schemes, subgroups and the severity scale.

The paper's names are defaults here, not requirements: a user's own study may name its subgroups
as it likes (mass, calcification, ...) and choose its own cut-offs. Everything that needs "the
paper's subgroups" or "the paper's severities" reads them from this module, so that each is
defined once.

A severity is a Gaussian low-pass cut-off ``D0`` in cycles per millimetre; the paper labels it by
its wavelength ``1 / D0`` rounded to two decimals. Severity 0 means unperturbed (an infinite
cut-off, written ``inf``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from perceptiongap.errors import InputError

__all__ = [
    "ANALYSED_SUBGROUPS",
    "BIRADS_CATEGORIES",
    "BREASTS",
    "FILTERED_SUFFIX",
    "DEFAULT_CUTOFFS_PER_MM",
    "LABELS",
    "MERGED_SUBGROUP",
    "OBSERVER_KINDS",
    "PAPER_CUTOFFS_PER_MM",
    "PAPER_OBSERVER_GROUPS",
    "PAPER_SEVERITIES_MM",
    "PAPER_SUBGROUPS",
    "ROI_SCHEMES",
    "SCHEMES",
    "VIEWS",
    "cutoff_per_mm",
    "parse_cutoffs",
    "severity_mm",
    "validate_cutoffs",
]

#: Observers are humans (binary answers) or machines (probabilities).
OBSERVER_KINDS: tuple[str, ...] = ("human", "machine")
BREASTS: tuple[str, ...] = ("L", "R")
#: The four views of a screening exam, as files and ROI files name them.
VIEWS: tuple[str, ...] = ("L-CC", "L-MLO", "R-CC", "R-MLO")
#: Where the filter was applied: everywhere, only inside or only outside an annotator's ROIs.
SCHEMES: tuple[str, ...] = ("entire", "roi_interior", "roi_exterior")
ROI_SCHEMES: tuple[str, ...] = ("roi_interior", "roi_exterior")
#: A breast's label; "malignant" against everything else is the classification task (METHOD §6).
LABELS: tuple[str, ...] = ("malignant", "benign", "nonbiopsied")

#: A reader's BI-RADS assessment of a breast (METHOD §3), in the order of the scale.
BIRADS_CATEGORIES: tuple[str, ...] = ("0", "1", "2", "3", "4A", "4B", "4C", "5")

#: The release's five subgroups, in the authors' index order (0..4).
PAPER_SUBGROUPS: tuple[str, ...] = ("microcalcifications", "soft_tissue_lesions", "mixed", "occult", "nonbiopsied")
#: The two subgroups the paper analyses, and merges for its Simpson's-paradox check.
ANALYSED_SUBGROUPS: tuple[str, ...] = ("microcalcifications", "soft_tissue_lesions")
#: The name of the merged subgroup in the merged-subgroup refits and their tables.
MERGED_SUBGROUP = "merged"
#: The paper's observer groups, in the order tables and figures list them (others follow).
PAPER_OBSERVER_GROUPS: tuple[str, ...] = ("radiologists", "gmic", "gmic_filtered", "dmv", "dmv_filtered")
#: A machine group named ``<network>_filtered`` is that network trained on filtered images.
FILTERED_SUFFIX = "_filtered"

#: The paper's eight cut-offs, mildest first (cycles/mm).
PAPER_CUTOFFS_PER_MM: tuple[float, ...] = (6.0, 4.5, 3.0, 2.0, 1.5, 1.0, 0.5, 0.25)
#: The paper's nine severity labels in mm, 0 = unperturbed, in the order of every released array.
PAPER_SEVERITIES_MM: tuple[float, ...] = (0.0, 0.17, 0.22, 0.33, 0.5, 0.67, 1.0, 2.0, 4.0)
#: The one default set of cut-offs of every command: the paper's nine severities, unperturbed first.
DEFAULT_CUTOFFS_PER_MM: tuple[float, ...] = (math.inf, *PAPER_CUTOFFS_PER_MM)


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


def validate_cutoffs(cutoffs_per_mm: Iterable[float], *, source: str = "cutoffs_per_mm") -> tuple[float, ...]:
    """The one rule for a list of cut-offs, shared by every command.

    Each cut-off is a positive number of cycles/mm or ``inf`` (unperturbed); no two may share a
    severity label in mm (outputs are keyed by it), so exact repeats are refused too. Returns the
    cut-offs as floats, unperturbed first, then mildest (largest cut-off) first. An empty list is
    allowed; a command that needs a cut-off says so itself.
    """
    values = []
    for value in cutoffs_per_mm:
        try:
            cutoff = float(value)
        except (TypeError, ValueError):
            raise InputError(f"{value!r} is not a number of cycles/mm (inf = unperturbed)", source=source) from None
        if math.isnan(cutoff) or cutoff <= 0:
            raise InputError(f"{cutoff:g} is not a positive number of cycles/mm (inf = unperturbed)", source=source)
        values.append(cutoff)
    labels: dict[float, float] = {}
    for cutoff in values:
        label = severity_mm(cutoff)
        if label in labels:
            first = labels[label]
            same = "is given twice" if first == cutoff else f"and {first:g} share the severity label {label:g} mm"
            raise InputError(f"cut-off {cutoff:g} {same}", source=source)
        labels[label] = cutoff
    return tuple(sorted(values, reverse=True))


def parse_cutoffs(text: str, *, source: str = "cutoffs_per_mm") -> tuple[float, ...]:
    """``"inf,6,4.5"`` -> validated cut-offs (see :func:`validate_cutoffs`); blank items are ignored."""
    return validate_cutoffs([item.strip() for item in text.split(",") if item.strip()], source=source)
