"""run.json: what produced a results folder (command, seeds, inputs' SHA-256, package versions, time)."""

from __future__ import annotations

import datetime as dt
import json
import platform
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

from perceptiongap.files import atomic_write_text, sha256_file

PACKAGES = ("perceptiongap", "numpy", "scipy", "pandas", "jax", "numpyro", "arviz", "matplotlib")


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def write_run_record(
    results_dir: Path,
    *,
    command: Sequence[str],
    seed: int,
    advi_seeds: int,
    inference: Sequence[str],
    seconds: float,
    data_dir: Path | None = None,
    inputs: Sequence[Path] = (),
) -> Path:
    """Write ``run.json`` into ``results_dir``; inputs are every file of ``data_dir`` plus ``inputs``."""
    files = sorted(p for p in Path(data_dir).rglob("*") if p.is_file()) if data_dir else []
    files += [Path(p) for p in inputs]
    base = Path(data_dir) if data_dir else None
    checksums = {
        (str(p.relative_to(base)) if base and p.is_relative_to(base) else str(p)): sha256_file(p) for p in files
    }
    record = {
        "command": list(command),
        "seed": seed,
        "advi_seeds": advi_seeds,
        "inference": list(inference),
        "data_dir": str(data_dir) if data_dir else None,
        "input_sha256": checksums,
        "packages": package_versions(),
        "platform": platform.platform(),
        "finished_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "run_seconds": round(seconds, 1),
    }
    path = Path(results_dir) / "run.json"
    atomic_write_text(path, json.dumps(record, indent=2) + "\n")
    return path
