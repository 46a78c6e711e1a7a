"""Simulate a study from the model with known parameters (used by the model and analysis tests)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import expit

SUBGROUPS = ("microcalcifications", "soft_tissue_lesions", "nonbiopsied")


def simulate_study(
    seed: int,
    *,
    n_exams: int = 120,
    severity_mm: tuple[float, ...] = (0.0, 0.5, 1.0, 4.0),
    n_readers: int = 6,
    n_networks: int = 3,
    gamma: np.ndarray | None = None,
    malignant_shift: np.ndarray | None = None,
    separation: float = 0.0,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, np.ndarray]]:
    """Observations (sparse humans, dense soft-label machines), Cases and the true parameters.

    Humans read each exam once at a severity drawn uniformly; machines predict every exam at every
    severity, their soft label being the model's probability itself. ``malignant_shift``
    (severity, subgroup) is added to the severity effect of malignant breasts only: a
    label-specific effect (truth ``gamma_label``, label 0 malignant, 1 not). ``separation`` is
    added to the case bias mu of malignant breasts, so that unperturbed predictions separate them.
    """
    rng = np.random.default_rng(seed)
    n_cases, n_sub, n_sev = 2 * n_exams, len(SUBGROUPS), len(severity_mm)
    case_subgroup = rng.integers(0, n_sub, size=n_cases)
    label = np.where(case_subgroup == n_sub - 1, "nonbiopsied",
                     np.where(rng.random(n_cases) < 0.5, "malignant", "benign"))
    cases = pd.DataFrame({
        "exam": np.repeat([f"exam{i:03d}" for i in range(n_exams)], 2),
        "breast": np.tile(["L", "R"], n_exams),
        "label": label,
        "subgroup": np.asarray(SUBGROUPS)[case_subgroup],
    })
    if gamma is None:
        gamma = np.zeros((n_sev, n_sub))
        gamma[1:] = np.cumsum(rng.normal(-0.5, 0.4, size=(n_sev - 1, n_sub)), axis=0)
    truth = {"b": rng.normal(0, 1, n_sub), "mu": rng.normal(0, 1, n_cases), "gamma": gamma}
    shift = np.zeros((n_sev, n_sub)) if malignant_shift is None else np.asarray(malignant_shift, dtype=float)
    truth["gamma_label"] = np.stack([gamma + shift, gamma], axis=-1)
    malignant = (label == "malignant").astype(float)
    truth["mu"] = truth["mu"] + separation * malignant

    frames = []
    for group, kind, n_observers in (("readers", "human", n_readers), ("networks", "machine", n_networks)):
        nu = rng.normal(0, 1, (n_observers, n_sub))
        truth[f"nu_{group}"] = nu
        observer, severity, exam = np.meshgrid(np.arange(n_observers), np.arange(n_sev), np.arange(n_exams),
                                               indexing="ij")
        observer, severity, exam = observer.ravel(), severity.ravel(), exam.ravel()
        if kind == "human":
            read_at = rng.integers(0, n_sev, size=(n_observers, n_exams))
            keep = severity == read_at[observer, exam]
            observer, severity, exam = observer[keep], severity[keep], exam[keep]
        observer, severity = np.repeat(observer, 2), np.repeat(severity, 2)
        case = (2 * np.repeat(exam, 2) + np.tile([0, 1], len(exam)))
        g = case_subgroup[case]
        p = expit(truth["b"][g] + truth["mu"][case] + gamma[severity, g] + malignant[case] * shift[severity, g]
                  + nu[observer, g])
        prediction = (rng.random(len(p)) < p).astype(float) if kind == "human" else p
        frames.append(pd.DataFrame({
            "observer_group": group,
            "observer": [f"{group}{i}" for i in observer],
            "observer_kind": kind,
            "exam": cases["exam"].to_numpy()[case],
            "breast": cases["breast"].to_numpy()[case],
            "severity_mm": np.asarray(severity_mm)[severity],
            "scheme": "entire",
            "annotator": "",
            "prediction": prediction,
        }))
    return pd.concat(frames, ignore_index=True), cases, truth


def coverage(posterior, true_gamma: np.ndarray, level: float = 0.9) -> float:
    """Fraction of the perturbed severity effects whose central credible interval holds the truth."""
    gamma = posterior.posterior["gamma"].sel(subgroup=list(SUBGROUPS)).isel(severity=slice(1, None))
    tail = (1 - level) / 2
    lower = gamma.quantile(tail, dim=("chain", "draw")).values
    upper = gamma.quantile(1 - tail, dim=("chain", "draw")).values
    truth = true_gamma[1:]
    return float(np.mean((lower <= truth) & (truth <= upper)))
