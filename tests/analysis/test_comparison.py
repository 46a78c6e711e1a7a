"""Model comparison: PSIS-LOO against the exact leave-one-out of a conjugate Gaussian model, and the
preferred model on simulated data with a label-specific effect."""

from __future__ import annotations

import arviz as az
import numpy as np
import pytest
from scipy import stats

from perceptiongap.analysis.comparison import model_comparison_table, preferred_model, preferred_models


def gaussian_fits(rng, y, noise=1.0, prior=1.0, draws=4000):
    """Posteriors of y_i ~ N(theta, noise^2), theta ~ N(0, prior^2) and of the nested theta = 0, with
    each observation's log-likelihood (one 'case' per observation), and the exact elpd_loo of each."""
    n = len(y)

    def posterior_of(values):
        variance = 1.0 / (len(values) / noise**2 + 1.0 / prior**2)
        return variance * values.sum() / noise**2, variance

    mean, variance = posterior_of(y)
    theta = rng.normal(mean, np.sqrt(variance), (2, draws // 2))
    free = az.from_dict(posterior={"theta": theta},
                        log_likelihood={"prediction": stats.norm.logpdf(y, theta[..., None], noise)})
    fixed = az.from_dict(posterior={"theta": np.zeros((2, draws // 2))},
                         log_likelihood={"prediction": np.broadcast_to(stats.norm.logpdf(y, 0.0, noise),
                                                                       (2, draws // 2, n)).copy()})
    exact_free = sum(stats.norm.logpdf(y[i], m, np.sqrt(noise**2 + v))
                     for i in range(n) for m, v in [posterior_of(np.delete(y, i))])
    exact_fixed = stats.norm.logpdf(y, 0.0, noise).sum()
    for idata, model in ((free, "free"), (fixed, "fixed")):
        idata.posterior.attrs.update(observer_group="g", inference="nuts", model=model, seed=0)
    return free, fixed, exact_free, exact_fixed


def test_psis_loo_matches_the_exact_leave_one_out_and_ranks_the_models():
    rng = np.random.default_rng(3)
    y = rng.normal(0.6, 1.0, 40)
    free, fixed, exact_free, exact_fixed = gaussian_fits(rng, y)
    table = model_comparison_table([fixed, free]).set_index("model")
    assert table.loc["free", "elpd_loo"] == pytest.approx(exact_free, abs=0.1)
    assert table.loc["fixed", "elpd_loo"] == pytest.approx(exact_fixed, abs=1e-9)
    assert list(table.index) == ["free", "fixed"]  # best first
    assert table.loc["free", "elpd_diff"] == 0
    assert table.loc["fixed", "elpd_diff"] == pytest.approx(exact_free - exact_fixed, abs=0.1)
    assert table.loc["fixed", "elpd_diff_se"] > 0
    assert table.loc["free", "max_pareto_k"] < 0.5  # (a model without parameters has no importance weights)


def test_when_the_data_agree_with_the_nested_model_it_is_not_beaten():
    """Negative control: y from theta = 0; the free model's extra parameter does not help."""
    rng = np.random.default_rng(4)
    y = rng.normal(0.0, 1.0, 40)
    free, fixed, exact_free, exact_fixed = gaussian_fits(rng, y)
    table = model_comparison_table([free, fixed]).set_index("model")
    loser = table["elpd_diff"].idxmax()
    assert table.loc[loser, "elpd_diff"] < 2 * table.loc[loser, "elpd_diff_se"] + 1  # within noise
    assert table.loc["free", "elpd_loo"] == pytest.approx(exact_free, abs=0.1)


def test_fits_without_a_pointwise_log_likelihood_are_left_out():
    rng = np.random.default_rng(5)
    free, _, _, _ = gaussian_fits(rng, rng.normal(size=10))
    bare = az.from_dict(posterior={"theta": rng.normal(size=(2, 10))})
    bare.posterior.attrs.update(observer_group="g", inference="stan-advi", model="free", seed=0)
    table = model_comparison_table([free, bare])
    assert list(table["inference"]) == ["nuts"]


@pytest.mark.slow
def test_on_data_with_a_label_specific_effect_both_criteria_prefer_label_specific(label_effect_fits):
    fits, _, _ = label_effect_fits
    table = model_comparison_table([p for group in fits.values() for p in group.values()])
    assert len(table) == 4
    summary = preferred_models(table).set_index("observer_group")
    for group in ("networks", "readers"):
        assert summary.loc[group, "loo_best"] == "label_specific"
        # elpd_diff is how far the runner-up's elpd is below the best's (ArviZ's sign).
        assert summary.loc[group, "elpd_diff"] > 2 * summary.loc[group, "elpd_diff_se"]
        assert summary.loc[group, "evidence_best"] == "label_specific"
        assert summary.loc[group, "log_bayes_factor"] > 2 * summary.loc[group, "log_bayes_factor_error"]
    assert preferred_model(table, ["release", "label_specific"])[0] == "label_specific"
