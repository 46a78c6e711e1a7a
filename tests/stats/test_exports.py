"""Exports to iMRMC and RJafroc, checked against the formats' published rules and read back.

The rules (see ``perceptiongap.stats.exports``): iMRMC's ``InputFile.java`` (DIDSR/iMRMC) and
RJafroc's ``DfReadDataFile``/``checkTruthTable``. The readers below implement those rules here,
independently of the writer.
"""

from __future__ import annotations

import re

import numpy as np
import openpyxl
import pandas as pd
import pytest

from perceptiongap.errors import InputError
from perceptiongap.stats.exports import mapping_path, select_observations, write_imrmc, write_rjafroc
from tests.stats.study_builders import make_cases, make_observations, observation_rows

LABELS = [("malignant", "microcalcifications")] * 4 + [("benign", "microcalcifications")] * 3 + \
         [("nonbiopsied", "nonbiopsied")] * 3


def crossed_study(**extra):
    """Two readers with POM and two networks, every breast at severities 0 and 2 mm."""
    cases = make_cases(LABELS)
    rng = np.random.default_rng(0)
    parts = []
    for severity in (0.0, 2.0):
        for reader in ("dr_a", "dr_b"):
            pom = rng.uniform(0, 100, len(cases)).round(1)
            parts.append(observation_rows(cases, reader, "radiologists", "human", (pom > 50).astype(float),
                                          severity=severity, pom=pom, **extra))
        for seed in (0, 1):
            parts.append(observation_rows(cases, f"net_seed{seed}", "net", "machine", rng.random(len(cases)),
                                          severity=severity))
    return make_observations(*parts), cases


def read_imrmc(path):
    """Parse an iMRMC input file as InputFile.java does; assert its rules on the way."""
    lines = path.read_text(encoding="utf-8").splitlines()
    begin = next(k for k, line in enumerate(lines) if line.upper().startswith("BEGIN DATA:"))
    header, data = lines[:begin], lines[begin + 1:]
    counts = {}
    for line in header:
        found = re.findall(r"(N0|N1|NR|NM):", line.upper())
        if found:  # a counts line: the token starts it and the rest is an integer
            assert len(found) == 1 and line.upper().startswith(found[0] + ":")
            counts[found[0]] = int(line[3:].strip())
    truth, readings = {}, {}
    for line in data:
        fields = [field.replace(" ", "") for field in line.split(",")]
        assert len(fields) == 4, line
        reader, case, modality, score = fields
        assert re.fullmatch(r"\d+", case), "case IDs are integers"
        if reader in ("truth", "-1"):
            assert score in ("0", "1"), "truth is written exactly 0 or 1"
            assert case not in truth, "one truth row per case"
            truth[case] = int(score)
        else:
            key = (reader, case, modality)
            assert key not in readings, "no replicates"
            readings[key] = float(score)
    assert {case for _, case, _ in readings} <= set(truth), "every case has truth"
    assert counts == {"N0": sum(v == 0 for v in truth.values()), "N1": sum(v == 1 for v in truth.values()),
                      "NR": len({r for r, _, _ in readings}), "NM": len({m for _, _, m in readings})}
    return header, truth, readings


def test_imrmc_file_follows_the_format_and_reads_back(tmp_path):
    observations, cases = crossed_study()
    out = tmp_path / "study.imrmc"
    summary = write_imrmc(observations, cases, out)
    header, truth, readings = read_imrmc(out)
    assert header[0] == "perceptiongap study study"
    assert summary.mapping == tmp_path / "study.cases.csv" and summary.n_readings == len(observations)
    mapping = pd.read_csv(summary.mapping, dtype={"exam": str})
    assert list(mapping.columns) == ["case_id", "exam", "breast", "label", "subgroup", "truth"]
    assert list(mapping["case_id"]) == list(range(1, len(cases) + 1))
    assert {str(k): v for k, v in zip(mapping["case_id"], mapping["truth"])} == truth
    assert (mapping["truth"] == (mapping["label"] == "malignant")).all()
    # Read back: every observation's score is in the file under its reader, case and modality.
    by_breast = {(e, b): str(c) for e, b, c in zip(mapping["exam"], mapping["breast"], mapping["case_id"])}
    for _, row in observations.iterrows():
        key = (row["observer"], by_breast[(row["exam"], row["breast"])], f"entire-{row['severity_mm']:g}mm")
        expected = row["pom"] if row["observer_kind"] == "human" else row["prediction"]
        assert readings[key] == expected  # exactly: scores are written with every digit
    assert any("probability of malignancy (0-100)" in line for line in header)
    assert summary.score_sources == {"dr_a": "pom", "dr_b": "pom", "net_seed0": "probability",
                                     "net_seed1": "probability"}


