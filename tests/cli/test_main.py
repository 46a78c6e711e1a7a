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


@pytest.mark.parametrize("command", [[], ["fit"], ["perturb"], ["release", "import"], ["reproduce"], ["serve"]])
def test_help_shows_flags_and_values_as_click_writes_them(command):
    """Issue 17: Typer 0.29 showed `<bool>` after every flag (even --help), `{observations}`, `<list[Path]>`."""
    done = perceptiongap(*command, "--help")
    assert done.returncode == 0, done.stderr
    for noise in ("<bool>", "<path>", "<int", "<str>", "<list[", "{"):
        assert noise not in done.stdout, (noise, done.stdout)
    assert "--help" in done.stdout


def test_help_names_arguments_and_types_in_capitals():
    done = perceptiongap("fit", "--help")
    assert "Usage: perceptiongap fit [OPTIONS] OBSERVATIONS CASES" in done.stdout
    assert "PATH" in done.stdout and "INTEGER" in done.stdout
    assert "Usage: perceptiongap perturb [OPTIONS] INPUTS..." in perceptiongap("perturb", "--help").stdout
    assert "[parquet|csv]" in perceptiongap("release", "import", "--help").stdout


def test_comma_separated_choices_and_addresses_are_named_not_called_text():
    shown = perceptiongap("reproduce", "--help").stdout
    for flag, metavar in (("--inference", "METHODS"), ("--model", "MODELS"), ("--cluster", "local:N|ADDRESS")):
        line = next(line for line in shown.splitlines() if f" {flag} " in line)
        assert metavar in line and "TEXT" not in line, line


def test_version_prints_the_installed_version():
    from importlib import metadata

    done = perceptiongap("--version")
    assert (done.returncode, done.stdout) == (0, f"perceptiongap {metadata.version('perceptiongap')}\n")


def test_a_logged_warning_is_its_message_alone_on_one_line():
    """Issue 17: rich's logging handler ended every line in `fit.py:62` and hyperlink codes, wrapped at 80 columns."""
    message = "NUTS runs its 2 chains one after another: " + "x" * 120
    code = ("import logging; from perceptiongap.cli.progress import show_log_messages; show_log_messages(); "
            f"show_log_messages(); logging.getLogger('perceptiongap.model.nuts').warning({message!r})")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stderr) == (0, message + "\n")
