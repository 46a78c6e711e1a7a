"""Operating points: where a network's probability becomes a yes/no decision like a reader's.

A reader answers malignant yes/no; a network gives a probability, decided positive at or above a
threshold. The threshold is stated, never hidden:

- ``readers`` (default): each network's threshold is set on its own unperturbed (severity 0,
  whole-image) predictions of the non-malignant breasts so that its specificity there is as close
  as it can be to the readers' mean specificity at severity 0 (each reader's specificity over the
  non-malignant breasts they read unperturbed, averaged over readers). The network then works
  where the readers work, and its sensitivity compares with theirs.
- ``specificity=S``: the same with a target specificity S of your choice.
- a number T in [0, 1]: the fixed threshold T (``0.5`` is the usual default of a classifier).

The threshold of a network is fixed once, on unperturbed images, and applied at every severity
and scheme: filtering then moves its decisions, as it moves a reader's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from perceptiongap.errors import InputError

__all__ = [
    "DEFAULT_OPERATING_POINTS",
    "READER_DECISION",
    "OperatingPoint",
    "binary_decisions",
    "default_operating_points",
    "machine_thresholds",
    "parse_operating_points",
    "readers_mean_specificity",
]

#: The operating point of a human, whose answer is already yes/no.
READER_DECISION = "reader_decision"


@dataclass(frozen=True)
class OperatingPoint:
    """How a network's threshold is chosen: ``readers``, ``specificity`` (value S) or ``threshold`` (value T)."""

    kind: str
    value: float | None = None

    @property
    def name(self) -> str:
        """The name tables use: ``readers_mean_specificity``, ``specificity_0.9``, ``threshold_0.5``."""
        if self.kind == "readers":
            return "readers_mean_specificity"
        return f"{self.kind}_{self.value:g}"


DEFAULT_OPERATING_POINTS: tuple[OperatingPoint, ...] = (OperatingPoint("readers"), OperatingPoint("threshold", 0.5))


def default_operating_points(observations) -> tuple[OperatingPoint, ...]:
    """The readers' operating point and 0.5 when the study has human observers; 0.5 alone otherwise."""
    if (observations["observer_kind"] == "human").any():
        return DEFAULT_OPERATING_POINTS
    return (OperatingPoint("threshold", 0.5),)


def parse_operating_points(text: str, source: str = "--operating-point") -> tuple[OperatingPoint, ...]:
    """``"readers,0.5,specificity=0.9"`` -> operating points (in that order, no repeats)."""
    points: list[OperatingPoint] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        if item == "readers":
            point = OperatingPoint("readers")
        else:
            kind, _, number = item.rpartition("=") if "=" in item else ("threshold", "", item)
            if kind not in ("threshold", "specificity"):
                raise InputError(f"{item!r} is not an operating point (readers, a threshold such as 0.5, or "
                                 "specificity=0.9)", source=source)
            try:
                value = float(number)
            except ValueError:
                raise InputError(f"{item!r} is not an operating point (readers, a threshold such as 0.5, or "
                                 "specificity=0.9)", source=source) from None
            if not 0.0 <= value <= 1.0:
                raise InputError(f"{item!r}: {kind} must be in [0, 1]", source=source)
            point = OperatingPoint(kind, value)
        if point not in points:
            points.append(point)
    if not points:
        raise InputError("no operating point given", source=source)
    return tuple(points)


def _unperturbed_negatives(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows at severity 0 on whole images of non-malignant breasts (``rows`` carry ``malignant``)."""
    return rows[(rows["severity_mm"] == 0) & (rows["scheme"] == "entire") & ~rows["malignant"]]


def readers_mean_specificity(observations: pd.DataFrame) -> float:
    """Mean over human observers of their specificity on unperturbed non-malignant breasts.

    ``observations`` carry a boolean ``malignant`` column (:func:`~perceptiongap.stats.breasts.attach_cases`).
    """
    negatives = _unperturbed_negatives(observations[observations["observer_kind"] == "human"])
    if negatives.empty:
        raise InputError("operating point 'readers' needs human observers with unperturbed (severity 0, "
                         "entire) readings of non-malignant breasts, and there are none; choose a threshold "
                         "(e.g. 0.5) or specificity=S", source="operating_point")
    specificity = (negatives["prediction"] < 0.5).groupby(negatives["observer"], observed=True).mean()
    return float(specificity.mean())


def _threshold_for_specificity(negative_scores: np.ndarray, target: float) -> float:
    """The threshold t (decide positive when p >= t) whose specificity is closest to ``target``.

    Candidates are the distinct negative scores and +inf (everything negative); specificity at t is
    the share of negatives below t. Of two equally close candidates the more specific one wins.
    """
    ordered = np.sort(negative_scores)
    candidates = np.append(np.unique(ordered), np.inf)
    specificity = np.searchsorted(ordered, candidates, side="left") / ordered.size
    distance = np.abs(specificity - target)
    best = np.flatnonzero(distance <= distance.min() + 1e-12)[-1]
    return float(candidates[best])


def machine_thresholds(observations: pd.DataFrame, point: OperatingPoint, *,
                       target_specificity: float | None = None) -> dict[str, float]:
    """Observer -> threshold of every machine observer at ``point``.

    ``observations`` carry ``malignant``. For ``readers`` the target is ``target_specificity`` if
    given, else :func:`readers_mean_specificity`.
    """
    machines = observations[observations["observer_kind"] == "machine"]
    names = [str(name) for name in machines["observer"].unique()]
    if point.kind == "threshold":
        return {name: float(point.value) for name in names}
    target = point.value if point.kind == "specificity" else (
        target_specificity if target_specificity is not None else readers_mean_specificity(observations))
    negatives = _unperturbed_negatives(machines)
    by_observer = {str(k): v for k, v in negatives.groupby(negatives["observer"].astype(str))["prediction"]}
    thresholds = {}
    for name in names:  # one small sort per network
        scores = by_observer.get(name)
        if scores is None or scores.empty:
            raise InputError(f"observer {name!r} has no unperturbed (severity 0, entire) predictions of "
                             f"non-malignant breasts, so operating point {point.name!r} is undefined for it; "
                             "choose a fixed threshold (e.g. 0.5)", source="operating_point")
        thresholds[name] = _threshold_for_specificity(scores.to_numpy(dtype=float), float(target))
    return thresholds


def binary_decisions(observations: pd.DataFrame, point: OperatingPoint, *,
                     target_specificity: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(decision, threshold) per row: humans keep their 0/1 answer (threshold NaN), machines p >= t."""
    thresholds = machine_thresholds(observations, point, target_specificity=target_specificity)
    codes, names = pd.factorize(observations["observer"])  # one look-up per observer, not per row
    threshold = np.array([thresholds.get(str(name), np.nan) for name in names], dtype=float)[codes]
    prediction = observations["prediction"].to_numpy(dtype=float)
    human = (observations["observer_kind"] == "human").to_numpy()
    decision = np.where(human, prediction >= 0.5, prediction >= np.where(human, 0.0, threshold))
    return decision.astype(bool), np.where(human, np.nan, threshold)
