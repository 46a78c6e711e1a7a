"""One writer per output: while one `perceptiongap` run writes an output, a second run on it is refused in one line
that names the output and the process holding it (exit code 2), and the first run completes as if alone.

Both runs are real processes of the installed executable. The first is paused (SIGSTOP, see
``tests/fault_hook``) at a chosen point while it holds its output, so that the second always starts
while the first is half-way, however fast the machine.
"""

from __future__ import annotations

import hashlib
import os
import signal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from ..fault_injection import finish, run, start, stop_at, wait_stopped

VIEWS = ("L-CC", "L-MLO", "R-CC", "R-MLO")
#: The rename that completes a PNG written by perturb (``.NAME.png.RANDOM.partial`` -> ``NAME.png``).
PNG_WRITTEN = r"\.png\.[^ /]*\.partial "


@pytest.fixture(scope="module")
def png_exam(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("exam")
    for seed, view in enumerate(VIEWS):
        rng = np.random.default_rng(seed)
        pixels = (np.linspace(3000, 300, 40)[None, :] + rng.normal(0, 200, size=(48, 40))).clip(0, 4095)
        Image.fromarray(pixels.astype(np.uint16)).save(folder / f"ex1_{view}.png")
    return folder


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_refused_by(second, output: Path, first_pid: int) -> None:
    """``second`` exited 2 with one line naming ``output`` and the first run's process."""
    assert second.code == 2, second.err
    lines = second.err.strip().splitlines()
    assert len(lines) == 1, second.err
    assert lines[0].startswith(f"error: {output}: ") and "is being written by another perceptiongap run" in lines[0]
    assert f"process {first_pid} " in lines[0]


def assert_manifest_matches_files(out: Path) -> pd.DataFrame:
    manifest = pd.read_csv(out / "manifest.csv", dtype=str, keep_default_na=False)
    for row in manifest.itertuples():
        assert sha(out / row.output) == row.sha256, row.output
    return manifest


# --------------------------------------------------------------------------------------------
# The concurrent-perturb defects of issue 16


@pytest.mark.slow
def test_perturb_runs_on_different_views_into_one_folder_lose_no_manifest_row(png_exam, tmp_path):
    """Issue 16: both exited 0, all PNGs existed, but manifest.csv held the rows of one run only."""
    out = tmp_path / "out"
    common = ["--out", out, "--pixel-mm", "0.1", "--cutoffs-per-mm", "2,1,inf"]
    left = [png_exam / "ex1_L-CC.png", png_exam / "ex1_L-MLO.png"]
    right = [png_exam / "ex1_R-CC.png", png_exam / "ex1_R-MLO.png"]
    first = start("perturb", *left, *common, fault=stop_at("os.replace", PNG_WRITTEN, call=2, when="before"))
    wait_stopped(first)  # one file written, the second about to be
    second = run("perturb", *right, *common)
    os.kill(first.pid, signal.SIGCONT)
    first_done = finish(first)
    assert first_done.code == 0, first_done.err
    assert_refused_by(second, out, first.pid)

    again = run("perturb", *right, *common)  # the refused run, once the first has finished
    assert again.code == 0, again.err
    manifest = assert_manifest_matches_files(out)
    assert len(manifest) == 4 * 3 and set(manifest.view) == set(VIEWS)
    assert len(list(out.rglob("*.png"))) == 12


@pytest.mark.slow
def test_perturb_runs_with_different_pixel_sizes_into_one_folder_do_not_mix(png_exam, tmp_path):
    """Issue 16: both exited 0; the manifest claimed one pixel size for all files, and files' SHA-256 did not
    match their rows."""
    out = tmp_path / "out"
    common = [png_exam, "--out", out, "--cutoffs-per-mm", "2,1"]
    first = start("perturb", *common, "--pixel-mm", "0.07", fault=stop_at("os.replace", PNG_WRITTEN, call=3,
                                                                            when="before"))
    wait_stopped(first)
    second = run("perturb", *common, "--pixel-mm", "0.1")
    os.kill(first.pid, signal.SIGCONT)
    first_done = finish(first)
    assert first_done.code == 0, first_done.err
    assert_refused_by(second, out, first.pid)
    manifest = assert_manifest_matches_files(out)
    assert len(manifest) == 8 and set(manifest.pixel_row_mm) == {"0.07"}

    # Afterwards the other pixel size is a different request: refused unless forced, and then it replaces all.
    again = run("perturb", *common, "--pixel-mm", "0.1")
    assert again.code == 2 and "was made from a different request" in again.err and "pixel_mm=0.07" in again.err
    forced = run("perturb", *common, "--pixel-mm", "0.1", "--force")
    assert forced.code == 0, forced.err
    manifest = assert_manifest_matches_files(out)
    assert len(manifest) == 8 and set(manifest.pixel_row_mm) == {"0.1"}


# --------------------------------------------------------------------------------------------
# Every other command that writes: a second run is refused while the first holds the output

#: The `perceptiongap fit`, `report` and `analyse` cases are in test_outputs.py (they share a fitted folder), and
#: `serve` in tests/readers/test_cli.py.


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, png_exam) -> dict[str, Path]:
    """Small inputs for every command: images, exams, a study to calibrate, a simulated study, reader-study files."""
    from perceptiongap.readers import create_study
    from perceptiongap.reference import write_synthetic_exams
    from perceptiongap.study import write_table

    from ..model.simulate import simulate_study
    from ..readers.helpers import write_inputs
    from .helpers import simulated_study

    folder = tmp_path_factory.mktemp("inputs")
    paths = {"images": png_exam, "exams": write_synthetic_exams(folder / "synthetic", 2, shape=(64, 48))}
    paths["validation"], paths["validation_cases"] = simulated_study(folder, "val", 200, seed=0)
    paths["test"], paths["test_cases"] = simulated_study(folder, "test", 200, seed=1)
    observations, cases, _ = simulate_study(seed=8, n_exams=20)
    write_table(observations, folder / "observations.csv")
    write_table(cases, folder / "cases.csv")
    paths["observations"], paths["cases"] = folder / "observations.csv", folder / "cases.csv"
    reader_study = write_inputs(folder / "reader-study", n_exams=4, n_readers=2, shape=(64, 48))
    paths.update({f"study_{name}": path for name, path in reader_study.items()})
    paths["study"] = folder / "designed"
    create_study(reader_study["exams"], reader_study["cases"], reader_study["readers"], paths["study"],
                 cutoffs_per_mm=(float("inf"), 1.0))
    return paths


