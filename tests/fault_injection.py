"""Run the installed ``perceptiongap`` as a user does, in a process of its own, with an optional fault.

The fault (see ``tests/fault_hook/sitecustomize.py``) pauses the process at a chosen call (a test
then shows that a second run is refused while the first holds its output) or kills it with
SIGKILL (a test then re-runs and compares with an uninterrupted run). Kill points are drawn from a
seeded generator among the calls an uninterrupted run makes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

EXECUTABLE = Path(sys.executable).parent / "perceptiongap"
HOOK_DIR = Path(__file__).resolve().parent / "fault_hook"
#: The atomic writes of perceptiongap.files end in the rename of a ``.partial`` file.
ATOMIC_RENAME = r"\.partial "

__all__ = [
    "ATOMIC_RENAME",
    "EXECUTABLE",
    "Finished",
    "KillPoint",
    "draw_kill_points",
    "files_of",
    "finish",
    "run",
    "run_counting",
    "start",
    "stop_at",
    "wait_stopped",
]


@dataclass(frozen=True)
class Finished:
    code: int
    out: str
    err: str


def _environment(fault: dict | None, env: dict | None) -> dict:
    environment = {**os.environ, **(env or {})}
    environment.pop("PERCEPTIONGAP_FAULT_OWNER", None)
    if fault is not None:
        environment["PERCEPTIONGAP_FAULT"] = json.dumps(fault)
        environment["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(HOOK_DIR), environment.get("PYTHONPATH", "")) if p)
    return environment


def start(*args, fault: dict | None = None, env: dict | None = None, cwd: Path | None = None) -> subprocess.Popen:
    """``perceptiongap ARGS`` in a new session (a kill takes its worker processes too)."""
    return subprocess.Popen([str(EXECUTABLE), *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=_environment(fault, env), cwd=cwd, start_new_session=True)


def finish(process: subprocess.Popen, timeout: float = 600) -> Finished:
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        raise AssertionError(f"{process.args} did not finish within {timeout} s: {err}") from None
    return Finished(process.returncode, out, err)


def run(*args, fault: dict | None = None, env: dict | None = None, cwd: Path | None = None,
        timeout: float = 600) -> Finished:
    return finish(start(*args, fault=fault, env=env, cwd=cwd), timeout=timeout)


def wait_stopped(process: subprocess.Popen, timeout: float = 300) -> None:
    """Until ``process`` has stopped itself (a ``stop`` fault); fails if it ends instead."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid, status = os.waitpid(process.pid, os.WUNTRACED | os.WNOHANG)
        if pid and os.WIFSTOPPED(status):
            return
        if pid:  # it ended without reaching the fault
            process.returncode = os.waitstatus_to_exitcode(status)
            raise AssertionError(f"{process.args} ended ({process.returncode}) before its fault: "
                                 f"{process.stderr.read()}")
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    raise AssertionError(f"{process.args} did not reach its fault within {timeout} s")


def stop_at(target: str, match: str = "", call: int = 1, when: str = "after") -> dict:
    return {"target": target, "match": match, "call": call, "action": "stop", "when": when}


def run_counting(*args, target: str = "os.replace", match: str = ATOMIC_RENAME, count_file: Path,
                 env: dict | None = None, cwd: Path | None = None, timeout: float = 600) -> tuple[Finished, int]:
    """An uninterrupted run that counts the calls a kill could land on; returns (result, count)."""
    fault = {"target": target, "match": match, "action": "count", "count_file": str(count_file)}
    done = run(*args, fault=fault, env=env, cwd=cwd, timeout=timeout)
    return done, int(Path(count_file).read_text())


@dataclass(frozen=True)
class KillPoint:
    call: int
    when: str

    def fault(self, target: str = "os.replace", match: str = ATOMIC_RENAME) -> dict:
        return {"target": target, "match": match, "call": self.call, "action": "kill", "when": self.when}


def draw_kill_points(n_calls: int, seeds) -> list[KillPoint]:
    """One kill point per seed: a call among ``n_calls`` and whether before or after it, from that seed."""
    points = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        points.append(KillPoint(int(rng.integers(1, n_calls + 1)), str(rng.choice(["before", "after"]))))
    return points


def files_of(folder: Path, *, skip=()) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden ones included) by relative path, with its bytes."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.relative_to(folder).as_posix() not in skip}
