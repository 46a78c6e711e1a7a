"""Load on the reader-study server: 20 readers at once over loopback, 50 exams each.

Each simulated reader (its own process, so that clients do not share one interpreter) opens its
link and reads its whole list: state, open, all four images (16-bit PNGs of 3000 x 2400 pixels),
submit. Printed: p50/p95 latency of a submit and of an image fetch (goals: submit p95 < 50 ms,
image p95 < 300 ms), and a check that no answer was lost or stored twice (the database against
what each client sent and was acknowledged).

Baseline, in the same run and against the same server: an image fetch that decodes the stored
PNG and encodes it again per request (what a server keeping pixels rather than bytes, or
converting on the fly, does), fetched by the same 20 readers at once, each its current exam's
four images. The ratio is baseline / stored-bytes latency.

The study (200 images of 3000 x 2400 pixels, about 0.75 GB) is prepared once into ``--workdir``
(default: ``$TMPDIR/perceptiongap-bench-serve-50x20``) and reused by later runs; readers' answers are
reset by copying the prepared study afresh each run.

    python benchmarks/serve.py [--readers 20] [--exams 50] [--workdir DIR]

Figures taken on a loaded shared machine are rough: the clients run on the same cores as the
server, which real readers' browsers would not.
"""


import argparse
import json
import multiprocessing
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROWS, COLUMNS, PIXEL_MM = 3000, 2400, 0.07
DISTINCT_VIEWS = 8


def _sources(folder: Path) -> list[Path]:
    """``DISTINCT_VIEWS`` synthetic mammogram views of ROWS x COLUMNS, written once."""
    from PIL import Image

    from perceptiongap.reference import synthetic_view

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    rng = np.random.default_rng(0)
    for index in range(DISTINCT_VIEWS):
        path = folder / f"view{index}.png"
        if not path.is_file():
            Image.fromarray(synthetic_view((ROWS, COLUMNS), PIXEL_MM, 5, rng)).save(path, compress_level=1)
        paths.append(path)
    return paths


def prepare(workdir: Path, n_exams: int, n_readers: int) -> Path:
    """The prepared study (made once, resumable): n_exams exams, unperturbed, n_readers readers."""
    import pandas as pd

    from perceptiongap.readers import create_study

    sources = _sources(workdir / "sources")
    rows, cases = [], []
    for exam in range(n_exams):
        for offset, view in enumerate(("L-CC", "L-MLO", "R-CC", "R-MLO")):
            rows.append((f"exam{exam:03d}", view, str(sources[(exam + offset) % DISTINCT_VIEWS]), PIXEL_MM))
        cases += [(f"exam{exam:03d}", "L", "malignant" if exam % 2 else "benign", "microcalcifications"),
                  (f"exam{exam:03d}", "R", "nonbiopsied", "nonbiopsied")]
    pd.DataFrame(rows, columns=["exam", "view", "path", "pixel_mm"]).to_csv(workdir / "exams.csv", index=False)
    pd.DataFrame(cases, columns=["exam", "breast", "label", "subgroup"]).to_csv(workdir / "cases.csv", index=False)
    pd.DataFrame({"reader": [f"reader{r:02d}" for r in range(n_readers)]}).to_csv(workdir / "readers.csv",
                                                                                 index=False)
    started = time.perf_counter()

    def progress(done: int, total: int) -> None:
        print(f"\rpreparing images: exam {done}/{total}", end="", file=sys.stderr, flush=True)

    study = create_study(workdir / "exams.csv", workdir / "cases.csv", workdir / "readers.csv",
                         workdir / "template", cutoffs_per_mm=[float("inf")], seed=0, progress=progress)
    print(f"\rstudy ready in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return study.folder


def run_server(study: Path) -> None:
    """Server mode: the study's app plus the baseline route, on a free port; prints base and links."""
    import uvicorn
    from fastapi import Depends, Request
    from fastapi.responses import Response
    from PIL import Image

    from perceptiongap.perturb import png_bytes
    from perceptiongap.readers import access, db, readings
    from perceptiongap.readers.server import create_app, listen_socket

    app = create_app(study)
    info = app.state.study
    connection = db.connect(info.database)
    links = access.issue_links(connection, renew=True)
    connection.close()
    local = __import__("threading").local()

    def connection_here():
        if not hasattr(local, "connection"):
            local.connection = db.connect(info.database)
        return local.connection

    def reader_of(request: Request) -> str:
        session = access.session_for(connection_here(), request.cookies.get(access.COOKIE))
        if session is None or session.role != "reader":
            raise readings.NotFound("no session")
        return session.reader_id

    @app.get("/baseline/images/{image}.png")
    def baseline(image: str, reader_id: str = Depends(reader_of)) -> Response:
        path, _ = readings.image_for(connection_here(), info, reader_id, image, log_preload=False)
        with Image.open(path) as picture:
            pixels = np.array(picture)
        return Response(png_bytes(pixels, (PIXEL_MM, PIXEL_MM)), media_type="image/png")

    sock = listen_socket("127.0.0.1", 0)
    print(json.dumps({"base": f"http://127.0.0.1:{sock.getsockname()[1]}",
                      "tokens": {k: v for k, v in links.items() if k is not None}}), flush=True)
    uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False)).run(sockets=[sock])


