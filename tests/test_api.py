"""Every stage is importable from the package itself, with the options of its command, and JAX is not imported
up front."""

from __future__ import annotations

import inspect
import subprocess
import sys

import perceptiongap


def test_every_stage_is_reachable_from_the_package():
    import perceptiongap.results as results
    import perceptiongap.study as study

    assert perceptiongap.fit is results.fit
    assert perceptiongap.analyse is results.analyse
    assert perceptiongap.reproduce is results.reproduce
    assert perceptiongap.read_study is study.read_study
    for name in ("locate_release", "import_release", "lowpass", "DirichletCalibrator", "build_model_data",
                 "build_report"):
        assert callable(getattr(perceptiongap, name))


def test_the_report_package_is_also_the_report_stage(monkeypatch):
    """`perceptiongap.report` stays the package (figures, build_report) and calls the stage when called."""
    import perceptiongap.report
    import perceptiongap.results.stages as stages

    calls = []
    monkeypatch.setattr(stages, "report", lambda results, **options: calls.append((results, options)) or "done")
    assert perceptiongap.report("folder", shared_dir="x") == "done"
    assert calls == [("folder", {"shared_dir": "x"})]
    assert callable(perceptiongap.report.build_report)


def test_stage_options_have_the_names_and_defaults_of_the_commands():
    import typer

    from perceptiongap.cli import app

    commands = {command.name: command for command in typer.main.get_command(app).commands.values()}
    for name, function in (("fit", perceptiongap.fit), ("analyse", perceptiongap.analyse),
                           ("reproduce", perceptiongap.reproduce), ("report", stages_report())):
        library = inspect.signature(function).parameters
        for parameter in commands[name].params:
            assert parameter.name in library, (name, parameter.name)
            default = library[parameter.name].default
            if default is not inspect.Parameter.empty and parameter.default is not None:
                assert str(default) == str(parameter.default), (name, parameter.name, default, parameter.default)


def stages_report():
    from perceptiongap.results import report

    return report


def test_importing_the_package_does_not_import_jax():
    code = "import sys, perceptiongap; print('jax' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
