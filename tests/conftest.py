"""Shared fixtures. Tests that need the read-only ``shared/`` folder find it via PERCEPTIONGAP_SHARED."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    path = Path(os.environ.get("PERCEPTIONGAP_SHARED", REPO_ROOT.parent / "shared")).resolve()
    if not (path / "nyu-release" / "SHA256SUMS").is_file():
        pytest.fail(f"shared data not found at {path}; set PERCEPTIONGAP_SHARED")
    return path


@pytest.fixture(scope="session")
def release_dir(shared_dir: Path) -> Path:
    return shared_dir / "nyu-release"


@pytest.fixture(scope="session")
def exam_dir(shared_dir: Path) -> Path:
    return shared_dir / "mammograms" / "gmic-sample-exam0"


@pytest.fixture(scope="session")
def release_study(release_dir: Path):
    """(observations, cases) of the authors' release, imported once per test session."""
    from perceptiongap.release import import_release

    return import_release(release_dir)
