"""The reader-study API through a real uvicorn server on 127.0.0.1 (httpx clients).

The tests share one server (starting one takes seconds); each test uses its own readers.
"""

from __future__ import annotations

import sqlite3
import threading

import httpx
import numpy as np
import pytest

from perceptiongap.readers import db
from tests.readers.helpers import answer_for

BODY = {
    "idempotency_key": "key-00000001",
    "active_seconds": 12.5,
    "answers": {"L": {"birads": "4B", "malignant": True, "pom": 30},
                "R": {"birads": "1", "malignant": False, "pom": 0}},
}


def _client(server, reader: str | None = None) -> httpx.Client:
    client = httpx.Client(base_url=server.base, timeout=30)
    if reader is not None:
        reply = client.get(f"/r/{server.token(reader)}")
        assert reply.status_code == 303 and reply.headers["location"] == "/read"
    return client


def _answers(study, reading: str) -> list[tuple]:
    with sqlite3.connect(study / db.DB_NAME) as connection:
        return connection.execute("SELECT breast, birads, malignant, pom FROM answers WHERE reading_id = ? "
                                  "ORDER BY breast", (reading,)).fetchall()


def test_a_reader_link_sets_a_strict_httponly_session_cookie(shared_server):
    client = httpx.Client(base_url=shared_server.base)
    reply = client.get(f"/r/{shared_server.token('reader01')}")
    assert reply.status_code == 303
    cookie = reply.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
    assert reply.headers["referrer-policy"] == "no-referrer"
    assert client.get("/api/reader/state").json()["reader"] == {"id": "reader01", "name": "Dr 1"}
    assert httpx.get(f"{shared_server.base}/r/{'0' * 32}").status_code == 404


def test_only_the_token_hashes_are_stored_and_no_token_reaches_the_log(shared_server, shared_study):
    for reader in shared_server.links:
        _client(shared_server, reader).get("/api/reader/state")
    with sqlite3.connect(shared_study / db.DB_NAME) as connection:
        dump = "\n".join(connection.iterdump())
    for reader in shared_server.links:
        assert shared_server.token(reader) not in dump
    assert shared_server.admin.rsplit("/", 1)[1] not in dump
    log = "\n".join(line for line in shared_server.lines if "HTTP/1.1" in line)
    assert "GET /r/*** HTTP/1.1" in log
    for reader in shared_server.links:
        assert shared_server.token(reader) not in log


def test_a_reader_reads_in_order_and_a_submitted_exam_is_closed(shared_server, shared_study):
    client = _client(shared_server, "reader01")
    state = client.get("/api/reader/state").json()
    assert state["progress"] == {"position": 1, "total": 8, "done": 0, "practice_total": 1, "practice_done": 0}
    current = state["current"]
    assert current["practice"] is True and current["status"] == "assigned"
    assert [image["view"] for image in current["images"]] == ["R-CC", "L-CC", "R-MLO", "L-MLO"]
    assert "exam" not in str(state).replace("exams", "")  # no exam ids reach the reader
    reading = current["reading"]
    # Submitting before opening is refused; opening starts the clock, opening again resumes it.
    assert client.post(f"/api/readings/{reading}/submit", json=BODY).status_code == 409
    opened = client.post(f"/api/readings/{reading}/open", json={}).json()
    again = client.post(f"/api/readings/{reading}/open", json={}).json()
    assert opened["opened_at"] == again["opened_at"]
    image = client.get(current["images"][0]["url"])
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    assert image.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert client.get(current["images"][0]["url"], headers={"If-None-Match": image.headers["etag"]}).status_code == 304
    reply = client.post(f"/api/readings/{reading}/submit", json=BODY)
    assert reply.status_code == 200 and reply.json()["replayed"] is False
    assert reply.json()["state"]["progress"]["done"] == 1
    assert _answers(shared_study, reading) == [("L", "4B", 1, 30.0), ("R", "1", 0, 0.0)]
    # Closed for good: no image, no reopening, no second answer under another key.
    assert client.get(current["images"][0]["url"]).status_code == 404
    assert client.post(f"/api/readings/{reading}/open", json={}).status_code == 409
    changed = {**BODY, "idempotency_key": "key-00000002",
               "answers": {**BODY["answers"], "L": {"birads": "1", "malignant": False, "pom": 0}}}
    assert client.post(f"/api/readings/{reading}/submit", json=changed).status_code == 409
    assert _answers(shared_study, reading) == [("L", "4B", 1, 30.0), ("R", "1", 0, 0.0)]
    with sqlite3.connect(shared_study / db.DB_NAME) as connection:
        kinds = [k for (k,) in connection.execute(
            "SELECT kind FROM events WHERE reading_id = ? ORDER BY id", (reading,))]
    assert kinds == ["opened", "resumed", "submitted", "submit_refused"]


