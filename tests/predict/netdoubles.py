"""Networks for the tests: each breaks the plugin protocol in one way, or counts its calls."""

from __future__ import annotations

import numpy as np

from perceptiongap.reference import network as reference


def returns_nan(exams):
    out = reference(exams)
    out[-1, 1] = np.nan
    return out


def returns_above_one(exams):
    return reference(exams) + 1.5


def returns_one_column(exams):
    return reference(exams)[:, :1]


def raises(exams):
    raise RuntimeError("CUDA out of memory")


def raises_on_saturated(exams):
    """Fails on exams whose left CC view has a saturated pixel (value >= 4095)."""
    for exam in exams:
        if exam["L-CC"][0].max() >= 4095:
            raise ValueError("saturated pixel\nsecond line of the message")
    return reference(exams)


class Flaky:
    """The reference network, except that call number ``fail_on_call`` (1-based, counted per
    process over all instances) returns NaN. Tests set ``fail_on_call``."""

    fail_on_call: int | None = None
    calls = 0

    def __call__(self, exams):
        type(self).calls += 1
        out = reference(exams)
        if type(self).calls == type(self).fail_on_call:
            out[0, 0] = np.nan
        return out


class NeedsArguments:
    def __init__(self, weights):
        self.weights = weights

    def __call__(self, exams):
        return reference(exams)


NOT_CALLABLE = 3


def raises_on_batches(exams):
    """Fails on any batch of more than one exam (e.g. out of memory), never on a single exam."""
    if len(exams) > 1:
        raise RuntimeError("CUDA out of memory")
    return reference(exams)


class Recorder:
    """The reference network, keeping a copy of every exam it is given (per process, over all
    instances, in call order). Tests clear ``seen``."""

    seen: list = []

    def __call__(self, exams):
        type(self).seen.extend({view: (image.copy(), pixel_mm) for view, (image, pixel_mm) in exam.items()}
                               for exam in exams)
        return reference(exams)
