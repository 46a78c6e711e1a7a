"""Annotation mode of the reading page in Chromium: rectangles drawn on known squares are stored
in stored-image pixels (within 1 pixel, mirrored view or not), a fourth per view is refused; the
page on the shared real exam is photographed for the README."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from .conftest import DEFAULT_WINDOW, SQUARE, SQUARES, TISSUE, crop, expected_grey, save_docs_copy, screenshot, wait_phase, wait_reading

pytestmark = pytest.mark.slow


def square_edges(view_grey: np.ndarray) -> list[tuple[float, float, float, float]]:
    """Screen boxes (x0, y0, x1, y1) of the squares: pixels brighter than halfway between tissue
    and square (and darker than halfway to the marker), so each edge is within half a screen pixel."""
    tissue = expected_grey(TISSUE, *DEFAULT_WINDOW)
    square = expected_grey(SQUARE, *DEFAULT_WINDOW)
    marker = 255.0
    mask = (view_grey > (tissue + square) / 2) & (view_grey < (square + marker) / 2)
    labels, count = ndimage.label(mask)
    boxes = []
    for index, found in enumerate(ndimage.find_objects(labels), start=1):
        ys, xs = found
        if (labels[found] == index).sum() > 100:
            boxes.append((xs.start, ys.start, xs.stop, ys.stop))
    return sorted(boxes, key=lambda b: (b[1], b[0]))


def drag(page, box, start, end) -> None:
    page.mouse.move(box["x"] + start[0], box["y"] + start[1])
    page.mouse.down()
    page.mouse.move(box["x"] + end[0], box["y"] + end[1], steps=10)
    page.mouse.up()
    page.wait_for_timeout(150)


def test_rectangles_are_stored_in_image_pixels_and_a_fourth_is_refused(annotation_server, page, tmp_path):
    server = annotation_server
    page.goto(server.links["reader01"])
    wait_reading(page)
    assert "annotation study" in page.locator("#progress").inner_text()
    page.get_by_role("radiogroup", name="Right breast BI-RADS").get_by_text("4C", exact=True).click()
    page.locator("input[name=pom-R]").fill("70")
    page.get_by_role("radiogroup", name="Left breast BI-RADS").get_by_text("4A", exact=True).click()
    page.locator("input[name=pom-L]").fill("5")
    page.get_by_role("button", name="Rectangle").click()

    grey = screenshot(page, tmp_path / "1-before.png")
    r_box = page.locator("#vp-R-CC").bounding_box()
    l_box = page.locator("#vp-L-MLO").bounding_box()
    on_screen = square_edges(crop(grey, r_box))
    assert len(on_screen) == 3
    for x0, y0, x1, y1 in on_screen:  # R-CC is mirrored: these are three squares seen in a mirror
        drag(page, r_box, (x0, y0), (x1, y1))
    assert page.locator("#roi-list li").count() == 3
    # A fourth rectangle on the same view (drawn on tissue, away from the others) is refused.
    drag(page, r_box, (r_box["width"] - 60, r_box["height"] - 60), (r_box["width"] - 20, r_box["height"] - 20))
    notice = page.locator("#notice")
    assert "At most 3 rectangles per view" in notice.inner_text()
    assert page.locator("#roi-list li").count() == 3
    # One on a view that is not mirrored.
    x0, y0, x1, y1 = square_edges(crop(grey, l_box))[1]
    drag(page, l_box, (x0, y0), (x1, y1))
    assert page.locator("#roi-list li").count() == 4
    screenshot(page, tmp_path / "2-drawn.png")

    reading = None
    with server.db() as connection:
        reading = connection.execute(
            "SELECT id FROM readings WHERE reader_id = 'reader01' ORDER BY position LIMIT 1"
        ).fetchone()["id"]
    page.get_by_role("button", name="Submit").click()
    wait_phase(page, "finished")
    # The study had one exam: the page says the study is finished, and so does the link later.
    assert "finished this study" in page.locator("#overlay").inner_text()
    page.goto(server.links["reader01"])
    wait_phase(page, "finished")
    assert page.locator("#progress").inner_text() == "Finished: 1 of 1 exams submitted"
    with server.db() as connection:
        stored = connection.execute(
            "SELECT view, x0, y0, x1, y1 FROM rois WHERE reading_id = ? ORDER BY view, y0", (reading,)
        ).fetchall()
    r_cc = [tuple(row)[1:] for row in stored if row["view"] == "R-CC"]
    l_mlo = [tuple(row)[1:] for row in stored if row["view"] == "L-MLO"]
    assert len(r_cc) == 3 and len(l_mlo) == 1
    for got, want in zip(sorted(r_cc, key=lambda b: b[1]), sorted(SQUARES, key=lambda b: b[1])):
        assert np.abs(np.subtract(got, want)).max() <= 1, (got, want)
    assert np.abs(np.subtract(l_mlo[0], SQUARES[1])).max() <= 1, l_mlo


def test_the_reading_page_on_the_shared_exam(shared_exam_server, page, page_errors, tmp_path):
    """The page on the real exam, answered and annotated: the README's screenshot."""
    server = shared_exam_server
    page.goto(server.links["reader01"])
    wait_reading(page)
    page.get_by_role("radiogroup", name="Right breast BI-RADS").get_by_text("1", exact=True).click()
    page.get_by_role("radiogroup", name="Left breast BI-RADS").get_by_text("4B", exact=True).click()
    page.locator("input[name=pom-L]").fill("25")
    page.get_by_role("button", name="Rectangle").click()
    box = page.locator("#vp-L-CC").bounding_box()
    drag(page, box, (box["width"] * 0.08, box["height"] * 0.35), (box["width"] * 0.2, box["height"] * 0.5))
    page.mouse.move(box["x"] + 5, box["y"] + 5)
    path = tmp_path / "reading-page.png"
    grey = screenshot(page, path)
    # Four views of a real exam: every viewport shows tissue, and the Submit button is live.
    for view in ("R-CC", "L-CC", "R-MLO", "L-MLO"):
        assert (crop(grey, page.locator(f"#vp-{view}").bounding_box()) > 40).mean() > 0.1
    assert page.locator("#roi-list li").count() == 1
    assert page.get_by_role("button", name="Submit").is_enabled()
    assert page_errors == []
    save_docs_copy(path, "reading-page.png")
