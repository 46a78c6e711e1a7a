"""The reading page in Chromium against a real `perceptiongap serve`: hanging, window/level,
zoom, answers, submit, resume, isolation between readers, a server that dies during a submit."""

from __future__ import annotations

import time

import httpx
import numpy as np
import pytest
from scipy import ndimage

from perceptiongap.readers.answers import AnswerError, check_answer

from .conftest import (
    BIRADS,
    DEFAULT_WINDOW,
    MARKER,
    MARKER_BOX,
    PRESET,
    ROWS,
    SQUARE,
    TISSUE,
    crop,
    expected_grey,
    screenshot,
    view_box,
    wait_progress,
    wait_reading,
)

pytestmark = pytest.mark.slow


def marker_blob(view_grey: np.ndarray, marker_grey: float) -> tuple[float, float, int]:
    """Centroid (x, y) and height in screen pixels of the brightest blob (the marker)."""
    mask = view_grey >= marker_grey - 12
    labels, count = ndimage.label(mask)
    assert count >= 1, "no marker on screen"
    sizes = ndimage.sum(mask, labels, range(1, count + 1))
    blob = labels == 1 + int(np.argmax(sizes))
    ys, xs = np.nonzero(blob)
    return float(xs.mean()), float(ys.mean()), int(ys.max() - ys.min() + 1)


def tissue_point(box: dict, view: str) -> tuple[int, int]:
    """A screen point inside the tissue, 25 px from the chest wall (which the page puts at the centre line)."""
    y = int(box["height"] * 0.6)
    x = int(box["width"]) - 25 if view.startswith("R") else 25
    return x, y


def window_shown(page, view: str) -> tuple[float, float]:
    label = page.locator(f"#vp-{view} .wl")
    return float(label.get_attribute("data-center")), float(label.get_attribute("data-width"))


def reading_rows(server, reader: str):
    with server.db() as connection:
        return connection.execute(
            "SELECT * FROM readings WHERE reader_id = ? ORDER BY position", (reader,)
        ).fetchall()


