"""Simulated posteriors in the model's contract, and plain reference implementations for the tests."""

from __future__ import annotations

import warnings

import arviz as az
import numpy as np
from scipy import stats
from scipy.special import expit

SUBGROUPS = ("microcalcifications", "soft_tissue_lesions", "mixed", "occult", "nonbiopsied")


def make_posterior(
    *,
    b: np.ndarray,
    mu: np.ndarray,
    gamma: np.ndarray,
    nu: np.ndarray,
    case_subgroup: np.ndarray,
    case_label: np.ndarray,
    subgroups: tuple[str, ...],
    severities: tuple[float, ...],
    observers: tuple[str, ...] | None = None,
    observer_group: str = "gmic",
    inference: str = "nuts",
    seed: int = 0,
) -> az.InferenceData:
    """InferenceData in the contract's layout from draws (chain, draw, ...).

    b (C, D, G), mu (C, D, N), gamma (C, D, S, G), nu (C, D, O, G).
    """
    n_cases = mu.shape[-1]
    if observers is None:
        observers = tuple(f"r{i}" for i in range(nu.shape[2]))
    idata = az.from_dict(
        posterior={"b": b, "mu": mu, "gamma": gamma, "nu": nu},
        coords={
            "subgroup": list(subgroups),
            "severity": np.asarray(severities, dtype=float),
            "observer": list(observers),
            "case": np.arange(n_cases),
        },
        dims={
            "b": ["subgroup"],
            "mu": ["case"],
            "gamma": ["severity", "subgroup"],
            "nu": ["observer", "subgroup"],
            "case_subgroup": ["case"],
            "case_label": ["case"],
        },
        constant_data={
            "case_subgroup": np.asarray(case_subgroup, dtype=str),
            "case_label": np.asarray(case_label, dtype=str),
        },
    )
    idata.posterior.attrs.update(observer_group=observer_group, inference=inference, seed=seed)
    exams = np.array([f"e{i // 2}" for i in range(n_cases)])
    breasts = np.array(["L", "R"] * (n_cases // 2) + ["L"] * (n_cases % 2))
    idata.posterior = idata.posterior.assign_coords(exam=("case", exams), breast=("case", breasts))
    return idata


def random_posterior(
    rng: np.random.Generator,
    *,
    n_chains: int = 2,
    n_draws: int = 50,
    n_observers: int = 3,
    severities: tuple[float, ...] = (0.0, 0.5, 1.0, 4.0),
    subgroups: tuple[str, ...] = SUBGROUPS,
    n_cases: int = 40,
    **kwargs,
) -> az.InferenceData:
    """A posterior with random draws (gamma 0 at severity 0) and random case labels and subgroups."""
    n_groups, n_severities = len(subgroups), len(severities)
    gamma = rng.normal(size=(n_chains, n_draws, n_severities, n_groups))
    gamma[:, :, 0, :] = 0.0
    case_subgroup = rng.choice(subgroups, size=n_cases)
    case_label = np.where(rng.random(n_cases) < 0.5, "malignant", rng.choice(["benign", "nonbiopsied"], n_cases))
    return make_posterior(
        b=rng.normal(size=(n_chains, n_draws, n_groups)),
        mu=rng.normal(scale=2.0, size=(n_chains, n_draws, n_cases)),
        gamma=gamma,
        nu=rng.normal(size=(n_chains, n_draws, n_observers, n_groups)),
        case_subgroup=case_subgroup,
        case_label=case_label,
        subgroups=subgroups,
        severities=severities,
        **kwargs,
    )


def reference_posterior_predictive(idata: az.InferenceData) -> np.ndarray:
    """(observer, severity, case) in float64: loops over observers and severities, draws averaged by NumPy."""
    post = idata.posterior
    b = post["b"].transpose("chain", "draw", "subgroup").values.reshape(-1, post.sizes["subgroup"])
    mu = post["mu"].transpose("chain", "draw", "case").values.reshape(-1, post.sizes["case"])
    gamma = post["gamma"].transpose("chain", "draw", "severity", "subgroup").values
    gamma = gamma.reshape(-1, *gamma.shape[2:])
    nu = post["nu"].transpose("chain", "draw", "observer", "subgroup").values
    nu = nu.reshape(-1, *nu.shape[2:])
    names = list(post["subgroup"].values)
    g = np.array([names.index(s) for s in idata.constant_data["case_subgroup"].values])
    out = np.empty((nu.shape[1], gamma.shape[1], mu.shape[1]))
    for r in range(nu.shape[1]):
        for s in range(gamma.shape[1]):
            out[r, s] = expit(b[:, g] + mu + gamma[:, s, g] + nu[:, r, g]).mean(axis=0)
    return out


def reference_ks(values: np.ndarray, positive: np.ndarray, negative: np.ndarray) -> float:
    """scipy's statistic, NaN where a sample is empty (the release's try/except)."""
    if positive.sum() == 0 or negative.sum() == 0:
        return np.nan
    with warnings.catch_warnings():  # scipy's note that its exact p-value fell back; the statistic is unaffected
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(stats.ks_2samp(values[positive], values[negative]).statistic)


def reference_drop_pvalue(ks0: np.ndarray, ks_s: np.ndarray) -> float:
    ks0, ks_s = ks0[~np.isnan(ks0)], ks_s[~np.isnan(ks_s)]
    return float(stats.ks_2samp(ks0, ks_s, alternative="less").pvalue)
