"""What a reader sends when they submit an exam, checked before anything is written.

A submission is JSON (see ``docs/reader-study-api.md``)::

    {"idempotency_key": "...", "active_seconds": 83.4,
     "answers": {"L": {"birads": "1", "malignant": false, "pom": 0}, "R": {...}},
     "rois": [{"view": "R-CC", "x0": 812, "y0": 1400, "x1": 1062, "y1": 1650}]}

:func:`parse_submission` returns a :class:`Submission` or raises
:class:`~perceptiongap.readers.answers.AnswerError` naming the rule broken.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from perceptiongap.readers.answers import Answer, AnswerError, breast_name, check_answer
from perceptiongap.readers.db import MAX_ROIS_PER_VIEW

__all__ = ["Roi", "Submission", "parse_submission"]

_KEY = re.compile(r"^[A-Za-z0-9_-]{8,128}$")


@dataclass(frozen=True)
class Roi:
    """A box in stored-image pixels, half-open: columns ``x0 <= x < x1``, rows ``y0 <= y < y1``."""

    view: str
    x0: int
    y0: int
    x1: int
    y1: int


@dataclass(frozen=True)
class Submission:
    """A checked submission; ``fingerprint`` identifies its answers and ROIs (for retries)."""

    idempotency_key: str
    active_seconds: float
    answers: dict[str, Answer]
    rois: tuple[Roi, ...]

    @property
    def fingerprint(self) -> str:
        content = {
            "answers": {b: [a.birads, a.malignant, a.pom] for b, a in sorted(self.answers.items())},
            "rois": sorted([r.view, r.x0, r.y0, r.x1, r.y1] for r in self.rois),
        }
        return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _parse_rois(raw: object, annotate: bool, sizes: Mapping[str, tuple[int, int]],
                answers: Mapping[str, Answer]) -> tuple[Roi, ...]:
    if raw is None or raw == []:
        return ()
    if not annotate:
        raise AnswerError("ROIs are collected only in annotation studies; send no 'rois'", rule="rois_mode")
    if not isinstance(raw, list):
        raise AnswerError("'rois' must be a list of boxes", rule="roi_box")
    rois, per_view = [], {}
    for index, item in enumerate(raw, start=1):
        if not isinstance(item, Mapping):
            raise AnswerError(f"ROI {index}: must be an object with view, x0, y0, x1, y1", rule="roi_box")
        view = item.get("view")
        if view not in sizes:
            raise AnswerError(f"ROI {index}: view must be one of {', '.join(sizes)}, got {view!r}",
                              rule="roi_view", view=view if isinstance(view, str) else None)
        corners = [item.get(k) for k in ("x0", "y0", "x1", "y1")]
        if not all(_number(c) for c in corners):
            raise AnswerError(f"ROI {index} on {view}: x0, y0, x1, y1 must be numbers (pixels)",
                              rule="roi_box", view=view)
        x0, y0, x1, y1 = (int(round(c)) for c in corners)
        rows, columns = sizes[view]
        if not (0 <= x0 < x1 <= columns and 0 <= y0 < y1 <= rows):
            raise AnswerError(
                f"ROI {index} on {view}: [{x0}, {y0}, {x1}, {y1}] must satisfy 0 <= x0 < x1 <= {columns} and "
                f"0 <= y0 < y1 <= {rows} (stored-image pixels, rounded)", rule="roi_box", view=view,
            )
        breast = view[0]
        if not answers[breast].malignant:
            raise AnswerError(
                f"ROI {index} on {view}: ROIs go only on a breast called malignant, and the "
                f"{breast_name(breast)} is not", rule="roi_malignant_only", view=view,
            )
        per_view[view] = per_view.get(view, 0) + 1
        if per_view[view] > MAX_ROIS_PER_VIEW:
            raise AnswerError(f"{view}: at most {MAX_ROIS_PER_VIEW} ROIs per view", rule="roi_count", view=view)
        rois.append(Roi(view, x0, y0, x1, y1))
    return tuple(rois)


def parse_submission(body: object, *, annotate: bool, sizes: Mapping[str, tuple[int, int]]) -> Submission:
    """Check a submission body. ``sizes``: view -> (rows, columns) of the exam's stored images."""
    if not isinstance(body, Mapping):
        raise AnswerError("the body must be a JSON object", rule="body")
    key = body.get("idempotency_key")
    if not isinstance(key, str) or not _KEY.match(key):
        raise AnswerError("idempotency_key must be 8-128 characters of A-Z a-z 0-9 _ -", rule="idempotency_key")
    seconds = body.get("active_seconds")
    if not _number(seconds) or seconds < 0:
        raise AnswerError(f"active_seconds must be a number >= 0, got {seconds!r}", rule="active_seconds")
    raw_answers = body.get("answers")
    if not isinstance(raw_answers, Mapping):
        raise AnswerError("answers must be an object with one answer per breast, L and R", rule="answers")
    unknown = sorted(set(raw_answers) - {"L", "R"})
    if unknown:
        raise AnswerError(f"answers: unknown breast(s) {', '.join(map(repr, unknown))}; use L and R", rule="answers")
    answers = {}
    for breast in ("L", "R"):
        raw = raw_answers.get(breast)
        if not isinstance(raw, Mapping):
            raise AnswerError(f"{breast_name(breast)}: no answer", rule="answers", breast=breast)
        answers[breast] = check_answer(breast, raw.get("birads"), raw.get("malignant"), raw.get("pom"))
    rois = _parse_rois(body.get("rois"), annotate, sizes, answers)
    return Submission(idempotency_key=key, active_seconds=float(seconds), answers=answers, rois=rois)
