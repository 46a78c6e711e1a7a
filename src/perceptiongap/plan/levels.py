"""Grid levels beyond readers, exams and design: the severities a study uses, and its case mix.

A **severity set** (``--severities "0,1,2,4"``) is the list of severities (mm) the planned study
shows, 0 (unperturbed, the reference) first. A parameter source (stated effects or a posterior)
knows the effects at its own severities only; at a severity between two of them the effect is
interpolated linearly in severity_mm on the random-walk scale (gamma, and gamma_label for the
label-specific model: the cumulative sums of the walk's increments), draw by draw. A severity
above the source's largest is refused: nothing says how the effect goes on.

A **case mix** (``--prevalence "microcalcifications=0.2:0.3,soft_tissue_lesions=0.3"``) states,
for some subgroups, the share of breasts in the subgroup and optionally (after ``:``) the share of
those breasts that are malignant. A subgroup without a stated malignant share keeps the source's;
subgroups not named share the rest of the breasts in the proportions (and with the malignant
shares) of the source. Each simulated breast's class is drawn from the mix (so an exam's two
breasts are independent draws).

For the label-specific model with stated delta, gamma_label is recomputed from gamma and delta
with the new mix's label weights (:func:`perceptiongap.plan.effects.label_effects`); a posterior's
gamma_label draws stay as they are (they are the model's parameters), and gamma, their
breast-weighted mean, is recomputed with the new mix.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np

from perceptiongap.errors import InputError
from perceptiongap.plan.effects import ParameterSource, label_effects, label_weights_of

__all__ = ["CaseMix", "case_mix_label", "severity_set_label", "with_case_mix", "with_severities"]

#: A case mix as the grid carries it: ((subgroup, share of breasts, malignant share or None), ...).
CaseMix = tuple[tuple[str, float, float | None], ...]


def severity_set_label(severity_mm: Sequence[float]) -> str:
    """``"0,1,2,4"``: how a severity set is named in ``power.csv`` (column ``severity_set``)."""
    return ",".join(f"{float(s):g}" for s in severity_mm)


def case_mix_label(source: ParameterSource, subgroups: Sequence[str]) -> str:
    """``"microcalcifications=0.2:0.3,..."``: share of breasts and malignant share of each of
    ``subgroups`` under ``source``'s case mix (column ``prevalence`` of ``power.csv``)."""
    parts = []
    for subgroup in subgroups:
        row = source.prevalence[source.subgroups.index(subgroup)]
        share = float(row.sum())
        malignant = float(row[0] / share) if share > 0 else 0.0
        parts.append(f"{subgroup}={share:.3g}:{malignant:.3g}")
    return ",".join(parts)


def _interpolate(values: np.ndarray | None, known: np.ndarray, wanted: np.ndarray) -> np.ndarray | None:
    """Linear interpolation along axis 1 (severity) of (D, S, ...) arrays, all draws at once."""
    if values is None:
        return None
    upper = np.clip(np.searchsorted(known, wanted, side="left"), 1, len(known) - 1)
    lower = upper - 1
    weight = (wanted - known[lower]) / (known[upper] - known[lower])
    weight = weight.reshape((1, -1) + (1,) * (values.ndim - 2))
    return (1.0 - weight) * values[:, lower] + weight * values[:, upper]


def with_severities(source: ParameterSource, severity_mm: Sequence[float],
                    option: str = "severities") -> ParameterSource:
    """``source`` at the severities ``severity_mm`` (0 first, increasing), effects interpolated
    (see the module docstring); an InputError naming ``option`` for a set it cannot give."""
    wanted = np.asarray(severity_mm, dtype=float)
    text = severity_set_label(wanted)
    if wanted.size < 2 or wanted[0] != 0.0:
        raise InputError(f"a severity set needs 0 (the reference) first and at least one perturbed severity, "
                         f"got {text!r}", source=option)
    if not np.all(np.isfinite(wanted)) or np.any(np.diff(wanted) <= 0):
        raise InputError(f"severities must increase within a set, got {text!r}", source=option)
    known = np.asarray(source.severity_mm, dtype=float)
    if wanted[-1] > known[-1] + 1e-9:
        raise InputError(f"{wanted[-1]:g} mm is beyond the effects' largest severity ({known[-1]:g} mm; "
                         f"they are known at {severity_set_label(known)})", source=option)
    if wanted.size == known.size and np.allclose(wanted, known):
        return source
    return dataclasses.replace(
        source, severity_mm=tuple(float(s) for s in wanted),
        gamma=_interpolate(source.gamma, known, wanted),
        gamma_label=_interpolate(source.gamma_label, known, wanted),
        delta=_interpolate(source.delta, known, wanted),
    )


def with_case_mix(source: ParameterSource, mix: Mapping[str, tuple[float, float | None]] | CaseMix,
                  option: str = "prevalence") -> ParameterSource:
    """``source`` with the case mix ``mix`` ({subgroup: (share of breasts, malignant share or None)});
    an InputError naming ``option`` for a mix it cannot give (see the module docstring)."""
    if isinstance(mix, Mapping):
        entries = dict(mix)
    else:
        entries = {name: (share, malignant) for name, share, malignant in mix}
    prevalence = np.asarray(source.prevalence, dtype=float)
    totals = prevalence.sum(axis=1)
    named = np.zeros(len(source.subgroups), dtype=bool)
    new = np.zeros_like(prevalence)
    for subgroup, (share, malignant) in entries.items():
        if subgroup not in source.subgroups:
            raise InputError(f"subgroup {subgroup!r} is not in the case mix ({', '.join(source.subgroups)})",
                             source=option)
        if not 0.0 < share <= 1.0:
            raise InputError(f"the share of breasts of {subgroup!r} must be in (0, 1], got {share:g}", source=option)
        g = source.subgroups.index(subgroup)
        if malignant is None:
            malignant = prevalence[g, 0] / totals[g] if totals[g] > 0 else 0.0
        elif not 0.0 <= malignant <= 1.0:
            raise InputError(f"the malignant share of {subgroup!r} must be in [0, 1], got {malignant:g}",
                             source=option)
        named[g] = True
        new[g] = share * np.array([malignant, 1.0 - malignant])
    stated = float(new.sum())
    rest = float(prevalence[~named].sum())
    if stated > 1.0 + 1e-9:
        raise InputError(f"the stated shares of breasts add up to {stated:g} (more than 1)", source=option)
    if stated < 1.0 - 1e-9:
        if rest <= 0.0:
            raise InputError(f"the stated shares of breasts add up to {stated:g} and no other subgroup is left to "
                             "take the rest", source=option)
        new[~named] = prevalence[~named] * (1.0 - stated) / rest
    new = new / new.sum()
    gamma, gamma_label = source.gamma, source.gamma_label
    if source.delta is not None:
        gamma_label = label_effects(gamma, source.delta, new)
    elif gamma_label is not None:
        gamma = np.einsum("dsgl,gl->dsg", gamma_label, label_weights_of(new))
    return dataclasses.replace(source, prevalence=new, gamma=gamma, gamma_label=gamma_label)
