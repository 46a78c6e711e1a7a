"""Class separability of observed predictions, with no model (dense observer groups).

Networks predict every breast at every severity, so their class separability can be computed on
their own predictions, as a check of the model-based statistic. The observations of one observer
group and scheme become a dense array (observer, severity, case), or (annotator, observer,
severity, case) for the ROI schemes, whose missing cells are refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
import xarray as xr

from perceptiongap.analysis.separability import class_separability, separability_summary
from perceptiongap.errors import InputError
from perceptiongap.vocabulary import ANALYSED_SUBGROUPS


def _codes(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    codes, uniques = pd.factorize(values, sort=True)
    return codes, np.asarray(uniques)


def observed_predictions(
    observations: pd.DataFrame,
    cases: pd.DataFrame,
    observer_group: str,
    scheme: str = "entire",
    *,
    exams: Iterable[str] | None = None,
    source: str = "observations",
) -> xr.DataArray:
    """The predictions of one observer group and scheme as a dense DataArray.

    Dims (observer, severity, case) for ``scheme="entire"``, (annotator, observer, severity, case)
    for the ROI schemes; the case dim holds the breasts observed (restricted to ``exams`` if
    given), with coords ``exam``, ``breast``, ``label`` and ``subgroup`` from Cases. Every
    observer (and annotator) must have predicted every one of those breasts at every severity
    exactly once, else :class:`InputError`.
    """
    rows = observations[(observations["observer_group"] == observer_group) & (observations["scheme"] == scheme)]
    if exams is not None:
        rows = rows[rows["exam"].isin(list(exams))]
    if rows.empty:
        raise InputError(f"no observations of observer_group {observer_group!r} with scheme {scheme!r}", source=source)

    case_index = pd.MultiIndex.from_arrays([cases["exam"].astype(str), cases["breast"].astype(str)])
    row_index = pd.MultiIndex.from_arrays([rows["exam"].astype(str), rows["breast"].astype(str)])
    case_rows = case_index.get_indexer(row_index)
    if (case_rows < 0).any():
        bad = rows.iloc[int(np.flatnonzero(case_rows < 0)[0])]
        raise InputError(f"exam {bad['exam']!r} breast {bad['breast']!r} is not in Cases", source=source)

    roi = scheme != "entire"
    dims = ("annotator", "observer", "severity", "case") if roi else ("observer", "severity", "case")
    columns = {"annotator": rows["annotator"].astype(str), "observer": rows["observer"].astype(str),
               "severity": rows["severity_mm"].astype(float), "case": pd.Series(case_rows, index=rows.index)}
    codes, labels = zip(*(_codes(columns[dim]) for dim in dims))
    shape = tuple(len(label) for label in labels)
    flat = np.ravel_multi_index(codes, shape)
    counts = np.bincount(flat, minlength=int(np.prod(shape)))
    if (counts != 1).any():
        cell = np.unravel_index(int(np.flatnonzero(counts != 1)[0]), shape)
        names = {dim: label[i] for dim, label, i in zip(dims, labels, cell)}
        case = cases.iloc[int(names.pop("case"))]
        where = ", ".join(
            f"severity {float(value):g} mm" if dim == "severity" else f"{dim} {str(value)!r}"
            for dim, value in names.items()
        )
        problem = "no prediction" if counts[np.ravel_multi_index(cell, shape)] == 0 else "several predictions"
        raise InputError(
            f"observer_group {observer_group!r}, scheme {scheme!r}: {problem} for {where}, exam "
            f"{case['exam']!r} breast {case['breast']!r} (class separability of observed predictions needs "
            "every observer to predict every breast at every severity)",
            source=source,
        )
    values = np.empty(int(np.prod(shape)))
    values[flat] = rows["prediction"].to_numpy(dtype=float)
    case_positions = labels[-1].astype(int)
    selected = cases.iloc[case_positions]
    coords = {dim: label for dim, label in zip(dims[:-1], labels[:-1])}
    coords["case"] = np.arange(len(case_positions))
    for column in ("exam", "breast", "label", "subgroup"):
        coords[column] = ("case", selected[column].astype(str).to_numpy())
    return xr.DataArray(values.reshape(shape), dims=dims, coords=coords, name="prediction")


def observed_separability(
    observations: pd.DataFrame,
    cases: pd.DataFrame,
    observer_group: str,
    scheme: str = "entire",
    *,
    subgroups: Sequence[str] = ANALYSED_SUBGROUPS,
    exams: Iterable[str] | None = None,
    source: str = "observations",
) -> pd.DataFrame:
    """Class separability of one dense observer group's own predictions, per subgroup and severity.

    Columns: inference (``observed``), observer_group, subgroup, severity_mm, separability_mean,
    separability_sd, p_separability_drop: the statistics of :func:`separability_summary` over the
    observers (and, for ROI schemes, annotators).
    """
    predictions = observed_predictions(observations, cases, observer_group, scheme, exams=exams, source=source)
    if not (predictions["severity"].values == 0).any():
        raise InputError(f"observer_group {observer_group!r} has no severity 0 (unperturbed) predictions",
                         source=source)
    tables = []
    for subgroup in subgroups:
        ks = class_separability(predictions, predictions["label"], predictions["subgroup"], subgroup)
        table = separability_summary(ks)
        table.insert(0, "subgroup", subgroup)
        tables.append(table)
    table = pd.concat(tables, ignore_index=True)
    table.insert(0, "observer_group", observer_group)
    table.insert(0, "inference", "observed")
    return table
