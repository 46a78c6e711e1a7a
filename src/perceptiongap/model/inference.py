"""Fit one observer group's model with a method chosen by name: the dispatcher over the methods.

Three methods, each seeded and deterministic:

* ``stan-advi``: Stan's mean-field ADVI with the release's settings, early stop included
  (:mod:`perceptiongap.model.stan_advi`). Reproduces the published figures; seed-dependent.
* ``advi``: the same mean-field family run to convergence (:mod:`perceptiongap.model.advi`).
* ``nuts``: NumPyro's NUTS, exact inference (:mod:`perceptiongap.model.nuts`).

Each returns an ArviZ posterior in the layout of :mod:`perceptiongap.model.posterior_io`.
"""

from __future__ import annotations

import arviz as az
import jax

from perceptiongap.errors import InputError
from perceptiongap.model.advi import ConvergedADVISettings, fit_advi
from perceptiongap.model.data import ModelData
from perceptiongap.model.nuts import NUTSSettings, fit_nuts
from perceptiongap.model.stan_advi import StanADVISettings, fit_stan_advi
from perceptiongap.model.variants import DEFAULT_MODEL, get_model

__all__ = ["INFERENCE_METHODS", "SETTINGS_TYPES", "InferenceSettings", "fit"]

INFERENCE_METHODS: tuple[str, ...] = ("stan-advi", "advi", "nuts")

InferenceSettings = StanADVISettings | ConvergedADVISettings | NUTSSettings
#: The settings class each method takes.
SETTINGS_TYPES: dict[str, type] = {
    "stan-advi": StanADVISettings,
    "advi": ConvergedADVISettings,
    "nuts": NUTSSettings,
}
_FITS = {"stan-advi": fit_stan_advi, "advi": fit_advi, "nuts": fit_nuts}


def fit(
    data: ModelData,
    inference: str,
    seed: int | None = None,
    *,
    key: jax.Array | None = None,
    settings: InferenceSettings | None = None,
    model: str = DEFAULT_MODEL,
) -> az.InferenceData:
    """Fit variant ``model`` (:data:`~perceptiongap.model.variants.MODEL_NAMES`) to ``data`` with one
    of :data:`INFERENCE_METHODS`.

    Give ``seed`` (an int) or ``key`` (a JAX PRNG key). ``settings`` is the method's settings
    object (:data:`SETTINGS_TYPES`; None = the method's defaults). An unknown method or model is an
    :class:`~perceptiongap.errors.InputError` naming the field ``inference`` or ``model``;
    settings of another method's type are a TypeError.
    """
    get_model(model)
    if inference not in INFERENCE_METHODS:
        raise InputError(f"unknown inference method {inference!r}; choose from {', '.join(INFERENCE_METHODS)}",
                         source="inference")
    expected = SETTINGS_TYPES[inference]
    if settings is not None and not isinstance(settings, expected):
        raise TypeError(f"{inference} takes settings of type {expected.__name__}, got {type(settings).__name__}")
    return _FITS[inference](data, seed, settings, key=key, model=model)
