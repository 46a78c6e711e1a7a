"""`perceptiongap fit` and `analyse` on a simulated study: files, tables, resuming, refusals."""

from __future__ import annotations

import pandas as pd
import pytest

from perceptiongap.cli import main
from perceptiongap.study import write_table

from ..model.simulate import simulate_study
from .helpers import run_cli


def run(argv, capsys):
    """Run the CLI; return (exit code, stderr)."""
    code, _, err = run_cli(argv, capsys)
    return code, err


@pytest.fixture(scope="module")
def study_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("study")
    observations, cases, _ = simulate_study(seed=5, n_exams=60)
    write_table(observations, folder / "observations.csv")
    write_table(cases, folder / "cases.csv")
    return folder / "observations.csv", folder / "cases.csv"


@pytest.fixture(scope="module")
def results(study_files, tmp_path_factory):
    out = tmp_path_factory.mktemp("results") / "run"
    observations, cases = study_files
    assert main_ok(["fit", str(observations), str(cases), "--out", str(out), "--inference", "stan-advi,nuts",
                    "--advi-seeds", "2"])
    assert main_ok(["analyse", str(out), "--no-report"])
    return out


def main_ok(argv) -> bool:
    try:
        main(argv)
    except SystemExit as exit_:
        return not exit_.code
    return True


def test_fit_writes_one_posterior_per_fit(results):
    posteriors = sorted(p.relative_to(results).as_posix() for p in (results / "posteriors").rglob("*.nc"))
    expected = sorted(
        f"posteriors/release/{method}/{group}{suffix}/seed{seed}.nc"
        for method, seeds in (("stan-advi", (0, 1)), ("nuts", (0,)))
        for group in ("readers", "networks")
        for suffix in ("", "__merged")
        for seed in seeds
    )
    assert posteriors == expected
    assert (results / "run.json").is_file()


def test_analyse_writes_the_tables_with_their_columns(results):
    table = pd.read_csv(results / "tables" / "perturbation_study.csv")
    assert list(table.columns) == [
        "model", "inference", "observer_group", "subgroup", "severity_mm", "confidence_mean", "confidence_sd",
        "p_confidence_positive", "p_confidence_above_margin", "separability_mean", "separability_sd",
        "p_separability_drop", "separability_drop_upper", "fits", "frac_confidence_significant",
        "frac_separability_significant",
    ]
    fits = table.groupby(["inference", "observer_group"])["fits"].first().to_dict()
    assert fits == {("nuts", "networks"): 1, ("nuts", "readers"): 1, ("stan-advi", "networks"): 2,
                    ("stan-advi", "readers"): 2, ("observed", "networks"): 1}
    observed = table[table["inference"] == "observed"]
    assert observed["confidence_mean"].isna().all() and observed["separability_mean"].notna().all()
    assert table.loc[table["severity_mm"] == 0, "p_separability_drop"].isna().all()
    merged = pd.read_csv(results / "tables" / "merged_subgroups.csv")
    assert set(merged["subgroup"]) == {"merged"}
    assert (results / "tables" / "fits.csv").is_file() and (results / "tables" / "conclusions.csv").is_file()
    assert set(table["model"]) == {"release", "none"}  # none: the observed rows, no model


def test_simulated_severity_effect_is_found(results):
    """The simulation lowers every subgroup's logit with severity: confidence must fall at 4 mm."""
    table = pd.read_csv(results / "tables" / "perturbation_study.csv")
    worst = table[(table["inference"] == "nuts") & (table["severity_mm"] == 4.0)]
    assert (worst["confidence_mean"] < 0).all()


def test_resume_keeps_finished_fits(results, study_files, capsys):
    observations, cases = study_files
    before = {p: p.stat().st_mtime_ns for p in (results / "posteriors").rglob("*.nc")}
    code, _ = run(["fit", str(observations), str(cases), "--out", str(results), "--inference", "stan-advi,nuts",
                   "--advi-seeds", "2", "--resume"], capsys)
    assert code == 0
    assert {p: p.stat().st_mtime_ns for p in (results / "posteriors").rglob("*.nc")} == before


def test_non_empty_results_folder_is_refused(results, study_files, capsys):
    observations, cases = study_files
    code, err = run(["fit", str(observations), str(cases), "--out", str(results)], capsys)
    assert code == 2
    assert err.strip().endswith("output folder is not empty; use --resume to continue it or --force to overwrite")
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--inference", "mcmc"], "--inference: unknown inference method 'mcmc'"),
    ],
)
def test_bad_options_give_one_line(study_files, tmp_path, capsys, extra, message):
    observations, cases = study_files
    code, err = run(["fit", str(observations), str(cases), "--out", str(tmp_path / "new"), *extra], capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_out_that_is_a_file_and_bad_tables_are_refused(study_files, tmp_path, capsys):
    observations, cases = study_files
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    code, err = run(["fit", str(observations), str(cases), "--out", str(a_file)], capsys)
    assert code == 2 and "is a file, not a folder" in err
    broken = tmp_path / "broken.csv"
    pd.read_csv(observations).drop(columns="prediction").to_csv(broken, index=False)
    code, err = run(["fit", str(broken), str(cases), "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "missing column(s) 'prediction'" in err
    assert not (tmp_path / "o").exists()


def test_analyse_of_a_folder_without_fits_is_refused(tmp_path, capsys):
    code, err = run(["analyse", str(tmp_path)], capsys)
    assert code == 2 and "not a results folder" in err
