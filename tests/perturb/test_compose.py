"""The reading composite: layout and orientation (METHOD §3)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from perceptiongap.errors import InputError
from perceptiongap.perturb import compose, facing, orient


def test_facing_from_tissue_and_from_patient_orientation(make_breast):
    faces_right = make_breast(faces="right")
    assert facing(faces_right) == "right"
    assert facing(faces_right[:, ::-1]) == "left"
    # The header, when it says, wins over the pixels.
    assert facing(faces_right, ("P", "L")) == "left"
    assert facing(faces_right[:, ::-1], ("A", "FR")) == "right"
    assert facing(faces_right, ("", "")) == "right"


def test_orient_mirrors_only_views_that_face_the_wrong_way(make_breast):
    image = make_breast(faces="right")
    assert orient(image, "L") is image
    np.testing.assert_array_equal(orient(image, "R"), image[:, ::-1])


def test_layout_right_breast_left_cc_on_top(make_breast):
    # Every view has its own size and is stored facing the wrong way half of the time.
    stored = {
        "R-CC": make_breast((50, 30), faces="right", seed=1),
        "L-CC": make_breast((44, 36), faces="left", seed=2),
        "R-MLO": make_breast((60, 26), faces="left", seed=3),
        "L-MLO": make_breast((64, 32), faces="left", seed=4),
    }
    picture = compose(stored, gap_px=2)
    assert picture.shape == (50 + 2 + 64, 30 + 2 + 36) and picture.dtype == np.uint16
    # Right breast on the left, facing left (mirrored when stored facing right), flush with the middle.
    np.testing.assert_array_equal(picture[0:50, 0:30], stored["R-CC"][:, ::-1])
    np.testing.assert_array_equal(picture[52:112, 4:30], stored["R-MLO"])
    # Left breast on the right, facing right.
    np.testing.assert_array_equal(picture[0:44, 32:68], stored["L-CC"][:, ::-1])
    np.testing.assert_array_equal(picture[52:116, 32:64], stored["L-MLO"][:, ::-1])
    # Everything else is background: the gap, and the padding of the smaller views.
    covered = np.zeros(picture.shape, bool)
    for rows, cols in [((0, 50), (0, 30)), ((52, 112), (4, 30)), ((0, 44), (32, 68)), ((52, 116), (32, 64))]:
        covered[rows[0] : rows[1], cols[0] : cols[1]] = True
    assert np.all(picture[~covered] == 0)
    for view, side in [("R-CC", "left"), ("L-CC", "right")]:
        assert facing(orient(stored[view], view[0])) == side


def test_patient_orientation_decides_when_given(make_breast):
    views = {view: make_breast((20, 10), faces="right", seed=i) for i, view in enumerate(("R-CC", "L-CC", "R-MLO", "L-MLO"))}
    # The header claims every view faces left (its columns run towards posterior).
    picture = compose(views, {view: ("P", "L") for view in views})
    np.testing.assert_array_equal(picture[0:20, 0:10], views["R-CC"])  # already "facing left"
    np.testing.assert_array_equal(picture[0:20, 10:20], views["L-CC"][:, ::-1])


def test_missing_view_is_refused(make_breast):
    with pytest.raises(InputError, match="missing L-MLO"):
        compose({view: make_breast() for view in ("R-CC", "L-CC", "R-MLO")})


def test_shared_exam_is_already_in_reading_orientation(exam_dir):
    views = {view: np.asarray(Image.open(exam_dir / f"0_{view}.png")) for view in ("R-CC", "L-CC", "R-MLO", "L-MLO")}
    picture = compose(views)
    left_width = max(views["R-CC"].shape[1], views["R-MLO"].shape[1])
    top_height = max(views["R-CC"].shape[0], views["L-CC"].shape[0])
    height, width = views["R-CC"].shape
    np.testing.assert_array_equal(picture[:height, left_width - width : left_width], views["R-CC"])
    height, width = views["L-MLO"].shape
    np.testing.assert_array_equal(picture[top_height : top_height + height, left_width : left_width + width], views["L-MLO"])
