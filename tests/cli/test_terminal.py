"""What a person at a terminal sees when `perturb` or `predict` fails half-way: the progress bar is closed first,
and the error is one line of its own, at the start of a line, with nothing after it.

The installed `perceptiongap` runs on a pseudo-terminal, so that rich draws its live bar as it would for a user.
"""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

EXECUTABLE = Path(sys.executable).parent / "perceptiongap"
#: Escape sequences (colours, cursor moves, hiding and showing the cursor): they print nothing.
ESCAPES = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")
SHOW_CURSOR = b"\x1b[?25h"


def on_a_terminal(*args) -> tuple[int, bytes]:
    """Run ``perceptiongap ARGS`` with stdout and stderr on a pseudo-terminal; return (exit code, what it drew)."""
    leader, follower = pty.openpty()
    env = {**os.environ, "COLUMNS": "100", "LINES": "30", "TERM": "xterm-256color"}
    process = subprocess.Popen([str(EXECUTABLE), *map(str, args)], stdin=subprocess.DEVNULL, stdout=follower,
                               stderr=follower, env=env)
    os.close(follower)
    drawn = bytearray()
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the process has ended and closed its side
            break
        if not chunk:
            break
        drawn += chunk
    os.close(leader)
    return process.wait(timeout=120), bytes(drawn)


def assert_error_after_the_closed_bar(drawn: bytes, message: str) -> None:
    assert b"Traceback" not in drawn
    bar, _, error = drawn.rpartition(b"error: ")
    assert bar, f"no error printed: {drawn!r}"
    assert b"\xe2\x94\x81" in bar, "the bar was never drawn, so this shows nothing"  # the bar's line character
    assert SHOW_CURSOR in bar, "the bar was not closed before the error"
    printed_before = ESCAPES.sub(b"", bar)
    assert printed_before.endswith(b"\n"), f"the error does not start a line: {printed_before[-80:]!r}"
    assert ESCAPES.sub(b"", error).decode().rstrip("\r\n") == message


def write_views(folder: Path, broken: str) -> None:
    folder.mkdir()
    for seed, view in enumerate(("L-CC", "L-MLO", "R-CC", "R-MLO")):
        pixels = np.random.default_rng(seed).integers(0, 4096, size=(96, 80)).astype(np.uint16)
        Image.fromarray(pixels).save(folder / f"ex1_{view}.png")
    path = folder / f"ex1_{broken}.png"
    path.write_bytes(path.read_bytes()[:200])  # truncated: found only when its turn comes


@pytest.mark.slow
def test_perturb_failing_half_way_closes_the_bar_then_prints_one_error_line(tmp_path):
    write_views(tmp_path / "images", broken="R-MLO")
    code, drawn = on_a_terminal("perturb", tmp_path / "images", "--out", tmp_path / "out", "--pixel-mm", "0.1",
                                "--cutoffs-per-mm", "inf,2")
    assert code == 2
    assert_error_after_the_closed_bar(
        drawn, f"{tmp_path / 'images' / 'ex1_R-MLO.png'}: cannot read as PNG (image file is truncated)")
    assert b"3/4" in ESCAPES.sub(b"", drawn)  # the bar got as far as the broken image


@pytest.mark.slow
def test_predict_failing_half_way_closes_the_bar_then_prints_one_error_line(tmp_path):
    from perceptiongap.reference import write_synthetic_exams

    exams = write_synthetic_exams(tmp_path / "exams", 3, shape=(64, 48))
    broken = Path(str(exams.parent / "synthetic-2_R-MLO.png"))
    assert broken.is_file()
    broken.write_bytes(broken.read_bytes()[:200])
    code, drawn = on_a_terminal("predict", "--model", "perceptiongap.reference:network", "--exams", exams,
                                "--observer-group", "g", "--out", tmp_path / "obs.parquet", "--cutoffs-per-mm",
                                "inf,1", "--flush-seconds", "0")
    assert code == 2
    assert_error_after_the_closed_bar(drawn, f"{broken}: cannot read as PNG (image file is truncated)")
