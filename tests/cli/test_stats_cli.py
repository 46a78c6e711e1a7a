"""`perceptiongap accuracy`, `mrmc` and `export`: outputs, refusals (one line, exit 2) and the output lock."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

from tests.cli.helpers import run_cli
from tests.stats.study_builders import make_cases, make_observations, observation_rows


@pytest.fixture
def study_files(tmp_path):
    """Two readers with POM who read every breast at 0 and 2 mm, and three networks: a crossed study."""
    labels = ([("malignant", "microcalcifications")] * 8 + [("malignant", "soft_tissue_lesions")] * 6
              + [("benign", "microcalcifications")] * 10 + [("nonbiopsied", "nonbiopsied")] * 16)
    cases = make_cases(labels)
    truth = (cases["label"] == "malignant").to_numpy()
    rng = np.random.default_rng(0)
    parts = []
    for severity, separation in ((0.0, 2.0), (2.0, 0.7)):
        for reader in ("dr_a", "dr_b", "dr_c"):
            pom = np.clip(50 + 25 * (separation * truth + rng.normal(0, 1, truth.size) - separation / 2), 0, 100)
            parts.append(observation_rows(cases, reader, "radiologists", "human", (pom > 50).astype(float),
                                          severity=severity, pom=pom.round(1)))
        for seed in range(3):
            logit = separation * (2 * truth - 1) + rng.normal(0, 1, truth.size)
            parts.append(observation_rows(cases, f"net_seed{seed}", "net", "machine", 1 / (1 + np.exp(-logit)),
                                          severity=severity))
    observations = make_observations(*parts)
    observations_path, cases_path = tmp_path / "observations.csv", tmp_path / "cases.csv"
    observations.to_csv(observations_path, index=False)
    cases.to_csv(cases_path, index=False)
    return observations_path, cases_path


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


@pytest.mark.slow
def test_accuracy_writes_tables_and_figures_and_refuses_to_overwrite(study_files, tmp_path, capsys):
    observations, cases = study_files
    out = tmp_path / "stats"
    code, _, err = run_cli(["accuracy", observations, cases, "--out", out, "--bootstrap", "200"], capsys)
    assert code == 0, err
    for name in ("accuracy.csv", "accuracy_summary.csv", "error_consistency.csv", "error_consistency_pairs.csv",
                 "figures/accuracy.png", "figures/accuracy.svg", "figures/error_consistency.png"):
        assert (out / name).is_file(), name
    table = pd.read_csv(out / "accuracy.csv")
    assert set(table["operating_point"]) == {"reader_decision", "readers_mean_specificity", "threshold_0.5"}
    assert set(table.loc[table["observer_kind"] == "human", "auc_score"]) == {"pom"}  # read from the CSV
    summary = pd.read_csv(out / "error_consistency.csv")
    assert set(summary["pair_kind"]) == {"human-human", "human-network", "network-network"}

    code, _, err = run_cli(["accuracy", observations, cases, "--out", out], capsys)
    assert code == 2 and "exists; use --force" in _one_error_line(err)
    code, _, err = run_cli(["accuracy", observations, cases, "--out", out, "--bootstrap", "50", "--force",
                            "--operating-point", "0.3"], capsys)
    assert code == 0, err
    assert set(pd.read_csv(out / "accuracy.csv")["operating_point"]) == {"reader_decision", "threshold_0.3"}


@pytest.mark.parametrize(("extra", "message"), [
    (["--operating-point", "half"], "--operating-point: 'half' is not an operating point"),
    (["--subgroups", "masses"], "subgroups: no malignant breast has subgroup 'masses'"),
    (["--bootstrap", "0"], "--bootstrap"),
])
def test_accuracy_bad_options_are_one_line_errors(study_files, tmp_path, capsys, extra, message):
    observations, cases = study_files
    code, _, err = run_cli(["accuracy", observations, cases, "--out", tmp_path / "o", *extra], capsys)
    assert code == 2
    assert message in err and "Traceback" not in err


def test_accuracy_refuses_a_bad_pom_naming_file_column_and_row(study_files, tmp_path, capsys):
    observations, cases = study_files
    table = pd.read_csv(observations)
    table.loc[4, "pom"] = 130
    table.to_csv(observations, index=False)
    code, _, err = run_cli(["accuracy", observations, cases, "--out", tmp_path / "o"], capsys)
    assert code == 2
    assert _one_error_line(err) == (f"error: {observations}: column 'pom', row 5: 130.0 is not a percentage in [0, 100]")


HOLD = textwrap.dedent("""
    import sys, time
    from perceptiongap.locks import output_lock
    with output_lock(sys.argv[1]):
        print("locked", flush=True)
        time.sleep(60)
