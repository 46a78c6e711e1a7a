"""The stages on a results folder, run as a user runs them: what --force may remove, what --resume must
match, what is refused before anything is written, and a study with subgroups of its own."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from perceptiongap.errors import InputError
from perceptiongap.study import write_table

from ..cli.helpers import run_cli
from ..model.simulate import simulate_study

FIT = ["--inference", "stan-advi", "--advi-seeds", "1", "--no-merged"]


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("study")
    observations, cases, _ = simulate_study(seed=5, n_exams=30)
    write_table(observations, folder / "observations.csv")
    write_table(cases, folder / "cases.csv")
    return folder / "observations.csv", folder / "cases.csv"


@pytest.fixture(scope="module")
def fitted(study, tmp_path_factory) -> Path:
    """`perceptiongap fit` with one stan-advi seed, separate subgroups only: two fits."""
    out = tmp_path_factory.mktemp("fitted") / "results"
    observations, cases = study
    code, _, err = run_cli(["fit", observations, cases, "--out", out, *FIT], _Capture())
    assert code == 0, err
    return out


class _Capture:
    """A stand-in for pytest's capsys in module fixtures: runs with the real streams."""

    def readouterr(self):
        return type("Captured", (), {"out": "", "err": ""})()


def copy_of(folder: Path, tmp_path: Path) -> Path:
    target = tmp_path / "results"
    shutil.copytree(folder, target)
    return target


def mtimes(folder: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in sorted((folder / "posteriors").rglob("*.nc"))}


def one_line_error(code: int, err: str) -> str:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


# --------------------------------------------------------------------------------------------
# --force removes what perceptiongap wrote, nothing else


@pytest.mark.slow
def test_force_keeps_the_inputs_it_reads_and_the_users_own_files(fitted, tmp_path, capsys):
    """Issue 16: with the study inside OUT/study/, `fit --force` deleted it, then crashed."""
    out = copy_of(fitted, tmp_path)
    observations, cases = out / "study" / "observations.parquet", out / "study" / "cases.parquet"
    inputs = {path: path.read_bytes() for path in (observations, cases)}
    (out / "figures").mkdir()
    (out / "figures" / "mine.png").write_bytes(b"a figure of my own")
    (out / "notes.txt").write_text("my notes")
    code, _, err = run_cli(["fit", observations, cases, "--out", out, *FIT, "--force"], capsys)
    assert code == 0, err
    assert {path: path.read_bytes() for path in inputs} == inputs
    assert (out / "figures" / "mine.png").read_bytes() == b"a figure of my own"
    assert (out / "notes.txt").read_text() == "my notes"
    assert len(list((out / "posteriors").rglob("*.nc"))) == 2


@pytest.mark.slow
def test_force_removes_the_outputs_an_earlier_run_recorded(fitted, tmp_path, capsys):
    from perceptiongap.results import ResultsFolder
    from perceptiongap.results.record import add_outputs

    out = copy_of(fitted, tmp_path)
    stale = out / "tables" / "perturbation_study.csv"  # as `analyse` would have written and recorded it
    add_outputs(ResultsFolder(out), [stale])
    stale.parent.mkdir()
    stale.write_text("inference\n")
    before = mtimes(out)
    observations, cases = (tmp_path / "in.parquet", tmp_path / "in_cases.parquet")
    shutil.copy(out / "study" / "observations.parquet", observations)
    shutil.copy(out / "study" / "cases.parquet", cases)
    code, _, err = run_cli(["fit", observations, cases, "--out", out, *FIT, "--force"], capsys)
    assert code == 0, err
    assert not stale.exists() and not stale.parent.exists()
    after = mtimes(out)
    assert list(after) == list(before) and all(after[p] != before[p] for p in before)  # refitted, not reused


# --------------------------------------------------------------------------------------------
# --resume continues only the same run


def test_resume_refuses_changed_inputs(fitted, study, tmp_path, capsys):
    """Issue 16: resumed with every prediction flipped, `fit --resume` kept the old posteriors, exit 0."""
    out = copy_of(fitted, tmp_path)
    observations, cases = study
    table = pd.read_csv(observations)
    humans = table["observer_kind"] == "human"
    table.loc[humans, "prediction"] = 1 - table.loc[humans, "prediction"]
    flipped = tmp_path / "flipped.csv"
    table.to_csv(flipped, index=False)
    study_before = (out / "study" / "observations.parquet").read_bytes()
    before = mtimes(out)
    line = one_line_error(*run_cli(["fit", flipped, cases, "--out", out, *FIT, "--resume"], capsys)[::2])
    assert line.startswith(f"error: {out}: cannot resume with different settings or inputs: input observations "
                           "changed (SHA-256 ")
    assert "--force" in line
    assert mtimes(out) == before and (out / "study" / "observations.parquet").read_bytes() == study_before


