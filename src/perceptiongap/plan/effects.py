"""Where a simulated study's parameters come from: stated effects (a CSV) or a fitted posterior.

A :class:`ParameterSource` gives, for each replication, one set of the model's parameters for a
new study (METHOD §5): ``b`` (subgroup,), the severity effect ``gamma`` (severity, subgroup) or,
for ``label_specific``, ``gamma_label`` (severity, subgroup, label), the spread of new readers'
effects ``nu_sd`` (subgroup,), and the mean and sd of a new breast's bias per (subgroup, label)
class, ``mu_mean`` and ``mu_sd`` (subgroup, label). It also carries the case mix: the share of
breasts in each (subgroup, label) class (``prevalence``, rows sum to 1 overall).

* :func:`effects_from_csv`: ``gamma`` (and ``delta``) as stated; b, nu and mu from the priors
  (every latent N(0, 1), so ``nu_sd`` = 1, ``mu_mean`` = 0, ``mu_sd`` = 1).
* :func:`effects_from_posterior`: each replication takes one posterior draw (chosen with the
  replication's generator): its b and gamma; its spread of the fitted readers' nu (sd over
  readers, ddof=1) for the new readers; its mean and sd of the fitted breasts' mu per class, so
  that malignant breasts stay as separable from the others as in the fitted study. From a
  ``label_specific`` posterior also its gamma_label (so its delta); its bias per (subgroup, label)
  b_label is added to that class's mean bias ``mu_mean`` (``b`` is then 0: the class means carry it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from perceptiongap.errors import InputError
from perceptiongap.model.spec import LABELS

__all__ = [
    "DEFAULT_PREVALENCE",
    "ParameterSource",
    "effects_from_csv",
    "effects_from_posterior",
    "label_effects",
    "label_weights_of",
    "prevalence_from_cases",
]

#: The release's case mix rounded (breasts per (subgroup, label) of its 720 exams, 1440 breasts), the
#: default when no posterior or Cases table states one. Subgroups not analysed are pooled as ``other``.
DEFAULT_PREVALENCE: dict[tuple[str, str], float] = {
    ("microcalcifications", "malignant"): 22, ("microcalcifications", "non_malignant"): 87,
    ("soft_tissue_lesions", "malignant"): 30, ("soft_tissue_lesions", "non_malignant"): 106,
    ("other", "malignant"): 9, ("other", "non_malignant"): 1186,
}


@dataclass(frozen=True)
class ParameterSource:
    """The parameters of simulated studies (see the module docstring).

    ``subgroups`` (G,), ``severity_mm`` (S,), ``prevalence`` (G, 2) shares of breasts by subgroup and
    label (malignant, non-malignant); ``gamma`` (D, S, G) or ``gamma_label`` (D, S, G, 2), ``b``
    (D, G), ``nu_sd`` (D, G), ``mu_mean`` and ``mu_sd`` (D, G, 2): D = 1 for stated effects, the
    number of posterior draws otherwise (a replication picks one draw). ``delta`` (D, S, G): stated
    label-specific effects (``label_specific`` with an effects CSV), kept so that a new case mix
    recomputes ``gamma_label`` (:func:`label_effects`); None otherwise.
    """

    subgroups: tuple[str, ...]
    severity_mm: tuple[float, ...]
    prevalence: np.ndarray
    gamma: np.ndarray
    gamma_label: np.ndarray | None
    b: np.ndarray | None
    nu_sd: np.ndarray
    mu_mean: np.ndarray
    mu_sd: np.ndarray
    origin: str
    delta: np.ndarray | None = None

    @property
    def n_draws(self) -> int:
        return int(self.gamma.shape[0])

    def draw(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """One replication's parameters; ``b`` from its prior N(0, 1) when the source has none."""
        d = int(rng.integers(self.n_draws))
        b = rng.normal(0.0, 1.0, len(self.subgroups)) if self.b is None else self.b[d]
        out = {"b": b, "gamma": self.gamma[d], "nu_sd": self.nu_sd[d], "mu_mean": self.mu_mean[d],
               "mu_sd": self.mu_sd[d]}
        if self.gamma_label is not None:
            out["gamma_label"] = self.gamma_label[d]
        return out


def _prevalence_array(subgroups: tuple[str, ...], mix: dict[tuple[str, str], float]) -> np.ndarray:
    table = np.array([[mix.get((g, label), 0.0) for label in LABELS] for g in subgroups], dtype=float)
    return table / table.sum()


