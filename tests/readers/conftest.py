"""Fixtures of the reader-study tests: study inputs, a designed study (copied per test), a server."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from perceptiongap.readers import create_study
from tests.readers.helpers import start_server, write_inputs

CUTOFFS = (float("inf"), 1.0, 0.5)


@pytest.fixture(scope="session")
def study_inputs(tmp_path_factory) -> dict:
    return write_inputs(tmp_path_factory.mktemp("inputs"), n_readers=10)


@pytest.fixture(scope="session")
def template_study(tmp_path_factory, study_inputs) -> Path:
    """A small perturbation study: 8 exams (1 practice), 10 readers, severities 0, 1 and 2 mm."""
    out = tmp_path_factory.mktemp("template") / "study"
    create_study(study_inputs["exams"], study_inputs["cases"], study_inputs["readers"], out,
                 cutoffs_per_mm=CUTOFFS, practice=1, seed=3)
    return out


@pytest.fixture()
def study(tmp_path, template_study) -> Path:
    """A fresh copy of the template study (tests write answers into it)."""
    target = tmp_path / "study"
    shutil.copytree(template_study, target)
    return target


@pytest.fixture()
def server(study):
    """A real `perceptiongap serve` process on 127.0.0.1 over a fresh study."""
    process = start_server(study)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def shared_study(tmp_path_factory, template_study) -> Path:
    target = tmp_path_factory.mktemp("shared") / "study"
    shutil.copytree(template_study, target)
    return target


@pytest.fixture(scope="module")
def shared_server(shared_study):
    """One server for a module's tests; each test uses readers no other test of the module uses."""
    process = start_server(shared_study)
    yield process
    process.stop()