def test_a_retry_with_the_same_key_is_a_replay_and_stores_once(shared_server, shared_study):
    client = _client(shared_server, "reader02")
    reading = client.get("/api/reader/state").json()["current"]["reading"]
    client.post(f"/api/readings/{reading}/open", json={})
    first = client.post(f"/api/readings/{reading}/submit", json=BODY)
    retry = client.post(f"/api/readings/{reading}/submit", json={**BODY, "active_seconds": 14.0})
    assert first.status_code == retry.status_code == 200
    assert (first.json()["replayed"], retry.json()["replayed"]) == (False, True)
    assert retry.json()["state"]["progress"]["done"] == 1
    other_answers = {**BODY, "answers": {**BODY["answers"], "R": {"birads": "2", "malignant": False, "pom": 0}}}
    assert client.post(f"/api/readings/{reading}/submit", json=other_answers).status_code == 409
    assert len(_answers(shared_study, reading)) == 2


def test_the_next_exam_is_preloadable_but_nothing_further(shared_server, shared_study):
    client = _client(shared_server, "reader03")
    state = client.get("/api/reader/state").json()
    assert client.get(state["next"]["images"][0]["url"]).status_code == 200
    # The preload is logged and does not open the next exam.
    with sqlite3.connect(shared_study / db.DB_NAME) as connection:
        status, events = connection.execute(
            "SELECT status, (SELECT count(*) FROM events WHERE kind = 'preloaded' AND reading_id = r.id) "
            "FROM readings r WHERE id = ?", (state["next"]["reading"],)).fetchone()
        later = connection.execute(
            "SELECT i.id FROM images i JOIN readings r ON r.exam = i.exam AND r.severity_mm = i.severity_mm "
            "WHERE r.reader_id = 'reader03' AND r.position = 3").fetchall()
    assert (status, events) == ("assigned", 1)
    for (identifier,) in later:  # the exam after next, unless it happens to share the image
        if identifier not in {i["id"] for i in state["current"]["images"] + state["next"]["images"]}:
            assert client.get(f"/api/images/{identifier}.png").status_code == 404
    assert client.post(f"/api/readings/{state['next']['reading']}/open", json={}).status_code == 409


def test_invalid_answers_get_422_naming_the_rule(shared_server, shared_study):
    client = _client(shared_server, "reader04")
    reading = client.get("/api/reader/state").json()["current"]["reading"]
    client.post(f"/api/readings/{reading}/open", json={})
    cases = [
        ({"R": {"birads": "4B", "malignant": True, "pom": 60}}, "pom_matches_birads", "right breast: BI-RADS 4B needs"),
        ({"L": {"birads": "3", "malignant": True, "pom": 1}}, "malignant_matches_birads", "left breast: BI-RADS 3"),
        ({"L": {"birads": "6", "malignant": True, "pom": 99}}, "birads_category", "left breast: BI-RADS must be"),
        ({"L": None}, "answers", "left breast: no answer"),
    ]
    for change, rule, message in cases:
        body = {**BODY, "answers": {**BODY["answers"], **change}}
        reply = client.post(f"/api/readings/{reading}/submit", json=body)
        assert reply.status_code == 422 and reply.json()["rule"] == rule and reply.json()["detail"].startswith(message)
    rois = {**BODY, "rois": [{"view": "L-CC", "x0": 1, "y0": 1, "x1": 5, "y1": 5}]}
    assert client.post(f"/api/readings/{reading}/submit", json=rois).json()["rule"] == "rois_mode"
    assert client.post(f"/api/readings/{reading}/submit", json={**BODY, "active_seconds": -1}).status_code == 422
    assert client.post(f"/api/readings/{reading}/submit", content=b"{", headers={"Content-Type": "application/json"}
                       ).status_code == 422
    assert client.post(f"/api/readings/{reading}/submit", data={"a": "b"}).status_code == 415
    assert _answers(shared_study, reading) == []