def test_reader_sees_the_hanging_sets_the_window_zooms_answers_and_submits(
    perturbation_server, page, page_errors, tmp_path
):
    server = perturbation_server
    started = time.monotonic()
    page.goto(server.links["reader01"])
    wait_reading(page)
    assert page.locator("#progress").inner_text().startswith("Exam 1 of 3")
    grey = screenshot(page, tmp_path / "1-hung.png")

    # Hanging: CC above MLO, right breast in the left column; each view faces away from the
    # centre line (the marker sits at the chest wall, so it must be near the inner edge).
    boxes = {view: view_box(page, view) for view in ("R-CC", "L-CC", "R-MLO", "L-MLO")}
    assert boxes["R-CC"]["y"] < boxes["R-MLO"]["y"] and boxes["L-CC"]["y"] < boxes["L-MLO"]["y"]
    assert boxes["R-CC"]["x"] < boxes["L-CC"]["x"] and boxes["R-MLO"]["x"] < boxes["L-MLO"]["x"]
    marker_grey = expected_grey(MARKER, *DEFAULT_WINDOW)
    fit_markers = {}
    for view, box in boxes.items():
        region = crop(grey, box)
        x, y, height = marker_blob(region, marker_grey)
        fit_markers[view] = (x, y, height)
        if view.startswith("R"):  # stored facing right: mirrored, chest wall on the right
            assert x > 0.75 * box["width"], (view, x, box)
        else:  # stored facing right already: not mirrored, chest wall on the left
            assert x < 0.25 * box["width"], (view, x, box)
        assert y < 0.25 * box["height"], (view, y)
        # The image fills the height at fit: the 30-row marker spans 30 * (height / 300) px.
        assert height == pytest.approx(30 * box["height"] / ROWS, abs=3)

    # Window/level: the default window, then the study's preset, then a mouse drag; the grey of
    # a tissue pixel follows the window each time.
    box = boxes["R-CC"]
    px, py = tissue_point(box, "R-CC")
    tissue_default = crop(grey, box)[py, px]
    assert tissue_default == pytest.approx(expected_grey(TISSUE, *DEFAULT_WINDOW), abs=3)
    page.get_by_label("Window", exact=True).select_option(label=PRESET[0])
    page.wait_for_timeout(300)
    tissue_preset = crop(screenshot(page, tmp_path / "2-preset.png"), box)[py, px]
    assert tissue_preset == pytest.approx(expected_grey(TISSUE, PRESET[1], PRESET[2]), abs=3)
    assert window_shown(page, "R-CC") == pytest.approx(PRESET[1:])
    start_x, start_y = box["x"] + box["width"] * 0.7, box["y"] + box["height"] * 0.5
    page.mouse.move(start_x, start_y)
    page.mouse.down()
    page.mouse.move(start_x + 40, start_y + 60, steps=8)
    page.mouse.up()
    page.wait_for_timeout(300)
    center, width = window_shown(page, "R-CC")
    assert (center, width) != pytest.approx(PRESET[1:])
    tissue_dragged = crop(screenshot(page, tmp_path / "3-dragged.png"), box)[py, px]
    assert tissue_dragged == pytest.approx(expected_grey(TISSUE, center, width), abs=3)
    assert abs(int(tissue_dragged) - int(tissue_preset)) > 5

    # Zoom: 1:1 shows the 30-row marker 30 screen pixels tall; the wheel zooms in from there.
    page.get_by_role("button", name="1:1").click()
    page.wait_for_timeout(300)
    one_to_one = marker_blob(crop(screenshot(page, tmp_path / "4-one-to-one.png"), boxes["L-CC"]),
                             expected_grey(MARKER, *DEFAULT_WINDOW))
    assert one_to_one[2] == pytest.approx(MARKER_BOX[3] - MARKER_BOX[1], abs=2)
    page.get_by_role("button", name="Reset").click()
    marker_x, marker_y, fit_height = fit_markers["L-CC"]
    page.mouse.move(boxes["L-CC"]["x"] + marker_x, boxes["L-CC"]["y"] + marker_y)  # zoom about the marker
    for _ in range(3):
        page.mouse.wheel(0, -120)
        page.wait_for_timeout(100)
    page.wait_for_timeout(300)
    zoomed = marker_blob(crop(screenshot(page, tmp_path / "5-wheel.png"), boxes["L-CC"]),
                         expected_grey(MARKER, *DEFAULT_WINDOW))
    assert zoomed[2] == pytest.approx(fit_height * 1.15**3, rel=0.1)  # 15 % a notch
    marker = expected_grey(MARKER, *DEFAULT_WINDOW)
    unlinked = marker_blob(crop(screenshot(page, tmp_path / "5-wheel.png"), boxes["R-CC"]), marker)
    assert unlinked[2] == pytest.approx(fit_markers["R-CC"][2], abs=2)  # the other views stay as they were
    page.get_by_label("Link zoom").check()
    page.mouse.move(boxes["L-CC"]["x"] + marker_x, boxes["L-CC"]["y"] + marker_y)
    page.mouse.wheel(0, -120)
    page.wait_for_timeout(300)
    # R-CC now has L-CC's magnification (four notches): its 30-row middle square shows it.
    grey = crop(screenshot(page, tmp_path / "5-linked.png"), boxes["R-CC"])
    band = np.abs(grey - expected_grey(SQUARE, *DEFAULT_WINDOW)) <= 8
    labels, count = ndimage.label(band)
    biggest = labels == 1 + int(np.argmax(ndimage.sum(band, labels, range(1, count + 1))))
    rows = np.flatnonzero(biggest.any(axis=1))
    assert rows.size == pytest.approx(30 * boxes["R-CC"]["height"] / ROWS * 1.15**4, rel=0.05)
    page.get_by_label("Link zoom").uncheck()

    # Answers: the rules as the reader types; Submit only when both breasts are valid.
    submit = page.get_by_role("button", name="Submit")
    page.get_by_role("radiogroup", name="Right breast BI-RADS").get_by_text("1", exact=True).click()
    assert page.locator("input[name=pom-R]").input_value() == "0"  # BI-RADS 1 fixes POM = 0
    assert page.locator("input[name=malignant-R][value=no]").is_checked()
    assert submit.is_disabled()
    page.keyboard.press("l")
    page.keyboard.press("b")  # 4B
    assert page.locator("input[name=malignant-L][value=yes]").is_checked()
    assert "10 < POM ≤ 50" in page.locator("#breast-L .range").inner_text()
    page.keyboard.press("p")
    page.keyboard.type("60")
    assert "BI-RADS 4B needs" in page.locator("#breast-L .errors").inner_text()
    assert submit.is_disabled()
    page.locator("input[name=pom-L]").fill("30")
    assert submit.is_enabled()
    page.wait_for_timeout(1000)  # some reading time
    screenshot(page, tmp_path / "6-answered.png")

    # Pause hides the images, disables Submit and stops the clock (checked below).
    page.get_by_role("button", name="Pause").click()
    assert page.locator("#overlay").is_visible() and submit.is_disabled()
    screenshot(page, tmp_path / "7-paused.png")
    paused_from = time.monotonic()
    page.wait_for_timeout(2500)
    page.keyboard.press("Escape")  # resume
    paused_seconds = time.monotonic() - paused_from
    assert page.locator("#overlay").is_hidden() and submit.is_enabled()

    # The next exam's images are already fetched (preloaded), but its clock has not started.
    first, second = reading_rows(server, "reader01")[:2]
    with server.db() as connection:
        preloads = connection.execute(
            "SELECT count(*) FROM events WHERE kind = 'preloaded' AND reading_id = ?", (second["id"],)
        ).fetchone()[0]
    assert preloads >= 1 and second["opened_at"] is None
    submit.click()
    wait_progress(page, "Exam 2 of 3")
    wait_reading(page)
    elapsed = time.monotonic() - started
    screenshot(page, tmp_path / "8-next.png")

    with server.db() as connection:
        answers = {
            row["breast"]: (row["birads"], row["malignant"], row["pom"])
            for row in connection.execute("SELECT * FROM answers WHERE reading_id = ?", (first["id"],))
        }
        reading = connection.execute("SELECT * FROM readings WHERE id = ?", (first["id"],)).fetchone()
    assert answers == {"R": ("1", 0, 0.0), "L": ("4B", 1, 30.0)}
    assert reading["status"] == "submitted"
    assert 1.0 <= reading["active_seconds"] <= elapsed - paused_seconds
    assert reading_rows(server, "reader01")[1]["opened_at"] is not None  # its clock starts when shown
    assert page_errors == []