def label_weights_of(prevalence: np.ndarray) -> np.ndarray:
    """(G, 2) share of malignant and non-malignant breasts within each subgroup (an empty subgroup: 0.5 each)."""
    totals = prevalence.sum(axis=1, keepdims=True)
    return np.divide(prevalence, totals, out=np.full_like(prevalence, 0.5), where=totals > 0)


def label_effects(gamma: np.ndarray, delta: np.ndarray, prevalence: np.ndarray) -> np.ndarray:
    """gamma_label (D, S, G, 2) = (gamma + w_n delta, gamma - w_m delta) from gamma and delta (D, S, G):
    breast-weighted mean gamma, malignant minus non-malignant delta; w from ``prevalence`` (G, 2)."""
    w = label_weights_of(prevalence)
    return np.stack([gamma + w[:, 1] * delta, gamma - w[:, 0] * delta], axis=-1)


def prevalence_from_cases(cases: pd.DataFrame, subgroups: tuple[str, ...]) -> np.ndarray:
    """(G, 2) share of breasts per (subgroup, malignant / not) in a Cases table, subgroups as given."""
    label = np.where(cases["label"].astype(str) == "malignant", LABELS[0], LABELS[1])
    mix = pd.Series(1.0, index=pd.MultiIndex.from_arrays([cases["subgroup"].astype(str), label]))
    mix = mix.groupby(level=[0, 1]).sum()
    return _prevalence_array(subgroups, {key: float(v) for key, v in mix.items()})


def effects_from_csv(path: str | Path, *, model: str = "release",
                     prevalence: dict[tuple[str, str], float] | None = None) -> ParameterSource:
    """Stated effects: ``subgroup, severity_mm, gamma`` (and ``delta`` for ``label_specific``).

    Every subgroup must list the same severities, one of them 0 with gamma 0 (the reference).
    Subgroups of the case mix that the file does not list get gamma 0. With ``delta`` (the change
    in separability: malignant minus non-malignant breasts of the subgroup), the label-specific
    effects are gamma_label = (gamma + w_n delta, gamma - w_m delta), w_m and w_n being the
    subgroup's shares of malignant and non-malignant breasts, so that their breast-weighted mean is
    gamma and their difference delta.
    """
    path = Path(path)
    try:
        table = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as error:
        raise InputError(f"cannot read effects: {error}", source=path) from None
    need = ["subgroup", "severity_mm", "gamma"] + (["delta"] if model == "label_specific" else [])
    missing = [c for c in need if c not in table.columns]
    if missing:
        raise InputError(f"missing column {missing[0]!r} (need {', '.join(need)})", source=path)
    for column in need[1:]:
        values = pd.to_numeric(table[column], errors="coerce")
        if values.isna().any() or not np.isfinite(values).all():
            row = int(np.flatnonzero(values.isna() | ~np.isfinite(values.fillna(0)))[0]) + 2
            raise InputError(f"column {column!r} must hold finite numbers (line {row})", source=path)
        table[column] = values.astype(float)
    table["subgroup"] = table["subgroup"].astype(str)
    if table.duplicated(["subgroup", "severity_mm"]).any():
        raise InputError("a (subgroup, severity_mm) pair is listed twice", source=path)
    severities = sorted(table["severity_mm"].unique())
    if severities[0] != 0.0:
        raise InputError("severity_mm must include 0 (unperturbed, the reference)", source=path)
    counts = table.groupby("subgroup")["severity_mm"].nunique()
    if (counts != len(severities)).any():
        raise InputError(f"subgroup {counts.index[int(np.argmax(counts != len(severities)))]!r} does not list every "
                         f"severity ({', '.join(f'{s:g}' for s in severities)})", source=path)
    if (table.loc[table["severity_mm"] == 0.0, need[2:]] != 0).any().any():
        raise InputError("effects at severity_mm 0 must be 0 (it is the reference)", source=path)
    mix = dict(DEFAULT_PREVALENCE if prevalence is None else prevalence)
    listed = list(pd.unique(table["subgroup"]))
    in_mix = [g for g, _ in mix]
    absent = [g for g in listed if g not in in_mix]
    if absent:
        raise InputError(f"subgroup {absent[0]!r} is not in the case mix ({', '.join(dict.fromkeys(in_mix))})",
                         source=path)
    subgroups = tuple(dict.fromkeys(listed + in_mix))
    share = _prevalence_array(subgroups, mix)
    pivot = table.pivot(index="severity_mm", columns="subgroup", values="gamma").reindex(columns=subgroups)
    gamma = pivot.fillna(0.0).to_numpy()  # (S, G)
    gamma_label = delta = None
    if model == "label_specific":
        delta = table.pivot(index="severity_mm", columns="subgroup", values="delta").reindex(columns=subgroups)
        delta = delta.fillna(0.0).to_numpy()[None]
        gamma_label = label_effects(gamma[None], delta, share)
    n_groups = len(subgroups)
    return ParameterSource(
        subgroups=subgroups, severity_mm=tuple(float(s) for s in severities), prevalence=share,
        gamma=gamma[None], gamma_label=gamma_label, b=None, nu_sd=np.ones((1, n_groups)),
        mu_mean=np.zeros((1, n_groups, 2)), mu_sd=np.ones((1, n_groups, 2)), origin=str(path), delta=delta,
    )


