"""``fit`` chooses the method by name and passes its settings through; bad requests are refused."""

from __future__ import annotations

import numpy as np
import pytest

from perceptiongap.errors import InputError
from perceptiongap.model import (
    INFERENCE_METHODS,
    ConvergedADVISettings,
    NUTSSettings,
    StanADVISettings,
    build_model_data,
    fit,
    fit_stan_advi,
)

from .simulate import SUBGROUPS

SHORT_STAN = StanADVISettings(max_iterations=300, output_samples=50)


@pytest.fixture(scope="module")
def readers(study):
    observations, cases, _ = study
    return build_model_data(observations, cases, "readers", subgroup_order=SUBGROUPS)


def test_fit_passes_the_settings_to_the_method(readers):
    by_name = fit(readers, "stan-advi", 3, settings=SHORT_STAN)
    direct = fit_stan_advi(readers, seed=3, settings=SHORT_STAN)
    np.testing.assert_array_equal(by_name.posterior["gamma"].values, direct.posterior["gamma"].values)
    assert by_name.posterior.sizes["draw"] == 50
    assert by_name.posterior.attrs["max_iterations"] == 300
    assert by_name.posterior.attrs["inference"] == "stan-advi"

    advi = fit(readers, "advi", seed=2, settings=ConvergedADVISettings(max_iterations=500, output_samples=20))
    assert advi.posterior.attrs["inference"] == "advi"
    assert advi.posterior.attrs["max_iterations"] == 500 and advi.posterior.sizes["draw"] == 20


def test_an_unknown_method_names_the_field_and_the_choices(readers):
    with pytest.raises(InputError) as caught:
        fit(readers, "vb", 0)
    assert caught.value.source == "inference"
    assert all(method in str(caught.value) for method in INFERENCE_METHODS)


def test_settings_of_another_method_are_refused(readers):
    with pytest.raises(TypeError, match="NUTSSettings"):
        fit(readers, "nuts", 0, settings=SHORT_STAN)
    with pytest.raises(TypeError, match="StanADVISettings"):
        fit(readers, "stan-advi", 0, settings=NUTSSettings())
