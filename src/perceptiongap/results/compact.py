"""What a results folder keeps of a fit by default: everything the analyses and the report read, and no more.

The analyses read of a posterior: the draws of ``b``, ``delta``, ``gamma`` and ``nu`` (predictive
confidence, NUTS's R-hat and ESS), its attributes (diagnostics, ELBO traces), ``constant_data``
(case labels and subgroups) and the posterior predictive probability of every observer x severity
x case (class separability). That probability is a mean over all draws of the per-case effects
``mu`` (1,440 per draw on the release: about 85 % of a posterior file), so it is computed once, when
the fit is saved, and stored instead of those draws (group ``predictive_mean``, float32, the
precision it is computed in). The posterior predictive checks (:mod:`perceptiongap.analysis.ppc`)
replicate predictions at a few hundred evenly spaced draws; ``mu`` is kept at those draws only
(group ``ppc_case_draws``). ``keep_all_draws`` keeps every ``mu`` draw, as a fit returns it.
"""

from __future__ import annotations

import arviz as az
import numpy as np
import xarray as xr

from perceptiongap.model.posterior_io import PREDICTIVE_MEAN_GROUP

__all__ = ["compact_posterior"]

#: Per-case draws that only the posterior predictive reads.
CASE_DRAWS = ("mu",)


def compact_posterior(posterior: az.InferenceData) -> az.InferenceData:
    """``posterior`` without the per-case draws, with their posterior predictive mean in their place
    (and those draws at the draws the posterior predictive checks replicate).

    The observed predictions are kept as float32 (no analysis reads them from the posterior: the
    study holds them). :func:`perceptiongap.analysis.posterior_predictive` of the result equals that
    of ``posterior`` to float32 rounding.
    """
    from perceptiongap.analysis.posterior import draws
    from perceptiongap.analysis.ppc import PPC_CASE_DRAWS_GROUP, checked_draws
    from perceptiongap.analysis.predictive import posterior_predictive

    predictive = posterior_predictive(posterior)
    source = posterior.posterior
    checked = None
    if "mu" in source:
        mu = draws(source, "mu", source["mu"].dtype.type)  # (sample, case), chain-major as the checks index it
        chosen = checked_draws(mu.shape[0])
        case = source["mu"].dims[-1]
        coords = {name: coord for name, coord in source.coords.items() if coord.dims == (case,)}
        checked = xr.Dataset({"mu": xr.DataArray(
            mu[chosen], dims=("ppc_sample", case), coords={"ppc_sample": chosen, **coords})})
    mean = xr.Dataset({"mean": xr.DataArray(predictive.values.astype(np.float32), dims=predictive.dims,
                                            coords=predictive.coords)})
    groups = {"posterior": posterior.posterior.drop_vars([n for n in CASE_DRAWS if n in posterior.posterior])}
    for name in posterior.groups():
        if name == "posterior" or name in (PREDICTIVE_MEAN_GROUP, PPC_CASE_DRAWS_GROUP):
            continue
        dataset = getattr(posterior, name)
        if name == "observed_data":
            dataset = dataset.astype({v: np.float32 for v in dataset.data_vars if dataset[v].dtype == np.float64})
        groups[name] = dataset
    compact = az.InferenceData(**groups)
    compact.add_groups({PREDICTIVE_MEAN_GROUP: mean})
    if checked is not None:
        compact.add_groups({PPC_CASE_DRAWS_GROUP: checked})
    compact.posterior.attrs.update(posterior.posterior.attrs)
    compact.posterior.attrs["draws_kept"] = "compact"
    return compact