@pytest.mark.parametrize(("options", "named"), [
    (["--inference", "stan-advi", "--advi-seeds", "1", "--no-merged", "--seed", "7"], "--seed 7 (the folder's: 0)"),
    (["--inference", "stan-advi", "--advi-seeds", "3", "--no-merged"], "--advi-seeds 3 (the folder's: 1)"),
    (["--inference", "stan-advi,nuts", "--advi-seeds", "1", "--no-merged"],
     "--inference nuts,stan-advi (the folder's: stan-advi)"),
    (["--inference", "stan-advi", "--advi-seeds", "1"], "--merged True (the folder's: False)"),
    (["--inference", "stan-advi", "--advi-seeds", "1", "--no-merged", "--subgroups", "microcalcifications"],
     "--subgroups microcalcifications (the folder's: microcalcifications,soft_tissue_lesions)"),
])
def test_resume_refuses_other_settings_naming_them(fitted, study, tmp_path, capsys, options, named):
    """Issue 16: resumed with --seed 7 --advi-seeds 1, `fit --resume` added a fit to the old ones."""
    out = copy_of(fitted, tmp_path)
    before = mtimes(out)
    line = one_line_error(*run_cli(["fit", *study, "--out", out, *options, "--resume"], capsys)[::2])
    assert named in line
    assert mtimes(out) == before


def test_resume_removes_what_a_killed_fit_left_half_written(fitted, study, tmp_path, capsys):
    out = copy_of(fitted, tmp_path)
    partial = out / "posteriors" / "release" / "stan-advi" / "readers" / ".seed0.nc.k1ll3d.partial"
    partial.write_bytes(b"half a posterior")
    before = mtimes(out)
    code, _, err = run_cli(["fit", *study, "--out", out, *FIT, "--resume"], capsys)
    assert code == 0, err
    assert not partial.exists()
    assert mtimes(out) == before  # both fits kept


# --------------------------------------------------------------------------------------------
# Refused before anything is written


def test_an_observations_file_with_only_its_header_is_an_error(study, tmp_path, capsys):
    observations, cases = study
    header_only = tmp_path / "header.csv"
    header_only.write_text(observations.read_text().splitlines()[0] + "\n")
    line = one_line_error(*run_cli(["fit", header_only, cases, "--out", tmp_path / "out"], capsys)[::2])
    assert line == f"error: {header_only}: has no rows (a header only?), so there is nothing to fit"
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("change", "message"), [
    (lambda t: t[~((t["observer_group"] == "networks") & (t["severity_mm"] == 0))],
     "observer group 'networks' has no unperturbed (severity 0) observations"),
    (lambda t: t.assign(observer_kind=np.where(t.index == t.index[-1], "human", t["observer_kind"]),
                        prediction=np.where(t.index == t.index[-1], 1.0, t["prediction"])),
     "observer group 'networks' mixes human and machine observers"),
])
def test_a_study_the_model_cannot_take_is_refused_naming_the_file_and_writing_nothing(study, tmp_path, capsys,
                                                                                     change, message):
    """Issue 16: these errors left OUT/study/ behind and said `observations` instead of the file."""
    observations, cases = study
    changed = tmp_path / "changed.csv"
    change(pd.read_csv(observations)).to_csv(changed, index=False)
    out = tmp_path / "out"
    line = one_line_error(*run_cli(["fit", changed, cases, "--out", out, *FIT], capsys)[::2])
    assert line == f"error: {changed}: {message}"
    assert not out.exists() or not any(out.iterdir())


def test_a_subgroup_option_naming_no_subgroup_of_the_cases_is_refused(study, tmp_path, capsys):
    line = one_line_error(*run_cli(["fit", *study, "--out", tmp_path / "out", "--subgroups", "mass"], capsys)[::2])
    assert line.startswith("error: --subgroups: 'mass' is not a subgroup of the cases (they have ")
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------------------------
# analyse and report on folders they cannot use


def test_analyse_refuses_a_folder_whose_planned_fits_are_missing(fitted, tmp_path, capsys):
    out = copy_of(fitted, tmp_path)
    (out / "posteriors" / "release" / "stan-advi" / "networks" / "seed0.nc").unlink()
    line = one_line_error(*run_cli(["analyse", out, "--no-report"], capsys)[::2])
    assert "1 of the 2 planned fits are not on disk (the first: posteriors/release/stan-advi/networks/seed0.nc)" in line
    assert not (out / "tables").exists()


