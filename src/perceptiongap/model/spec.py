"""How a model variant is written once: its latent sites with their priors, and its linear predictor.

A :class:`ModelSpec` lists the latent sites (name, named dimensions, prior) and one function,
``derive(params, design)``, from the sites' values and the design arrays of one observer group to

* the deterministic sites the posterior keeps (always ``gamma`` (severity, subgroup), the severity
  effect that predictive confidence is about, plus any the variant adds), and
* the linear predictor in the cell layout of :mod:`perceptiongap.model.likelihood`: the three
  effects (case_bias (case,), severity_effect (severity, case) or (observer, severity, case),
  observer_effect (observer, case)) whose sum is each cell's logit.

Both representations of a variant are derived from it: the NumPyro model that NUTS samples
(:func:`perceptiongap.model.hierarchical.numpyro_model`) and the flat-vector log density that
both ADVI methods use (:func:`perceptiongap.model.density.flat_model`).

The design arrays (:meth:`perceptiongap.model.data.ModelData.arrays`) carry every dimension in
their shapes, so that one compiled sampler serves every data set of the same shape:
``prediction`` (observer, slot, case), ``case_subgroup`` (case,), ``severity_mm`` (severity,)
and ``subgroup_label_counts`` (subgroup, label): the number of breasts of each subgroup that are
malignant and that are not.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
from jax.scipy.stats import norm

__all__ = [
    "LABELS",
    "STANDARD_NORMAL",
    "Derived",
    "ModelSpec",
    "Prior",
    "Site",
    "case_effects",
    "dim_sizes",
    "severity_effects",
]

#: The label axis of label-specific effects: malignant breasts, and all others (benign, nonbiopsied).
LABELS = ("malignant", "non_malignant")


@dataclass(frozen=True)
class Prior:
    """A prior on every element of a site: ``normal`` (N(0, scale)) or ``half_normal`` (scale > 0)."""

    kind: str = "normal"
    scale: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in ("normal", "half_normal"):
            raise ValueError(f"unknown prior kind {self.kind!r}")

    def distribution(self):
        """The NumPyro distribution of one element."""
        import numpyro.distributions as dist

        if self.kind == "normal":
            return dist.Normal(0.0, self.scale)
        return dist.HalfNormal(self.scale)

    def log_density(self, value: jnp.ndarray) -> jnp.ndarray:
        """Element-wise log density on the constrained scale (jax.scipy, as the release's ADVI density)."""
        if self.kind == "normal":
            return norm.logpdf(value) if self.scale == 1.0 else norm.logpdf(value, 0.0, self.scale)
        return jnp.log(2.0) + norm.logpdf(value, 0.0, self.scale)

    def transform(self):
        """The bijection from the real line to the prior's support (NumPyro's ``biject_to``)."""
        from numpyro.distributions.transforms import biject_to

        return biject_to(self.distribution().support)

    @property
    def constrained(self) -> bool:
        return self.kind != "normal"


STANDARD_NORMAL = Prior()


@dataclass(frozen=True)
class Site:
    """A latent variable: its name, its named dimensions (after chain and draw) and its prior."""

    name: str
    dims: tuple[str, ...]
    prior: Prior = STANDARD_NORMAL


@dataclass(frozen=True)
class Derived:
    """What a spec derives from the sites: deterministic sites and the three effects of the logit."""

    deterministic: dict[str, jnp.ndarray]
    effects: tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray]


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: one spec, one compiled model
class ModelSpec:
    """One model variant (see the module docstring).

    ``deterministic_dims`` names the dims of every deterministic site ``derive`` returns;
    ``summary`` says in METHOD's terms what the variant changes.
    """

    name: str
    summary: str
    sites: tuple[Site, ...]
    derive: Callable[[Mapping[str, jnp.ndarray], Mapping[str, jnp.ndarray]], Derived]
    deterministic_dims: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def site_names(self) -> tuple[str, ...]:
        return tuple(site.name for site in self.sites)

    @property
    def posterior_dims(self) -> dict[str, tuple[str, ...]]:
        """Every site the posterior keeps, latent and deterministic, with its named dims."""
        return {**{site.name: site.dims for site in self.sites}, **self.deterministic_dims}


def dim_sizes(design: Mapping[str, jnp.ndarray]) -> dict[str, int]:
    """The size of every named dimension, read from the design arrays' shapes (static under tracing)."""
    n_severities = int(design["severity_mm"].shape[0])
    return {
        "case": int(design["case_subgroup"].shape[0]),
        "observer": int(design["observed"].shape[0]),
        "severity": n_severities,
        "severity_step": n_severities - 1,
        "subgroup": int(design["subgroup_label_counts"].shape[0]),
        "label": len(LABELS),
    }


def severity_effects(delta: jnp.ndarray) -> jnp.ndarray:
    """gamma (S, ...) from increments delta (S - 1, ...): zero at severity 0, then cumulative sums."""
    zero = jnp.zeros((1, *delta.shape[1:]), dtype=delta.dtype)
    return jnp.concatenate([zero, jnp.cumsum(delta, axis=0)], axis=0)


def case_effects(b, mu, gamma, nu, case_subgroup) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray]:
    """The logit's terms per case, g = g(case): b[g] + mu (case,), gamma[:, g] (severity, case) and
    nu[:, g] (observer, case).

    Subgroup lookups are products with the one-hot matrix (case, subgroup), so their gradients are
    dense matrix products instead of scatters.
    """
    one_hot = jax.nn.one_hot(case_subgroup, b.shape[-1], dtype=mu.dtype)  # (case, subgroup)
    return one_hot @ b + mu, gamma @ one_hot.T, nu @ one_hot.T