@pytest.mark.parametrize("category", BIRADS)
def test_the_page_accepts_exactly_the_answers_the_server_accepts(perturbation_server, page, category):
    """Submit is enabled for a POM exactly when the server's own rules (answers.check_answer) take it."""
    page.goto(perturbation_server.links["reader03"])
    wait_reading(page)
    page.get_by_role("radiogroup", name="Left breast BI-RADS").get_by_text("1", exact=True).click()
    page.get_by_role("radiogroup", name="Right breast BI-RADS").get_by_text(category, exact=True).click()
    submit = page.get_by_role("button", name="Submit")
    if category in ("1", "2"):  # the page fills in the only allowed POM
        assert page.locator("input[name=pom-R]").input_value() == "0" and submit.is_enabled()
        return
    malignant = {"0": False}.get(category, category not in ("3",))
    if category == "0":
        page.locator("input[name=malignant-R][value=no]").check()
    for pom in (-1, 0, 0.5, 2, 2.5, 10, 10.5, 50, 50.5, 94.9, 95, 99, 100, 101):
        page.locator("input[name=pom-R]").fill(str(pom))
        try:
            check_answer("R", category, malignant, pom)
            accepted = True
        except AnswerError:
            accepted = False
        assert submit.is_enabled() == accepted, (category, pom)
        assert (page.locator("#breast-R .errors").inner_text() == "") == accepted, (category, pom)