@pytest.mark.slow
def test_report_refuses_a_fits_table_with_other_columns(fitted, tmp_path, capsys):
    """Issue 16: `report` on a folder whose tables/fits.csv has the wrong columns ended in a KeyError."""
    out = copy_of(fitted, tmp_path)
    code, _, err = run_cli(["analyse", out, "--no-report"], capsys)
    assert code == 0, err
    fits = pd.read_csv(out / "tables" / "fits.csv")
    fits.drop(columns=["observer_kind", "seed"]).to_csv(out / "tables" / "fits.csv", index=False)
    line = one_line_error(*run_cli(["report", out], capsys)[::2])
    assert line == (f"error: {out / 'tables' / 'fits.csv'}: not a table written by `perceptiongap analyse`: "
                    "missing column(s) 'observer_kind', 'seed'")
    assert not (out / "report.html").exists()


# --------------------------------------------------------------------------------------------
# The reader-study statistics that analyse adds

ACCURACY_COLUMNS = ["observer_group", "observer", "observer_kind", "scheme", "annotator", "severity_mm", "subgroup",
                    "operating_point", "threshold", "n_positive", "n_negative", "sensitivity", "sensitivity_low",
                    "sensitivity_high", "specificity", "specificity_low", "specificity_high", "auc_score", "auc",
                    "auc_low", "auc_high"]
SUMMARY_COLUMNS = ["observer_group", "observer_kind", "scheme", "annotator", "severity_mm", "subgroup",
                   "operating_point", "n_observers", "sensitivity_mean", "sensitivity_sd", "specificity_mean",
                   "specificity_sd", "auc_mean", "auc_sd"]
CONSISTENCY_COLUMNS = ["scheme", "severity_mm", "subgroup", "pair_kind", "n_pairs", "n_trials_mean", "c_obs_mean",
                       "c_exp_mean", "kappa_mean", "kappa_sd", "kappa_low", "kappa_high"]
PAIR_COLUMNS = ["scheme", "severity_mm", "subgroup", "pair_kind", "observer_a", "observer_group_a", "observer_b",
                "observer_group_b", "n_trials", "accuracy_a", "accuracy_b", "c_obs", "c_exp", "kappa", "kappa_low",
                "kappa_high"]


def test_analyse_writes_the_reader_study_statistics_seeded_by_the_runs_seed(fitted, study, tmp_path, capsys):
    from perceptiongap.stats import accuracy_table

    out = copy_of(fitted, tmp_path)
    record = json.loads((out / "run.json").read_text())
    record["seed"] = 7  # as `fit --seed 7` would record it (the fits themselves are read from the plan)
    (out / "run.json").write_text(json.dumps(record))
    code, stdout, err = run_cli(["analyse", out, "--no-report", "--bootstrap", "200"], capsys)
    assert code == 0, err
    tables = out / "tables"
    for name in ("accuracy", "accuracy_summary", "error_consistency", "error_consistency_pairs"):
        assert str(tables / f"{name}.csv") in stdout + err  # the terminal says where they are
    accuracy = pd.read_csv(tables / "accuracy.csv", keep_default_na=False, na_values=[""])
    assert list(accuracy.columns) == ACCURACY_COLUMNS
    assert list(pd.read_csv(tables / "accuracy_summary.csv").columns) == SUMMARY_COLUMNS
    assert list(pd.read_csv(tables / "error_consistency.csv").columns) == CONSISTENCY_COLUMNS
    pairs = pd.read_csv(tables / "error_consistency_pairs.csv")
    assert list(pairs.columns) == PAIR_COLUMNS
    assert set(pairs["pair_kind"]) == {"human-human", "human-network", "network-network"}
    statistics = json.loads((out / "run.json").read_text())["statistics"]
    assert statistics["seed"] == 7 and statistics["bootstrap"] == 200
    assert statistics["operating_points"] == ["readers_mean_specificity", "threshold_0.5"]

    # Each reader's sensitivity, counted here from the study: their yes answers on the malignant breasts they read.
    observations, cases = (pd.read_csv(path) for path in study)
    read = observations[observations["observer_kind"] == "human"].merge(cases, on=["exam", "breast"])
    malignant = read[read["label"] == "malignant"]
    expected = (malignant["prediction"] >= 0.5).groupby([malignant["observer"], malignant["severity_mm"]]).mean()
    rows = accuracy[(accuracy["observer_kind"] == "human") & (accuracy["subgroup"] == "all")]
    shown = rows.set_index(["observer", "severity_mm"])["sensitivity"]
    pd.testing.assert_series_equal(shown.sort_index(), expected.sort_index(), check_names=False)

    # The intervals are the stats package's with the run's seed and the replicates asked for, and no other.
    again = accuracy_table(*(pd.read_parquet(out / "study" / f"{name}.parquet") for name in ("observations", "cases")),
                           seed=7, n_bootstrap=200)
    np.testing.assert_allclose(accuracy["sensitivity_low"], again["sensitivity_low"], equal_nan=True)
    other_seed = accuracy_table(*(pd.read_parquet(out / "study" / f"{name}.parquet")
                                  for name in ("observations", "cases")), seed=0, n_bootstrap=200)
    assert not np.allclose(accuracy["sensitivity_low"], other_seed["sensitivity_low"], equal_nan=True)


