"""A fit's draws as an ArviZ posterior with named dimensions, and its storage as netCDF.

The posterior layout (the contract with :mod:`perceptiongap.analysis`): group ``posterior`` with
``b`` (subgroup), ``mu`` (case), ``delta`` (severity_step, subgroup), ``gamma`` (severity,
subgroup) and ``nu`` (observer, subgroup); case coordinates ``exam`` and ``breast``; group
``constant_data`` with ``case_subgroup`` and ``case_label``; group ``observed_data`` with the
observed ``prediction`` grid (observer, severity, case; NaN where unobserved); attributes
``observer_group``, ``observer_kind``, ``model``, ``inference``, ``seed`` and each method's
diagnostics.

Those are the release's sites; every variant keeps ``b``, ``mu``, ``gamma`` and ``nu`` with these
dims, plus its own (:attr:`perceptiongap.model.spec.ModelSpec.posterior_dims`): ``gamma_label``
(severity, subgroup, label) where the severity effect depends on the label, ``observer_scale``
(observer) where it is scaled per observer. A posterior may also hold group ``log_likelihood``
with ``prediction`` (chain, draw, case): the log-likelihood of each breast's observed cells
summed (leave-one-breast-out). A posterior without attribute ``model`` is the release's.
A results folder keeps by default a compact form (:mod:`perceptiongap.results.compact`): no ``mu``
draws, and instead group ``predictive_mean`` with ``mean`` (observer, severity, case), their
posterior predictive probability.
"""

from __future__ import annotations

from pathlib import Path

import arviz as az
import numpy as np
import xarray as xr

from perceptiongap.files import atomic_path
from perceptiongap.model.data import ModelData
from perceptiongap.model.spec import LABELS
from perceptiongap.model.variants import DEFAULT_MODEL, get_model

__all__ = ["PREDICTIVE_MEAN_GROUP", "SITE_DIMS", "load_posterior", "model_of", "save_posterior", "site_dims",
           "to_inference_data"]

#: Group of a compact posterior holding the posterior predictive mean in place of the ``mu`` draws.
PREDICTIVE_MEAN_GROUP = "predictive_mean"

#: The release's variables in the posterior and their named dimensions (after chain and draw).
SITE_DIMS: dict[str, list[str]] = {
    "b": ["subgroup"],
    "mu": ["case"],
    "delta": ["severity_step", "subgroup"],
    "gamma": ["severity", "subgroup"],
    "nu": ["observer", "subgroup"],
}


def site_dims(model: str = DEFAULT_MODEL) -> dict[str, list[str]]:
    """Every variable of variant ``model``'s posterior with its named dims (after chain and draw)."""
    return {name: list(dims) for name, dims in get_model(model).posterior_dims.items()}


def model_of(posterior: az.InferenceData) -> str:
    """The variant a posterior was fitted with (``release`` for posteriors that do not say)."""
    return str(posterior.posterior.attrs.get("model", DEFAULT_MODEL))


def to_inference_data(
    data: ModelData,
    sites: dict[str, np.ndarray],
    *,
    inference: str,
    seed: int,
    attrs: dict | None = None,
    sample_stats: dict[str, np.ndarray] | None = None,
    model: str = DEFAULT_MODEL,
    log_likelihood: np.ndarray | None = None,
) -> az.InferenceData:
    """Named-dimension posterior of variant ``model`` from draws of shape (chain, draw, *site shape).

    ``log_likelihood`` (chain, draw, case), when given, is stored as group ``log_likelihood``.
    """
    dims = site_dims(model)
    coords = {
        "subgroup": list(data.subgroup_names),
        "severity": list(data.severity_mm),
        "severity_step": list(data.severity_mm[1:]),
        "observer": list(data.observer_names),
        "case": np.arange(data.n_cases),
        "label": list(LABELS),
    }
    observed_prediction = np.where(data.observed, data.prediction, np.nan)
    idata = az.from_dict(
        posterior={name: np.asarray(sites[name]) for name in dims},
        sample_stats=sample_stats,
        observed_data={"prediction": observed_prediction},
        constant_data={
            "case_subgroup": np.asarray(data.subgroup_names)[data.case_subgroup],
            "case_label": np.asarray(data.case_label),
        },
        coords=coords,
        dims={**dims, "prediction": ["observer", "severity", "case"],
              "case_subgroup": ["case"], "case_label": ["case"]},
    )
    case_coords = {"exam": ("case", list(data.case_exam)), "breast": ("case", list(data.case_breast))}
    if log_likelihood is not None:
        # Per breast, not per cell: its variable has the case dim only, unlike the observed grid.
        posterior = idata.posterior
        pointwise = xr.DataArray(np.asarray(log_likelihood), dims=("chain", "draw", "case"),
                                 coords={"chain": posterior["chain"], "draw": posterior["draw"],
                                         "case": posterior["case"]})
        idata.add_groups({"log_likelihood": xr.Dataset({"prediction": pointwise})})
    for group in ("posterior", "observed_data", "constant_data", *(["log_likelihood"] if log_likelihood is not None
                                                                    else [])):
        setattr(idata, group, getattr(idata, group).assign_coords(case_coords))
    idata.posterior.attrs.update(
        {"observer_group": data.observer_group, "observer_kind": data.observer_kind, "model": model,
         "inference": inference,
         "seed": int(seed), **(attrs or {})}
    )
    return idata


def save_posterior(posterior: az.InferenceData, path: str | Path) -> None:
    """Write a posterior as netCDF, atomically."""
    with atomic_path(path) as tmp:
        posterior.to_netcdf(str(tmp), engine="h5netcdf")


def load_posterior(path: str | Path) -> az.InferenceData:
    """Read a posterior written by :func:`save_posterior`."""
    return az.from_netcdf(str(path), engine="h5netcdf")
