"""The authors' release as the study data model: one Observations row per released prediction.

Array axes follow shared/README.md: (observer, severity, exam, breast) for the perturbation study,
(annotator, seed, severity, exam, breast) for the annotation study; the exam axis is in the row
order of ``exam_info.csv``, the breast axis is 0 = left, 1 = right, the severity axis is
:data:`~perceptiongap.vocabulary.PAPER_SEVERITIES_MM`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from perceptiongap.errors import InputError
from perceptiongap.release.safe_pickle import safe_load_pickle
from perceptiongap.release.source import DownloadProgress, locate_release, release_root, verify_release
from perceptiongap.study import validate_cases, validate_observations
from perceptiongap.vocabulary import (
    BREASTS,
    FILTERED_SUFFIX,
    LABELS,
    PAPER_SEVERITIES_MM,
    PAPER_SUBGROUPS,
    ROI_SCHEMES,
)

__all__ = ["ARCHITECTURES", "TRAININGS", "import_release"]

# The release's fixed design (shared/README.md): array axis sizes and the exam_info vocabulary.
N_EXAMS, N_READERS, N_SEEDS, N_ANNOTATORS, N_ANNOTATION_EXAMS = 720, 10, 5, 7, 120
ARCHITECTURES = ("gmic", "dmv")
#: Training data of the networks -> suffix of their observer group (``gmic``, ``gmic_filtered``).
TRAININGS = {"unperturbed": "", "filtered": FILTERED_SUFFIX}


def _shape_error(path: Path, expected: str, obj: Any) -> InputError:
    def describe(item: Any) -> str:
        if isinstance(item, np.ndarray):
            return f"array {item.shape}"
        if isinstance(item, (list, tuple)) and len(item) <= 4:
            return f"{type(item).__name__}({', '.join(describe(x) for x in item)})"
        return type(item).__name__ + (f" of length {len(item)}" if isinstance(item, (list, tuple)) else "")

    return InputError(f"expected {expected}, got {describe(obj)}", source=path)


def _load_array(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    array = safe_load_pickle(path)
    if not isinstance(array, np.ndarray) or array.shape != shape:
        raise _shape_error(path, f"an array of shape {shape}", array)
    return array


def _load_prediction_and_mask(path: Path, n_observers: int) -> tuple[np.ndarray, np.ndarray]:
    """A ``(prediction, mask)`` pair of shapes (observer, severity, exam, breast) and (observer, severity, exam)."""
    shape = (n_observers, len(PAPER_SEVERITIES_MM), N_EXAMS, len(BREASTS))
    obj = safe_load_pickle(path)
    if not (isinstance(obj, (tuple, list)) and len(obj) == 2
            and all(isinstance(a, np.ndarray) for a in obj)
            and obj[0].shape == shape and obj[1].shape == shape[:-1]):
        raise _shape_error(path, f"a tuple (prediction, mask) of shapes {shape} and {shape[:-1]}", obj)
    prediction, mask = obj
    if not np.isin(mask, (0, 1)).all():
        raise InputError("mask: values other than 0 and 1", source=path)
    return prediction.astype(np.float64), mask.astype(bool)


def _long_table(
    values: np.ndarray, keep: np.ndarray | bool, axes: dict[str, np.ndarray], **constants: str
) -> pd.DataFrame:
    """One row per kept cell of ``values``; ``axes`` labels each axis in order, ``constants`` fill the rest."""
    cells = np.nonzero(np.broadcast_to(keep, values.shape))
    columns = {name: labels[index] for (name, labels), index in zip(axes.items(), cells, strict=True)}
    table = pd.DataFrame({**columns, "prediction": values[cells]})
    return table.assign(**constants)


def _read_exam_info(path: Path) -> pd.DataFrame:
    try:
        info = pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise InputError("no such file", source=path) from None
    except Exception as error:
        raise InputError(f"cannot read table: {str(error).strip().splitlines()[0]}", source=path) from None
    missing = [c for c in ("test_set_idx", "y_l", "y_r", "subgroup_l", "subgroup_r") if c not in info.columns]
    if missing:
        raise InputError(f"missing column(s) {', '.join(repr(c) for c in missing)}", source=path)
    if len(info) != N_EXAMS:
        raise InputError(f"expected {N_EXAMS} exams (rows), got {len(info)}", source=path)
    index = info["test_set_idx"].str.strip()
    bad = ~index.str.fullmatch(r"\d+")
    if bad.any():
        row = int(np.flatnonzero(bad)[0]) + 1
        raise InputError(f"column 'test_set_idx', row {row}: {index.iloc[row - 1]!r} is not an integer", source=path)
    exam = index.astype(int).astype(str)  # "007" and "7" are the same exam
    if exam.duplicated().any():
        row = int(np.flatnonzero(exam.duplicated())[0]) + 1
        raise InputError(f"column 'test_set_idx', row {row}: duplicate exam {exam.iloc[row - 1]}", source=path)
    for column, allowed in (("y_l", LABELS), ("y_r", LABELS),
                            ("subgroup_l", PAPER_SUBGROUPS), ("subgroup_r", PAPER_SUBGROUPS)):
        bad = ~info[column].isin(allowed)
        if bad.any():
            row = int(np.flatnonzero(bad)[0]) + 1
            raise InputError(
                f"column {column!r}, row {row}: {info[column].iloc[row - 1]!r} is not one of {', '.join(allowed)}",
                source=path,
            )
    return info.assign(exam=exam)


def _check_predictions(path: Path, prediction: np.ndarray, keep: np.ndarray, *, human: bool) -> None:
    """Refuse a kept cell outside [0, 1] (or not 0/1 for humans), naming its array index."""
    bad = np.broadcast_to(keep, prediction.shape) & ~(
        np.isin(prediction, (0.0, 1.0)) if human else (prediction >= 0) & (prediction <= 1)
    )
    if bad.any():
        cell = tuple(int(i) for i in np.argwhere(bad)[0])
        rule = "human predictions must be 0 or 1" if human else "outside [0, 1]"
        raise InputError(f"prediction{list(cell)} = {float(prediction[cell])!r}: {rule}", source=path)


def _read_annotation_exams(path: Path) -> np.ndarray:
    rows = safe_load_pickle(path)
    if not (isinstance(rows, list) and len(rows) == N_ANNOTATION_EXAMS
            and all(isinstance(r, (int, np.integer)) and not isinstance(r, bool) for r in rows)):
        raise _shape_error(path, f"a list of {N_ANNOTATION_EXAMS} integers", rows)
    rows = np.asarray(rows, dtype=np.int64)
    if rows.min() < 0 or rows.max() >= N_EXAMS or len(np.unique(rows)) != len(rows):
        raise InputError(f"expected {N_ANNOTATION_EXAMS} distinct row indices in [0, {N_EXAMS})", source=path)
    return rows


def import_release(release_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Convert the release in ``release_dir`` to validated (Observations, Cases).

    Checks the structure, shapes and values of every file, not their checksums (that is
    :func:`~perceptiongap.release.source.locate_release`'s job), so a study saved in the release's
    layout can be imported too.
    Observer groups: ``radiologists`` (readers ``reader01``..``reader10``, human, read cells only);
    ``gmic``, ``dmv`` (networks trained on unperturbed images) and ``gmic_filtered``,
    ``dmv_filtered`` (trained on filtered images), machines named ``<group>_seed0``..``_seed4``.
    The annotation study adds rows to ``gmic`` / ``dmv`` with schemes ``roi_interior`` /
    ``roi_exterior`` and annotators ``annotator1``..``annotator7``.
    """
    root = release_root(Path(release_dir))
    info = _read_exam_info(root / "exam_info.csv")
    exams = info["exam"].to_numpy(dtype=object)
    breasts = np.array(BREASTS, dtype=object)  # breast axis 0 = left, 1 = right
    severities = np.asarray(PAPER_SEVERITIES_MM, dtype=np.float64)
    cases = pd.DataFrame({
        "exam": np.repeat(exams, 2),
        "breast": np.tile(breasts, N_EXAMS),
        "label": info[["y_l", "y_r"]].to_numpy().ravel(),
        "subgroup": info[["subgroup_l", "subgroup_r"]].to_numpy().ravel(),
    })

    predictions = root / "observed_predictions"
    parts = []
    path = predictions / "perturbation_study" / "radiologists.pkl"
    prediction, mask = _load_prediction_and_mask(path, N_READERS)
    _check_predictions(path, prediction, mask[..., None], human=True)
    readers = np.array([f"reader{i:02d}" for i in range(1, N_READERS + 1)], dtype=object)
    parts.append(_long_table(
        prediction, mask[..., None],
        {"observer": readers, "severity_mm": severities, "exam": exams, "breast": breasts},
        observer_group="radiologists", observer_kind="human", scheme="entire", annotator="",
    ))
    for architecture in ARCHITECTURES:
        for training, suffix in TRAININGS.items():
            group = architecture + suffix
            path = predictions / "perturbation_study" / "dnns" / architecture / f"{training}.pkl"
            prediction, mask = _load_prediction_and_mask(path, N_SEEDS)
            _check_predictions(path, prediction, mask[..., None], human=False)
            parts.append(_long_table(
                prediction, mask[..., None],
                {"observer": _seed_names(group), "severity_mm": severities, "exam": exams, "breast": breasts},
                observer_group=group, observer_kind="machine", scheme="entire", annotator="",
            ))

    annotation_exams = exams[_read_annotation_exams(root / "annotation_study_idxs.pkl")]
    annotators = np.array([f"annotator{i}" for i in range(1, N_ANNOTATORS + 1)], dtype=object)
    shape = (N_ANNOTATORS, N_SEEDS, len(severities), N_ANNOTATION_EXAMS, len(BREASTS))
    for architecture in ARCHITECTURES:
        for scheme in ROI_SCHEMES:
            path = predictions / "annotation_study" / architecture / f"{scheme}.pkl"
            prediction = _load_array(path, shape).astype(np.float64)
            _check_predictions(path, prediction, True, human=False)
            parts.append(_long_table(
                prediction, True,
                {"annotator": annotators, "observer": _seed_names(architecture), "severity_mm": severities,
                 "exam": annotation_exams, "breast": breasts},
                observer_group=architecture, observer_kind="machine", scheme=scheme,
            ))

    observations = validate_observations(pd.concat(parts, ignore_index=True), source=predictions)
    return observations, validate_cases(cases, source=root / "exam_info.csv")