def test_statistics_the_study_cannot_take_are_skipped_saying_why(fitted, tmp_path, capsys):
    """Without unperturbed readings of non-malignant breasts the readers' operating point is undefined: the
    paper's tables are still written, the statistics are not (and stale ones go)."""
    out = copy_of(fitted, tmp_path)
    code, _, err = run_cli(["analyse", out, "--no-report", "--bootstrap", "20"], capsys)
    assert code == 0 and (out / "tables" / "accuracy.csv").is_file(), err
    observations = pd.read_parquet(out / "study" / "observations.parquet")
    cases = pd.read_parquet(out / "study" / "cases.parquet")
    label = observations.merge(cases, on=["exam", "breast"], how="left")["label"].to_numpy()
    unperturbed_negative = ((observations["observer_kind"] == "human") & (observations["severity_mm"] == 0)
                            & (label != "malignant")).to_numpy()
    observations[~unperturbed_negative].to_parquet(out / "study" / "observations.parquet", index=False)
    code, stdout, err = run_cli(["analyse", out, "--no-report"], capsys)
    assert code == 0, err
    assert "reader-study statistics skipped: operating point 'readers' needs human observers" in stdout + err
    assert (out / "tables" / "perturbation_study.csv").is_file()
    assert not any((out / "tables" / f"{name}.csv").exists()
                   for name in ("accuracy", "accuracy_summary", "error_consistency", "error_consistency_pairs"))
    assert json.loads((out / "run.json").read_text())["statistics"]["skipped"].startswith("operating point")
    code, _, err = run_cli(["report", out], capsys)
    assert code == 0, err
    assert "they were not computed: operating point &#39;readers&#39; needs" in (out / "report.html").read_text()


def test_a_bootstrap_that_is_not_a_positive_count_is_one_line(fitted, tmp_path, capsys):
    out = copy_of(fitted, tmp_path)
    line = one_line_error(*run_cli(["analyse", out, "--bootstrap", "0"], capsys)[::2])
    assert line == "error: --bootstrap: 0 is not a number of bootstrap replicates (a whole number >= 1)"
    assert not (out / "tables").exists()


# --------------------------------------------------------------------------------------------
# Subgroups of a study's own