def test_imrmc_truth_is_never_written_as_a_float(tmp_path):
    observations, cases = crossed_study()
    write_imrmc(observations, cases, tmp_path / "s.imrmc")
    truth_rows = [line for line in (tmp_path / "s.imrmc").read_text().splitlines() if line.startswith("truth,")]
    assert len(truth_rows) == len(cases)
    assert all(re.fullmatch(r"truth,\d+,truth,[01]", line) for line in truth_rows)


def test_imrmc_free_text_cannot_be_mistaken_for_counts(tmp_path):
    observations, cases = crossed_study()
    write_imrmc(observations, cases, tmp_path / "s.imrmc", title="nr: 3 readers, BEGIN DATA: soon")
    header, _, _ = read_imrmc(tmp_path / "s.imrmc")  # would fail on a second NR: or an early BEGIN DATA:
    assert header[0].startswith("nr -")


def test_sparse_reader_study_exports_to_imrmc_and_reports_thin_combinations(tmp_path):
    cases = make_cases(LABELS)
    # Each reader reads half the breasts at 0 mm and the other half at 2 mm (not crossed).
    first, second = np.arange(0, 10, 2), np.arange(1, 10, 2)
    parts = [observation_rows(cases, "dr_a", "radiologists", "human", [1, 0, 0, 0, 1], severity=0.0, breasts=first),
             observation_rows(cases, "dr_a", "radiologists", "human", [1, 1, 0, 0, 0], severity=2.0, breasts=second)]
    summary = write_imrmc(make_observations(*parts), cases, tmp_path / "sparse.imrmc")
    _, truth, readings = read_imrmc(tmp_path / "sparse.imrmc")
    assert len(readings) == 10 and len(truth) == 10
    assert summary.score_sources == {"dr_a": "prediction"}  # no POM or BI-RADS: the binary answer
    assert ("dr_a", "entire-0mm", 3, 2) in summary.skipped_by_imrmc  # 3 negatives, 2 positives at 0 mm


def read_rjafroc(path):
    """Read a JAFROC workbook and assert RJafroc's rules for a crossed ROC dataset."""
    workbook = openpyxl.load_workbook(path, read_only=True)
    assert sorted(name.upper() for name in workbook.sheetnames) == ["LL", "NL", "TRUTH"]
    sheets = {}
    for name in workbook.sheetnames:
        rows = list(workbook[name].iter_rows(values_only=True))
        sheets[name] = pd.DataFrame(rows[1:], columns=rows[0])
    truth, nl, ll = sheets["Truth"], sheets["NL"], sheets["LL"]
    assert list(truth.columns) == ["CaseID", "LesionID", "Weight", "ReaderID", "ModalityID", "Paradigm"]
    assert list(nl.columns) == ["ReaderID", "ModalityID", "CaseID", "FP_Rating"]
    assert list(ll.columns) == ["ReaderID", "ModalityID", "CaseID", "LesionID", "TP_Rating"]
    assert truth.iloc[:, :5].notna().all().all(), "no empty cells in the first five Truth columns"
    assert all(isinstance(v, int) for v in truth["CaseID"]) and truth["CaseID"].is_unique
    assert set(truth["LesionID"]) <= {0, 1}
    assert ((truth["LesionID"] == 0) == (truth["Weight"] == 0)).all()
    assert list(truth["Paradigm"][:2]) == ["ROC", "crossed"] and truth["Paradigm"][2:].isna().all()
    readers = [r.strip() for r in re.split(r",|\s", truth["ReaderID"][0]) if r.strip()]
    modalities = [m.strip() for m in re.split(r",|\s", truth["ModalityID"][0]) if m.strip()]
    assert (truth["ReaderID"] == truth["ReaderID"][0]).all() and (truth["ModalityID"] == truth["ModalityID"][0]).all()
    normal = set(truth.loc[truth["LesionID"] == 0, "CaseID"])
    abnormal = set(truth.loc[truth["LesionID"] == 1, "CaseID"])
    assert set(nl["CaseID"]) == normal and set(ll["CaseID"]) == abnormal  # NL: normals only; LL: abnormals
    assert (ll["LesionID"] == 1).all()
    assert not nl.duplicated(["ReaderID", "ModalityID", "CaseID"]).any()
    assert not ll.duplicated(["ReaderID", "ModalityID", "CaseID", "LesionID"]).any()
    # crossed: every reader rates every case in every modality
    assert len(nl) == len(readers) * len(modalities) * len(normal)
    assert len(ll) == len(readers) * len(modalities) * len(abnormal)
    return truth, nl, ll, readers, modalities


