"""Load on the reader-study server: 20 readers at once over loopback, 50 exams each.

Each simulated reader (its own process, so that clients do not share one interpreter) opens its
link and reads its whole list: state, open, all four images (16-bit PNGs of 3000 x 2400 pixels),
submit, with no pause. Printed: p50/p95 latency of a submit and of an image fetch (goals: submit
p95 < 50 ms, image p95 < 300 ms), the CPU seconds of the server and of the clients, the load
average, and a check that no answer was lost or stored twice (the database against what each
client sent and was acknowledged).

Clients (``--clients``): ``lean`` (default) keeps one ``http.client`` connection per reader and
reads image bodies into a reused buffer without parsing them in Python; ``httpx`` is the first
version's client, which cost about four times the CPU per image (on the same two cores as the
server, the clients' CPU is taken from the server).

Baselines, in the same run: ``--baseline-ref REF`` serves the same load with the server of git
revision REF (its ``src/`` exported with ``git archive``), each server reading half of every
reader's list in the order old, new, new, old, and prints the ratio old / this tree; and an image
fetch that decodes the stored PNG and encodes it again per request (what a server keeping pixels
rather than bytes does), fetched by the same 20 readers at once (``--no-reencode`` skips it).
``--breakdown`` also times each request inside the server and prints where a submit's time goes
(client-observed vs app entry to last byte, queueing, the writer's batch, COMMIT).

The study (200 images of 3000 x 2400 pixels, about 0.75 GB) is prepared once into ``--workdir``
(default: ``$TMPDIR/perceptiongap-bench-serve-50x20``) and reused by later runs; readers' answers are
reset by copying the prepared study afresh each run (images hard-linked).

    python benchmarks/serve.py [--readers 20] [--exams 50] [--workdir DIR] [--clients lean|httpx]
        [--baseline-ref 63f711e] [--breakdown] [--no-reencode]

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


class _Trace:
    """Server-side timing of each request (``--breakdown``): where a submit's time goes.

    Marks per request, in seconds since the request reached the app (uvicorn had parsed its
    head): ``session`` (the session lookup starts), ``handler`` / ``handled`` (the submit's
    reading rules start / return), ``head`` and ``done`` (the response's head and last byte handed
    to uvicorn). With the batching writer (``perceptiongap.readers.writer``): ``batch`` (the batch
    holding the submit starts), ``commit`` / ``committed`` (its COMMIT, the WAL fsync). With the
    server before it (one transaction per request): ``begin`` / ``locked`` (BEGIN IMMEDIATE asked
    / granted) and ``commit`` / ``committed``. Written as JSON lines.
    """

    def __init__(self, app, path: Path):
        import contextlib
        import contextvars
        import threading

        from perceptiongap.readers import access, db, readings

        self.app, self.path, self.records = app, path, []
        self.current = contextvars.ContextVar("trace", default=None)
        clock, current = time.perf_counter, self.current

        def mark(name: str, record: dict | None = None) -> None:
            record = current.get() if record is None else record
            if record is not None and name not in record:
                record[name] = clock() - record["arrive"]

        session_for, submit_reading = access.session_for, readings.submit_reading

        def traced_session_for(*args, **kwargs):
            mark("session")
            return session_for(*args, **kwargs)

        def traced_submit(*args, **kwargs):
            mark("handler")
            try:
                return submit_reading(*args, **kwargs)
            finally:
                mark("handled")

        access.session_for, readings.submit_reading = traced_session_for, traced_submit
        try:
            from perceptiongap.readers.writer import Writer
        except ImportError:  # the server before the batching writer: time its own transactions
            @contextlib.contextmanager
            def traced_write(connection):
                mark("begin")
                connection.execute("BEGIN IMMEDIATE")
                mark("locked")
                try:
                    yield connection
                except BaseException:
                    connection.execute("ROLLBACK")
                    raise
                mark("commit")
                connection.execute("COMMIT")
                mark("committed")

            db.write = traced_write
        else:
            run_batch, commit, batch_records = Writer._run_batch, Writer._commit, threading.local()
            self.batches: list[tuple[int, float]] = []

            def traced_run_batch(writer, connection, batch):
                batch_records.now = [job[0].get(current) for job in batch]
                for record in batch_records.now:
                    mark("batch", record)
                return run_batch(writer, connection, batch)

            def traced_commit(writer, connection):
                for record in batch_records.now:
                    mark("commit", record)
                started = clock()
                commit(writer, connection)
                self.batches.append((len(batch_records.now), clock() - started))
                for record in batch_records.now:
                    mark("committed", record)

            Writer._run_batch, Writer._commit = traced_run_batch, traced_commit
        self.mark = mark

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":  # saved at shutdown: uvicorn ends on SIGTERM by raising it again

            async def saving_send(message):
                if message["type"] == "lifespan.shutdown.complete":
                    self.save()
                await send(message)

            return await self.app(scope, receive, saving_send)
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        kind = ("submit" if path.endswith("/submit") else "image" if path.endswith(".png")
                else "open" if path.endswith("/open") else "other")
        record = {"kind": kind, "path": path, "arrive": time.perf_counter()}
        self.current.set(record)

        async def traced_send(message):
            if message["type"] == "http.response.start":
                self.mark("head")
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                self.mark("done")

        try:
            await self.app(scope, receive, traced_send)
        finally:
            self.records.append(record)

    def save(self) -> None:
        batches = [{"kind": "batch", "size": n, "commit": t} for n, t in getattr(self, "batches", [])]
        self.path.write_text("".join(json.dumps(r) + "\n" for r in [*self.records, *batches]))


def run_server(study: Path, trace: Path | None = None) -> None:
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
        path, _, _ = readings.find_image(connection_here(), info, reader_id, image)
        with Image.open(path) as picture:
            pixels = np.array(picture)
        return Response(png_bytes(pixels, (PIXEL_MM, PIXEL_MM)), media_type="image/png")

    served = _Trace(app, trace) if trace is not None else app
    sock = listen_socket("127.0.0.1", 0)
    print(json.dumps({"base": f"http://127.0.0.1:{sock.getsockname()[1]}",
                      "tokens": {k: v for k, v in links.items() if k is not None}}), flush=True)
    # uvicorn's parser as `perceptiongap serve` chooses it (httptools when installed), for either revision.
    uvicorn.Server(uvicorn.Config(served, log_level="warning", access_log=False)).run(sockets=[sock])


def _answer(rng: np.random.Generator) -> dict:
    if rng.random() < 0.3:
        return {"birads": "4B", "malignant": True, "pom": 25.0}
    return {"birads": "1", "malignant": False, "pom": 0.0}


class _LeanClient:
    """A reader's HTTP client that costs little CPU: one keep-alive connection (``http.client``), the
    session cookie kept by hand, image bodies read into one reused buffer and not decoded."""

    def __init__(self, base: str):
        import http.client
        import urllib.parse

        address = urllib.parse.urlsplit(base)
        self.connection = http.client.HTTPConnection(address.hostname, address.port, timeout=120)
        self.cookie = ""
        self.buffer = bytearray(16 * 1024 * 1024)

    def _request(self, method: str, path: str, body: dict | None = None):
        headers = {"Cookie": self.cookie} if self.cookie else {}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        self.connection.request(method, path, body=data, headers=headers)
        reply = self.connection.getresponse()
        cookie = reply.getheader("set-cookie")
        if cookie:
            self.cookie = cookie.split(";", 1)[0]
        return reply

    def json(self, method: str, path: str, body: dict | None = None) -> tuple[int, object]:
        reply = self._request(method, path, body)
        text = reply.read()
        return reply.status, (json.loads(text) if text else None)

    def image(self, path: str) -> tuple[int, int]:
        """(status, bytes received) of a GET whose body is only counted."""
        reply = self._request("GET", path)
        received, view = 0, memoryview(self.buffer)
        while chunk := reply.readinto(view):
            received += chunk
        return reply.status, received

    def close(self) -> None:
        self.connection.close()


class _HttpxClient:
    """The same through httpx (the benchmark's first clients: each image body parsed in Python)."""

    def __init__(self, base: str):
        import httpx

        self.client = httpx.Client(base_url=base, timeout=120)

    def json(self, method: str, path: str, body: dict | None = None) -> tuple[int, object]:
        reply = self.client.request(method, path, json=body) if body is not None else self.client.request(method, path)
        return reply.status_code, (reply.json() if reply.content and reply.status_code != 303 else None)

    def image(self, path: str) -> tuple[int, int]:
        reply = self.client.get(path)
        return reply.status_code, len(reply.content)

    def close(self) -> None:
        self.client.close()


CLIENTS = {"lean": _LeanClient, "httpx": _HttpxClient}


def read_everything(base: str, reader: str, token: str, limit: int | None = None, client_kind: str = "lean") -> dict:
    """One reader's list (all of it, or its next ``limit`` exams): latencies (s), what was acknowledged."""
    rng = np.random.default_rng(int(reader[-2:]))
    submit, image, sizes, acknowledged, submitted = [], [], [], {}, []
    cpu_started = time.process_time()
    client = CLIENTS[client_kind](base)
    try:
        status, _ = client.json("GET", f"/r/{token}")
        assert status == 303, status
        status, state = client.json("GET", "/api/reader/state")
        assert status == 200, (status, state)
        while not state["finished"] and (limit is None or len(submit) < limit):
            current = state["current"]
            status, _ = client.json("POST", f"/api/readings/{current['reading']}/open", {})
            assert status == 200, status
            for entry in current["images"]:
                started = time.perf_counter()
                status, size = client.image(entry["url"])
                image.append(time.perf_counter() - started)
                assert status == 200, status
                sizes.append(size)
            body = {"idempotency_key": f"{reader}-{current['position']:04d}", "active_seconds": 30.0,
                    "answers": {"L": _answer(rng), "R": _answer(rng)}}
            started = time.perf_counter()
            status, reply = client.json("POST", f"/api/readings/{current['reading']}/submit", body)
            submit.append(time.perf_counter() - started)
            submitted.append(current["reading"])
            assert status == 200, (status, reply)
            acknowledged[current["reading"]] = body["answers"]
            state = reply["state"]
    finally:
        client.close()
    return {"submit": submit, "image": image, "sizes": sizes, "acknowledged": acknowledged, "submitted": submitted,
            "cpu_seconds": time.process_time() - cpu_started}


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


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a running process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


#: Spans of a submit, between the server-side marks of :class:`_Trace` (None = the request's arrival).
_SUBMIT_SPANS = {
    "one transaction per request": (
        ("to the session lookup", None, "session"),
        ("dependencies, body, endpoint hops", "session", "handler"),
        ("reads and validation", "handler", "begin"),
        ("BEGIN IMMEDIATE wait", "begin", "locked"),
        ("inserts in the transaction", "locked", "commit"),
        ("COMMIT (WAL fsync)", "commit", "committed"),
        ("the new reader state", "committed", "handled"),
        ("back to the loop, JSON, send", "handled", "done"),
    ),
    "batching writer": (
        ("to the session lookup", None, "session"),
        ("dependencies, body, queue for the writer", "session", "batch"),
        ("the batch's earlier writes", "batch", "handler"),
        ("its own reads, checks, writes, new state", "handler", "handled"),
        ("the batch's later writes", "handled", "commit"),
        ("COMMIT (WAL fsync)", "commit", "committed"),
        ("back to the loop, JSON, send", "committed", "done"),
    ),
}


def _print_breakdown(traces: list[Path], results: list[dict]) -> None:
    """Where a submit's time goes: client-observed vs server-side spans, joined by reading id."""
    records = [json.loads(line) for trace in traces for line in trace.read_text().splitlines()]
    submits = {r["path"].split("/")[3]: r for r in records if r["kind"] == "submit" and "done" in r}
    client = {reading: seconds for r in results for reading, seconds in zip(r["submitted"], r["submit"])}
    joined = [(client[reading], record) for reading, record in submits.items() if reading in client]
    batches = [r for r in records if r["kind"] == "batch"]
    rows = [("client-observed submit", [c for c, _ in joined]),
            ("server: app entry to last byte", [r["done"] for _, r in joined]),
            ("outside the app (client, loopback, uvicorn)", [c - r["done"] for c, r in joined])]
    for name, start, end in _SUBMIT_SPANS["batching writer" if batches else "one transaction per request"]:
        rows.append((f"  {name}", [r[end] - (r[start] if start else 0.0) for _, r in joined if end in r]))
    print(f"  where a submit's time goes ({len(joined)} submits; ms):")
    for name, values in rows:
        p50, p95 = _percentiles(values)
        print(f"    {name:<46s} p50 {p50:7.1f}  p95 {p95:7.1f}  mean {np.mean(values) * 1000:7.1f}")
    if batches:
        sizes = np.array([b["size"] for b in batches])
        c50, c95 = _percentiles([b["commit"] for b in batches])
        print(f"  writer: {sizes.sum()} writes in {len(batches)} commits (mean {sizes.mean():.2f}, max {sizes.max()} "
              f"per commit); COMMIT p50 {c50:.1f} ms, p95 {c95:.1f} ms")
    images = [r["done"] for r in records if r["kind"] == "image" and "done" in r]
    p50, p95 = _percentiles(images)
    print(f"  image, server: app entry to last byte handed over: p50 {p50:.1f} ms, p95 {p95:.1f} ms")


def _percentiles(seconds: list[float]) -> tuple[float, float]:
    p50, p95 = np.percentile(np.asarray(seconds) * 1000, [50, 95])
    return float(p50), float(p95)


def _copy_study(template: Path, target: Path) -> None:
    """A fresh copy of the prepared study: the database copied, the (read-only) images hard-linked."""
    shutil.rmtree(target, ignore_errors=True)

    def link_images(source: str, destination: str) -> None:
        if Path(source).parent.name == "images":
            os.link(source, destination)
        else:
            shutil.copy2(source, destination)

    shutil.copytree(template, target, copy_function=link_images)


def _old_source(workdir: Path, ref: str) -> Path:
    """``src/`` of the git revision ``ref`` of this repository, exported under ``workdir``."""
    repository = Path(__file__).resolve().parent.parent
    commit = subprocess.run(["git", "rev-parse", "--verify", f"{ref}^{{commit}}"], cwd=repository, check=True,
                            capture_output=True, text=True).stdout.strip()
    target = workdir / f"source-{commit[:12]}"
    if not (target / "src" / "perceptiongap").is_dir():
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        archive = subprocess.run(["git", "archive", commit, "src"], cwd=repository, check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target / "src"


class _Server:
    """``serve.py --server STUDY`` in its own process (``source``: the package's src/ to import)."""

    def __init__(self, study: Path, source: Path | None = None, trace: Path | None = None):
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        if source is not None:
            env["PYTHONPATH"] = os.pathsep.join([str(source), *filter(None, [env.get("PYTHONPATH")])])
        trace_option = ["--trace", str(trace)] if trace is not None else []
        self.process = subprocess.Popen([sys.executable, __file__, "--server", str(study), *trace_option],
                                        stdout=subprocess.PIPE, text=True, env=env)
        hello = json.loads(self.process.stdout.readline())
        self.jobs = [(hello["base"], reader, token) for reader, token in hello["tokens"].items()]

    def cpu_seconds(self) -> float:
        return _cpu_seconds(self.process.pid)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=60)


def _check_answers(study: Path, results: list[dict]) -> tuple[int, int, int, int]:
    """(acknowledged, stored, lost or altered, duplicated): the database against what clients were told."""
    acknowledged = {reading: answers for r in results for reading, answers in r["acknowledged"].items()}
    with sqlite3.connect(study / "study.sqlite") as connection:
        stored = {}
        for reading, breast, birads, malignant, pom in connection.execute(
                "SELECT reading_id, breast, birads, malignant, pom FROM answers"):
            stored.setdefault(reading, {})[breast] = {"birads": birads, "malignant": bool(malignant), "pom": pom}
        rows = connection.execute("SELECT count(*) FROM answers").fetchone()[0]
        submitted_events = connection.execute("SELECT count(*) FROM events WHERE kind = 'submitted'").fetchone()[0]
    lost = sum(1 for reading, answers in acknowledged.items() if stored.get(reading) != answers)
    duplicated = rows - 2 * len(stored) + (submitted_events - len(stored))
    return len(acknowledged), len(stored), lost, duplicated


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, default=20)
    parser.add_argument("--exams", type=int, default=50)
    parser.add_argument("--workdir", type=Path, help="Where the prepared study is kept between runs "
                        "[default: $TMPDIR/perceptiongap-bench-serve-EXAMSxREADERS]")
    parser.add_argument("--baseline-ref", metavar="REF",
                        help="Also serve the same load with the server of git revision REF (e.g. 63f711e, the "
                             "server before the batching writer), alternating halves with this tree's, and print "
                             "the ratio")
    parser.add_argument("--breakdown", action="store_true",
                        help="Time each request inside the server too and print where a submit's time goes")
    parser.add_argument("--no-reencode", action="store_true", help="Skip the re-encoding image baseline")
    parser.add_argument("--clients", choices=sorted(CLIENTS), default="lean",
                        help="The readers' HTTP client: lean (http.client, image bodies counted, not parsed in "
                             "Python) or httpx (the first version's clients) [default: lean]")
    parser.add_argument("--server", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--trace", type=Path, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.server is not None:
        run_server(options.server, options.trace)
        return

    default = Path(tempfile.gettempdir()) / f"perceptiongap-bench-serve-{options.exams}x{options.readers}"
    workdir = options.workdir or default
    template = prepare(workdir, options.exams, options.readers)
    variants = {"this tree": None}
    if options.baseline_ref:
        variants[f"server of {options.baseline_ref}"] = _old_source(workdir, options.baseline_ref)
    studies = {name: workdir / f"run-{index}" for index, name in enumerate(variants)}
    for study in studies.values():
        _copy_study(template, study)
    traces: dict[str, list[Path]] = {name: [] for name in variants}
    results: dict[str, list[list[dict]]] = {name: [] for name in variants}
    seconds = dict.fromkeys(variants, 0.0)
    server_cpu = dict.fromkeys(variants, 0.0)
    load_before = os.getloadavg()
    context = multiprocessing.get_context("spawn")
    with context.Pool(options.readers) as pool:
        # The floor and the re-encoding baseline, against this tree's server (reader 0 reads 5 exams).
        server = _Server(studies["this tree"])
        try:
            alone = pool.apply(read_everything, (*server.jobs[0], 5, options.clients))
            started = time.perf_counter()
            reencoded = [] if options.no_reencode else [
                t for ts in pool.starmap(fetch_baseline, server.jobs) for t in ts]
            reencoded_seconds = time.perf_counter() - started
        finally:
            server.stop()
        # The reading run: with a baseline, each server reads half of every list, in the order
        # old, new, new, old, so that a drift of the machine's other load weighs on both alike.
        halves = 2 if len(variants) > 1 else 1
        limit = -(-options.exams // halves)
        order = [[*variants][::-1], [*variants]] if halves == 2 else [[*variants]]
        for half, names in enumerate(order):
            for name in names:
                trace = workdir / f"trace-{list(variants).index(name)}-{half}.jsonl" if options.breakdown else None
                if trace is not None:
                    trace.unlink(missing_ok=True)
                    traces[name].append(trace)
                server = _Server(studies[name], variants[name], trace)
                try:
                    started, cpu_started = time.perf_counter(), server.cpu_seconds()
                    results[name].append(pool.starmap(read_everything,
                                                      [(*job, limit, options.clients) for job in server.jobs]))
                    seconds[name] += time.perf_counter() - started
                    server_cpu[name] += server.cpu_seconds() - cpu_started
                finally:
                    server.stop()
    load_after = os.getloadavg()

    cores = os.cpu_count() or 1
    flat = {name: [r for part in parts for r in part] for name, parts in results.items()}
    sizes = [s for r in flat["this tree"] for s in r["sizes"]]
    print(f"serve benchmark: {options.readers} readers x {options.exams} exams at once over loopback, 4 images each "
          f"({ROWS} x {COLUMNS}, 16-bit PNG, {np.mean(sizes) / 1e6:.1f} MB mean); {cores} cores; "
          f"{options.clients} clients; load average {load_before[0]:.1f} before, {load_after[0]:.1f} (1 min) after")
    a_submit, a_image = _percentiles(alone["submit"]), _percentiles(alone["image"])
    print(f"  one reader alone, 5 exams: submit p50 {a_submit[0]:.1f} ms, image p50 {a_image[0]:.1f} ms")
    figures = {}
    for name in variants:
        submit = [t for r in flat[name] for t in r["submit"]]
        image = [t for r in flat[name] for t in r["image"]]
        figures[name] = _percentiles(submit), _percentiles(image)
        (s50, s95), (i50, i95) = figures[name]
        clients_cpu = sum(r["cpu_seconds"] for r in flat[name])
        print(f"  {name}: {len(submit)} exams in {seconds[name]:.1f} s; CPU: server {server_cpu[name]:.1f} s, "
              f"the {options.readers} clients {clients_cpu:.1f} s (of {seconds[name] * cores:.0f} core-seconds)")
        print(f"    submit:               n = {len(submit):5d}  p50 {s50:7.1f} ms  p95 {s95:7.1f} ms   "
              "(goal p95 < 50 ms)")
        print(f"    image, stored bytes:  n = {len(image):5d}  p50 {i50:7.1f} ms  p95 {i95:7.1f} ms   "
              "(goal p95 < 300 ms)")
        if traces[name]:
            _print_breakdown(traces[name], flat[name])
    if len(variants) > 1:
        old = list(variants)[1]
        (o_s, o_i), (n_s, n_i) = figures[old], figures["this tree"]
        print(f"  ratio {old} / this tree: submit p50 {o_s[0] / n_s[0]:.1f}x, p95 {o_s[1] / n_s[1]:.1f}x; "
              f"image p50 {o_i[0] / n_i[0]:.1f}x, p95 {o_i[1] / n_i[1]:.1f}x; server CPU "
              f"{server_cpu[old] / server_cpu['this tree']:.1f}x")
    if reencoded:
        (b50, b95), (i50, i95) = _percentiles(reencoded), figures["this tree"][1]
        print(f"  image, re-encoded per request: n = {len(reencoded)}  p50 {b50:.1f} ms  p95 {b95:.1f} ms "
              f"({reencoded_seconds:.1f} s); ratio re-encoded / stored bytes: p50 {b50 / i50:.1f}x, "
              f"p95 {b95 / i95:.1f}x")
    failed = False
    for index, name in enumerate(variants):
        told = [alone, *flat[name]] if index == 0 else flat[name]
        acknowledged, stored, lost, duplicated = _check_answers(studies[name], told)
        print(f"  answers ({name}): {acknowledged} exams acknowledged, {stored} stored, {lost} lost or altered, "
              f"{duplicated} duplicated")
        failed |= bool(lost or duplicated or stored != acknowledged)
    if failed:
        sys.exit("answers were lost or duplicated")


if __name__ == "__main__":
    main()
