"""Read the posterior of one fit: its variables as NumPy draws, its cases' labels and subgroups.

A posterior is an ArviZ ``InferenceData`` (see ``perceptiongap.model``) whose group ``posterior``
holds ``b`` (chain, draw, subgroup), ``mu`` (chain, draw, case), ``gamma`` (chain, draw, severity,
subgroup) and ``nu`` (chain, draw, observer, subgroup), and whose group ``constant_data`` holds
``case_subgroup`` and ``case_label`` (case). Its attrs name the ``observer_group`` and the
``inference`` method.
"""

from __future__ import annotations

from dataclasses import dataclass

import arviz as az
import numpy as np
import xarray as xr

from perceptiongap.errors import InputError
from perceptiongap.model.posterior_io import PREDICTIVE_MEAN_GROUP

#: The variables the analyses read, with the dims each must have after (chain, draw).
POSTERIOR_DIMS: dict[str, tuple[str, ...]] = {
    "b": ("subgroup",),
    "mu": ("case",),
    "gamma": ("severity", "subgroup"),
    "nu": ("observer", "subgroup"),
}
SAMPLE_DIMS = ("chain", "draw")


@dataclass(frozen=True)
class CaseInfo:
    """The label and subgroup name of every case (breast) of a posterior, in its case order."""

    label: np.ndarray
    subgroup: np.ndarray


def posterior_group(posterior: az.InferenceData | xr.Dataset, source: str = "posterior") -> xr.Dataset:
    """The ``posterior`` group, checked to hold the model's variables with their named dims.

    A compact posterior (a results folder's default) lacks ``mu`` and has its posterior predictive mean instead.
    """
    dataset = posterior.posterior if isinstance(posterior, az.InferenceData) else posterior
    compact = isinstance(posterior, az.InferenceData) and PREDICTIVE_MEAN_GROUP in posterior.groups()
    for name, dims in POSTERIOR_DIMS.items():
        if compact and name == "mu" and name not in dataset:
            continue
        if name not in dataset:
            raise InputError(f"variable {name!r} is missing", source=source)
        if set(dataset[name].dims) != {*SAMPLE_DIMS, *dims}:
            raise InputError(
                f"variable {name!r} has dims {dataset[name].dims}, expected {(*SAMPLE_DIMS, *dims)}",
                source=source,
            )
    return dataset


def draws(dataset: xr.Dataset, name: str, dtype: type = np.float64) -> np.ndarray:
    """Variable ``name`` as an array (sample, *dims): chains and draws flattened, dims in contract order."""
    variable = dataset[name].transpose(*SAMPLE_DIMS, *POSTERIOR_DIMS[name])
    values = np.asarray(variable.values, dtype=dtype)
    return values.reshape(-1, *values.shape[2:])


def posterior_cases(posterior: az.InferenceData, source: str = "posterior") -> CaseInfo:
    """Labels and subgroup names of the posterior's cases, from its ``constant_data`` group."""
    if "constant_data" not in posterior.groups():
        raise InputError("group 'constant_data' (case_label, case_subgroup) is missing", source=source)
    constant = posterior.constant_data
    for name in ("case_label", "case_subgroup"):
        if name not in constant or constant[name].dims != ("case",):
            raise InputError(f"constant_data variable {name!r} (case) is missing", source=source)
    n_cases = posterior.posterior.sizes.get("case", constant.sizes["case"])
    if constant.sizes["case"] != n_cases:
        raise InputError(
            f"constant_data has {constant.sizes['case']} cases, the posterior {n_cases}", source=source
        )
    return CaseInfo(
        label=np.asarray(constant["case_label"].values).astype(str),
        subgroup=np.asarray(constant["case_subgroup"].values).astype(str),
    )


def subgroup_index(dataset: xr.Dataset, case_subgroup: np.ndarray, source: str = "posterior") -> np.ndarray:
    """Position of each case's subgroup name in the posterior's ``subgroup`` coordinate."""
    names = [str(name) for name in dataset["subgroup"].values]
    positions = {name: i for i, name in enumerate(names)}
    unknown = [str(name) for name in np.unique(case_subgroup) if str(name) not in positions]
    if unknown:
        raise InputError(
            f"case_subgroup {unknown[0]!r} is not in the subgroup coordinate ({', '.join(names)})", source=source
        )
    return np.array([positions[str(name)] for name in case_subgroup], dtype=np.int32)


def fit_attrs(posterior: az.InferenceData) -> tuple[str, str]:
    """(observer_group, inference) from the posterior's attrs."""
    attrs = posterior.posterior.attrs
    missing = [key for key in ("observer_group", "inference") if key not in attrs]
    if missing:
        raise InputError(f"posterior attrs lack {', '.join(missing)}", source="posterior")
    return str(attrs["observer_group"]), str(attrs["inference"])
