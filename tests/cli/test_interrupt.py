"""Ctrl-C: the installed `perceptiongap`, interrupted half-way, says that completed work was kept and exits 130,
without a traceback, and the same command then finishes the work.

Issue 16: with Typer 0.29 (its own copy of Click) the message was lost: Typer turned the interrupt into a
silent exit code 130. The run is paused just before its second file is put in place, sent SIGINT as a
terminal's Ctrl-C would, and resumed.
"""

from __future__ import annotations

import os
import signal

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from ..fault_injection import ATOMIC_RENAME, files_of, finish, run, start, stop_at, wait_stopped

MESSAGE = "interrupted: completed work was kept; re-run the same command to resume"


def interrupt_at_second_write(*args):
    process = start(*args, fault=stop_at("os.replace", ATOMIC_RENAME, call=2, when="before"))
    wait_stopped(process)
    os.kill(process.pid, signal.SIGINT)
    os.kill(process.pid, signal.SIGCONT)
    return finish(process)


def assert_interrupted(done) -> None:
    assert done.code == 130, done.err
    assert done.err.rstrip().splitlines()[-1] == MESSAGE
    assert "Traceback" not in done.err


@pytest.mark.slow
def test_perturb_interrupted_keeps_its_work_and_resumes(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for seed, view in enumerate(("L-CC", "L-MLO", "R-CC", "R-MLO")):
        pixels = np.random.default_rng(seed).integers(0, 4096, size=(48, 40)).astype(np.uint16)
        Image.fromarray(pixels).save(images / f"ex1_{view}.png")
    args = ["perturb", images, "--pixel-mm", "0.1", "--cutoffs-per-mm", "inf,1"]
    done = interrupt_at_second_write(*args, "--out", tmp_path / "out")
    assert_interrupted(done)
    assert not list((tmp_path / "out").rglob("*.partial"))
    assert run(*args, "--out", tmp_path / "out").code == 0
    assert run(*args, "--out", tmp_path / "clean").code == 0
    assert files_of(tmp_path / "out") == files_of(tmp_path / "clean")


@pytest.mark.slow
def test_predict_interrupted_keeps_its_work_and_resumes(tmp_path):
    from perceptiongap.reference import write_synthetic_exams

    exams = write_synthetic_exams(tmp_path / "exams", 3, shape=(64, 48))
    args = ["predict", "--model", "perceptiongap.reference:network", "--exams", exams, "--observer-group", "g",
            "--cutoffs-per-mm", "inf,1", "--flush-seconds", "0"]
    out = tmp_path / "obs.parquet"
    assert_interrupted(interrupt_at_second_write(*args, "--out", out))
    assert len(list(out.with_name("obs.parquet.parts").glob("part-*.parquet"))) == 1  # the first exam, kept
    resumed = run(*args, "--out", out)
    assert resumed.code == 0 and "resuming: 1 of 3 exams already done" in resumed.err
    assert run(*args, "--out", tmp_path / "clean.parquet").code == 0
    pd.testing.assert_frame_equal(pd.read_parquet(out), pd.read_parquet(tmp_path / "clean.parquet"))


@pytest.mark.slow
def test_fit_interrupted_keeps_its_work_and_resumes(tmp_path):
    from perceptiongap.study import write_table

    from ..model.simulate import simulate_study

    observations, cases, _ = simulate_study(seed=8, n_exams=20)
    write_table(observations, tmp_path / "observations.csv")
    write_table(cases, tmp_path / "cases.csv")
    args = ["fit", tmp_path / "observations.csv", tmp_path / "cases.csv", "--out", tmp_path / "out",
            "--inference", "stan-advi", "--advi-seeds", "1", "--no-merged"]
    assert_interrupted(interrupt_at_second_write(*args))
    again = run(*args, "--resume")
    assert again.code == 0, again.err
    assert len(list((tmp_path / "out" / "posteriors").rglob("*.nc"))) == 2
