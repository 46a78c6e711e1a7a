"""A NUTS warning names the severity effect that breaches its limit, and says whether the analysis reads it."""

from __future__ import annotations

import arviz as az
import numpy as np

from perceptiongap.model.diagnostics import warnings_for, worst_severity_effect

SEVERITIES = [0.0, 0.5, 1.0, 4.0]
SUBGROUPS = ["microcalcifications", "occult"]


def chains_that_disagree_at(severity_index: int, subgroup_index: int, shift: float = 3.0) -> az.InferenceData:
    """Two well-mixed chains of gamma, except one cell where the second chain sits ``shift`` higher."""
    rng = np.random.default_rng(4)
    gamma = rng.normal(size=(2, 400, len(SEVERITIES), len(SUBGROUPS)))
    gamma[:, :, 0, :] = 0.0  # severity 0 is fixed
    gamma[1, :, severity_index, subgroup_index] += shift
    posterior = az.from_dict(posterior={"gamma": gamma}, sample_stats={"diverging": np.zeros((2, 400), bool)},
                             coords={"severity": SEVERITIES, "subgroup": SUBGROUPS},
                             dims={"gamma": ["severity", "subgroup"]})
    posterior.posterior.attrs.update(inference="nuts", observer_group="dmv", seed=0, merged=1)
    return posterior


def test_the_worst_r_hat_and_ess_are_found_at_the_cell_whose_chains_disagree():
    value, subgroup, severity = worst_severity_effect(chains_that_disagree_at(1, 1), "r_hat")
    assert (subgroup, severity) == ("occult", 0.5) and value > 1.5
    value, subgroup, severity = worst_severity_effect(chains_that_disagree_at(3, 0), "ess_bulk")
    assert (subgroup, severity) == ("microcalcifications", 4.0) and value < 50


def test_r_hat_warning_names_the_parameter_and_whether_it_enters_a_conclusion():
    posterior = chains_that_disagree_at(1, 1)
    found = warnings_for(posterior, analysed_subgroups=["microcalcifications"])
    r_hat = next(w for w in found if "R-hat" in w)
    assert r_hat.startswith("nuts fit of dmv (seed 0, merged subgroups): R-hat of the severity effects up to ")
    assert "gamma of occult at 0.5 mm, not an analysed subgroup: it enters no table, figure or conclusion" in r_hat
    found = warnings_for(chains_that_disagree_at(2, 0), analysed_subgroups=["microcalcifications"])
    assert any("gamma of microcalcifications at 1 mm, an analysed subgroup" in w for w in found)


def test_well_mixed_chains_give_no_warning():
    assert warnings_for(chains_that_disagree_at(1, 1, shift=0.0), analysed_subgroups=SUBGROUPS) == []
