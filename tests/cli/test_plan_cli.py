"""`perceptiongap plan`: the outputs, resuming a killed run, and refusals (one line, exit 2)."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from perceptiongap.results.plan_stage import POWER_COLUMNS
from tests.cli.helpers import run_cli
from tests.plan.helpers import write_effects

GRID = ["--readers", "3,4", "--exams", "30", "--reps", "3", "--batch-size", "3", "--seed", "4"]


@pytest.mark.slow
def test_plan_writes_table_curves_and_page_and_resumes_a_killed_run(tmp_path, capsys):
    effects = write_effects(tmp_path / "effects.csv", gamma=(0.0, -0.5, -1.0))
    out = tmp_path / "plan"
    code, _, err = run_cli(["plan", "--out", out, "--effects", effects, *GRID], capsys)
    assert code == 0, err
    power = pd.read_csv(out / "power.csv")
    assert tuple(power.columns) == POWER_COLUMNS
    # 2 readers x 1 exam count x 2 designs x 2 criteria x 2 subgroups x 2 perturbed severities
    assert len(power) == 32 and set(power["reps"]) == {3}
    assert power["power"].between(0, 1).all()
    comparison = pd.read_csv(out / "design_comparison.csv")
    assert {"sd_balanced", "sd_release", "ratio", "ratio_se"} <= set(comparison.columns) and len(comparison) == 8
    for name in ("figures/power_curves.png", "figures/power_curves.svg", "plan.html"):
        assert (out / name).stat().st_size > 1000
    assert "<svg" in (out / "plan.html").read_text()
    assert json.loads((out / "plan.json").read_text())["reps"] == 3

    # A run killed after three cells: the fourth's file is missing. --resume redoes only that cell.
    kept = out / "cells" / "readers3_exams30_balanced.csv"
    kept_before = kept.stat().st_mtime_ns
    (out / "cells" / "readers4_exams30_release.csv").unlink()
    code, _, err = run_cli(["plan", "--out", out, "--effects", effects, *GRID, "--resume"], capsys)
    assert code == 0, err
    assert "3 of 4 cells already done" in err
    assert kept.stat().st_mtime_ns == kept_before
    pd.testing.assert_frame_equal(pd.read_csv(out / "power.csv"), power)

    code, _, err = run_cli(["plan", "--out", out, "--effects", effects, *GRID[:-1], "5", "--resume"], capsys)
    assert code == 2 and "other settings (seed)" in err
    code, _, err = run_cli(["plan", "--out", out, "--effects", effects, *GRID], capsys)
    assert code == 2 and "not empty" in err


@pytest.mark.parametrize(("extra", "message"), [
    (["--readers", "3,x"], "--readers: expected comma-separated whole numbers"),
    (["--readers", "1"], "--readers: needs values >= 2"),
    (["--designs", "balnced"], "--designs: must be among balanced, release"),
    (["--subgroups", "mass"], "--subgroups: subgroup 'mass' is not in the case mix"),
    (["--reps", "1"], "--reps: must be >= 2"),
    (["--model", "observer_slopes"], "--model: must be one of release, label_specific, independent"),
    (["--curve-severity", "3"], "--curve-severity: 3 is not a perturbed severity"),
    (["--severities", "0,1,3"], "--severities: 3 mm is beyond the effects' largest severity (2 mm"),
    (["--severities", "0,1;1,2"], "--severities: a severity set needs 0 (the reference) first"),
    (["--severities", "0,x"], "--severities: expected a severity in mm"),
    (["--severities", "0,1;0,1"], "--severities: a level is listed twice"),
    (["--severities", "0,1;0,2"], "--severities: the severity sets share no perturbed severity"),
    (["--severities", "0,1;0,2", "--curve-severity", "2"], "--curve-severity: 2 is not a perturbed severity"),
    (["--prevalence", "microcalcifications"], "--prevalence: expected SUBGROUP=SHARE[:MALIGNANT_SHARE]"),
    (["--prevalence", "mass=0.2"], "--prevalence: subgroup 'mass' is not in the case mix"),
    (["--prevalence", "microcalcifications=abc"], "--prevalence: expected a share of breasts"),
    (["--prevalence", "microcalcifications=0.2:2"], "--prevalence: the malignant share of 'microcalcifications'"),
    (["--prevalence", "microcalcifications=0.7,soft_tissue_lesions=0.4"], "--prevalence: the stated shares of "
     "breasts add up to 1.1"),
])
def test_bad_options_are_one_line_errors(tmp_path, capsys, extra, message):
    effects = write_effects(tmp_path / "effects.csv")
    code, _, err = run_cli(["plan", "--out", tmp_path / "plan", "--effects", effects, *extra], capsys)
    assert code == 2
    assert err.strip().startswith("error: ") and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "plan").exists()


@pytest.mark.slow
def test_severity_sets_and_case_mixes_are_grid_axes_of_the_table_curves_and_comparison(tmp_path, capsys):
    effects = write_effects(tmp_path / "effects.csv", gamma=(0.0, -0.5, -1.0))
    out = tmp_path / "plan"
    code, _, err = run_cli(["plan", "--out", out, "--effects", effects, "--readers", "3", "--exams", "30",
                            "--reps", "2", "--severities", "0,2;0,1,2",
                            "--prevalence", "microcalcifications=0.2;microcalcifications=0.4:0.5"], capsys)
    assert code == 0, err
    power = pd.read_csv(out / "power.csv")
    assert tuple(power.columns) == POWER_COLUMNS
    assert set(power["severity_set"]) == {"0,2", "0,1,2"}
    # 1 mm only in the second set: 2 criteria x 2 subgroups x 2 designs x 2 mixes x (1 + 2) severities
    assert len(power) == 48 and set(power.loc[power["severity_set"] == "0,2", "severity_mm"]) == {2.0}
    mixes = sorted(set(power["prevalence"]))
    assert len(mixes) == 2 and mixes[0].startswith("microcalcifications=0.2:") and \
        mixes[1].startswith("microcalcifications=0.4:0.5,soft_tissue_lesions=")
    comparison = pd.read_csv(out / "design_comparison.csv")
    assert {"severity_set", "prevalence"} <= set(comparison.columns) and len(comparison) == 12
    record = json.loads((out / "plan.json").read_text())
    assert record["severity_sets"] == [[0.0, 2.0], [0.0, 1.0, 2.0]]
    assert record["prevalence"] == [[["microcalcifications", 0.2, None]], [["microcalcifications", 0.4, 0.5]]]
    page = (out / "plan.html").read_text()
    assert "severities 0,1,2 mm" in page and "share of breasts (malignant): m 0.4 (0.5)" in page


def test_needs_exactly_one_parameter_source(tmp_path, capsys):
    effects = write_effects(tmp_path / "effects.csv")
    code, _, err = run_cli(["plan", "--out", tmp_path / "plan"], capsys)
    assert code == 2 and "exactly one of" in err
    code, _, err = run_cli(["plan", "--out", tmp_path / "p", "--effects", effects, "--from", tmp_path], capsys)
    assert code == 2 and "exactly one of" in err
    code, _, err = run_cli(["plan", "--out", tmp_path / "p", "--from", tmp_path], capsys)
    assert code == 2 and "no release posterior of observer group 'radiologists'" in err


def test_a_second_writer_is_refused_while_another_process_holds_the_folder(tmp_path, capsys):
    effects = write_effects(tmp_path / "effects.csv")
    out = tmp_path / "plan"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from perceptiongap.locks import output_lock\n"
         "with output_lock(sys.argv[1]):\n    print('held', flush=True); time.sleep(60)", str(out)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        code, _, err = run_cli(["plan", "--out", out, "--effects", effects, "--reps", "2"], capsys)
    finally:
        holder.kill()
        holder.wait()
    assert code == 2 and len(err.strip().splitlines()) == 1 and "plan" in err and str(out) in err


def test_the_stage_is_reachable_from_the_package_and_the_package_stays_the_package():
    import perceptiongap
    import perceptiongap.plan
    from perceptiongap.results.plan_stage import plan

    assert perceptiongap.plan_study is plan
    assert perceptiongap.plan.__name__ == "perceptiongap.plan"


@pytest.mark.slow
def test_plan_from_a_results_folder_draws_from_its_posterior(tmp_path, capsys):
    from tests.plan.helpers import fitted_posterior

    results = tmp_path / "results"
    posterior_path = results / "posteriors" / "release" / "nuts" / "radiologists" / "seed0.nc"
    posterior_path.parent.mkdir(parents=True)
    fitted_posterior().to_netcdf(posterior_path)
    out = tmp_path / "plan"
    code, _, err = run_cli(["plan", "--from", results, "--observer-group", "radiologists", "--out", out,
                            "--readers", "3", "--exams", "40", "--designs", "release", "--reps", "2"], capsys)
    assert code == 0, err
    power = pd.read_csv(out / "power.csv")
    assert set(power["severity_mm"]) == {1.0, 4.0} and len(power) == 8
    assert json.loads((out / "plan.json").read_text())["parameters"] == str(posterior_path)