def _seed_names(group: str) -> np.ndarray:
    # Observer ids are unique across groups: the networks of gmic and gmic_filtered differ.
    return np.array([f"{group}_seed{i}" for i in range(N_SEEDS)], dtype=object)


def write_release_study(
    out: str | Path,
    release: str | Path | None = None,
    *,
    table_format: str = "parquet",
    force: bool = False,
    on_progress: DownloadProgress | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Write the release as ``out/observations.<format>`` and ``out/cases.<format>``; return the two tables.

    ``release`` is a folder holding the published release, verified file by file (SHA-256) as
    :func:`~perceptiongap.release.source.verify_release` does; None finds or downloads it as
    :func:`~perceptiongap.release.source.locate_release` does (``on_progress`` in bytes). A
    non-empty ``out`` is refused unless ``force``; ``out`` is locked while it is written.
    """
    from perceptiongap.files import check_out_dir, check_writable
    from perceptiongap.locks import output_lock
    from perceptiongap.study import write_table

    if table_format not in ("parquet", "csv"):
        raise InputError(f"{table_format!r} is not parquet or csv", source="table_format")
    out = Path(out)
    with output_lock(out, what="output folder"):
        check_out_dir(out, force=force, resumable=False)
        check_writable(out)
        folder = (verify_release(release, setting="`release`") if release is not None
                  else locate_release(on_progress=on_progress))
        observations, cases = import_release(folder)
        write_table(observations, out / f"observations.{table_format}")
        write_table(cases, out / f"cases.{table_format}")
    return observations, cases
