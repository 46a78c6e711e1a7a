"""What the installed `perceptiongap` does with its output: one writer at a time, and a read-only output refused
in one line. Real processes of the console script, as a user runs them."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from perceptiongap.study import write_table

from ..model.simulate import simulate_study

EXECUTABLE = Path(sys.executable).parent / "perceptiongap"
FIT = ["--inference", "stan-advi", "--advi-seeds", "1", "--no-merged"]
#: Run as root, the command would write where the permission bits say no: this drops the Linux
#: capabilities that allow it (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER) from a fresh
#: process's bounding set, then runs the command in its place (no fork of this JAX-threaded process).
OBEY_PERMISSION_BITS = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
for capability in (1, 2, 3):
    if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
        raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")
os.execv(sys.argv[1], sys.argv[1:])
"""


def start(*args, without_write_access: bool = False) -> subprocess.Popen:
    """The installed command in a process of its own; ``without_write_access`` makes root obey permission bits."""
    command = [str(EXECUTABLE), *map(str, args)]
    if without_write_access and os.geteuid() == 0:
        command = [sys.executable, "-c", OBEY_PERMISSION_BITS, *command]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen, timeout: float = 900) -> tuple[int, str]:
    _, err = process.communicate(timeout=timeout)
    return process.returncode, err


def wait_for_lock(output: Path, process: subprocess.Popen, timeout: float = 300) -> None:
    """Until ``process`` holds the output lock of ``output`` (its record is in the lock file)."""
    lock = output.parent / f".{output.name}.lock"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[1]
        try:
            if json.loads(lock.read_text()).get("pid") == process.pid:
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    pytest.fail(f"{process.args} did not take the lock of {output}")


