"""Predictive confidence: posterior mean/sd of gamma and P(gamma > 0), on simulated posteriors."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from perceptiongap.analysis import predictive_confidence

from .analysis_helpers import make_posterior

SEVERITIES = (0.0, 0.5, 1.0, 4.0)
SUBGROUPS = ("microcalcifications", "soft_tissue_lesions", "nonbiopsied")


def _posterior(rng: np.random.Generator, n_chains: int = 4, n_draws: int = 1000):
    # gamma at 4 mm ~ N(-3, 0.5) for microcalcifications, N(0.5, 1) elsewhere; 0 at severity 0.
    gamma = rng.normal(0.5, 1.0, size=(n_chains, n_draws, len(SEVERITIES), len(SUBGROUPS)))
    gamma[:, :, 0, :] = 0.0
    gamma[:, :, 3, 0] = rng.normal(-3.0, 0.5, size=(n_chains, n_draws))
    n_cases = 6
    return make_posterior(
        b=rng.normal(size=(n_chains, n_draws, len(SUBGROUPS))), mu=rng.normal(size=(n_chains, n_draws, n_cases)),
        gamma=gamma, nu=rng.normal(size=(n_chains, n_draws, 2, len(SUBGROUPS))),
        case_subgroup=["nonbiopsied"] * n_cases, case_label=["nonbiopsied"] * n_cases,
        subgroups=SUBGROUPS, severities=SEVERITIES,
    ), gamma


def test_mean_sd_and_probability_over_all_chains_and_draws() -> None:
    posterior, gamma = _posterior(np.random.default_rng(0))
    table = predictive_confidence(posterior)
    assert list(table.columns) == [
        "subgroup", "severity_mm", "confidence_mean", "confidence_sd", "p_confidence_positive",
        "p_confidence_above_margin",
    ]
    assert list(table["subgroup"]) == [g for g in SUBGROUPS for _ in SEVERITIES]
    assert list(table["severity_mm"]) == list(SEVERITIES) * len(SUBGROUPS)
    flat = gamma.reshape(-1, len(SEVERITIES), len(SUBGROUPS))
    for row in table.itertuples():
        draws = flat[:, SEVERITIES.index(row.severity_mm), SUBGROUPS.index(row.subgroup)]
        assert row.confidence_mean == pytest.approx(draws.mean(), abs=1e-12)
        assert row.confidence_sd == pytest.approx(draws.std(ddof=0), abs=1e-12)
        if row.severity_mm > 0:  # the release's formula
            expected = 1 - stats.norm.cdf(0, draws.mean(), draws.std())
            assert row.p_confidence_positive == pytest.approx(expected, abs=1e-12)
            assert row.p_confidence_above_margin == np.count_nonzero(draws > -0.5) / draws.size
        else:
            assert np.isnan(row.p_confidence_above_margin)


def test_recovers_a_known_negative_effect() -> None:
    posterior, _ = _posterior(np.random.default_rng(1))
    table = predictive_confidence(posterior).set_index(["subgroup", "severity_mm"])
    row = table.loc[("microcalcifications", 4.0)]
    # 4000 draws of N(-3, 0.5): the mean is within 4 standard errors, the sd within 5%.
    assert row["confidence_mean"] == pytest.approx(-3.0, abs=4 * 0.5 / np.sqrt(4000))
    assert row["confidence_sd"] == pytest.approx(0.5, rel=0.05)
    assert row["p_confidence_positive"] == pytest.approx(stats.norm.sf(0, -3.0, 0.5), rel=0.2)  # ~1e-9
    assert table.loc[("soft_tissue_lesions", 4.0), "p_confidence_positive"] == pytest.approx(
        stats.norm.sf(0, 0.5, 1.0), abs=0.02)


def test_severity_zero_has_zero_effect_and_no_probability() -> None:
    posterior, _ = _posterior(np.random.default_rng(2), n_draws=20)
    unperturbed = predictive_confidence(posterior).query("severity_mm == 0")
    assert (unperturbed["confidence_mean"] == 0).all() and (unperturbed["confidence_sd"] == 0).all()
    assert unperturbed["p_confidence_positive"].isna().all()


def test_pooled_subgroups_as_the_release_script() -> None:
    posterior, gamma = _posterior(np.random.default_rng(3), n_draws=200)
    table = predictive_confidence(posterior, pooled=("microcalcifications", "soft_tissue_lesions"))
    assert list(table["subgroup"].unique()) == ["microcalcifications+soft_tissue_lesions"]
    # The release: gamma (severity, subgroup, draw)[:, :2, :] reshaped to (severity, 2 * draws).
    release_layout = np.moveaxis(gamma.reshape(-1, len(SEVERITIES), len(SUBGROUPS)), 0, -1)
    pooled = release_layout[:, :2, :].reshape(len(SEVERITIES), -1)
    np.testing.assert_allclose(table["confidence_mean"], pooled.mean(axis=1), rtol=0, atol=1e-12)
    np.testing.assert_allclose(table["confidence_sd"], pooled.std(axis=1), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(table["p_confidence_above_margin"][1:], (pooled[1:] > -0.5).mean(axis=1))
    expected = 1 - stats.norm.cdf(0, pooled.mean(axis=1)[1:], pooled.std(axis=1)[1:])
    np.testing.assert_allclose(table["p_confidence_positive"].iloc[1:], expected, rtol=1e-9, atol=1e-15)
