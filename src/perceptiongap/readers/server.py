"""The reader-study server: a FastAPI app over one study folder, run by uvicorn.

:func:`create_app` maps the HTTP API of ``docs/reader-study-api.md`` onto
:mod:`~perceptiongap.readers.readings` (reading rules), :mod:`~perceptiongap.readers.access`
(links, sessions) and :mod:`~perceptiongap.readers.export`. :func:`serve` holds the study's lock
(two servers on one study are refused), issues and prints the links, binds 127.0.0.1 unless told
otherwise and runs uvicorn with an access log that never shows a token.

Where the time goes under load (``benchmarks/serve.py --breakdown``) decides the threading. The
reader routes are ``async``: the session lookup and other short indexed reads run on the event
loop's own SQLite connection, with no thread hop (each hop, under 20 readers pulling images, cost
tens of milliseconds of queueing). Every write of the reader routes (open a link, open an exam,
submit, pause events, preload log) goes to the study's one writer thread
(:class:`~perceptiongap.readers.writer.Writer`), which commits the writes waiting at once in one
``BEGIN IMMEDIATE`` transaction (``synchronous=FULL``, one savepoint each); a reply is sent only
after the commit that made its write durable. An image is read in one thread hop and sent as one
body. Admin routes (rare, heavier) stay plain functions in FastAPI's thread pool.
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import sqlite3
import tempfile
import threading
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import anyio.to_thread
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from perceptiongap.errors import InputError
from perceptiongap.locks import output_lock
from perceptiongap.readers import access, db, readings
from perceptiongap.readers.answers import AnswerError
from perceptiongap.readers.backup import backup_database
from perceptiongap.readers.export import export_zip
from perceptiongap.readers.folder import StudyInfo, open_study
from perceptiongap.readers.status import progress
from perceptiongap.readers.writer import Writer

__all__ = ["RedactTokens", "create_app", "listen_socket", "serve"]

_STATIC = resources.files("perceptiongap.readers") / "static"
_ADMIN_PAGE = resources.files("perceptiongap.readers") / "admin_page"
_NO_STORE = {"Cache-Control": "no-store"}
_TOKEN_PATH = re.compile(r"^/([ra])/[^/?#\s]*")
#: The reading page's policy (its own <meta> tag says the same), plus what only a header can say.
_READING_PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "connect-src 'self'; worker-src 'self' blob:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


class RedactTokens(logging.Filter):
    """Rewrite ``/r/<token>`` and ``/a/<token>`` in uvicorn's access log as ``/r/***``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and len(record.args) >= 3 and isinstance(record.args[2], str):
            args = list(record.args)
            args[2] = _TOKEN_PATH.sub(r"/\1/***", args[2])
            record.args = tuple(args)
        return True