def test_pause_events_are_logged_for_the_open_exam(shared_server, shared_study):
    client = _client(shared_server, "reader05")
    reading = client.get("/api/reader/state").json()["current"]["reading"]
    assert client.post(f"/api/readings/{reading}/events", json={"kind": "paused"}).status_code == 409  # not open
    client.post(f"/api/readings/{reading}/open", json={})
    assert client.post(f"/api/readings/{reading}/events", json={"kind": "paused"}).status_code == 204
    assert client.post(f"/api/readings/{reading}/events", json={"kind": "unpaused"}).status_code == 204
    assert client.post(f"/api/readings/{reading}/events", json={"kind": "deleted"}).status_code == 422
    with sqlite3.connect(shared_study / db.DB_NAME) as connection:
        kinds = [k for (k,) in connection.execute("SELECT kind FROM events WHERE reading_id = ? ORDER BY id",
                                                  (reading,))]
    assert kinds == ["opened", "paused", "unpaused"]


def test_reader_a_with_reader_b_ids_gets_404_everywhere(shared_server):
    alice, bob = _client(shared_server, "reader06"), _client(shared_server, "reader07")
    state = bob.get("/api/reader/state").json()
    reading = state["current"]["reading"]
    bob.post(f"/api/readings/{reading}/open", json={})
    mine = {i["id"] for part in ("current", "next") for i in alice.get("/api/reader/state").json()[part]["images"]}
    images = [i["id"] for part in ("current", "next") for i in state[part]["images"] if i["id"] not in mine]
    assert images, "the two readers' first exams share no image"
    for image in images:
        assert alice.get(f"/api/images/{image}.png").status_code == 404
        assert alice.get(f"/api/images/{image}.json").status_code == 404
    for reading_id in (reading, state["next"]["reading"]):
        assert alice.post(f"/api/readings/{reading_id}/open", json={}).status_code == 404
        assert alice.post(f"/api/readings/{reading_id}/submit", json=BODY).status_code == 404
        assert alice.post(f"/api/readings/{reading_id}/events", json={"kind": "paused"}).status_code == 404
    # Unknown ids look the same as another reader's.
    assert alice.post(f"/api/readings/{'0' * 32}/open", json={}).json() == \
        alice.post(f"/api/readings/{reading}/open", json={}).json()
    # Bob's exam is untouched and still his to submit.
    assert bob.post(f"/api/readings/{reading}/submit", json=BODY).status_code == 200


def test_missing_or_forged_sessions_get_401_and_roles_are_kept_apart(shared_server):
    reader, admin = _client(shared_server, "reader08"), httpx.Client(base_url=shared_server.base)
    assert admin.get(shared_server.admin.replace(shared_server.base, "")).status_code == 303
    reading = reader.get("/api/reader/state").json()["current"]["reading"]
    image = reader.get("/api/reader/state").json()["current"]["images"][0]["id"]
    reader_calls = [("GET", "/api/reader/state", None), ("POST", f"/api/readings/{reading}/open", {}),
                    ("POST", f"/api/readings/{reading}/submit", BODY),
                    ("POST", f"/api/readings/{reading}/events", {"kind": "paused"}),
                    ("GET", f"/api/images/{image}.png", None), ("GET", f"/api/images/{image}.json", None)]
    admin_calls = [("GET", "/api/admin/progress", None), ("GET", "/api/admin/export", None),
                   ("GET", "/api/admin/backup", None), ("POST", "/api/admin/readers/nobody/link", {})]
    anonymous = httpx.Client(base_url=shared_server.base)
    forged = httpx.Client(base_url=shared_server.base, cookies={"pg_session": "0123456789abcdef0123456789abcdef"})
    for method, path, body in reader_calls + admin_calls:
        for client in (anonymous, forged):
            assert client.request(method, path, json=body).status_code == 401, path
    for method, path, body in admin_calls:
        assert reader.request(method, path, json=body).status_code == 403, path
    for method, path, body in reader_calls:
        assert admin.request(method, path, json=body).status_code == 403, path


