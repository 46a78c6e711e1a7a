"""Browser tests of the reading page: Playwright for Python driving Debian's Chromium against a
real `perceptiongap serve` on 127.0.0.1.

Where no Chromium is installed the tests skip with the reason; with
PERCEPTIONGAP_REQUIRE_BROWSER=1 (set by .ci/run) a missing browser fails them instead.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CHROMIUM = os.environ.get("PERCEPTIONGAP_CHROMIUM", "/usr/bin/chromium")
REQUIRE_BROWSER = os.environ.get("PERCEPTIONGAP_REQUIRE_BROWSER") == "1"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-unsafe-swiftshader",
]
REPO = Path(__file__).resolve().parents[3]
VIEWS = ("R-CC", "L-CC", "R-MLO", "L-MLO")
BIRADS = ("0", "1", "2", "3", "4A", "4B", "4C", "5")

# The synthetic exam (stored-image pixels, x = column, y = row). Tissue fills the left 140 of
# 200 columns, so every stored view faces right (chest wall at x = 0): the page must mirror the
# right breast's views and leave the left breast's alone.
ROWS, COLUMNS = 300, 200
TISSUE = 20000
MARKER = 60000  # the asymmetric marker: top rows, at the chest wall
MARKER_BOX = (8, 12, 38, 42)  # x0, y0, x1, y1
SQUARE = 50000
SQUARES = ((30, 70, 60, 100), (80, 140, 110, 170), (30, 210, 60, 240))  # the annotation targets
DEFAULT_WINDOW = (30000.0, 60000.0)  # the range of the stored image: 0 .. 60000
PRESET = ("narrow", 20000.0, 10000.0)


def _missing_browser_reason() -> str | None:
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[test]')"
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        return f"no Chromium at {CHROMIUM} (apt-get install chromium, or set PERCEPTIONGAP_CHROMIUM)"
    return None


@pytest.fixture(scope="session", autouse=True)
def _needs_browser():
    """Session-wide and first, so that no server or browser starts where the tests cannot run."""
    reason = _missing_browser_reason()
    if reason is None:
        return
    if REQUIRE_BROWSER:
        pytest.fail(f"PERCEPTIONGAP_REQUIRE_BROWSER=1 but {reason}")
    pytest.skip(f"browser tests need Chromium: {reason}")


@pytest.fixture(scope="session")
def browser_type_launch_args():
    """pytest-playwright launches Debian's Chromium (Playwright's own download is not used)."""
    return {"executable_path": CHROMIUM, "args": CHROMIUM_ARGS, "headless": True}


@pytest.fixture
def page_errors(page):
    """Errors the page logs or throws (CSP violations, failed loads, exceptions): a test asserts none."""
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    return errors


@pytest.fixture(scope="session")
def browser_context_args():
    return {"viewport": {"width": 1920, "height": 1080}, "device_scale_factor": 1}


# --- synthetic exams and studies -------------------------------------------------------------


def synthetic_view(squares: bool = True) -> np.ndarray:
    image = np.zeros((ROWS, COLUMNS), np.uint16)
    image[:, :140] = TISSUE
    x0, y0, x1, y1 = MARKER_BOX
    image[y0:y1, x0:x1] = MARKER
    if squares:
        for x0, y0, x1, y1 in SQUARES:
            image[y0:y1, x0:x1] = SQUARE
    return image


def write_png16(path: Path, image: np.ndarray) -> None:
    Image.fromarray(image).save(path, format="PNG")


def write_inputs(folder: Path, exams: int, readers: int, shared_exam: Path | None = None) -> dict[str, Path]:
    """exams.csv, cases.csv, readers.csv for `exams` synthetic exams (+ the shared exam, last)."""
    folder.mkdir(parents=True, exist_ok=True)
    rows, cases = ["exam,view,path,pixel_mm"], ["exam,breast,label,subgroup"]
    image = synthetic_view()
    for index in range(exams):
        exam = f"E{index + 1:03d}"
        (folder / exam).mkdir(exist_ok=True)
        for view in VIEWS:
            write_png16(folder / exam / f"{view}.png", image)
            rows.append(f"{exam},{view},{exam}/{view}.png,0.1")
        cases += [f"{exam},L,benign,soft_tissue_lesions", f"{exam},R,malignant,microcalcifications"]
    if shared_exam is not None:
        for view in VIEWS:
            rows.append(f"SHARED,{view},{shared_exam / f'0_{view}.png'},0.1")
        cases += ["SHARED,L,nonbiopsied,nonbiopsied", "SHARED,R,nonbiopsied,nonbiopsied"]
    reader_rows = ["reader,name"] + [f"reader{r + 1:02d},Reader {r + 1}" for r in range(readers)]
    paths = {"exams": folder / "exams.csv", "cases": folder / "cases.csv", "readers": folder / "readers.csv"}
    paths["exams"].write_text("\n".join(rows) + "\n")
    paths["cases"].write_text("\n".join(cases) + "\n")
    paths["readers"].write_text("\n".join(reader_rows) + "\n")
    return paths


def design_study(folder: Path, inputs: dict[str, Path], *, mode: str) -> Path:
    """`perceptiongap study design` (the installed command), unperturbed images only."""
    out = folder / "study"
    command = [
        sys.executable, "-m", "perceptiongap", "study", "design",
        "--exams", str(inputs["exams"]), "--cases", str(inputs["cases"]), "--readers", str(inputs["readers"]),
        "--out", str(out), "--mode", mode, "--seed", "3",
        "--window", f"{PRESET[0]}:{PRESET[1]:g}:{PRESET[2]:g}",
    ]
    if mode == "perturbation":
        command += ["--cutoffs-per-mm", "inf"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return out


class StudyServer:
    """A real `perceptiongap serve` process; restartable on the same port."""

    LINK = re.compile(r"^\s+(\S+)\s+(http://127\.0\.0\.1:\d+/r/[0-9a-f]{32})")

    def __init__(self, folder: Path):
        self.folder = folder
        self.port = 0
        self.links: dict[str, str] = {}
        self.process: subprocess.Popen | None = None
        self.output: list[str] = []

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90.0) -> None:
        command = [sys.executable, "-m", "perceptiongap", "serve", str(self.folder), "--port", str(self.port)]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        ready = threading.Event()

        def drain(stream):
            for line in stream:
                self.output.append(line)
                match = self.LINK.match(line)
                if match:
                    self.links[match.group(1)] = match.group(2)
                serving = re.search(r"serving on http://127\.0\.0\.1:(\d+)", line)
                if serving:
                    self.port = int(serving.group(1))
                    ready.set()

        threading.Thread(target=drain, args=(self.process.stdout,), daemon=True).start()
        deadline = time.monotonic() + timeout
        while not ready.is_set():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("perceptiongap serve did not start:\n" + "".join(self.output))
            ready.wait(0.1)
        self._wait_listening(deadline)

    def _wait_listening(self, deadline: float) -> None:
        import socket

        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError("perceptiongap serve is not listening:\n" + "".join(self.output))

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None

    def db(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.folder / "study.sqlite", timeout=10)
        connection.row_factory = sqlite3.Row
        return connection


@pytest.fixture(scope="module")
def perturbation_server(tmp_path_factory):
    """A perturbation study of 3 synthetic exams (unperturbed) and 4 readers, served."""
    folder = tmp_path_factory.mktemp("perturbation")
    study = design_study(folder, write_inputs(folder / "inputs", exams=3, readers=4), mode="perturbation")
    server = StudyServer(study)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def annotation_server(tmp_path_factory):
    """An annotation study of one synthetic exam, served."""
    folder = tmp_path_factory.mktemp("annotation")
    server = StudyServer(design_study(folder, write_inputs(folder / "inputs", exams=1, readers=1), mode="annotation"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def shared_exam_server(tmp_path_factory):
    """An annotation study of the shared real exam (skips where ../shared lacks it), served."""
    shared = Path(os.environ.get("PERCEPTIONGAP_SHARED", REPO.parent / "shared")) / "mammograms" / "gmic-sample-exam0"
    if not shared.is_dir():
        pytest.skip(f"no shared exam at {shared} (set PERCEPTIONGAP_SHARED)")
    folder = tmp_path_factory.mktemp("shared")
    inputs = write_inputs(folder / "inputs", exams=0, readers=1, shared_exam=shared)
    server = StudyServer(design_study(folder, inputs, mode="annotation"))
    server.start()
    yield server
    server.stop()


# --- reading what the page shows ---------------------------------------------------------------


def screenshot(page, path: Path) -> np.ndarray:
    """Save a screenshot of the page and return it as a grey (H, W) array of CSS pixels."""
    data = page.screenshot(path=str(path))
    return np.asarray(Image.open(io.BytesIO(data)).convert("L")).astype(np.int16)


def view_box(page, view: str) -> dict[str, float]:
    return page.locator(f"#vp-{view}").bounding_box()


def crop(grey: np.ndarray, box: dict[str, float]) -> np.ndarray:
    x, y = int(round(box["x"])), int(round(box["y"]))
    return grey[y : y + int(box["height"]), x : x + int(box["width"])]


def expected_grey(value: float, center: float, width: float) -> float:
    """The displayed grey of a stored value under a linear window (0-255)."""
    return float(np.clip((value - (center - width / 2)) / width, 0.0, 1.0) * 255.0)


def wait_phase(page, phase: str, timeout: float = 60_000) -> None:
    """Wait until the page is in `phase` (body[data-phase]); no page-side eval, so the page's CSP holds."""
    page.locator(f"body[data-phase='{phase}']").wait_for(state="attached", timeout=timeout)


def wait_reading(page, timeout: float = 60_000) -> None:
    wait_phase(page, "reading", timeout)


def wait_progress(page, prefix: str, timeout: float = 30_000) -> None:
    """Wait until the progress line starts with `prefix`."""
    from playwright.sync_api import expect

    expect(page.locator("#progress")).to_have_text(re.compile("^" + re.escape(prefix)), timeout=timeout)


def save_docs_copy(path: Path, name: str) -> None:
    """Where PERCEPTIONGAP_UPDATE_DOCS=1, copy a screenshot into docs/ for the README."""
    if os.environ.get("PERCEPTIONGAP_UPDATE_DOCS") == "1":
        shutil.copyfile(path, REPO / "docs" / name)
