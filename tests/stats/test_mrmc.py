"""Obuchowski-Rockette-Hillis: published values, simulations with known truth, and refusal of uncrossed designs."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from perceptiongap.errors import InputError
from perceptiongap.stats import dual_modality_orh, model_vs_readers_orh
from perceptiongap.stats.mrmc import (
    crossed_scores,
    jackknife_covariance,
    or_covariance_terms,
    orh_dual_from_components,
    orh_single_from_components,
)
from perceptiongap.stats.roc import auc_jackknife
from tests.stats.roe_metz import RoeMetz, model_mu_for_auc, simulate, simulate_model_and_readers

# Published OR-DBM MRMC 2.51 output for the Van Dyke et al. (1993) data (trapezoidal AUC, jackknife),
# as distributed with RJafroc (inst/IowaResults/VanDyke.txt): per-reader AUCs, treatment 1 and 2.
VAN_DYKE_AUCS = np.array([
    [0.91964573, 0.94782609],
    [0.85877617, 0.90531401],
    [0.90386473, 0.92173913],
    [0.97310789, 0.99935588],
    [0.82979066, 0.92995169],
])
VAN_DYKE = {"ms_tr": 0.00055103, "var": 0.00080229, "cov1": 0.00034661, "cov2": 0.00034407, "cov3": 0.00023903,
            "difference": 0.04380032, "std_error": 0.02075, "df": 15.26, "f": 4.46, "p": 0.0517,
            "ci": (-0.00036, 0.08796)}
# Part (c), single-treatment analysis of treatment 1: MS(R), Cov2, standard error, df, 95 % CI.
VAN_DYKE_T1 = {"ms_r": 0.00308263, "cov2": 0.00048396, "auc": 0.89703704, "std_error": 0.03317360, "df": 12.74,
               "ci": (0.82522360, 0.96885048)}


def test_dual_modality_formulas_reproduce_the_published_van_dyke_analysis():
    # The OR-Hillis step from the published reader AUCs and covariances to F, df, p and the CI.
    result = orh_dual_from_components(VAN_DYKE_AUCS, VAN_DYKE["cov2"], VAN_DYKE["cov3"])
    assert result["mean_square"] == pytest.approx(VAN_DYKE["ms_tr"], abs=5e-9)
    assert result["effect"] == pytest.approx(VAN_DYKE["difference"], abs=1e-8)
    assert result["std_error"] == pytest.approx(VAN_DYKE["std_error"], abs=5e-6)
    assert result["df"] == pytest.approx(VAN_DYKE["df"], abs=0.005)
    assert result["statistic"] ** 2 == pytest.approx(VAN_DYKE["f"], abs=0.005)
    assert result["p_value"] == pytest.approx(VAN_DYKE["p"], abs=5e-5)
    assert (-result["ci_high"], -result["ci_low"]) == pytest.approx((-0.08796, 0.00036), abs=1e-5)


def test_single_modality_formulas_reproduce_the_published_single_treatment_interval():
    result = orh_single_from_components(VAN_DYKE_AUCS[:, 0], VAN_DYKE_T1["cov2"])
    assert result["mean_square"] == pytest.approx(VAN_DYKE_T1["ms_r"], abs=5e-9)
    assert result["effect"] == pytest.approx(VAN_DYKE_T1["auc"], abs=1e-8)
    assert result["std_error"] == pytest.approx(VAN_DYKE_T1["std_error"], abs=5e-8)
    assert result["df"] == pytest.approx(VAN_DYKE_T1["df"], abs=0.005)
    assert (result["ci_low"], result["ci_high"]) == pytest.approx(VAN_DYKE_T1["ci"], abs=5e-8)


def _van_dyke_ratings() -> tuple[np.ndarray, np.ndarray]:
    """The Van Dyke ratings from $PERCEPTIONGAP_VANDYKE: CSV with reader, treatment, case, truth, rating
    (the layout of MRMCaov's ``VanDyke`` data frame, ``write.csv(VanDyke)``)."""
    path = os.environ.get("PERCEPTIONGAP_VANDYKE")
    if not path or not Path(path).is_file():
        pytest.skip("the Van Dyke ratings are not distributed with perceptiongap (licence); set PERCEPTIONGAP_VANDYKE "
                    "to a CSV of them (MRMCaov's VanDyke: reader, treatment, case, truth, rating) to run this test")
    table = pd.read_csv(path)
    wide = table.pivot_table(index=["case", "truth"], columns=["reader", "treatment"], values="rating")
    truth = wide.index.get_level_values("truth").to_numpy()
    scores = wide.to_numpy().reshape(len(wide), 5, 2)
    return truth, scores


def test_dual_modality_orh_on_the_van_dyke_ratings_matches_or_dbm_mrmc():
    truth, scores = _van_dyke_ratings()
    result = dual_modality_orh(truth, scores)
    np.testing.assert_allclose(result.reader_aucs, VAN_DYKE_AUCS, atol=5e-9)
    for name in ("var", "cov1", "cov2", "cov3"):
        assert getattr(result, "var_error" if name == "var" else name) == pytest.approx(VAN_DYKE[name], abs=5e-9)
    assert result.effect == pytest.approx(VAN_DYKE["difference"], abs=1e-8)
    assert result.df == pytest.approx(VAN_DYKE["df"], abs=0.005)
    assert result.f_statistic == pytest.approx(VAN_DYKE["f"], abs=0.005)
    assert result.p_value == pytest.approx(VAN_DYKE["p"], abs=5e-5)


def test_model_vs_readers_with_an_uninformative_model_is_the_published_single_treatment_analysis():
    # A constant model has AUC 1/2 in every jackknife sample, so the differences carry the readers'
    # own OR terms: the effect is 1/2 - mean AUC with the published standard error and df.
    truth, scores = _van_dyke_ratings()
    result = model_vs_readers_orh(truth, np.zeros(truth.size), scores[:, :, 0])
    assert result.model_auc == 0.5
    assert result.effect == pytest.approx(0.5 - VAN_DYKE_T1["auc"], abs=1e-8)
    assert result.std_error == pytest.approx(VAN_DYKE_T1["std_error"], abs=5e-8)
    assert result.df == pytest.approx(VAN_DYKE_T1["df"], abs=0.005)
    assert result.cov2 == pytest.approx(VAN_DYKE_T1["cov2"], abs=5e-9)


def test_jackknife_covariance_equals_refitting_without_each_case():
    rng = np.random.default_rng(3)
    truth = np.r_[np.zeros(12, int), np.ones(9, int)]
    scores = rng.integers(0, 5, (truth.size, 3, 2)).astype(float) + truth[:, None, None]
    from sklearn.metrics import roc_auc_score

    loo = np.array([[[roc_auc_score(np.delete(truth, k), np.delete(scores[:, j, m], k)) for k in range(truth.size)]
                     for j in range(3)] for m in range(2)])  # (modality, reader, case)
    aucs, fast_loo = auc_jackknife(truth, np.transpose(scores, (2, 1, 0)))
    np.testing.assert_allclose(fast_loo, loo, atol=1e-12)
    flat = loo.reshape(6, -1)
    centred = flat - flat.mean(axis=1, keepdims=True)
    expected = (truth.size - 1) / truth.size * centred @ centred.T
    np.testing.assert_allclose(jackknife_covariance(fast_loo.reshape(6, -1).T), expected, atol=1e-15)
    terms = or_covariance_terms(expected, 3, 2)
    same_reader_other_modality = [expected[j, 3 + j] for j in range(3)]
    assert terms["cov1"] == pytest.approx(np.mean(same_reader_other_modality))


def _dual_batch(truth, scores, margin=None):
    """The code path of dual_modality_orh, vectorised over simulated studies (studies, cases, readers, 2)."""
    n_studies, _, n_readers, _ = scores.shape
    aucs, loo = auc_jackknife(truth, np.transpose(scores, (0, 3, 2, 1)))  # (S, 2, r), (S, 2, r, c)
    covariance = jackknife_covariance(loo.reshape(n_studies, 2 * n_readers, -1).transpose(0, 2, 1))
    terms = or_covariance_terms(covariance, n_readers, 2)
    return orh_dual_from_components(np.transpose(aucs, (0, 2, 1)), terms["cov2"], terms["cov3"], margin=margin)


def test_vectorised_path_equals_the_public_function():
    truth, scores = simulate(np.random.default_rng(4), RoeMetz(), (1.0, 1.3), 3, 4, 20, 15)
    batch = _dual_batch(truth, scores)
    for study in range(3):
        one = dual_modality_orh(truth, scores[study])
        assert one.effect == pytest.approx(batch["effect"][study])
        assert one.df == pytest.approx(batch["df"][study])
        assert one.p_value == pytest.approx(batch["p_value"][study])


# 2,000 simulated studies: the Monte Carlo standard error of a coverage near 0.95 is 0.005, so the
# 93-97 % window is four standard errors wide each side; of a type I error near 0.05, also 0.005.
N_STUDIES = 2000


@pytest.mark.slow
def test_dual_modality_confidence_interval_covers_the_true_difference_95_percent_of_the_time():
    config = RoeMetz()
    truth, scores = simulate(np.random.default_rng(11), config, (1.0, 1.4), N_STUDIES, 5, 50, 50)
    result = _dual_batch(truth, scores)
    true_difference = config.true_auc(1.4) - config.true_auc(1.0)
    coverage = np.mean((result["ci_low"] <= true_difference) & (true_difference <= result["ci_high"]))
    assert 0.93 <= coverage <= 0.97
    assert np.mean(result["p_value"] < 0.05) > 0.3  # and it has power against a 0.08 difference


@pytest.mark.slow
def test_dual_modality_type_one_error_is_near_five_percent_under_the_null():
    truth, scores = simulate(np.random.default_rng(12), RoeMetz(), (1.2, 1.2), N_STUDIES, 5, 50, 50)
    result = _dual_batch(truth, scores)
    assert 0.035 <= np.mean(result["p_value"] < 0.05) <= 0.065


def _model_batch(truth, readers, model, margin=None):
    model_auc, model_loo = auc_jackknife(truth, model)
    reader_aucs, reader_loo = auc_jackknife(truth, readers.transpose(0, 2, 1))
    covariance = jackknife_covariance((model_loo[:, None, :] - reader_loo).transpose(0, 2, 1))
    terms = or_covariance_terms(covariance, readers.shape[2], 1)
    return orh_single_from_components(model_auc[:, None] - reader_aucs, terms["cov2"], margin=margin)


@pytest.mark.slow
def test_model_vs_readers_coverage_type_one_error_and_non_inferiority_level():
    config, noise = RoeMetz(), 0.5
    reader_auc = config.true_auc(1.2)
    rng = np.random.default_rng(13)

    # Null: the model is as good as the average reader.
    truth, readers, model, readers_true, model_true = simulate_model_and_readers(
        rng, config, 1.2, model_mu_for_auc(config, reader_auc, noise), noise, N_STUDIES, 5, 50, 50)
    assert model_true == pytest.approx(readers_true)
    null = _model_batch(truth, readers, model)
    assert 0.035 <= np.mean(null["p_value"] < 0.05) <= 0.065
    assert 0.93 <= np.mean((null["ci_low"] <= 0) & (0 <= null["ci_high"])) <= 0.97

    # The model is 0.05 worse: coverage of the true difference, and a non-inferiority test with margin
    # 0.05 (exactly on the null boundary) rejects about 5 % of the time.
    truth, readers, model, readers_true, model_true = simulate_model_and_readers(
        rng, config, 1.2, model_mu_for_auc(config, reader_auc - 0.05, noise), noise, N_STUDIES, 5, 50, 50)
    worse = _model_batch(truth, readers, model, margin=0.05)
    true_difference = model_true - readers_true
    assert 0.93 <= np.mean((worse["ci_low"] <= true_difference) & (true_difference <= worse["ci_high"])) <= 0.97
    assert 0.03 <= np.mean(worse["p_value"] < 0.05) <= 0.07


def test_non_inferiority_p_value_is_one_sided_at_the_margin():
    truth, scores = simulate(np.random.default_rng(5), RoeMetz(), (1.2, 1.2), 1, 5, 40, 40)
    plain = dual_modality_orh(truth, scores[0])
    shifted = dual_modality_orh(truth, scores[0], margin=0.1)
    assert shifted.alternative == "non-inferiority"
    assert shifted.statistic == pytest.approx((plain.effect + 0.1) / plain.std_error)
    assert (shifted.ci_low, shifted.ci_high) == (plain.ci_low, plain.ci_high)
    from scipy.stats import t

    assert shifted.p_value == pytest.approx(t.sf(shifted.statistic, plain.df))


@pytest.mark.parametrize(
    ("truth", "scores", "message"),
    [
        ([0, 1, 2, 1], np.zeros((4, 2, 2)), "0 (non-diseased) or 1"),
        ([0, 0, 1, 1], np.zeros((4, 2)), "shape (cases, readers, 2)"),
        ([0, 0, 1, 1], np.zeros((3, 2, 2)), "with 4 cases"),
        ([0, 1, 1, 1], np.zeros((4, 2, 2)), "at least 2 diseased and 2 non-diseased"),
        ([0, 0, 1, 1], np.array([[[0, 1], [np.nan, 1]]] * 4), "missing readings"),
    ],
)
def test_dual_modality_refuses_bad_input_in_one_line(truth, scores, message):
    with pytest.raises(InputError, match=re.escape(message)) as error:
        dual_modality_orh(truth, scores)
    assert "\n" not in str(error.value)


def test_a_sparse_reader_study_is_refused_with_the_reason(release_study):
    observations, cases = release_study
    readers = [f"reader{k:02d}" for k in range(2, 5)]
    with pytest.raises(InputError, match="not crossed.*export imrmc") as error:
        crossed_scores(observations, cases, observers=readers, severities=[0.0, 4.0], score="prediction")
    assert "has no reading of exam" in str(error.value)


def test_networks_read_every_breast_so_their_scores_are_crossed(release_study):
    observations, cases = release_study
    seeds = [f"gmic_seed{k}" for k in range(5)]
    truth, scores, breasts = crossed_scores(observations, cases, observers=seeds, severities=[0.0, 4.0])
    assert scores.shape == (1440, 5, 2) and truth.sum() == (cases["label"] == "malignant").sum()
    result = dual_modality_orh(truth, scores)
    # Filtering at 4 mm costs GMIC a large share of its AUC (see accuracy: 0.87 -> 0.56).
    assert result.effect < -0.2 and result.p_value < 0.001
