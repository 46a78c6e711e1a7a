"""Read what a results folder holds (tables, fits' attributes, run.json) without refitting anything."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from perceptiongap.errors import InputError

TABLE_NAMES = ("perturbation_study", "merged_subgroups", "annotation_study", "fits", "conclusions")
REQUIRED_TABLES = ("perturbation_study", "fits")


@dataclass
class Results:
    """The saved outputs of one results folder."""

    folder: Path
    tables: dict[str, pd.DataFrame]
    fit_attrs: list[dict] = field(default_factory=list)  # posterior attributes of every fit
    fit_paths: list[Path] = field(default_factory=list)  # their netCDF files, same order
    run: dict | None = None  # run.json, None when missing
    run_problem: str | None = None  # why run.json could not be used

    @property
    def observer_kinds(self) -> dict[str, str]:
        from perceptiongap.analysis.conclusions import observer_kinds

        return observer_kinds(self.tables)


def _plain(value):
    """HDF5 attribute values as Python scalars (netCDF stores a scalar as a 1-element array)."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray) and value.ndim <= 1 and value.size == 1:
        return _plain(value.reshape(-1)[0])
    if isinstance(value, np.generic):
        return value.item()
    return value


def read_fit_attrs(path: Path) -> dict:
    """The attributes of a saved posterior (its ``posterior`` group), read without loading the draws."""
    import h5py

    try:
        with h5py.File(path, "r") as store:
            return {key: _plain(value) for key, value in store["posterior"].attrs.items()}
    except (OSError, KeyError) as error:
        raise InputError(f"not a readable posterior ({error})", source=path) from None


def read_table(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path, keep_default_na=True)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise InputError(f"unreadable table ({error})", source=path) from None


def read_results(results_dir: Path) -> Results:
    """Tables, fit attributes and run record of ``results_dir``; InputError if it is not a results folder."""
    from perceptiongap.workflow import posterior_paths

    folder = Path(results_dir)
    if not folder.is_dir():
        what = "a file" if folder.exists() else "no such folder"
        raise InputError(f"not a results folder ({what})", source=folder)
    tables_dir = folder / "tables"
    missing = [name for name in REQUIRED_TABLES if not (tables_dir / f"{name}.csv").is_file()]
    if missing:
        hint = ("run `perceptiongap analyse` first" if (folder / "posteriors").is_dir()
                else "expected the output of `perceptiongap reproduce` or `fit` + `analyse`")
        raise InputError(f"not a results folder (no tables/{missing[0]}.csv); {hint}", source=folder)
    tables = {name: read_table(tables_dir / f"{name}.csv") for name in TABLE_NAMES
              if (tables_dir / f"{name}.csv").is_file()}
    separate, merged = posterior_paths(folder)
    paths = separate + merged
    run, problem = None, "run.json is missing"
    run_path = folder / "run.json"
    if run_path.is_file():
        try:
            run, problem = json.loads(run_path.read_text(encoding="utf-8")), None
        except (OSError, ValueError) as error:
            problem = f"run.json could not be read ({error})"
    return Results(folder, tables, [read_fit_attrs(p) for p in paths], paths, run, problem)
