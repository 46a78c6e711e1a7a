"""``run.json``: what produced a results folder, what it wrote there, and what a resumed run must match.

A fit (or reproduce) writes the record before it writes anything else, and completes it when it
finishes. The record holds

- the settings that decide the numbers (stage, inference methods, seed, number of stan-advi
  seeds, merged refit, analysed and merged subgroups) and the SHA-256 of every input file:
  ``--resume`` refuses a run whose settings or inputs differ (:func:`resume_differences`);
- ``fits``: the posterior of every planned fit, so that ``analyse`` reads exactly those;
- ``outputs``: every path perceptiongap wrote or was about to write in the folder (recorded
  *before* writing), so that ``--force`` removes only those, never a user's own file;
- provenance for the report: the command, package versions, platform, times;
- ``statistics``: how ``analyse`` computed the reader-study statistics (seed, bootstrap
  replicates, operating points), or why it could not.
"""

from __future__ import annotations

import datetime as dt
import json
import platform
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from importlib import metadata
from pathlib import Path

from perceptiongap.errors import InputError
from perceptiongap.files import atomic_write_text, sha256_file
from perceptiongap.results.layout import RUN_RECORD_FILE, ResultsFolder

__all__ = [
    "PACKAGES",
    "RunRecord",
    "add_outputs",
    "check_resumable",
    "finish_run",
    "input_checksums",
    "package_versions",
    "read_run_record",
    "record_statistics",
    "resume_differences",
    "subgroup_record",
    "write_run_record",
]

PACKAGES = ("perceptiongap", "numpy", "scipy", "pandas", "jax", "numpyro", "arviz", "matplotlib")


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def input_checksums(inputs: Mapping[str, Path]) -> dict[str, str]:
    """SHA-256 of each input file, keyed by its name in the record (a role such as ``observations``,
    or a path relative to the release folder)."""
    return {name: sha256_file(path) for name, path in inputs.items()}


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def process_command() -> list[str]:
    """This process's command line, program by name: ``perceptiongap fit ...`` or ``my_script.py ...``."""
    program = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
    if program == "__main__.py":  # python -m perceptiongap
        program = "perceptiongap"
    return [program, *sys.argv[1:]]


@dataclass(kw_only=True)
class RunRecord:
    """The contents of ``run.json`` (see the module docstring); JSON keys are the field names."""

    command: list[str] = field(default_factory=process_command)
    stage: str
    inference: list[str]
    seed: int
    advi_seeds: int
    merged: bool
    #: {"analysed": [...], "merged": [...] or None, "how": one line saying how they were chosen}
    subgroups: dict
    input_sha256: dict[str, str]
    #: True: posteriors hold every draw; False: the compact form (results.compact); None: a record from before
    keep_all_draws: bool | None = None
    data_dir: str | None = None
    #: role -> path of each input file as given (fit: observations, cases)
    inputs: dict[str, str] = field(default_factory=dict)
    fits: list[str] = field(default_factory=list)
    #: the model variants fitted (records written before variants existed: release only)
    models: list[str] = field(default_factory=lambda: ["release"])
    outputs: list[str] = field(default_factory=list)
    packages: dict[str, str] = field(default_factory=package_versions)
    platform: str = field(default_factory=platform.platform)
    started_at: str = field(default_factory=_now)
    finished_at: str | None = None
    run_seconds: float | None = None
    #: {"seed", "bootstrap", "operating_points", "subgroups", "merged_subgroups"} as `analyse` computed the
    #: reader-study statistics, or {"skipped": why}; None before `analyse`
    statistics: dict | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_dict(cls, data: Mapping) -> RunRecord:
        """A record from parsed JSON; keys a record of an older version lacks take empty values."""
        known = {name for name in cls.__dataclass_fields__}
        values = {key: value for key, value in data.items() if key in known}
        values.setdefault("stage", "")
        values.setdefault("inference", [])
        values.setdefault("seed", None)
        values.setdefault("advi_seeds", None)
        values.setdefault("merged", None)
        values.setdefault("subgroups", {})
        values.setdefault("input_sha256", {})
        values.setdefault("outputs", None)
        values.setdefault("models", ["release"])
        return cls(**values)

    def finished(self, seconds: float) -> RunRecord:
        return replace(self, finished_at=_now(), run_seconds=round(seconds, 1))

    def settings(self) -> dict:
        """What decides the numbers of the folder: a resumed run must match every item."""
        return {
            "stage": self.stage,
            "inference": sorted(self.inference),
            "models": sorted(self.models),
            "seed": self.seed,
            "advi_seeds": self.advi_seeds,
            "merged": self.merged,
            "subgroups": list((self.subgroups or {}).get("analysed") or []),
            "merged_subgroups": list((self.subgroups or {}).get("merged") or []),
            "keep_all_draws": self.keep_all_draws,
        }


