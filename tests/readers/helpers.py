"""Helpers of the reader-study tests: study inputs, a real server process, simulated readers."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from perceptiongap.reference import write_synthetic_exams

SUBGROUP_CYCLE = ("microcalcifications", "soft_tissue_lesions")


def write_inputs(folder: Path, *, n_exams: int = 8, n_readers: int = 3, shape=(96, 80), seed: int = 0) -> dict:
    """Synthetic PNG exams, Cases (left breast: alternating subgroups and labels; right breast
    nonbiopsied) and readers; returns the three paths."""
    exams_csv = write_synthetic_exams(folder / "exams", n_exams, shape=shape, seed=seed, specks=3)
    exams = pd.read_csv(exams_csv)["exam"].unique()
    rows = []
    for index, exam in enumerate(exams):
        rows.append((exam, "L", "malignant" if (index // 2) % 2 == 0 else "benign", SUBGROUP_CYCLE[index % 2]))
        rows.append((exam, "R", "nonbiopsied", "nonbiopsied"))
    cases = folder / "cases.csv"
    pd.DataFrame(rows, columns=["exam", "breast", "label", "subgroup"]).to_csv(cases, index=False)
    readers = folder / "readers.csv"
    pd.DataFrame({"reader": [f"reader{i:02d}" for i in range(1, n_readers + 1)],
                  "name": [f"Dr {i}" for i in range(1, n_readers + 1)]}).to_csv(readers, index=False)
    return {"exams": exams_csv, "cases": cases, "readers": readers}


@dataclass
class ServerProcess:
    """A `perceptiongap serve` process: its base URL, the links it printed, its output so far."""

    process: subprocess.Popen
    base: str = ""
    links: dict[str, str] = field(default_factory=dict)
    admin: str | None = None
    lines: list[str] = field(default_factory=list)

    def token(self, reader: str) -> str:
        return self.links[reader].rsplit("/", 1)[1]

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def output(self) -> str:
        return "\n".join(self.lines)


_LINK = re.compile(r"^\s+(\S+)\s+(http://\S+/r/[0-9a-f]{32})\s")


def start_server(study: Path, *extra: str, timeout: float = 60.0) -> ServerProcess:
    """Start `perceptiongap serve STUDY --port 0` and wait until it serves; collect its links."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "perceptiongap", "serve", str(study), "--port", "0", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )
    server = ServerProcess(process)
    ready = threading.Event()

    def pump() -> None:
        for line in process.stdout:
            line = line.rstrip("\n")
            server.lines.append(line)
            if (match := _LINK.match(line)) is not None:
                server.links[match[1]] = match[2]
            elif line.startswith("admin link: "):
                server.admin = line.split(": ", 1)[1].strip()
            elif line.startswith("serving on "):
                server.base = line.split()[2]
            elif "Application startup complete" in line:
                ready.set()
        ready.set()

    threading.Thread(target=pump, daemon=True).start()
    if not ready.wait(timeout) or not server.base or process.poll() is not None:
        server.stop(signal.SIGKILL)
        raise RuntimeError(f"server did not start:\n{server.output()}")
    return server


def wait_until(predicate, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def answer_for(malignant: bool, rng: np.random.Generator) -> dict:
    """A rule-abiding answer for one breast whose malignant call is ``malignant``."""
    if malignant:
        birads = str(rng.choice(["4A", "4B", "4C", "5"]))
        pom = {"4A": 5.0, "4B": 30.0, "4C": 70.0, "5": 97.0}[birads]
    else:
        birads = str(rng.choice(["1", "2", "3"]))
        pom = 1.0 if birads == "3" else 0.0
    return {"birads": birads, "malignant": bool(malignant), "pom": pom}
