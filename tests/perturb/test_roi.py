"""ROI files, masks and the three schemes on synthetic images."""

from __future__ import annotations

import json

import numpy as np
import pytest

from perceptiongap.errors import InputError
from perceptiongap.perturb import RoiBox, blend, lowpass, read_rois, roi_mask, scheme_weight
from perceptiongap.perturb.roi import annotators_by_exam, group_rois

SHAPE = (60, 80)
BOXES = (
    RoiBox("e1", "L-CC", "ann1", x0=10, y0=5, x1=30, y1=25),
    RoiBox("e1", "L-CC", "ann1", x0=25, y0=20, x1=50, y1=40),  # overlaps the first
)


def union_by_pixel(shape, boxes):
    """Independent union: test every pixel against every box."""
    mask = np.zeros(shape, bool)
    for row in range(shape[0]):
        for col in range(shape[1]):
            mask[row, col] = any(b.x0 <= col < b.x1 and b.y0 <= row < b.y1 for b in boxes)
    return mask


def test_mask_is_the_union_of_half_open_boxes():
    mask = roi_mask(SHAPE, BOXES)
    np.testing.assert_array_equal(mask, union_by_pixel(SHAPE, BOXES))
    assert mask.sum() == 20 * 20 + 25 * 20 - 5 * 5
    assert not roi_mask(SHAPE, ()).any()


@pytest.fixture
def image_and_filtered():
    image = np.random.default_rng(0).integers(0, 4096, size=SHAPE).astype(np.uint16)
    return image, lowpass(image, 0.1, [2.0, 0.5])


def test_interior_filters_only_inside(image_and_filtered):
    image, filtered = image_and_filtered
    inside = union_by_pixel(SHAPE, BOXES)
    out = blend(image, filtered, scheme_weight(SHAPE, BOXES, "roi_interior"))
    assert out.dtype == np.uint16 and out.shape == filtered.shape
    for severity in range(2):
        np.testing.assert_array_equal(out[severity][~inside], image[~inside])
        np.testing.assert_array_equal(out[severity][inside], filtered[severity][inside])


def test_exterior_filters_only_outside(image_and_filtered):
    image, filtered = image_and_filtered
    inside = union_by_pixel(SHAPE, BOXES)
    out = blend(image, filtered, scheme_weight(SHAPE, BOXES, "roi_exterior"))
    for severity in range(2):
        np.testing.assert_array_equal(out[severity][inside], image[inside])
        np.testing.assert_array_equal(out[severity][~inside], filtered[severity][~inside])


def test_entire_filters_everywhere_and_no_boxes_mean_nothing_inside(image_and_filtered):
    image, filtered = image_and_filtered
    np.testing.assert_array_equal(blend(image, filtered, scheme_weight(SHAPE, BOXES, "entire")), filtered)
    np.testing.assert_array_equal(blend(image, filtered, scheme_weight(SHAPE, (), "roi_interior"))[0], image)
    np.testing.assert_array_equal(blend(image, filtered, scheme_weight(SHAPE, (), "roi_exterior")), filtered)


@pytest.mark.parametrize("scheme", ["roi_interior", "roi_exterior"])
def test_feather_ramps_inside_the_filtered_region_only(scheme):
    pixel_mm, feather_mm = (0.1, 0.2), 1.0
    inside = union_by_pixel(SHAPE, BOXES)
    filtered_region = inside if scheme == "roi_interior" else ~inside
    weight = scheme_weight(SHAPE, BOXES, scheme, pixel_mm, feather_mm)
    assert np.all(weight[~filtered_region] == 0)  # the kept region stays exactly original
    # Independent check: w = min(1, distance in mm to the nearest kept pixel / feather).
    kept_rows, kept_cols = np.nonzero(~filtered_region)
    for row, col in [(15, 20), (22, 27), (30, 40), (0, 0), (59, 79), (5, 10), (45, 70)]:
        if not filtered_region[row, col]:
            continue
        distance = np.min(np.hypot((kept_rows - row) * pixel_mm[0], (kept_cols - col) * pixel_mm[1]))
        assert weight[row, col] == pytest.approx(min(1.0, distance / feather_mm), abs=1e-6)
    assert 0 < weight[filtered_region].min() < 1 and weight.max() == 1


def test_blend_of_a_soft_weight_is_the_weighted_mean():
    original = np.full((2, 3), 100, np.uint16)
    filtered = np.full((2, 3), 200, np.uint16)
    weight = np.array([[0, 0.25, 0.5], [0.75, 1, 0.999]], np.float32)
    expected = np.rint(100 * (1 - weight.astype(float)) + 200 * weight)
    np.testing.assert_array_equal(blend(original, filtered, weight), expected)


