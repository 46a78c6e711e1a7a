"""What a results folder keeps of a fit: by default no per-case draws, their posterior predictive mean instead; the
analyses read both forms alike (to float32 rounding), and `--keep-all-draws` keeps every draw."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from perceptiongap.analysis import posterior_predictive, predictive_confidence
from perceptiongap.model import build_model_data, fit_stan_advi, load_posterior, save_posterior
from perceptiongap.model.stan_advi import StanADVISettings
from perceptiongap.results.compact import compact_posterior

from ..cli.helpers import run_cli
from ..model.simulate import SUBGROUPS, simulate_study


@pytest.fixture(scope="module")
def fitted_posterior():
    observations, cases, _ = simulate_study(seed=8, n_exams=30)
    data = build_model_data(observations, cases, "networks", subgroup_order=SUBGROUPS)
    return fit_stan_advi(data, seed=2, settings=StanADVISettings(max_iterations=300, output_samples=600))


def test_compact_posterior_drops_the_case_draws_and_keeps_their_predictive_mean(fitted_posterior, tmp_path):
    full, compact = tmp_path / "full.nc", tmp_path / "compact.nc"
    save_posterior(fitted_posterior, full)
    save_posterior(compact_posterior(fitted_posterior), compact)
    back = load_posterior(compact)
    assert "mu" not in back.posterior and {"b", "delta", "gamma", "nu"} <= set(back.posterior.data_vars)
    assert back.posterior.attrs["inference"] == "stan-advi" and back.posterior.attrs["draws_kept"] == "compact"
    # The draws the analyses read are the fit's, unchanged.
    np.testing.assert_array_equal(back.posterior["gamma"].values, fitted_posterior.posterior["gamma"].values)
    # The stored mean is the predictive of every draw, to float32 rounding (computed in float32 either way).
    expected = posterior_predictive(fitted_posterior)
    stored = posterior_predictive(back)
    assert stored.dims == expected.dims == ("observer", "severity", "case")
    np.testing.assert_allclose(stored.values, expected.values, rtol=0, atol=1e-6)
    assert list(stored["exam"].values) == list(expected["exam"].values)
    # The per-case draws are most of a fit's numbers: 30 exams x 2 breasts of 600 draws here, of which the
    # posterior predictive checks' 200 draws are kept.
    assert compact.stat().st_size < full.stat().st_size
    assert back.ppc_case_draws["mu"].shape == (200, 60)
    pd.testing.assert_frame_equal(predictive_confidence(back), predictive_confidence(fitted_posterior))


def test_a_compact_posterior_gives_the_posterior_predictive_checks_of_every_draw(fitted_posterior):
    from perceptiongap.analysis.ppc import posterior_predictive_check

    checks = posterior_predictive_check(compact_posterior(fitted_posterior), SUBGROUPS, seed=3)
    pd.testing.assert_frame_equal(checks, posterior_predictive_check(fitted_posterior, SUBGROUPS, seed=3))


@pytest.mark.slow
def test_analyse_gives_the_same_tables_from_compact_and_complete_posteriors(tmp_path, capsys):
    from perceptiongap.study import write_table

    observations, cases, _ = simulate_study(seed=5, n_exams=30)
    write_table(observations, tmp_path / "observations.csv")
    write_table(cases, tmp_path / "cases.csv")
    tables = {}
    for name, extra in (("compact", []), ("complete", ["--keep-all-draws"])):
        out = tmp_path / name
        code, _, err = run_cli(["fit", tmp_path / "observations.csv", tmp_path / "cases.csv", "--out", out,
                                "--inference", "stan-advi", "--advi-seeds", "1", "--no-merged", *extra],
                               _Capture())
        assert code == 0, err
        code, _, err = run_cli(["analyse", out, "--no-report"], _Capture())
        assert code == 0, err
        tables[name] = pd.read_csv(out / "tables" / "perturbation_study.csv")
        posterior = load_posterior(next((out / "posteriors").rglob("*.nc")))
        assert ("mu" in posterior.posterior) == (name == "complete")
    compact, complete = tables["compact"], tables["complete"]
    numeric = compact.select_dtypes("number").columns
    pd.testing.assert_frame_equal(compact.drop(columns=numeric), complete.drop(columns=numeric))
    np.testing.assert_allclose(compact[numeric].to_numpy(float), complete[numeric].to_numpy(float), atol=1e-5,
                               equal_nan=True)
    # A folder resumed with the other setting is refused, naming it.
    code, _, err = run_cli(["fit", tmp_path / "observations.csv", tmp_path / "cases.csv", "--out",
                            tmp_path / "compact", "--inference", "stan-advi", "--advi-seeds", "1", "--no-merged",
                            "--keep-all-draws", "--resume"], capsys)
    assert code == 2 and "--keep-all-draws True (the folder's: False)" in err, err


class _Capture:
    """Runs with the real streams (pytest's capsys is function-scoped)."""

    def readouterr(self):
        return type("Captured", (), {"out": "", "err": ""})()
