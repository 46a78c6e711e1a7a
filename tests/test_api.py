"""The stages are importable from the package itself, without importing JAX up front."""

from __future__ import annotations

import subprocess
import sys

import perceptiongap


def test_every_stage_is_reachable_from_the_package():
    import perceptiongap.model as model
    import perceptiongap.study as study

    assert perceptiongap.fit is model.fit
    assert perceptiongap.read_study is study.read_study
    for name in ("locate_release", "import_release", "lowpass", "DirichletCalibrator",
                 "build_model_data", "analyse_results"):
        assert callable(getattr(perceptiongap, name))


def test_importing_the_package_does_not_import_jax():
    code = "import sys, perceptiongap; print('jax' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
