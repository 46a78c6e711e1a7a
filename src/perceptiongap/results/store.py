"""Reading and writing what a results folder holds: the study, posteriors, tables, fits' attributes.

Posteriors are ArviZ ``InferenceData`` in netCDF (``perceptiongap.model.save_posterior``); the
report reads only their attributes (and NUTS's severity effects), through xarray, lazily, without
loading the draws. Tables are CSV with fixed columns; a table whose columns are not those
expected is refused with one line naming the file and the missing columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from perceptiongap.errors import InputError
from perceptiongap.files import same_file
from perceptiongap.results.layout import MERGED_SUFFIX, REQUIRED_TABLES, TABLE_NAMES, ResultsFolder
from perceptiongap.results.record import RunRecord, read_run_record

__all__ = [
    "REPORTED_STATISTICS",
    "Results",
    "conclusions_of_model",
    "read_conclusions",
    "read_fit_attrs",
    "read_posteriors",
    "read_results",
    "read_results_table",
    "read_study_of",
    "table_columns",
    "write_results_table",
    "write_study_into",
]


#: The reader-study statistics the report shows (their summaries; the per-observer and per-pair tables stay on disk).
REPORTED_STATISTICS = ("accuracy_summary", "error_consistency")


def table_columns() -> dict[str, tuple[str, ...]]:
    """The columns each table of :data:`~perceptiongap.results.layout.TABLE_NAMES` and
    :data:`~perceptiongap.results.layout.STATISTICS_TABLE_NAMES` must have."""
    from perceptiongap.analysis.annotation import ANNOTATION_COLUMNS
    from perceptiongap.analysis.comparison import COMPARISON_COLUMNS
    from perceptiongap.analysis.conclusions import CONCLUSION_COLUMNS
    from perceptiongap.analysis.fits import FITS_COLUMNS
    from perceptiongap.analysis.ppc import PPC_COLUMNS
    from perceptiongap.analysis.separability_effects import SEPARABILITY_EFFECT_COLUMNS
    from perceptiongap.analysis.summary import MERGED_COLUMNS, PERTURBATION_COLUMNS
    from perceptiongap.stats import (
        ACCURACY_COLUMNS,
        ACCURACY_SUMMARY_COLUMNS,
        CONSISTENCY_PAIR_COLUMNS,
        CONSISTENCY_SUMMARY_COLUMNS,
    )

    return {"perturbation_study": PERTURBATION_COLUMNS, "merged_subgroups": MERGED_COLUMNS,
            "annotation_study": ANNOTATION_COLUMNS, "fits": FITS_COLUMNS, "conclusions": CONCLUSION_COLUMNS,
            "model_comparison": COMPARISON_COLUMNS, "ppc": PPC_COLUMNS,
            "separability_effects": SEPARABILITY_EFFECT_COLUMNS,
            "accuracy": ACCURACY_COLUMNS, "accuracy_summary": ACCURACY_SUMMARY_COLUMNS,
            "error_consistency": CONSISTENCY_SUMMARY_COLUMNS, "error_consistency_pairs": CONSISTENCY_PAIR_COLUMNS}


# --------------------------------------------------------------------------------------------
# The study


def write_study_into(folder: ResultsFolder, observations: pd.DataFrame, cases: pd.DataFrame,
                     *, keep: Sequence[Path] = ()) -> None:
    """Write the study the fits are made on into ``study/``; a file in ``keep`` (an input being read) is left as is."""
    from perceptiongap.study import write_table

    for table, path in ((observations, folder.observations_path), (cases, folder.cases_path)):
        if not any(same_file(path, other) for other in keep):
            write_table(table, path)


def read_study_of(folder: ResultsFolder) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The Observations and Cases of ``study/``, validated."""
    from perceptiongap.study import read_study

    if not folder.observations_path.is_file():
        raise InputError(f"not a results folder (no {folder.relative(folder.observations_path)}); "
                         "run `perceptiongap fit` first", source=folder.root)
    return read_study(folder.observations_path, folder.cases_path)


# --------------------------------------------------------------------------------------------
# Posteriors


