"""The whole loop: design -> simulated readers answer through the API -> export -> `perceptiongap fit`.

The simulated readers call a breast malignant with probability sigmoid(+-1.5 + effect), +1.5 for a
malignant breast and -1.5 otherwise. Filtering lowers their confidence in microcalcifications
(effect -1.5 at 1 mm and -3 at 2 mm) and leaves soft tissue lesions alone (effect 0, the negative
control). The fitted severity effects must have those signs.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import arviz as az
import httpx
import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from perceptiongap.analysis import predictive_confidence
from perceptiongap.readers import create_study, db
from tests.readers.helpers import answer_for, start_server, write_inputs

TRUE_EFFECT = {  # (subgroup, severity_mm) -> logit shift
    ("microcalcifications", 1.0): -1.5, ("microcalcifications", 2.0): -3.0,
}


def _answer_all(server, study, rng) -> None:
    with sqlite3.connect(study / db.DB_NAME) as connection:
        truth = {row[0]: row[1:] for row in connection.execute("SELECT id, exam, severity_mm FROM readings")}
        cases = {(e, b): (label, subgroup) for e, b, label, subgroup in
                 connection.execute("SELECT exam, breast, label, subgroup FROM cases")}
    for reader in server.links:
        client = httpx.Client(base_url=server.base, timeout=30)
        client.get(f"/r/{server.token(reader)}")
        state = client.get("/api/reader/state").json()
        while not state["finished"]:
            reading = state["current"]["reading"]
            exam, severity = truth[reading]
            answers = {}
            for breast in ("L", "R"):
                label, subgroup = cases[exam, breast]
                logit = (1.5 if label == "malignant" else -1.5) + TRUE_EFFECT.get((subgroup, severity), 0.0)
                answers[breast] = answer_for(bool(rng.random() < expit(logit)), rng)
            assert client.post(f"/api/readings/{reading}/open", json={}).status_code == 200
            reply = client.post(f"/api/readings/{reading}/submit", json={
                "idempotency_key": f"k-{reading}", "active_seconds": float(rng.uniform(5, 90)), "answers": answers})
            assert reply.status_code == 200, reply.text
            state = reply.json()["state"]
        client.close()


@pytest.mark.slow
def test_design_read_export_fit_recovers_the_simulated_severity_effects(tmp_path):
    inputs = write_inputs(tmp_path / "inputs", n_exams=49, n_readers=6, shape=(48, 40))
    study = create_study(inputs["exams"], inputs["cases"], inputs["readers"], tmp_path / "study",
                         cutoffs_per_mm=[float("inf"), 1.0, 0.5], practice=1, seed=11).folder
    server = start_server(study)
    try:
        _answer_all(server, study, np.random.default_rng(2))
    finally:
        server.stop()

    export = tmp_path / "export"
    exported = subprocess.run([sys.executable, "-m", "perceptiongap", "study", "export", str(study), "--out",
                               str(export)], capture_output=True, text=True)
    assert exported.returncode == 0, exported.stderr
    observations = pd.read_csv(export / "observations.csv")
    assert len(observations) == 6 * 48 * 2  # the practice exam is not exported
    assert set(observations.columns) >= {"birads", "pom", "seconds", "reading_order"}
    assert observations["reading_order"].min() == 2  # position 1 is the practice exam

    results = tmp_path / "results"
    fitted = subprocess.run([sys.executable, "-m", "perceptiongap", "fit", str(export / "observations.csv"),
                             str(export / "cases.csv"), "--out", str(results), "--inference", "nuts",
                             "--no-merged"], capture_output=True, text=True)
    assert fitted.returncode == 0, fitted.stderr
    (posterior_file,) = (results / "posteriors" / "release" / "nuts").rglob("*.nc")
    table = predictive_confidence(az.from_netcdf(posterior_file)).set_index(["subgroup", "severity_mm"])
    for severity in (1.0, 2.0):
        row = table.loc[("microcalcifications", severity)]
        assert row["confidence_mean"] < 0 and row["p_confidence_positive"] < 0.05
    assert table.loc[("microcalcifications", 2.0), "confidence_mean"] < table.loc[("microcalcifications", 1.0),
                                                                                   "confidence_mean"]
    for severity in (1.0, 2.0):  # the negative control: no effect, and none found
        row = table.loc[("soft_tissue_lesions", severity)]
        assert abs(row["confidence_mean"]) < 2 * row["confidence_sd"]
