"""The model variants, each written once (see :mod:`perceptiongap.model.spec`).

For breast n in subgroup g = g(n) with label l = l(n) (malignant or not), observer r, severity s:

* ``release`` (METHOD §5, the paper's): logit = b[g] + mu[n] + gamma[s, g] + nu[r, g];
  gamma[0, g] = 0 and gamma[s, g] = delta[1, g] + ... + delta[s, g], every latent N(0, 1).
* ``label_specific``: gamma[s, g, l] instead, a random walk per (g, l) as in the release
  (gamma[0, g, l] = 0, increments N(0, 1)), and a bias per (g, l), b[g, l] ~ N(0, 1). Filtering
  can then move malignant and other breasts apart or together, so the change in class
  separability is a parameter (see :mod:`perceptiongap.analysis.separability_effects`). The bias
  per label carries the unperturbed separation of malignant from other breasts: without it only
  the breasts' mu, shrunk towards 0 by their N(0, 1) prior, could, and the label-specific gammas
  would take up the separation the prior denies mu at every perturbed severity (measured on a
  simulated study whose malignant breasts are 2 logits apart and have no label-specific effect at
  0.5 mm: without b[g, l], gamma[0.5 mm, g, l] came out +0.31 and -0.94 where the truth is -0.3
  for both labels, and the checks of :mod:`perceptiongap.analysis.ppc` failed at severity 0; with
  it, -0.17 and -0.33, and none failed). Its ``gamma[s, g]`` (predictive confidence) and ``b[g]`` are the means over
  the subgroup's breasts, weighted by how many breasts of each label subgroup g has;
  ``gamma_label`` and ``b_label`` keep the label-specific values.
* ``independent``: gamma[s, g] ~ N(0, 1) for each s > 0 on its own (no random walk), gamma[0, g] = 0.
* ``observer_slopes``: the release model with each observer's severity effect scaled,
  logit = b[g] + mu[n] + lambda[r] gamma[s, g] + nu[r, g], lambda[r] = exp(tau z[r]),
  z[r] ~ N(0, 1), tau ~ HalfNormal(1): readers may differ in how much filtering affects them,
  partially pooled towards the typical observer (lambda = 1) by the spread tau, which is learnt.
  ``gamma`` is the typical observer's effect; ``observer_scale`` keeps lambda.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp

from perceptiongap.errors import InputError
from perceptiongap.model.spec import LABELS, Derived, ModelSpec, Prior, Site, case_effects, severity_effects

__all__ = ["DEFAULT_MODEL", "MODELS", "MODEL_NAMES", "get_model"]

_BASE = (Site("b", ("subgroup",)), Site("mu", ("case",)))
_NU = Site("nu", ("observer", "subgroup"))


def _release(params: Mapping, design: Mapping) -> Derived:
    gamma = severity_effects(params["delta"])
    return Derived({"gamma": gamma}, case_effects(params["b"], params["mu"], gamma, params["nu"],
                                                  design["case_subgroup"]))


def _independent(params: Mapping, design: Mapping) -> Derived:
    perturbed = params["gamma_perturbed"]
    gamma = jnp.concatenate([jnp.zeros((1, perturbed.shape[1]), dtype=perturbed.dtype), perturbed], axis=0)
    return Derived({"gamma": gamma}, case_effects(params["b"], params["mu"], gamma, params["nu"],
                                                  design["case_subgroup"]))


def label_weights(counts: jnp.ndarray) -> jnp.ndarray:
    """(subgroup, label) share of each label among a subgroup's breasts (rows sum to 1; an empty row is 0)."""
    totals = counts.sum(axis=1, keepdims=True)
    return counts / jnp.where(totals > 0, totals, 1.0)