def _answer(rng: np.random.Generator) -> dict:
    if rng.random() < 0.3:
        return {"birads": "4B", "malignant": True, "pom": 25.0}
    return {"birads": "1", "malignant": False, "pom": 0.0}


def read_everything(base: str, reader: str, token: str, limit: int | None = None) -> dict:
    """One reader's list (all of it, or its next ``limit`` exams): latencies (s), what was acknowledged."""
    import httpx

    rng = np.random.default_rng(int(reader[-2:]))
    submit, image, sizes, acknowledged = [], [], [], {}
    with httpx.Client(base_url=base, timeout=120) as client:
        client.get(f"/r/{token}")
        state = client.get("/api/reader/state").json()
        while not state["finished"] and (limit is None or len(submit) < limit):
            current = state["current"]
            client.post(f"/api/readings/{current['reading']}/open", json={})
            for entry in current["images"]:
                started = time.perf_counter()
                reply = client.get(entry["url"])
                image.append(time.perf_counter() - started)
                assert reply.status_code == 200
                sizes.append(len(reply.content))
            body = {"idempotency_key": f"{reader}-{current['position']:04d}", "active_seconds": 30.0,
                    "answers": {"L": _answer(rng), "R": _answer(rng)}}
            started = time.perf_counter()
            reply = client.post(f"/api/readings/{current['reading']}/submit", json=body)
            submit.append(time.perf_counter() - started)
            assert reply.status_code == 200, reply.text
            acknowledged[current["reading"]] = body["answers"]
            state = reply.json()["state"]
    return {"submit": submit, "image": image, "sizes": sizes, "acknowledged": acknowledged}


def fetch_baseline(base: str, reader: str, token: str) -> list[float]:
    """The reader's current exam's four images through the re-encoding baseline route."""
    import httpx

    times = []
    with httpx.Client(base_url=base, timeout=600) as client:
        client.get(f"/r/{token}")
        for entry in client.get("/api/reader/state").json()["current"]["images"]:
            started = time.perf_counter()
            reply = client.get(entry["url"].replace("/api/images/", "/baseline/images/"))
            times.append(time.perf_counter() - started)
            assert reply.status_code == 200, (reply.status_code, reply.text[:300])
    return times