def own_study(seed: int = 11, n_exams: int = 40) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A study whose Cases name their own three lesion subgroups (and benign 'normal' breasts).

    Simulated from the model with the paper's three subgroups; microcalcifications become 'mass',
    soft tissue lesions 'calcification', and the masses of every other exam 'distortion' (two
    subgroups with the same true parameters, as far as the fit knows two different ones).
    """
    observations, cases, _ = simulate_study(seed=seed, n_exams=n_exams)
    names = cases["subgroup"].map({"microcalcifications": "mass", "soft_tissue_lesions": "calcification",
                                   "nonbiopsied": "normal"})
    odd_exam = cases["exam"].str[-1].astype(int) % 2 == 1
    cases = cases.assign(subgroup=names.where(~((names == "mass") & odd_exam), "distortion"))
    return observations, cases


@pytest.mark.slow
def test_a_study_with_three_subgroups_of_its_own_names_goes_through_fit_analyse_and_report(tmp_path):
    import perceptiongap

    observations, cases = own_study()
    write_table(observations, tmp_path / "observations.parquet")
    write_table(cases, tmp_path / "cases.parquet")
    out = tmp_path / "results"
    messages = []
    perceptiongap.fit(tmp_path / "observations.parquet", tmp_path / "cases.parquet", out=out, inference="stan-advi",
                      advi_seeds=1, subgroups="mass+calcification,distortion", on_message=messages.append)
    assert messages[0] == ("subgroups analysed: mass, calcification, distortion (as chosen); "
                           "merged refit: mass+calcification")
    record = json.loads((out / "run.json").read_text())
    assert record["subgroups"]["analysed"] == ["mass", "calcification", "distortion"]
    assert record["subgroups"]["merged"] == ["mass", "calcification"]

    tables = perceptiongap.analyse(out, report=False)
    study_table = pd.read_csv(out / "tables" / "perturbation_study.csv")
    pd.testing.assert_frame_equal(study_table, tables["perturbation_study"], check_dtype=False)
    model = study_table[study_table["inference"] == "stan-advi"]
    assert list(pd.unique(model["subgroup"])) == ["mass", "calcification", "distortion"]
    assert set(model["observer_group"]) == {"readers", "networks"}
    worst = model[model["severity_mm"] == 4.0]
    assert (worst["confidence_mean"] < 0).all()  # the simulation lowers every subgroup's logit with severity
    observed = study_table[study_table["inference"] == "observed"]
    assert set(observed["subgroup"]) == {"mass", "calcification", "distortion"}
    merged = pd.read_csv(out / "tables" / "merged_subgroups.csv")
    assert set(merged["subgroup"]) == {"merged"} and set(merged["observer_group"]) == {"readers", "networks"}
    accuracy = pd.read_csv(out / "tables" / "accuracy.csv")
    assert set(accuracy["subgroup"]) == {"mass", "calcification", "distortion", "merged", "all"}
    network = accuracy[(accuracy["observer_kind"] == "machine") & (accuracy["severity_mm"] == 0)].groupby(
        "subgroup")["n_positive"].first()
    malignant = cases.loc[cases["label"] == "malignant", "subgroup"].value_counts()
    assert network["merged"] == malignant["mass"] + malignant["calcification"]  # the folder's merged pair, not all three
    conclusions = pd.read_csv(out / "tables" / "conclusions.csv").set_index("conclusion")
    assert conclusions["supported"].isna().all() and list(conclusions["inference"].unique()) == ["stan-advi"]
    evidence = conclusions["evidence"].to_dict()
    assert evidence["microcalcifications"] == "not evaluated (this study has no microcalcifications subgroup)"
    assert evidence["merged_subgroups"].startswith("not evaluated (this study has no merged refit of "
                                                   "microcalcifications and soft_tissue_lesions; it merged mass and "
                                                   "calcification")

    path = perceptiongap.report(out, shared_dir=tmp_path / "no-shared-data")
    html = path.read_text(encoding="utf-8")
    figures = sorted(p.stem for p in (out / "figures").glob("*.png"))
    assert figures == ["accuracy", "elbo_stan-advi", "error_consistency", "merged_subgroups_networks_stan-advi",
                       "merged_subgroups_pooled_networks_stan-advi",
                       "perturbation_study_networks_calcification_stan-advi",
                       "perturbation_study_networks_distortion_stan-advi", "perturbation_study_networks_mass_stan-advi",
                       "ppc_networks", "ppc_readers"]
    assert "networks, mass and calcification merged: refit under stan-advi" in html
    assert "the same with mass and calcification as one subgroup, refitted" in html
    assert "not evaluated (this study has no microcalcifications subgroup" in html


@pytest.mark.parametrize(("model", "message"), [
    ("relase", "unknown model 'relase'; choose from release, label_specific, independent, observer_slopes"),
    (",", "unknown model ','; choose from release, label_specific, independent, observer_slopes"),
])
def test_an_unknown_model_is_one_line_naming_the_option(model, message):
    from perceptiongap.results.stages import parse_models

    with pytest.raises(InputError) as info:
        parse_models(model)
    assert (str(info.value), info.value.source) == (f"model: {message}", "model")


def test_models_are_read_from_a_comma_separated_list_in_order_without_repeats():
    from perceptiongap.results.stages import parse_models

    assert parse_models("label_specific, release,label_specific") == ["label_specific", "release"]


def test_fit_reports_one_bar_per_inference_method_and_each_fit(study, tmp_path):
    """Issue 17: one count of every fit promised the end far too early (NUTS fits take 5-20x a stan-advi fit)."""
    import perceptiongap

    observations, cases = study
    reports, messages = [], []
    perceptiongap.fit(observations, cases, out=tmp_path / "out", inference="stan-advi", advi_seeds=2, merged=False,
                      on_progress=lambda task, done, total: reports.append((task, done, total)),
                      on_message=messages.append)
    fits = sum(message.startswith("release stan-advi ") and message.endswith(" s") for message in messages)
    assert fits == 4  # two groups x two seeds
    assert reports[0] == ("fitting stan-advi", 0, 4) and reports[-1] == ("fitting stan-advi", 4, 4)
    assert {task for task, _, _ in reports} == {"fitting stan-advi"}
