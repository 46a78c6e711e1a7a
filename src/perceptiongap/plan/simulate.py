"""Simulate reader studies from the model (METHOD §5) with a design of ``study design``.

One replication of a grid cell (R readers, E exams, a design):

1. its parameters from the :class:`~perceptiongap.plan.effects.ParameterSource` (b, gamma, the
   spread of reader effects, the breasts' bias distribution);
2. 2E breasts, each breast's (subgroup, label) drawn from the case mix; exam e holds breasts 2e
   (left) and 2e + 1 (right);
3. who reads which exam at which severity: :func:`perceptiongap.readers.design.make_design`, the
   function behind ``perceptiongap study design`` (``balanced`` or ``release``);
4. new readers' effects nu[r, g] ~ N(0, nu_sd[g]) and breasts' biases mu[n] ~ N(mu_mean[c],
   mu_sd[c]) for the breast's class c;
5. every reader's binary answer for both breasts of every exam, at the exam's severity for that
   reader: y ~ Bernoulli(sigmoid(b[g] + mu[n] + gamma[s, g] + nu[r, g])) (``gamma_label[s, g, l]``
   for the label-specific model).

The replications of a cell have the same shape, so they are stacked on a leading axis for
:func:`perceptiongap.plan.laplace.fit_studies`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit

from perceptiongap.model.spec import LABELS
from perceptiongap.plan.effects import ParameterSource
from perceptiongap.readers.design import make_design

__all__ = ["SimulatedStudies", "simulate_studies"]


@dataclass(frozen=True)
class SimulatedStudies:
    """B simulated studies of one shape: ``arrays`` as the model takes them, stacked (B, ...), and
    the truth of each (``gamma`` (B, S, G))."""

    arrays: dict[str, np.ndarray]
    gamma: np.ndarray

    @property
    def reps(self) -> int:
        return int(self.gamma.shape[0])


def _one_study(source: ParameterSource, n_readers: int, n_exams: int, design: str,
               rng: np.random.Generator) -> tuple[dict[str, np.ndarray], np.ndarray]:
    params = source.draw(rng)
    n_groups, n_severities, n_cases = len(source.subgroups), len(source.severity_mm), 2 * n_exams
    klass = rng.choice(n_groups * 2, size=n_cases, p=source.prevalence.ravel())
    case_subgroup, case_label = np.divmod(klass, 2)  # label 0: malignant
    subgroup_names = np.asarray(source.subgroups, dtype=object)
    exams = tuple(f"exam{e:05d}" for e in range(n_exams))
    readers = tuple(f"reader{r:03d}" for r in range(n_readers))
    plan = make_design(exams, subgroup_names[case_subgroup].reshape(n_exams, 2), readers, n_severities,
                       design=design, seed=int(rng.integers(2**31)))
    severity = np.array([[levels[e] for e in exams] for levels in plan.severity], dtype=np.int32)  # (R, E)
    severity_of_case = np.repeat(severity, 2, axis=1)  # (R, C)

    nu = rng.normal(0.0, 1.0, (n_readers, n_groups)) * params["nu_sd"]
    mu = params["mu_mean"][case_subgroup, case_label] + params["mu_sd"][case_subgroup, case_label] * rng.normal(
        size=n_cases)
    if "gamma_label" in params:
        effect = params["gamma_label"][severity_of_case, case_subgroup[None, :], case_label[None, :]]
    else:
        effect = params["gamma"][severity_of_case, case_subgroup[None, :]]
    logit = params["b"][case_subgroup] + mu + effect + nu[:, case_subgroup]  # (R, C)
    answer = (rng.random(logit.shape) < expit(logit)).astype(np.float64)

    counts = np.zeros((n_groups, len(LABELS)))
    np.add.at(counts, (case_subgroup, case_label), 1.0)
    arrays = {
        "prediction": answer[:, None, :],
        "observed": np.ones((n_readers, 1, n_cases), dtype=bool),
        "severity_index": severity_of_case[:, None, :],
        "case_subgroup": case_subgroup.astype(np.int32),
        "case_malignant": (case_label == 0).astype(np.float64),
        "severity_mm": np.asarray(source.severity_mm, dtype=np.float64),
        "subgroup_label_counts": counts,
    }
    return arrays, np.asarray(params["gamma"], dtype=np.float64)


def simulate_studies(source: ParameterSource, n_readers: int, n_exams: int, design: str,
                     seeds: list[np.random.SeedSequence]) -> SimulatedStudies:
    """One study per seed (a replication's own stream), stacked; see the module docstring."""
    studies = [_one_study(source, n_readers, n_exams, design, np.random.default_rng(seed)) for seed in seeds]
    arrays = {name: np.stack([study[0][name] for study in studies]) for name in studies[0][0]}
    return SimulatedStudies(arrays=arrays, gamma=np.stack([study[1] for study in studies]))