@pytest.fixture(scope="module")
def shared_tmp(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("outputs")


@pytest.fixture(scope="module")
def study(shared_tmp) -> tuple[Path, Path]:
    observations, cases, _ = simulate_study(seed=8, n_exams=30)
    write_table(observations, shared_tmp / "observations.csv")
    write_table(cases, shared_tmp / "cases.csv")
    return shared_tmp / "observations.csv", shared_tmp / "cases.csv"


@pytest.fixture(scope="module")
def analysed(study, shared_tmp) -> Path:
    """A results folder after `fit` and `analyse --no-report`, with a second `fit` refused while the first ran."""
    out = shared_tmp / "analysed"
    first = start("fit", *study, "--out", out, *FIT)
    wait_for_lock(out, first)
    second = start("fit", *study, "--out", out, *FIT)
    second_code, second_err = finish(second)
    first_running = first.poll() is None
    first_code, first_err = finish(first)
    assert first_code == 0, first_err
    done = subprocess.run([str(EXECUTABLE), "analyse", str(out), "--no-report"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    out.with_name("second-fit.json").write_text(json.dumps({"code": second_code, "err": second_err,
                                                            "first_running": first_running}))
    return out


@pytest.mark.slow
def test_a_second_fit_on_the_same_results_folder_is_refused_while_the_first_completes(analysed):
    second = json.loads(analysed.with_name("second-fit.json").read_text())
    assert second["first_running"], "the first fit had finished before the second was refused"
    assert second["code"] == 2
    lines = second["err"].strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {analysed}: results folder is being written by another "
                                                   "perceptiongap run (process ")
    assert len(list((analysed / "posteriors").rglob("*.nc"))) == 2  # the first fit's, complete


@pytest.mark.slow
def test_a_second_report_on_the_same_results_folder_is_refused_while_the_first_completes(analysed, shared_dir):
    # The filtering figure of the sample exam makes the first report take a while.
    first = start("report", analysed, "--shared", shared_dir)
    wait_for_lock(analysed, first)
    second_code, second_err = finish(start("report", analysed, "--shared", shared_dir))
    assert first.poll() is None, "the first report had finished before the second was refused"
    first_code, first_err = finish(first)
    assert first_code == 0, first_err
    assert second_code == 2
    assert "results folder is being written by another perceptiongap run" in second_err
    assert len(second_err.strip().splitlines()) == 1
    assert (analysed / "report.html").is_file() and (analysed / "figures" / "filtering_preview.png").is_file()


@pytest.mark.slow
def test_a_second_analyse_on_the_same_results_folder_is_refused_while_the_first_completes(analysed):
    from ..fault_injection import finish as finish_run
    from ..fault_injection import start as start_run
    from ..fault_injection import stop_at, wait_stopped

    first = start_run("analyse", analysed, "--no-report",
                      fault=stop_at("perceptiongap.locks:_acquire", match=f" {analysed} ", when="after"))
    wait_stopped(first)
    second_code, second_err = finish(start("analyse", analysed, "--no-report"))
    os.kill(first.pid, signal.SIGCONT)
    first_done = finish_run(first)
    assert first_done.code == 0, first_done.err
    assert second_code == 2
    lines = second_err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {analysed}: results folder is being written by another "
                                                   f"perceptiongap run (process {first.pid} ")


# --------------------------------------------------------------------------------------------
# A read-only output


def read_only_copy(folder: Path, target: Path) -> Path:
    shutil.copytree(folder, target)
    for path in [target, *target.rglob("*")]:
        path.chmod(0o555 if path.is_dir() else 0o444)
    return target


def run_without_write_access(*args) -> tuple[int, str]:
    """The command as a user who may read but not write the output (root, stripped of its override)."""
    return finish(start(*args, without_write_access=True), timeout=300)


@pytest.mark.slow
@pytest.mark.parametrize("command", ["fit", "reproduce", "release import"])
def test_a_read_only_output_folder_is_one_line_before_any_work(command, study, shared_tmp, release_dir):
    out = shared_tmp / f"read-only-{command.replace(' ', '-')}"
    out.mkdir()
    out.chmod(0o555)
    args = {"fit": ["fit", *study, "--out", out, *FIT], "reproduce": ["reproduce", "--data", release_dir, "--out", out],
            "release import": ["release", "import", release_dir, "--out", out]}[command]
    code, err = run_without_write_access(*args)
    assert (code, err) == (2, f"error: {out}: cannot write here (permission denied)\n")


@pytest.mark.slow
@pytest.mark.parametrize(("command", "where"), [(["analyse", "--no-report"], "tables"), (["report"], "")])
def test_a_read_only_results_folder_is_one_line(command, where, analysed, shared_tmp):
    """Issue 16: a read-only output ended in a PermissionError traceback."""
    out = read_only_copy(analysed, shared_tmp / f"read-only-{command[0]}")
    code, err = run_without_write_access(command[0], out, *command[1:])
    assert (code, err) == (2, f"error: {out / where if where else out}: cannot write here (permission denied)\n")


@pytest.mark.slow
@pytest.mark.parametrize("command", ["perturb", "compose", "predict", "calibrate"])
def test_a_read_only_output_of_the_image_and_prediction_stages_is_one_line_before_any_work(command, shared_tmp):
    """Issue 16: perturb and predict ended in a PermissionError traceback."""
    from perceptiongap.reference import write_synthetic_exams

    from .helpers import simulated_study

    folder = shared_tmp / f"read-only-{command}"
    exams = write_synthetic_exams(folder / "inputs", 4, shape=(64, 48))
    out = folder / "out"
    out.mkdir()
    out.chmod(0o555)
    if command in ("perturb", "compose"):
        args = [command, folder / "inputs", "--out", out, "--pixel-mm", "0.1", "--cutoffs-per-mm", "2"]
        where = out
    elif command == "predict":
        args = ["predict", "--model", "perceptiongap.reference:network", "--exams", exams, "--observer-group", "g",
                "--out", out / "obs.parquet"]
        where = out
    else:
        validation, validation_cases = simulated_study(folder, "val", 100, seed=0)
        args = ["calibrate", "--validation", validation, "--validation-cases", validation_cases, "--test", validation,
                "--out", out / "calibrated.csv"]
        where = out
    code, err = run_without_write_access(*args)
    assert (code, err) == (2, f"error: {where}: cannot write here (permission denied)\n")
    assert list(out.iterdir()) == []
