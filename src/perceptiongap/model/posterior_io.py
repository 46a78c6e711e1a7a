"""A fit's draws as an ArviZ posterior with named dimensions, and its storage as netCDF.

The posterior layout (the contract with :mod:`perceptiongap.analysis`): group ``posterior`` with
``b`` (subgroup), ``mu`` (case), ``delta`` (severity_step, subgroup), ``gamma`` (severity,
subgroup) and ``nu`` (observer, subgroup); case coordinates ``exam`` and ``breast``; group
``constant_data`` with ``case_subgroup`` and ``case_label``; group ``observed_data`` with the
observed ``prediction`` grid (observer, severity, case; NaN where unobserved); attributes
``observer_group``, ``observer_kind``, ``inference``, ``seed`` and each method's diagnostics.
A results folder keeps by default a compact form (:mod:`perceptiongap.results.compact`): no ``mu``
draws, and instead group ``predictive_mean`` with ``mean`` (observer, severity, case), their
posterior predictive probability.
"""

from __future__ import annotations

from pathlib import Path

import arviz as az
import numpy as np

from perceptiongap.files import atomic_path
from perceptiongap.model.data import ModelData

__all__ = ["PREDICTIVE_MEAN_GROUP", "SITE_DIMS", "load_posterior", "save_posterior", "to_inference_data"]

#: Group of a compact posterior holding the posterior predictive mean in place of the ``mu`` draws.
PREDICTIVE_MEAN_GROUP = "predictive_mean"

#: The latent variables of the posterior and their named dimensions (after chain and draw).
SITE_DIMS: dict[str, list[str]] = {
    "b": ["subgroup"],
    "mu": ["case"],
    "delta": ["severity_step", "subgroup"],
    "gamma": ["severity", "subgroup"],
    "nu": ["observer", "subgroup"],
}


def to_inference_data(
    data: ModelData,
    sites: dict[str, np.ndarray],
    *,
    inference: str,
    seed: int,
    attrs: dict | None = None,
    sample_stats: dict[str, np.ndarray] | None = None,
) -> az.InferenceData:
    """Named-dimension posterior from draws of shape (chain, draw, *site shape)."""
    coords = {
        "subgroup": list(data.subgroup_names),
        "severity": list(data.severity_mm),
        "severity_step": list(data.severity_mm[1:]),
        "observer": list(data.observer_names),
        "case": np.arange(data.n_cases),
    }
    observed_prediction = np.where(data.observed, data.prediction, np.nan)
    idata = az.from_dict(
        posterior={name: np.asarray(sites[name]) for name in SITE_DIMS},
        sample_stats=sample_stats,
        observed_data={"prediction": observed_prediction},
        constant_data={
            "case_subgroup": np.asarray(data.subgroup_names)[data.case_subgroup],
            "case_label": np.asarray(data.case_label),
        },
        coords=coords,
        dims={**SITE_DIMS, "prediction": ["observer", "severity", "case"],
              "case_subgroup": ["case"], "case_label": ["case"]},
    )
    case_coords = {"exam": ("case", list(data.case_exam)), "breast": ("case", list(data.case_breast))}
    for group in ("posterior", "observed_data", "constant_data"):
        setattr(idata, group, getattr(idata, group).assign_coords(case_coords))
    idata.posterior.attrs.update(
        {"observer_group": data.observer_group, "observer_kind": data.observer_kind, "inference": inference,
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
