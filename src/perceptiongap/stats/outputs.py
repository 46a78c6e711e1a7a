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
:func:`statistics_tables` computes the same tables without writing them: ``perceptiongap analyse``
(and so ``reproduce``) puts them in a results folder's ``tables/``.
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

__all__ = ["STATISTICS_FILES", "STATISTICS_TABLES", "statistics_tables", "write_statistics"]

#: The tables, by name (the file is ``<name>.csv``), in the order they are written.
STATISTICS_TABLES: tuple[str, ...] = ("accuracy", "accuracy_summary", "error_consistency", "error_consistency_pairs")
STATISTICS_FILES: tuple[str, ...] = (
    *(f"{name}.csv" for name in STATISTICS_TABLES),
    "figures/accuracy.png", "figures/accuracy.svg", "figures/error_consistency.png", "figures/error_consistency.svg",
)

#: progress(stage, done, total), stage one of "accuracy", "error consistency", "figures".
Progress = Callable[[str, int, int], None]


def statistics_tables(
    observations: pd.DataFrame,
    cases: pd.DataFrame,
    *,
    seed: int = 0,
    n_bootstrap: int = 2000,
    operating_points: Sequence[OperatingPoint] | None = None,
    subgroups: Sequence[str] | None = None,
    merged_subgroups: Sequence[str] | None = None,
    auc_score: str = "auto",
    progress: Progress | None = None,
) -> dict[str, pd.DataFrame]:
    """The tables of :data:`STATISTICS_TABLES`, keyed by name (no file is written).

    ``operating_points`` default: the readers' mean specificity and 0.5 when the study has readers,
    else 0.5 (:func:`~perceptiongap.stats.operating_point.default_operating_points`); error
    consistency uses the first.
    """
    points = tuple(operating_points) if operating_points else default_operating_points(observations)
    step = (lambda stage: (lambda done, total: progress(stage, done, total))) if progress else (lambda stage: None)
    table = accuracy_table(observations, cases, seed=seed, n_bootstrap=n_bootstrap, operating_points=points,
                           subgroups=subgroups, merged_subgroups=merged_subgroups, auc_score=auc_score,
                           progress=step("accuracy"))
    consistency = error_consistency_tables(observations, cases, seed=seed, n_bootstrap=n_bootstrap,
                                           operating_point=points[0], subgroups=subgroups,
                                           merged_subgroups=merged_subgroups, progress=step("error consistency"))
    return {"accuracy": table, "accuracy_summary": accuracy_summary(table),
            "error_consistency": consistency.summary, "error_consistency_pairs": consistency.pairs}


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
    """Compute (:func:`statistics_tables`) and write every file of :data:`STATISTICS_FILES` into ``out``;
    return name -> path. Holds the output lock on ``out`` while writing.
    """
    from perceptiongap.report.figures import save_figure
    from perceptiongap.stats.figures import accuracy_figure, error_consistency_figure

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError("is a file, not a folder", source=out)
    with output_lock(out, what="statistics folder"):
        existing = [name for name in STATISTICS_FILES if (out / name).exists()]
        if existing and not overwrite:
            raise InputError(f"{existing[0]} exists; use --force to overwrite", source=out)
        tables = statistics_tables(observations, cases, seed=seed, n_bootstrap=n_bootstrap,
                                   operating_points=operating_points, subgroups=subgroups, auc_score=auc_score,
                                   progress=progress)
        out.mkdir(parents=True, exist_ok=True)
        paths = {}
        for name in STATISTICS_TABLES:
            write_table(tables[name], out / f"{name}.csv")
            paths[f"{name}.csv"] = out / f"{name}.csv"
        figures = (("accuracy", lambda: accuracy_figure(tables["accuracy_summary"])),
                   ("error_consistency", lambda: error_consistency_figure(tables["error_consistency"])))
        for done, (name, build) in enumerate(figures, start=1):
            figure = build()
            for path in save_figure(figure, out / "figures", name):
                paths[f"figures/{path.name}"] = path
            figure.clear()
            if progress:
                progress("figures", done, len(figures))
    return paths