def read_run_record(folder: ResultsFolder) -> tuple[RunRecord | None, dict | None, str | None]:
    """(record, raw JSON, problem): the record of ``folder``, or None and why it could not be read."""
    path = folder.run_record_path
    if not path.is_file():
        return None, None, f"{RUN_RECORD_FILE} is missing"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(raw, dict):
            raise ValueError("not a JSON object")
        return RunRecord.from_dict(raw), raw, None
    except (OSError, ValueError, TypeError) as error:
        return None, None, f"{RUN_RECORD_FILE} could not be read ({error})"


def write_run_record(folder: ResultsFolder, record: RunRecord) -> Path:
    """Write ``run.json`` atomically; return its path."""
    atomic_write_text(folder.run_record_path, record.to_json())
    return folder.run_record_path


def add_outputs(folder: ResultsFolder, paths: Iterable[Path]) -> None:
    """Record ``paths`` (about to be written) in ``run.json``'s outputs; a folder without a record keeps none."""
    record, _, _ = read_run_record(folder)
    if record is None:
        return
    known = list(record.outputs or [])
    new = [folder.relative(path) for path in paths]
    merged = list(dict.fromkeys([*known, *new]))
    if merged != known:
        write_run_record(folder, replace(record, outputs=merged))


def record_statistics(folder: ResultsFolder, statistics: dict) -> None:
    """Record how the reader-study statistics were computed (or why not) in ``run.json``, if the folder has one."""
    record, _, _ = read_run_record(folder)
    if record is not None:
        write_run_record(folder, replace(record, statistics=dict(statistics)))


def finish_run(folder: ResultsFolder, seconds: float) -> None:
    """Mark the record of ``folder`` finished, ``seconds`` after its run started (re-read: stages add outputs)."""
    record, _, _ = read_run_record(folder)
    if record is not None:
        write_run_record(folder, record.finished(seconds))


_SETTING_NAMES = {
    "stage": "stage",
    "inference": "inference",
    "models": "model",
    "seed": "seed",
    "advi_seeds": "advi_seeds",
    "merged": "merged",
    "subgroups": "subgroups",
    "merged_subgroups": "subgroups",
    "keep_all_draws": "keep_all_draws",
}


def _show(value) -> str:
    if isinstance(value, list):
        return ",".join(str(v) for v in value) or "none"
    return str(value)


def resume_differences(old: RunRecord, new: RunRecord) -> list[str]:
    """What differs between a folder's record and a run that would resume it, one phrase each.

    Compares the settings of :meth:`RunRecord.settings` and the SHA-256 of every input.
    """
    differences = []
    old_settings, new_settings = old.settings(), new.settings()
    for key, name in _SETTING_NAMES.items():
        if key == "keep_all_draws" and old_settings[key] is None:
            continue  # a folder written before the setting existed: its posteriors hold every draw, both read alike
        if old_settings[key] != new_settings[key]:
            label = "merged subgroups" if key == "merged_subgroups" else f"`{name}`"
            differences.append(f"{label} {_show(new_settings[key])} (the folder's: {_show(old_settings[key])})")
    for name in sorted(set(old.input_sha256) | set(new.input_sha256)):
        before, now = old.input_sha256.get(name), new.input_sha256.get(name)
        if before != now:
            if before is None or now is None:
                differences.append(f"input {name} {'added' if before is None else 'missing'}")
            else:
                differences.append(f"input {name} changed (SHA-256 {now[:12]}..., the folder's {before[:12]}...)")
    return differences


def check_resumable(old: RunRecord | None, new: RunRecord, folder: ResultsFolder, problem: str | None) -> None:
    """Refuse to resume ``folder`` with ``new`` unless its record exists and matches (one-line InputError)."""
    if old is None:
        raise InputError(f"cannot resume: {problem}; use `force` to start afresh", source=folder.root)
    differences = resume_differences(old, new)
    older = [fit for fit in old.fits if len(Path(fit).parts) == 4]  # posteriors/<inference>/<group>/seed<k>.nc
    if older and not differences:
        raise InputError(f"cannot resume: the folder was written before model variants (its posteriors lie in "
                         f"{Path(older[0]).parent.parent.as_posix()}/, not posteriors/<model>/...); `analyse` still "
                         "reads it; use `force` to start afresh, or another folder", source=folder.root)
    if differences:
        raise InputError("cannot resume with different settings or inputs: " + "; ".join(differences)
                         + "; use `force` to start afresh, or another folder", source=folder.root)


def subgroup_record(analysed: Sequence[str], merged: Sequence[str] | None, how: str) -> dict:
    return {"analysed": list(analysed), "merged": list(merged) if merged else None, "how": how}
