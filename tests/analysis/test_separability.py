"""Class separability, its drop p-values and summary, against scipy loops and a known-effect posterior."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from scipy import stats

from perceptiongap.analysis import (
    class_separability,
    posterior_predictive,
    predictive_confidence,
    separability_drop_pvalues,
    separability_drop_upper,
    separability_summary,
)

from .analysis_helpers import make_posterior, reference_drop_pvalue, reference_ks

SEVERITIES = (0.0, 0.5, 1.0, 4.0)


def _random_predictions(rng: np.random.Generator, n_observers: int = 6, n_cases: int = 80) -> xr.DataArray:
    values = np.round(rng.random((n_observers, len(SEVERITIES), n_cases)), 2)  # ties
    return xr.DataArray(values, dims=("observer", "severity", "case"), coords={"severity": list(SEVERITIES)})


def test_positives_are_malignant_in_the_subgroup_negatives_all_non_malignant() -> None:
    rng = np.random.default_rng(0)
    predictions = _random_predictions(rng)
    label = rng.choice(["malignant", "benign", "nonbiopsied"], size=80)
    subgroup = rng.choice(["microcalcifications", "soft_tissue_lesions", "mixed", "nonbiopsied"], size=80)
    ks = class_separability(predictions, label, subgroup, "soft_tissue_lesions")
    assert ks.dims == ("observer", "severity")
    # Written out by hand, as the release selects breasts.
    positive = np.array([lab == "malignant" and sub == "soft_tissue_lesions" for lab, sub in zip(label, subgroup)])
    negative = np.array([lab in ("benign", "nonbiopsied") for lab in label])
    for r in range(6):
        for s in range(len(SEVERITIES)):
            assert ks.values[r, s] == reference_ks(predictions.values[r, s], positive, negative)


def test_no_positive_breast_gives_nan() -> None:
    predictions = _random_predictions(np.random.default_rng(1), n_cases=4)
    ks = class_separability(predictions, ["malignant", "benign", "benign", "nonbiopsied"],
                            ["mixed", "mixed", "soft_tissue_lesions", "nonbiopsied"], "soft_tissue_lesions")
    assert np.isnan(ks.values).all()


def test_drop_pvalues_and_summary_follow_the_release_with_nans() -> None:
    rng = np.random.default_rng(2)
    ks = xr.DataArray(rng.random((7, len(SEVERITIES))), dims=("observer", "severity"),
                      coords={"severity": list(SEVERITIES)})
    ks.values[1, 0] = ks.values[3, 2] = ks.values[4, 2] = np.nan
    summary = separability_summary(ks)
    assert list(summary.columns) == ["severity_mm", "separability_mean", "separability_sd", "p_separability_drop",
                                     "separability_drop_upper"]
    assert list(summary["severity_mm"]) == list(SEVERITIES)
    np.testing.assert_allclose(summary["separability_mean"], np.nanmean(ks.values, axis=0), rtol=0, atol=1e-15)
    np.testing.assert_allclose(summary["separability_sd"], np.nanstd(ks.values, axis=0, ddof=0), rtol=0, atol=1e-15)
    expected = [np.nan] + [reference_drop_pvalue(ks.values[:, 0], ks.values[:, s]) for s in (1, 2, 3)]
    np.testing.assert_array_equal(summary["p_separability_drop"], expected)
    np.testing.assert_array_equal(separability_drop_pvalues(ks).values, expected)


def test_drop_upper_bound_is_the_one_sided_t_bound_of_the_paired_drops() -> None:
    """Against scipy's one-sample t test: the upper end of its one-sided 95% interval for the mean drop."""
    rng = np.random.default_rng(4)
    ks = xr.DataArray(rng.random((6, len(SEVERITIES))), dims=("observer", "severity"),
                      coords={"severity": list(SEVERITIES)})
    ks.values[2, 1] = np.nan  # that observer's pair at severity 1 is left out
    bounds = separability_drop_upper(ks).values
    assert np.isnan(bounds[0])
    for s in (1, 2, 3):
        drops = ks.values[:, 0] - ks.values[:, s]
        drops = drops[~np.isnan(drops)]
        expected = stats.ttest_1samp(drops, 0.0, alternative="less").confidence_interval(0.95).high
        assert bounds[s] == pytest.approx(expected, rel=1e-12)


