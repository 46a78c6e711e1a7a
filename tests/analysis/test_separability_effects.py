"""delta[s, g]: the label-specific model's change in class separability, by its formula and on simulated data."""

from __future__ import annotations

import numpy as np
import pytest

from perceptiongap.analysis.separability_effects import (
    separability_effect_draws,
    separability_effects,
    separability_effects_table,
)

from .analysis_helpers import make_posterior, random_posterior

ANALYSED = ("microcalcifications", "soft_tissue_lesions")


def test_delta_is_the_malignant_effect_minus_the_negatives_count_weighted_effect():
    rng = np.random.default_rng(0)
    base = random_posterior(rng, n_draws=30, n_cases=60)
    post = base.posterior
    gamma_label = rng.normal(size=(2, 30, post.sizes["severity"], post.sizes["subgroup"], 2))
    gamma_label[:, :, 0] = 0
    posterior = make_posterior(
        b=post["b"].values, mu=post["mu"].values, gamma=post["gamma"].values, nu=post["nu"].values,
        case_subgroup=base.constant_data["case_subgroup"].values, case_label=base.constant_data["case_label"].values,
        subgroups=tuple(post["subgroup"].values), severities=tuple(post["severity"].values),
        gamma_label=gamma_label, model="label_specific")
    names = list(post["subgroup"].values)
    subgroup = base.constant_data["case_subgroup"].values
    negative = base.constant_data["case_label"].values != "malignant"
    weights = np.array([np.sum(negative & (subgroup == name)) for name in names]) / negative.sum()
    flat = gamma_label.reshape(60, *gamma_label.shape[2:])
    expected = flat[..., 0] - (flat[..., 1] * weights).sum(axis=-1, keepdims=True)
    np.testing.assert_allclose(separability_effect_draws(posterior), expected, rtol=1e-12)

    table = separability_effects(posterior, ANALYSED).set_index(["subgroup", "severity_mm"])
    g = names.index("soft_tissue_lesions")
    row = table.loc[("soft_tissue_lesions", 4.0)]
    assert row["delta_mean"] == pytest.approx(expected[:, 3, g].mean())
    assert (row["delta_low"], row["delta_high"]) == pytest.approx(tuple(np.quantile(expected[:, 3, g], [0.05, 0.95])))
    assert row["p_delta_negative"] == pytest.approx(np.mean(expected[:, 3, g] < 0))
    assert np.isnan(table.loc[("soft_tissue_lesions", 0.0), "p_delta_negative"])


def test_a_posterior_without_label_specific_effects_has_no_rows():
    posterior = random_posterior(np.random.default_rng(1))
    assert separability_effects(posterior, ANALYSED).empty
    assert separability_effects_table([posterior], ANALYSED).empty


@pytest.mark.slow
def test_nuts_on_label_specific_recovers_the_simulated_delta(label_effect_fits):
    fits, truth, (_, cases) = label_effect_fits
    gamma_label = truth["gamma_label"]  # (S, G, 2) in the simulation's subgroup order
    negative = cases["label"].to_numpy() != "malignant"
    subgroups = ("microcalcifications", "soft_tissue_lesions", "nonbiopsied")
    weights = np.array([np.sum(negative & (cases["subgroup"].to_numpy() == name)) for name in subgroups])
    true_delta = gamma_label[..., 0] - (gamma_label[..., 1] * weights / weights.sum()).sum(axis=-1, keepdims=True)
    covered = []
    for group in ("networks", "readers"):
        table = separability_effects(fits[group]["label_specific"], ANALYSED)
        perturbed = table[table["severity_mm"] > 0]
        for row in perturbed.itertuples():
            truth_here = true_delta[[0.0, 0.5, 1.0, 4.0].index(row.severity_mm), subgroups.index(row.subgroup)]
            covered.append(row.delta_low <= truth_here <= row.delta_high)
        soft = table.set_index(["subgroup", "severity_mm"]).loc[("soft_tissue_lesions", 4.0)]
        assert soft["p_delta_negative"] > 0.95  # the simulated drop is found
    # 12 intervals at 90 %: 9 or more hold the truth with probability 0.97.
    assert sum(covered) >= 9
