"""The Bayesian model of METHOD §5 and its inference.

``build_model_data`` turns Observations + Cases into one observer group's arrays;
``fit(data, inference, seed, settings=...)`` (or ``fit_stan_advi``, ``fit_advi``, ``fit_nuts``)
returns an ArviZ posterior with named dimensions; ``save_posterior`` / ``load_posterior`` store
it as netCDF; ``warnings_for`` says whether a fit can be trusted; ``use_host_devices`` gives JAX
the CPU devices that NUTS's parallel chains need.

One module per concern: ``data`` (arrays), ``hierarchical`` (the NumPyro model), ``likelihood``
and ``density`` (its log density), ``stan_advi``, ``advi``, ``nuts`` (one per inference method;
``meanfield`` is what the two ADVI methods share), ``inference`` (choose a method by name),
``posterior_io`` (ArviZ layout and netCDF), ``diagnostics``, ``keys`` (seeds and PRNG keys).
"""

from perceptiongap.model.advi import ConvergedADVISettings, fit_advi
from perceptiongap.model.data import ModelData, build_model_data
from perceptiongap.model.diagnostics import pareto_k_hat, severity_effect_summary, warnings_for
from perceptiongap.model.inference import INFERENCE_METHODS, SETTINGS_TYPES, fit
from perceptiongap.model.nuts import NUTSSettings, fit_nuts, use_host_devices
from perceptiongap.model.posterior_io import load_posterior, save_posterior, to_inference_data
from perceptiongap.model.stan_advi import ADVIError, StanADVISettings, fit_stan_advi

__all__ = [
    "INFERENCE_METHODS",
    "SETTINGS_TYPES",
    "ADVIError",
    "ConvergedADVISettings",
    "ModelData",
    "NUTSSettings",
    "StanADVISettings",
    "build_model_data",
    "fit",
    "fit_advi",
    "fit_nuts",
    "fit_stan_advi",
    "load_posterior",
    "pareto_k_hat",
    "save_posterior",
    "severity_effect_summary",
    "to_inference_data",
    "use_host_devices",
    "warnings_for",
]
