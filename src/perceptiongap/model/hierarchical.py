"""The NumPyro model of a variant, derived from its spec (:mod:`perceptiongap.model.variants`).

For the release (METHOD §5), breast n in subgroup g = g(n), observer r and severity s::

    logit p[n, r, s] = b[g] + mu[n] + gamma[s, g] + nu[r, g]
    gamma[0, g] = 0,  gamma[s, g] = delta[1, g] + ... + delta[s, g]
    b, mu, delta, nu ~ Normal(0, 1)

Humans' binary predictions are Bernoulli(p). Networks' calibrated probabilities y enter as soft
labels with log-likelihood ``y log p + (1 - y) log(1 - p)``, which for y in {0, 1} *is* the
Bernoulli log-likelihood, so one expression serves both kinds of observer. Constants are kept
(full normal densities), as Stan's ADVI evaluates them, so ELBO values and their relative changes
match Stan's scale.

The model takes the design arrays only (no integer arguments): every dimension comes from an
array's shape, so NUTS can compile its sampler once per shape and reuse it for new data
(``jit_model_args``).
"""

from __future__ import annotations

import functools

import numpyro
import numpyro.distributions as dist

from perceptiongap.model.likelihood import cell_logits, log_likelihood
from perceptiongap.model.spec import ModelSpec, case_effects, dim_sizes, severity_effects
from perceptiongap.model.variants import RELEASE, get_model

__all__ = ["LATENT_SITES", "case_effects", "numpyro_model", "perception_model", "severity_effects"]

#: The release's latent variables, in the order they are drawn.
LATENT_SITES = RELEASE.site_names


def numpyro_model(spec: ModelSpec | str):
    """The NumPyro model of ``spec`` (a spec or a variant's name), one function per variant.

    Its arguments are the design arrays of :meth:`perceptiongap.model.data.ModelData.arrays`, by
    keyword. ``prediction`` and ``observed`` have the cell shape (n_observers, slots, n_cases):
    slot k is severity k when ``severity_index`` is None, else ``severity_index`` holds each
    cell's severity. Only observed cells enter the likelihood. With ``prediction=None`` the model
    draws binary predictions for every cell (prior predictive).
    """
    return _numpyro_model(get_model(spec) if isinstance(spec, str) else spec)


@functools.cache
def _numpyro_model(spec: ModelSpec):
    def model(prediction, observed, case_subgroup, severity_index=None, *, case_malignant, severity_mm,
              subgroup_label_counts):
        design = {"observed": observed, "case_subgroup": case_subgroup, "case_malignant": case_malignant,
                  "severity_mm": severity_mm, "subgroup_label_counts": subgroup_label_counts}
        sizes = dim_sizes(design)
        params = {}
        for site in spec.sites:
            shape = [sizes[dim] for dim in site.dims]
            params[site.name] = numpyro.sample(site.name, site.prior.distribution().expand(shape).to_event(len(shape)))
        derived = spec.derive(params, design)
        for name, value in derived.deterministic.items():
            numpyro.deterministic(name, value)
        if prediction is None:
            logit = cell_logits(*derived.effects, severity_index)
            numpyro.sample("prediction", dist.Bernoulli(logits=logit).mask(observed).to_event(3))
        else:
            numpyro.factor("prediction", log_likelihood(*derived.effects, prediction, observed, severity_index))

    model.__name__ = f"{spec.name}_model"
    model.__doc__ = f"NumPyro model of the {spec.name!r} variant: {spec.summary}"
    return model


#: The release's model (METHOD §5).
perception_model = numpyro_model(RELEASE)