def effects_from_posterior(posterior, *, source: str = "--from", model: str = "release") -> ParameterSource:
    """Parameters from a fitted posterior of the ``release`` layout (b, mu, gamma, nu; see
    :mod:`perceptiongap.analysis.posterior`), its case mix from the posterior's cases. A compact
    posterior (:mod:`perceptiongap.results.compact`) gives the draws at which it keeps ``mu``.
    With ``model="label_specific"`` the posterior must be of that model (b_label, gamma_label)."""
    from perceptiongap.analysis.posterior import draws, posterior_cases, posterior_group
    from perceptiongap.analysis.ppc import PPC_CASE_DRAWS_GROUP

    dataset = posterior_group(posterior, source=source)
    cases = posterior_cases(posterior, source=source)
    subgroups = tuple(str(s) for s in dataset["subgroup"].values)
    b, gamma, nu = (draws(dataset, name) for name in ("b", "gamma", "nu"))
    gamma_label = b_label = None
    if model == "label_specific":
        missing = [name for name in ("b_label", "gamma_label") if name not in dataset.data_vars]
        if missing:
            raise InputError(f"not a label_specific posterior (no {missing[0]!r}); fit with --model label_specific",
                             source=source)
        order = [list(map(str, dataset["label"].values)).index(label) for label in LABELS]
        b_label = draws(dataset, "b_label")[..., order]  # (D, G, 2)
        gamma_label = draws(dataset, "gamma_label")[..., order]  # (D, S, G, 2)
    if "mu" in dataset.data_vars:
        mu = draws(dataset, "mu")
    elif PPC_CASE_DRAWS_GROUP in posterior.groups():
        # A compact posterior (a results folder's default) keeps mu at some hundred draws only: use those draws.
        kept = getattr(posterior, PPC_CASE_DRAWS_GROUP)["mu"].transpose("ppc_sample", "case")
        chosen = np.asarray(kept["ppc_sample"].values, dtype=int)
        mu, b, gamma, nu = np.asarray(kept.values, dtype=np.float64), b[chosen], gamma[chosen], nu[chosen]
        if gamma_label is not None:
            b_label, gamma_label = b_label[chosen], gamma_label[chosen]
    else:
        raise InputError("the posterior keeps no per-case draws (mu); refit with --keep-all-draws", source=source)
    if nu.shape[1] < 2:
        raise InputError("the posterior has fewer than 2 readers: no spread of reader effects to draw from",
                         source=source)
    group_index = pd.Index(subgroups).get_indexer(cases.subgroup.astype(str))
    malignant = cases.label.astype(str) == "malignant"
    mu_mean = np.zeros((mu.shape[0], len(subgroups), 2))
    mu_sd = np.ones((mu.shape[0], len(subgroups), 2))
    for g in range(len(subgroups)):  # a handful of classes; each a vectorised reduction over draws
        for k, is_class in enumerate((malignant, ~malignant)):
            members = (group_index == g) & is_class
            if members.sum() >= 2:
                mu_mean[:, g, k] = mu[:, members].mean(axis=1)
                mu_sd[:, g, k] = mu[:, members].std(axis=1, ddof=1)
    if b_label is not None:
        # The label-specific logit is b_label[g, l] + mu[n] + ...: fold each class's bias into its mean bias.
        mu_mean, b = mu_mean + b_label, np.zeros_like(b)
    frame = pd.DataFrame({"subgroup": cases.subgroup.astype(str), "label": cases.label.astype(str)})
    return ParameterSource(
        subgroups=subgroups, severity_mm=tuple(float(s) for s in dataset["severity"].values),
        prevalence=prevalence_from_cases(frame, subgroups), gamma=gamma, gamma_label=gamma_label, b=b,
        nu_sd=nu.std(axis=1, ddof=1), mu_mean=mu_mean, mu_sd=mu_sd, origin=source,
    )
