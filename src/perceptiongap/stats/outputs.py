"""The folder ``perceptiongap accuracy`` writes: the accuracy and error-consistency tables and figures.

=================================  ==============================================================
``accuracy.csv``                   :func:`~perceptiongap.stats.accuracy.accuracy_table`
``accuracy_summary.csv``           :func:`~perceptiongap.stats.accuracy.accuracy_summary`
``error_consistency.csv``          summary per pair kind (:mod:`perceptiongap.stats.consistency`)
``error_consistency_pairs.csv``    every pair of observers
``figures/accuracy.png|svg``       :func:`~perceptiongap.stats.figures.accuracy_figure`
``figures/error_consistency.*``    :func:`~perceptiongap.stats.figures.error_consistency_figure`
=================================  ==============================================================

Each file is written atomically; existing ones are replaced only with ``overwrite=True``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from perceptiongap.errors import InputError
from perceptiongap.locks import output_lock
from perceptiongap.stats.accuracy import accuracy_summary, accuracy_table
from perceptiongap.stats.consistency import error_consistency_tables
from perceptiongap.stats.operating_point import OperatingPoint, default_operating_points
from perceptiongap.study import write_table

__all__ = ["STATISTICS_FILES", "write_statistics"]

STATISTICS_FILES: tuple[str, ...] = (
    "accuracy.csv", "accuracy_summary.csv", "error_consistency.csv", "error_consistency_pairs.csv",
    "figures/accuracy.png", "figures/accuracy.svg", "figures/error_consistency.png", "figures/error_consistency.svg",
)

#: progress(stage, done, total), stage one of "accuracy", "error consistency", "figures".
Progress = Callable[[str, int, int], None]


def write_statistics(
    observations: pd.DataFrame,
    cases: pd.DataFrame,
    out: str | Path,
    *,
    seed: int = 0,
    n_bootstrap: int = 2000,
    operating_points: Sequence[OperatingPoint] | None = None,
    subgroups: Sequence[str] | None = None,
    auc_score: str = "auto",
    overwrite: bool = False,
    progress: Progress | None = None,
) -> dict[str, Path]:
    """Compute and write every file of :data:`STATISTICS_FILES` into ``out``; return name -> path.

    ``operating_points`` default: the readers' mean specificity and 0.5 when the study has readers,
    else 0.5 (:func:`~perceptiongap.stats.operating_point.default_operating_points`); error
    consistency uses the first. Holds the output lock on ``out`` while writing.
    """
    from perceptiongap.stats.figures import accuracy_figure, error_consistency_figure, save_figure

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError("is a file, not a folder", source=out)
    points = tuple(operating_points) if operating_points else default_operating_points(observations)
    with output_lock(out, what="statistics folder"):
        existing = [name for name in STATISTICS_FILES if (out / name).exists()]
        if existing and not overwrite:
            raise InputError(f"{existing[0]} exists; use --force to overwrite", source=out)
        step = (lambda stage: (lambda done, total: progress(stage, done, total))) if progress else (lambda stage: None)
        table = accuracy_table(observations, cases, seed=seed, n_bootstrap=n_bootstrap, operating_points=points,
                               subgroups=subgroups, auc_score=auc_score, progress=step("accuracy"))
        summary = accuracy_summary(table)
        consistency = error_consistency_tables(observations, cases, seed=seed, n_bootstrap=n_bootstrap,
                                               operating_point=points[0], subgroups=subgroups,
                                               progress=step("error consistency"))
        out.mkdir(parents=True, exist_ok=True)
        paths = {}
        for name, frame in (("accuracy.csv", table), ("accuracy_summary.csv", summary),
                            ("error_consistency.csv", consistency.summary),
                            ("error_consistency_pairs.csv", consistency.pairs)):
            write_table(frame, out / name)
            paths[name] = out / name
        for done, (name, build) in enumerate((("accuracy", lambda: accuracy_figure(summary)),
                                              ("error_consistency", lambda: error_consistency_figure(
                                                  consistency.summary))), start=1):
            figure = build()
            for path in save_figure(figure, out / "figures", name):
                paths[f"figures/{path.name}"] = path
            figure.clear()
            if progress:
                progress("figures", done, 2)
    return paths
