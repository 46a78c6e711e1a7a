"""A posterior keeps its named dimensions, coordinates and numbers through netCDF."""

from __future__ import annotations

import numpy as np

from perceptiongap.model import build_model_data, fit_stan_advi, load_posterior, save_posterior
from perceptiongap.model.stan_advi import StanADVISettings

from .simulate import SUBGROUPS


def test_netcdf_round_trip(study, tmp_path):
    observations, cases, _ = study
    data = build_model_data(observations, cases, "readers", subgroup_order=SUBGROUPS)
    posterior = fit_stan_advi(data, seed=1, settings=StanADVISettings(max_iterations=300, output_samples=50))
    save_posterior(posterior, tmp_path / "posterior.nc")
    back = load_posterior(tmp_path / "posterior.nc")
    assert back.posterior["nu"].dims == ("chain", "draw", "observer", "subgroup")
    assert list(back.posterior["gamma"].coords["severity"].values) == [0.0, 0.5, 1.0, 4.0]
    assert list(back.posterior["mu"].coords["exam"].values[:2]) == list(cases["exam"][:2])
    assert list(back.constant_data["case_label"].values[:2]) == list(cases["label"][:2])
    observed = back.observed_data["prediction"].values
    assert np.isnan(observed).any() and np.nanmax(observed) <= 1
    for site in ("b", "mu", "delta", "gamma", "nu"):
        np.testing.assert_array_equal(back.posterior[site].values, posterior.posterior[site].values)
    assert back.posterior.attrs["seed"] == 1
    assert back.posterior.attrs["inference"] == "stan-advi"
