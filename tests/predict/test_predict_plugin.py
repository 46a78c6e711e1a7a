"""The model plugin protocol: loading a network by name and refusing bad outputs by exam."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from perceptiongap.errors import InputError
from perceptiongap.predict.plugin import call_model, check_predictions, load_model
from perceptiongap.reference import network, synthetic_exam

from . import netdoubles

LABELS = ["exam 'a' at 0.0 mm (entire)", "exam 'b' at 4.0 mm (entire)"]


def test_load_model_imports_functions_and_instantiates_classes():
    assert load_model("perceptiongap.reference:network") is network
    assert isinstance(load_model("tests.predict.netdoubles:Flaky"), netdoubles.Flaky)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("perceptiongap.reference", "expected 'package.module:function'"),
        ("no_such_module_xyz:net", "cannot import module 'no_such_module_xyz'"),
        ("perceptiongap.reference:nowhere", "has no attribute 'nowhere'"),
        ("tests.predict.netdoubles:NOT_CALLABLE", "'NOT_CALLABLE' is not callable"),
        ("tests.predict.netdoubles:NeedsArguments", "cannot instantiate NeedsArguments with no arguments"),
    ],
)
def test_load_model_explains_a_bad_spec(spec, message):
    with pytest.raises(InputError, match=message) as error:
        load_model(spec)
    assert str(error.value).startswith(f"model: {spec!r}: ")
    assert error.value.source == "model"


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ([[0.1, 0.2], [0.3, np.nan]], "model m: on exam 'b' at 4.0 mm \\(entire\\): R breast probability is NaN"),
        ([[0.1, 1.5], [0.3, 0.4]],
         "on exam 'a' at 0.0 mm \\(entire\\): R breast probability is 1.5, outside \\[0, 1\\]"),
        ([[-0.1, 0.5], [0.3, 0.4]], "on exam 'a' .*: L breast probability is -0.1, outside"),
        ([0.1, 0.2], "on exam 'a' .* \\(and 1 more in the batch\\): returned shape \\(2,\\), expected \\(2, 2\\)"),
        ([["x", "y"], ["z", "w"]], "on exam 'a' .*: output is not numeric"),
    ],
)
def test_bad_outputs_name_the_exam_and_the_model(output, message):
    with pytest.raises(InputError, match=message):
        check_predictions(output, LABELS, "m")


def test_good_outputs_pass_as_float64():
    out = check_predictions(np.array([[0, 1], [0.5, 0.25]], dtype=np.float32), LABELS, "m")
    assert out.dtype == np.float64 and out.shape == (2, 2)


def exam_of(images):
    return {view: (image.astype(np.float32), (0.07, 0.07)) for view, image in images.items()}


def test_an_exception_is_traced_to_the_exam_that_raises_it():
    rng = np.random.default_rng(0)
    exams = [exam_of(synthetic_exam((64, 48), 0.07, (0, 0), rng)) for _ in range(3)]
    exams[1]["L-CC"][0][5, 5] = 4095.0
    labels = [f"exam 'e{i}' at 0.0 mm (entire)" for i in range(3)]
    with pytest.raises(InputError) as error:
        call_model(netdoubles.raises_on_saturated, exams, labels, "m:raises_on_saturated")
    assert str(error.value) == (
        "model m:raises_on_saturated: on exam 'e1' at 0.0 mm (entire): raised ValueError: saturated pixel"
    )
    with pytest.raises(InputError, match="on exam 'e0' at 0.0 mm \\(entire\\): raised RuntimeError: CUDA"):
        call_model(netdoubles.raises, exams, labels, "m:raises")
    # When no exam fails alone, the message names the batch.
    with pytest.raises(InputError, match="on a batch of 3 exams starting with exam 'e0'.*: raised RuntimeError: CUDA"):
        call_model(netdoubles.raises_on_batches, exams, labels, "m:raises_on_batches")


def test_input_error_survives_pickling_between_processes():
    error = InputError("on exam 'e1': bad", source="model m")
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is InputError and str(back) == str(error)
