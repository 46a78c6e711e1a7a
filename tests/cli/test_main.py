"""The installed `perceptiongap` executable: a mistyped command or option prints a usage line and exits 2, and a
library error that names a parameter is shown with the command's flag for it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from perceptiongap.cli import in_flags, parameter_flags
from perceptiongap.errors import InputError

EXECUTABLE = Path(sys.executable).parent / "perceptiongap"


def perceptiongap(*args) -> subprocess.CompletedProcess:
    return subprocess.run([str(EXECUTABLE), *map(str, args)], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(("args", "message"), [
    (["foo"], "No such command 'foo'"),
    (["fit", "--bogus"], "No such option: --bogus"),
    (["fit", "o.csv", "c.csv", "--out", "x", "--advi-seeds", "0"], "Invalid value for '--advi-seeds'"),
    (["fit", "o.csv", "c.csv", "--out", "x", "--seed", "abc"], "Invalid value for '--seed'"),
    (["analyse"], "Missing argument"),
    (["study", "desing"], "No such command 'desing'"),
    (["release", "import", "--bogus"], "No such option: --bogus"),
    (["predict", "--model", "m:n", "--exams", "e.csv", "--observer-group", "g", "--out", "o.csv", "--workers", "0"],
     "Invalid value for '--workers'"),
    (["predict", "--model", "m:n", "--exams", "e.csv", "--observer-group", "g", "--out", "o.csv",
      "--batch-size", "0"], "Invalid value for '--batch-size'"),
    (["perturb", "in", "--out", "out", "--workers", "0"], "Invalid value for '--workers'"),
    (["calibrate", "--validation", "v", "--validation-cases", "c", "--test", "t", "--out", "o", "--seed", "abc"],
     "Invalid value for '--seed'"),
    (["accuracy", "o.csv", "c.csv", "--out", "x", "--seed", "-1"], "Invalid value for '--seed'"),
    (["accuracy", "o.csv", "c.csv", "--out", "x", "--bootstrap", "0"], "Invalid value for '--bootstrap'"),
])
def test_usage_errors_print_usage_and_exit_2(args, message):
    """Issue 16: with Typer's own copy of Click these were tracebacks (and `--bogus` exited 0)."""
    done = perceptiongap(*args)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Usage: perceptiongap" in done.stderr
    assert "Traceback" not in done.stderr


def test_an_option_without_its_value_is_clicks_one_line_and_exit_2():
    done = perceptiongap("reproduce", "--inference")
    assert (done.returncode, done.stderr) == (2, "Error: Option '--inference' requires an argument.\n")


def test_library_errors_name_the_flags_of_the_command(tmp_path):
    done = perceptiongap("reproduce", "--data", tmp_path, "--out", tmp_path / "out", "--force", "--resume")
    assert done.returncode == 2
    assert done.stderr == ("error: --resume: --force (start afresh) and --resume (keep finished fits) exclude each "
                           "other\n")


def test_parameter_names_become_flags_and_arguments_their_metavar():
    import typer

    from perceptiongap.cli import app

    fit = typer.main.get_command(app).commands["fit"]
    flags = parameter_flags(fit)
    assert flags["advi_seeds"] == "--advi-seeds" and flags["merged"] == "--merged" and flags["out"] == "--out"
    assert flags["observations"] == "OBSERVATIONS"
    error = in_flags(InputError("use `resume` to continue it, or `unknown`", source="advi_seeds"), flags)
    assert str(error) == "--advi-seeds: use --resume to continue it, or `unknown`"
    assert str(in_flags(InputError("bad", source="/a/file.csv"), flags)) == "/a/file.csv: bad"