@pytest.mark.parametrize("path", [
    "/static/../study.sqlite", "/static/%2e%2e/%2e%2e/study.json", "/static/..%2f..%2fstudy.json",
    "/api/images/..%2F..%2Fstudy.sqlite.png", "/api/images/%2e%2e%2fstudy.json", "/images/x.png",
    "/study.sqlite", "/api/images/../../study.json",
])
def test_path_traversal_gets_404(shared_server, path):
    client = _client(shared_server, "reader08")
    reply = client.get(path)
    assert reply.status_code == 404
    assert b"SQLite" not in reply.content and b"severities_mm" not in reply.content


def test_concurrent_identical_submits_store_exactly_one(shared_server, shared_study):
    client = _client(shared_server, "reader09")
    reading = client.get("/api/reader/state").json()["current"]["reading"]
    client.post(f"/api/readings/{reading}/open", json={})
    cookies = dict(client.cookies)
    barrier, replies = threading.Barrier(8), []

    def submit(key: str) -> None:
        with httpx.Client(base_url=shared_server.base, cookies=cookies, timeout=30) as own:
            barrier.wait()
            replies.append(own.post(f"/api/readings/{reading}/submit", json={**BODY, "idempotency_key": key}))

    # Four clicks re-sending one key, four that made a new key each: one stored, the rest told so.
    threads = [threading.Thread(target=submit, args=("same-key-0001" if i < 4 else f"click-key-{i:04d}",))
               for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stored = [r for r in replies if r.status_code == 200 and not r.json()["replayed"]]
    assert len(stored) == 1
    assert all(r.status_code in (200, 409) for r in replies)
    assert len(_answers(shared_study, reading)) == 2
    with sqlite3.connect(shared_study / db.DB_NAME) as connection:
        assert connection.execute("SELECT count(*) FROM events WHERE kind = 'submitted' AND reading_id = ?",
                                  (reading,)).fetchone()[0] == 1


def test_admin_sees_progress_and_can_reissue_a_link(shared_server, shared_study):
    reader = _client(shared_server, "reader10")
    state = reader.get("/api/reader/state").json()
    reading = state["current"]["reading"]
    reader.post(f"/api/readings/{reading}/open", json={})
    body = {**BODY, "answers": {b: answer_for(b == "L", np.random.default_rng(0)) for b in ("L", "R")}}
    assert reader.post(f"/api/readings/{reading}/submit", json=body).status_code == 200
    admin = httpx.Client(base_url=shared_server.base)
    admin.get(shared_server.admin.replace(shared_server.base, ""))
    table = admin.get("/api/admin/progress").json()
    row = {r["id"]: r for r in table["readers"]}["reader10"]
    assert (row["done"], row["total"], row["practice_done"]) == (1, 8, 1)
    assert row["median_active_seconds"] == 12.5 and row["median_seconds"] >= 0
    with sqlite3.connect(shared_study / db.DB_NAME) as connection:
        missing = connection.execute(
            "SELECT count(*) FROM readings WHERE practice = 0 AND status != 'submitted'").fetchone()[0]
    assert table["missing_readings"] == missing
    export = admin.get("/api/admin/export")
    assert export.headers["content-type"] == "application/zip" and export.content[:2] == b"PK"
    backup = admin.get("/api/admin/backup")
    assert backup.content[:16] == b"SQLite format 3\x00"
    new = admin.post("/api/admin/readers/reader10/link", json={}).json()
    assert new["link"].startswith(f"{shared_server.base}/r/") and new["link"] != shared_server.links["reader10"]
    assert reader.get("/api/reader/state").status_code == 401  # the old link's session ended
    assert httpx.get(shared_server.links["reader10"]).status_code == 404
    fresh = httpx.Client(base_url=shared_server.base)
    assert fresh.get(new["link"].replace(shared_server.base, "")).status_code == 303
    assert fresh.get("/api/reader/state").json()["progress"]["done"] == 1
    assert admin.post("/api/admin/readers/nobody/link", json={}).status_code == 404


def test_pages_are_static_shells_with_their_security_headers(shared_server):
    client = httpx.Client(base_url=shared_server.base)  # no session: the pages need none, their API calls do
    page = client.get("/read")
    assert page.status_code == 200 and "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert "script-src 'self'" in page.headers["content-security-policy"]
    admin = client.get("/admin")
    assert admin.status_code == 200 and '<script src="/admin.js"' in admin.text
    assert "'unsafe-inline'" not in admin.headers["content-security-policy"]
    assert client.get("/admin.js").headers["content-type"].startswith("text/javascript")
    assert client.get("/api/admin/progress").status_code == 401
