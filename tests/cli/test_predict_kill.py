"""Kill a real `perceptiongap predict` run with SIGKILL, re-run it, and get exactly the rows of an
uninterrupted run: none lost, none duplicated."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from perceptiongap.predict import predict
from perceptiongap.reference import write_synthetic_exams

REPO_ROOT = Path(__file__).resolve().parents[2]

SLOW_NETWORK = '''
import time
from perceptiongap.reference import network as reference

def network(exams):
    time.sleep(0.25)  # a slow network, so that the run can be killed half way
    return reference(exams)
'''


@pytest.mark.slow
def test_a_killed_run_resumes_to_exactly_the_uninterrupted_rows(tmp_path):
    exams = write_synthetic_exams(tmp_path / "exams", 10, shape=(128, 96), seed=3)
    (tmp_path / "slow_network.py").write_text(SLOW_NETWORK)
    out = tmp_path / "obs.parquet"
    parts = tmp_path / "obs.parquet.parts"
    command = [sys.executable, "-m", "perceptiongap", "predict", "--model", "slow_network:network",
               "--exams", str(exams), "--observer-group", "reference", "--observer", "seed0", "--out", str(out),
               "--batch-size", "9", "--workers", "2", "--flush-seconds", "0"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "src"), str(tmp_path)])}

    run = subprocess.Popen(command, env=env, start_new_session=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while len(list(parts.glob("part-*.parquet"))) < 3:
        assert run.poll() is None, run.stderr.read().decode()
        assert time.monotonic() < deadline, "no rows written within 2 minutes"
        time.sleep(0.02)
    os.killpg(run.pid, signal.SIGKILL)  # the CLI and its worker processes, with no chance to clean up
    run.wait()
    run.stderr.close()
    assert not out.exists()
    written = pd.concat([pd.read_parquet(p) for p in parts.glob("part-*.parquet")])
    done = written["exam"].nunique()
    assert 3 <= done < 10, "the kill should leave part of the work undone"

    finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr
    assert f"resuming: {done} of 10 exams already done" in finished.stderr
    assert not parts.exists()

    uninterrupted = predict("perceptiongap.reference:network", exams, "reference", tmp_path / "clean.parquet",
                            observer="seed0")
    resumed = pd.read_parquet(out)
    assert len(resumed) == 10 * 9 * 2
    pd.testing.assert_frame_equal(resumed, uninterrupted)