def test_rjafroc_workbook_follows_the_format_and_reads_back(tmp_path):
    observations, cases = crossed_study()
    out = tmp_path / "study.xlsx"
    summary = write_rjafroc(observations, cases, out)
    truth, nl, ll, readers, modalities = read_rjafroc(out)
    assert readers == ["dr_a", "dr_b", "net_seed0", "net_seed1"]
    assert modalities == ["entire-0mm", "entire-2mm"]
    mapping = pd.read_csv(summary.mapping, dtype={"exam": str}).set_index(["exam", "breast"])["case_id"]
    ratings = pd.concat([nl.rename(columns={"FP_Rating": "rating"}), ll.rename(columns={"TP_Rating": "rating"})])
    ratings = ratings.set_index(["ReaderID", "ModalityID", "CaseID"])["rating"]
    for _, row in observations.iterrows():
        case_id = mapping.loc[(row["exam"], row["breast"])]
        expected = row["pom"] if row["observer_kind"] == "human" else row["prediction"]
        # openpyxl writes 16 significant digits: equal to the last bit or so
        assert ratings.loc[(row["observer"], f"entire-{row['severity_mm']:g}mm", case_id)] == pytest.approx(
            expected, rel=1e-15)


def test_rjafroc_refuses_a_sparse_design_naming_a_missing_reading(tmp_path):
    observations, cases = crossed_study()
    sparse = observations.drop(index=observations.index[(observations["observer"] == "dr_b")][:3])
    with pytest.raises(InputError, match="needs a crossed design.*'dr_b' has no rating of case") as error:
        write_rjafroc(sparse, cases, tmp_path / "sparse.xlsx")
    assert "\n" not in str(error.value)
    assert not (tmp_path / "sparse.xlsx").exists() and not mapping_path(tmp_path / "sparse.xlsx").exists()


def test_birads_zero_has_no_score_to_export(tmp_path):
    cases = make_cases(LABELS)
    rows = observation_rows(cases, "dr_a", "radiologists", "human", [1, 1, 0, 0, 0, 0, 0, 0, 0, 1],
                            birads=["5", "4A", "3", "2", "1", "1", "2", "3", "0", "4B"])
    observations = make_observations(rows)
    with pytest.raises(InputError, match="no birads score"):
        write_imrmc(observations, cases, tmp_path / "b.imrmc")
    write_imrmc(observations, cases, tmp_path / "b.imrmc", score="prediction")
    _, _, readings = read_imrmc(tmp_path / "b.imrmc")
    assert sorted(readings.values()) == [0.0] * 7 + [1.0] * 3


def test_file_names_the_tools_would_not_open_are_refused(tmp_path):
    observations, cases = crossed_study()
    with pytest.raises(InputError, match=r"\*\.imrmc"):
        write_imrmc(observations, cases, tmp_path / "study.txt")
    with pytest.raises(InputError, match=r"\*\.xlsx"):
        write_rjafroc(observations, cases, tmp_path / "study.xls")


def test_names_that_would_break_the_formats_are_refused(tmp_path):
    cases = make_cases(LABELS)
    rows = observation_rows(cases, "dr a", "radiologists", "human", [1] * 10)
    with pytest.raises(InputError, match="'dr a' cannot be an ID"):
        write_imrmc(make_observations(rows), cases, tmp_path / "x.imrmc")


def test_selection_by_group_and_scheme(release_study):
    observations, _ = release_study
    chosen = select_observations(observations, observer_groups=["gmic"], schemes=["roi_interior"])
    assert set(chosen["observer_group"]) == {"gmic"} and set(chosen["scheme"]) == {"roi_interior"}
    with pytest.raises(InputError, match="'gmc' is not in"):
        select_observations(observations, observer_groups=["gmc"])


@pytest.mark.slow
def test_the_release_exports_networks_to_both_formats_and_readers_to_imrmc(release_study, tmp_path):
    observations, cases = release_study
    readers = select_observations(observations, observer_groups=["radiologists"])
    summary = write_imrmc(readers, cases, tmp_path / "readers.imrmc")
    _, truth, readings = read_imrmc(tmp_path / "readers.imrmc")
    assert len(readings) == len(readers) == summary.n_readings and len(truth) == 1440
    with pytest.raises(InputError, match="not crossed"):
        write_rjafroc(readers, cases, tmp_path / "readers.xlsx")
    gmic = select_observations(observations, observer_groups=["gmic"])
    write_rjafroc(gmic, cases, tmp_path / "gmic.xlsx")
    _, nl, ll, readers_, modalities = read_rjafroc(tmp_path / "gmic.xlsx")
    assert len(readers_) == 5 and modalities[0] == "entire-0mm" and len(nl) + len(ll) == len(gmic)
