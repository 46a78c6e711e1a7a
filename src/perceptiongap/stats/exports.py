"""The study in the input formats of iMRMC (FDA) and RJafroc, for the statisticians who use them.

Both formats need integer case IDs: breasts are numbered 1..N (non-malignant first, then
malignant, each by exam and breast) and a mapping file ``<name>.cases.csv`` beside the export says
which exam and breast each number is (columns ``case_id, exam, breast, label, subgroup, truth``).
Truth is 1 for malignant, 0 for benign and non-biopsied (METHOD §6). A reader is an observer; a
modality is a scheme and severity, ``entire-0.5mm`` (and the annotator for the ROI schemes,
``roi_interior-<annotator>-0.5mm``). A score is a network's probability or a reader's probability
of malignancy (0-100), else BI-RADS as a rank (1 ... 7 for 1 ... 5), else their binary answer; the
header says which.

**iMRMC** (``.imrmc``), as DIDSR/iMRMC's ``InputFile.java`` reads it: every line before the one
starting ``BEGIN DATA:`` is free text (the first is the study's title), except that lines holding
``N0:``, ``N1:``, ``NR:`` or ``NM:`` give the numbers of non-diseased and diseased cases, readers
and modalities (so free text never contains those tokens); then one row per reading,
``readerID,caseID,modalityID,score``, with whitespace removed and no replicate of a (reader, case,
modality). Every case needs one truth row ``truth,<caseID>,truth,<0 or 1>``: iMRMC compares the
score to the strings ``0`` and ``1``, so ``1.0`` would leave the case without truth. iMRMC drops a
reader x modality with fewer than three cases of either truth from its ROC analysis; such
combinations are reported. The design may be sparse (iMRMC's U-statistics handle any design).

**RJafroc** (``.xlsx``), as ``DfReadDataFile(file, newExcelFileFormat = TRUE)`` reads it (RJafroc's
``ReadJAFROCNewFormat`` and ``checkTruthTable``): three sheets, ``Truth``, ``NL`` and ``LL``.
``Truth``: columns ``CaseID, LesionID, Weight, ReaderID, ModalityID, Paradigm``, one row per case;
integer CaseID; LesionID 0 for a non-diseased case and 1 for the one lesion of a diseased case
(ROC); Weight 0 and 1; ReaderID and ModalityID the lists of all readers and modalities as text
("a, b, c"); Paradigm ``ROC`` in the first row and the design in the second. ``NL``: ``ReaderID,
ModalityID, CaseID, FP_Rating`` for every non-diseased case; ``LL``: ``ReaderID, ModalityID,
CaseID, LesionID, TP_Rating`` for every diseased case (RJafroc's current reader checks these column
names; older ones took the columns by position). No rating may repeat a (reader, modality, case,
lesion). For ``crossed`` RJafroc requires every reader to rate every case in every modality, so a
sparse design is refused; RJafroc's split-plot layouts (readers nested in modalities, or cases in
readers) do not describe a study where every reader sees every exam at some severity either.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from perceptiongap.errors import InputError
from perceptiongap.files import atomic_path
from perceptiongap.stats.breasts import attach_cases
from perceptiongap.stats.scores import SCORE_CHOICES, score_source, score_values

__all__ = [
    "ExportData",
    "ExportSummary",
    "export_data",
    "imrmc_text",
    "mapping_path",
    "modality_id",
    "rjafroc_sheets",
    "select_observations",
    "sparse_combinations",
    "write_imrmc",
    "write_rjafroc",
]

SCORE_DESCRIPTIONS = {
    "probability": "the network's probability of malignancy (0-1)",
    "pom": "the reader's probability of malignancy (0-100)",
    "birads": "the reader's BI-RADS category as a rank (1, 2, 3, 4A, 4B, 4C, 5 -> 1 ... 7)",
    "prediction": "the reader's binary answer (1 = malignant)",
}
#: Tokens iMRMC parses anywhere in a header line; free text must not contain them.
_IMRMC_TOKENS = re.compile(r"N0:|N1:|NR:|NM:|BEGIN DATA:", re.IGNORECASE)
_EXCEL_MAX_ROWS = 1_048_576


def mapping_path(out: str | Path) -> Path:
    """The case-mapping file beside an export: ``study.imrmc`` -> ``study.cases.csv``."""
    out = Path(out)
    return out.with_name(f"{out.stem}.cases.csv")


def modality_id(scheme: str, annotator: str, severity_mm: float) -> str:
    """``entire-0.5mm``, ``roi_exterior-<annotator>-2mm``."""
    parts = [scheme] + ([annotator] if annotator else []) + [f"{float(severity_mm):g}mm"]
    return "-".join(parts)


def select_observations(
    observations: pd.DataFrame,
    *,
    observer_groups: Sequence[str] | None = None,
    schemes: Sequence[str] = ("entire",),
    source: str = "observations",
) -> pd.DataFrame:
    """The rows of the named observer groups (default all) and schemes; unknown names are refused."""
    for column, wanted, option in (("observer_group", observer_groups, "--observer-group"),
                                   ("scheme", schemes, "--scheme")):
        if wanted is None:
            continue
        present = list(dict.fromkeys(observations[column].astype(str)))
        unknown = [w for w in wanted if w not in present]
        if unknown:
            raise InputError(f"{unknown[0]!r} is not in {source} (it has {', '.join(present)})", source=option)
    chosen = observations["scheme"].isin(list(schemes))
    if observer_groups is not None:
        chosen &= observations["observer_group"].isin(list(observer_groups))
    if not chosen.any():
        raise InputError("no observations of these observer groups in these schemes", source=source)
    return observations[chosen]


@dataclass(frozen=True)
class ExportData:
    """The readings of an export: ``ratings`` (reader, case_id, modality, score, truth) and ``cases``
    (case_id, exam, breast, label, subgroup, truth); ``score_sources`` names each reader's score."""

    ratings: pd.DataFrame
    cases: pd.DataFrame
    score_sources: dict[str, str] = field(default_factory=dict)

    @property
    def readers(self) -> list[str]:
        return list(dict.fromkeys(self.ratings["reader"]))

    @property
    def modalities(self) -> list[str]:
        return list(dict.fromkeys(self.ratings["modality"]))


