"""`plan --from` a results folder fitted with the label_specific model: the simulated studies' parameters
(gamma[s, g, l], so delta) come from that posterior, and criterion (c) is judged by fitting label_specific."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from perceptiongap.analysis.ppc import PPC_CASE_DRAWS_GROUP
from perceptiongap.study import write_table
from tests.cli.helpers import run_cli
from tests.model.simulate import SUBGROUPS, simulate_study

pytestmark = pytest.mark.slow

SEVERITIES = (0.0, 1.0, 4.0)


@pytest.fixture(scope="module")
def label_specific_results(tmp_path_factory):
    """`perceptiongap fit --model label_specific` on a study whose soft-tissue malignant breasts lose 3 logits
    more than the others at 4 mm (1.5 at 1 mm): delta of soft tissue -1.5, -3; microcalcifications none."""
    from perceptiongap.cli import main

    folder = tmp_path_factory.mktemp("label_specific")
    gamma = np.zeros((3, 3))
    gamma[1:, :2] = [[-0.5, -0.5], [-1.0, -1.0]]
    shift = np.zeros((3, 3))
    shift[1:, 1] = [-1.5, -3.0]
    observations, cases, _ = simulate_study(seed=8, n_exams=120, severity_mm=SEVERITIES, gamma=gamma,
                                            malignant_shift=shift, separation=2.0, n_readers=8)
    write_table(observations, folder / "observations.csv")
    write_table(cases, folder / "cases.csv")
    results = folder / "results"
    try:
        main([str(a) for a in ["fit", folder / "observations.csv", folder / "cases.csv", "--out", results,
                               "--inference", "stan-advi", "--advi-seeds", "1", "--model", "label_specific",
                               "--no-merged"]])
    except SystemExit as exit_:
        assert not exit_.code
    return results


def test_the_source_takes_the_posteriors_label_specific_effects(label_specific_results):
    import arviz as az

    from perceptiongap.plan.effects import effects_from_posterior
    from perceptiongap.results.plan_stage import _posterior_file

    path = _posterior_file(label_specific_results, "readers", None, "label_specific")
    assert path.relative_to(label_specific_results).parts[:2] == ("posteriors", "label_specific")
    posterior = az.from_netcdf(path)
    source = effects_from_posterior(posterior, source=str(path), model="label_specific")
    assert source.subgroups == SUBGROUPS and source.severity_mm == SEVERITIES
    # Read independently: gamma_label (chain, draw, severity, subgroup, label), labels malignant first; a
    # compact posterior (the default) keeps mu at some draws only, and the source takes those draws.
    stored = posterior.posterior["gamma_label"].transpose("chain", "draw", "severity", "subgroup", "label")
    stored = stored.sel(label=["malignant", "non_malignant"]).values.reshape(-1, 3, 3, 2)
    if "mu" not in posterior.posterior:
        stored = stored[np.asarray(getattr(posterior, PPC_CASE_DRAWS_GROUP)["ppc_sample"].values, dtype=int)]
    np.testing.assert_allclose(source.gamma_label, stored, rtol=1e-6)
    assert np.all(source.b == 0.0)  # the label biases are carried by each class's mean bias
    delta = source.gamma_label[..., 0] - source.gamma_label[..., 1]  # (D, S, G)
    assert delta[:, 2, 1].mean() < -1.0  # soft tissue at 4 mm: truth -3
    assert abs(delta[:, 2, 0].mean()) < abs(delta[:, 2, 1].mean())  # microcalcifications: truth 0
    # Malignant soft-tissue breasts start 2 logits above the others (separation): their class mean says so.
    assert source.mu_mean[:, 1, 0].mean() > source.mu_mean[:, 1, 1].mean() + 0.5


def test_plan_from_a_label_specific_folder_judges_the_delta_criterion(label_specific_results, tmp_path, capsys):
    out = tmp_path / "plan"
    code, _, err = run_cli(["plan", "--from", label_specific_results, "--observer-group", "readers", "--model",
                            "label_specific", "--out", out, "--readers", "8", "--exams", "240", "--designs",
                            "release", "--reps", "6", "--seed", "3"], capsys)
    assert code == 0, err
    power = pd.read_csv(out / "power.csv")
    effect = power[(power.criterion == "separability_effect") & (power.severity_mm == 4.0)].set_index("subgroup")
    assert set(power["criterion"]) == {"confidence_drop", "separability_drop", "separability_effect"}
    # delta of soft tissue at 4 mm is about -3: the fitted label_specific model sees it in most studies.
    assert effect.loc["soft_tissue_lesions", "power"] >= 0.5, effect
    assert effect.loc["soft_tissue_lesions", "power"] > effect.loc["microcalcifications", "power"], effect


def test_a_folder_without_a_label_specific_posterior_is_refused(tmp_path, capsys):
    from tests.plan.helpers import fitted_posterior

    results = tmp_path / "results"
    path = results / "posteriors" / "release" / "nuts" / "radiologists" / "seed0.nc"
    path.parent.mkdir(parents=True)
    fitted_posterior().to_netcdf(path)
    code, _, err = run_cli(["plan", "--from", results, "--model", "label_specific", "--out", tmp_path / "p"], capsys)
    assert code == 2 and "no label_specific posterior of observer group 'radiologists'" in err
    # A release posterior filed as label_specific lacks its parameters: refused naming the file.
    moved = results / "posteriors" / "label_specific" / "nuts" / "radiologists" / "seed0.nc"
    moved.parent.mkdir(parents=True)
    path.rename(moved)
    code, _, err = run_cli(["plan", "--from", results, "--model", "label_specific", "--out", tmp_path / "q"], capsys)
    assert code == 2 and "not a label_specific posterior" in err and str(moved) in err