class _ImageBytes(Response):
    """A stored image, read whole (one thread hop) and sent in 256 KiB pieces.

    Each piece fills uvicorn's write buffer past its high-water mark, so the response waits for the
    socket to drain before the next: the event loop turns to other requests between pieces instead
    of pushing megabytes at once, which under load held a submit back (measured with
    ``benchmarks/serve.py --breakdown``).
    """

    piece = 256 * 1024

    async def __call__(self, scope, receive, send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        body = memoryview(self.body)
        offsets = range(0, len(body), self.piece) or [0]
        for offset in offsets:
            end = offset + self.piece
            await send({"type": "http.response.body", "body": body[offset:end], "more_body": end < len(body)})


class _Connections:
    """One SQLite connection per thread, all closed at shutdown."""

    def __init__(self, path: Path):
        self.path = path
        self.local = threading.local()
        self.all: list[sqlite3.Connection] = []
        self.guard = threading.Lock()

    def get(self) -> sqlite3.Connection:
        connection = getattr(self.local, "connection", None)
        if connection is None:
            connection = db.connect(self.path)
            self.local.connection = connection
            with self.guard:
                self.all.append(connection)
        return connection

    def close(self) -> None:
        with self.guard:
            for connection in self.all:
                connection.close()
            self.all.clear()


class _SecurityHeaders:
    """Adds the headers every response carries (plain ASGI: no task or stream per request)."""

    HEADERS = ((b"referrer-policy", b"no-referrer"), (b"x-content-type-options", b"nosniff"),
               (b"x-frame-options", b"DENY"))

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", ())}
                extra = [(name, value) for name, value in self.HEADERS if name not in present]
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _error(status: int, detail: str, **extra) -> JSONResponse:
    return JSONResponse({"detail": detail, **extra}, status_code=status, headers=_NO_STORE)


class _Refused(Exception):
    def __init__(self, status: int, detail: str):
        self.status, self.detail = status, detail


def _page(title: str, text: str, status: int = 200) -> HTMLResponse:
    body = (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{title}</title></head>"
            f"<body><h1>{title}</h1><p>{text}</p></body></html>")
    return HTMLResponse(body, status_code=status, headers=_NO_STORE)


def create_app(folder: str | Path) -> FastAPI:
    """The app for one study folder (the caller holds the study's lock; :func:`serve` does)."""
    study: StudyInfo = open_study(folder)
    connections = _Connections(study.database)
    writer = Writer(study.database)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        writer.close()
        connections.close()

    app = FastAPI(title="perceptiongap reader study", docs_url=None, redoc_url=None, openapi_url=None,
                  lifespan=lifespan)
    app.state.study = study

    app.add_middleware(_SecurityHeaders)

    @app.exception_handler(_Refused)
    async def refused(request: Request, error: _Refused):
        return _error(error.status, error.detail)

    @app.exception_handler(readings.NotFound)
    async def not_found(request: Request, error: readings.NotFound):
        return _error(404, str(error))

    @app.exception_handler(readings.Conflict)
    async def conflict(request: Request, error: readings.Conflict):
        return _error(409, str(error))

    @app.exception_handler(AnswerError)
    async def invalid_answer(request: Request, error: AnswerError):
        extra = {"rule": error.rule}
        if error.breast:
            extra["breast"] = error.breast
        if error.view:
            extra["view"] = error.view
        return _error(422, str(error), **extra)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError):
        first = error.errors()[0] if error.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return _error(422, f"{where}: {first.get('msg', 'invalid request')}" if where else "invalid request",
                      rule="body")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException):
        return _error(error.status_code, "not found" if error.status_code == 404 else str(error.detail))

    # -- who is asking -------------------------------------------------------------------------

    # Async: one indexed read on the event loop's connection, no thread hop.
    async def session(request: Request) -> access.Session:
        found = access.session_for(connections.get(), request.cookies.get(access.COOKIE))
        if found is None:
            raise _Refused(401, "no valid session: open your study link again")
        return found

    async def reader(current: access.Session = Depends(session)) -> str:
        if current.role != "reader":
            raise _Refused(403, "this is a reader's endpoint")
        return current.reader_id

    async def admin(current: access.Session = Depends(session)) -> None:
        if current.role != "admin":
            raise _Refused(403, "this is an admin endpoint")

    async def json_body(request: Request) -> object:
        if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
            raise _Refused(415, "send the body as application/json")
        try:
            return await request.json()
        except ValueError:
            raise AnswerError("the body is not valid JSON", rule="body") from None

    # -- links and pages -----------------------------------------------------------------------

    async def _open(token: str, role: str, target: str) -> Response:
        session_id = await writer.run(access.open_link, token, role)
        if session_id is None:
            return _page("Link not valid", "This link is not valid. It may have been replaced by a newer one: "
                         "ask the study's organiser for your current link.", status=404)
        response = RedirectResponse(target, status_code=303, headers=_NO_STORE)
        response.set_cookie(access.COOKIE, session_id, httponly=True, samesite="strict", path="/")
        return response

    @app.get("/r/{token}", include_in_schema=False)
    async def reader_link(token: str) -> Response:
        return await _open(token, "reader", "/read")

    @app.get("/a/{token}", include_in_schema=False)
    async def admin_link(token: str) -> Response:
        return await _open(token, "admin", "/admin")

    @app.get("/read", include_in_schema=False)
    def reading_page() -> Response:
        index = _STATIC / "index.html"
        if not index.is_file():
            return _page("Reading page not installed",
                         "This perceptiongap has no reading page (perceptiongap/readers/static/index.html).")
        return HTMLResponse(index.read_text(encoding="utf-8"),
                            headers={**_NO_STORE, "Content-Security-Policy": _READING_PAGE_CSP})

    @app.get("/static/{path:path}", include_in_schema=False)
    def static_file(path: str) -> Response:
        root = Path(str(_STATIC)).resolve()
        target = (root / path).resolve()
        if not path or not target.is_relative_to(root) or not target.is_file():
            raise readings.NotFound("not found")
        return FileResponse(target)

    @app.get("/admin", include_in_schema=False)
    def admin_page() -> Response:
        return HTMLResponse((_ADMIN_PAGE / "admin.html").read_text(encoding="utf-8"), headers={
            **_NO_STORE,
            "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                                       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        })

    @app.get("/admin.js", include_in_schema=False)
    def admin_script() -> Response:
        return Response((_ADMIN_PAGE / "admin.js").read_text(encoding="utf-8"), media_type="text/javascript",
                        headers=_NO_STORE)

    @app.get("/admin.css", include_in_schema=False)
    def admin_style() -> Response:
        return Response((_ADMIN_PAGE / "admin.css").read_text(encoding="utf-8"), media_type="text/css",
                        headers=_NO_STORE)

    # -- reader API ------------------------------------------------------------------------------

    # Reads run on the loop's connection; writes on the writer thread, whole (the reading rules'
    # checks and the write in one transaction there, as before).

    @app.get("/api/reader/state")
    async def reader_state(reader_id: str = Depends(reader)) -> JSONResponse:
        return JSONResponse(readings.reader_state(connections.get(), study, reader_id), headers=_NO_STORE)

    @app.post("/api/readings/{reading}/open")
    async def open_reading(reading: str, body: object = Depends(json_body), reader_id: str = Depends(reader)):
        return JSONResponse(await writer.run(readings.open_reading, reader_id, reading), headers=_NO_STORE)

    @app.post("/api/readings/{reading}/submit")
    async def submit(reading: str, body: object = Depends(json_body), reader_id: str = Depends(reader)):
        return JSONResponse(await writer.run(readings.submit_reading, study, reader_id, reading, body),
                            headers=_NO_STORE)

    @app.post("/api/readings/{reading}/events", status_code=204)
    async def event(reading: str, body: object = Depends(json_body), reader_id: str = Depends(reader)) -> Response:
        if not isinstance(body, dict):
            raise AnswerError("the body must be a JSON object", rule="body")
        await writer.run(readings.client_event, reader_id, reading, body.get("kind"), body.get("client_time"))
        return Response(status_code=204)

    async def _image(image: str, reader_id: str) -> tuple[Path, str]:
        path, sha256, preloading = readings.find_image(connections.get(), study, reader_id, image)
        if preloading is not None:
            await writer.run(readings.log_preload, reader_id, preloading, image)
        return path, sha256

    @app.get("/api/images/{image}.png")
    async def image_png(image: str, request: Request, reader_id: str = Depends(reader)) -> Response:
        path, sha256 = await _image(image, reader_id)
        etag = f'"{sha256}"'
        headers = {"ETag": etag, "Cache-Control": "private, max-age=86400, immutable"}
        if etag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
            return Response(status_code=304, headers=headers)
        # One thread hop for the whole file (a few MB): Starlette's FileResponse takes a hop to stat,
        # open, close and each chunk read.
        return _ImageBytes(await anyio.to_thread.run_sync(path.read_bytes), media_type="image/png", headers=headers)

    @app.get("/api/images/{image}.json")
    async def image_json(image: str, reader_id: str = Depends(reader)) -> Response:
        path, sha256 = await _image(image, reader_id)
        return Response(path.with_suffix(".json").read_bytes(), media_type="application/json",
                        headers={"ETag": f'"{sha256}-json"', "Cache-Control": "private, max-age=86400, immutable"})

    # -- admin API -------------------------------------------------------------------------------

    @app.get("/api/admin/progress", dependencies=[Depends(admin)])
    def admin_progress() -> JSONResponse:
        return JSONResponse(progress(connections.get(), study), headers=_NO_STORE)

    @app.get("/api/admin/export", dependencies=[Depends(admin)])
    def admin_export() -> Response:
        data = export_zip(connections.get(), study)
        return Response(data, media_type="application/zip", headers={
            **_NO_STORE, "Content-Disposition": f'attachment; filename="{_safe(study.title)}-export.zip"'})

    @app.get("/api/admin/backup", dependencies=[Depends(admin)])
    def admin_backup() -> Response:
        with tempfile.TemporaryDirectory() as folder:
            copy = backup_database(study.database, Path(folder) / "backup.sqlite")
            data = copy.read_bytes()
        return Response(data, media_type="application/vnd.sqlite3", headers={
            **_NO_STORE, "Content-Disposition": f'attachment; filename="{_safe(study.title)}-backup.sqlite"'})

    @app.post("/api/admin/readers/{reader_id}/link", dependencies=[Depends(admin)])
    async def admin_reissue(reader_id: str, request: Request, body: object = Depends(json_body)) -> JSONResponse:
        if connections.get().execute("SELECT 1 FROM readers WHERE id = ?", (reader_id,)).fetchone() is None:
            raise readings.NotFound("no such reader")
        token = await writer.run(access.issue_reader_link, reader_id)
        base = str(request.base_url).rstrip("/")
        return JSONResponse({"reader": reader_id, "link": f"{base}/r/{token}"}, headers=_NO_STORE)

    return app


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "study"


def listen_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (0 = any free port), with TCP_NODELAY; InputError if taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named explicitly: asyncio sets TCP_NODELAY on accepted connections only when the
    # socket says it is TCP; without it every response waits ~40 ms for a delayed ACK (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise InputError(f"cannot listen on {host}:{port} ({error.strerror})", source="--port") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve(
    folder: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    new_links: bool = False,
    echo: Callable[[str], None] = print,
) -> None:
    """Serve a study until interrupted: lock it, issue and print links, run uvicorn.

    ``port=0`` picks a free port (the links and the ``serving on`` line give it).
    """
    import uvicorn

    folder = Path(folder)
    with output_lock(folder, what="study"):
        study = open_study(folder)
        sock = listen_socket(host, port)
        actual_port = sock.getsockname()[1]
        shown_host = f"[{host}]" if ":" in host else host
        base = f"http://{shown_host}:{actual_port}"
        connection = db.connect(study.database)
        try:
            issued = access.issue_links(connection, renew=new_links)
            names = dict(connection.execute("SELECT id, name FROM readers").fetchall())
            counts = connection.execute("SELECT count(*) FROM readings GROUP BY reader_id").fetchall()
        finally:
            connection.close()
        total = counts[0][0] if counts else 0
        echo(f"study {study.title!r}: {study.mode}, {len(names)} readers, {total} exams each")
        readers_issued = [(r, t) for r, t in issued.items() if r is not None]
        if readers_issued:
            echo("reader links (send each reader their own; they are shown only now):")
            width = max(len(r) for r, _ in readers_issued)
            for reader_id, token in readers_issued:
                echo(f"  {reader_id:<{width}}  {base}/r/{token}  {names[reader_id]}")
        if None in issued:
            echo(f"admin link: {base}/a/{issued[None]}")
        if len(issued) < len(names) + 1:
            echo("links issued before still work; `perceptiongap serve STUDY --new-links` replaces them all")
        if host in ("0.0.0.0", "::"):
            echo(f"listening on every interface: replace {host} in the links by this machine's address")
        echo(f"serving on {base} (Ctrl+C to stop)")
        config = uvicorn.Config(create_app(folder), http="httptools", log_level="info", access_log=True,
                                lifespan="on", timeout_graceful_shutdown=5)
        logging.getLogger("uvicorn.access").addFilter(RedactTokens())
        server = uvicorn.Server(config)
        try:
            server.run(sockets=[sock])
        finally:
            sock.close()