def _check_identifier(value: str, what: str, source: str) -> None:
    if not value or re.search(r"[\s,()]", value) or value in ("truth", "-1"):
        raise InputError(f"{what} {value!r} cannot be an ID in iMRMC or RJafroc files (no spaces, commas or "
                         "brackets, not 'truth' or '-1'); rename it", source=source)


def export_data(observations: pd.DataFrame, cases: pd.DataFrame, *, score: str = "auto",
                source: str = "observations") -> ExportData:
    """Number the breasts, name modalities and pick each reader's score (see the module docstring).

    ``score``: ``auto`` (probability, POM, BI-RADS rank, else the binary answer), or ``pom``,
    ``birads``, ``prediction`` for every human reader. A reading without the chosen score is refused.
    """
    if score not in SCORE_CHOICES:
        raise InputError(f"{score!r} is not one of {', '.join(SCORE_CHOICES)}", source="--score")
    cases = cases.reset_index(drop=True)
    rows = attach_cases(observations, cases, source=source).reset_index(drop=True)
    if rows["malignant"].all() or not rows["malignant"].any():
        raise InputError("an ROC export needs malignant and non-malignant breasts, and these observations have "
                         "only one kind", source=source)
    for name in dict.fromkeys(rows["observer"].astype(str)):
        _check_identifier(name, "observer", source)
    for name in dict.fromkeys(rows["annotator"].astype(str)):
        if name:
            _check_identifier(name, "annotator", source)

    values = np.full(len(rows), np.nan)
    sources: dict[str, str] = {}
    for observer, positions in rows.groupby("observer", sort=False, observed=True).indices.items():
        chosen = score_source(rows.iloc[positions], score) or "prediction"
        sources[str(observer)] = chosen
        values[positions] = score_values(rows.iloc[positions], chosen)
    if np.isnan(values).any():
        bad = rows.iloc[int(np.flatnonzero(np.isnan(values))[0])]
        raise InputError(
            f"observer {bad['observer']!r}, exam {bad['exam']!r} breast {bad['breast']!r} at "
            f"{float(bad['severity_mm']):g} mm has no {sources[str(bad['observer'])]} score (missing, or BI-RADS 0 "
            "which has no rank); choose --score pom or --score prediction", source=source)

    used = cases.iloc[np.unique(rows["case"].to_numpy())]
    truth = (used["label"].astype(str) == "malignant").astype(int)
    numbered = used.assign(truth=truth.to_numpy()).sort_values(["truth", "exam", "breast"], kind="stable")
    numbered.insert(0, "case_id", np.arange(1, len(numbered) + 1))
    case_id = pd.Series(numbered["case_id"].to_numpy(), index=numbered.index)
    ratings = pd.DataFrame({
        "reader": rows["observer"].astype(str),
        "case_id": case_id.loc[rows["case"].to_numpy()].to_numpy(),
        "modality": [modality_id(s, a, v) for s, a, v in
                     zip(rows["scheme"].astype(str), rows["annotator"].astype(str), rows["severity_mm"])],
        "score": values,
        "truth": rows["malignant"].astype(int).to_numpy(),
    })
    key = ["reader", "case_id", "modality"]
    if ratings.duplicated(key).any():  # cannot happen for valid Observations; guards the file formats' rule
        raise InputError("two readings share a reader, case and modality", source=source)
    # Modalities in the order of the study (scheme, annotator, severity), readers as the table lists them.
    order = pd.DataFrame({"scheme": rows["scheme"].astype(str), "annotator": rows["annotator"].astype(str),
                          "severity": rows["severity_mm"].astype(float),
                          "reader": pd.Categorical(ratings["reader"],
                                                   categories=list(dict.fromkeys(ratings["reader"]))),
                          "case_id": ratings["case_id"]})
    ratings = ratings.iloc[order.sort_values(list(order.columns), kind="stable").index].reset_index(drop=True)
    mapping = numbered[["case_id", "exam", "breast", "label", "subgroup", "truth"]].reset_index(drop=True)
    return ExportData(ratings, mapping, sources)