def _percentiles(seconds: list[float]) -> tuple[float, float]:
    p50, p95 = np.percentile(np.asarray(seconds) * 1000, [50, 95])
    return float(p50), float(p95)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, default=20)
    parser.add_argument("--exams", type=int, default=50)
    parser.add_argument("--workdir", type=Path, help="Where the prepared study is kept between runs "
                        "[default: $TMPDIR/perceptiongap-bench-serve-EXAMSxREADERS]")
    parser.add_argument("--server", type=Path, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.server is not None:
        run_server(options.server)
        return

    default = Path(tempfile.gettempdir()) / f"perceptiongap-bench-serve-{options.exams}x{options.readers}"
    workdir = options.workdir or default
    template = prepare(workdir, options.exams, options.readers)
    study = workdir / "run"
    shutil.rmtree(study, ignore_errors=True)
    shutil.copytree(template, study)
    server = subprocess.Popen([sys.executable, __file__, "--server", str(study)], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        hello = json.loads(server.stdout.readline())
        base, tokens = hello["base"], hello["tokens"]
        jobs = [(base, reader, token) for reader, token in tokens.items()]
        context = multiprocessing.get_context("spawn")
        with context.Pool(len(jobs)) as pool:
            # The floor: one reader alone reads 5 exams (no other load from this benchmark).
            alone = pool.apply(read_everything, (*jobs[0], 5))
            started = time.perf_counter()
            baseline = [t for times in pool.starmap(fetch_baseline, jobs) for t in times]
            baseline_seconds = time.perf_counter() - started
            started = time.perf_counter()
            results = pool.starmap(read_everything, jobs)
            run_seconds = time.perf_counter() - started
    finally:
        server.terminate()
        server.wait(timeout=30)

    submit = [t for r in results for t in r["submit"]]
    image = [t for r in results for t in r["image"]]
    acknowledged = {reading: answers for r in [alone, *results] for reading, answers in r["acknowledged"].items()}
    with sqlite3.connect(study / "study.sqlite") as connection:
        stored = {}
        for reading, breast, birads, malignant, pom in connection.execute(
                "SELECT reading_id, breast, birads, malignant, pom FROM answers"):
            stored.setdefault(reading, {})[breast] = {"birads": birads, "malignant": bool(malignant), "pom": pom}
        rows = connection.execute("SELECT count(*) FROM answers").fetchone()[0]
        submitted_events = connection.execute("SELECT count(*) FROM events WHERE kind = 'submitted'").fetchone()[0]
    lost = sum(1 for reading, answers in acknowledged.items() if stored.get(reading) != answers)
    duplicated = rows - 2 * len(stored) + (submitted_events - len(stored))

    s50, s95 = _percentiles(submit)
    i50, i95 = _percentiles(image)
    b50, b95 = _percentiles(baseline)
    mean_mb = np.mean([s for r in results for s in r["sizes"]]) / 1e6
    print(f"serve benchmark: {len(jobs)} readers x {options.exams} exams at once over loopback, 4 images each "
          f"({ROWS} x {COLUMNS}, 16-bit PNG, {mean_mb:.1f} MB mean); {os.cpu_count()} cores")
    a_submit, a_image = _percentiles(alone["submit"]), _percentiles(alone["image"])
    print(f"  one reader alone, 5 exams: submit p50 {a_submit[0]:.1f} ms, image p50 {a_image[0]:.1f} ms")
    print(f"  reading run: {run_seconds:.1f} s for {len(submit)} exams")
    print(f"  submit:                 n = {len(submit):5d}  p50 {s50:7.1f} ms  p95 {s95:7.1f} ms   (goal p95 < 50 ms)")
    print(f"  image, stored bytes:    n = {len(image):5d}  p50 {i50:7.1f} ms  p95 {i95:7.1f} ms   (goal p95 < 300 ms)")
    print(f"  image, re-encoded:      n = {len(baseline):5d}  p50 {b50:7.1f} ms  p95 {b95:7.1f} ms   "
          f"(baseline, {baseline_seconds:.1f} s for {len(baseline)} fetches)")
    print(f"  ratio re-encoded / stored bytes: p50 {b50 / i50:.1f}x, p95 {b95 / i95:.1f}x")
    print(f"  answers: {len(acknowledged)} exams acknowledged, {len(stored)} stored, {lost} lost or altered, "
          f"{duplicated} duplicated")
    if lost or duplicated or len(stored) != len(acknowledged):
        sys.exit("answers were lost or duplicated")


if __name__ == "__main__":
    main()
