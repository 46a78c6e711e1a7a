"""Helpers for the prediction tests."""

from __future__ import annotations

from pathlib import Path


def write_rois(path: Path, boxes: list[tuple[str, str, str, int, int, int, int]]) -> Path:
    """ROI file with one row per box: (exam, view, annotator, x0, y0, x1, y1), pixels, end exclusive."""
    lines = ["exam,view,annotator,x0,y0,x1,y1"] + [",".join(map(str, box)) for box in boxes]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_cases(path: Path, exams: list[str], speck_exams: set[str]) -> Path:
    """Cases of synthetic exams: a left breast with specks is a malignant microcalcification,
    every other breast is non-biopsied."""
    lines = ["exam,breast,label,subgroup"]
    for exam in exams:
        for breast in ("L", "R"):
            malignant = breast == "L" and exam in speck_exams
            label = "malignant,microcalcifications" if malignant else "nonbiopsied,nonbiopsied"
            lines.append(f"{exam},{breast},{label}")
    path.write_text("\n".join(lines) + "\n")
    return path