def _number(value: float) -> str:
    """A score as text that Java's Double.valueOf and R's as.numeric read back exactly, no exponent."""
    return np.format_float_positional(float(value), unique=True, trim="-")


def _free_text(line: str) -> str:
    """A header line iMRMC will not mistake for data or counts."""
    return _IMRMC_TOKENS.sub(lambda m: m.group(0).replace(":", " -"), line.replace("\n", " "))


def _score_lines(data: ExportData) -> list[str]:
    by_source: dict[str, list[str]] = {}
    for reader, chosen in data.score_sources.items():
        by_source.setdefault(chosen, []).append(reader)
    return [f"score of {', '.join(readers)}: {SCORE_DESCRIPTIONS[chosen]}" for chosen, readers in by_source.items()]


def imrmc_text(data: ExportData, *, title: str, mapping_name: str) -> str:
    """The iMRMC input file: free-text header, N0/N1/NR/NM, ``BEGIN DATA:``, truth rows, readings."""
    ratings, cases = data.ratings, data.cases
    header = [
        title,
        "Written by perceptiongap (reader-study statistics).",
        "modalityID: scheme-severity, the severity being the wavelength 1/D0 in mm of the Gaussian low-pass "
        "cut-off (0mm = unperturbed); ROI schemes also name the annotator",
        *_score_lines(data),
        f"caseID: breasts numbered 1..{len(cases)}; {mapping_name} gives exam and breast of each; "
        "truth 1 = malignant, 0 = benign or not biopsied",
    ]
    lines = [_free_text(line) for line in header]
    lines += [
        f"N0:{int((cases['truth'] == 0).sum())}",
        f"N1:{int((cases['truth'] == 1).sum())}",
        f"NR:{len(data.readers)}",
        f"NM:{len(data.modalities)}",
        "BEGIN DATA:",
    ]
    lines += [f"truth,{case_id},truth,{truth}" for case_id, truth in zip(cases["case_id"], cases["truth"])]
    lines += [f"{reader},{case_id},{modality},{_number(score)}" for reader, case_id, modality, score in
              zip(ratings["reader"], ratings["case_id"], ratings["modality"], ratings["score"])]
    return "\n".join(lines) + "\n"


def sparse_combinations(data: ExportData, minimum: int = 3) -> list[tuple[str, str, int, int]]:
    """(reader, modality, non-diseased, diseased) where either count is below ``minimum`` (iMRMC skips them)."""
    counts = data.ratings.groupby(["reader", "modality"], sort=False)["truth"].agg(["size", "sum"])
    counts["negative"] = counts["size"] - counts["sum"]
    few = counts[(counts["negative"] < minimum) | (counts["sum"] < minimum)]
    return [(r, m, int(row["negative"]), int(row["sum"])) for (r, m), row in few.iterrows()]


def _crossing_gap(data: ExportData) -> str | None:
    """A reading that a crossed design would need and the data lack, described; None if crossed."""
    ratings = data.ratings
    grid = pd.MultiIndex.from_product([data.readers, data.modalities, data.cases["case_id"]])
    present = pd.MultiIndex.from_frame(ratings[["reader", "modality", "case_id"]])
    missing = grid.difference(present)
    if missing.empty:
        return None
    reader, modality, case_id = missing[0]
    case = data.cases.set_index("case_id").loc[case_id]
    return (f"reader {reader!r} has no rating of case {case_id} (exam {case['exam']!r} breast {case['breast']!r}) "
            f"in modality {modality!r}, and {len(missing) - 1} more readings are missing")


