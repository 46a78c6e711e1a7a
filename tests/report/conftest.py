"""A small simulated results folder (fits, tables, run.json), built once, and its report rendered once.

The study: radiologists (sparse, human), gmic (dense network) and gmic_filtered (a second dense
network) simulated from the model, plus ROI-scheme predictions of gmic on some exams so that the
annotation study exists. Fitted with stan-advi (2 seeds, separate and merged subgroups) and with
short NUTS chains (radiologists and gmic, separate subgroups).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from perceptiongap.results import FitJob
from perceptiongap.study import read_study

from ..model.simulate import simulate_study

GROUP_NAMES = {"readers": "radiologists", "networks": "gmic"}
ANNOTATED_EXAMS = 16
ANNOTATORS = ("annotator1", "annotator2")
NUTS_GROUPS = ("radiologists", "gmic")


def simulated_paper_study(seed: int = 3, n_exams: int = 40) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Observations + Cases with the paper's group names and an annotation study for gmic."""
    observations, cases, _ = simulate_study(seed, n_exams=n_exams)
    observations = observations.copy()
    observations["observer_group"] = observations["observer_group"].map(GROUP_NAMES)
    observations["observer"] = observations["observer"].str.replace("readers", "reader").str.replace(
        "networks", "gmic_seed")
    rng = np.random.default_rng(seed)

    gmic = observations[observations["observer_group"] == "gmic"]
    filtered = gmic.copy()
    filtered["observer_group"] = "gmic_filtered"
    filtered["observer"] = filtered["observer"].str.replace("gmic_seed", "gmic_filtered_seed")
    filtered["prediction"] = np.clip(filtered["prediction"] + rng.normal(0, 0.05, len(filtered)), 0.0, 1.0)

    # ROI schemes: the interior keeps most of the unperturbed prediction, the exterior little of it.
    exams = sorted(gmic["exam"].unique())[:ANNOTATED_EXAMS]
    entire = gmic[gmic["exam"].isin(exams)]
    unperturbed = entire[entire["severity_mm"] == 0].set_index(["observer", "exam", "breast"])["prediction"]
    baseline = unperturbed.reindex(pd.MultiIndex.from_frame(entire[["observer", "exam", "breast"]])).to_numpy()
    roi = []
    for scheme, kept in (("roi_interior", 0.7), ("roi_exterior", 0.2)):
        for annotator in ANNOTATORS:
            rows = entire.copy()
            rows["scheme"], rows["annotator"] = scheme, annotator
            noise = rng.normal(0, 0.02, len(rows))
            rows["prediction"] = np.clip(kept * baseline + (1 - kept) * rows["prediction"] + noise, 0.0, 1.0)
            roi.append(rows)
    return pd.concat([observations, filtered, *roi], ignore_index=True), cases


def synthetic_mammogram_folder(root: Path) -> Path:
    """A stand-in for the shared folder: one small 16-bit PNG view with 12-bit values (not a real image)."""
    from PIL import Image

    folder = root / "mammograms" / "gmic-sample-exam0"
    folder.mkdir(parents=True)
    rows, cols = np.mgrid[0:300, 0:160]
    breast = ((rows - 150) / 150.0) ** 2 + (cols / 150.0) ** 2 < 1
    texture = np.random.default_rng(0).normal(0, 300, breast.shape)
    pixels = np.where(breast, 2500 + texture, 0).clip(0, 4095).astype(np.uint16)
    Image.fromarray(pixels).save(folder / "0_L-CC.png")
    return root


def fit_short_nuts(jobs, model_data, folder: Path) -> None:
    """NUTS fits with short chains (the report only reads them), saved where `fit_study` would put them."""
    from perceptiongap.model import NUTSSettings, fit_nuts, save_posterior

    settings = NUTSSettings(num_warmup=100, num_samples=100, num_chains=2)
    for job in jobs:
        posterior = fit_nuts(model_data[job.observer_group, job.merged], job.seed, settings)
        posterior.posterior.attrs.update(fit_seconds=1.0, merged=int(job.merged))
        save_posterior(posterior, job.path(folder))


@pytest.fixture(scope="session")
def simulated_results(tmp_path_factory) -> Path:
    """A results folder as `perceptiongap fit` + `analyse` leave it (no figures, no report).

    Fitted by `perceptiongap.fit` with stan-advi, then NUTS with short chains for two groups
    (separate subgroups only) added to its plan, as a resumed fit would, and analysed.
    """
    from dataclasses import replace

    import perceptiongap
    from perceptiongap.analysis.subgroups import choose_subgroups
    from perceptiongap.results import ResultsFolder, read_run_record
    from perceptiongap.results.fitting import model_data_for
    from perceptiongap.results.record import write_run_record
    from perceptiongap.study import write_table

    root = tmp_path_factory.mktemp("report")
    folder = ResultsFolder(root / "results")
    observations, cases = simulated_paper_study()
    write_table(observations, root / "observations.parquet")
    write_table(cases, root / "cases.parquet")
    perceptiongap.fit(root / "observations.parquet", root / "cases.parquet", out=folder.root, inference="stan-advi",
                      advi_seeds=2)
    # NUTS (compiled anew for every fit) only where the report needs it: two groups, separate subgroups.
    record, _, _ = read_run_record(folder)
    nuts = [FitJob(group, "nuts", 0) for group in NUTS_GROUPS]
    study_observations, study_cases = read_study(folder.observations_path, folder.cases_path)
    fit_short_nuts(nuts, model_data_for(study_observations, study_cases, nuts, choose_subgroups(study_cases)),
                   folder.root)
    write_run_record(folder, replace(record, inference=["stan-advi", "nuts"], run_seconds=12.5,
                                     fits=[*record.fits, *(job.relative_path for job in nuts)],
                                     outputs=[*record.outputs, *(job.relative_path for job in nuts)]))
    perceptiongap.analyse(folder.root, report=False)
    return folder.root


@pytest.fixture(scope="session")
def results_copy(simulated_results, tmp_path_factory):
    """A function that copies the simulated results folder (tests that write get their own copy)."""

    def copy(name: str) -> Path:
        target = tmp_path_factory.mktemp(name) / "results"
        shutil.copytree(simulated_results, target)
        return target

    return copy


@pytest.fixture(scope="session")
def shared_stand_in(tmp_path_factory) -> Path:
    return synthetic_mammogram_folder(tmp_path_factory.mktemp("shared"))


@pytest.fixture(scope="session")
def reported(results_copy, shared_stand_in):
    """`perceptiongap report` run once on a copy: (folder, posterior mtimes before, exit code)."""
    from perceptiongap.cli import main

    folder = results_copy("reported")
    before = {p: p.stat().st_mtime_ns for p in (folder / "posteriors").rglob("*.nc")}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PERCEPTIONGAP_SHARED", str(shared_stand_in))
        try:
            main(["report", str(folder)])
            code = 0
        except SystemExit as exit_:
            code = exit_.code or 0
    return folder, before, code