def answer_and_submit_via_page(page) -> None:
    page.get_by_role("radiogroup", name="Right breast BI-RADS").get_by_text("2", exact=True).click()
    page.get_by_role("radiogroup", name="Left breast BI-RADS").get_by_text("2", exact=True).click()
    page.get_by_role("button", name="Submit").click()


def test_reopened_link_resumes_at_the_next_exam_and_the_submitted_one_is_closed(perturbation_server, browser, tmp_path):
    server = perturbation_server
    context = browser.new_context(viewport={"width": 1920, "height": 1080})
    page = context.new_page()
    page.goto(server.links["reader02"])
    wait_reading(page)
    first = reading_rows(server, "reader02")[0]
    first_images = page.evaluate("Array.from(document.querySelectorAll('.view')).map(v => v.dataset.imageId)")
    # A reload (or a crash of the tab) keeps the answers given so far.
    page.get_by_role("radiogroup", name="Left breast BI-RADS").get_by_text("4A", exact=True).click()
    page.locator("input[name=pom-L]").fill("7")
    page.reload()
    wait_reading(page)
    assert page.locator("input[name=birads-L][value='4A']").is_checked()
    assert page.locator("input[name=pom-L]").input_value() == "7"
    answer_and_submit_via_page(page)
    wait_progress(page, "Exam 2 of 3")
    context.close()  # the reader closes the browser: cookies and page state are gone

    context = browser.new_context(viewport={"width": 1920, "height": 1080})
    page = context.new_page()
    page.goto(server.links["reader02"])
    wait_reading(page)
    assert page.locator("#progress").inner_text().startswith("Exam 2 of 3 · 1 done")
    shown = page.evaluate("Array.from(document.querySelectorAll('.view')).map(v => v.dataset.imageId)")
    assert not set(shown) & set(first_images)
    # The back button and a reload land on the same exam.
    page.go_back()
    page.goto(f"{server.base}/read")
    wait_reading(page)
    assert page.locator("#progress").inner_text().startswith("Exam 2 of 3")
    screenshot(page, tmp_path / "resumed.png")
    # The API refuses the submitted exam: no open, no images, no second answer.
    assert page.request.post(f"{server.base}/api/readings/{first['id']}/open", data={}).status == 409
    assert page.request.get(f"{server.base}/api/images/{first_images[0]}.png").status == 404
    again = page.request.post(
        f"{server.base}/api/readings/{first['id']}/submit",
        data={"idempotency_key": "another-key-123", "active_seconds": 1.0,
              "answers": {b: {"birads": "1", "malignant": False, "pom": 0} for b in "LR"}},
    )
    assert again.status == 409
    with server.db() as connection:
        count = connection.execute("SELECT count(*) FROM answers WHERE reading_id = ?", (first["id"],)).fetchone()[0]
    assert count == 2
    context.close()