def _plain(value):
    """netCDF attribute values as Python scalars (arrays, such as ELBO traces, stay arrays)."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value


def read_fit_attrs(path: Path) -> dict:
    """The attributes of a saved posterior (its ``posterior`` group), read lazily: no draw is loaded."""
    import xarray as xr

    try:
        with xr.open_dataset(path, group="posterior", engine="h5netcdf") as dataset:
            return {key: _plain(value) for key, value in dataset.attrs.items()}
    except (OSError, ValueError, KeyError) as error:
        raise InputError(f"not a readable posterior ({type(error).__name__}: {error})", source=path) from None


def read_posteriors(paths: Sequence[Path]) -> list:
    """The posteriors (ArviZ ``InferenceData``) saved at ``paths``; an unreadable file is an InputError."""
    from perceptiongap.model import load_posterior

    posteriors = []
    for path in paths:
        try:
            posteriors.append(load_posterior(path))
        except (OSError, ValueError, KeyError) as error:
            raise InputError(f"not a readable posterior ({type(error).__name__}: {error})", source=path) from None
    return posteriors


# --------------------------------------------------------------------------------------------
# Tables


def read_results_table(path: Path, columns: Sequence[str] = ()) -> pd.DataFrame:
    """A table of ``tables/``; refuses an unreadable file or one that lacks any of ``columns``."""
    try:
        table = pd.read_csv(path, keep_default_na=True)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise InputError(f"unreadable table ({error})", source=path) from None
    missing = [column for column in columns if column not in table.columns]
    if missing:
        raise InputError(f"not a table written by `perceptiongap analyse`: missing column(s) "
                         f"{', '.join(repr(c) for c in missing)}", source=path)
    return table


def write_results_table(folder: ResultsFolder, name: str, table: pd.DataFrame) -> Path:
    from perceptiongap.study import write_table

    path = folder.table_path(name)
    write_table(table, path)
    return path


def read_conclusions(results: str | Path | ResultsFolder, model: str | None = None) -> list:
    """The conclusions as ``analyse`` judged them under ``model`` (default: ``release`` where judged,
    else the first model of the table), read back from ``tables/conclusions.csv``."""
    from perceptiongap.analysis.conclusions import CONCLUSION_COLUMNS, conclusions_from_table

    folder = results if isinstance(results, ResultsFolder) else ResultsFolder(Path(results))
    table = read_results_table(folder.table_path("conclusions"), CONCLUSION_COLUMNS)
    return conclusions_from_table(conclusions_of_model(table, model))


def conclusions_of_model(table: pd.DataFrame, model: str | None = None) -> pd.DataFrame:
    """The rows of ``tables/conclusions.csv`` judged under ``model`` (default: ``release`` where judged,
    else the first); a table without a ``model`` column (older folders) is all ``release``."""
    if "model" not in table:
        return table
    models = [str(m) for m in pd.unique(table["model"].dropna())]
    chosen = model if model is not None else ("release" if "release" in models or not models else models[0])
    return table[table["model"].astype(str) == chosen].drop(columns="model").reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# Everything the report needs


@dataclass
class Results:
    """The saved outputs of one results folder."""

    folder: Path
    tables: dict[str, pd.DataFrame]  # by name; the REPORTED_STATISTICS too, where on disk
    fit_attrs: list[dict] = field(default_factory=list)  # posterior attributes of every fit
    fit_paths: list[Path] = field(default_factory=list)  # their netCDF files, same order
    run: dict | None = None  # run.json as written, None when missing
    run_problem: str | None = None  # why run.json could not be used
    record: RunRecord | None = None  # run.json as a record
    #: every model's tables when ``tables`` holds one model's view (the report's main sections)
    all_tables: dict[str, pd.DataFrame] | None = None

    @property
    def observer_kinds(self) -> dict[str, str]:
        from perceptiongap.analysis.conclusions import observer_kinds

        return observer_kinds(self.tables)

    @property
    def merged_subgroups(self) -> tuple[str, ...] | None:
        """The subgroups merged in the merged refit, as run.json records them (None when unknown)."""
        merged = ((self.record.subgroups or {}).get("merged") if self.record else None)
        return tuple(merged) if merged else None


def posterior_files(folder: ResultsFolder, record: RunRecord | None) -> list[Path]:
    """The posteriors of a folder: those its run.json plans, else every one on disk.

    Sorted by path, the separate fits before the merged refits (the row order of ``tables/fits.csv``).
    """
    if record is None or not record.fits:
        separate, merged = folder.find_posteriors()
        return separate + merged
    paths = sorted(folder.resolve(relative) for relative in record.fits)
    return ([p for p in paths if not p.parent.name.endswith(MERGED_SUFFIX)]
            + [p for p in paths if p.parent.name.endswith(MERGED_SUFFIX)])


def read_results(results_dir: str | Path) -> Results:
    """Tables, fit attributes and run record of ``results_dir``; InputError if it is not an analysed results folder."""
    folder = ResultsFolder(Path(results_dir))
    if not folder.root.is_dir():
        what = "a file" if folder.root.exists() else "no such folder"
        raise InputError(f"not a results folder ({what})", source=folder.root)
    missing = [name for name in REQUIRED_TABLES if not folder.table_path(name).is_file()]
    if missing:
        hint = ("run `perceptiongap analyse` first" if folder.posteriors_dir.is_dir()
                else "expected the output of `perceptiongap reproduce` or `fit` + `analyse`")
        raise InputError(f"not a results folder (no tables/{missing[0]}.csv); {hint}", source=folder.root)
    columns = table_columns()
    tables = {name: read_results_table(folder.table_path(name), columns[name])
              for name in (*TABLE_NAMES, *REPORTED_STATISTICS) if folder.table_path(name).is_file()}
    record, raw, problem = read_run_record(folder)
    paths = [path for path in posterior_files(folder, record) if path.is_file()]
    return Results(folder.root, tables, [read_fit_attrs(p) for p in paths], paths, raw, problem, record)
