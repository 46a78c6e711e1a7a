"""The Bayesian model of METHOD §5 and its inference.

``build_model_data`` turns Observations + Cases into one observer group's arrays;
``fit`` (or ``fit_stan_advi``, ``fit_advi``, ``fit_nuts``) returns an ArviZ posterior with named
dimensions; ``save_posterior`` / ``load_posterior`` store it as netCDF; ``warnings_for`` says
whether a fit can be trusted.
"""

from perceptiongap.model.data import ModelData, build_model_data
from perceptiongap.model.diagnostics import pareto_k_hat, severity_effect_summary, warnings_for
from perceptiongap.model.inference import (
    INFERENCE_METHODS,
    ConvergedADVISettings,
    NUTSSettings,
    StanADVISettings,
    fit,
    fit_advi,
    fit_nuts,
    fit_stan_advi,
    load_posterior,
    save_posterior,
)

__all__ = [
    "INFERENCE_METHODS",
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
    "warnings_for",
]