def test_second_reader_sees_only_their_own_exams_and_progress(perturbation_server, browser, tmp_path):
    server = perturbation_server
    # reader03 has read one exam through the API ...
    with httpx.Client(base_url=server.base, follow_redirects=False) as client:
        client.get(server.links["reader03"].replace(server.base, ""))
        state = client.get("/api/reader/state").json()
        reading = state["current"]["reading"]
        assert client.post(f"/api/readings/{reading}/open", json={}).status_code == 200
        body = {"idempotency_key": "reader03-first-exam", "active_seconds": 2.0,
                "answers": {b: {"birads": "2", "malignant": False, "pom": 0} for b in "LR"}}
        assert client.post(f"/api/readings/{reading}/submit", json=body).status_code == 200
        reader03_next = client.get("/api/reader/state").json()["current"]
    # ... and reader04's page shows reader04's list from its start.
    context = browser.new_context(viewport={"width": 1920, "height": 1080})
    page = context.new_page()
    page.goto(server.links["reader04"])
    wait_reading(page)
    screenshot(page, tmp_path / "reader04.png")
    assert page.locator("#progress").inner_text().startswith("Exam 1 of 3 · 0 done")
    shown = page.evaluate("Array.from(document.querySelectorAll('.view')).map(v => v.dataset.imageId)")
    with server.db() as connection:
        own = connection.execute(
            "SELECT i.id FROM readings r JOIN images i ON i.exam = r.exam AND i.severity_mm = r.severity_mm "
            "WHERE r.reader_id = 'reader04' AND r.position = 1"
        ).fetchall()
    assert set(shown) == {row["id"] for row in own}
    # reader03's reading and images are not there for reader04 (404: not even confirmed).
    assert page.request.post(f"{server.base}/api/readings/{reader03_next['reading']}/open", data={}).status == 404
    context.close()


def test_submit_while_the_server_is_down_keeps_the_answers_and_the_retry_stores_them_once(
    perturbation_server, browser, tmp_path
):
    server = perturbation_server
    context = browser.new_context(viewport={"width": 1920, "height": 1080})
    page = context.new_page()
    page.goto(server.links["reader04"])
    wait_reading(page)
    position = int(page.locator("#progress").inner_text().split()[1])
    reading = reading_rows(server, "reader04")[position - 1]
    page.get_by_role("radiogroup", name="Right breast BI-RADS").get_by_text("3", exact=True).click()
    page.locator("input[name=pom-R]").fill("1.5")
    page.get_by_role("radiogroup", name="Left breast BI-RADS").get_by_text("5", exact=True).click()
    page.locator("input[name=pom-L]").fill("97")

    # The server dies while the submit is on its way.
    def kill_then_send(route):
        server.stop()
        route.continue_()

    page.route("**/submit", kill_then_send)
    page.get_by_role("button", name="Submit").click()
    message = page.locator("#message")
    message.wait_for(state="visible", timeout=30_000)
    screenshot(page, tmp_path / "server-down.png")
    assert "NOT stored" in message.inner_text()
    assert "cannot be reached" in message.inner_text()
    assert page.locator("input[name=birads-R][value='3']").is_checked()
    assert page.locator("input[name=pom-R]").input_value() == "1.5"
    assert page.locator("input[name=birads-L][value='5']").is_checked()
    assert page.locator("input[name=pom-L]").input_value() == "97"
    assert page.get_by_role("button", name="Submit").is_enabled()
    page.unroute("**/submit")

    server.start()  # same port, same database
    page.get_by_role("button", name="Submit").click()
    wait_progress(page, f"Exam {position + 1} of")
    assert page.locator("#message").is_hidden()
    with server.db() as connection:
        rows = connection.execute(
            "SELECT breast, birads, malignant, pom FROM answers WHERE reading_id = ? ORDER BY breast", (reading["id"],)
        ).fetchall()
        status = connection.execute("SELECT status FROM readings WHERE id = ?", (reading["id"],)).fetchone()[0]
    assert [tuple(r) for r in rows] == [("L", "5", 1, 97.0), ("R", "3", 0, 1.5)]
    assert status == "submitted"
    screenshot(page, tmp_path / "after-retry.png")
    context.close()


def test_the_page_without_a_link_asks_for_it(perturbation_server, page, tmp_path):
    page.goto(f"{perturbation_server.base}/read")
    page.locator("body[data-phase='nolink']").wait_for(state="attached", timeout=30_000)
    screenshot(page, tmp_path / "no-link.png")
    assert "needs your personal study link" in page.locator("#overlay").inner_text()
