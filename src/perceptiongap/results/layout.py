"""Where everything lives in a results folder: the one place that knows its layout.

::

    run.json                                            what produced the folder (see results.record)
    study/observations.parquet, study/cases.parquet     the study the fits were made on
    posteriors/<model>/<inference>/<observer_group>/seed<k>.nc  one netCDF posterior per fit
    posteriors/<model>/<inference>/<observer_group>__merged/... the merged-subgroup refits
    tables/perturbation_study.csv, merged_subgroups.csv, annotation_study.csv, fits.csv, conclusions.csv,
           model_comparison.csv, ppc.csv, separability_effects.csv
    tables/accuracy.csv, accuracy_summary.csv,          the reader-study statistics (perceptiongap.stats)
           error_consistency.csv, error_consistency_pairs.csv
    figures/<name>.png, figures/<name>.svg              the report's figures
    report.html                                         the self-contained report

Folders written before model variants existed hold ``posteriors/<inference>/<observer_group>/``
(all ``release`` fits); their run.json lists those paths, and :meth:`ResultsFolder.find_posteriors`
finds both layouts, so they stay readable.

Every other module asks :class:`ResultsFolder` for a path instead of joining names itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from perceptiongap.errors import InputError

__all__ = [
    "FAILED_SUFFIX",
    "FIGURES_DIR",
    "MERGED_SUFFIX",
    "POSTERIORS_DIR",
    "REPORT_FILE",
    "REQUIRED_TABLES",
    "RUN_RECORD_FILE",
    "STATISTICS_TABLE_NAMES",
    "STUDY_DIR",
    "TABLES_DIR",
    "TABLE_NAMES",
    "FitJob",
    "failure_path",
    "ResultsFolder",
]

STUDY_DIR = "study"
POSTERIORS_DIR = "posteriors"
TABLES_DIR = "tables"
FIGURES_DIR = "figures"
REPORT_FILE = "report.html"
RUN_RECORD_FILE = "run.json"
#: Suffix of an observer group's folder holding its merged-subgroup refits.
MERGED_SUFFIX = "__merged"
#: Every table `analyse` writes, in the order the report lists them.
TABLE_NAMES = ("perturbation_study", "merged_subgroups", "annotation_study", "fits", "conclusions", "model_comparison",
               "ppc", "separability_effects")
#: The tables without which a folder is not an analysed results folder.
REQUIRED_TABLES = ("perturbation_study", "fits", "conclusions")
#: The reader-study statistics `analyse` writes beside them (a folder analysed before they existed lacks them).
STATISTICS_TABLE_NAMES = ("accuracy", "accuracy_summary", "error_consistency", "error_consistency_pairs")


#: Suffix of the record that replaces the posterior of a fit that failed (``seed<k>.failed.json``).
FAILED_SUFFIX = ".failed.json"


def failure_path(posterior_path: str | Path) -> Path:
    """The failure record beside a posterior's path: ``seed3.nc`` -> ``seed3.failed.json``."""
    path = Path(posterior_path)
    return path.with_name(path.name.removesuffix(".nc") + FAILED_SUFFIX)


@dataclass(frozen=True)
class FitJob:
    """One model fit: an observer group, an inference method, a seed, separate or merged subgroups, a model variant."""

    observer_group: str
    inference: str
    seed: int
    merged: bool = False
    model: str = "release"

    @property
    def relative_path(self) -> str:
        """Where its posterior lives, relative to the results folder (POSIX separators)."""
        folder = self.observer_group + (MERGED_SUFFIX if self.merged else "")
        return f"{POSTERIORS_DIR}/{self.model}/{self.inference}/{folder}/seed{self.seed}.nc"

    def path(self, results_dir: str | Path) -> Path:
        return Path(results_dir) / self.relative_path

    def failure_path(self, results_dir: str | Path) -> Path:
        """Where a fit that failed as Stan's ADVI fails is recorded instead of its posterior."""
        return failure_path(self.path(results_dir))

    def describe(self) -> str:
        merged = ", merged subgroups" if self.merged else ""
        return f"{self.model} {self.inference} {self.observer_group} (seed {self.seed}{merged})"


@dataclass(frozen=True)
class ResultsFolder:
    """The paths of one results folder (nothing is read or written here)."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def study_dir(self) -> Path:
        return self.root / STUDY_DIR

    @property
    def observations_path(self) -> Path:
        return self.study_dir / "observations.parquet"

    @property
    def cases_path(self) -> Path:
        return self.study_dir / "cases.parquet"

    @property
    def posteriors_dir(self) -> Path:
        return self.root / POSTERIORS_DIR

    @property
    def tables_dir(self) -> Path:
        return self.root / TABLES_DIR

    @property
    def figures_dir(self) -> Path:
        return self.root / FIGURES_DIR

    @property
    def report_path(self) -> Path:
        return self.root / REPORT_FILE

    @property
    def run_record_path(self) -> Path:
        return self.root / RUN_RECORD_FILE

    def table_path(self, name: str) -> Path:
        return self.tables_dir / f"{name}.csv"

    def posterior_path(self, job: FitJob) -> Path:
        return job.path(self.root)

    def find_posteriors(self) -> tuple[list[Path], list[Path]]:
        """(separate, merged) posterior files on disk, sorted; for folders whose run.json lists no fits
        (either layout: with the model's folder, or the older one without)."""
        paths = sorted({*self.posteriors_dir.glob("*/*/*/seed*.nc"), *self.posteriors_dir.glob("*/*/seed*.nc")})
        separate = [p for p in paths if not p.parent.name.endswith(MERGED_SUFFIX)]
        merged = [p for p in paths if p.parent.name.endswith(MERGED_SUFFIX)]
        return separate, merged

    def relative(self, path: str | Path) -> str:
        """``path`` relative to the folder, with POSIX separators (as run.json records paths)."""
        return Path(path).absolute().relative_to(self.root.absolute()).as_posix()

    def resolve(self, relative: str) -> Path:
        """The path of a file recorded relative to the folder (in run.json); refuses one that leaves it."""
        path = (self.root / relative).absolute()
        if Path(relative).is_absolute() or ".." in Path(relative).parts:
            raise InputError(f"records {relative!r}, which is not inside the results folder",
                             source=self.run_record_path)
        return path
