"""Observations + Cases -> the integer-indexed arrays the model is fitted on.

One :class:`ModelData` holds one observer group: every observed (observer, severity, breast)
cell as a row of index arrays, plus the names behind each index so that the posterior can carry
named coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from perceptiongap.errors import InputError

__all__ = ["ModelData", "build_model_data"]


@dataclass(frozen=True)
class ModelData:
    """The arrays of one observer group's model, on the dense grid (observer, severity, case).

    ``prediction`` and ``observed`` have shape (n_observers, n_severities, n_cases); unobserved
    cells hold prediction 0 and ``observed`` False (a reader study fills ~1/9 of the grid, networks
    fill all of it; :meth:`cells` is the compact layout the model is fitted on). Severity index 0
    is unperturbed (the reference); ``case_subgroup``
    (n_cases,) is the subgroup index of each breast (a row of Cases).
    """

    prediction: np.ndarray
    observed: np.ndarray
    case_subgroup: np.ndarray
    observer_group: str
    observer_kind: str
    observer_names: tuple[str, ...]
    severity_mm: tuple[float, ...]
    subgroup_names: tuple[str, ...]
    case_exam: tuple[str, ...]
    case_breast: tuple[str, ...]
    case_label: tuple[str, ...]

    @property
    def n_cases(self) -> int:
        return len(self.case_exam)

    @property
    def n_observers(self) -> int:
        return len(self.observer_names)

    @property
    def n_severities(self) -> int:
        return len(self.severity_mm)

    @property
    def n_subgroups(self) -> int:
        return len(self.subgroup_names)

    @property
    def n_observations(self) -> int:
        return int(self.observed.sum())

    @property
    def case_malignant(self) -> np.ndarray:
        """(n_cases,) True for malignant breasts."""
        return np.asarray(self.case_label) == "malignant"

    def subgroup_label_counts(self) -> np.ndarray:
        """(n_subgroups, 2) how many breasts of each subgroup are malignant (column 0) and not (column 1)."""
        counts = np.zeros((self.n_subgroups, 2))
        np.add.at(counts, (self.case_subgroup, np.where(self.case_malignant, 0, 1)), 1.0)
        return counts

    def arrays(self) -> dict[str, np.ndarray | None]:
        """The design arrays the models take (names match their arguments), observations in cell layout.

        Every dimension is an array's shape (see :mod:`perceptiongap.model.spec`): ``severity_mm``
        (severity,) and ``subgroup_label_counts`` (subgroup, label) besides the cells and cases.
        """
        return {**self.cells(), "case_subgroup": self.case_subgroup,
                "case_malignant": self.case_malignant.astype(np.float64),
                "severity_mm": np.asarray(self.severity_mm, dtype=np.float64),
                "subgroup_label_counts": self.subgroup_label_counts()}

    def cells(self) -> dict[str, np.ndarray | None]:
        """The observations in the cell layout of :mod:`perceptiongap.model.likelihood`.

        Slots per (observer, case) are as many as the most severities any observer saw one breast
        at. When that is every severity the grid is kept (slot k = severity k, ``severity_index``
        None); otherwise each observer's severities of a breast are packed into the first slots
        and ``severity_index`` (observer, slot, case) records them. A reader study, one severity
        per breast, packs into a single slot: 9x fewer cells than the grid.
        """
        slot_of = np.cumsum(self.observed, axis=1) - 1  # (observer, severity, case): rank among seen severities
        n_slots = int(slot_of.max(initial=-1)) + 1
        if n_slots >= self.n_severities:
            return {"prediction": self.prediction, "observed": self.observed, "severity_index": None}
        observer, severity, case = np.nonzero(self.observed)
        slot = slot_of[observer, severity, case]
        shape = (self.n_observers, max(n_slots, 1), self.n_cases)
        prediction = np.zeros(shape)
        observed = np.zeros(shape, dtype=bool)
        severity_index = np.zeros(shape, dtype=np.int32)
        prediction[observer, slot, case] = self.prediction[observer, severity, case]
        observed[observer, slot, case] = True
        severity_index[observer, slot, case] = severity
        return {"prediction": prediction, "observed": observed, "severity_index": severity_index}


def build_model_data(
    observations: pd.DataFrame,
    cases: pd.DataFrame,
    observer_group: str,
    *,
    scheme: str = "entire",
    subgroup_order: tuple[str, ...] | None = None,
) -> ModelData:
    """Select one observer group's observations on one scheme and index them against Cases.

    Every breast in Cases becomes a case of the model (observed or not), so that posterior
    predictions exist for all of them. Subgroups are ordered as ``subgroup_order`` (names absent
    from it are appended in order of appearance). Severity 0 (unperturbed) must be observed.
    """
    rows = observations[(observations["observer_group"] == observer_group) & (observations["scheme"] == scheme)]
    if rows.empty:
        raise InputError(f"no observations of observer group {observer_group!r} with scheme {scheme!r}",
                         source="observations")
    kinds = rows["observer_kind"].unique()
    if len(kinds) != 1:
        raise InputError(f"observer group {observer_group!r} mixes human and machine observers",
                         source="observations")

    case_key = pd.MultiIndex.from_frame(cases[["exam", "breast"]].astype(str))
    case_index = case_key.get_indexer(pd.MultiIndex.from_frame(rows[["exam", "breast"]].astype(str)))
    if (case_index < 0).any():
        bad = rows.iloc[int(np.flatnonzero(case_index < 0)[0])]
        raise InputError(f"exam {bad['exam']!r} breast {bad['breast']!r} is not in Cases", source="observations")

    severity_mm = tuple(float(s) for s in np.sort(rows["severity_mm"].unique()))
    if severity_mm[0] != 0.0:
        raise InputError(f"observer group {observer_group!r} has no unperturbed (severity 0) observations",
                         source="observations")
    observer_names = tuple(sorted(rows["observer"].astype(str).unique()))

    present = list(pd.unique(cases["subgroup"].astype(str)))
    ordered = [s for s in (subgroup_order or ()) if s in present] + [
        s for s in present if s not in (subgroup_order or ())
    ]
    subgroup_index = {name: i for i, name in enumerate(ordered)}

    observer_index = pd.Index(observer_names).get_indexer(rows["observer"].astype(str))
    severity_index = pd.Index(severity_mm).get_indexer(rows["severity_mm"].astype(float))
    shape = (len(observer_names), len(severity_mm), len(case_key))
    prediction = np.zeros(shape)
    observed = np.zeros(shape, dtype=bool)
    prediction[observer_index, severity_index, case_index] = rows["prediction"].to_numpy(dtype=np.float64)
    observed[observer_index, severity_index, case_index] = True

    return ModelData(
        prediction=prediction,
        observed=observed,
        case_subgroup=cases["subgroup"].astype(str).map(subgroup_index).to_numpy(dtype=np.int32),
        observer_group=observer_group,
        observer_kind=str(kinds[0]),
        observer_names=observer_names,
        severity_mm=severity_mm,
        subgroup_names=tuple(ordered),
        case_exam=tuple(cases["exam"].astype(str)),
        case_breast=tuple(cases["breast"].astype(str)),
        case_label=tuple(cases["label"].astype(str)),
    )