def test_drop_upper_bound_needs_two_observers_and_grows_with_their_spread() -> None:
    one = xr.DataArray([[0.8, 0.7]], dims=("observer", "severity"), coords={"severity": [0.0, 4.0]})
    assert np.isnan(separability_drop_upper(one).values[1])
    tight = xr.DataArray([[0.8, 0.79], [0.8, 0.81]], dims=("observer", "severity"), coords={"severity": [0.0, 4.0]})
    loose = xr.DataArray([[0.8, 0.6], [0.8, 1.0]], dims=("observer", "severity"), coords={"severity": [0.0, 4.0]})
    assert separability_drop_upper(tight).values[1] < 0.1 < separability_drop_upper(loose).values[1]


def test_several_sample_dims_are_pooled() -> None:
    rng = np.random.default_rng(3)
    ks = xr.DataArray(rng.random((3, 4, len(SEVERITIES))), dims=("annotator", "observer", "severity"),
                      coords={"severity": list(SEVERITIES)})
    pooled = ks.values.reshape(12, len(SEVERITIES))
    summary = separability_summary(ks)
    np.testing.assert_allclose(summary["separability_mean"], pooled.mean(axis=0), atol=1e-15)
    assert summary["p_separability_drop"].iloc[3] == reference_drop_pvalue(pooled[:, 0], pooled[:, 3])


def test_without_unperturbed_severity_is_refused() -> None:
    ks = xr.DataArray(np.ones((2, 2)), dims=("observer", "severity"), coords={"severity": [0.5, 1.0]})
    with pytest.raises(ValueError, match="severity 0"):
        separability_drop_pvalues(ks)


def test_known_effect_lowers_confidence_and_separability() -> None:
    # Microcalcification cancers (logits 1..3) are moved by gamma = -4 at 4 mm onto the negatives'
    # logits (-3..-1); soft tissue cancers are untouched. Draws vary little (sd 0.01).
    rng = np.random.default_rng(4)
    subgroups = ("microcalcifications", "soft_tissue_lesions", "nonbiopsied")
    n_chains, n_draws, n_observers = 2, 100, 5
    logit = np.concatenate([np.linspace(1, 3, 10), np.linspace(1, 3, 10), np.linspace(-3, -1, 20)])
    case_subgroup = ["microcalcifications"] * 10 + ["soft_tissue_lesions"] * 10 + ["nonbiopsied"] * 20
    case_label = ["malignant"] * 20 + ["nonbiopsied"] * 20
    gamma = np.zeros((n_chains, n_draws, len(SEVERITIES), 3))
    gamma[:, :, 3, 0] = -4.0
    noise = 0.01
    posterior = make_posterior(
        b=rng.normal(0, noise, (n_chains, n_draws, 3)),
        mu=logit + rng.normal(0, noise, (n_chains, n_draws, 40)),
        gamma=gamma + rng.normal(0, noise, gamma.shape) * (np.arange(len(SEVERITIES)) > 0)[:, None],
        nu=rng.normal(0, noise, (n_chains, n_draws, n_observers, 3)),
        case_subgroup=case_subgroup, case_label=case_label, subgroups=subgroups, severities=SEVERITIES,
    )
    confidence = predictive_confidence(posterior).set_index(["subgroup", "severity_mm"])
    assert confidence.loc[("microcalcifications", 4.0), "p_confidence_positive"] < 1e-10
    assert confidence.loc[("soft_tissue_lesions", 4.0), "p_confidence_positive"] > 0.05

    predictive = posterior_predictive(posterior)
    cases = posterior.constant_data
    micro = class_separability(predictive, cases["case_label"], cases["case_subgroup"], "microcalcifications")
    soft = class_separability(predictive, cases["case_label"], cases["case_subgroup"], "soft_tissue_lesions")
    assert (micro.values[:, :3] == 1.0).all() and (soft.values == 1.0).all()
    assert (micro.values[:, 3] <= 0.3).all()
    # Five observers, complete separation of ks0 above ks_4: exact one-sided p = 1 / C(10, 5).
    p = separability_drop_pvalues(micro).values
    assert p[3] == pytest.approx(1 / 252, rel=1e-12)
    assert (p[1:3] == 1.0).all() and (separability_drop_pvalues(soft).values[1:] == 1.0).all()
    assert stats.ks_2samp(micro.values[:, 0], micro.values[:, 3], alternative="less").pvalue == pytest.approx(p[3])
