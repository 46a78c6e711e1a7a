"""Stated effects: read, checked, and turned into the model's parameters."""

from __future__ import annotations

import numpy as np
import pytest

from perceptiongap.errors import InputError
from perceptiongap.plan.effects import DEFAULT_PREVALENCE, effects_from_csv
from tests.plan.helpers import fitted_posterior, write_effects


def test_stated_gamma_is_kept_and_the_rest_comes_from_the_priors(tmp_path):
    source = effects_from_csv(write_effects(tmp_path / "e.csv", gamma=(0.0, -0.5, -1.5)))
    assert source.subgroups == ("microcalcifications", "soft_tissue_lesions", "other")
    assert source.severity_mm == (0.0, 1.0, 2.0)
    np.testing.assert_array_equal(source.gamma[0][:, 0], [0.0, -0.5, -1.5])
    np.testing.assert_array_equal(source.gamma[0][:, 2], 0.0)  # a subgroup the file does not list: no effect
    assert source.b is None and np.all(source.nu_sd == 1) and np.all(source.mu_mean == 0) and np.all(source.mu_sd == 1)
    total = sum(DEFAULT_PREVALENCE.values())
    assert source.prevalence[1, 0] == pytest.approx(DEFAULT_PREVALENCE[("soft_tissue_lesions", "malignant")] / total)
    assert source.prevalence.sum() == pytest.approx(1.0)


def test_label_specific_effects_average_to_gamma_and_differ_by_delta(tmp_path):
    path = write_effects(tmp_path / "e.csv", gamma=(0.0, -0.4, -0.8), delta=(0.0, -1.0, -2.0))
    source = effects_from_csv(path, model="label_specific")
    gamma_label = source.gamma_label[0]  # (S, G, 2)
    share = source.prevalence / source.prevalence.sum(axis=1, keepdims=True)
    np.testing.assert_allclose((gamma_label * share).sum(axis=-1), source.gamma[0], atol=1e-12)
    np.testing.assert_allclose(gamma_label[:, :2, 0] - gamma_label[:, :2, 1], [[0, 0], [-1, -1], [-2, -2]])


@pytest.mark.parametrize(("content", "problem"), [
    ("subgroup,severity_mm\nmicrocalcifications,0\n", "missing column 'gamma'"),
    ("subgroup,severity_mm,gamma\nmicrocalcifications,0,0\nmicrocalcifications,1,x\n", "finite numbers (line 3)"),
    ("subgroup,severity_mm,gamma\nmicrocalcifications,1,-1\n", "must include 0"),
    ("subgroup,severity_mm,gamma\nmicrocalcifications,0,0.3\nmicrocalcifications,1,-1\n", "must be 0"),
    ("subgroup,severity_mm,gamma\nmass,0,0\nmass,1,-1\n", "'mass' is not in the case mix"),
    ("subgroup,severity_mm,gamma\nmicrocalcifications,0,0\nmicrocalcifications,1,-1\nsoft_tissue_lesions,0,0\n",
     "does not list every severity"),
])
def test_bad_effects_files_are_refused_naming_the_file(tmp_path, content, problem):
    path = tmp_path / "effects.csv"
    path.write_text(content)
    with pytest.raises(InputError, match=problem.replace("(", r"\(").replace(")", r"\)")) as error:
        effects_from_csv(path)
    assert str(error.value.source) == str(path)


def test_label_specific_needs_delta(tmp_path):
    with pytest.raises(InputError, match="missing column 'delta'"):
        effects_from_csv(write_effects(tmp_path / "e.csv"), model="label_specific")


def test_a_posterior_gives_its_draws_the_readers_spread_and_each_class_of_breasts(tmp_path):
    from perceptiongap.plan.effects import effects_from_posterior

    posterior = fitted_posterior()
    case_subgroup = posterior.constant_data["case_subgroup"].values
    case_label = posterior.constant_data["case_label"].values
    mu, nu = posterior.posterior["mu"].values, posterior.posterior["nu"].values
    subgroups = list(posterior.posterior["subgroup"].values)
    source = effects_from_posterior(posterior)
    assert source.subgroups == tuple(subgroups) and source.severity_mm == (0.0, 1.0, 4.0)
    assert source.n_draws == 100
    np.testing.assert_allclose(source.nu_sd[7], nu[0, 7].std(axis=0, ddof=1))
    malignant_micro = (case_subgroup == "microcalcifications") & (case_label == "malignant")
    np.testing.assert_allclose(source.mu_mean[3, 0, 0], mu[0, 3, malignant_micro].mean())
    np.testing.assert_allclose(source.mu_mean[3, 2, 1], mu[0, 3, 40:].mean())
    assert source.mu_mean[:, :2, 0].mean() > source.mu_mean[:, :2, 1].mean() + 1.5  # malignant breasts stand out
    np.testing.assert_allclose(source.prevalence, [[5 / 80, 15 / 80], [5 / 80, 15 / 80], [0, 40 / 80]])
    draw = source.draw(np.random.default_rng(1))
    assert draw["gamma"].shape == (3, 3) and np.all(draw["gamma"][1:] == -1.0)


def test_a_compact_posterior_gives_the_parameters_of_the_draws_at_which_it_keeps_mu():
    import xarray as xr

    from perceptiongap.analysis.ppc import PPC_CASE_DRAWS_GROUP
    from perceptiongap.model.posterior_io import PREDICTIVE_MEAN_GROUP
    from perceptiongap.plan.effects import effects_from_posterior

    full = fitted_posterior()
    chosen = np.array([0, 7, 50, 99])  # chain-major flattened draws of 2 chains x 50
    mu = full.posterior["mu"].stack(sample=("chain", "draw")).transpose("sample", "case").values[chosen]
    compact = full.copy()
    compact.posterior = full.posterior.drop_vars("mu")
    compact.add_groups({PREDICTIVE_MEAN_GROUP: xr.Dataset({"mean": xr.DataArray(np.zeros(3))})})
    compact.add_groups({PPC_CASE_DRAWS_GROUP: xr.Dataset({"mu": xr.DataArray(
        mu, dims=("ppc_sample", "case"), coords={"ppc_sample": chosen, "case": full.posterior["case"].values})})})
    whole, kept = effects_from_posterior(full), effects_from_posterior(compact)
    np.testing.assert_array_equal(kept.b, whole.b[chosen])
    np.testing.assert_array_equal(kept.gamma, whole.gamma[chosen])
    np.testing.assert_allclose(kept.mu_mean, whole.mu_mean[chosen])
    np.testing.assert_allclose(kept.nu_sd, whole.nu_sd[chosen])
    # The malignant breasts' biases are 2 higher in the fitted study, and still are at the kept draws.
    assert (kept.mu_mean[:, 0, 0] - kept.mu_mean[:, 0, 1]).mean() > 1.0


def test_a_compact_posterior_without_any_per_case_draws_is_refused_naming_the_option():
    import xarray as xr

    from perceptiongap.model.posterior_io import PREDICTIVE_MEAN_GROUP
    from perceptiongap.plan.effects import effects_from_posterior

    full = fitted_posterior()
    bare = full.copy()
    bare.posterior = full.posterior.drop_vars("mu")  # as compact posteriors were before they kept the checks' draws
    bare.add_groups({PREDICTIVE_MEAN_GROUP: xr.Dataset({"mean": xr.DataArray(np.zeros(3))})})
    with pytest.raises(InputError, match="--keep-all-draws"):
        effects_from_posterior(bare, source="--from")
