"""Fixtures for the prediction tests: small synthetic exams on disk, and a clean model cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from perceptiongap.predict import jobs
from perceptiongap.reference import write_synthetic_exams

from .predict_helpers import write_rois


@pytest.fixture(scope="session")
def exams_folder(tmp_path_factory) -> Path:
    """Four synthetic exams of 160 x 128 pixels at 0.07 mm (odd ones with specks on the left)."""
    folder = tmp_path_factory.mktemp("exams")
    write_synthetic_exams(folder, 4, shape=(160, 128), pixel_mm=0.07, seed=0)
    return folder


@pytest.fixture(scope="session")
def rois_file(exams_folder) -> Path:
    """Two annotators on exams 0 and 1 (annotator b boxes only the CC views of exam 1)."""
    boxes = []
    for view in ("L-CC", "L-MLO", "R-CC", "R-MLO"):
        boxes.append(("synthetic-0", view, "a", 10, 40, 70, 110))
        boxes.append(("synthetic-1", view, "a", 20, 30, 90, 100))
    boxes += [("synthetic-1", "L-CC", "b", 5, 5, 40, 40), ("synthetic-1", "L-CC", "b", 30, 30, 60, 90),
              ("synthetic-1", "R-CC", "b", 50, 60, 120, 150)]
    return write_rois(exams_folder / "rois.csv", boxes)


@pytest.fixture(autouse=True)
def fresh_model_cache(monkeypatch):
    """Each test loads its networks afresh (the cache lives for a worker process's lifetime)."""
    monkeypatch.setattr(jobs, "_MODELS", {})
