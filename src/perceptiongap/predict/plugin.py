"""The model plugin protocol: how perceptiongap calls a user's network.

A network is named by a spec ``package.module:attribute``. The attribute is either a function or
a class; a class is instantiated once per worker process with no arguments (load weights in its
``__init__``). Either way the result is called with a *batch*: a list of exams, each a mapping
from view (``L-CC``, ``L-MLO``, ``R-CC``, ``R-MLO``) to ``(image, pixel_mm)``, where ``image`` is
a float32 array of shape (H, W) in the intensity units of the input file, already perturbed, and
``pixel_mm`` the pixel size in mm as a (row, column) pair. It returns an array-like of shape
(batch, 2): the malignancy probability of the left and the right breast of each exam, in [0, 1].
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

import numpy as np

from perceptiongap.errors import InputError
from perceptiongap.vocabulary import VIEWS  # the order in which images are handed to a network

__all__ = ["VIEWS", "Exam", "Model", "PixelMM", "call_model", "check_predictions", "load_model"]

PixelMM = float | tuple[float, float]
#: One exam as a network sees it: view -> (float32 image of shape (H, W), (row, column) pixel size in mm).
Exam = Mapping[str, tuple[np.ndarray, PixelMM]]


class Model(Protocol):
    """A network: a batch of exams in, (batch, 2) malignancy probabilities (left, right) out."""

    def __call__(self, exams: Sequence[Exam]) -> np.ndarray: ...


def load_model(spec: str) -> Model:
    """Import the network named ``package.module:attribute`` (a class is instantiated, no arguments)."""
    source = "model"
    module_name, colon, attribute = spec.partition(":")
    if not colon or not module_name or not attribute:
        raise InputError(f"{spec!r}: expected 'package.module:function' or 'package.module:Class'", source=source)
    try:
        target: object = importlib.import_module(module_name)
    except ImportError as error:
        raise InputError(f"{spec!r}: cannot import module {module_name!r}: {error}", source=source) from error
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise InputError(f"{spec!r}: module {module_name!r} has no attribute {attribute!r}",
                             source=source) from None
    if inspect.isclass(target):
        try:
            target = target()
        except Exception as error:
            raise InputError(
                f"{spec!r}: cannot instantiate {attribute} with no arguments: {type(error).__name__}: {error}",
                source=source,
            ) from error
    if not callable(target):
        raise InputError(f"{spec!r}: {attribute!r} is not callable", source=source)
    return target  # type: ignore[return-value]


def check_predictions(predictions: object, labels: Sequence[str], spec: str) -> np.ndarray:
    """Return the network's output as float64 (batch, 2), or raise InputError naming the exam.

    ``labels`` describe the exams of the batch (e.g. ``exam 'E7' at 0.5 mm, entire``).
    """
    source = f"model {spec}"
    try:
        array = np.asarray(predictions, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise InputError(f"on {labels[0]}: output is not numeric: {error}", source=source) from None
    if array.shape != (len(labels), 2):
        raise InputError(
            f"on {labels[0]}" + (f" (and {len(labels) - 1} more in the batch)" if len(labels) > 1 else "")
            + f": returned shape {array.shape}, expected ({len(labels)}, 2): one (left, right) pair per exam",
            source=source,
        )
    bad = ~np.isfinite(array) | (array < 0) | (array > 1)
    if bad.any():
        index, breast = np.argwhere(bad)[0]
        value = float(array[index, breast])
        problem = "NaN" if np.isnan(value) else f"{value!r}, outside [0, 1]"
        raise InputError(f"on {labels[index]}: {'LR'[breast]} breast probability is {problem}", source=source)
    return array


def call_model(model: Callable, exams: Sequence[Exam], labels: Sequence[str], spec: str) -> np.ndarray:
    """Run ``model`` on a batch and check its output; any failure becomes one InputError line.

    When the network raises on a batch of several exams, each exam is retried alone so that the
    message names the one that fails.
    """
    try:
        return check_predictions(model(list(exams)), labels, spec)
    except InputError:
        raise
    except Exception as batch_error:
        culprit, failure = _culprit(model, exams, labels, batch_error)
    message = str(failure).strip().splitlines()[0] if str(failure).strip() else ""
    raise InputError(
        f"on {culprit}: raised {type(failure).__name__}" + (f": {message}" if message else ""),
        source=f"model {spec}",
    )


def _culprit(
    model: Callable, exams: Sequence[Exam], labels: Sequence[str], batch_error: Exception
) -> tuple[str, Exception]:
    """The first exam that fails alone and its exception; else the batch and the batch's exception."""
    if len(exams) == 1:
        return labels[0], batch_error
    for exam, label in zip(exams, labels):
        try:
            model([exam])
        except Exception as single_error:
            return label, single_error
    return f"a batch of {len(exams)} exams starting with {labels[0]}", batch_error