def _label_specific(params: Mapping, design: Mapping) -> Derived:
    gamma_label = severity_effects(params["delta"])  # (S, G, L)
    b_label = params["b_label"]  # (G, L)
    weights = label_weights(design["subgroup_label_counts"]).astype(gamma_label.dtype)
    mu = params["mu"]
    one_hot = jax.nn.one_hot(design["case_subgroup"], b_label.shape[0], dtype=mu.dtype)  # (C, G)
    malignant = design["case_malignant"].astype(mu.dtype)  # (C,)
    case_bias = (one_hot @ b_label[:, 0]) * malignant + (one_hot @ b_label[:, 1]) * (1.0 - malignant) + mu
    severity_effect = ((gamma_label[..., 0] @ one_hot.T) * malignant
                       + (gamma_label[..., 1] @ one_hot.T) * (1.0 - malignant))  # (S, C)
    deterministic = {"b": jnp.sum(b_label * weights, axis=-1), "gamma": jnp.sum(gamma_label * weights, axis=-1),
                     "gamma_label": gamma_label}
    return Derived(deterministic, (case_bias, severity_effect, params["nu"] @ one_hot.T))


def _observer_slopes(params: Mapping, design: Mapping) -> Derived:
    gamma = severity_effects(params["delta"])
    scale = jnp.exp(params["slope_spread"] * params["slope_z"])  # (O,)
    case_bias, severity_effect, observer_effect = case_effects(params["b"], params["mu"], gamma, params["nu"],
                                                               design["case_subgroup"])
    return Derived({"gamma": gamma, "observer_scale": scale},
                   (case_bias, scale[:, None, None] * severity_effect[None], observer_effect))


RELEASE = ModelSpec(
    name="release",
    summary="METHOD §5 as released: gamma[s, g], a random walk over severities per subgroup.",
    sites=(*_BASE, Site("delta", ("severity_step", "subgroup")), _NU),
    derive=_release,
    deterministic_dims={"gamma": ("severity", "subgroup")},
)
LABEL_SPECIFIC = ModelSpec(
    name="label_specific",
    summary="b[g, l] and gamma[s, g, l] for malignant and non-malignant breasts apart, gamma a random walk; "
            "filtering can change class separability.",
    sites=(Site("b_label", ("subgroup", "label")), Site("mu", ("case",)),
           Site("delta", ("severity_step", "subgroup", "label")), _NU),
    derive=_label_specific,
    deterministic_dims={"b": ("subgroup",), "gamma": ("severity", "subgroup"),
                        "gamma_label": ("severity", "subgroup", "label")},
)
INDEPENDENT = ModelSpec(
    name="independent",
    summary="gamma[s, g] ~ N(0, 1) at each severity on its own, no random walk.",
    sites=(*_BASE, Site("gamma_perturbed", ("severity_step", "subgroup")), _NU),
    derive=_independent,
    deterministic_dims={"gamma": ("severity", "subgroup")},
)
OBSERVER_SLOPES = ModelSpec(
    name="observer_slopes",
    summary="the release model with observer r's severity effect scaled by lambda[r] = exp(tau z[r]), "
            "z[r] ~ N(0, 1), tau ~ HalfNormal(1).",
    sites=(*_BASE, Site("delta", ("severity_step", "subgroup")), _NU,
           Site("slope_spread", (), Prior("half_normal", 1.0)), Site("slope_z", ("observer",))),
    derive=_observer_slopes,
    deterministic_dims={"gamma": ("severity", "subgroup"), "observer_scale": ("observer",)},
)

#: Every variant by name, the release's first.
MODELS: dict[str, ModelSpec] = {spec.name: spec for spec in (RELEASE, LABEL_SPECIFIC, INDEPENDENT, OBSERVER_SLOPES)}
MODEL_NAMES: tuple[str, ...] = tuple(MODELS)
DEFAULT_MODEL = "release"
assert LABELS[0] == "malignant"  # _label_specific indexes the label axis so


def get_model(name: str) -> ModelSpec:
    """The spec of the variant ``name``; an unknown name is an InputError naming the field ``model``."""
    try:
        return MODELS[name]
    except KeyError:
        raise InputError(f"unknown model {name!r}; choose from {', '.join(MODEL_NAMES)}", source="model") from None
