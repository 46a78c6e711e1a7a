"""Per-fit tables, their combination over seeds, and the perturbation_study.csv layout."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from perceptiongap.analysis import (
    MERGED_COLUMNS,
    PERTURBATION_COLUMNS,
    merged_subgroups_table,
    perturbation_study_table,
    pooled_fit_table,
    pooled_merged_table,
    summarise_fits,
)

from .analysis_helpers import make_posterior, reference_drop_pvalue, reference_ks, reference_posterior_predictive

SEVERITIES = (0.0, 1.0, 4.0)
SUBGROUPS = ("microcalcifications", "soft_tissue_lesions", "nonbiopsied")
N_OBSERVERS = 5


def _fit(seed: int, micro_effect: float, *, observer_group: str = "gmic", inference: str = "stan-advi",
         subgroups: tuple[str, ...] = SUBGROUPS):
    """Cancers at logits 1..3, negatives at -3..-1; gamma[4 mm, first subgroup] ~ N(micro_effect, 0.3)."""
    rng = np.random.default_rng(seed)
    n_chains, n_draws = 2, 60
    logit = np.concatenate([np.linspace(1, 3, 10), np.linspace(1, 3, 10), np.linspace(-3, -1, 20)])
    gamma = rng.normal(0, 0.3, (n_chains, n_draws, len(SEVERITIES), len(subgroups)))
    gamma[:, :, 0] = 0.0
    gamma[:, :, 2, 0] += micro_effect
    return make_posterior(
        b=rng.normal(0, 0.3, (n_chains, n_draws, len(subgroups))),
        mu=logit + rng.normal(0, 0.5, (n_chains, n_draws, 40)),
        gamma=gamma,
        nu=rng.normal(0, 0.3, (n_chains, n_draws, N_OBSERVERS, len(subgroups))),
        case_subgroup=[subgroups[0]] * 10 + [subgroups[1]] * 10 + [subgroups[-1]] * 20,
        case_label=["malignant"] * 20 + ["benign"] * 10 + ["nonbiopsied"] * 10,
        subgroups=subgroups, severities=SEVERITIES, observer_group=observer_group, inference=inference, seed=seed,
    )


def _reference_fit(posterior, subgroup: str) -> pd.DataFrame:
    """One fit's rows for ``subgroup``, from float64 NumPy/scipy references."""
    gamma = posterior.posterior["gamma"].sel(subgroup=subgroup).values.reshape(-1, len(SEVERITIES))
    mean, sd = gamma.mean(axis=0), gamma.std(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        p_confidence = np.where(sd > 0, 1 - stats.norm.cdf(0, mean, np.where(sd > 0, sd, 1)), np.nan)
    predictive = reference_posterior_predictive(posterior)
    label = posterior.constant_data["case_label"].values
    group = posterior.constant_data["case_subgroup"].values
    positive, negative = (label == "malignant") & (group == subgroup), label != "malignant"
    ks = np.array([[reference_ks(predictive[r, s], positive, negative) for s in range(len(SEVERITIES))]
                   for r in range(N_OBSERVERS)])
    p_drop = [np.nan] + [reference_drop_pvalue(ks[:, 0], ks[:, s]) for s in range(1, len(SEVERITIES))]
    return pd.DataFrame({
        "severity_mm": SEVERITIES, "confidence_mean": mean, "confidence_sd": sd, "p_confidence_positive": p_confidence,
        "separability_mean": ks.mean(axis=0), "separability_sd": ks.std(axis=0), "p_separability_drop": p_drop,
    })


@pytest.mark.filterwarnings("ignore:All-NaN slice:RuntimeWarning")  # severity 0 has no p-values
def test_several_fits_give_medians_and_fractions_significant() -> None:
    fits = [_fit(0, -4.0), _fit(1, -4.0), _fit(2, 0.0)]
    table = summarise_fits(fits)
    assert list(table.columns) == list(PERTURBATION_COLUMNS)
    assert (table["fits"] == 3).all()
    assert (table["inference"] == "stan-advi").all() and (table["observer_group"] == "gmic").all()
    for subgroup in ("microcalcifications", "soft_tissue_lesions"):
        rows = table[table["subgroup"] == subgroup].reset_index(drop=True)
        references = [_reference_fit(fit, subgroup) for fit in fits]
        stacked = np.stack([reference.to_numpy() for reference in references])  # (fit, severity, column)
        for j, column in enumerate(references[0].columns):
            expected = np.nanmedian(stacked[:, :, j], axis=0) if column != "severity_mm" else SEVERITIES
            np.testing.assert_allclose(rows[column], expected, rtol=1e-9, atol=1e-12, err_msg=column)
        for p_column, fraction in (("p_confidence_positive", "frac_confidence_significant"),
                                   ("p_separability_drop", "frac_separability_significant")):
            p = np.stack([reference[p_column] for reference in references])
            expected = [np.nan] + list((p[:, 1:] < 0.05).mean(axis=0))
            np.testing.assert_allclose(rows[fraction], expected, err_msg=fraction)
    micro_4mm = table[(table["subgroup"] == "microcalcifications") & (table["severity_mm"] == 4.0)].iloc[0]
    assert micro_4mm["frac_confidence_significant"] == pytest.approx(2 / 3)  # the two fits with the effect
    assert micro_4mm["frac_separability_significant"] == pytest.approx(2 / 3)


def test_fits_of_different_groups_are_not_combined() -> None:
    with pytest.raises(ValueError, match="cannot be combined"):
        summarise_fits([_fit(0, 0.0), _fit(1, 0.0, observer_group="radiologists")])


def test_perturbation_study_table_layout_order_and_observed_rows() -> None:
    fits = [
        _fit(0, -4.0, inference="nuts"),
        _fit(1, -4.0, observer_group="radiologists"),
        _fit(2, 0.0),
        _fit(3, -4.0, observer_group="radiologists"),
    ]
    observed = pd.DataFrame({
        "inference": "observed", "observer_group": "gmic",
        "subgroup": np.repeat(["microcalcifications", "soft_tissue_lesions"], 3), "severity_mm": list(SEVERITIES) * 2,
        "separability_mean": 0.5, "separability_sd": 0.1, "p_separability_drop": [np.nan, 0.2, 0.01] * 2,
    })
    table = perturbation_study_table(fits, [observed])
    assert list(table.columns) == list(PERTURBATION_COLUMNS)
    blocks = table[["inference", "observer_group"]].drop_duplicates().apply(tuple, axis=1).tolist()
    assert blocks == [("stan-advi", "radiologists"), ("stan-advi", "gmic"), ("nuts", "gmic"), ("observed", "gmic")]
    assert list(table.groupby(["inference", "observer_group"], sort=False)["fits"].first()) == [2, 1, 1, 1]
    block = table[(table["inference"] == "stan-advi") & (table["observer_group"] == "gmic")]
    assert list(block["subgroup"]) == ["microcalcifications"] * 3 + ["soft_tissue_lesions"] * 3
    assert list(block["severity_mm"]) == list(SEVERITIES) * 2
    observed_rows = table[table["inference"] == "observed"]
    confidence = ["confidence_mean", "confidence_sd", "p_confidence_positive", "frac_confidence_significant"]
    assert observed_rows[confidence].isna().all().all()
    assert list(observed_rows["frac_separability_significant"].iloc[:3].fillna(-1)) == [-1, 0.0, 1.0]
    # The same fit alone, through summarise_fits, gives the same numbers.
    alone = summarise_fits([fits[0]])
    pd.testing.assert_frame_equal(table[table["inference"] == "nuts"].reset_index(drop=True), alone)


def test_merged_subgroup_is_renamed() -> None:
    merged = ("microcalcifications+soft_tissue_lesions", "mixed", "nonbiopsied")
    fit = _fit(0, -4.0, subgroups=merged)
    table = perturbation_study_table([fit], subgroups=merged[:1],
                                     subgroup_names={"microcalcifications+soft_tissue_lesions": "merged"})
    assert list(table["subgroup"].unique()) == ["merged"]
    assert len(table) == len(SEVERITIES)


def test_pooled_rows_are_the_releases_merged_analysis_of_the_separate_fit() -> None:
    """Confidence from both subgroups' gamma draws pooled; separability with both subgroups' cancers as positives."""
    posterior = _fit(3, -4.0)
    table = pooled_fit_table(posterior, ("microcalcifications", "soft_tissue_lesions"), "merged")
    assert set(table["subgroup"]) == {"merged"} and list(table["severity_mm"]) == list(SEVERITIES)
    gamma = posterior.posterior["gamma"].sel(subgroup=["microcalcifications", "soft_tissue_lesions"]).values
    pooled = np.moveaxis(gamma, 2, 0).reshape(len(SEVERITIES), -1)  # (severity, every draw of both subgroups)
    np.testing.assert_allclose(table["confidence_mean"], pooled.mean(axis=1), atol=1e-12)
    np.testing.assert_allclose(table["confidence_sd"], pooled.std(axis=1), atol=1e-12)
    predictive = reference_posterior_predictive(posterior)
    label = posterior.constant_data["case_label"].values
    positive, negative = label == "malignant", label != "malignant"  # the 20 cancers are all micro or soft tissue
    ks = np.array([[reference_ks(predictive[r, s], positive, negative) for s in range(len(SEVERITIES))]
                   for r in range(N_OBSERVERS)])
    np.testing.assert_allclose(table["separability_mean"], ks.mean(axis=0), atol=1e-6)


def test_merged_table_keeps_refit_pooled_and_observed_rows_apart() -> None:
    refit = perturbation_study_table([_fit(4, -1.0, subgroups=("merged", "nonbiopsied"))], subgroups=("merged",))
    observed = refit.assign(inference="observed")
    pooled = pooled_merged_table([_fit(5, -1.0), _fit(6, -1.0)], ("microcalcifications", "soft_tissue_lesions"),
                                 "merged")
    table = merged_subgroups_table(pd.concat([refit, observed], ignore_index=True), pooled)
    assert list(table.columns) == list(MERGED_COLUMNS)
    assert table.groupby("merged_by").size().to_dict() == {"refit": 3, "pooled": 3, "none": 3}
    assert (table.loc[table["merged_by"] == "pooled", "fits"] == 2).all()
    assert set(table.loc[table["merged_by"] == "none", "inference"]) == {"observed"}
