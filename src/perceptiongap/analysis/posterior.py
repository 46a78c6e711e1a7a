"""Read the posterior of one fit: its variables as NumPy draws, its cases' labels and subgroups.

A posterior is an ArviZ ``InferenceData`` (see ``perceptiongap.model``) whose group ``posterior``
holds ``b`` (chain, draw, subgroup), ``mu`` (chain, draw, case), ``gamma`` (chain, draw, severity,
subgroup) and ``nu`` (chain, draw, observer, subgroup), and whose group ``constant_data`` holds
``case_subgroup`` and ``case_label`` (case). Its attrs name the ``observer_group``, the
``inference`` method and the ``model`` variant (``release`` when absent).

Variants add to that layout, and the analyses follow it without knowing the variant by name
(:func:`case_bias_draws`, :func:`severity_effect_draws`): ``b_label`` (chain, draw, subgroup,
label) and ``gamma_label`` (chain, draw, severity, subgroup, label) are a bias and a severity
effect that depend on the breast's label (malignant or not), and ``observer_scale`` (chain,
draw, observer) scales each observer's severity effect.
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
#: Variables a variant may add to the layout, with their dims after (chain, draw).
OPTIONAL_DIMS: dict[str, tuple[str, ...]] = {
    "b_label": ("subgroup", "label"),
    "gamma_label": ("severity", "subgroup", "label"),
    "observer_scale": ("observer",),
}
#: The label coordinate of ``gamma_label`` whose effect applies to malignant breasts.
MALIGNANT = "malignant"
DEFAULT_MODEL = "release"


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
    variable = dataset[name].transpose(*SAMPLE_DIMS, *{**POSTERIOR_DIMS, **OPTIONAL_DIMS}[name])
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


def fit_model(posterior: az.InferenceData) -> str:
    """The model variant of a fit (``release`` for posteriors that do not say)."""
    return str(posterior.posterior.attrs.get("model", DEFAULT_MODEL))


def fit_key(posterior: az.InferenceData) -> tuple[str, str, str]:
    """(model, inference, observer_group): what identifies one block of the tables."""
    observer_group, inference = fit_attrs(posterior)
    return fit_model(posterior), inference, observer_group


def _label_index(dataset: xr.Dataset, cases: CaseInfo, variable: str) -> np.ndarray:
    labels = [str(name) for name in dataset["label"].values]
    if MALIGNANT not in labels or len(labels) != 2:
        raise InputError(f"{variable}'s label coordinate is {labels}, expected {MALIGNANT!r} and one other",
                         source="posterior")
    malignant = labels.index(MALIGNANT)
    return np.where(cases.label == MALIGNANT, malignant, 1 - malignant)


def subgroup_bias_draws(dataset: xr.Dataset, cases: CaseInfo, dtype: type = np.float64) -> np.ndarray:
    """Each case's subgroup bias b[g] as draws (sample, case); b[g, l] of its label where the
    posterior has ``b_label``."""
    subgroup = subgroup_index(dataset, cases.subgroup)
    if "b_label" in dataset:
        return draws(dataset, "b_label", dtype)[:, subgroup, _label_index(dataset, cases, "b_label")]
    return draws(dataset, "b", dtype)[:, subgroup]


def case_bias_draws(dataset: xr.Dataset, cases: CaseInfo, dtype: type = np.float64) -> np.ndarray:
    """Each case's bias b[g] + mu[n] as draws (sample, case); b[g, l] of its label where the
    posterior has ``b_label``."""
    return subgroup_bias_draws(dataset, cases, dtype) + draws(dataset, "mu", dtype)


def severity_effect_draws(dataset: xr.Dataset, cases: CaseInfo, dtype: type = np.float64
                          ) -> tuple[np.ndarray, np.ndarray]:
    """Each case's severity effect, as draws and a column per case: the layout's contract for variants.

    Returns ``effects`` (sample, severity, K) or, when the posterior has ``observer_scale``,
    (sample, observer, severity, K), and ``column`` (case,) such that case n's severity effect at
    severity s is ``effects[..., s, column[n]]``. K is the subgroups, or (subgroup, label) pairs
    when the posterior has ``gamma_label``.
    """
    subgroup = subgroup_index(dataset, cases.subgroup)
    if "gamma_label" in dataset:
        label = _label_index(dataset, cases, "gamma_label")
        effects = draws(dataset, "gamma_label", dtype)  # (sample, S, G, L)
        effects = effects.reshape(*effects.shape[:2], -1)
        column = (subgroup * 2 + label).astype(np.int32)
    else:
        effects, column = draws(dataset, "gamma", dtype), subgroup
    if "observer_scale" in dataset:
        effects = draws(dataset, "observer_scale", dtype)[:, :, None, None] * effects[:, None]
    return effects, column
