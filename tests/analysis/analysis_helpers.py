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
    gamma_label: np.ndarray | None = None,
    observer_scale: np.ndarray | None = None,
    b_label: np.ndarray | None = None,
    model: str | None = None,
) -> az.InferenceData:
    """InferenceData in the contract's layout from draws (chain, draw, ...).

    b (C, D, G), mu (C, D, N), gamma (C, D, S, G), nu (C, D, O, G); a variant's optional
    gamma_label (C, D, S, G, 2: malignant, non_malignant), b_label (C, D, G, 2) and observer_scale (C, D, O).
    """
    n_cases = mu.shape[-1]
    if observers is None:
        observers = tuple(f"r{i}" for i in range(nu.shape[2]))
    extra = {name: value for name, value in (("gamma_label", gamma_label), ("observer_scale", observer_scale),
                                             ("b_label", b_label)) if value is not None}
    idata = az.from_dict(
        posterior={"b": b, "mu": mu, "gamma": gamma, "nu": nu, **extra},
        coords={
            "subgroup": list(subgroups),
            "severity": np.asarray(severities, dtype=float),
            "observer": list(observers),
            "case": np.arange(n_cases),
            "label": ["malignant", "non_malignant"],
        },
        dims={
            "gamma_label": ["severity", "subgroup", "label"],
            "b_label": ["subgroup", "label"],
            "observer_scale": ["observer"],
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
    if model is not None:
        idata.posterior.attrs["model"] = model
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
    """(observer, severity, case) in float64: loops over observers and severities, draws averaged by NumPy.

    With ``gamma_label`` a case's severity effect is that of its label; with ``observer_scale`` it
    is scaled by the observer's factor (the variants' formulas).
    """
    post = idata.posterior
    b = post["b"].transpose("chain", "draw", "subgroup").values.reshape(-1, post.sizes["subgroup"])
    mu = post["mu"].transpose("chain", "draw", "case").values.reshape(-1, post.sizes["case"])
    gamma = post["gamma"].transpose("chain", "draw", "severity", "subgroup").values
    gamma = gamma.reshape(-1, *gamma.shape[2:])
    nu = post["nu"].transpose("chain", "draw", "observer", "subgroup").values
    nu = nu.reshape(-1, *nu.shape[2:])
    names = list(post["subgroup"].values)
    g = np.array([names.index(s) for s in idata.constant_data["case_subgroup"].values])
    n_draws = b.shape[0]
    label = np.where(idata.constant_data["case_label"].values == "malignant", 0, 1)
    case_bias = b[:, g]
    if "b_label" in post:
        b_label = post["b_label"].transpose("chain", "draw", "subgroup", "label").values.reshape(n_draws, -1, 2)
        case_bias = b_label[:, g, label]
    if "gamma_label" in post:
        gamma_label = post["gamma_label"].transpose("chain", "draw", "severity", "subgroup", "label").values
        gamma_label = gamma_label.reshape(n_draws, *gamma_label.shape[2:])
        case_gamma = gamma_label[:, :, g, label]  # (draw, S, C)
    else:
        case_gamma = gamma[:, :, g]
    scale = (post["observer_scale"].transpose("chain", "draw", "observer").values.reshape(n_draws, -1)
             if "observer_scale" in post else np.ones((n_draws, nu.shape[1])))
    out = np.empty((nu.shape[1], gamma.shape[1], mu.shape[1]))
    for r in range(nu.shape[1]):
        for s in range(gamma.shape[1]):
            out[r, s] = expit(case_bias + mu + scale[:, r, None] * case_gamma[:, s] + nu[:, r, g]).mean(axis=0)
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