def command(name: str, paths: dict[str, Path], out: Path, release_dir: Path) -> list:
    """The command line of ``name`` writing ``out``."""
    return {
        "compose": ["compose", paths["images"], "--out", out, "--pixel-mm", "0.1", "--cutoffs-per-mm", "2,inf"],
        "predict": ["predict", "--model", "perceptiongap.reference:network", "--exams", paths["exams"],
                    "--observer-group", "reference", "--out", out, "--cutoffs-per-mm", "inf,1"],
        "calibrate": ["calibrate", "--validation", paths["validation"], "--validation-cases",
                      paths["validation_cases"], "--test", paths["test"], "--out", out],
        "accuracy": ["accuracy", paths["observations"], "--out", out, paths["cases"], "--bootstrap", "20"],
        "export imrmc": ["export", "imrmc", paths["observations"], paths["cases"], "--out", out],
        "study design": ["study", "design", "--exams", paths["study_exams"], "--cases", paths["study_cases"],
                         "--readers", paths["study_readers"], "--out", out, "--cutoffs-per-mm", "inf,1"],
        "study export": ["study", "export", paths["study"], "--out", out],
        "study backup": ["study", "backup", paths["study"], "--out", out],
        "release import": ["release", "import", release_dir, "--out", out],
        "reproduce": ["reproduce", "--data", release_dir, "--out", out, "--inference", "stan-advi",
                      "--advi-seeds", "1"],
    }[name]


OUTPUT_NAMES = {"predict": "obs.parquet", "calibrate": "calibrated.parquet", "export imrmc": "study.imrmc",
                "study backup": "backup.sqlite"}
#: Commands whose first run is killed once the second was refused, rather than left to finish (minutes of work).
LONG = {"reproduce"}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["compose", "predict", "calibrate", "accuracy", "export imrmc", "study design",
                                  "study export", "study backup", "release import", "reproduce"])
def test_a_second_run_on_the_same_output_is_refused_while_the_first_holds_it(name, inputs, tmp_path, release_dir):
    out = tmp_path / OUTPUT_NAMES.get(name, "out")
    args = command(name, inputs, out, release_dir)
    first = start(*args, fault=stop_at("perceptiongap.locks:_acquire", match=f" {out} ", when="after"))
    wait_stopped(first)  # it holds the output and has written nothing yet
    second = run(*args)
    assert_refused_by(second, out, first.pid)
    if name in LONG:
        os.killpg(first.pid, signal.SIGKILL)
        finish(first)
        return
    os.kill(first.pid, signal.SIGCONT)
    first_done = finish(first)
    assert first_done.code == 0, first_done.err
    assert out.exists()
