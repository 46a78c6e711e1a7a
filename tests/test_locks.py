"""One writer per output: a second process is refused while the first holds the lock; a killed
holder leaves no stale lock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from perceptiongap.locks import OutputLockedError, lock_path, output_lock

HOLD = textwrap.dedent(
    """
    import sys, time
    from perceptiongap.locks import output_lock
    with output_lock(sys.argv[1]):
        print("locked", flush=True)
        time.sleep(60)
    """
)


def start_holder(output: Path) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(output)], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "locked"
    return process


def test_a_second_process_is_refused_naming_the_holder(tmp_path):
    output = tmp_path / "results"
    holder = start_holder(output)
    try:
        with pytest.raises(OutputLockedError) as refused:
            with output_lock(output, what="results folder"):
                pass  # pragma: no cover - must not be reached
        message = str(refused.value)
        assert message.startswith(f"{output}: results folder is being written by another perceptiongap run")
        assert f"process {holder.pid}" in message
        assert "\n" not in message
    finally:
        holder.terminate()
        holder.wait()


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    output = tmp_path / "table.parquet"
    holder = start_holder(output)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    assert lock_path(output).exists()  # the file stays; the lock went with the process
    with output_lock(output):
        pass


def test_the_lock_is_released_after_the_block(tmp_path):
    output = tmp_path / "out"
    with output_lock(output):
        pass
    result = subprocess.run([sys.executable, "-c", HOLD.replace("time.sleep(60)", "pass"), str(output)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_the_same_process_may_lock_again_while_holding(tmp_path):
    output = tmp_path / "out"
    with output_lock(output):
        with output_lock(output):
            pass
        # still held by us after the inner block: another process is refused
        probe = subprocess.run(
            [sys.executable, "-c", "import sys\nfrom perceptiongap.locks import output_lock\n"
             "with output_lock(sys.argv[1]): pass", str(output)],
            capture_output=True, text=True, timeout=60,
        )
        assert probe.returncode != 0 and "OutputLockedError" in probe.stderr
    with output_lock(output):  # released after the outer block
        pass


def test_the_lock_file_sits_beside_the_output(tmp_path):
    assert lock_path(tmp_path / "results") == tmp_path / ".results.lock"