""")


@pytest.mark.parametrize("command", ["accuracy", "export"])
def test_a_second_writer_is_refused_while_the_output_is_locked(study_files, tmp_path, capsys, command):
    observations, cases = study_files
    out = tmp_path / ("stats" if command == "accuracy" else "study.imrmc")
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        argv = (["accuracy", observations, cases, "--out", out] if command == "accuracy"
                else ["export", "imrmc", observations, cases, "--out", out])
        code, _, err = run_cli(argv, capsys)
        assert code == 2 and "is being written by another perceptiongap run" in _one_error_line(err)
    finally:
        holder.terminate()
        holder.wait()


def test_export_imrmc_and_rjafroc(study_files, tmp_path, capsys):
    observations, cases = study_files
    code, out, err = run_cli(["export", "imrmc", observations, cases, "--out", tmp_path / "s.imrmc"], capsys)
    assert code == 0, err
    text = (tmp_path / "s.imrmc").read_text()
    assert "N0:26\nN1:14\nNR:6\nNM:2\nBEGIN DATA:\ntruth,1,truth,0\n" in text
    assert (tmp_path / "s.cases.csv").is_file()
    code, _, err = run_cli(["export", "imrmc", observations, cases, "--out", tmp_path / "s.imrmc"], capsys)
    assert code == 2 and "exists; use --force" in _one_error_line(err)

    # the workbook's case mapping would be s.cases.csv too: refused, not overwritten
    code, _, err = run_cli(["export", "rjafroc", observations, cases, "--out", tmp_path / "s.xlsx"], capsys)
    assert code == 2 and "s.cases.csv: exists; use --force" in _one_error_line(err)
    code, _, err = run_cli(["export", "rjafroc", observations, cases, "--out", tmp_path / "n.xlsx",
                            "--observer-group", "net", "--score", "pom"], capsys)
    assert code == 0, err
    assert (tmp_path / "n.xlsx").is_file() and (tmp_path / "n.cases.csv").is_file()
    code, _, err = run_cli(["export", "rjafroc", observations, cases, "--out", tmp_path / "t.xlsx",
                            "--observer-group", "nett"], capsys)
    assert code == 2 and "--observer-group: 'nett' is not in" in _one_error_line(err)


def test_mrmc_compares_two_severities_and_a_model_against_readers(study_files, capsys):
    observations, cases = study_files
    code, out, err = run_cli(["mrmc", observations, cases, "--readers", "radiologists", "--severities", "0,2"], capsys)
    assert code == 0, err
    assert "AUC difference (second - first):" in out and "Hillis df" in out
    code, out, err = run_cli(["mrmc", observations, cases, "--readers", "radiologists", "--model", "net_seed0",
                              "--severities", "0", "--margin", "0.05"], capsys)
    assert code == 0, err
    assert "model AUC" in out and "non-inferiority" in out


def test_mrmc_refuses_an_uncrossed_design_in_one_line(study_files, capsys):
    observations, cases = study_files
    table = pd.read_csv(observations)
    table = table.drop(index=table.index[(table["observer"] == "dr_b") & (table["severity_mm"] == 2.0)][:5])
    table.to_csv(observations, index=False)
    code, _, err = run_cli(["mrmc", observations, cases, "--readers", "radiologists", "--severities", "0,2"], capsys)
    assert code == 2
    line = _one_error_line(err)
    assert "observer 'dr_b' has no reading of exam" in line and "export imrmc" in line
    code, _, err = run_cli(["mrmc", observations, cases, "--readers", "radiologist", "--severities", "0,2"], capsys)
    assert code == 2 and "'radiologist' is neither an observer group nor an observer" in _one_error_line(err)