@pytest.mark.parametrize(
    "box, message",
    [
        (RoiBox("e7", "R-MLO", "dr_a", 10, 10, 10, 20), "zero area"),
        (RoiBox("e7", "R-MLO", "dr_a", 10, 20, 30, 5), "zero area"),
        (RoiBox("e7", "R-MLO", "dr_a", 70, 10, 81, 20), "outside the 80 x 60"),
        (RoiBox("e7", "R-MLO", "dr_a", -1, 10, 5, 20), "outside"),
        (RoiBox("e7", "R-MLO", "dr_a", 0, 50, 5, 61), "outside"),
    ],
)
def test_bad_boxes_are_refused_naming_the_roi(box, message):
    with pytest.raises(InputError, match=message) as error:
        scheme_weight(SHAPE, (box,), "roi_interior")
    assert "exam 'e7' view R-MLO annotator 'dr_a'" in str(error.value)


ROWS = [
    {"exam": "e1", "view": "L-CC", "annotator": "ann1", "x0": 10, "y0": 5, "x1": 30, "y1": 25},
    {"exam": "e1", "view": "l-cc", "annotator": "ann1", "x0": 25, "y0": 20, "x1": 50, "y1": 40},
    {"exam": "e1", "view": "R-MLO", "annotator": "ann2", "x0": 0, "y0": 0, "x1": 5, "y1": 5},
    {"exam": "e2", "view": "R-CC", "annotator": "ann1", "x0": 1, "y0": 2, "x1": 3, "y1": 4},
]


def _write_csv(path, rows):
    columns = list(rows[0])
    path.write_text("\n".join([",".join(columns)] + [",".join(str(r[c]) for c in columns) for r in rows]) + "\n")


def test_csv_and_json_read_the_same_boxes(tmp_path):
    _write_csv(tmp_path / "rois.csv", ROWS)
    (tmp_path / "rois.json").write_text(json.dumps(ROWS))
    (tmp_path / "wrapped.json").write_text(json.dumps({"rois": ROWS}))
    from_csv = read_rois(tmp_path / "rois.csv")
    strip = [(b.exam, b.view, b.annotator, b.x0, b.y0, b.x1, b.y1) for b in from_csv]
    assert strip == [(r["exam"], r["view"].upper(), r["annotator"], r["x0"], r["y0"], r["x1"], r["y1"]) for r in ROWS]
    for other in ("rois.json", "wrapped.json"):
        assert [(b.exam, b.view, b.annotator, b.x0, b.y0, b.x1, b.y1) for b in read_rois(tmp_path / other)] == strip
    groups = group_rois(from_csv)
    assert [(b.x0, b.y0) for b in groups[("e1", "L-CC", "ann1")]] == [(10, 5), (25, 20)]
    assert annotators_by_exam(from_csv) == {"e1": ("ann1", "ann2"), "e2": ("ann1",)}


@pytest.mark.parametrize(
    "change, message",
    [
        ({"x1": "3.5"}, r"row 2: column 'x1': '3.5' is not a whole pixel index"),
        ({"x0": "abc"}, r"row 2: column 'x0'"),
        ({"view": "L-ML"}, r"row 2: column 'view': 'L-ML' is not one of"),
        ({"annotator": ""}, r"row 2: column 'annotator' is empty"),
    ],
)
def test_bad_rows_are_refused_naming_file_row_and_column(tmp_path, change, message):
    rows = [dict(ROWS[0]), {**ROWS[1], **change}]
    _write_csv(tmp_path / "rois.csv", rows)
    with pytest.raises(InputError, match=message) as error:
        read_rois(tmp_path / "rois.csv")
    assert str(error.value).startswith(str(tmp_path / "rois.csv"))


def test_missing_columns_and_bad_json_are_refused(tmp_path):
    (tmp_path / "rois.csv").write_text("exam,view,x0,y0,x1,y1\ne1,L-CC,1,2,3,4\n")
    with pytest.raises(InputError, match="missing column\\(s\\) 'annotator'"):
        read_rois(tmp_path / "rois.csv")
    (tmp_path / "rois.json").write_text('{"boxes": 3}')
    with pytest.raises(InputError, match="list of objects"):
        read_rois(tmp_path / "rois.json")
    (tmp_path / "broken.json").write_text("[{")
    with pytest.raises(InputError, match="cannot read ROI file"):
        read_rois(tmp_path / "broken.json")
