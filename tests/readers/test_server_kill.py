"""kill -9 of the server while readers submit: every acknowledged answer survives, nothing is half-written."""

from __future__ import annotations

import signal
import sqlite3
import threading

import httpx
import numpy as np
import pytest

from perceptiongap.readers import db
from tests.readers.helpers import answer_for, start_server, wait_until

READERS = [f"reader{i:02d}" for i in range(1, 7)]


def _read_until_stopped(server, reader: str, seed: int, acknowledged: dict, in_flight: dict, stop: threading.Event):
    rng = np.random.default_rng(seed)
    client = httpx.Client(base_url=server.base, timeout=10)
    try:
        client.get(f"/r/{server.token(reader)}")
        for attempt in range(1000):
            state = client.get("/api/reader/state").json()
            if state["finished"] or stop.is_set():
                return
            reading = state["current"]["reading"]
            client.post(f"/api/readings/{reading}/open", json={})
            body = {"idempotency_key": f"{reader}-{attempt:04d}", "active_seconds": float(rng.uniform(1, 60)),
                    "answers": {b: answer_for(bool(rng.random() < 0.5), rng) for b in ("L", "R")}}
            in_flight[reader] = (reading, body)
            reply = client.post(f"/api/readings/{reading}/submit", json=body)
            assert reply.status_code == 200, reply.text
            acknowledged[reading] = body
            in_flight.pop(reader, None)
    except httpx.TransportError:
        return  # the server died under us: what was in flight is unacknowledged
    finally:
        client.close()


@pytest.mark.slow
def test_kill_9_while_readers_submit_keeps_every_acknowledged_answer(study):
    server = start_server(study)
    acknowledged: dict[str, dict] = {}
    in_flight: dict[str, tuple] = {}
    stop = threading.Event()
    threads = [threading.Thread(target=_read_until_stopped, args=(server, r, i, acknowledged, in_flight, stop))
               for i, r in enumerate(READERS)]
    for thread in threads:
        thread.start()
    assert wait_until(lambda: len(acknowledged) >= 12, timeout=60), server.output()
    server.process.send_signal(signal.SIGKILL)
    server.process.wait()
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    assert 12 <= len(acknowledged) < len(READERS) * 8

    with sqlite3.connect(study / db.DB_NAME) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        for reading, body in acknowledged.items():
            status, key = connection.execute("SELECT status, idempotency_key FROM readings WHERE id = ?",
                                             (reading,)).fetchone()
            assert (status, key) == ("submitted", body["idempotency_key"])
            stored = connection.execute("SELECT breast, birads, malignant, pom FROM answers WHERE reading_id = ? "
                                        "ORDER BY breast", (reading,)).fetchall()
            sent = [(b, a["birads"], int(a["malignant"]), float(a["pom"])) for b, a in sorted(body["answers"].items())]
            assert stored == sent
        # Nothing half-written: a reading has both answers and is submitted, or has none and is not.
        rows = connection.execute(
            "SELECT r.status, (SELECT count(*) FROM answers a WHERE a.reading_id = r.id), "
            "(SELECT count(*) FROM events e WHERE e.reading_id = r.id AND e.kind = 'submitted') FROM readings r"
        ).fetchall()
    for status, answers, submitted_events in rows:
        assert (status, answers, submitted_events) in (("submitted", 2, 1), ("open", 0, 0), ("assigned", 0, 0))

    # After a restart the old links still work, readers resume at their open exam, and a submit
    # that was in flight when the server died can be retried with its key: stored exactly once.
    restarted = start_server(study)
    try:
        assert "links issued before still work" in restarted.output()
        restarted.links = server.links
        for reader, (reading, body) in list(in_flight.items()):
            client = httpx.Client(base_url=restarted.base, timeout=10)
            client.get(f"/r/{restarted.token(reader)}")
            state = client.get("/api/reader/state").json()
            client.post(f"/api/readings/{state['current']['reading']}/open", json={})
            reply = client.post(f"/api/readings/{reading}/submit", json=body)
            assert reply.status_code == 200
            with sqlite3.connect(study / db.DB_NAME) as connection:
                assert connection.execute("SELECT count(*) FROM answers WHERE reading_id = ?",
                                          (reading,)).fetchone()[0] == 2
        resumed = httpx.Client(base_url=restarted.base, timeout=10)
        resumed.get(f"/r/{restarted.token(READERS[0])}")
        state = resumed.get("/api/reader/state").json()
        with sqlite3.connect(study / db.DB_NAME) as connection:
            submitted, first_open = connection.execute(
                "SELECT sum(status = 'submitted'), min(CASE WHEN status != 'submitted' THEN position END) "
                "FROM readings WHERE reader_id = ?", (READERS[0],)).fetchone()
        assert state["progress"]["done"] == submitted
        assert state["finished"] or state["current"]["position"] == first_open
    finally:
        restarted.stop()