def rjafroc_sheets(data: ExportData) -> dict[str, pd.DataFrame]:
    """The ``Truth``, ``NL`` and ``LL`` sheets of a crossed ROC dataset; a sparse design is refused."""
    gap = _crossing_gap(data)
    if gap is not None:
        raise InputError(
            f"RJafroc's ROC format needs a crossed design, every reader rating every case in every modality: {gap}. "
            "The paper's design (each reader sees each exam at one severity) is not crossed; export it with "
            "`perceptiongap export imrmc`, or choose observers who read everything (e.g. --observer-group of "
            "networks)", source="observations")
    cases, ratings = data.cases, data.ratings
    diseased = cases["truth"].to_numpy() == 1
    truth = pd.DataFrame({
        "CaseID": cases["case_id"].astype(int),
        "LesionID": diseased.astype(int),
        "Weight": diseased.astype(float),
        "ReaderID": ", ".join(data.readers),
        "ModalityID": ", ".join(data.modalities),
        "Paradigm": [None] * len(cases),
    })
    truth.loc[0, "Paradigm"] = "ROC"
    truth.loc[1, "Paradigm"] = "crossed"
    normal = ratings[ratings["truth"] == 0]
    abnormal = ratings[ratings["truth"] == 1]
    nl = pd.DataFrame({"ReaderID": normal["reader"], "ModalityID": normal["modality"],
                       "CaseID": normal["case_id"].astype(int), "FP_Rating": normal["score"]})
    ll = pd.DataFrame({"ReaderID": abnormal["reader"], "ModalityID": abnormal["modality"],
                       "CaseID": abnormal["case_id"].astype(int), "LesionID": 1, "TP_Rating": abnormal["score"]})
    for name, sheet in (("NL", nl), ("LL", ll)):
        if len(sheet) + 1 > _EXCEL_MAX_ROWS:
            raise InputError(f"the {name} sheet would have {len(sheet)} rows, more than Excel allows; export fewer "
                             "observer groups or schemes", source="observations")
    return {"Truth": truth, "NL": nl.reset_index(drop=True), "LL": ll.reset_index(drop=True)}


@dataclass(frozen=True)
class ExportSummary:
    """What an export wrote: paths, counts, and reader x modality combinations iMRMC will skip."""

    path: Path
    mapping: Path
    n_readings: int
    n_cases: int
    readers: list[str]
    modalities: list[str]
    score_sources: dict[str, str]
    skipped_by_imrmc: list[tuple[str, str, int, int]] = field(default_factory=list)


def _write_mapping(data: ExportData, path: Path) -> None:
    with atomic_path(path) as tmp:
        data.cases.to_csv(tmp, index=False)


def write_imrmc(observations: pd.DataFrame, cases: pd.DataFrame, out: str | Path, *, score: str = "auto",
                title: str | None = None, source: str = "observations") -> ExportSummary:
    """Write ``out`` (iMRMC input) and its case mapping ``<stem>.cases.csv``, each atomically."""
    out = Path(out)
    if out.suffix.lower() not in (".imrmc", ".csv"):
        raise InputError("iMRMC opens .imrmc (or .csv) input files only; name the file *.imrmc", source=out)
    data = export_data(observations, cases, score=score, source=source)
    mapping = mapping_path(out)
    text = imrmc_text(data, title=title or f"perceptiongap study {out.stem}", mapping_name=mapping.name)
    _write_mapping(data, mapping)
    with atomic_path(out) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return ExportSummary(out, mapping, len(data.ratings), len(data.cases), data.readers, data.modalities,
                         data.score_sources, sparse_combinations(data))


def write_rjafroc(observations: pd.DataFrame, cases: pd.DataFrame, out: str | Path, *, score: str = "auto",
                  source: str = "observations") -> ExportSummary:
    """Write ``out`` (RJafroc Excel workbook, crossed ROC) and its case mapping, each atomically."""
    out = Path(out)
    if out.suffix.lower() != ".xlsx":
        raise InputError("RJafroc reads .xlsx workbooks only; name the file *.xlsx", source=out)
    data = export_data(observations, cases, score=score, source=source)
    sheets = rjafroc_sheets(data)
    mapping = mapping_path(out)
    _write_mapping(data, mapping)
    with atomic_path(out) as tmp:
        with pd.ExcelWriter(tmp, engine="openpyxl") as writer:
            for name, sheet in sheets.items():
                sheet.to_excel(writer, sheet_name=name, index=False)
    return ExportSummary(out, mapping, len(data.ratings), len(data.cases), data.readers, data.modalities,
                         data.score_sources)
